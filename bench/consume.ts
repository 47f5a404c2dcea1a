// bench:consume — reading a topic of N (default 1M) 100-byte records, on a follower
// of a 3-node raftbus cluster: (a) one WebSocket subscriber from earliest, (b) HTTP
// fetch pages (limit 10000) one after the other, (c) 8 concurrent WebSocket
// subscribers; and (d) a stalled subscriber: a WebSocket that stops reading while
// producing continues, with the serving node's RSS sampled over time (the
// server must pause it, never buffer without bound), then resumes and must get
// every record without gaps.
// Readers check offsets are contiguous (no gap, no repeat) and parse every frame.
//
//   npm run bench:consume [-- --records 1000000 --rounds 3 --duration 8] [--quick] [--no-write]

import http from "node:http";
import WebSocket from "ws";
import {
  commandLine,
  fmtInt,
  machine,
  median,
  parseArgs,
  populate,
  produceLoad,
  type Raftbus,
  RECORD_BYTES,
  type ReadResult,
  rssMiB,
  runMain,
  saveFigures,
  say,
  sleep,
  startRaftbus,
  table,
  wsRead,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

const args = parseArgs({ rounds: 3, duration: 8 });
const RECORDS = Number(args.extra.get("records") ?? (args.quick ? 20_000 : 1_000_000));
const SUBSCRIBERS = 8;
const TOPIC = "consume";

function wsUrl(rb: Raftbus, id: number, q: string): string {
  return rb.url(id, `/v1/topics/${TOPIC}/subscribe?${q}`).replace(/^http/, "ws");
}

async function fetchRead(rb: Raftbus, id: number, n: number): Promise<ReadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const base = new URL(rb.url(id, `/v1/topics/${TOPIC}/partitions/0/records`));
  let offset = 0;
  let bytes = 0;
  let errors = 0;
  const t0 = performance.now();
  while (offset < n) {
    const text = await new Promise<string>((resolve, reject) => {
      http
        .get(
          {
            host: base.hostname,
            port: base.port,
            path: `${base.pathname}?offset=${offset}&limit=10000`,
            agent,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              res.statusCode === 200
                ? resolve(Buffer.concat(chunks).toString())
                : reject(new Error(`fetch: HTTP ${res.statusCode}`)),
            );
          },
        )
        .on("error", reject);
    });
    bytes += text.length;
    const page = JSON.parse(text) as { records: { offset: number }[]; nextOffset: number };
    for (const r of page.records) {
      if (r.offset !== offset) errors++;
      offset = r.offset + 1;
    }
    if (page.records.length === 0) break;
  }
  agent.destroy();
  return { records: offset, seconds: (performance.now() - t0) / 1000, wireBytes: bytes, errors };
}

interface ConsumeFigures {
  ws: ReadResult[];
  fetch: ReadResult[];
  fan: { records: number; seconds: number; errors: number }[];
}

const rate = (r: { records: number; seconds: number }) => r.records / r.seconds;

export async function measureConsume(rb: Raftbus, rounds: number): Promise<ConsumeFigures> {
  const f: ConsumeFigures = { ws: [], fetch: [], fan: [] };
  const follower = rb.followers[0]!;
  // Wait until the follower has applied everything.
  for (let i = 0; ; i++) {
    const t = await rb.cluster.json<{ partitions: { endOffset: number }[] }>(follower, `/v1/topics/${TOPIC}`);
    if (t.body.partitions[0]!.endOffset >= RECORDS) break;
    if (i > 1000) throw new Error("the follower never caught up");
    await sleep(20);
  }
  for (let round = 1; round <= rounds; round++) {
    const label = `round ${round}/${rounds}`;
    const w = await wsRead(wsUrl(rb, follower, "partition=0&from=earliest"), RECORDS, (got) => {
      if (got % 100_000 < 1000) process.stdout.write(`\r    ${label}, 1 WebSocket: ${fmtInt(got)}      `);
    });
    process.stdout.write(`\r    ${label}, 1 WebSocket: ${fmtInt(rate(w))} records/s      \n`);
    f.ws.push(w);
    const h = await fetchRead(rb, follower, RECORDS);
    say(`    ${label}, HTTP fetch pages: ${fmtInt(rate(h))} records/s`);
    f.fetch.push(h);
    const t0 = performance.now();
    const all = await Promise.all(
      Array.from({ length: SUBSCRIBERS }, () =>
        wsRead(wsUrl(rb, follower, "partition=0&from=earliest"), RECORDS),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    const fan = {
      records: all.reduce((s, r) => s + r.records, 0),
      seconds,
      errors: all.reduce((s, r) => s + r.errors, 0),
    };
    say(`    ${label}, ${SUBSCRIBERS} WebSockets: ${fmtInt(rate(fan))} records/s in total`);
    f.fan.push(fan);
  }
  return f;
}

export interface StallFigures {
  samples: { t: number; rssMiB: number; produced: number }[];
  baselineMiB: number;
  produced: number;
  resumedOk: boolean;
  errors: number;
}

/** A subscriber that stops reading while producing continues; RSS of its node over time. */
export async function measureStall(rb: Raftbus, seconds: number): Promise<StallFigures> {
  const node = rb.followers[0]!;
  const pid = rb.pid(node);
  const baselineMiB = rssMiB(pid);
  const start = (await rb.cluster.json<{ partitions: { endOffset: number }[] }>(node, `/v1/topics/${TOPIC}`))
    .body.partitions[0]!.endOffset;
  const ws = new WebSocket(wsUrl(rb, node, "partition=0&from=earliest"));
  let got = 0;
  let next = 0;
  let gaps = 0;
  ws.on("message", (data: Buffer) => {
    const f = JSON.parse(data.toString()) as { type: string; records?: { offset: number }[] };
    if (f.type !== "records") return;
    for (const r of f.records!) {
      if (r.offset !== next) gaps++;
      next = r.offset + 1;
    }
    got += f.records!.length;
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  // Let it read a little, then stop reading: the socket's receive side is paused, so
  // the kernel buffers fill and the server sees its send buffer grow.
  await sleep(200);
  ws.pause();
  say(`    stalled subscriber on node ${node} after ${fmtInt(got)} records; producing for ${seconds} s`);
  const samples: StallFigures["samples"] = [];
  const t0 = performance.now();
  const sampler = setInterval(() => {
    samples.push({ t: (performance.now() - t0) / 1000, rssMiB: rssMiB(pid), produced: 0 });
  }, 500);
  const load = await produceLoad({
    url: rb.url(rb.leader, `/v1/topics/${TOPIC}/records`),
    connections: 16,
    duration: seconds,
    perRequest: 100,
    label: "producing while the subscriber is stalled",
  });
  clearInterval(sampler);
  samples.push({ t: (performance.now() - t0) / 1000, rssMiB: rssMiB(pid), produced: 0 });
  const produced = load.requests * 100;
  const end = start + produced;
  say(`    produced ${fmtInt(produced)} records while stalled; resuming the subscriber`);
  ws.resume();
  const deadline = performance.now() + 120_000;
  while (next < end && performance.now() < deadline) await sleep(50);
  ws.close();
  return { samples, baselineMiB, produced, resumedOk: next >= end && gaps === 0, errors: load.errors + gaps };
}

async function main() {
  say(`bench:consume: ${fmtInt(RECORDS)} records, ${args.rounds} round(s)${args.quick ? " (quick)" : ""}`);
  const started = machine();
  const rb = await startRaftbus();
  try {
    await rb.createTopic(TOPIC);
    await populate(rb, TOPIC, RECORDS);
    const f = await measureConsume(rb, args.rounds);
    const stall = await measureStall(rb, args.quick ? 2 : Math.max(10, args.duration * 2));
    const mb = (r: ReadResult) => r.wireBytes / r.seconds / 1e6;
    const payloadMb = (r: { records: number; seconds: number }) => (rate(r) * RECORD_BYTES) / 1e6;
    const med = <T>(xs: T[], g: (x: T) => number) => median(xs.map(g));
    const t = table(
      ["reader (on a follower)", "records/s", "payload MB/s", "wire MB/s", "errors"],
      [
        [
          "1 WebSocket, from earliest",
          fmtInt(med(f.ws, rate)),
          med(f.ws, payloadMb).toFixed(1),
          med(f.ws, mb).toFixed(1),
          f.ws.reduce((s, r) => s + r.errors, 0),
        ],
        [
          "HTTP fetch, pages of 10000, one at a time",
          fmtInt(med(f.fetch, rate)),
          med(f.fetch, payloadMb).toFixed(1),
          med(f.fetch, mb).toFixed(1),
          f.fetch.reduce((s, r) => s + r.errors, 0),
        ],
        [
          `${SUBSCRIBERS} WebSockets at once (total)`,
          fmtInt(med(f.fan, rate)),
          med(f.fan, payloadMb).toFixed(1),
          "",
          f.fan.reduce((s, r) => s + r.errors, 0),
        ],
      ],
    );
    const peak = Math.max(...stall.samples.map((s) => s.rssMiB));
    const st = table(
      [
        "t (s)",
        ...stall.samples
          .filter((_, i) => i % 2 === 0 || i === stall.samples.length - 1)
          .map((s) => s.t.toFixed(1)),
      ],
      [
        [
          "RSS MiB",
          ...stall.samples
            .filter((_, i) => i % 2 === 0 || i === stall.samples.length - 1)
            .map((s) => s.rssMiB.toFixed(0)),
        ],
      ],
    );
    const errors =
      f.ws.reduce((s, r) => s + r.errors, 0) +
      f.fetch.reduce((s, r) => s + r.errors, 0) +
      f.fan.reduce((s, r) => s + r.errors, 0) +
      stall.errors +
      (stall.resumedOk ? 0 : 1);
    const stallText = [
      `Stalled subscriber: RSS of the serving follower before ${stall.baselineMiB.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB while ${fmtInt(stall.produced)} records (${((stall.produced * RECORD_BYTES) / 1e6).toFixed(0)} MB of payload) were produced past it; after resuming it ${stall.resumedOk ? "received every record, without gaps" : "did NOT receive every record"}.`,
      "",
      st,
    ].join("\n");
    say(`\n${t}\n\n${stallText}\n`);
    if (args.write) {
      writeResultsSection(
        "<!-- bench:consume -->",
        "<!-- /bench:consume -->",
        "## Consume (bench/consume.ts)",
        [
          `Command: ${commandLine("bench:consume", args)} (${fmtInt(RECORDS)} records)  `,
          `Machine: ${started}`,
          "",
          `A topic of ${fmtInt(RECORDS)} records of 100 bytes (produced as bytes, 1000 per request), read on a follower`,
          "of a 3-node cluster by clients in the benchmark process, which parse every frame or page and check that",
          "offsets are contiguous. Payload MB/s counts 100 bytes per record; wire MB/s the JSON received",
          "(records carry `valueBase64`). Medians over rounds.",
          "",
          t,
          "",
          stallText,
          "",
          `Errors (gaps, repeats, failed requests): ${errors}.`,
        ].join("\n"),
      );
    }
    saveFigures("consume", {
      ws: med(f.ws, rate),
      fetch: med(f.fetch, rate),
      fan: med(f.fan, rate),
      rssBefore: stall.baselineMiB,
      rssPeak: peak,
      stalledProducedMB: (stall.produced * RECORD_BYTES) / 1e6,
      resumedOk: stall.resumedOk,
      errors,
    });
    if (errors > 0) throw new Error(`${errors} consume errors`);
  } finally {
    await rb.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
