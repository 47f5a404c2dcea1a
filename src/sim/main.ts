// The simulator's command line.
//   npm run sim -- --seed N [--trace]        replay one seed, verbosely
//   npm run sim -- --seeds N                 run seeds 1..N
//   npm run sim -- --from A --count K        run seeds A..A+K-1
// Options: --ticks T (fault-phase ticks per run), --progress P (report every P seeds),
// --fail-fast (stop at the first failing seed). Exit code 1 on any failure; failing
// seeds are also written to .sim-failures/<seed>.txt.

import { mkdirSync, writeFileSync } from "node:fs";
import { replayCommand, SimFailure } from "./failure.ts";
import { DEFAULT_FAULT_TICKS, type RunResult, runSeed } from "./run.ts";

interface Args {
  seed?: number;
  from: number;
  count: number;
  trace: boolean;
  faultTicks: number;
  progress: number;
  failFast: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    from: 1,
    count: 1000,
    trace: false,
    faultTicks: DEFAULT_FAULT_TICKS,
    progress: 500,
    failFast: false,
  };
  const num = (i: number): number => {
    const v = Number(argv[i + 1]);
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${argv[i]} needs a non-negative integer`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case "--seed":
        args.seed = num(i++);
        break;
      case "--seeds":
        args.from = 1;
        args.count = num(i++);
        break;
      case "--from":
        args.from = num(i++);
        break;
      case "--count":
        args.count = num(i++);
        break;
      case "--ticks":
        args.faultTicks = num(i++);
        break;
      case "--progress":
        args.progress = Math.max(1, num(i++));
        break;
      case "--trace":
        args.trace = true;
        break;
      case "--fail-fast":
        args.failFast = true;
        break;
      default:
        throw new Error(`unknown argument ${a} (see src/sim/main.ts)`);
    }
  }
  return args;
}

function describe(r: RunResult): string {
  const sc = r.scenario;
  const refusals = [...r.refusals].map(([k, v]) => `${k}=${v}`).join(" ");
  return [
    `seed ${r.seed}: ${sc.initialVoters.length} voter(s) booting, target ${sc.clusterSize}; ` +
      `electionTick ${sc.raft.electionTick} heartbeatTick ${sc.raft.heartbeatTick} ` +
      `preVote ${sc.raft.preVote} checkQuorum ${sc.raft.checkQuorum} sync ${sc.syncRate}`,
    `  net drop ${sc.net.dropRate} dup ${sc.net.dupRate} delay <=${sc.net.maxDelayTicks} ` +
      `long ${sc.net.longDelayRate}x${sc.net.longDelayTicks} corrupt ${sc.net.corruptRate}` +
      (sc.raft.disableProposalForwarding ? "; proposal forwarding disabled" : ""),
    `  ${r.ticks} ticks (${r.livenessTicks} to recover), ${r.steps} steps, ${r.messages} messages delivered`,
    `  ${r.proposals} proposals, ${r.committed} committed, ${r.leaders} leaders, ${r.reads} reads, ` +
      `${r.crashes} crashes, ${r.partitions} partitions, ${r.snapshots} snapshots, ${r.confChanges} conf changes`,
    `  refusals: ${refusals || "none"}`,
  ].join("\n");
}

function saveFailure(f: SimFailure): void {
  try {
    mkdirSync(".sim-failures", { recursive: true });
    writeFileSync(`.sim-failures/${f.seed}.txt`, `${f.message}\n`);
  } catch {
    // Best effort only: the failure is printed anyway.
  }
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  if (args.seed !== undefined) {
    const trace = args.trace ? (line: string) => console.log(line) : undefined;
    try {
      const r = runSeed(args.seed, { faultTicks: args.faultTicks, trace });
      console.log(describe(r));
      console.log("ok");
      return 0;
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      console.error(`FAIL ${e.behaviour}: ${e.message}`);
      if (!args.trace) console.error(`  trace it: ${replayCommand(e.seed)} --trace`);
      saveFailure(e);
      return 1;
    }
  }

  const started = Date.now();
  const failures: SimFailure[] = [];
  let ticks = 0;
  let committed = 0;
  let ran = 0;
  for (let seed = args.from; seed < args.from + args.count; seed++) {
    try {
      const r = runSeed(seed, { faultTicks: args.faultTicks });
      ticks += r.ticks;
      committed += r.committed;
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      failures.push(e);
      saveFailure(e);
      console.error(`FAIL ${e.behaviour}: ${e.message}`);
      if (args.failFast) {
        ran++;
        break;
      }
    }
    ran++;
    if (ran % args.progress === 0) {
      const s = ((Date.now() - started) / 1000).toFixed(1);
      console.log(`${ran}/${args.count} seeds, ${failures.length} failed, ${s}s`);
    }
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `${ran} seeds (${args.from}..${args.from + ran - 1}) in ${secs}s: ${ran - failures.length} clean, ` +
      `${failures.length} failed; ${ticks} ticks, ${committed} entries committed`,
  );
  const byBehaviour = new Map<string, number>();
  for (const f of failures) byBehaviour.set(f.behaviour, (byBehaviour.get(f.behaviour) ?? 0) + 1);
  if (byBehaviour.size > 0)
    console.log(`  by behaviour: ${[...byBehaviour].map(([b, n]) => `${b} ${n}`).join(", ")}`);
  for (const f of failures.slice(0, 20))
    console.log(`  ${f.behaviour} seed ${f.seed}: ${replayCommand(f.seed)}`);
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = main();
