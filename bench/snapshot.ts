// bench:snapshot — issue 12's proof on a 3-node cluster with default node settings:
//
// 1. No stall: the topic is filled to --records (100-byte values, 100 records per
//    request); then, under a steady open-loop produce load (--rate requests/s of
//    --per-request records over --connections sockets), one follower is stopped
//    (SIGTERM), its data dir deleted and it is started empty, so that the leader
//    must send it the whole state. The same load window without any restart is
//    the baseline; the two alternate for --rounds rounds. Per window: produce
//    latency p50/p99/max, the max of nodejs_eventloop_lag_max_seconds of every
//    node (scraped every second: prom-client resets the histogram on each
//    scrape), term / elections / leader before and after, and how long the
//    follower took to answer /readyz 200 and to apply the leader's applied index.
//    --empty-restart rejoin (the default) removes it from the membership and adds
//    it back (same id and addresses) first, as an operator replaces a node whose
//    disk was lost: the Raft core never sends anything to a voter whose log is
//    shorter than what it acknowledged. --empty-restart wipe restarts it with the
//    same flags only: it is then reported stuck, and leadership is moved to the
//    other follower so that the run goes on.
// 2. Memory does not grow with data: each node's RssAnon at --max-records/10,
//    --records and --max-records records, and the max seen over the whole run.
// 3. Catch-up sends the gap: a follower stopped (data kept) while --gap-records
//    are produced, then started: snapshot or log, bytes sent (the leader's
//    raftbus_snapshot_bytes_sent_total) vs the bytes it lacked (the growth of the
//    leader's partition digests), catch-up time and MB/s, and whether its copy
//    then equals the leader's; then the same past the leader's log compaction
//    (--compacted-gap-records).
//
// The log is compacted only up to a local snapshot (every 100,000 entries by
// default) and one request is one entry, so where a compacted log is needed the
// benchmark pads it with single-record requests (--pad on|off).
//
//   npm run bench:snapshot [-- --records 5000000 --max-records 10000000 --rounds 2 --duration 30]
//                          [--rate 500 --per-request 10 --connections 16] [--empty-restart wipe|rejoin]
//                          [--quick] [--no-write]
//
// Nodes run with the node's defaults (any RAFTBUS_* node variable in the
// environment is ignored). RAFTBUS_BENCH_NODE_ARGS="..." adds node flags for
// developing this script only: the output then says the figures are not issue
// 12's proof, and no verdict is given.

import { rmSync } from "node:fs";
import { resolveNodeOptions } from "../src/cli/options.ts";
import {
  fmtInt,
  fmtMs,
  type MetricSamples,
  machine,
  median,
  metricValue,
  type NodeStatus,
  type PacedResult,
  pacedProduce,
  parseArgs,
  populate,
  procStatusKiB,
  quantile,
  type Raftbus,
  RECORD_BYTES,
  runMain,
  saveFigures,
  say,
  scrapeMetrics,
  sleep,
  startRaftbus,
  table,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

// ---- options -------------------------------------------------------------------------

const args = parseArgs({ rounds: 2, duration: 30 });
const Q = args.quick;
if (Q && !process.argv.includes("--duration")) args.duration = 4;
const num = (name: string, def: number) => {
  const v = args.extra.get(name);
  if (v === undefined) return def;
  const n = Number(v.replace(/_/g, ""));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got "${v}"`);
  return n;
};
const RECORDS = num("records", Q ? 50_000 : 5_000_000);
const MAX_RECORDS = Math.max(RECORDS, num("max-records", Q ? 100_000 : 10_000_000));
const GAP = num("gap-records", Q ? 20_000 : 1_000_000);
const GAP_COMPACTED = num("compacted-gap-records", Q ? 30_000 : 2_500_000);
const RATE = num("rate", 500);
const PER_REQUEST = num("per-request", 10);
const CONNECTIONS = num("connections", 16);
const PARTITIONS = num("partitions", 1);
const FILL_PER_REQUEST = 100;
const FILL_CONCURRENCY = num("fill-concurrency", 16);
/** Catch-up must finish within this (the restart window's load runs on until then). */
const CATCH_UP_TIMEOUT_S = num("catch-up-timeout", Q ? 60 : 300);
/**
 * A restarted follower is stuck when the leader probes it at an index past the end of
 * its log for this long: the Raft core never moves a follower's next below its match + 1,
 * so a voter that lost its log is never sent anything (until the leader changes).
 */
const STUCK_S = Q ? 5 : 15;
const TOPIC = "snap";
/**
 * How a follower is "restarted empty": `wipe` stops it, deletes its data dir and
 * starts it with the same flags; `rejoin` also removes it from the membership and
 * adds it back as a voter (same id and addresses) before starting it with --join,
 * so that the leader tracks it afresh.
 */
const EMPTY_MODE = args.extra.get("empty-restart") ?? "rejoin";
if (EMPTY_MODE !== "wipe" && EMPTY_MODE !== "rejoin")
  throw new Error(`--empty-restart: wipe or rejoin, got "${EMPTY_MODE}"`);
/**
 * The log is compacted only up to the last local snapshot, taken every
 * --snapshot-entries (default 100,000) applied entries, and one produce request
 * is one entry: 5 M records in requests of 100 are 50,000 entries. Where the
 * benchmark needs a compacted log, it pads it with single-record requests
 * (--pad on|off; on by default, off with --quick).
 */
const PAD = (args.extra.get("pad") ?? (Q ? "off" : "on")) === "on";
const PAD_CHUNK = 25_000;
const PAD_MAX_ENTRIES = num("pad-max-entries", 150_000);

// Targets (issue 12).
const RSS_BOUND_MIB = 300;
const LOOP_BOUND_MS = 20;
const P99_SLACK_RATIO = 0.1;
const P99_SLACK_MS = 5;
const BYTES_RATIO_SLACK = 0.1;
const MBPS_TARGET = 50;

// Default node settings only: drop RAFTBUS_* node variables (e.g. RAFTBUS_SNAPSHOT_ENTRIES,
// which earlier benchmark runs set) so the nodes this starts cannot inherit them.
const ignoredEnv: string[] = [];
for (const k of Object.keys(process.env)) {
  if (k.startsWith("RAFTBUS_") && !k.startsWith("RAFTBUS_BENCH_")) {
    ignoredEnv.push(`${k}=${process.env[k]}`);
    delete process.env[k];
  }
}
const devNodeArgs = (process.env.RAFTBUS_BENCH_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);
const DEFAULTS = devNodeArgs.length === 0;
/** The test harness (ProcCluster) passes --tick-ms 20; put the node's own default back. */
const DEFAULT_TICK_MS = resolveNodeOptions({ id: "1" }).tickMs;

// ---- small helpers ---------------------------------------------------------------------

const t0Run = Date.now();
const elapsed = () => `${((Date.now() - t0Run) / 1000).toFixed(0)} s`;
const secs = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "–");
/** "caught up after" of a restart, or why it did not. */
const caughtCell = (c: CatchUp) =>
  Number.isFinite(c.caughtUpMs)
    ? secs(c.caughtUpMs)
    : c.stuck
      ? `never: stuck (${c.stuck})${c.recoveredMs === undefined ? "" : `; caught up ${secs(c.recoveredMs)} after a leadership transfer`}`
      : `not within ${CATCH_UP_TIMEOUT_S} s`;
const mib = (kib: number) => (Number.isFinite(kib) ? (kib / 1024).toFixed(0) : "–");
const mb = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1e6).toFixed(1) : "–");
const verdict = (ok: boolean | undefined) =>
  !DEFAULTS
    ? "n/a (non-default node settings)"
    : ok === undefined
      ? "not measured"
      : ok
        ? "**met**"
        : "**missed**";

/**
 * Bytes the topic's records take as stored, from the batch format (src/broker/batch.ts,
 * version 1): per batch a 16-byte key and a 40-byte header, per record 21 bytes besides
 * its value (no key, no headers). One batch per request and partition it touches.
 */
function estimatedBytes(records: number, perRequest: number): number {
  const batches = Math.ceil(records / perRequest) * Math.min(PARTITIONS, perRequest);
  return records * (RECORD_BYTES + 21) + batches * (16 + 40);
}

interface Digest {
  /** Stored bytes of the topic's batches. */
  bytes: number;
  /** sha256 of each partition's stored batches. */
  sha: string[];
  applied: number;
}

let lastDigest: (Digest & { id: number }) | undefined;

/**
 * The topic's stored bytes and a fingerprint of its batches on a node, from GET
 * /v1/topics/:topic/partitions/:p/digest; undefined when the node has no such
 * route. It reads every batch (seconds for gigabytes): never inside a load window.
 */
async function topicDigest(rb: Raftbus, id: number): Promise<Digest | undefined> {
  const applied = (await rb.status(id))?.applied ?? -1;
  if (lastDigest?.id === id && lastDigest.applied === applied) return lastDigest;
  let bytes = 0;
  const sha: string[] = [];
  for (let p = 0; p < PARTITIONS; p++) {
    try {
      const res = await fetch(rb.url(id, `/v1/topics/${TOPIC}/partitions/${p}/digest`), {
        signal: AbortSignal.timeout(300_000),
      });
      const body = (await res.json()) as { bytes?: unknown; sha256?: unknown };
      if (res.status !== 200 || typeof body.bytes !== "number") return undefined;
      bytes += body.bytes;
      sha.push(String(body.sha256));
    } catch {
      return undefined;
    }
  }
  const d = { bytes, sha, applied };
  lastDigest = { ...d, id };
  return d;
}

const ids = (rb: Raftbus) => [...rb.cluster.nodes.keys()];
/** Nodes last started with --join (re-added by `--empty-restart rejoin`): restarted with it again. */
const joined = new Set<number>();

/** The leader the running nodes agree on. */
async function currentLeader(rb: Raftbus, running = ids(rb)): Promise<number> {
  return rb.cluster.waitForLeader(running, 30_000);
}

/** Waits until every node has applied the leader's applied index (nothing else producing). */
async function waitInSync(rb: Raftbus, leader: number, label: string, timeoutS = 120): Promise<void> {
  const target = (await rb.status(leader))?.applied ?? 0;
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const st = await Promise.all(ids(rb).map((id) => rb.status(id)));
    if (st.every((s) => s && s.applied >= target)) return;
    if (Date.now() > deadline)
      throw new Error(
        `${label}: nodes did not apply index ${target} within ${timeoutS} s: ${st.map((s) => s?.applied).join(", ")}`,
      );
    await sleep(200);
  }
}

// ---- memory: RssAnon of every node, every second, and at checkpoints -------------------

const rssMaxKiB = new Map<number, number>();
function startRssSampler(rb: Raftbus): () => void {
  const timer = setInterval(() => {
    for (const id of ids(rb)) {
      const v = procStatusKiB(rb.pid(id), "RssAnon");
      if (Number.isFinite(v)) rssMaxKiB.set(id, Math.max(rssMaxKiB.get(id) ?? 0, v));
    }
  }, 1000);
  return () => clearInterval(timer);
}

interface RssCheckpoint {
  records: number;
  kib: Map<number, number>;
}

// ---- a follower restart and its catch-up -------------------------------------------------

interface CatchUp {
  follower: number;
  wiped: boolean;
  stopMs: number;
  stopCode: number | null;
  /** From the start of the new process: /healthz answers, /readyz answers 200, applied >= target. */
  upMs: number;
  readyMs: number;
  caughtUpMs: number;
  target: number;
  applied: number;
  snapshotsInstalled: number;
  /** Why the leader would not send it anything, when it gave up on that. */
  stuck?: string;
  /** Caught up only after a leadership transfer (ms from the transfer), when stuck. */
  recoveredMs?: number;
}

/**
 * Stops `follower` (SIGTERM), deletes its data when `wipe`, starts it again and
 * follows it until it applied the leader's applied index as of the restart.
 * `live` is updated as it goes (for a progress line).
 */
async function restartFollower(
  rb: Raftbus,
  leader: number,
  follower: number,
  wipe: boolean,
  live: { phase: string; applied: number; target: number; done: boolean },
  afterStop?: () => Promise<void>,
): Promise<CatchUp> {
  live.phase = "stopping";
  const stop = await rb.stopNode(follower);
  if (wipe) rmSync(rb.cluster.get(follower).dataDir, { recursive: true, force: true });
  if (wipe && EMPTY_MODE === "rejoin") {
    live.phase = "removed and added back";
    const n = rb.cluster.get(follower);
    await membership(rb, leader, "DELETE", `/v1/cluster/members/${follower}`);
    await membership(rb, leader, "POST", "/v1/cluster/members", {
      id: follower,
      raft: `127.0.0.1:${n.raft}`,
      http: `127.0.0.1:${n.http}`,
      role: "voter",
    });
    joined.add(follower);
  }
  if (afterStop) {
    live.phase = "down";
    await afterStop();
  }
  const target = (await rb.status(leader))?.applied ?? Number.NaN;
  live.target = target;
  live.phase = wipe ? "starting empty" : "starting";
  const c: CatchUp = {
    follower,
    wiped: wipe,
    stopMs: stop.ms,
    stopCode: stop.code,
    upMs: Number.NaN,
    readyMs: Number.NaN,
    caughtUpMs: Number.NaN,
    target,
    applied: 0,
    snapshotsInstalled: 0,
  };
  const t0 = performance.now();
  rb.startNode(follower, joined.has(follower) ? ["--join"] : []);
  const deadline = t0 + CATCH_UP_TIMEOUT_S * 1000;
  let stuckSince: number | undefined;
  let nextLeaderPoll = 0;
  while (performance.now() < deadline) {
    const now = () => performance.now() - t0;
    if (!Number.isFinite(c.upMs)) {
      const h = await rb.cluster.tryJson(follower, "/healthz");
      if (h?.status === 200) c.upMs = now();
    }
    if (Number.isFinite(c.upMs)) {
      if (!Number.isFinite(c.readyMs)) {
        const r = await rb.cluster.tryJson(follower, "/readyz");
        if (r?.status === 200) c.readyMs = now();
      }
      const st = await rb.status(follower);
      if (st) {
        c.applied = st.applied;
        c.snapshotsInstalled = st.runtime.snapshotsInstalled ?? 0;
        live.applied = st.applied;
        live.phase = Number.isFinite(c.readyMs) ? "ready" : "up";
        if (st.applied >= target && !Number.isFinite(c.caughtUpMs)) c.caughtUpMs = now();
        if (!Number.isFinite(c.caughtUpMs) && now() >= nextLeaderPoll) {
          nextLeaderPoll = now() + 500;
          const pr = (await rb.status(leader))?.progress?.find((p) => p.id === follower);
          if (pr && pr.state === "probe" && pr.match > st.lastIndex) {
            stuckSince ??= now();
            if (now() - stuckSince > STUCK_S * 1000) {
              c.stuck = `the leader probes it at index ${fmtInt(pr.next)} (match ${fmtInt(pr.match)}) while its log ends at ${fmtInt(st.lastIndex)}, for ${STUCK_S} s`;
              break;
            }
          } else stuckSince = undefined;
        }
      }
      if (Number.isFinite(c.readyMs) && Number.isFinite(c.caughtUpMs)) break;
    }
    await sleep(100);
  }
  live.phase = Number.isFinite(c.caughtUpMs) ? "caught up" : c.stuck ? "STUCK" : "NOT caught up";
  live.done = true;
  return c;
}

async function membership(rb: Raftbus, leader: number, method: string, path: string, body?: unknown) {
  const r = await rb.cluster.tryJson(leader, path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  if (r?.status !== 200)
    throw new Error(`${method} ${path}: ${r?.status ?? "no answer"} ${JSON.stringify(r?.body)}`);
}

/**
 * After a stuck restart (measured as such): moves leadership to the other
 * follower, whose fresh view of the stuck one lets it catch up, so that the
 * rest of the run can go on. Records how long that took.
 */
async function recoverStuck(rb: Raftbus, leader: number, c: CatchUp): Promise<void> {
  const to = ids(rb).find((id) => id !== leader && id !== c.follower)!;
  say(`    node ${c.follower} is stuck (${c.stuck}); moving leadership to node ${to} to go on`);
  const t0 = performance.now();
  const r = await rb.cluster.tryJson(leader, "/v1/cluster/leader", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: to }),
  });
  if (r?.status !== 200) say(`    leadership transfer answered ${r?.status ?? "nothing"}`);
  const deadline = t0 + CATCH_UP_TIMEOUT_S * 1000;
  for (;;) {
    const l = await currentLeader(rb);
    const target = (await rb.status(l))?.applied ?? Number.POSITIVE_INFINITY;
    if (((await rb.status(c.follower))?.applied ?? 0) >= target) break;
    if (performance.now() > deadline)
      throw new Error(`node ${c.follower} did not catch up even after a leadership transfer`);
    await sleep(200);
  }
  c.recoveredMs = performance.now() - t0;
  say(`    node ${c.follower} caught up ${secs(c.recoveredMs)} after the leadership transfer`);
}

// ---- phase 1: load windows with and without a follower restart ----------------------------

interface RaftView {
  term: number | undefined;
  elections: number | undefined;
  leader: number | undefined;
}

async function raftViews(rb: Raftbus): Promise<Map<number, RaftView>> {
  const out = new Map<number, RaftView>();
  await Promise.all(
    ids(rb).map(async (id) => {
      const m = await scrapeMetrics(rb.url(id, "/metrics"));
      out.set(id, {
        term: metricValue(m, "raftbus_raft_term"),
        elections: metricValue(m, "raftbus_raft_elections_total"),
        leader: metricValue(m, "raftbus_raft_leader_id"),
      });
    }),
  );
  return out;
}

const SCRAPE_TIMEOUT_MS = 3_000;

/**
 * Scrapes /metrics of every node every second; keeps the max event-loop delay per
 * node. A scrape unanswered within SCRAPE_TIMEOUT_MS counts as that much delay (the
 * node still collects, and so resets, what it would have answered), except for
 * node `restarting` (down for part of the window).
 */
function startLoopWatch(
  rb: Raftbus,
  restarting?: number,
): { stop: () => Promise<Map<number, number>>; scrapes: () => number } {
  const max = new Map<number, number>();
  const seen = new Set<number>();
  let running = true;
  let scrapes = 0;
  const loop = (async () => {
    while (running) {
      const next = sleep(1000);
      await Promise.all(
        ids(rb).map(async (id) => {
          const pid = rb.pid(id);
          const m = await scrapeMetrics(rb.url(id, "/metrics"), SCRAPE_TIMEOUT_MS);
          if (m === undefined && id !== restarting && seen.has(pid ?? -id)) {
            max.set(id, Math.max(max.get(id) ?? 0, SCRAPE_TIMEOUT_MS));
            return;
          }
          const v = metricValue(m, "nodejs_eventloop_lag_max_seconds");
          if (v === undefined) return;
          // The first scrape of a process covers the time since the previous scrape
          // (before this window): it only resets the histogram.
          const key = pid ?? -id;
          if (!seen.has(key)) {
            seen.add(key);
            return;
          }
          scrapes++;
          max.set(id, Math.max(max.get(id) ?? 0, v * 1000));
        }),
      );
      await next;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
    scrapes: () => scrapes,
  };
}

interface Window {
  round: number;
  kind: "baseline" | "restart";
  load: PacedResult;
  p50: number;
  p99: number;
  max: number;
  loopMaxMs: Map<number, number>;
  before: Map<number, RaftView>;
  after: Map<number, RaftView>;
  leaderBefore: number;
  leaderAfter: number;
  catchUp?: CatchUp;
  snapshotsSent?: number;
  snapshotBytesSent?: number;
}

async function snapshotCounters(rb: Raftbus, id: number) {
  const m: MetricSamples | undefined = await scrapeMetrics(rb.url(id, "/metrics"));
  return {
    sent: metricValue(m, "raftbus_snapshots_sent_total"),
    bytes: metricValue(m, "raftbus_snapshot_bytes_sent_total"),
  };
}

async function loadWindow(
  rb: Raftbus,
  leader: number,
  round: number,
  kind: "baseline" | "restart",
  follower: number,
): Promise<Window> {
  const before = await raftViews(rb);
  const snapBefore = await snapshotCounters(rb, leader);
  const watch = startLoopWatch(rb, kind === "restart" ? follower : undefined);
  await sleep(1100); // the first scrape of every node: resets the event-loop histograms
  const live = { phase: "", applied: 0, target: 0, done: false };
  let restart: Promise<CatchUp> | undefined;
  const startAfterMs = Q ? 500 : 2_000;
  const load = pacedProduce({
    url: rb.url(leader, `/v1/topics/${TOPIC}/records`),
    rate: RATE,
    seconds: args.duration,
    connections: CONNECTIONS,
    perRequest: PER_REQUEST,
    label: `round ${round}/${args.rounds}, ${kind === "baseline" ? "baseline (no restart)" : `restart of node ${follower}`}`,
    extendWhile: kind === "restart" ? () => !live.done : undefined,
    maxSeconds: args.duration + CATCH_UP_TIMEOUT_S,
    status: () =>
      kind === "restart"
        ? `node ${follower} ${live.phase || "running"}${live.target ? ` (applied ${fmtInt(live.applied)}/${fmtInt(live.target)})` : ""}`
        : `${watch.scrapes()} scrapes`,
  });
  if (kind === "restart") {
    await sleep(startAfterMs);
    restart = restartFollower(rb, leader, follower, true, live);
    restart.catch(() => undefined); // awaited below, after the load
  }
  const r = await load;
  const catchUp = await restart;
  const loopMaxMs = await watch.stop();
  const after = await raftViews(rb);
  const snapAfter = await snapshotCounters(rb, leader);
  const leaderAfter = await currentLeader(rb);
  if (catchUp?.stuck) await recoverStuck(rb, leaderAfter, catchUp);
  const diff = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a - b;
  return {
    round,
    kind,
    load: r,
    p50: quantile(r.latencies, 0.5),
    p99: quantile(r.latencies, 0.99),
    max: r.latencies.length ? r.latencies[r.latencies.length - 1]! : Number.NaN,
    loopMaxMs,
    before,
    after,
    leaderBefore: leader,
    leaderAfter,
    catchUp,
    snapshotsSent: diff(snapAfter.sent, snapBefore.sent),
    snapshotBytesSent: diff(snapAfter.bytes, snapBefore.bytes),
  };
}

/**
 * No election in a window: the leader is the same, its term did not move, the
 * nodes that kept running started no election, and every node ends on the leader's term.
 */
function electionFree(w: Window): { ok: boolean; why: string } {
  const restarted = w.catchUp?.follower;
  const lb = w.before.get(w.leaderBefore);
  const la = w.after.get(w.leaderBefore);
  const problems: string[] = [];
  if (w.leaderAfter !== w.leaderBefore) problems.push(`leader ${w.leaderBefore} → ${w.leaderAfter}`);
  if (lb?.term === undefined || la?.term === undefined) problems.push("no term metric");
  else if (la.term !== lb.term) problems.push(`term ${lb.term} → ${la.term}`);
  for (const [id, b] of w.before) {
    const a = w.after.get(id);
    if (id !== restarted && a?.elections !== b.elections)
      problems.push(`node ${id} elections ${b.elections} → ${a?.elections}`);
    if (a?.term !== la?.term) problems.push(`node ${id} on term ${a?.term}`);
  }
  if (restarted !== undefined) {
    const e = w.after.get(restarted)?.elections;
    if (e !== undefined && e > 0) problems.push(`restarted node ${restarted} started ${e} election(s)`);
  }
  return { ok: problems.length === 0, why: problems.join("; ") || "none" };
}

// ---- phase 3: catch-up of a follower that kept its data -------------------------------------

interface CatchUpCase {
  name: string;
  /** Records produced while the follower was down (padding included). */
  records: number;
  /** Of which single-record requests that padded the log until it was compacted past the follower. */
  padded: number;
  missingBytes: number;
  bytesHow: string;
  compacted: boolean;
  leaderFirstIndex: number;
  followerLastIndex: number;
  c: CatchUp;
  /** Whether the follower's partitions equal the leader's after catch-up (sha256 of the stored batches). */
  identical?: boolean;
  snapshotsSent?: number;
  snapshotBytesSent?: number;
  /** Missing bytes over the time from the follower's HTTP up to caught up. */
  mbps: number;
}

/**
 * Produces single-record requests (one Raft entry each) to `leader`, in chunks,
 * until `done()` or `max` requests; returns how many it sent.
 */
async function padLog(rb: Raftbus, leader: number, why: string, done: () => Promise<boolean>, max: number) {
  if (await done()) return 0;
  say(
    `    padding the log with single-record requests until ${why} (the log is compacted only up to the last local snapshot, taken every 100,000 applied entries by default)`,
  );
  let n = 0;
  while (n < max) {
    const chunk = Math.min(PAD_CHUNK, max - n);
    await populate(rb, TOPIC, chunk, { perRequest: 1, concurrency: 64, node: leader, retries: 20 });
    n += chunk;
    // Compaction follows the snapshot in slices: give it a moment.
    for (let i = 0; i < 10; i++) {
      if (await done()) return n;
      await sleep(200);
    }
  }
  say(`    still not so after ${fmtInt(n)} padding requests`);
  return n;
}

async function catchUpCase(
  rb: Raftbus,
  leader: number,
  follower: number,
  name: string,
  records: number,
  /** Pad the log until the leader compacted it past the follower's last entry. */
  pastCompaction: boolean,
): Promise<CatchUpCase> {
  say(
    `\n  ${name}: stop node ${follower} (SIGTERM, data kept), produce ${fmtInt(records)} records${pastCompaction && PAD ? " (and pad the log until it is compacted past the follower)" : ""}, restart it`,
  );
  await waitInSync(rb, leader, name);
  const fBefore = await rb.status(follower);
  if (!fBefore) throw new Error(`${name}: node ${follower} does not answer /internal/status`);
  const dBefore = await topicDigest(rb, leader);
  const snapBefore = await snapshotCounters(rb, leader);
  let padded = 0;
  let leaderSt: NodeStatus | undefined;
  let dAfter: Digest | undefined;
  const live = { phase: "", applied: 0, target: 0, done: false };
  const progress = setInterval(() => {
    if (live.phase === "stopping" || live.phase === "down") return;
    process.stdout.write(
      `\r    node ${follower}: ${live.phase}, applied ${fmtInt(live.applied)}/${fmtInt(live.target)}      `,
    );
  }, 1000);
  const c = await restartFollower(rb, leader, follower, false, live, async () => {
    await populate(rb, TOPIC, records, {
      perRequest: FILL_PER_REQUEST,
      concurrency: FILL_CONCURRENCY,
      node: leader,
      retries: 20,
    });
    const compactedPast = async () => {
      leaderSt = await rb.status(leader);
      return (leaderSt?.firstIndex ?? 0) > fBefore.lastIndex + 1;
    };
    if (pastCompaction && PAD)
      padded = await padLog(
        rb,
        leader,
        `the leader's log no longer reaches node ${follower}'s last entry (${fmtInt(fBefore.lastIndex)})`,
        compactedPast,
        PAD_MAX_ENTRIES,
      );
    await compactedPast();
    dAfter = await topicDigest(rb, leader);
    say(`    restarting node ${follower} (${elapsed()} into the run)`);
  });
  clearInterval(progress);
  process.stdout.write("\n");
  if (c.stuck) await recoverStuck(rb, leader, c);
  const snapAfter = await snapshotCounters(rb, leader);
  const produced = records + padded;
  const exposed = dBefore !== undefined && dAfter !== undefined;
  const missingBytes = exposed
    ? dAfter!.bytes - dBefore!.bytes
    : estimatedBytes(records, FILL_PER_REQUEST) + estimatedBytes(padded, 1);
  let identical: boolean | undefined;
  if (exposed && Number.isFinite(c.caughtUpMs)) {
    const dF = await topicDigest(rb, follower);
    identical = dF !== undefined && dF.bytes === dAfter!.bytes && dF.sha.join() === dAfter!.sha.join();
  }
  const transferS = (c.caughtUpMs - c.upMs) / 1000;
  const diff = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? undefined : a - b;
  const res: CatchUpCase = {
    name,
    records: produced,
    padded,
    missingBytes,
    bytesHow: exposed ? "the leader's partition digests" : "estimated from the batch format",
    compacted: (leaderSt?.firstIndex ?? 0) > fBefore.lastIndex + 1,
    leaderFirstIndex: leaderSt?.firstIndex ?? Number.NaN,
    followerLastIndex: fBefore.lastIndex,
    c,
    identical,
    snapshotsSent: diff(snapAfter.sent, snapBefore.sent),
    snapshotBytesSent: diff(snapAfter.bytes, snapBefore.bytes),
    mbps: missingBytes / 1e6 / Math.max(transferS, 0.001),
  };
  say(
    `    node ${follower}: ready after ${secs(c.readyMs)}, caught up (applied ${fmtInt(c.target)}): ${caughtCell(c)} from its start; ${mb(missingBytes)} MB missing (${res.bytesHow}), ${res.mbps.toFixed(1)} MB/s; leader's log ${res.compacted ? "compacted past" : "still reaches"} the follower (first index ${fmtInt(res.leaderFirstIndex)}, follower's last ${fmtInt(res.followerLastIndex)}); snapshots installed ${c.snapshotsInstalled}, leader sent ${res.snapshotBytesSent === undefined ? "n/a" : `${mb(res.snapshotBytesSent)} MB`}; copy identical to the leader's: ${identical ?? "n/a"}`,
  );
  return res;
}

// ---- main ----------------------------------------------------------------------------

async function fillTo(rb: Raftbus, leader: number, have: number, want: number): Promise<number> {
  if (want <= have) return have;
  say(
    `  filling to ${fmtInt(want)} records (${FILL_PER_REQUEST} per request, ${FILL_CONCURRENCY} in flight)`,
  );
  const t0 = performance.now();
  await populate(rb, TOPIC, want - have, {
    perRequest: FILL_PER_REQUEST,
    concurrency: FILL_CONCURRENCY,
    node: leader,
    retries: 20,
  });
  const s = (performance.now() - t0) / 1000;
  say(`    ${fmtInt((want - have) / s)} records/s; ${elapsed()} into the run`);
  return want;
}

async function checkpoint(rb: Raftbus, leader: number, records: number): Promise<RssCheckpoint> {
  await waitInSync(rb, leader, `RSS checkpoint at ${records}`);
  const kib = new Map<number, number>();
  for (const id of ids(rb)) {
    const v = procStatusKiB(rb.pid(id), "RssAnon");
    kib.set(id, v);
    if (Number.isFinite(v)) rssMaxKiB.set(id, Math.max(rssMaxKiB.get(id) ?? 0, v));
  }
  say(
    `  RssAnon at ${fmtInt(records)} records: ${[...kib].map(([id, v]) => `node ${id} ${mib(v)} MiB`).join(", ")}`,
  );
  return { records, kib };
}

function commandString(): string {
  const given = process.argv.slice(2);
  return `\`npm run bench:snapshot${given.length ? ` -- ${given.join(" ")}` : ""}\``;
}

async function main() {
  say(
    `bench:snapshot${Q ? " (quick: checks the script, figures mean nothing)" : ""}: fill ${fmtInt(RECORDS)} records, ${args.rounds} round(s) of ${args.duration} s windows (baseline and follower restart) at ${fmtInt(RATE)} requests/s × ${PER_REQUEST} records over ${CONNECTIONS} connections, follower emptied by "${EMPTY_MODE}", RSS up to ${fmtInt(MAX_RECORDS)} records, catch-up of ${fmtInt(GAP)} and ${fmtInt(GAP_COMPACTED)}+ records; log padding ${PAD ? "on" : "off"}`,
  );
  if (ignoredEnv.length) say(`  ignoring ${ignoredEnv.join(" ")}: nodes run with default settings`);
  if (!DEFAULTS)
    say(`  NON-DEFAULT node settings (RAFTBUS_BENCH_NODE_ARGS): ${devNodeArgs.join(" ")}; no verdicts`);
  const started = machine();
  const rb = await startRaftbus(["--tick-ms", String(DEFAULT_TICK_MS), ...devNodeArgs]);
  const stopRss = startRssSampler(rb);
  try {
    await rb.createTopic(TOPIC, PARTITIONS);
    let leader = rb.leader;
    const checkpoints: RssCheckpoint[] = [];
    const cps = [...new Set([Math.round(MAX_RECORDS / 10), RECORDS, MAX_RECORDS])].sort((a, b) => a - b);
    let have = 0;

    // 1. fill to --records (RSS checkpoints on the way)
    for (const cp of cps.filter((x) => x <= RECORDS)) {
      have = await fillTo(rb, leader, have, cp);
      checkpoints.push(await checkpoint(rb, leader, cp));
    }
    // An emptied follower needs a snapshot stream only once the leader compacted its log.
    let leaderSt = await rb.status(leader);
    const padded = PAD
      ? await padLog(
          rb,
          leader,
          "the leader compacted its log (so that an emptied follower needs a snapshot stream)",
          async () => {
            leaderSt = await rb.status(leader);
            return (leaderSt?.firstIndex ?? 0) > 1;
          },
          PAD_MAX_ENTRIES,
        )
      : 0;
    have += padded;
    leaderSt = await rb.status(leader);
    const logBefore = {
      first: leaderSt?.firstIndex ?? Number.NaN,
      last: leaderSt?.lastIndex ?? Number.NaN,
      snapshots: leaderSt?.runtime.snapshotsTaken,
      padded,
    };
    say(
      `  leader ${leader}: log ${fmtInt(logBefore.first)}..${fmtInt(logBefore.last)}, local snapshots taken ${logBefore.snapshots ?? "?"}; an emptied follower ${logBefore.first > 1 ? "needs a snapshot stream" : "can replay the whole log (no snapshot stream)"}`,
    );

    // 2. no stall: baseline and restart windows, alternating
    say(`\n  no stall: ${args.rounds} round(s), baseline and follower restart alternating (${elapsed()})`);
    await pacedProduce({
      url: rb.url(leader, `/v1/topics/${TOPIC}/records`),
      rate: RATE,
      seconds: Q ? 1 : 3,
      connections: CONNECTIONS,
      perRequest: PER_REQUEST,
      label: "warm-up",
    });
    const windows: Window[] = [];
    for (let round = 1; round <= args.rounds; round++) {
      const order: ("baseline" | "restart")[] = round % 2 ? ["baseline", "restart"] : ["restart", "baseline"];
      for (const kind of order) {
        leader = await currentLeader(rb);
        const followers = ids(rb).filter((id) => id !== leader);
        const follower = followers[(round - 1) % followers.length]!;
        const w = await loadWindow(rb, leader, round, kind, follower);
        windows.push(w);
        const e = electionFree(w);
        say(
          `    p50 ${fmtMs(w.p50)} ms, p99 ${fmtMs(w.p99)} ms, max ${fmtMs(w.max)} ms, ${w.load.errors} errors; event-loop max ${[...w.loopMaxMs].map(([id, v]) => `node ${id} ${fmtMs(v)} ms`).join(", ")}; elections: ${e.why}`,
        );
        if (w.catchUp) {
          const c = w.catchUp;
          say(
            `    node ${c.follower} (started empty): HTTP up ${secs(c.upMs)}, ready ${secs(c.readyMs)}, applied the leader's ${fmtInt(c.target)}: ${caughtCell(c)}; snapshots installed ${c.snapshotsInstalled}; leader sent ${w.snapshotsSent ?? "n/a"} snapshot(s), ${w.snapshotBytesSent === undefined ? "n/a" : `${mb(w.snapshotBytesSent)} MB`}`,
          );
        }
      }
    }

    // 3. memory up to --max-records
    for (const cp of cps.filter((x) => x > RECORDS)) {
      leader = await currentLeader(rb);
      have = await fillTo(rb, leader, have, cp);
      checkpoints.push(await checkpoint(rb, leader, cp));
    }

    // 4. catch-up: the gap only, then past compaction
    leader = await currentLeader(rb);
    const f = ids(rb).filter((id) => id !== leader)[0]!;
    const cases: CatchUpCase[] = [];
    cases.push(await catchUpCase(rb, leader, f, "log gap", GAP, false));
    leader = await currentLeader(rb);
    cases.push(await catchUpCase(rb, leader, f, "compacted gap", GAP_COMPACTED, true));
    stopRss();

    // ---- figures and verdicts ---------------------------------------------------------
    const base = windows.filter((w) => w.kind === "baseline");
    const rest = windows.filter((w) => w.kind === "restart");
    const mBase = { p50: median(base.map((w) => w.p50)), p99: median(base.map((w) => w.p99)) };
    const mRest = { p50: median(rest.map((w) => w.p50)), p99: median(rest.map((w) => w.p99)) };
    const p99Ratio = mRest.p99 / mBase.p99;
    const p99Ok = mRest.p99 <= mBase.p99 + Math.max(mBase.p99 * P99_SLACK_RATIO, P99_SLACK_MS);
    const loopMax = (ws: Window[]) => {
      const m = new Map<number, number>();
      for (const w of ws) for (const [id, v] of w.loopMaxMs) m.set(id, Math.max(m.get(id) ?? 0, v));
      return m;
    };
    const loopRest = loopMax(rest);
    const loopBase = loopMax(base);
    const loopOk = ids(rb).every((id) => (loopRest.get(id) ?? Number.POSITIVE_INFINITY) < LOOP_BOUND_MS);
    const elections = windows.map(electionFree);
    const electionsOk = elections.every((e) => e.ok);
    const caught = rest.map((w) => w.catchUp!);
    // A stuck follower is a finding (recovered from, reported); one that never caught up is a failure.
    const catchUpFailed = [...caught, ...cases.map((c) => c.c)].filter(
      (c) => !Number.isFinite(c.caughtUpMs) && c.recoveredMs === undefined,
    );
    const rssMaxAll = Math.max(...rssMaxKiB.values());
    const rssOk = rssMaxAll / 1024 <= RSS_BOUND_MIB;
    const cc = cases[1]!;
    const bytesRatio =
      cc.snapshotBytesSent === undefined || cc.snapshotBytesSent === 0
        ? Number.NaN
        : cc.snapshotBytesSent / cc.missingBytes;
    const errors = windows.reduce((s, w) => s + w.load.errors, 0);

    const windowTable = table(
      [
        "round",
        "window",
        "s",
        "requests",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        ...ids(rb).map((id) => `loop max node ${id} ms`),
        "restarted node: ready / caught up",
        "snapshot sent (installed / bytes)",
        "elections",
      ],
      windows.map((w) => [
        w.round,
        w.kind === "baseline" ? "baseline" : `restart of node ${w.catchUp!.follower}`,
        w.load.seconds.toFixed(0),
        fmtInt(w.load.sent),
        fmtMs(w.p50),
        fmtMs(w.p99),
        fmtMs(w.max),
        w.load.errors,
        ...ids(rb).map((id) => fmtMs(w.loopMaxMs.get(id) ?? Number.NaN)),
        w.catchUp ? `${secs(w.catchUp.readyMs)} / ${caughtCell(w.catchUp)}` : "",
        w.catchUp
          ? `${w.catchUp.snapshotsInstalled} / ${w.snapshotBytesSent === undefined ? "n/a" : `${mb(w.snapshotBytesSent)} MB`}`
          : "",
        electionFree(w).why,
      ]),
      [false, false, true, true, true, true, true, true, ...ids(rb).map(() => true), true, true, false],
    );
    const rssTable = table(
      ["records", ...ids(rb).map((id) => `node ${id} RssAnon MiB`)],
      [
        ...checkpoints.map((c) => [
          fmtInt(c.records),
          ...ids(rb).map((id) => mib(c.kib.get(id) ?? Number.NaN)),
        ]),
        ["max over the run", ...ids(rb).map((id) => mib(rssMaxKiB.get(id) ?? Number.NaN))],
      ],
    );
    const caseTable = table(
      [
        "case",
        "records missing",
        "missing MB",
        "leader's log reaches the follower",
        "snapshot installed",
        "snapshot MB sent",
        "sent / missing",
        "ready",
        "caught up",
        "MB/s",
        "copy equals the leader's",
      ],
      cases.map((c) => [
        c.name,
        c.padded
          ? `${fmtInt(c.records)} (${fmtInt(c.padded)} of them single-record padding)`
          : fmtInt(c.records),
        `${mb(c.missingBytes)} (${c.bytesHow})`,
        c.compacted
          ? `no (first ${fmtInt(c.leaderFirstIndex)} > ${fmtInt(c.followerLastIndex)} + 1)`
          : `yes (first ${fmtInt(c.leaderFirstIndex)}, follower's last ${fmtInt(c.followerLastIndex)})`,
        `${c.c.snapshotsInstalled > 0 ? "yes" : "no"} (${c.c.snapshotsInstalled})`,
        c.snapshotBytesSent === undefined ? "n/a" : mb(c.snapshotBytesSent),
        c.snapshotBytesSent === undefined || c.snapshotBytesSent === 0
          ? "n/a"
          : `${(c.snapshotBytesSent / c.missingBytes).toFixed(3)}`,
        secs(c.c.readyMs),
        caughtCell(c.c),
        Number.isFinite(c.c.caughtUpMs) ? c.mbps.toFixed(1) : "–",
        c.identical === undefined ? "n/a" : c.identical ? "yes" : "**NO**",
      ]),
      [false, true, true, false, false, true, true, true, true, true, false],
    );
    const loopCell = (m: Map<number, number>) =>
      ids(rb)
        .map((id) => `node ${id} ${fmtMs(m.get(id) ?? Number.NaN)}`)
        .join(", ");
    // The no-stall targets are about a leader streaming the whole state: say so when none was.
    const streamed = rest.filter((w) => (w.catchUp?.snapshotsInstalled ?? 0) > 0).length;
    const noStream =
      streamed === rest.length
        ? undefined
        : `not measured: ${rest.length - streamed} of ${rest.length} restart windows streamed no snapshot (${
            rest.some((w) => w.catchUp?.stuck)
              ? "the emptied follower was stuck"
              : logBefore.first <= 1
                ? "the leader's log was not compacted"
                : "see the windows"
          })`;
    const streamVerdict = (ok: boolean) => (DEFAULTS && noStream ? noStream : verdict(ok));
    const summary = table(
      ["target (issue 12)", "measured", "verdict"],
      [
        [
          `produce p99 while a follower is sent the whole state: at most the baseline's + max(${P99_SLACK_RATIO * 100}%, ${P99_SLACK_MS} ms)`,
          `${fmtMs(mRest.p99)} vs ${fmtMs(mBase.p99)} ms (${Number.isFinite(p99Ratio) ? `${p99Ratio.toFixed(2)}×` : "–"}; medians of ${rest.length} and ${base.length} windows; p50 ${fmtMs(mRest.p50)} vs ${fmtMs(mBase.p50)} ms)`,
          streamVerdict(p99Ok),
        ],
        [
          `event-loop delay max < ${LOOP_BOUND_MS} ms on every node during the restart windows`,
          `${loopCell(loopRest)} ms (baseline windows: ${loopCell(loopBase)} ms)`,
          streamVerdict(loopOk),
        ],
        [
          "no election during any window",
          elections.every((e) => e.ok)
            ? `none in ${windows.length} windows`
            : elections
                .map((e, i) => (e.ok ? "" : `window ${i + 1}: ${e.why}`))
                .filter(Boolean)
                .join("; "),
          streamVerdict(electionsOk),
        ],
        [
          "an emptied follower catches up",
          caught
            .map(
              (c) =>
                `node ${c.follower}: ready ${secs(c.readyMs)}, caught up ${caughtCell(c)} (${fmtInt(have)}+ records)`,
            )
            .join("; "),
          verdict(caught.every((c) => Number.isFinite(c.caughtUpMs))),
        ],
        [
          `RssAnon of every node <= ${RSS_BOUND_MIB} MiB whatever the data (${fmtInt(MAX_RECORDS)} records)`,
          `max ${mib(rssMaxAll)} MiB; ${checkpoints.map((c) => `${fmtInt(c.records)}: ${mib(Math.max(...c.kib.values()))}`).join(", ")} MiB (largest node)`,
          verdict(rssOk),
        ],
        [
          `catch-up past compaction sends the gap: bytes sent within ${BYTES_RATIO_SLACK * 100}% of the missing bytes`,
          cc.snapshotBytesSent === undefined
            ? `n/a: the leader has no raftbus_snapshot_bytes_sent_total (missing ${mb(cc.missingBytes)} MB; snapshot installed: ${cc.c.snapshotsInstalled > 0 ? "yes" : "no"}; log compacted past the follower: ${cc.compacted ? "yes" : "no"})`
            : `${mb(cc.snapshotBytesSent)} MB sent / ${mb(cc.missingBytes)} MB missing = ${Number.isFinite(bytesRatio) ? bytesRatio.toFixed(3) : "–"} (log compacted past the follower: ${cc.compacted ? "yes" : "no"})`,
          cc.snapshotBytesSent === undefined || !cc.compacted
            ? verdict(undefined)
            : verdict(Math.abs(bytesRatio - 1) <= BYTES_RATIO_SLACK),
        ],
        [
          `catch-up past compaction >= ${MBPS_TARGET} MB/s`,
          `${cc.mbps.toFixed(1)} MB/s (${mb(cc.missingBytes)} MB from HTTP up to caught up: ${secs(cc.c.caughtUpMs - cc.c.upMs)}; ${cc.compacted ? "by snapshot" : "the log still reached the follower: by log replication"})`,
          cc.compacted ? verdict(cc.mbps >= MBPS_TARGET) : verdict(undefined),
        ],
      ],
      [false, false, false],
    );

    say(`\n${windowTable}\n\n${rssTable}\n\n${caseTable}\n\n${summary}\n`);
    say(`Errors (produce answers other than 200 in the load windows): ${errors}. Run took ${elapsed()}.`);
    if (args.write) {
      writeResultsSection(
        "<!-- bench:snapshot -->",
        "<!-- /bench:snapshot -->",
        "## Snapshots and catch-up under load (bench/snapshot.ts)",
        [
          `Command: ${commandString()}  `,
          `Machine: ${started}; the run took ${elapsed()}.  `,
          DEFAULTS
            ? `Node settings: the defaults (--tick-ms ${DEFAULT_TICK_MS}; no --snapshot-entries${ignoredEnv.length ? `; ignored from the environment: ${ignoredEnv.join(" ")}` : ""}).`
            : `**NON-DEFAULT node settings: ${devNodeArgs.join(" ")} — not issue 12's proof.**`,
          "",
          `A 3-node cluster; topic \`${TOPIC}\` with ${PARTITIONS} partition(s) filled to ${fmtInt(RECORDS)} records of 100 bytes`,
          `(${FILL_PER_REQUEST} per request, ${FILL_CONCURRENCY} in flight). Load windows: an open-loop produce of ${fmtInt(RATE)} requests/s`,
          `× ${PER_REQUEST} records over ${CONNECTIONS} keep-alive connections to the leader, latency from each request's`,
          `scheduled send time; ${args.duration} s, and a restart window goes on until the restarted follower caught up.`,
          EMPTY_MODE === "wipe"
            ? "In a restart window a follower is stopped (SIGTERM) and its data dir deleted, then it is started empty with the same id, addresses and --peers (`--empty-restart wipe`)."
            : "In a restart window a follower is stopped (SIGTERM) and its data dir deleted, removed from the membership and added back as a voter with the same id and addresses, then started empty with --join (`--empty-restart rejoin`).",
          `Before the windows the leader's log was ${fmtInt(logBefore.first)}..${fmtInt(logBefore.last)} (local snapshots taken: ${logBefore.snapshots ?? "?"}${logBefore.padded ? `; padded with ${fmtInt(logBefore.padded)} single-record requests so that it was compacted: one request is one entry, and the log is compacted only up to a local snapshot, every 100,000 entries by default` : ""}): ${logBefore.first > 1 ? "an emptied follower needs a snapshot stream" : "**not compacted: an emptied follower replays the log, no snapshot stream**"}.`,
          "Baseline and restart windows alternate; figures are medians over",
          "windows. Event-loop delay: the max of `nodejs_eventloop_lag_max_seconds` (prom-client's",
          "monitorEventLoopDelay, 10 ms resolution: an idle loop reads ~10 ms), scraped every second on every node",
          "(each scrape resets it). Caught up: applied the leader's applied index as of the restart.",
          "",
          windowTable,
          "",
          `RssAnon (/proc/<pid>/status) of each node once every node applied the records; max: sampled every second over the whole run (bound: ${RSS_BOUND_MIB} MiB).`,
          "",
          rssTable,
          "",
          "Catch-up of a follower that kept its data (stopped with SIGTERM while the records were produced; for the",
          "compacted gap, single-record requests pad the log until the leader compacted it past the follower).",
          "Missing bytes: the growth of the topic's stored bytes on the leader (GET .../partitions/:p/digest), else",
          "estimated from the batch format (40-byte header and 16-byte key per batch, 21 bytes per record besides",
          "its 100-byte value). MB/s: missing bytes (10^6) over the time from the restarted node's HTTP answering to",
          "caught up. Snapshot bytes: the leader's `raftbus_snapshot_bytes_sent_total` (n/a where it does not",
          "exist). Copy equals: the follower's partition digests (sha256 of the stored batches) equal the leader's.",
          "",
          caseTable,
          "",
          summary,
          "",
          `Errors (produce answers other than 200 in the load windows): ${errors}.`,
        ].join("\n"),
      );
    }
    saveFigures("snapshot", {
      defaults: DEFAULTS,
      p99Base: mBase.p99,
      p99Restart: mRest.p99,
      p99Ok,
      loopMaxRestart: Math.max(...loopRest.values()),
      loopOk,
      electionsOk,
      rssMaxMiB: rssMaxAll / 1024,
      rssOk,
      streamedWindows: streamed,
      restartWindows: rest.length,
      compacted: cc.compacted,
      ...(Number.isFinite(bytesRatio) ? { bytesRatio } : {}),
      mbps: cc.mbps,
      errors,
    });
    if (catchUpFailed.length > 0)
      throw new Error(
        `${catchUpFailed.length} restarted follower(s) did not catch up within ${CATCH_UP_TIMEOUT_S} s`,
      );
    if (errors > 0) throw new Error(`${errors} produce errors`);
  } finally {
    stopRss();
    await rb.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
