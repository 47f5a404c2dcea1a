// npm run bench — every issue-8 benchmark, one after the other, each in its own
// process (so one cannot leave anything running for the next): produce, e2e,
// consume, peer (NATS JetStream), limits (LMDB and fastify ceilings), metrics
// cost, and issue 12's snapshot benchmark (snapshots and catch-up under load). Each
// writes its section of bench/RESULTS.md; then this writes the "Targets" section
// from their figures. Arguments are passed to every script:
//
//   npm run bench                        # the full run (minutes; run it on a quiet machine)
//   npm run bench -- --quick             # seconds: checks the scripts, no meaningful figures
//   RAFTBUS_BENCH_RESULTS=/tmp/r.md npm run bench -- --quick   # results elsewhere
//   npm run bench -- --only produce,peer

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fmtInt, fmtMs, fmtRatio, machine, parseArgs, runMain, say, table } from "./lib.ts";
import { resultsPath, writeResultsSection } from "./results-file.ts";

const SCRIPTS = ["produce", "e2e", "consume", "peer", "limits", "metrics-cost", "snapshot"];
const args = parseArgs({ rounds: 3, duration: 8 });
const only = args.extra.get("only")?.split(",");
const passThrough = process.argv.slice(2).filter((a, i, all) => a !== "--only" && all[i - 1] !== "--only");

type Figures = Record<string, Record<string, number | boolean>>;

function runScript(name: string, figuresDir: string): Promise<number> {
  const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", script, ...passThrough], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, RAFTBUS_BENCH_FIGURES: figuresDir },
    });
    const fwd = (sig: NodeJS.Signals) => () => p.kill(sig);
    const onInt = fwd("SIGINT");
    const onTerm = fwd("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    p.once("exit", (code, signal) => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

function targets(f: Figures): string {
  const rows: string[][] = [];
  const verdict = (ok: boolean | undefined) =>
    ok === undefined ? "not measured" : ok ? "**met**" : "**missed**";
  const p = f.peer;
  const l = f.limits;
  const pr = f.produce;
  const c = f.consume;
  const n = (x: number | boolean | undefined) => (typeof x === "number" ? x : Number.NaN);
  if (p) {
    const r = n(p.rbSingle) / n(p.jsSingle256);
    rows.push([
      "1 record/request, 64 conns, durable quorum commit >= 1.0× JetStream (no fsync) with 256 in flight",
      `${fmtInt(n(p.rbSingle))} vs ${fmtInt(n(p.jsSingle256))} records/s: ${fmtRatio(r)} (bench:peer)`,
      verdict(r >= 1),
    ]);
  }
  if (l) {
    const r = n(l.rbSingle) / n(l.echoSingle);
    rows.push([
      "1 record/request, 64 conns: about half the fastify echo ceiling",
      `${fmtInt(n(l.rbSingle))} records/s vs ${fmtInt(n(l.echoSingle))} req/s: ${(r * 100).toFixed(0)}% (bench:limits)`,
      verdict(r >= 0.45),
    ]);
  }
  if (pr) {
    const b = Math.max(n(pr.batchLeader), n(pr.batchAll));
    rows.push([
      "100 records/request >= 250k records/s",
      `${fmtInt(n(pr.batchLeader))} (leader), ${fmtInt(n(pr.batchAll))} (3 nodes) records/s (bench:produce)`,
      verdict(b >= 250_000),
    ]);
    rows.push([
      "sequential produce with fsync: p50 <= 1 ms, p99 <= 3 ms",
      `p50 ${fmtMs(n(pr.seqP50))} ms, p99 ${fmtMs(n(pr.seqP99))} ms (bench:produce)`,
      verdict(n(pr.seqP50) <= 1 && n(pr.seqP99) <= 3),
    ]);
  }
  if (p) {
    const r = n(p.rbConsume) / n(p.jsConsume);
    rows.push([
      "consume over one WebSocket from a follower >= 5.7× JetStream's ordered consumer",
      `${fmtInt(n(p.rbConsume))} vs ${fmtInt(n(p.jsConsume))} records/s: ${fmtRatio(r)} (bench:peer)`,
      verdict(r >= 5.7),
    ]);
  }
  if (c) {
    rows.push([
      "consume over one WebSocket: about 1M records/s",
      `${fmtInt(n(c.ws))} records/s (bench:consume)`,
      verdict(n(c.ws) >= 900_000),
    ]);
    const bounded =
      n(c.rssPeak) - n(c.rssBefore) < Math.max(64, n(c.stalledProducedMB) / 4) && c.resumedOk === true;
    rows.push([
      "stalled subscriber: node RSS stays bounded",
      `${n(c.rssBefore).toFixed(0)} → peak ${n(c.rssPeak).toFixed(0)} MiB while ${n(c.stalledProducedMB).toFixed(0)} MB were produced past it; resumed without gaps: ${c.resumedOk} (bench:consume)`,
      verdict(bounded),
    ]);
  }
  return table(["target (issue 8)", "measured (medians of this run)", "verdict"], rows, [
    false,
    false,
    false,
  ]);
}

/** Issue 12's targets, from bench:snapshot's figures (empty when it did not run). */
function snapshotTargets(f: Figures): string {
  const s = f.snapshot;
  if (!s) return "";
  const n = (x: number | boolean | undefined) => (typeof x === "number" ? x : Number.NaN);
  const verdict = (ok: boolean | undefined, notMeasured?: string) =>
    s.defaults !== true
      ? "n/a (non-default node settings)"
      : notMeasured
        ? `not measured: ${notMeasured}`
        : ok === undefined
          ? "not measured"
          : ok
            ? "**met**"
            : "**missed**";
  const restarts = n(s.restartWindows);
  const noStream =
    n(s.streamedWindows) === restarts
      ? undefined
      : `${restarts - n(s.streamedWindows)} of ${restarts} restart windows streamed no snapshot`;
  const b = (x: number | boolean | undefined) => (typeof x === "boolean" ? x : undefined);
  return table(
    ["target (issue 12)", "measured (this run)", "verdict"],
    [
      [
        "produce p99 while a follower is sent the whole state: baseline's + max(10%, 5 ms)",
        `${fmtMs(n(s.p99Restart))} vs ${fmtMs(n(s.p99Base))} ms (bench:snapshot)`,
        verdict(b(s.p99Ok), noStream),
      ],
      [
        "event-loop delay max < 20 ms on every node meanwhile",
        `${fmtMs(n(s.loopMaxRestart))} ms (bench:snapshot)`,
        verdict(b(s.loopOk), noStream),
      ],
      [
        "no election meanwhile",
        s.electionsOk ? "none" : "see bench:snapshot",
        verdict(b(s.electionsOk), noStream),
      ],
      [
        "RssAnon of every node <= 300 MiB whatever the data",
        `max ${n(s.rssMaxMiB).toFixed(0)} MiB (bench:snapshot)`,
        verdict(b(s.rssOk)),
      ],
      [
        "catch-up past compaction: bytes sent within 10% of the missing bytes",
        s.bytesRatio === undefined
          ? "no snapshot bytes (bench:snapshot)"
          : `${n(s.bytesRatio).toFixed(3)} (bench:snapshot)`,
        s.compacted !== true
          ? verdict(undefined, "the log still reached the follower")
          : verdict(s.bytesRatio === undefined ? undefined : Math.abs(n(s.bytesRatio) - 1) <= 0.1),
      ],
      [
        "catch-up past compaction >= 50 MB/s",
        `${n(s.mbps).toFixed(1)} MB/s (bench:snapshot)`,
        s.compacted !== true
          ? verdict(undefined, "the log still reached the follower")
          : verdict(n(s.mbps) >= 50),
      ],
    ],
    [false, false, false],
  );
}

async function main() {
  const started = machine();
  say(
    `npm run bench${args.quick ? " --quick" : ""}: ${(only ?? SCRIPTS).join(", ")}; results to ${String(resultsPath())}`,
  );
  const figuresDir = mkdtempSync(join(tmpdir(), "raftbus-bench-figures-"));
  const failed: string[] = [];
  const figures: Figures = {};
  const t0 = Date.now();
  try {
    for (const name of only ?? SCRIPTS) {
      say(`\n=== bench:${name} (${((Date.now() - t0) / 1000).toFixed(0)} s into the run) ===`);
      const code = await runScript(name, figuresDir);
      if (code !== 0) {
        failed.push(name);
        say(`bench:${name} FAILED (exit ${code})`);
      }
      try {
        figures[name] = JSON.parse(readFileSync(join(figuresDir, `${name}.json`), "utf8"));
      } catch {
        // no figures: it failed before writing them
      }
    }
  } finally {
    rmSync(figuresDir, { recursive: true, force: true });
  }
  const t = targets(figures);
  const t12 = snapshotTargets(figures);
  say(`\n${t}\n${t12 ? `\n${t12}\n` : ""}`);
  if (args.write) {
    writeResultsSection(
      "<!-- bench:targets -->",
      "<!-- /bench:targets -->",
      "## Targets of issue 8 (bench/all.ts)",
      [
        `Command: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\`  `,
        `Machine: ${started}; the whole run took ${((Date.now() - t0) / 1000).toFixed(0)} s.`,
        "",
        "Each figure comes from the section named beside it, measured in this run; ratios are of medians over",
        "alternating rounds measured in the same script.",
        failed.length > 0 ? `\nFAILED scripts: ${failed.join(", ")}.\n` : "",
        t,
        ...(t12 ? ["", t12] : []),
      ].join("\n"),
    );
  }
  say(
    `done in ${((Date.now() - t0) / 1000).toFixed(0)} s${failed.length ? `; FAILED: ${failed.join(", ")}` : ""}`,
  );
  if (failed.length > 0) throw new Error(`failed: ${failed.join(", ")}`);
}

runMain(main);
