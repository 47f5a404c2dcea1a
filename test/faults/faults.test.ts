// The short fault schedule under `npm test`: 5 real node processes behind
// per-link proxies, every fault of the catalogue once (partitions, one-way
// cuts, a bridge, refused connections, a slow network, kill -9, SIGSTOP,
// SIGTERM, power cycle of all nodes, a full disk) and a membership change, all
// under concurrent producers and subscribers; then the checker. Pass/fail is
// the checker's (zero anomalies), never a timing; the timings are printed.
// `npm run test:faults -- --minutes 30 --seed N` is the long version.

import { describe, expect, it } from "vitest";
import { FAULTS } from "./faults.ts";
import { summarize } from "./report.ts";
import { runFaults } from "./run.ts";

const SEED = Number(process.env.RAFTBUS_FAULTS_SEED ?? 20251127);

describe("raftbus under faults (short schedule)", () => {
  it(`loses, diverges, duplicates and reorders nothing (seed ${SEED})`, {
    timeout: 10 * 60_000,
  }, async () => {
    const report = await runFaults({
      seed: SEED,
      nodes: 5,
      minutes: 0,
      holdMs: 5_000,
      log: (l) => console.log(l),
    });
    console.log(summarize(report));
    const failed = Object.entries(report.check.anomalies)
      .filter(([, c]) => c.count > 0)
      .map(([k, c]) => `${k}: ${c.count} (${c.examples.join("; ")})`);
    expect(failed).toEqual([]);
    expect(report.processFailures).toEqual([]);
    // Every fault of the catalogue ran, then the membership change.
    expect(report.steps.map((s) => s.faults.join("+"))).toEqual([...FAULTS.map((f) => f.name), "membership"]);
    expect(report.check.info.acknowledgedRecords).toBeGreaterThan(0);
  });
});
