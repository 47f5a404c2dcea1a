// bench:e2e — end-to-end latency: from the start of a POST to the leader until a
// WebSocket subscriber on a follower receives the record, at fixed offered rates
// (open loop: records are sent on schedule whatever the answers do).
// At 1k records/s each record is its own request; above that the records due in
// each 1 ms tick go in one request (a producer lingering 1 ms, as Kafka's
// linger.ms=1), so the offered rate, not the request rate, is what is fixed.
//
//   npm run bench:e2e [-- --rates 1000,10000 --duration 8 --rounds 3] [--quick] [--no-write]

import http from "node:http";
import WebSocket from "ws";
import {
  commandLine,
  fmtInt,
  fmtMs,
  machine,
  median,
  parseArgs,
  postStatus,
  quantile,
  type Raftbus,
  runMain,
  saveFigures,
  say,
  sleep,
  startRaftbus,
  table,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

const args = parseArgs({ rounds: 3, duration: 8 });
const RATES = (args.extra.get("rates") ?? "1000,10000").split(",").map(Number);

export interface E2eRow {
  rate: number;
  perRequest: number;
  p50: number;
  p99: number;
  p999: number;
  received: number;
  errors: number;
}

const PAD = "x".repeat(80);

async function runOnce(rb: Raftbus, topic: string, rate: number, seconds: number, label: string) {
  const sub = rb.followers[0]!;
  const ws = new WebSocket(
    rb.url(sub, `/v1/topics/${topic}/subscribe?partition=0&from=latest`).replace("http", "ws"),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const sentAt = new Map<number, number>();
  const lat: number[] = [];
  let errors = 0;
  ws.on("message", (data) => {
    const now = performance.now();
    const f = JSON.parse(data.toString()) as { type: string; records?: { value: { i: number } }[] };
    if (f.type !== "records") return;
    for (const r of f.records!) {
      const t = sentAt.get(r.value.i);
      if (t === undefined) continue;
      sentAt.delete(r.value.i);
      lat.push(now - t);
    }
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const u = new URL(rb.url(rb.leader, `/v1/topics/${topic}/records`));
  const post = (ids: number[]) => {
    const body = JSON.stringify({ records: ids.map((i) => ({ value: { i, p: PAD } })) });
    void postStatus(agent, u, body, "application/json").then((status) => {
      if (status !== 200) errors += ids.length;
    });
  };
  const perTick = rate / 1000;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let sent = 0;
  let nextId = 0;
  let maxPerRequest = 1;
  let lastPrint = t0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(Math.floor(((Math.min(now, end) - t0) * rate) / 1000), Math.ceil(seconds * rate));
      if (rate <= 1000) {
        for (; sent < due; sent++) {
          const id = nextId++;
          sentAt.set(id, performance.now());
          post([id]);
        }
      } else if (due > sent) {
        const ids: number[] = [];
        const start = performance.now();
        for (; sent < due; sent++) {
          const id = nextId++;
          sentAt.set(id, start);
          ids.push(id);
        }
        maxPerRequest = Math.max(maxPerRequest, ids.length);
        post(ids);
      }
      if (now - lastPrint > 1000) {
        lastPrint = now;
        process.stdout.write(`\r    ${label}: ${fmtInt(sent)} sent, ${fmtInt(lat.length)} received      `);
      }
      if (now >= end) resolve();
      else setImmediate(tick);
    };
    // setImmediate, not a 1 ms timer: the schedule follows the clock, not timer drift.
    tick();
  });
  // Wait for the stragglers.
  const waitEnd = performance.now() + 10_000;
  while (sentAt.size > 0 && performance.now() < waitEnd) await sleep(20);
  process.stdout.write(`\r    ${label}: ${fmtInt(sent)} sent, ${fmtInt(lat.length)} received      \n`);
  const missing = sentAt.size;
  ws.close();
  agent.destroy();
  // The first 10% is warm-up (connections, JIT).
  const kept = Float64Array.from(lat.slice(Math.floor(lat.length / 10))).sort();
  return {
    p50: quantile(kept, 0.5),
    p99: quantile(kept, 0.99),
    p999: quantile(kept, 0.999),
    received: lat.length,
    errors: errors + missing,
    perRequest: rate <= 1000 ? 1 : Math.round(perTick),
    maxPerRequest,
  };
}

export async function measureE2e(rb: Raftbus, rounds: number, duration: number): Promise<E2eRow[]> {
  const per = RATES.map(() => [] as Awaited<ReturnType<typeof runOnce>>[]);
  for (let round = 1; round <= rounds; round++) {
    for (const [i, rate] of RATES.entries()) {
      per[i]!.push(
        await runOnce(rb, "e2e", rate, duration, `round ${round}/${rounds}, ${fmtInt(rate)} records/s`),
      );
    }
  }
  return RATES.map((rate, i) => {
    const rs = per[i]!;
    return {
      rate,
      perRequest: rs[0]!.perRequest,
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      p999: median(rs.map((r) => r.p999)),
      received: rs.reduce((s, r) => s + r.received, 0),
      errors: rs.reduce((s, r) => s + r.errors, 0),
    };
  });
}

export function e2eTable(rows: E2eRow[]): string {
  return table(
    ["offered records/s", "records/request", "p50 ms", "p99 ms", "p99.9 ms", "records received", "errors"],
    rows.map((r) => [
      fmtInt(r.rate),
      r.perRequest === 1 ? "1" : `~${r.perRequest} (1 ms linger)`,
      fmtMs(r.p50),
      fmtMs(r.p99),
      fmtMs(r.p999),
      fmtInt(r.received),
      r.errors,
    ]),
  );
}

async function main() {
  say(
    `bench:e2e: rates ${RATES.join(", ")} records/s, ${args.rounds} round(s) of ${args.duration} s${args.quick ? " (quick)" : ""}`,
  );
  const started = machine();
  const rb = await startRaftbus();
  try {
    await rb.createTopic("e2e");
    const rows = await measureE2e(rb, args.rounds, args.duration);
    const t = e2eTable(rows);
    say(`\n${t}\n`);
    const errors = rows.reduce((s, r) => s + r.errors, 0);
    if (args.write) {
      writeResultsSection(
        "<!-- bench:e2e -->",
        "<!-- /bench:e2e -->",
        "## End-to-end latency, produce to WebSocket delivery (bench/e2e.ts)",
        [
          `Command: ${commandLine("bench:e2e", args)}  `,
          `Machine: ${started}`,
          "",
          "From the start of a POST to the leader (JSON records of ~100 bytes) until a WebSocket subscriber on a",
          "follower (`from=latest`) receives the record; one clock (the benchmark process). Open loop at the",
          "offered rate. Each record is committed on a majority (fsync) and applied on the follower before it is",
          "sent. Medians over rounds of each round's percentiles; the first 10% of each run is warm-up.",
          "",
          t,
          "",
          `Errors (failed requests or records never received): ${errors}.`,
        ].join("\n"),
      );
    }
    saveFigures("e2e", {
      errors,
      ...Object.fromEntries(
        rows.flatMap((r) => [
          [`p50_${r.rate}`, r.p50],
          [`p99_${r.rate}`, r.p99],
        ]),
      ),
    });
    if (errors > 0) throw new Error(`${errors} e2e errors`);
  } finally {
    await rb.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
