// The deterministic simulator over many seeds: 3- and 5-node clusters (some
// growing from fewer) under message loss, delay, duplication and reordering,
// clean and partial partitions, crashes that lose unsynced writes, pipelined
// (asynchronous) writes, snapshots and membership changes. After every step the
// whole-cluster properties are checked; a failing seed names the broken
// behaviour and the command that replays it.

import { describe, expect, it } from "vitest";
import { SimFailure } from "../src/sim/failure.ts";
import { type RunResult, runSeed } from "../src/sim/run.ts";

/** Seeds per test, so that progress shows; 6 x 350 = 2,100 seeds. */
const CHUNK = 350;
const CHUNKS = 6;

function runRange(from: number, count: number): { failures: SimFailure[]; results: RunResult[] } {
  const failures: SimFailure[] = [];
  const results: RunResult[] = [];
  for (let seed = from; seed < from + count; seed++) {
    try {
      results.push(runSeed(seed));
    } catch (e) {
      if (!(e instanceof SimFailure)) throw e;
      failures.push(e);
    }
  }
  return { failures, results };
}

function report(failures: SimFailure[]): string {
  return failures
    .slice(0, 10)
    .map((f) => `${f.behaviour} ${f.message}`)
    .join("\n\n");
}

describe("simulator: whole-cluster properties over many seeds", () => {
  for (let i = 0; i < CHUNKS; i++) {
    const from = 1 + i * CHUNK;
    const to = from + CHUNK - 1;
    it(`B66 election safety, B67 log matching, B68 leader completeness, B69 state machine safety and B70 liveness hold for seeds ${from}-${to}`, () => {
      const { failures, results } = runRange(from, CHUNK);
      expect(
        failures.map((f) => `${f.behaviour} seed ${f.seed}`),
        report(failures),
      ).toEqual([]);
      // The runs did something: leaders were elected and entries committed in every one.
      for (const r of results) {
        expect(r.leaders, `seed ${r.seed} elected no leader`).toBeGreaterThan(0);
        expect(r.committed, `seed ${r.seed} committed nothing`).toBeGreaterThan(0);
      }
    });
  }

  it("B6 the same seed replays the exact same run (traces are identical)", () => {
    for (const seed of [7, 42, 1234]) {
      const a: string[] = [];
      const b: string[] = [];
      const outcome = (lines: string[]) => {
        try {
          const r = runSeed(seed, { trace: (l) => lines.push(l) });
          return `ok ${r.ticks} ${r.steps} ${r.committed}`;
        } catch (e) {
          if (!(e instanceof SimFailure)) throw e;
          return `fail ${e.behaviour} at ${e.tick}`;
        }
      };
      expect(outcome(a)).toEqual(outcome(b));
      expect(a.length).toBeGreaterThan(100);
      expect(a).toEqual(b);
    }
  });
});
