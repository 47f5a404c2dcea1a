// bench:produce — durable, replicated produce on a local 3-node raftbus cluster
// (three `raftbus node` processes, LMDB with fsync, TCP between them), loaded by
// autocannon: (a) one 100-byte record per request, (b) 100 records per request,
// each against the leader only and against all three nodes (followers forward to
// the leader), plus sequential produce (one request at a time) for latency.
// Every answer is a 200 after the records are committed on a majority (fsynced)
// and applied. Scenarios alternate within each round; figures are medians over rounds.
//
//   npm run bench:produce [-- --rounds 3 --duration 8 --connections 64] [--quick] [--no-write]

import {
  commandLine,
  fmtInt,
  fmtMs,
  type LoadResult,
  machine,
  medianLoad,
  parseArgs,
  produceLoad,
  quantile,
  type Raftbus,
  runMain,
  saveFigures,
  say,
  sequentialProduce,
  startRaftbus,
  table,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

const args = parseArgs({ rounds: 3, duration: 8 });
const CONNECTIONS = Number(args.extra.get("connections") ?? 64);

interface Scenario {
  name: string;
  target: "leader" | "all";
  perRequest: number;
  connections: number;
}

const scenarios: Scenario[] = [
  { name: "1 record/request", target: "leader", perRequest: 1, connections: CONNECTIONS },
  { name: "1 record/request", target: "all", perRequest: 1, connections: CONNECTIONS },
  { name: "100 records/request", target: "leader", perRequest: 100, connections: CONNECTIONS },
  { name: "100 records/request", target: "all", perRequest: 100, connections: CONNECTIONS },
];

export interface ProduceFigures {
  rows: { s: Scenario; r: LoadResult; perSync: number }[];
  sequential: { p50: number; p99: number; p999: number; n: number; errors: number };
}

export async function measureProduce(rb: Raftbus, rounds: number, duration: number): Promise<ProduceFigures> {
  const path = "/v1/topics/bench/records";
  const all = [rb.leader, ...rb.followers].map((id) => rb.url(id, path));
  const results = scenarios.map(() => [] as LoadResult[]);
  const perSync = scenarios.map(() => [] as number[]);
  for (let round = 1; round <= rounds; round++) {
    for (const [i, s] of scenarios.entries()) {
      const before = await rb.stats(rb.leader);
      const r = await produceLoad({
        url: s.target === "leader" ? rb.url(rb.leader, path) : all,
        connections: s.connections,
        duration: duration,
        perRequest: s.perRequest,
        label: `round ${round}/${rounds}, ${s.name}, ${s.target === "leader" ? "leader" : "3 nodes"}, ${s.connections} conns`,
      });
      const after = await rb.stats(rb.leader);
      results[i]!.push(r);
      perSync[i]!.push(
        (after.appliedEntries - before.appliedEntries) / Math.max(1, after.syncs - before.syncs),
      );
    }
  }
  say(`  sequential produce to the leader, ${duration} s`);
  const seq = await sequentialProduce(rb.url(rb.leader, path), duration, "sequential");
  return {
    rows: scenarios.map((s, i) => ({
      s,
      r: medianLoad(results[i]!),
      perSync: perSync[i]!.sort((a, b) => a - b)[perSync[i]!.length >> 1]!,
    })),
    sequential: {
      p50: quantile(seq.latencies, 0.5),
      p99: quantile(seq.latencies, 0.99),
      p999: quantile(seq.latencies, 0.999),
      n: seq.latencies.length,
      errors: seq.errors,
    },
  };
}

export function produceTable(f: ProduceFigures): string {
  return table(
    [
      "workload",
      "target",
      "conns",
      "acked records/s",
      "requests/s",
      "p50 ms",
      "p99 ms",
      "p99.9 ms",
      "errors",
      "entries/fsync (leader)",
    ],
    [
      ...f.rows.map(({ s, r, perSync }) => [
        s.name,
        s.target === "leader" ? "leader" : "all 3 nodes",
        s.connections,
        fmtInt(r.recordsPerSec),
        fmtInt(r.requestsPerSec),
        fmtMs(r.p50),
        fmtMs(r.p99),
        fmtMs(r.p999),
        r.errors,
        perSync.toFixed(1),
      ]),
      [
        "1 record/request, sequential",
        "leader",
        1,
        fmtInt(f.sequential.n / args.duration),
        fmtInt(f.sequential.n / args.duration),
        fmtMs(f.sequential.p50),
        fmtMs(f.sequential.p99),
        fmtMs(f.sequential.p999),
        f.sequential.errors,
        "",
      ],
    ],
    [false, false, true, true, true, true, true, true, true, true],
  );
}

async function main() {
  say(
    `bench:produce: ${args.rounds} round(s) of ${args.duration} s per scenario${args.quick ? " (quick)" : ""}`,
  );
  const started = machine();
  const rb = await startRaftbus();
  try {
    await rb.createTopic("bench");
    const f = await measureProduce(rb, args.rounds, args.duration);
    const errors = f.rows.reduce((s, x) => s + x.r.errors, 0) + f.sequential.errors;
    const t = produceTable(f);
    say(`\n${t}\n`);
    if (args.write) {
      writeResultsSection(
        "<!-- bench:produce -->",
        "<!-- /bench:produce -->",
        "## Produce on a 3-node cluster (bench/produce.ts)",
        [
          `Command: ${commandLine("bench:produce", args)}  `,
          `Machine: ${started}`,
          "",
          "Three `raftbus node` processes (LMDB, fsync per group commit, TCP between nodes) and autocannon on the",
          "same cores. A record is 100 bytes: `application/octet-stream` for one record per request, a JSON body of",
          "100 `value`s (98-character strings) for 100 per request. Every 200 comes after commit on a majority of",
          'fsynced logs and apply. "all 3 nodes": autocannon spreads the connections over the three nodes (the',
          "followers forward to the leader). Medians over rounds (scenarios alternate in each round); latency is per",
          "request. Sequential: one request at a time to the leader.",
          "",
          t,
          "",
          `Errors (non-2xx, timeouts, socket errors) over every run: ${errors}.`,
        ].join("\n"),
      );
    }
    const row = (target: string, per: number) =>
      f.rows.find((x) => x.s.target === target && x.s.perRequest === per)!.r;
    saveFigures("produce", {
      singleLeader: row("leader", 1).recordsPerSec,
      singleAll: row("all", 1).recordsPerSec,
      batchLeader: row("leader", 100).recordsPerSec,
      batchAll: row("all", 100).recordsPerSec,
      seqP50: f.sequential.p50,
      seqP99: f.sequential.p99,
      errors,
    });
    if (errors > 0) throw new Error(`${errors} produce errors`);
  } finally {
    await rb.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
