// One simulated run from a seed: a fault phase with client load, then a heal
// phase that must end in a leader and a committed fresh proposal (B70). Any
// broken invariant, or any throw from the core, fails the run with its seed.

import { Cluster } from "./cluster.ts";
import { InvariantViolation, SimFailure } from "./failure.ts";
import { Faults } from "./faults.ts";
import { LivenessProbe, livenessBound } from "./liveness.ts";
import { ClientLoad } from "./load.ts";
import { Prng } from "./prng.ts";
import { makeScenario, type Scenario } from "./scenario.ts";
import { describeCluster } from "./trace.ts";

/** Ticks of the fault phase by default: short enough for thousands of seeds in a test run. */
export const DEFAULT_FAULT_TICKS = 500;

export interface RunOptions {
  faultTicks?: number;
  /** Receives every event, when tracing. */
  trace?: (line: string) => void;
}

export interface RunResult {
  seed: number;
  scenario: Scenario;
  ticks: number;
  steps: number;
  proposals: number;
  committed: number;
  leaders: number;
  reads: number;
  crashes: number;
  partitions: number;
  snapshots: number;
  confChanges: number;
  messages: number;
  livenessTicks: number;
  refusals: Map<string, number>;
}

export function runSeed(seed: number, opts: RunOptions = {}): RunResult {
  const prng = new Prng(seed);
  const sc = makeScenario(seed, prng.fork(), { faultTicks: opts.faultTicks ?? DEFAULT_FAULT_TICKS });
  const cluster = new Cluster(sc, prng.fork(), opts.trace);
  const faults = new Faults(cluster, prng.fork(), sc);
  const load = new ClientLoad(cluster, prng.fork(), sc);
  const snapPrng = prng.fork();
  const reportUnreachableRate = 0.2;

  const round = (faulty: boolean): void => {
    cluster.now++;
    if (faulty) {
      faults.step();
      load.step();
    } else {
      faults.healedStep();
    }
    for (const n of cluster.nodes.values()) {
      if (snapPrng.chance(sc.rates.snapshot)) cluster.maybeSnapshot(n);
    }
    cluster.tickAll();
    cluster.deliver(reportUnreachableRate);
    cluster.background();
    cluster.trace(() => describeCluster(cluster));
  };

  let livenessTicks = 0;
  try {
    for (const id of sc.initialVoters) cluster.start(id, sc.initialVoters);
    for (let t = 0; t < sc.faultTicks; t++) round(true);
    faults.healAll();
    cluster.inv.forgetReads();
    const probe = new LivenessProbe(cluster, load, sc.raft.electionTick);
    const bound = livenessBound(cluster, sc);
    let met = false;
    for (; livenessTicks < bound; livenessTicks++) {
      probe.step();
      round(false);
      if (probe.met()) {
        met = true;
        break;
      }
    }
    if (!met) throw new InvariantViolation("B70", probe.explain());
  } catch (e) {
    if (e instanceof InvariantViolation) {
      throw new SimFailure(seed, e.behaviour, cluster.now, e.message, e);
    }
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    throw new SimFailure(seed, "CRASH", cluster.now, `the core or simulator threw: ${msg}`, e);
  }

  return {
    seed,
    scenario: sc,
    ticks: cluster.now,
    steps: cluster.stats.steps,
    proposals: load.proposals,
    committed: cluster.inv.maxCommitted,
    leaders: cluster.inv.leadersElected,
    reads: cluster.inv.readsServed,
    crashes: cluster.stats.crashes,
    partitions: faults.partitions,
    snapshots: cluster.stats.snapshots,
    confChanges: load.confChanges,
    messages: cluster.net.stats.delivered,
    livenessTicks,
    refusals: cluster.stats.refusals,
  };
}
