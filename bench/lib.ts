// Shared pieces of the issue-8 benchmarks (produce, e2e, consume, peer, limits):
// options, a 3-node raftbus cluster that is always torn down, autocannon runs,
// medians, tables and process RSS.
//
// Every script takes:
//   --quick         seconds, not minutes: checks the scripts work, no timing value
//   --rounds N      alternating rounds (medians are over rounds)
//   --duration S    seconds per measurement
//   --no-write      print only; do not touch the results file
// and writes its section of bench/RESULTS.md (or of $RAFTBUS_BENCH_RESULTS).

import type { ChildProcess } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import WebSocket from "ws";
import { ProcCluster } from "../test/node/proc-cluster.ts";

export interface BenchArgs {
  quick: boolean;
  rounds: number;
  duration: number;
  write: boolean;
  /** `--name value` options not known here. */
  extra: Map<string, string>;
}

export function parseArgs(defaults: { rounds: number; duration: number }): BenchArgs {
  const argv = process.argv.slice(2);
  const a: BenchArgs = {
    quick: false,
    rounds: defaults.rounds,
    duration: defaults.duration,
    write: true,
    extra: new Map(),
  };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i]!;
    if (s === "--quick") a.quick = true;
    else if (s === "--no-write") a.write = false;
    else if (s === "--rounds") a.rounds = Number(argv[++i]);
    else if (s === "--duration") a.duration = Number(argv[++i]);
    else if (s.startsWith("--")) {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        a.extra.set(s.slice(2), next);
        i++;
      } else a.extra.set(s.slice(2), "true");
    }
  }
  if (a.quick) {
    if (!argv.includes("--rounds")) a.rounds = 1;
    if (!argv.includes("--duration")) a.duration = 1;
  }
  return a;
}

export function commandLine(script: string, a: BenchArgs): string {
  const parts = [`npm run ${script} --`];
  if (a.quick) parts.push("--quick");
  parts.push(`--rounds ${a.rounds}`, `--duration ${a.duration}`);
  return `\`${parts.join(" ")}\``;
}

export const say = (s: string) => process.stdout.write(`${s}\n`);
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** q in [0, 1] of an ascending array (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
export const fmtMs = (n: number) => (Number.isFinite(n) ? (n >= 10 ? n.toFixed(0) : n.toFixed(2)) : "–");
export const fmtRatio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : "–");
export const fmtPct = (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : "–");

export function table(
  head: string[],
  rows: (string | number)[][],
  right = head.map((_, i) => i > 0),
): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (right[i] ? "---:" : "---")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

export function machine(): string {
  return `nproc ${cpus().length}, ${cpus()[0]?.model ?? "?"}, node ${process.version}, ${new Date().toISOString()}; load average at start ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`;
}

/** Resident set size of a process in MiB (Linux /proc), NaN when unknown. */
export function rssMiB(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A kB field of /proc/<pid>/status (e.g. "RssAnon", "VmRSS", "VmHWM"), NaN when unknown. */
export function procStatusKiB(pid: number | undefined, field: string): number {
  if (!pid) return Number.NaN;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

// ---- cleanup of everything a benchmark starts, even on failure or Ctrl-C -----------------

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
const asyncCleanups = new Set<() => Promise<void>>();

export function trackChild(p: ChildProcess): void {
  children.add(p);
  p.once("exit", () => children.delete(p));
}
export function trackDir(d: string): void {
  dirs.add(d);
}
export function onCleanup(fn: () => Promise<void>): () => void {
  asyncCleanups.add(fn);
  return () => asyncCleanups.delete(fn);
}

function killAllSync(): void {
  for (const p of children) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
process.on("exit", killAllSync);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    say(`\n${sig}: stopping what this benchmark started`);
    void Promise.allSettled([...asyncCleanups].map((f) => f())).finally(() => {
      killAllSync();
      process.exit(130);
    });
  });
}

/** Runs main, prints a failure, and always exits (so stray handles never keep a run alive). */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}

// ---- a raftbus cluster --------------------------------------------------------------

export interface Raftbus {
  cluster: ProcCluster;
  leader: number;
  followers: number[];
  url(id: number, path: string): string;
  pid(id: number): number | undefined;
  createTopic(name: string, partitions?: number): Promise<void>;
  /** Runtime counters of a node (/internal/status). */
  stats(id: number): Promise<{ batches: number; syncs: number; appliedEntries: number }>;
  /** A node's /internal/status (Raft status and runtime counters); undefined when it does not answer. */
  status(id: number): Promise<NodeStatus | undefined>;
  /** SIGTERM to a node; resolves once it exited (its data dir stays). */
  stopNode(id: number): Promise<{ code: number | null; ms: number }>;
  /** Starts a stopped node again (same id, addresses, --peers and data dir, plus `extra` flags) and tracks its process. */
  startNode(id: number, extra?: string[]): void;
  destroy(): Promise<void>;
}

/** The part of GET /internal/status the benchmarks read. */
export interface NodeStatus {
  id: number;
  term: number;
  leader: number;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  elections: number;
  /** The leader's view of each member's log (empty on other roles). */
  progress: { id: number; match: number; next: number; state: string }[];
  runtime: { batches: number; syncs: number; appliedEntries: number } & Record<string, number>;
}

export async function startRaftbus(extraArgs: string[] = []): Promise<Raftbus> {
  const cluster = await ProcCluster.create({ size: 3, extraArgs });
  trackDir(cluster.root);
  const destroy = async () => {
    await cluster.destroy();
  };
  const unregister = onCleanup(destroy);
  say("  starting a 3-node raftbus cluster (fsync on)...");
  cluster.startAll();
  for (const n of cluster.nodes.values()) if (n.proc) trackChild(n.proc);
  const t0 = Date.now();
  const leader = await cluster.waitForLeader();
  say(`  raftbus up in ${((Date.now() - t0) / 1000).toFixed(1)} s, leader is node ${leader}`);
  return {
    cluster,
    leader,
    followers: [...cluster.nodes.keys()].filter((id) => id !== leader),
    url: (id, path) => cluster.url(id, path),
    pid: (id) => cluster.get(id).proc?.pid,
    async createTopic(name, partitions = 1) {
      const r = await cluster.json(leader, "/v1/topics", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, partitions }),
      });
      if (r.status !== 201) throw new Error(`cannot create topic ${name}: ${JSON.stringify(r.body)}`);
      // Every node must know it before loading a follower.
      for (const id of cluster.nodes.keys()) {
        for (let i = 0; ; i++) {
          const t = await cluster.tryJson(id, `/v1/topics/${name}`);
          if (t?.status === 200) break;
          if (i > 200) throw new Error(`node ${id} does not know topic ${name}`);
          await sleep(20);
        }
      }
    },
    async stats(id) {
      const r = await cluster.json<{ runtime: { batches: number; syncs: number; appliedEntries: number } }>(
        id,
        "/internal/status",
      );
      return r.body.runtime;
    },
    async status(id) {
      const r = await cluster.tryJson<NodeStatus>(id, "/internal/status");
      return r?.status === 200 ? r.body : undefined;
    },
    stopNode: (id) => cluster.terminate(id),
    startNode(id, extra = []) {
      cluster.start(id, extra);
      const p = cluster.get(id).proc;
      if (p) trackChild(p);
    },
    async destroy() {
      unregister();
      await destroy();
    },
  };
}

// ---- produce load (autocannon) -------------------------------------------------------

/** One 100-byte record, as raw bytes. */
export const RECORD_BYTES = 100;
export const singleBody = Buffer.alloc(RECORD_BYTES, 120);
/** 100 records of 100 bytes of value (a 98-character JSON string) in one JSON request. */
export function batchBody(n: number): string {
  return JSON.stringify({
    records: Array.from({ length: n }, () => ({ value: "x".repeat(RECORD_BYTES - 2) })),
  });
}

export interface LoadResult {
  recordsPerSec: number;
  requestsPerSec: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  requests: number;
}

export async function produceLoad(o: {
  url: string | string[];
  connections: number;
  duration: number;
  perRequest: number;
  label: string;
  body?: string | Buffer;
  contentType?: string;
}): Promise<LoadResult> {
  const single = o.perRequest === 1;
  const inst = autocannon({
    url: o.url,
    method: "POST",
    headers: {
      "content-type": o.contentType ?? (single ? "application/octet-stream" : "application/json"),
    },
    body: o.body ?? (single ? singleBody : batchBody(o.perRequest)),
    connections: o.connections,
    duration: o.duration,
    timeout: 20,
  });
  let seconds = 0;
  inst.on("tick", (c) => {
    seconds++;
    process.stdout.write(`\r    ${o.label}: ${seconds}/${o.duration} s, ${c.counter} req/s      `);
  });
  const r = await inst;
  process.stdout.write("\n");
  const ok = r["2xx"];
  return {
    recordsPerSec: (ok * o.perRequest) / r.duration,
    requestsPerSec: ok / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    p999: r.latency.p99_9,
    errors: r.errors + r.timeouts + r.non2xx,
    requests: ok,
  };
}

/** Medians of several LoadResults; errors are summed. */
export function medianLoad(rs: LoadResult[]): LoadResult {
  const m = (f: (r: LoadResult) => number) => median(rs.map(f));
  return {
    recordsPerSec: m((r) => r.recordsPerSec),
    requestsPerSec: m((r) => r.requestsPerSec),
    p50: m((r) => r.p50),
    p99: m((r) => r.p99),
    p999: m((r) => r.p999),
    errors: rs.reduce((s, r) => s + r.errors, 0),
    requests: rs.reduce((s, r) => s + r.requests, 0),
  };
}

/**
 * POSTs `body` to `url` on a keep-alive agent; resolves with the answer's
 * status once it is read (0 for a connection error), never rejects.
 */
export function postStatus(
  agent: http.Agent,
  url: URL,
  body: string | Buffer,
  contentType: string,
): Promise<number> {
  return new Promise<number>((resolve) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        agent,
        headers: { "content-type": contentType, "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", () => resolve(0));
    req.end(body);
  });
}

/** Sequential produce: one request at a time, latency of each in ms (high resolution). */
export async function sequentialProduce(
  url: string,
  seconds: number,
  label: string,
): Promise<{ latencies: Float64Array; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const u = new URL(url);
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  let nextTick = performance.now() + 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    const status = await postStatus(agent, u, singleBody, "application/octet-stream");
    lat.push(performance.now() - t0);
    if (status !== 200) errors++;
    if (performance.now() > nextTick) {
      nextTick += 1000;
      process.stdout.write(`\r    ${label}: ${lat.length} requests      `);
    }
  }
  process.stdout.write("\n");
  agent.destroy();
  return { latencies: Float64Array.from(lat).sort(), errors };
}

/** Result of an open-loop (paced) produce run. */
export interface PacedResult {
  /** Latencies of the 200s in ms, ascending, each from the request's scheduled send time. */
  latencies: Float64Array;
  /** Requests scheduled (the offered load). */
  sent: number;
  /** Answers other than 200, connection errors, and requests still unanswered 30 s after the end. */
  errors: number;
  seconds: number;
}

/**
 * Open-loop produce at a fixed offered rate: request i is due at t0 + i/rate
 * whatever the answers do, over `connections` keep-alive sockets (requests
 * queue in the agent when all are busy). A request's latency runs from its
 * scheduled time, so queueing behind a stalled server counts (no coordinated
 * omission). Runs `seconds`, then on while `extendWhile()` holds (at most
 * `maxSeconds`). `status()` adds to the progress line printed every second.
 */
export async function pacedProduce(o: {
  url: string;
  rate: number;
  seconds: number;
  connections: number;
  perRequest: number;
  label: string;
  extendWhile?: () => boolean;
  maxSeconds?: number;
  status?: () => string;
}): Promise<PacedResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections });
  const u = new URL(o.url);
  const single = o.perRequest === 1;
  const body = single ? singleBody : batchBody(o.perRequest);
  const contentType = single ? "application/octet-stream" : "application/json";
  const lat: number[] = [];
  let errors = 0;
  let sent = 0;
  let inFlight = 0;
  const t0 = performance.now();
  const minEnd = t0 + o.seconds * 1000;
  const maxEnd = t0 + Math.max(o.seconds, o.maxSeconds ?? o.seconds) * 1000;
  let end = 0;
  let nextPrint = t0 + 1000;
  const print = (now: number) =>
    process.stdout.write(
      `\r    ${o.label}: ${((now - t0) / 1000).toFixed(0)} s, ${fmtInt(sent)} requests, ${inFlight} in flight, ${errors} errors${o.status ? `, ${o.status()}` : ""}      `,
    );
  await new Promise<void>((resolve) => {
    // A 1 ms timer, not setImmediate: the pacer must not take a core from the nodes.
    const tick = () => {
      const now = performance.now();
      const due = Math.floor(((now - t0) * o.rate) / 1000);
      for (; sent < due; sent++) {
        const scheduled = t0 + (sent * 1000) / o.rate;
        inFlight++;
        void postStatus(agent, u, body, contentType).then((status) => {
          inFlight--;
          if (status === 200) lat.push(performance.now() - scheduled);
          else errors++;
        });
      }
      if (now >= nextPrint) {
        nextPrint += 1000;
        print(now);
      }
      const done = now >= maxEnd || (now >= minEnd && !(o.extendWhile?.() ?? false));
      if (done) {
        end = now;
        resolve();
      } else setTimeout(tick, 1);
    };
    tick();
  });
  const drainEnd = performance.now() + 30_000;
  while (inFlight > 0 && performance.now() < drainEnd) await sleep(5);
  errors += inFlight;
  print(performance.now());
  process.stdout.write("\n");
  agent.destroy();
  return { latencies: Float64Array.from(lat).sort(), sent, errors, seconds: (end - t0) / 1000 };
}

// ---- Prometheus metrics of a node --------------------------------------------------------

/** Samples of a Prometheus text exposition: `name` or `name{labels}` → value. */
export type MetricSamples = Map<string, number>;

export function parseMetrics(text: string): MetricSamples {
  const out: MetricSamples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?)\s+(\S+)/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** GET /metrics of a URL, parsed; undefined when it does not answer 200 within `timeoutMs`. */
export async function scrapeMetrics(url: string, timeoutMs = 5_000): Promise<MetricSamples | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return res.status === 200 ? parseMetrics(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The sum of a metric family's samples whose labels contain every `labels`
 * pair (all of them when none are given); undefined when the family has no sample.
 */
export function metricValue(
  samples: MetricSamples | undefined,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  if (!samples) return undefined;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum: number | undefined;
  for (const [key, v] of samples) {
    const brace = key.indexOf("{");
    if ((brace < 0 ? key : key.slice(0, brace)) !== name) continue;
    if (want.some((w) => !key.includes(w))) continue;
    sum = (sum ?? 0) + v;
  }
  return sum;
}

// ---- consume helpers -------------------------------------------------------------------

export interface ReadResult {
  records: number;
  seconds: number;
  wireBytes: number;
  errors: number;
}

/**
 * Produces `n` 100-byte records (bytes) in requests of 1000 records, 8 in flight
 * (or `opts.perRequest` records per request, `opts.concurrency` in flight, to
 * node `opts.node`: the leader by default). A request answered other than 200
 * fails it, or is sent again up to `opts.retries` times (100 ms apart, more each time).
 */
export async function populate(
  rb: Raftbus,
  topic: string,
  n: number,
  opts: { perRequest?: number; concurrency?: number; node?: number; retries?: number } = {},
): Promise<void> {
  const per = opts.perRequest ?? 1000;
  const concurrency = opts.concurrency ?? 8;
  const value = Buffer.alloc(RECORD_BYTES, 0).map((_, i) => (i * 31 + 7) & 0xff);
  const body = JSON.stringify({
    records: Array.from({ length: per }, () => ({ valueBase64: Buffer.from(value).toString("base64") })),
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const u = new URL(rb.url(opts.node ?? rb.leader, `/v1/topics/${topic}/records`));
  let done = 0;
  let next = 0;
  const t0 = performance.now();
  const post = async (count: number) => {
    const b = count === per ? body : JSON.stringify({ records: JSON.parse(body).records.slice(0, count) });
    let status = await postStatus(agent, u, b, "application/json");
    for (let i = 1; status !== 200 && i <= (opts.retries ?? 0); i++) {
      await sleep(100 * i);
      status = await postStatus(agent, u, b, "application/json");
    }
    if (status !== 200) throw new Error(`populate: HTTP ${status || "connection error"}`);
  };
  const worker = async () => {
    while (next < n) {
      const count = Math.min(per, n - next);
      next += count;
      await post(count);
      done += count;
      if (done % 100_000 < per)
        process.stdout.write(`\r    populating: ${fmtInt(done)}/${fmtInt(n)} records      `);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  process.stdout.write(
    `\r    populated ${fmtInt(n)} records in ${((performance.now() - t0) / 1000).toFixed(1)} s      \n`,
  );
}

/** One WebSocket from earliest until `n` records arrived; checks contiguity. */
export function wsRead(url: string, n: number, onProgress?: (got: number) => void): Promise<ReadResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let next = 0;
    let got = 0;
    let bytes = 0;
    let errors = 0;
    let t0 = 0;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`WebSocket read: ${got}/${n} records after 300 s`));
    }, 300_000);
    ws.once("open", () => {
      t0 = performance.now();
    });
    ws.on("message", (data: Buffer) => {
      bytes += data.length;
      const f = JSON.parse(data.toString()) as { type: string; records?: { offset: number }[] };
      if (f.type !== "records") return;
      for (const r of f.records!) {
        if (r.offset !== next) errors++;
        next = r.offset + 1;
      }
      got += f.records!.length;
      onProgress?.(got);
      if (got >= n) {
        clearTimeout(timer);
        const seconds = (performance.now() - t0) / 1000;
        ws.close();
        resolve({ records: got, seconds, wireBytes: bytes, errors });
      }
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// ---- figures for bench/all.ts's summary of the targets --------------------------------

/** Saves a script's headline figures where bench/all.ts collects them (when it runs the script). */
export function saveFigures(name: string, figures: Record<string, number | boolean>): void {
  const dir = process.env.RAFTBUS_BENCH_FIGURES;
  if (!dir) return;
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(figures));
}
