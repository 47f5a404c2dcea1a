// One fault run: start the cluster, start producers and subscribers, play a
// schedule of faults (each held, then healed, then a short recovery under
// load), heal everything, read every log from every node, check.
//
// The seed drives the schedule (which faults, in which combination, how long,
// which random node) through its own PRNG, and the workload through another,
// so the same seed replays the same sequence of faults. What the seed cannot
// fix is timing: which node is leader when a fault picks "the leader", or how
// requests interleave with the fault.

import { Prng } from "../../src/sim/prng.ts";
import { type CheckResult, check } from "./checker.ts";
import { type ActiveFault, FAULTS, type Fault, type FaultContext } from "./faults.ts";
import { readAll, waitConverged } from "./final-read.ts";
import { FaultCluster, sleep } from "./harness.ts";
import { changeMembership } from "./membership.ts";
import { Subscriber } from "./subscribers.ts";
import { type Attempt, Producers } from "./workload.ts";

export interface RunOptions {
  seed: number;
  nodes: number;
  /** 0: the short schedule (each fault once, a membership change); else random mixes for this long. */
  minutes: number;
  /** How long each fault is held (short mode), in ms. */
  holdMs?: number;
  /** Extra `raftbus node` flags for every node (e.g. a smaller compaction margin). */
  nodeArgs?: string[];
  producers?: number;
  log?: (line: string) => void;
}

export interface StepReport {
  index: number;
  faults: string[];
  details: string[];
  start: number;
  healedAt: number;
  end: number;
  /** From injection to a live member reporting itself leader in a higher term (if the leader changed). */
  newLeaderMs: number | undefined;
  during: { ok: number; total: number };
  after: { ok: number; total: number };
  /** From injection / from heal to the first request sent after it that was acknowledged. */
  firstOkAfterInjectMs: number | undefined;
  firstOkAfterHealMs: number | undefined;
}

export interface RunReport {
  seed: number;
  nodes: number;
  mode: string;
  durationMs: number;
  steps: StepReport[];
  faultsInjected: Record<string, number>;
  processFailures: string[];
  /** Liveness problems (a membership change that did not complete): reported, not failed. */
  warnings: string[];
  convergedMs: number | undefined;
  check: CheckResult;
  /** Correct: zero anomalies and no process failures. */
  ok: boolean;
}

const TOPIC = "faults";
const PARTITIONS = 3;

interface Step {
  faults: (Fault | "membership")[];
  holdMs: number;
}

/** The short schedule: each fault alone, in catalogue order, then a membership change. */
function shortSchedule(holdMs: number): Step[] {
  return [...FAULTS.map((f) => ({ faults: [f], holdMs })), { faults: ["membership"], holdMs: 0 }];
}

/** A random step: a network fault, a process fault, or both at once; now and then a membership change. */
function randomStep(rng: Prng, index: number): Step {
  if (index % 12 === 11) return { faults: ["membership"], holdMs: 0 };
  const net = FAULTS.filter((f) => f.kind === "network");
  const proc = FAULTS.filter((f) => f.kind === "process");
  const faults: Fault[] = [];
  const r = rng.float();
  if (r < 0.4) faults.push(rng.pick(net));
  else if (r < 0.75) faults.push(rng.pick(proc));
  else faults.push(rng.pick(net), rng.pick(proc));
  return { faults, holdMs: rng.int(2_000, 12_000) };
}

export async function runFaults(o: RunOptions): Promise<RunReport> {
  const log = o.log ?? (() => {});
  const schedRng = new Prng(o.seed);
  const loadRng = new Prng(o.seed ^ 0x5bd1e995);
  const t0 = Date.now();
  const c = await FaultCluster.create(o.nodes, o.nodeArgs ?? []);
  const processFailures: string[] = [];
  const warnings: string[] = [];
  const ctx: FaultContext = { c, rng: schedRng, log, processFailure: (e) => processFailures.push(e) };
  const subs: Subscriber[] = [];
  let producers: Producers | undefined;
  try {
    c.startAll();
    const leader = await c.waitLeader(60_000);
    if (leader === undefined) throw new Error(`no leader at start\n${c.procs.logs()}`);
    await createTopic(c, leader);
    for (const n of c.ids.slice(0, Math.min(3, o.nodes)))
      for (let p = 0; p < PARTITIONS; p++) {
        const s = new Subscriber(n, p, (from) =>
          c.url(n, `/v1/topics/${TOPIC}/subscribe?partition=${p}&from=${from}`).replace("http", "ws"),
        );
        subs.push(s);
        s.start();
      }
    producers = new Producers({
      topic: TOPIC,
      partitions: PARTITIONS,
      producers: o.producers ?? 6,
      nodes: () => [...c.members],
      url: (n, path) => c.url(n, path),
      rng: loadRng,
    });
    producers.start();
    await sleep(2_000);

    const steps: StepReport[] = [];
    const injected: Record<string, number> = {};
    const deadline = t0 + o.minutes * 60_000;
    const planned = shortSchedule(o.holdMs ?? 5_000);
    let nextJoiner = o.nodes + 1;
    for (let i = 0; ; i++) {
      const step = i < planned.length ? planned[i]! : o.minutes > 0 ? randomStep(schedRng, i) : undefined;
      if (!step || (i >= planned.length && Date.now() > deadline)) break;
      const rep = await runStep(ctx, step, i, producers.attempts, () => nextJoiner++, warnings);
      for (const f of rep.faults) injected[f] = (injected[f] ?? 0) + 1;
      steps.push(rep);
      log(formatStep(rep));
    }

    // Heal everything, stop the load, let the cluster converge, read everything.
    c.net.healAll();
    for (const id of [...c.paused]) c.resume(id);
    c.startStopped();
    await producers.stop();
    const live = [...c.members];
    const convergedMs = await waitConverged((n, p) => c.url(n, p), live, TOPIC, 90_000);
    if (convergedMs === undefined) {
      log("final: the nodes did not converge within 90 s (reading anyway)");
      warnings.push("the nodes did not converge within 90 s after the final heal");
    }
    const { logs, unreadable } = await readAll((n, p) => c.url(n, p), live, TOPIC, PARTITIONS);
    for (const u of unreadable) warnings.push(`final read failed: ${u}`);
    if (logs.size === 0) throw new Error(`no node could be read: ${unreadable.join("; ")}`);
    await waitSubscribers(
      subs.filter((s) => c.members.has(s.node)),
      logs,
      15_000,
    );
    await Promise.all(subs.map((s) => s.stop()));
    const result = check({
      attempts: producers.attempts,
      idempotentValues: producers.idempotentValues,
      logs,
      partitions: PARTITIONS,
      subscribers: subs,
    });
    return {
      seed: o.seed,
      nodes: o.nodes,
      mode: o.minutes > 0 ? `long (${o.minutes} min)` : "short",
      durationMs: Date.now() - t0,
      steps,
      faultsInjected: injected,
      processFailures,
      warnings,
      convergedMs,
      check: result,
      ok: result.ok && processFailures.length === 0,
    };
  } finally {
    await producers?.stop();
    await Promise.all(subs.map((s) => s.stop()));
    await c.destroy();
  }
}

async function createTopic(c: FaultCluster, leader: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      const res = await fetch(c.url(leader, "/v1/topics"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: TOPIC, partitions: PARTITIONS }),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status === 201 || res.status === 409) return;
    } catch {
      // retry
    }
    await sleep(200);
  }
  throw new Error("could not create the topic");
}

async function runStep(
  ctx: FaultContext,
  step: Step,
  index: number,
  attempts: Attempt[],
  joinerId: () => number,
  warnings: string[],
): Promise<StepReport> {
  const { c } = ctx;
  const before = await c.leaderTerm();
  const start = Date.now();
  const active: ActiveFault[] = [];
  const names: string[] = [];
  let newLeaderMs: number | undefined;
  for (const f of step.faults) {
    if (f === "membership") {
      names.push("membership");
      // A change that does not complete is a liveness problem, reported, not a
      // correctness one: the run goes on (the node stays whatever it became).
      const detail = await changeMembership(ctx, joinerId()).catch((e: Error) => {
        warnings.push(e.message);
        return `FAILED: ${e.message}`;
      });
      active.push({ detail, heal: async () => {} });
    } else {
      names.push(f.name);
      active.push(await f.inject(ctx));
    }
  }
  // Hold, watching for a new leader.
  const watch = async (until: number) => {
    while (Date.now() < until) {
      if (newLeaderMs === undefined) {
        const now = await c.leaderTerm();
        if (now && before && now.term > before.term) newLeaderMs = Date.now() - start;
      }
      await sleep(200);
    }
  };
  await watch(start + step.holdMs);
  for (const a of [...active].reverse()) await a.heal();
  const healedAt = Date.now();
  // Recover under load: until a request sent after the heal is acknowledged (bounded), then a little more.
  const deadline = healedAt + 30_000;
  while (Date.now() < deadline && !attempts.some((a) => a.t0 >= healedAt && a.outcome === "ok")) {
    await watch(Date.now() + 200);
  }
  await watch(Date.now() + 1_000);
  const end = Date.now();
  const window = (from: number, to: number) => {
    const done = attempts.filter((a) => a.t1 >= from && a.t1 < to);
    return { ok: done.filter((a) => a.outcome === "ok").length, total: done.length };
  };
  const firstOk = (from: number) => {
    const oks = attempts.filter((a) => a.t0 >= from && a.outcome === "ok").map((a) => a.t1);
    return oks.length > 0 ? Math.min(...oks) - from : undefined;
  };
  return {
    index,
    faults: names,
    details: active.map((a) => a.detail),
    start,
    healedAt,
    end,
    newLeaderMs,
    during: window(start, healedAt),
    after: window(healedAt, end),
    firstOkAfterInjectMs: firstOk(start),
    firstOkAfterHealMs: firstOk(healedAt),
  };
}

/** Gives subscribers a bounded time to read to the end of the final log (a lagging one is reported, not failed). */
async function waitSubscribers(
  subs: Subscriber[],
  logs: Map<number, Map<number, unknown[]>>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const ends = [...logs.values()][0];
  while (Date.now() < deadline) {
    if (subs.every((s) => s.next >= (ends?.get(s.partition)?.length ?? 0))) return;
    await sleep(200);
  }
}

export function formatStep(s: StepReport): string {
  const ms = (v: number | undefined) => (v === undefined ? "-" : `${(v / 1000).toFixed(1)}s`);
  return (
    `step ${s.index} ${s.faults.join("+")}: ${s.details.join("; ")} | held ${ms(s.healedAt - s.start)}` +
    ` | ok during ${s.during.ok}/${s.during.total}, after heal ${s.after.ok}/${s.after.total}` +
    ` | new leader ${ms(s.newLeaderMs)}, first ok after inject ${ms(s.firstOkAfterInjectMs)}, after heal ${ms(s.firstOkAfterHealMs)}`
  );
}
