// Durable, replicated append rate of a real 3-node cluster on loopback: three
// `raftbus node` processes (LMDB, fsync on, TCP between them), loaded with
// autocannon through the produce API (one 100-byte record per request, as raw
// bytes), each acknowledged only after it is committed on a majority and applied.
//
//   npm run bench:cluster [-- --runs 3 --duration 8 --connections 64]

import { cpus } from "node:os";
import autocannon from "autocannon";
import { ProcCluster } from "../test/node/proc-cluster.ts";
import { writeResultsSection } from "./results-file.ts";

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const RUNS = opt("runs", 3);
const DURATION_S = opt("duration", 8);
const CONNECTIONS = opt("connections", 64);
const body = Buffer.alloc(100, 120);

interface Row {
  target: string;
  connections: number;
  rps: number[];
  p50: number[];
  p99: number[];
  errors: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** 100 records of 100 bytes in one JSON request. */
const batchBody = JSON.stringify({ records: Array.from({ length: 100 }, () => ({ value: "x".repeat(98) })) });

async function load(
  url: string,
  connections: number,
  perRequest = 1,
): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const inst = autocannon({
    url,
    method: "POST",
    headers: { "content-type": perRequest === 1 ? "application/octet-stream" : "application/json" },
    body: perRequest === 1 ? body : batchBody,
    connections,
    duration: DURATION_S,
    timeout: 20,
  });
  let seconds = 0;
  inst.on("tick", (c) => {
    seconds++;
    process.stdout.write(`\r    ${seconds}/${DURATION_S} s, ${c.counter} req/s   `);
  });
  const r = await inst;
  process.stdout.write("\n");
  return {
    rps: (r["2xx"] * perRequest) / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

async function main() {
  const cluster = await ProcCluster.create({ size: 3 });
  const cleanup = () => void cluster.destroy();
  process.on("SIGINT", cleanup);
  try {
    cluster.startAll();
    process.stdout.write("starting 3 nodes...\n");
    const leader = await cluster.waitForLeader();
    const created = await cluster.json(leader, "/v1/topics", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "bench", partitions: 1 }),
    });
    if (created.status !== 201) throw new Error(`cannot create the topic: ${JSON.stringify(created.body)}`);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const rows: Row[] = [];
    for (const [target, id, conns, perRequest] of [
      ["leader", leader, 1, 1],
      ["leader", leader, CONNECTIONS, 1],
      ["leader, 100 records per request", leader, CONNECTIONS, 100],
      ["follower (forwarded)", follower, CONNECTIONS, 1],
    ] as const) {
      const row: Row = { target, connections: conns, rps: [], p50: [], p99: [], errors: 0 };
      for (let run = 1; run <= RUNS; run++) {
        process.stdout.write(`  ${target}, ${conns} connections, run ${run}/${RUNS}\n`);
        const r = await load(cluster.url(id, "/v1/topics/bench/records"), conns, perRequest);
        row.rps.push(r.rps);
        row.p50.push(r.p50);
        row.p99.push(r.p99);
        row.errors += r.errors;
      }
      rows.push(row);
    }
    const st = await cluster.json<{ runtime: { batches: number; syncs: number; appliedEntries: number } }>(
      leader,
      "/internal/status",
    );
    const table = [
      "| target | connections | records/s (median) | p50 ms | p99 ms | errors |",
      "|---|---:|---:|---:|---:|---:|",
      ...rows.map(
        (r) =>
          `| ${r.target} | ${r.connections} | ${Math.round(median(r.rps))} | ${median(r.p50)} | ${median(r.p99)} | ${r.errors} |`,
      ),
    ].join("\n");
    const perSync = st.body.runtime.appliedEntries / Math.max(1, st.body.runtime.syncs);
    const section = [
      `Command: \`npm run bench:cluster -- --runs ${RUNS} --duration ${DURATION_S} --connections ${CONNECTIONS}\``,
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
      "Three `raftbus node` processes (LMDB with fsync, TCP between nodes) and autocannon share the same 2 cores.",
      "Each request is one 100-byte record (`POST /v1/topics/bench/records`, `application/octet-stream`), or 100 such records in one JSON request, answered after commit on a majority and apply; p50/p99 are per request.",
      "",
      table,
      "",
      `Group commit on the leader over the whole run: ${perSync.toFixed(1)} entries per fsync (${st.body.runtime.syncs} syncs).`,
      "",
      "Where the time goes: with one record per request and one request in flight per connection, throughput is",
      "connections ÷ latency. A record waits for the leader's batch write and fsync, a follower's write and fsync,",
      "the commit, and the apply in the leader's next loop turn, on 2 cores shared by three nodes and the load",
      "generator. Batching is bounded by what is in flight; clients that send many records per request (the CLI",
      "batches 500) get many more records per fsync.",
    ].join("\n");
    writeResultsSection(
      "<!-- bench:cluster -->",
      "<!-- /bench:cluster -->",
      "## 3-node cluster on loopback (durable, replicated appends)",
      section,
    );
    process.stdout.write(`\n${table}\n\n${Math.round(median(rows[1]!.rps))} replicated records/s\n`);
  } finally {
    await cluster.destroy();
  }
}

await main();
