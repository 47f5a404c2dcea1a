// Unit tests for src/raft/confchange.ts: simple vs joint changes, learnersNext,
// leaving a joint config, invalid changes and the ConfChange encoding (B51–B56).

import { describe, expect, it } from "vitest";
import {
  applyConfChange,
  type ChangerContext,
  decodeConfChange,
  encodeConfChange,
  votersChangedBy,
} from "../../src/raft/confchange.ts";
import { RaftError } from "../../src/raft/errors.ts";
import { Progress } from "../../src/raft/progress.ts";
import { confStateOf, type TrackerConfig } from "../../src/raft/tracker.ts";
import { type ConfChange, type ConfChangeSingle, ConfChangeType } from "../../src/raft/types.ts";

const { AddVoter, AddLearner, RemoveNode } = ConfChangeType;
const ch = (type: ConfChangeType, nodeId: number): ConfChangeSingle => ({ type, nodeId });

interface Shape {
  voters: number[];
  learners?: number[];
  outgoing?: number[];
  learnersNext?: number[];
  autoLeave?: boolean;
}

const LAST = 10;

function ctx(s: Shape): ChangerContext {
  const config: TrackerConfig = {
    voters: new Set(s.voters),
    votersOutgoing: new Set(s.outgoing ?? []),
    learners: new Set(s.learners ?? []),
    learnersNext: new Set(s.learnersNext ?? []),
    autoLeave: s.autoLeave ?? false,
  };
  const progress = new Map<number, Progress>();
  for (const id of [...s.voters, ...(s.outgoing ?? []), ...(s.learners ?? [])]) {
    if (!progress.has(id)) {
      const pr = new Progress(LAST + 1, 16, 0, (s.learners ?? []).includes(id));
      pr.match = id; // something recognisable
      progress.set(id, pr);
    }
  }
  return { config, progress, lastIndex: LAST, maxInflight: 16, maxInflightBytes: 0 };
}

/** The result as a ConfState (sorted arrays), for readable comparisons. */
function shapeOf(r: { config: TrackerConfig }) {
  return confStateOf(r.config);
}

function cs(s: Shape) {
  const sorted = (a: number[] = []) => [...a].sort((x, y) => x - y);
  return {
    voters: sorted(s.voters),
    learners: sorted(s.learners),
    votersOutgoing: sorted(s.outgoing),
    learnersNext: sorted(s.learnersNext),
    autoLeave: s.autoLeave ?? false,
  };
}

function expectInvalid(c: ChangerContext, cc: ConfChange): void {
  const before = confStateOf(c.config);
  const ids = [...c.progress.keys()];
  let caught: unknown;
  try {
    applyConfChange(c, cc);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(RaftError);
  expect((caught as RaftError).code).toBe("INVALID_CONF_CHANGE");
  // A refused change leaves the input untouched.
  expect(confStateOf(c.config)).toEqual(before);
  expect([...c.progress.keys()]).toEqual(ids);
}

describe("confchange: simple changes (one voter at a time)", () => {
  it("adds a voter directly, with fresh progress, without touching the input", () => {
    const c = ctx({ voters: [1, 2, 3] });
    const r = applyConfChange(c, { changes: [ch(AddVoter, 4)] });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2, 3, 4] }));
    const pr = r.progress.get(4)!;
    expect(pr.next).toBe(LAST + 1);
    expect(pr.match).toBe(0);
    expect(pr.isLearner).toBe(false);
    // New members count as active so CheckQuorum does not depose the leader at once.
    expect(pr.recentActive).toBe(true);
    // Existing progress is shared, the input is not mutated.
    expect(r.progress.get(1)).toBe(c.progress.get(1));
    expect(confStateOf(c.config)).toEqual(cs({ voters: [1, 2, 3] }));
    expect(c.progress.has(4)).toBe(false);
  });

  it("removes a voter and its progress", () => {
    const c = ctx({ voters: [1, 2, 3] });
    const r = applyConfChange(c, { changes: [ch(RemoveNode, 3)] });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2] }));
    expect(r.progress.has(3)).toBe(false);
    expect(c.progress.has(3)).toBe(true);
  });

  it("adds a learner, then promotes it with a simple change", () => {
    const r1 = applyConfChange(ctx({ voters: [1, 2, 3] }), { changes: [ch(AddLearner, 4)] });
    expect(shapeOf(r1)).toEqual(cs({ voters: [1, 2, 3], learners: [4] }));
    expect(r1.progress.get(4)!.isLearner).toBe(true);

    const c2 = ctx({ voters: [1, 2, 3], learners: [4] });
    const r2 = applyConfChange(c2, { changes: [ch(AddVoter, 4)] });
    expect(shapeOf(r2)).toEqual(cs({ voters: [1, 2, 3, 4] }));
    expect(r2.progress.get(4)).toBe(c2.progress.get(4)); // keeps its match
  });

  it("demotes a voter to a learner with a simple change, keeping its progress", () => {
    const c = ctx({ voters: [1, 2, 3] });
    const r = applyConfChange(c, { changes: [ch(AddLearner, 3)] });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2], learners: [3] }));
    expect(r.progress.get(3)).toBe(c.progress.get(3));
  });

  it("learner changes alone never need a joint config", () => {
    const r = applyConfChange(ctx({ voters: [1, 2, 3] }), {
      changes: [ch(AddLearner, 4), ch(AddLearner, 5), ch(AddVoter, 6)],
    });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2, 3, 6], learners: [4, 5] }));
  });

  it("no-op changes (existing voter, existing learner, absent node) are accepted unchanged", () => {
    const c = ctx({ voters: [1, 2, 3], learners: [4] });
    for (const x of [ch(AddVoter, 2), ch(AddLearner, 4), ch(RemoveNode, 9)]) {
      expect(shapeOf(applyConfChange(c, { changes: [x] }))).toEqual(cs({ voters: [1, 2, 3], learners: [4] }));
    }
  });

  it("the first voter of an empty config can be added", () => {
    expect(shapeOf(applyConfChange(ctx({ voters: [] }), { changes: [ch(AddVoter, 1)] }))).toEqual(
      cs({ voters: [1] }),
    );
  });
});

describe("confchange: joint changes", () => {
  it("two voters added enter a joint config that auto-leaves", () => {
    const r = applyConfChange(ctx({ voters: [1, 2, 3] }), { changes: [ch(AddVoter, 4), ch(AddVoter, 5)] });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2, 3, 4, 5], outgoing: [1, 2, 3], autoLeave: true }));
  });

  it("replacing a voter (remove one, add one) is joint; the removed voter keeps progress until the leave", () => {
    const c = ctx({ voters: [1, 2, 3] });
    const joint = applyConfChange(c, { changes: [ch(RemoveNode, 3), ch(AddVoter, 4)] });
    expect(shapeOf(joint)).toEqual(cs({ voters: [1, 2, 4], outgoing: [1, 2, 3], autoLeave: true }));
    expect(joint.progress.get(3)).toBe(c.progress.get(3));

    const left = applyConfChange({ ...c, config: joint.config, progress: joint.progress }, { changes: [] });
    expect(shapeOf(left)).toEqual(cs({ voters: [1, 2, 4] }));
    expect(left.progress.has(3)).toBe(false);
    expect(left.progress.has(4)).toBe(true);
  });

  it("explicitLeave enters a joint config even for one voter, and does not auto-leave", () => {
    const r = applyConfChange(ctx({ voters: [1, 2, 3] }), {
      changes: [ch(AddVoter, 4)],
      explicitLeave: true,
    });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2, 3, 4], outgoing: [1, 2, 3], autoLeave: false }));
  });

  it("a demoted outgoing voter waits in learnersNext and becomes a learner on leave", () => {
    const c = ctx({ voters: [1, 2, 3] });
    const joint = applyConfChange(c, { changes: [ch(AddVoter, 4), ch(AddLearner, 3)] });
    expect(shapeOf(joint)).toEqual(
      cs({ voters: [1, 2, 4], outgoing: [1, 2, 3], learnersNext: [3], autoLeave: true }),
    );
    expect(joint.progress.get(3)).toBe(c.progress.get(3));

    const left = applyConfChange({ ...c, config: joint.config, progress: joint.progress }, { changes: [] });
    expect(shapeOf(left)).toEqual(cs({ voters: [1, 2, 4], learners: [3] }));
    expect(left.progress.get(3)).toBe(c.progress.get(3));
  });

  it("re-adding a voter cancels its pending demotion in the same change", () => {
    const r = applyConfChange(ctx({ voters: [1, 2, 3] }), {
      changes: [ch(AddLearner, 3), ch(AddVoter, 3), ch(AddVoter, 4), ch(AddVoter, 5)],
    });
    expect(shapeOf(r)).toEqual(cs({ voters: [1, 2, 3, 4, 5], outgoing: [1, 2, 3], autoLeave: true }));
  });

  it("a learner that is in the outgoing config is only in learnersNext, never in both", () => {
    const r = applyConfChange(ctx({ voters: [1, 2, 3] }), {
      changes: [ch(AddLearner, 1), ch(AddLearner, 2), ch(AddVoter, 4)],
    });
    const s = shapeOf(r);
    expect(s.learners).toEqual([]);
    expect(s.learnersNext).toEqual([1, 2]);
    expect(s.voters).toEqual([3, 4]);
  });
});

describe("confchange: invalid changes", () => {
  it("leaving a joint config when not in one", () => {
    expectInvalid(ctx({ voters: [1, 2, 3] }), { changes: [] });
  });

  it("any change while joint (leave first)", () => {
    const joint = ctx({ voters: [1, 2, 4], outgoing: [1, 2, 3], autoLeave: true });
    expectInvalid(joint, { changes: [ch(AddLearner, 9)] });
    expectInvalid(joint, { changes: [ch(AddVoter, 9)] });
  });

  it("removing every voter", () => {
    expectInvalid(ctx({ voters: [1] }), { changes: [ch(RemoveNode, 1)] });
    expectInvalid(ctx({ voters: [1, 2] }), { changes: [ch(RemoveNode, 1), ch(RemoveNode, 2)] });
    expectInvalid(ctx({ voters: [1] }), { changes: [ch(AddLearner, 1)] });
  });

  it("bad node ids and unknown change types", () => {
    const c = ctx({ voters: [1, 2, 3] });
    for (const id of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expectInvalid(c, { changes: [ch(AddVoter, id)] });
    }
    expectInvalid(c, { changes: [{ type: 7 as ConfChangeType, nodeId: 4 }] });
  });

  it("entering a joint config from an empty voter set", () => {
    expectInvalid(ctx({ voters: [] }), { changes: [ch(AddVoter, 1), ch(AddVoter, 2)] });
  });

  it("errors are RaftErrors with the INVALID_CONF_CHANGE code, not plain Errors", () => {
    try {
      applyConfChange(ctx({ voters: [1] }), { changes: [] });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(RaftError);
      expect((e as RaftError).code).toBe("INVALID_CONF_CHANGE");
    }
  });
});

describe("confchange: votersChangedBy", () => {
  it("counts voters added or removed, not learners", () => {
    const c = ctx({ voters: [1, 2, 3], learners: [4] }).config;
    expect(votersChangedBy(c, [])).toBe(0);
    expect(votersChangedBy(c, [ch(AddVoter, 2)])).toBe(0);
    expect(votersChangedBy(c, [ch(AddLearner, 5)])).toBe(0);
    expect(votersChangedBy(c, [ch(AddVoter, 4)])).toBe(1);
    expect(votersChangedBy(c, [ch(AddLearner, 3)])).toBe(1);
    expect(votersChangedBy(c, [ch(RemoveNode, 3), ch(AddVoter, 5)])).toBe(2);
    expect(votersChangedBy(c, [ch(AddVoter, 5), ch(RemoveNode, 5)])).toBe(0);
  });
});

describe("confchange: encoding", () => {
  const cases: ConfChange[] = [
    { changes: [] },
    { changes: [ch(AddVoter, 4)] },
    { changes: [ch(AddVoter, 4), ch(RemoveNode, 1), ch(AddLearner, 7)], explicitLeave: true },
    { changes: [ch(AddLearner, 2 ** 53 - 1)], context: new TextEncoder().encode("addr=10.0.0.4:7000") },
    { changes: [], explicitLeave: true, context: new Uint8Array([0, 255, 1]) },
  ];

  it("round-trips changes, explicitLeave and context", () => {
    for (const cc of cases) {
      const back = decodeConfChange(encodeConfChange(cc));
      expect(back.changes).toEqual(cc.changes);
      expect(back.explicitLeave ?? false).toBe(cc.explicitLeave ?? false);
      expect([...(back.context ?? [])]).toEqual([...(cc.context ?? [])]);
    }
  });

  it("decodes from a view into a larger buffer", () => {
    const bytes = encodeConfChange(cases[2]!);
    const big = new Uint8Array(bytes.length + 7);
    big.set(bytes, 3);
    const back = decodeConfChange(big.subarray(3, 3 + bytes.length));
    expect(back.changes).toEqual(cases[2]!.changes);
    expect(back.explicitLeave).toBe(true);
  });

  it("rejects malformed data with INVALID_CONF_CHANGE", () => {
    const good = encodeConfChange(cases[3]!);
    const bad: Uint8Array[] = [
      new Uint8Array(),
      good.subarray(0, 9),
      good.subarray(0, good.length - 1), // truncated context
      new Uint8Array([...good, 0]), // trailing byte
      new Uint8Array([2, ...good.subarray(1)]), // unknown version
    ];
    // A change count that runs past the end.
    const lying = good.slice();
    new DataView(lying.buffer).setUint32(2, 1000);
    bad.push(lying);
    for (const b of bad) {
      let caught: unknown;
      try {
        decodeConfChange(b);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(RaftError);
      expect((caught as RaftError).code).toBe("INVALID_CONF_CHANGE");
    }
  });
});
