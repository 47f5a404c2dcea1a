// The checker must catch what it claims to catch: each anomaly is planted in
// an otherwise clean synthetic history and must be reported (and only it).

import { describe, expect, it } from "vitest";
import { type Anomalies, type CheckInput, check } from "./checker.ts";
import type { FinalLogs, LogRecord } from "./final-read.ts";
import type { Attempt } from "./workload.ts";

let nextId = 1;
function attempt(
  values: [string, number][],
  outcome: Attempt["outcome"],
  offsets: [number, number][] | undefined,
  t0: number,
  t1: number,
  key?: string,
): Attempt {
  return {
    id: nextId++,
    producer: 0,
    node: 1,
    key,
    records: values.map(([value, partition]) => ({ value, partition })),
    t0,
    t1,
    outcome,
    status: outcome === "ok" ? 200 : outcome === "fail" ? 503 : 504,
    code: undefined,
    offsets: offsets?.map(([partition, offset]) => ({ partition, offset })),
  };
}

function log(values: string[]): LogRecord[] {
  return values.map((value, offset) => ({ offset, value, timestamp: 1000 + offset }));
}

/** Three nodes with the same single-partition log. */
function same(values: string[]): FinalLogs {
  return new Map([1, 2, 3].map((n) => [n, new Map([[0, log(values)]])]));
}

function base(): CheckInput {
  return {
    attempts: [
      attempt([["a", 0]], "ok", [[0, 0]], 0, 10),
      attempt(
        [
          ["b", 0],
          ["c", 0],
        ],
        "ok",
        [
          [0, 1],
          [0, 2],
        ],
        20,
        30,
        "k1",
      ),
      attempt([["d", 0]], "info", undefined, 40, 50),
      attempt([["e", 0]], "fail", undefined, 40, 50),
    ],
    idempotentValues: new Set(["b", "c"]),
    logs: same(["a", "b", "c", "d"]),
    partitions: 1,
    subscribers: [{ node: 1, partition: 0, view: new Map([[0, "a"]]), anomalies: [], next: 1 }],
  };
}

function only(a: Anomalies, name: keyof Anomalies): void {
  for (const [k, c] of Object.entries(a)) expect([k, c.count > 0]).toEqual([k, k === name]);
}

describe("the fault checker", () => {
  it("passes a clean history (an indeterminate write may or may not be there)", () => {
    const r = check(base());
    expect(r.ok).toBe(true);
    expect(r.info.acknowledgedRecords).toBe(3);
    expect(r.info.indeterminatePresent).toBe(1);
    const without = check({ ...base(), logs: same(["a", "b", "c"]) });
    expect(without.ok).toBe(true);
  });

  it("reports a lost acknowledged write", () => {
    const i = base();
    i.logs = same(["b", "c", "d"]);
    i.subscribers = [];
    const r = check(i);
    expect(r.ok).toBe(false);
    // "a" is lost, and b/c then sit at other offsets than acknowledged.
    expect(r.anomalies.lost.count).toBe(1);
    expect(r.anomalies.misplaced.count).toBe(2);
  });

  it("reports divergent logs and holes", () => {
    const i = base();
    i.logs.get(2)!.set(0, log(["a", "b", "x", "d"]));
    expect(check(i).anomalies.divergent.count).toBe(1);
    const j = base();
    j.logs.get(3)!.set(0, [
      { offset: 0, value: "a", timestamp: 1 },
      { offset: 2, value: "c", timestamp: 3 },
    ]);
    expect(check(j).anomalies.divergent.count).toBe(1);
  });

  it("a shorter log is lagging, not divergent", () => {
    const i = base();
    i.logs.get(3)!.set(0, log(["a", "b"]));
    const r = check(i);
    expect(r.ok).toBe(true);
    expect(r.info.laggingNodes).toEqual(["node 3 p0: 2/4"]);
  });

  it("reports a duplicate of an Idempotency-Key request, allows one of a keyless retry", () => {
    const i = base();
    i.logs = same(["a", "b", "c", "d", "b", "c"]);
    const r = check(i);
    only(r.anomalies, "duplicates");
    expect(r.anomalies.duplicates.count).toBe(2);
    const j = base();
    j.attempts.push(attempt([["d", 0]], "info", undefined, 60, 70));
    j.logs = same(["a", "b", "c", "d", "d"]);
    const r2 = check(j);
    expect(r2.ok).toBe(true);
    expect(r2.info.allowedDuplicates).toBe(1);
    j.logs = same(["a", "b", "c", "d", "d", "d"]);
    only(check(j).anomalies, "excessCopies");
  });

  it("reports phantoms and refused writes that appear", () => {
    const i = base();
    i.logs = same(["a", "b", "c", "d", "zzz"]);
    only(check(i).anomalies, "phantom");
    i.logs = same(["a", "b", "c", "d", "e"]);
    only(check(i).anomalies, "failedButPresent");
  });

  it("reports a torn request and a real-time order violation", () => {
    const i = base();
    i.logs = same(["a", "b", "d"]);
    const r = check(i);
    expect(r.anomalies.torn.count).toBe(1);
    const j = base();
    // Sent after "a" was answered, yet acknowledged below it.
    j.attempts.push(attempt([["f", 0]], "ok", [[0, 0]], 100, 110));
    expect(check(j).anomalies.realtimeOrder.count).toBe(1);
  });

  it("reports stream anomalies and subscriber views that disagree with the final log", () => {
    const i = base();
    i.subscribers = [
      {
        node: 2,
        partition: 0,
        view: new Map([
          [0, "a"],
          [1, "x"],
        ]),
        anomalies: [{ node: 2, partition: 0, conn: 1, kind: "gap", detail: "expected offset 1, got 3" }],
        next: 2,
      },
    ];
    const r = check(i);
    expect(r.anomalies.streamOrder.count).toBe(1);
    expect(r.anomalies.subscriberDisagrees.count).toBe(1);
  });

  it("reports decreasing timestamps", () => {
    const i = base();
    const l = log(["a", "b", "c", "d"]);
    l[2]!.timestamp = 0;
    i.logs = new Map([[1, new Map([[0, l]])]]);
    only(check(i).anomalies, "timestamps");
  });
});
