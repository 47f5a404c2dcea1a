// Durable append rate of LmdbStorage, beside the raw lmdb-js ceiling measured in
// the same run: 100-byte entries, appended in turns of `batch` entries, each turn
// awaiting durability (LmdbStorage.flush() / the raw env's `flushed`) before the
// next, as the runtime does before acknowledging. The raw side puts the very
// bytes LmdbStorage stores (same encoding, same keys, same sub-database), from
// buffers encoded before the timed section: what is left is lmdb-js itself.
//
//   npm run bench:storage                  # batches 1, 64, 1024; 5 runs each
//   npm run bench:storage -- --quick       # 1 run each, shorter
//   npm run bench:storage -- --no-write    # do not touch bench/RESULTS.md
//
// Data goes to a fresh directory under os.tmpdir() per run, deleted afterwards.
// Rates are over the timed sections only (append/put + waiting for durability),
// entries/s and MB/s of payload (100 bytes per entry).

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { type Entry, makeEntry } from "../src/raft/index.ts";
import { encodeEntry, LmdbStorage } from "../src/storage/lmdb-storage.ts";
import { writeResultsSection } from "./results-file.ts";

const PAYLOAD = 100;
const BATCHES = [1, 64, 1024];

interface Options {
  runs: number;
  /** Timed milliseconds per run (a run stops at the first turn past it). */
  runMs: number;
  write: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runs: 5, runMs: 1500, write: true };
  for (const a of argv) {
    if (a === "--quick") {
      o.runs = 1;
      o.runMs = 400;
    } else if (a === "--no-write") o.write = false;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

interface RunResult {
  entries: number;
  turns: number;
  ms: number;
  perSec: number;
  /** Median time of one turn: append (or puts) until durable. */
  turnMs: number;
}

const payload = new Uint8Array(PAYLOAD).map((_, i) => (i * 7) & 0xff);

function makeBatch(from: number, n: number): Entry[] {
  const out: Entry[] = new Array(n);
  for (let k = 0; k < n; k++) out[k] = makeEntry(1, from + k, payload);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function tempDir(): string {
  return mkdtempSync(join(os.tmpdir(), "raftbus-bench-storage-"));
}

async function runStorage(batch: number, runMs: number, noSync = false): Promise<RunResult> {
  const dir = tempDir();
  try {
    const s = LmdbStorage.open(dir, { voters: [1], noSync });
    let next = 1;
    let ms = 0;
    const turns: number[] = [];
    while (ms < runMs) {
      const es = makeBatch(next, batch); // the proposer's work, not timed
      const t0 = performance.now();
      s.append(es);
      await s.flush();
      const dt = performance.now() - t0;
      ms += dt;
      turns.push(dt);
      next += batch;
    }
    await s.close();
    const entries = next - 1;
    return { entries, turns: turns.length, ms, perSec: (entries / ms) * 1000, turnMs: median(turns) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runRaw(batch: number, runMs: number, noSync = false): Promise<RunResult> {
  const dir = tempDir();
  try {
    const env = open(dir, { noSubdir: false, maxDbs: 32, ...(noSync ? { noSync: true } : {}) });
    const log = env.openDB<Uint8Array, number>("log", { encoding: "binary" });
    let next = 1;
    let ms = 0;
    const turns: number[] = [];
    while (ms < runMs) {
      const es = makeBatch(next, batch);
      const values = es.map((e) => encodeEntry(e)); // not timed
      const t0 = performance.now();
      for (let k = 0; k < batch; k++) void log.put(next + k, values[k]!);
      await env.flushed;
      const dt = performance.now() - t0;
      ms += dt;
      turns.push(dt);
      next += batch;
    }
    await env.close();
    const entries = next - 1;
    return { entries, turns: turns.length, ms, perSec: (entries / ms) * 1000, turnMs: median(turns) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Row {
  batch: number;
  storage: number;
  storageMin: number;
  storageMax: number;
  storageTurnMs: number;
  raw: number;
  rawMin: number;
  rawMax: number;
  rawTurnMs: number;
}

const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
const mb = (perSec: number) => ((perSec * PAYLOAD) / 1e6).toFixed(2);

function table(rows: Row[]): string {
  const lines = [
    "| batch | LmdbStorage entries/s | MB/s | min–max | turn ms | raw lmdb-js entries/s | MB/s | min–max | turn ms | LmdbStorage / raw |",
    "| ----: | ----: | ----: | ----: | ----: | ----: | ----: | ----: | ----: | ----: |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.batch} | ${fmt(r.storage)} | ${mb(r.storage)} | ${fmt(r.storageMin)}–${fmt(r.storageMax)} | ` +
        `${r.storageTurnMs.toFixed(2)} | ${fmt(r.raw)} | ${mb(r.raw)} | ${fmt(r.rawMin)}–${fmt(r.rawMax)} | ` +
        `${r.rawTurnMs.toFixed(2)} | ${((r.storage / r.raw) * 100).toFixed(0)}% |`,
    );
  }
  return lines.join("\n");
}

function writeResults(section: string): void {
  writeResultsSection(
    "<!-- bench:storage -->",
    "<!-- /bench:storage -->",
    "## Storage (bench/storage.ts)",
    section,
  );
}

function loadavg(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

function machine(): string {
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  return `nproc ${os.availableParallelism()}, ${cpu}, node ${process.version}, ${os.platform()} ${os.release()}, tmpdir ${os.tmpdir()}`;
}

async function measure(batch: number, o: Options, noSync: boolean): Promise<Row> {
  const st: RunResult[] = [];
  const raw: RunResult[] = [];
  for (let r = 0; r < o.runs; r++) {
    // Interleaved so both sides see the same disk conditions.
    const a = await runStorage(batch, o.runMs, noSync);
    const b = await runRaw(batch, o.runMs, noSync);
    st.push(a);
    raw.push(b);
    console.log(
      `  ${noSync ? "noSync " : ""}batch ${String(batch).padStart(4)} run ${r + 1}/${o.runs}: ` +
        `LmdbStorage ${fmt(a.perSec).padStart(9)} entries/s (${a.turns} turns, ${a.turnMs.toFixed(2)} ms/turn), ` +
        `raw ${fmt(b.perSec).padStart(9)} entries/s (${b.turns} turns, ${b.turnMs.toFixed(2)} ms/turn)`,
    );
  }
  const sp = st.map((x) => x.perSec);
  const rp = raw.map((x) => x.perSec);
  return {
    batch,
    storage: median(sp),
    storageMin: Math.min(...sp),
    storageMax: Math.max(...sp),
    storageTurnMs: median(st.map((x) => x.turnMs)),
    raw: median(rp),
    rawMin: Math.min(...rp),
    rawMax: Math.max(...rp),
    rawTurnMs: median(raw.map((x) => x.turnMs)),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const loadStart = loadavg();
  console.log(`storage bench: ${PAYLOAD}-byte entries, durable turns; ${machine()}`);
  console.log(`batches ${BATCHES.join(", ")}; ${o.runs} run(s) of ~${o.runMs} ms timed, each side`);
  // Warm-up (JIT, page cache, lmdb-js worker).
  await runStorage(64, 150);
  await runRaw(64, 150);
  const rows: Row[] = [];
  for (const batch of BATCHES) rows.push(await measure(batch, o, false));
  // CPU-bound reference: the same without fsync, to show the storage layer's own cost.
  const cpuRows: Row[] = [];
  for (const batch of [64, 1024]) cpuRows.push(await measure(batch, { ...o, runMs: o.runMs / 3 }, true));
  const t = table(rows);
  const tc = table(cpuRows);
  console.log("");
  console.log(t);
  console.log("\nnoSync (no fsync; CPU-bound reference):");
  console.log(tc);
  console.log(
    `\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s; load average ${loadStart} -> ${loadavg()}`,
  );
  if (o.write) {
    writeResults(
      [
        "Command: `npm run bench:storage` (`tsx bench/storage.ts`)  ",
        `Machine: ${machine()}  `,
        `Date: ${new Date().toISOString()}`,
        "",
        `Median of ${o.runs} runs (~${o.runMs} ms timed each); entries/s and MB/s of 100-byte payloads;`,
        "turn ms = median time from the first append/put of a turn until it is durable.",
        "",
        t,
        "",
        "How it is measured: each turn appends `batch` entries (one `LmdbStorage.append`, or `batch`",
        "raw `put`s of the same encoded bytes into a `log` sub-database) and awaits durability",
        "(`flush()` / `env.flushed`: committed and fsynced, lmdb-js default overlappingSync) before",
        "the next turn; one transaction and one sync per turn. Entry creation (CRC) and the raw",
        "side's encoding are outside the timed sections. Fresh directory per run under os.tmpdir().",
        "Durable rates are bounded by fsync latency, which is noisy on a shared VM: the spread",
        "(min–max) and the median turn ms say more than the ratio between the two sides.",
        `Load average at start / end: ${loadStart} / ${loadavg()}.`,
        "",
        `Reference without fsync (\`noSync\`, commits only; ~${Math.round(o.runMs / 3)} ms timed per run):`,
        "the CPU cost of the storage layer against lmdb-js alone.",
        "",
        tc,
      ].join("\n"),
    );
    console.log("wrote bench/RESULTS.md");
  }
}

await main();
