// A/B of the produce path for perf changes: two source trees (e.g. a `git archive`
// of the commit before a change and one after), each started as a 3-node cluster
// in turn, round after round, under the same loads; medians and after/before ratios.
//
//   npx tsx bench/ab.ts --a /tmp/rb-before --b /tmp/rb-after [--rounds 3 --duration 5]

import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  fmtInt,
  fmtMs,
  fmtRatio,
  type LoadResult,
  median,
  medianLoad,
  onCleanup,
  parseArgs,
  produceLoad,
  quantile,
  runMain,
  say,
  sequentialProduce,
  table,
  trackDir,
} from "./lib.ts";

const withCpu = (r: LoadResult): Run => ({ ...r, cpuUsPerRecord: 0 });
const args = parseArgs({ rounds: 3, duration: 5 });
const trees = { a: args.extra.get("a")!, b: args.extra.get("b")! };
const loads = [
  { name: "1 record/request, 64 conns, leader", per: 1, all: false },
  { name: "1 record/request, 64 conns, 3 nodes", per: 1, all: true },
  { name: "100 records/request, 64 conns, leader", per: 100, all: false },
  { name: "sequential, leader", per: 0, all: false },
];

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}

type Run = LoadResult & { cpuUsPerRecord: number };

async function runTree(tree: string, label: string): Promise<Run[]> {
  const { ProcCluster } = (await import(
    join(tree, "test/node/proc-cluster.ts")
  )) as typeof import("../test/node/proc-cluster.ts");
  const c = await ProcCluster.create({ size: 3 });
  trackDir(c.root);
  const un = onCleanup(() => c.destroy());
  try {
    c.startAll();
    const leader = await c.waitForLeader();
    const r = await c.json(leader, "/v1/topics", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "bench", partitions: 1 }),
    });
    if (r.status !== 201) throw new Error("topic");
    await new Promise((res) => setTimeout(res, 300));
    const path = "/v1/topics/bench/records";
    const out: Run[] = [];
    const pids = [...c.nodes.values()].map((n) => n.proc?.pid);
    for (const l of loads) {
      const cpu0 = pids.reduce<number>((a, p) => a + cpuSeconds(p), 0);
      const n0 = out.length;
      if (l.per === 0) {
        const s = await sequentialProduce(c.url(leader, path), args.duration, `${label} ${l.name}`);
        out.push({
          recordsPerSec: s.latencies.length / args.duration,
          requestsPerSec: s.latencies.length / args.duration,
          p50: quantile(s.latencies, 0.5),
          p99: quantile(s.latencies, 0.99),
          p999: quantile(s.latencies, 0.999),
          errors: s.errors,
          requests: s.latencies.length,
          cpuUsPerRecord: 0,
        });
      } else {
        out.push(
          withCpu(
            await produceLoad({
              url: l.all ? [...c.nodes.keys()].map((id) => c.url(id, path)) : c.url(leader, path),
              connections: 64,
              duration: args.duration,
              perRequest: l.per,
              label: `${label} ${l.name}`,
            }),
          ),
        );
      }
      const cpu = pids.reduce<number>((a, p) => a + cpuSeconds(p), 0) - cpu0;
      const r = out[n0]!;
      r.cpuUsPerRecord = (cpu * 1e6) / Math.max(1, r.requests * (l.per || 1));
    }
    return out;
  } finally {
    un();
    await c.destroy();
  }
}

async function main() {
  const res: Record<"a" | "b", Run[][]> = { a: loads.map(() => []), b: loads.map(() => []) };
  for (let round = 1; round <= args.rounds; round++) {
    for (const k of round % 2 ? (["a", "b"] as const) : (["b", "a"] as const)) {
      const r = await runTree(trees[k], `round ${round}/${args.rounds} ${k}:`);
      for (const [i, x] of r.entries()) res[k][i]!.push(x);
    }
  }
  const cpu = (rs: Run[]) => median(rs.map((r) => r.cpuUsPerRecord));
  const rows = loads.map((l, i) => {
    const a = medianLoad(res.a[i]!);
    const b = medianLoad(res.b[i]!);
    return [
      l.name,
      fmtInt(a.recordsPerSec),
      fmtInt(b.recordsPerSec),
      fmtRatio(b.recordsPerSec / a.recordsPerSec),
      `${fmtMs(a.p50)} / ${fmtMs(a.p99)}`,
      `${fmtMs(b.p50)} / ${fmtMs(b.p99)}`,
      `${cpu(res.a[i]!).toFixed(0)} / ${cpu(res.b[i]!).toFixed(0)}`,
      `${a.errors} / ${b.errors}`,
    ];
  });
  say(
    `\n${table(["load", "a records/s", "b records/s", "b / a", "a p50 / p99 ms", "b p50 / p99 ms", "CPU µs/record a / b (3 nodes)", "errors a / b"], rows)}\n` +
      `a = ${trees.a}, b = ${trees.b}; ${args.rounds} rounds of ${args.duration} s, alternating order, medians`,
  );
}

runMain(main);
