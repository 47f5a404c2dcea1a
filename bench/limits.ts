// bench:limits — raftbus against this machine's own limits, in one run:
//   - the storage ceiling: lmdb-js durable puts of 100-byte records in one
//     transaction per batch, each batch awaited until committed and fsynced (what
//     a group commit of raftbus must do at least once per node), with the batching
//     raftbus's produce workloads can reach: 64 records (64 connections, one
//     record each) and 6400 (64 connections × 100 records);
//   - the HTTP ceiling: a fastify server with the produce route's shape and
//     nothing behind it (bench/echo-server.ts, its own process), under the same
//     autocannon load as bench:produce;
//   - raftbus itself (3 nodes, fsync, leader loaded) under that same load.
// The three alternate within each round; figures are medians over rounds, and
// raftbus is reported as a fraction of each ceiling.
//
//   npm run bench:limits [-- --rounds 3 --duration 8] [--quick] [--no-write]

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { open } from "lmdb";
import { freePort } from "../test/node/proc-cluster.ts";
import {
  commandLine,
  fmtInt,
  fmtMs,
  fmtPct,
  type LoadResult,
  machine,
  median,
  medianLoad,
  onCleanup,
  parseArgs,
  produceLoad,
  RECORD_BYTES,
  runMain,
  saveFigures,
  say,
  sleep,
  startRaftbus,
  table,
  trackChild,
  trackDir,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

const args = parseArgs({ rounds: 3, duration: 8 });
const CONNECTIONS = 64;
const LMDB_BATCHES = [64, 6400];

/** Durable lmdb-js puts of 100-byte records, `batch` per transaction; records/s. */
async function lmdbDurable(batch: number, seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "raftbus-bench-limits-"));
  trackDir(dir);
  try {
    const env = open(dir, { noSubdir: false, maxDbs: 4 });
    const db = env.openDB<Uint8Array, string>("records", { encoding: "binary" });
    const value = new Uint8Array(RECORD_BYTES).fill(7);
    let n = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      for (let k = 0; k < batch; k++, n++) void db.put(`1/0/${n}`, value);
      await env.flushed;
    }
    const rate = (n / (performance.now() - t0)) * 1000;
    await env.close();
    return rate;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startEcho(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const script = fileURLToPath(new URL("./echo-server.ts", import.meta.url));
  const p = spawn(process.execPath, ["--import", "tsx", script, String(port)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  trackChild(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on("data", (b: Buffer) => {
      if (b.toString().includes("listening")) resolve();
    });
    p.once("exit", (code) => reject(new Error(`echo server exited (${code})`)));
  });
  const stop = async () => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGKILL");
    await gone;
  };
  const unregister = onCleanup(stop);
  return {
    url: `http://127.0.0.1:${port}/v1/topics/bench/records`,
    async stop() {
      unregister();
      await stop();
    },
  };
}

async function main() {
  say(`bench:limits: ${args.rounds} round(s) of ${args.duration} s${args.quick ? " (quick)" : ""}`);
  const started = machine();
  const rb = await startRaftbus();
  const echo = await startEcho();
  try {
    await rb.createTopic("bench");
    const url = rb.url(rb.leader, "/v1/topics/bench/records");
    const d = args.duration;
    const lm = LMDB_BATCHES.map(() => [] as number[]);
    const ec: LoadResult[][] = [[], []];
    const raft: LoadResult[][] = [[], []];
    for (let round = 1; round <= args.rounds; round++) {
      const L = (s: string) => `round ${round}/${args.rounds}, ${s}`;
      for (const [i, per] of [1, 100].entries()) {
        raft[i]!.push(
          await produceLoad({
            url,
            connections: CONNECTIONS,
            duration: d,
            perRequest: per,
            label: L(`raftbus ${per}/request`),
          }),
        );
        ec[i]!.push(
          await produceLoad({
            url: echo.url,
            connections: CONNECTIONS,
            duration: d,
            perRequest: per,
            label: L(`fastify echo ${per}/request`),
          }),
        );
      }
      for (const [i, b] of LMDB_BATCHES.entries()) {
        const r = await lmdbDurable(b, d);
        lm[i]!.push(r);
        say(`    ${L(`LMDB durable, ${b} per transaction`)}: ${fmtInt(r)} records/s`);
      }
      await sleep(10);
    }
    const R = raft.map(medianLoad);
    const E = ec.map(medianLoad);
    const M = lm.map(median);
    const t = table(
      [
        "workload (64 connections)",
        "raftbus records/s",
        "fastify echo",
        "raftbus / echo",
        "LMDB durable, same batching",
        "raftbus / LMDB",
        "raftbus p50 / p99 ms",
        "echo p50 / p99 ms",
      ],
      [
        [
          "1 record/request",
          fmtInt(R[0]!.recordsPerSec),
          `${fmtInt(E[0]!.requestsPerSec)} req/s`,
          fmtPct(R[0]!.recordsPerSec / E[0]!.recordsPerSec),
          `${fmtInt(M[0]!)} rec/s (${LMDB_BATCHES[0]}/txn)`,
          fmtPct(R[0]!.recordsPerSec / M[0]!),
          `${fmtMs(R[0]!.p50)} / ${fmtMs(R[0]!.p99)}`,
          `${fmtMs(E[0]!.p50)} / ${fmtMs(E[0]!.p99)}`,
        ],
        [
          "100 records/request",
          fmtInt(R[1]!.recordsPerSec),
          `${fmtInt(E[1]!.requestsPerSec)} req/s (${fmtInt(E[1]!.recordsPerSec)} rec/s)`,
          fmtPct(R[1]!.recordsPerSec / E[1]!.recordsPerSec),
          `${fmtInt(M[1]!)} rec/s (${LMDB_BATCHES[1]}/txn)`,
          fmtPct(R[1]!.recordsPerSec / M[1]!),
          `${fmtMs(R[1]!.p50)} / ${fmtMs(R[1]!.p99)}`,
          `${fmtMs(E[1]!.p50)} / ${fmtMs(E[1]!.p99)}`,
        ],
      ],
    );
    const errors = [...R, ...E].reduce((s, r) => s + r.errors, 0);
    say(`\n${t}\n`);
    if (args.write) {
      writeResultsSection(
        "<!-- bench:limits -->",
        "<!-- /bench:limits -->",
        "## raftbus against this machine's limits (bench/limits.ts)",
        [
          `Command: ${commandLine("bench:limits", args)}  `,
          `Machine: ${started}`,
          "",
          "Storage ceiling: lmdb-js (the library raftbus stores with), one process, durable puts of 100-byte",
          "records, one transaction per batch, each awaited until committed and fsynced; batches of 64 (the most",
          "64 one-record requests can put in one group commit) and 6400 (64 requests of 100). raftbus writes every",
          "record on three nodes, plus its Raft log entry, on the same disk and cores. HTTP ceiling: fastify with the",
          "produce route's body parsing and answer shape and nothing behind it (bench/echo-server.ts, its own",
          "process), under the same autocannon load as raftbus (64 connections, leader only). Medians over",
          "alternating rounds.",
          "",
          t,
          "",
          `Errors over every HTTP run: ${errors}.`,
        ].join("\n"),
      );
    }
    saveFigures("limits", {
      rbSingle: R[0]!.recordsPerSec,
      echoSingle: E[0]!.requestsPerSec,
      rbBatch: R[1]!.recordsPerSec,
      echoBatchRecords: E[1]!.recordsPerSec,
      lmdb64: M[0]!,
      lmdb6400: M[1]!,
      errors,
    });
    if (errors > 0) throw new Error(`${errors} errors`);
  } finally {
    await echo.stop();
    await rb.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
