// Micro-benchmark of the Raft core: three in-process RaftNodes on MemoryStorage,
// messages delivered directly in-process, 100-byte proposals batched on the
// leader. Reports entries committed and applied on the leader per second, and
// the JS heap allocated per entry.
//
//   npm run bench:raft                    # all batch sizes, 5 runs each
//   npm run bench:raft -- --quick         # 1 run per batch size, fewer entries
//   npm run bench:raft -- --batch 1024 --runs 1 --entries 400000   # e.g. under --cpu-prof
//   npm run bench:raft -- --write-results # also rewrite the section in bench/RESULTS.md
//
// Ready handling follows docs/raft-core.md: immediateMessages are sent at once,
// then entries/hardState (and any snapshot) are written to the node's
// MemoryStorage, then messages are sent, committedEntries applied, and the
// Ready advanced. Readies returned while earlier ones are still queued (e.g. by
// consecutive proposals) are handled strictly in the order received.
//
// Allocation is measured with v8.GCProfiler: bytes allocated on the JS heap in
// the timed window = (used heap after - used heap before) + the bytes every GC
// in the window freed. Off-heap memory (ArrayBuffer backing stores) is not
// counted; the proposal payloads come from a preallocated pool, so the figure
// is what the core and this harness allocate per entry.

import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import v8 from "node:v8";
import vm from "node:vm";
import { EntryType, MemoryStorage, type Message, RaftNode, type Ready, Role } from "../src/raft/index.ts";
import { writeResultsSection } from "./results-file.ts";

// ---- options ---------------------------------------------------------------

type Mode = "propose" | "proposeBatch";

interface Options {
  modes: Mode[];
  batches: number[];
  runs: number;
  /** Entries proposed per run, by mode (per-proposal runs are slower, so shorter). */
  entries: Record<Mode, number>;
  /** A run stops proposing after this many ms even if `entries` is not reached. */
  maxRunMs: number;
  writeResults: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    modes: ["propose", "proposeBatch"],
    batches: [64, 256, 1024],
    runs: 5,
    entries: { propose: 100_000, proposeBatch: 500_000 },
    maxRunMs: 4000,
    writeResults: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === "--quick") {
      o.runs = 1;
      o.entries = { propose: 30_000, proposeBatch: 100_000 };
    } else if (a === "--batch") o.batches = [next()];
    else if (a === "--mode") {
      const m = argv[++i];
      if (m !== "propose" && m !== "proposeBatch") throw new Error("--mode is propose or proposeBatch");
      o.modes = [m];
    } else if (a === "--runs") o.runs = next();
    else if (a === "--entries") {
      const n = next();
      o.entries = { propose: n, proposeBatch: n };
    } else if (a === "--max-run-ms") o.maxRunMs = next();
    else if (a === "--write-results") o.writeResults = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

// ---- gc / allocation ---------------------------------------------------------

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

class AllocMeter {
  private profiler = new v8.GCProfiler();
  private before = 0;
  start(): void {
    gc();
    gc();
    this.before = v8.getHeapStatistics().used_heap_size;
    this.profiler.start();
  }
  /** Bytes allocated on the JS heap since start(), and the number of GCs. */
  stop(): { bytes: number; gcs: number } {
    const stats = this.profiler.stop();
    const after = v8.getHeapStatistics().used_heap_size;
    let freed = 0;
    for (const s of stats.statistics) {
      freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    }
    return { bytes: after - this.before + freed, gcs: stats.statistics.length };
  }
}

// ---- the in-process cluster -----------------------------------------------------

const PEERS = [1, 2, 3];
const PAYLOAD_BYTES = 100;
/** Compact a node's storage once this many applied entries are kept behind it. */
const COMPACT_EVERY = 100_000;

interface Member {
  id: number;
  node: RaftNode;
  storage: MemoryStorage;
  /** Readies received and not yet handled, in order. */
  readies: Ready[];
  /** Normal entries with data applied (excludes the leader's empty no-op). */
  appliedData: number;
  appliedIndex: number;
}

class Cluster {
  readonly members = new Map<number, Member>();
  private queue: Message[] = [];
  private head = 0;
  messages = 0;

  constructor(seed: number) {
    for (const id of PEERS) {
      const storage = new MemoryStorage(PEERS);
      const node = new RaftNode({ id, peers: PEERS, storage, seed: seed * 10 + id });
      this.members.set(id, { id, node, storage, readies: [], appliedData: 0, appliedIndex: 0 });
    }
  }

  member(id: number): Member {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  take(m: Member, rd: Ready | null): void {
    if (rd) m.readies.push(rd);
  }

  private send(msgs: Message[]): void {
    for (const msg of msgs) this.queue.push(msg);
    this.messages += msgs.length;
  }

  /** Handles one Ready per docs/raft-core.md; returns the Ready advance() hands back. */
  private handle(m: Member, rd: Ready): Ready | null {
    this.send(rd.immediateMessages);
    if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) m.storage.append(rd.entries);
    if (rd.hardState) m.storage.setHardState(rd.hardState);
    this.send(rd.messages);
    const ce = rd.committedEntries;
    for (let i = 0; i < ce.length; i++) {
      const e = ce[i]!;
      if (e.type === EntryType.Normal && e.data.length > 0) m.appliedData++;
      m.appliedIndex = e.index;
    }
    if (rd.confState) m.storage.setConfState(rd.confState);
    if (m.appliedIndex - m.storage.firstIndex() > COMPACT_EVERY) m.storage.compact(m.appliedIndex - 1000);
    return m.node.advance(rd);
  }

  private handleAll(m: Member): boolean {
    if (m.readies.length === 0) return false;
    // Handle in the order received; advance() may hand back a further Ready.
    for (let i = 0; i < m.readies.length; i++) {
      const next = this.handle(m, m.readies[i]!);
      if (next) m.readies.push(next);
    }
    m.readies.length = 0;
    return true;
  }

  /** Delivers messages and handles Readies until the cluster is quiet. */
  drain(): void {
    for (;;) {
      let busy = false;
      for (const m of this.members.values()) if (this.handleAll(m)) busy = true;
      while (this.head < this.queue.length) {
        busy = true;
        const msg = this.queue[this.head++]!;
        const to = this.members.get(msg.to);
        if (to) this.take(to, to.node.step(msg));
      }
      this.queue.length = 0;
      this.head = 0;
      if (!busy) return;
    }
  }

  leader(): Member | undefined {
    for (const m of this.members.values()) if (m.node.status().role === Role.Leader) return m;
    return undefined;
  }

  elect(id: number): Member {
    const m = this.member(id);
    this.take(m, m.node.campaign());
    this.drain();
    const l = this.leader();
    if (!l) throw new Error("no leader elected");
    return l;
  }
}

// ---- one run ------------------------------------------------------------------------

interface RunResult {
  entries: number;
  ms: number;
  perSec: number;
  bytesPerEntry: number;
  gcs: number;
  msgsPerEntry: number;
}

function makePayloads(n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const b = new Uint8Array(PAYLOAD_BYTES);
    for (let i = 0; i < PAYLOAD_BYTES; i++) b[i] = (k * 131 + i) & 0xff;
    out.push(b);
  }
  return out;
}

const PAYLOADS = makePayloads(4096);

function run(mode: Mode, batch: number, total: number, maxRunMs: number, seed: number): RunResult {
  const c = new Cluster(seed);
  const leader = c.elect(1);
  // Let the no-op commit and everything settle before timing.
  c.drain();
  const base = leader.appliedData;
  const msgs0 = c.messages;
  const meter = new AllocMeter();
  meter.start();
  const t0 = performance.now();
  let proposed = 0;
  let p = 0;
  while (proposed < total) {
    const n = Math.min(batch, total - proposed);
    if (mode === "propose") {
      // One propose() per command: each hands back a Ready, queued in order.
      for (let k = 0; k < n; k++) {
        c.take(leader, leader.node.propose(PAYLOADS[p]!));
        p = (p + 1) & 4095;
      }
    } else {
      // One proposeBatch() for the whole turn: one append, one broadcast.
      const datas: Uint8Array[] = new Array(n);
      for (let k = 0; k < n; k++) {
        datas[k] = PAYLOADS[p]!;
        p = (p + 1) & 4095;
      }
      c.take(leader, leader.node.proposeBatch(datas));
    }
    proposed += n;
    c.drain();
    if (performance.now() - t0 > maxRunMs) break;
  }
  const ms = performance.now() - t0;
  const alloc = meter.stop();
  const committed = leader.appliedData - base;
  if (committed !== proposed) throw new Error(`proposed ${proposed} but the leader applied ${committed}`);
  for (const m of c.members.values()) {
    if (m.appliedIndex !== leader.appliedIndex) {
      throw new Error(`node ${m.id} applied ${m.appliedIndex}, leader ${leader.appliedIndex}`);
    }
  }
  return {
    entries: committed,
    ms,
    perSec: (committed / ms) * 1000,
    bytesPerEntry: alloc.bytes / committed,
    gcs: alloc.gcs,
    msgsPerEntry: (c.messages - msgs0) / committed,
  };
}

// ---- reporting -----------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");

function machine(): string {
  let cpu = "unknown CPU";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m?.[1]) cpu = m[1].trim();
  } catch {
    cpu = os.cpus()[0]?.model ?? cpu;
  }
  let nproc = String(os.availableParallelism());
  try {
    nproc = execSync("nproc", { encoding: "utf8" }).trim();
  } catch {
    // keep availableParallelism
  }
  return `nproc ${nproc}, ${cpu}, node ${process.version}, ${os.platform()} ${os.release()}`;
}

interface Row {
  mode: Mode;
  batch: number;
  perSec: number;
  min: number;
  max: number;
  bytesPerEntry: number;
  gcsPerRun: number;
  msgsPerEntry: number;
}

function table(rows: Row[], runs: number): string {
  const lines = [
    `| API | batch | committed entries/s (median of ${runs}) | min | max | heap bytes allocated / entry | GCs / run | messages / entry |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.mode} | ${r.batch} | ${fmt(r.perSec)} | ${fmt(r.min)} | ${fmt(r.max)} | ${fmt(r.bytesPerEntry)} | ${fmt(r.gcsPerRun)} | ${r.msgsPerEntry.toFixed(3)} |`,
    );
  }
  return lines.join("\n");
}

function writeResults(section: string): void {
  writeResultsSection(
    "<!-- bench:raft:begin -->",
    "<!-- bench:raft:end -->",
    "## Raft core (bench/raft.ts)",
    section,
  );
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const started = performance.now();
  console.log(`raft bench: 3 nodes in-process, ${PAYLOAD_BYTES}-byte proposals; ${machine()}`);
  console.log(
    `modes ${o.modes.join(", ")}; batches ${o.batches.join(", ")}; ${o.runs} run(s) each of ` +
      o.modes.map((m) => `${fmt(o.entries[m])} entries (${m})`).join(", "),
  );
  // Warm up the JIT on short runs.
  for (const mode of o.modes) run(mode, 256, Math.min(20_000, o.entries[mode]), o.maxRunMs, 999);
  const rows: Row[] = [];
  let seed = 1;
  for (const mode of o.modes) {
    for (const batch of o.batches) {
      const rs: RunResult[] = [];
      for (let r = 0; r < o.runs; r++) {
        const res = run(mode, batch, o.entries[mode], o.maxRunMs, seed++);
        rs.push(res);
        console.log(
          `  ${mode.padEnd(12)} batch ${String(batch).padStart(5)} run ${r + 1}/${o.runs}: ` +
            `${fmt(res.perSec).padStart(10)} entries/s (${fmt(res.entries)} in ${res.ms.toFixed(0)} ms), ` +
            `${fmt(res.bytesPerEntry)} B/entry, ${res.gcs} GCs`,
        );
      }
      rows.push(summarise(mode, batch, rs));
    }
  }
  const best = rows.reduce((a, b) => (b.perSec > a.perSec ? b : a));
  const t = table(rows, o.runs);
  console.log("");
  console.log(t);
  console.log("");
  console.log(
    `best: ${best.mode} batch ${best.batch}; total ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (o.writeResults) {
    const section = [
      "Command: `npm run bench:raft -- --write-results` (`tsx bench/raft.ts`)  ",
      `Machine: ${machine()}  `,
      `Date: ${new Date().toISOString()}`,
      "",
      t,
      "",
      `Best: ${best.mode}, batch ${best.batch}: **${fmt(best.perSec)} committed entries/s** (median of ${o.runs}).`,
    ].join("\n");
    writeResults(section);
    console.log("wrote bench/RESULTS.md");
  }
  console.log(`${Math.round(best.perSec)} committed entries/s`);
}

function summarise(mode: Mode, batch: number, rs: RunResult[]): Row {
  const per = rs.map((r) => r.perSec);
  return {
    mode,
    batch,
    perSec: median(per),
    min: Math.min(...per),
    max: Math.max(...per),
    bytesPerEntry: median(rs.map((r) => r.bytesPerEntry)),
    gcsPerRun: median(rs.map((r) => r.gcs)),
    msgsPerEntry: median(rs.map((r) => r.msgsPerEntry)),
  };
}

main();
