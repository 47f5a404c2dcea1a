// The fault catalogue. A fault is injected, held for a while under load, then
// healed; network faults heal only the links they set, so a network fault and
// a process fault can overlap in the randomised mixes.

import type { Prng } from "../../src/sim/prng.ts";
import { type FaultCluster, sleep } from "./harness.ts";
import type { LinkMode } from "./proxy.ts";

export interface FaultContext {
  c: FaultCluster;
  rng: Prng;
  log: (line: string) => void;
  /** Checks on the nodes' own behaviour (a clean SIGTERM exit, a loud disk failure). */
  processFailure: (example: string) => void;
}

export interface ActiveFault {
  detail: string;
  /** The node this fault made unavailable, if one (for the leader-change measure). */
  heal(): Promise<void>;
}

export type FaultKind = "network" | "process";

export interface Fault {
  name: string;
  kind: FaultKind;
  inject(ctx: FaultContext): Promise<ActiveFault>;
}

/** Running, unpaused members. */
function live(c: FaultCluster): number[] {
  return [...c.members].filter((id) => c.running(id) && !c.paused.has(id));
}

/** The current leader, or a random live member when there is none. */
async function leaderOrAny(ctx: FaultContext): Promise<number> {
  const l = await ctx.c.leader();
  if (l !== undefined) return l;
  const ids = live(ctx.c);
  return ctx.rng.pick(ids.length > 0 ? ids : [...ctx.c.members]);
}

/** Applies link modes and returns a heal that puts exactly those links back to pass. */
function links(ctx: FaultContext, set: [number, number, LinkMode][], detail: string): ActiveFault {
  for (const [a, b, m] of set) ctx.c.net.set(a, b, m);
  return {
    detail,
    heal: async () => {
      for (const [a, b] of set) ctx.c.net.set(a, b, { kind: "pass" });
    },
  };
}

const DROP: LinkMode = { kind: "drop" };

function cut(left: number[], right: number[], mode: LinkMode = DROP): [number, number, LinkMode][] {
  const out: [number, number, LinkMode][] = [];
  for (const a of left)
    for (const b of right) {
      out.push([a, b, mode]);
      out.push([b, a, mode]);
    }
  return out;
}

const others = (c: FaultCluster, id: number) => [...c.members].filter((m) => m !== id);

export const FAULTS: Fault[] = [
  {
    name: "isolate-leader",
    kind: "network",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      return links(ctx, cut([l], others(ctx.c, l)), `node ${l} cut off from everyone`);
    },
  },
  {
    name: "split-majority-minority",
    kind: "network",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      const rest = ctx.rng.shuffle(others(ctx.c, l));
      // The old leader lands in the minority: it must not acknowledge anything.
      const minority = [l, ...rest.splice(0, Math.floor(ctx.c.members.size / 2) - 1)];
      return links(ctx, cut(minority, rest), `minority [${minority}] | majority [${rest}]`);
    },
  },
  {
    name: "one-way-out-of-leader",
    kind: "network",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      const set = others(ctx.c, l).map((o): [number, number, LinkMode] => [l, o, DROP]);
      return links(ctx, set, `frames from node ${l} dropped, frames to it delivered`);
    },
  },
  {
    name: "one-way-into-leader",
    kind: "network",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      const set = others(ctx.c, l).map((o): [number, number, LinkMode] => [o, l, DROP]);
      return links(ctx, set, `frames to node ${l} dropped, frames from it delivered`);
    },
  },
  {
    name: "bridge",
    kind: "network",
    async inject(ctx) {
      const ids = ctx.rng.shuffle([...ctx.c.members]);
      const half = Math.floor((ids.length - 1) / 2);
      const left = ids.slice(0, half);
      const bridge = ids[half]!;
      const right = ids.slice(half + 1);
      return links(ctx, cut(left, right), `[${left}] <-> ${bridge} <-> [${right}]`);
    },
  },
  {
    name: "refuse-leader",
    kind: "network",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      return links(ctx, cut([l], others(ctx.c, l), { kind: "refuse" }), `connections of node ${l} reset`);
    },
  },
  {
    name: "slow-network",
    kind: "network",
    async inject(ctx) {
      const set: [number, number, LinkMode][] = [];
      for (const a of ctx.c.members)
        for (const b of ctx.c.members)
          if (a !== b) set.push([a, b, { kind: "delay", ms: ctx.rng.int(20, 250) }]);
      return links(ctx, set, "every link delayed 20-250 ms");
    },
  },
  {
    name: "kill-leader",
    kind: "process",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      await ctx.c.kill9(l);
      return { detail: `kill -9 node ${l}`, heal: async () => restart(ctx, l) };
    },
  },
  {
    name: "kill-random",
    kind: "process",
    async inject(ctx) {
      const n = ctx.rng.pick(live(ctx.c));
      await ctx.c.kill9(n);
      return { detail: `kill -9 node ${n}`, heal: async () => restart(ctx, n) };
    },
  },
  {
    name: "pause-leader",
    kind: "process",
    async inject(ctx) {
      const l = await leaderOrAny(ctx);
      ctx.c.pause(l);
      return {
        detail: `SIGSTOP node ${l}`,
        heal: async () => {
          if (ctx.c.paused.has(l)) ctx.c.resume(l);
        },
      };
    },
  },
  {
    name: "graceful-restart",
    kind: "process",
    async inject(ctx) {
      const n = ctx.rng.pick(live(ctx.c));
      // The contract applies to a serving node: one still booting (its handler
      // not yet installed) dies of the signal itself.
      await ctx.c.waitServing(n);
      const r = await ctx.c.terminate(n);
      if (r.code !== 0) ctx.processFailure(`SIGTERM of node ${n}: exit code ${r.code} after ${r.ms} ms`);
      return {
        detail: `SIGTERM node ${n} (exit ${r.code} in ${r.ms} ms), restart`,
        heal: async () => restart(ctx, n),
      };
    },
  },
  {
    name: "power-cycle",
    kind: "process",
    async inject(ctx) {
      await ctx.c.powerOff();
      return { detail: "kill -9 of every node at once", heal: async () => ctx.c.startStopped() };
    },
  },
  {
    name: "disk-full",
    kind: "process",
    async inject(ctx) {
      const n = ctx.rng.pick(live(ctx.c));
      const logBefore = ctx.c.log(n);
      const bytes = ctx.c.fillDisk(n);
      // Under load the node must extend its file soon; it must then stop, loudly.
      const deadline = Date.now() + 60_000;
      while (ctx.c.running(n) && Date.now() < deadline) await sleep(100);
      const exit = ctx.c.exits.filter((e) => e.id === n).at(-1);
      let detail = `node ${n}: file size limit ${bytes} bytes; `;
      if (ctx.c.running(n)) {
        // Not a failure by itself (it may have had nothing to write), but reported.
        detail += "still running after 60 s";
        ctx.log(`disk-full: node ${n} did not need to grow its file within 60 s`);
      } else {
        const all = ctx.c.log(n);
        const since = all.startsWith(logBefore) ? all.slice(logBefore.length) : all;
        // The first error line printed after the limit: lmdb's EFBIG, a stack trace, or the runtime's own line.
        const loud = since
          .split("\n")
          .find((l) => /error|failed|too large/i.test(l))
          ?.slice(0, 160);
        detail += `exited (code ${exit?.code}, signal ${exit?.signal})${loud ? `, logged "${loud}"` : ""}`;
        if (exit?.code === 0 || !loud) ctx.processFailure(`disk-full on node ${n}: quiet exit (${detail})`);
      }
      return {
        detail,
        heal: async () => {
          if (ctx.c.running(n)) await ctx.c.kill9(n); // drop the limit: restart the process
          restart(ctx, n);
        },
      };
    },
  },
];

function restart(ctx: FaultContext, id: number): void {
  if (ctx.c.members.has(id) && !ctx.c.running(id)) ctx.c.start(id);
}

export function faultByName(name: string): Fault {
  const f = FAULTS.find((x) => x.name === name);
  if (!f) throw new Error(`no fault ${name}`);
  return f;
}
