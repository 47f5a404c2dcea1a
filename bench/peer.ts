// bench:peer — raftbus against NATS JetStream on the same machine, in one run:
// a 3-node raftbus cluster and a 3-node JetStream cluster (nats-server, R3 stream,
// file storage) on loopback, both started and stopped by this script, loaded in
// alternation, round after round; figures are medians over rounds and the ratio
// raftbus/JetStream is of medians measured in this run.
//
// Durability is not equal, in JetStream's favour: raftbus acknowledges a record
// only after it is fsynced on a majority; nats-server 2.9 has no sync_interval
// option (added in 2.10): JetStream's file store acknowledges once a majority has
// written the message to the OS, and fsyncs in the background every 2 minutes.
//
// Workloads (100-byte records; raftbus through autocannon, JetStream through the
// `nats` client in this process, each on the leader/any server):
//   - one record per request with 64 in flight (raftbus: 64 connections;
//     JetStream: 64 concurrent `js.publish` awaiting their acks), and JetStream
//     with 256 in flight;
//   - 100 records per request with 64 requests in flight (JetStream: 64 workers
//     each publishing 100 messages and awaiting all 100 acks: 6400 in flight);
//   - sequential: one at a time, latency;
//   - consume: N records read from earliest by one raftbus WebSocket on a follower
//     and by a JetStream ordered consumer.
//
//   npm run bench:peer [-- --rounds 3 --duration 8 --consume-records 200000] [--quick] [--no-write]

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type JetStreamClient, type NatsConnection, StorageType } from "nats";
import { freePort } from "../test/node/proc-cluster.ts";
import {
  commandLine,
  fmtInt,
  fmtMs,
  fmtRatio,
  type LoadResult,
  machine,
  median,
  medianLoad,
  onCleanup,
  parseArgs,
  populate,
  produceLoad,
  quantile,
  RECORD_BYTES,
  runMain,
  saveFigures,
  say,
  sequentialProduce,
  sleep,
  startRaftbus,
  table,
  trackChild,
  trackDir,
  wsRead,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

const args = parseArgs({ rounds: 3, duration: 8 });
const CONSUME_RECORDS = Number(args.extra.get("consume-records") ?? (args.quick ? 10_000 : 200_000));
const NATS_BIN = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";
const STREAM = "BENCH";
const SUBJECT = "bench.records";
const payload = new Uint8Array(RECORD_BYTES).fill(120);

// ---- a 3-node JetStream cluster --------------------------------------------------------

interface Jet {
  nc: NatsConnection;
  js: JetStreamClient;
  version: string;
  stop(): Promise<void>;
}

async function startJetStream(): Promise<Jet> {
  if (!existsSync(NATS_BIN)) throw new Error(`${NATS_BIN} not found: apt-get install -y nats-server`);
  const version = execFileSync(NATS_BIN, ["--version"]).toString().trim();
  const root = mkdtempSync(join(tmpdir(), "raftbus-bench-nats-"));
  trackDir(root);
  const nodes = [];
  for (let i = 1; i <= 3; i++) nodes.push({ i, client: await freePort(), route: await freePort() });
  const procs: ChildProcess[] = [];
  for (const n of nodes) {
    const conf = join(root, `n${n.i}.conf`);
    writeFileSync(
      conf,
      [
        `server_name: n${n.i}`,
        `listen: 127.0.0.1:${n.client}`,
        `jetstream { store_dir: "${join(root, `n${n.i}`)}", max_memory_store: 268435456, max_file_store: 17179869184 }`,
        "cluster {",
        "  name: bench",
        `  listen: 127.0.0.1:${n.route}`,
        `  routes: [${nodes.map((m) => `nats-route://127.0.0.1:${m.route}`).join(", ")}]`,
        "}",
      ].join("\n"),
    );
    const p = spawn(NATS_BIN, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    const log: string[] = [];
    p.stderr?.on("data", (b: Buffer) => {
      log.push(b.toString());
      if (log.length > 50) log.shift();
    });
    trackChild(p);
    procs.push(p);
  }
  const stop = async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once("exit", () => resolve());
            p.kill("SIGKILL");
          }),
      ),
    );
  };
  const unregister = onCleanup(stop);
  say(`  starting a 3-node JetStream cluster (${version}, R3, file storage)...`);
  const t0 = Date.now();
  let nc: NatsConnection | undefined;
  for (;;) {
    try {
      nc = await connect({ servers: nodes.map((n) => `127.0.0.1:${n.client}`), maxReconnectAttempts: -1 });
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({
        name: STREAM,
        subjects: [SUBJECT],
        storage: StorageType.File,
        num_replicas: 3,
      });
      break;
    } catch (e) {
      await nc?.close().catch(() => {});
      nc = undefined;
      if (Date.now() - t0 > 30_000) throw new Error(`JetStream did not come up: ${(e as Error).message}`);
      await sleep(200);
    }
  }
  say(`  JetStream up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return {
    nc,
    js: nc.jetstream(),
    version,
    async stop() {
      unregister();
      await nc.close().catch(() => {});
      await stop();
    },
  };
}

/** `workers` loops, each publishing `perRequest` messages at once and awaiting their acks. */
async function jsLoad(
  js: JetStreamClient,
  workers: number,
  perRequest: number,
  seconds: number,
  label: string,
): Promise<LoadResult & { latencies: Float64Array }> {
  let ok = 0;
  let errors = 0;
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let nextPrint = t0 + 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const s = performance.now();
      try {
        if (perRequest === 1) await js.publish(SUBJECT, payload);
        else await Promise.all(Array.from({ length: perRequest }, () => js.publish(SUBJECT, payload)));
        ok++;
        const now = performance.now();
        lat.push(now - s);
        if (now > nextPrint) {
          nextPrint += 1000;
          process.stdout.write(
            `\r    ${label}: ${Math.round((now - t0) / 1000)}/${seconds} s, ${fmtInt(ok)} acks      `,
          );
        }
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const dt = (performance.now() - t0) / 1000;
  process.stdout.write("\n");
  const sorted = Float64Array.from(lat).sort();
  return {
    recordsPerSec: (ok * perRequest) / dt,
    requestsPerSec: ok / dt,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    p999: quantile(sorted, 0.999),
    errors,
    requests: ok,
    latencies: sorted,
  };
}

/** Reads the first n messages of the stream with an ordered consumer; messages/s. */
async function jsConsume(
  js: JetStreamClient,
  n: number,
): Promise<{ records: number; seconds: number; errors: number }> {
  const c = await js.consumers.get(STREAM); // ordered consumer, from the first message
  const t0 = performance.now();
  const iter = await c.consume({ max_messages: 10_000 });
  let got = 0;
  let errors = 0;
  let expect = 1;
  for await (const m of iter) {
    if (m.seq !== expect) errors++;
    expect = m.seq + 1;
    if (++got >= n) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  await iter.close();
  return { records: got, seconds, errors };
}

async function jsPopulate(js: JetStreamClient, n: number): Promise<void> {
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      const k = Math.min(100, n - sent);
      sent += k;
      await Promise.all(Array.from({ length: k }, () => js.publish(SUBJECT, payload)));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

// ---- the comparison --------------------------------------------------------------------

interface Pair {
  name: string;
  rb: LoadResult[];
  jet: LoadResult[];
}

async function main() {
  say(
    `bench:peer: raftbus vs JetStream, ${args.rounds} round(s) of ${args.duration} s per workload${args.quick ? " (quick)" : ""}`,
  );
  const started = machine();
  const rb = await startRaftbus();
  let jet: Jet | undefined;
  try {
    jet = await startJetStream();
    await rb.createTopic("bench");
    await rb.createTopic("consume");
    const url = rb.url(rb.leader, "/v1/topics/bench/records");
    const d = args.duration;
    const pairs: Pair[] = [
      { name: "1 record/request, 64 in flight", rb: [], jet: [] },
      { name: "1 record/request, raftbus 64 conns vs JetStream 256 in flight", rb: [], jet: [] },
      { name: "100 records/request, 64 requests in flight", rb: [], jet: [] },
      { name: "sequential (1 in flight)", rb: [], jet: [] },
    ];
    for (let round = 1; round <= args.rounds; round++) {
      const L = (s: string) => `round ${round}/${args.rounds}, ${s}`;
      const r64 = await produceLoad({
        url,
        connections: 64,
        duration: d,
        perRequest: 1,
        label: L("raftbus 1/request, 64 conns"),
      });
      pairs[0]!.rb.push(r64);
      pairs[1]!.rb.push(r64);
      pairs[0]!.jet.push(await jsLoad(jet.js, 64, 1, d, L("JetStream 1/publish, 64 in flight")));
      pairs[1]!.jet.push(await jsLoad(jet.js, 256, 1, d, L("JetStream 1/publish, 256 in flight")));
      pairs[2]!.rb.push(
        await produceLoad({
          url,
          connections: 64,
          duration: d,
          perRequest: 100,
          label: L("raftbus 100/request, 64 conns"),
        }),
      );
      pairs[2]!.jet.push(await jsLoad(jet.js, 64, 100, d, L("JetStream 64 × 100 publishes in flight")));
      const s = await sequentialProduce(url, d, L("raftbus sequential"));
      const js1 = await jsLoad(jet.js, 1, 1, d, L("JetStream sequential"));
      pairs[3]!.rb.push({
        recordsPerSec: s.latencies.length / d,
        requestsPerSec: s.latencies.length / d,
        p50: quantile(s.latencies, 0.5),
        p99: quantile(s.latencies, 0.99),
        p999: quantile(s.latencies, 0.999),
        errors: s.errors,
        requests: s.latencies.length,
      });
      pairs[3]!.jet.push(js1);
    }
    // Consume: the same number of records on each side, read from the start.
    say(`  consume: ${fmtInt(CONSUME_RECORDS)} records on each side`);
    await populate(rb, "consume", CONSUME_RECORDS);
    const before = (await jet.js.jetstreamManager()).streams.info(STREAM);
    const have = (await before).state.messages;
    if (have < CONSUME_RECORDS) await jsPopulate(jet.js, CONSUME_RECORDS - have);
    const follower = rb.followers[0]!;
    for (let i = 0; ; i++) {
      const t = await rb.cluster.json<{ partitions: { endOffset: number }[] }>(
        follower,
        "/v1/topics/consume",
      );
      if (t.body.partitions[0]!.endOffset >= CONSUME_RECORDS) break;
      if (i > 1000) throw new Error("the follower never caught up");
      await sleep(20);
    }
    say("  JetStream and the raftbus follower hold them; reading");
    const rbC: number[] = [];
    const jetC: number[] = [];
    let consumeErrors = 0;
    for (let round = 1; round <= args.rounds; round++) {
      const w = await wsRead(
        rb.url(follower, "/v1/topics/consume/subscribe?partition=0&from=earliest").replace(/^http/, "ws"),
        CONSUME_RECORDS,
      );
      rbC.push(w.records / w.seconds);
      consumeErrors += w.errors;
      const j = await jsConsume(jet.js, CONSUME_RECORDS);
      jetC.push(j.records / j.seconds);
      consumeErrors += j.errors;
      say(
        `    round ${round}/${args.rounds}, consume: raftbus ${fmtInt(rbC.at(-1)!)} records/s, JetStream ${fmtInt(jetC.at(-1)!)} msg/s`,
      );
    }

    const rows: (string | number)[][] = [];
    for (const p of pairs) {
      const a = medianLoad(p.rb);
      const b = medianLoad(p.jet);
      const seq = p.name.startsWith("sequential");
      rows.push([
        p.name,
        seq ? "p50 latency ms (lower is better)" : "acked records/s",
        seq ? fmtMs(a.p50) : fmtInt(a.recordsPerSec),
        seq ? fmtMs(b.p50) : fmtInt(b.recordsPerSec),
        seq ? fmtRatio(a.p50 / b.p50) : fmtRatio(a.recordsPerSec / b.recordsPerSec),
        `${a.errors} / ${b.errors}`,
      ]);
      rows.push([
        "",
        "p99 latency ms (lower is better)",
        fmtMs(a.p99),
        fmtMs(b.p99),
        fmtRatio(a.p99 / b.p99),
        "",
      ]);
    }
    rows.push([
      `consume ${fmtInt(CONSUME_RECORDS)} records from the start`,
      "records/s (raftbus: 1 WebSocket on a follower; JetStream: ordered consumer)",
      fmtInt(median(rbC)),
      fmtInt(median(jetC)),
      fmtRatio(median(rbC) / median(jetC)),
      consumeErrors,
    ]);
    const t = table(
      ["workload", "figure", "raftbus", "JetStream", "raftbus / JetStream", "errors (rb / JS)"],
      rows,
      [false, false, true, true, true, true],
    );
    const errors =
      pairs.reduce(
        (s, p) => s + p.rb.reduce((x, r) => x + r.errors, 0) + p.jet.reduce((x, r) => x + r.errors, 0),
        0,
      ) + consumeErrors;
    say(`\n${t}\n`);
    if (args.write) {
      writeResultsSection(
        "<!-- bench:peer -->",
        "<!-- /bench:peer -->",
        "## raftbus against NATS JetStream (bench/peer.ts)",
        [
          `Command: ${commandLine("bench:peer", args)} (consume: ${fmtInt(CONSUME_RECORDS)} records)  `,
          `Machine: ${started}  `,
          `Peer: ${jet.version}, 3 servers on loopback, one stream, R3, file storage.`,
          "",
          "**Durability is not equal, in JetStream's favour.** raftbus answers a produce only after the records are",
          "fsynced on a majority (one fsync per group commit on each node). nats-server 2.9 has no `sync_interval`",
          "option (it arrived in 2.10): JetStream's file store acknowledges once a majority has written the message to",
          "the OS page cache, and fsyncs in the background (every 2 minutes by default). A power cut of all three",
          "servers can lose acknowledged JetStream messages; not raftbus records.",
          "",
          "Both clusters run during the whole run on the same 2 cores; their workloads alternate within each round",
          "and every figure is a median over rounds of this run. raftbus load: autocannon (HTTP, 100-byte",
          "`application/octet-stream` records, or JSON bodies of 100 records) against the leader. JetStream load: the",
          "`nats` npm client in the benchmark process, `js.publish` of 100-byte messages, each awaiting its ack; 100",
          "records per request is 64 workers each publishing 100 messages and awaiting all 100 acks.",
          "",
          t,
          "",
          `Errors over every run: ${errors}.`,
        ].join("\n"),
      );
    }
    saveFigures("peer", {
      rbSingle: medianLoad(pairs[0]!.rb).recordsPerSec,
      jsSingle64: medianLoad(pairs[0]!.jet).recordsPerSec,
      jsSingle256: medianLoad(pairs[1]!.jet).recordsPerSec,
      rbBatch: medianLoad(pairs[2]!.rb).recordsPerSec,
      jsBatch: medianLoad(pairs[2]!.jet).recordsPerSec,
      rbSeqP50: medianLoad(pairs[3]!.rb).p50,
      jsSeqP50: medianLoad(pairs[3]!.jet).p50,
      rbConsume: median(rbC),
      jsConsume: median(jetC),
      errors,
    });
    if (errors > 0) throw new Error(`${errors} errors`);
  } finally {
    await jet?.stop();
    await rb.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
