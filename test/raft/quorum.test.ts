// Unit tests for src/raft/quorum.ts: majority and joint quorum arithmetic (B53, B55).
// Hand-picked cases plus a seeded comparison against a brute-force definition.

import { describe, expect, it } from "vitest";
import {
  jointActive,
  jointCommitted,
  jointVote,
  majorityCommitted,
  majorityVote,
  type VoteResult,
} from "../../src/raft/quorum.ts";
import { Prng } from "../../src/sim/prng.ts";

const set = (...ids: number[]) => new Set(ids);
const matchOf = (m: Record<number, number>) => (id: number) => m[id] ?? 0;
const votes = (m: Record<number, boolean>) => new Map(Object.entries(m).map(([k, v]) => [Number(k), v]));

/** Brute force: the largest i such that a majority of `voters` has match >= i. */
function refCommitted(voters: Set<number>, match: (id: number) => number): number {
  if (voters.size === 0) return Number.MAX_SAFE_INTEGER;
  const q = Math.floor(voters.size / 2) + 1;
  const candidates = [...voters].map(match);
  let best = 0;
  for (const i of candidates) {
    let n = 0;
    for (const id of voters) if (match(id) >= i) n++;
    if (n >= q && i > best) best = i;
  }
  return best;
}

function refVote(voters: Set<number>, v: Map<number, boolean>): VoteResult {
  if (voters.size === 0) return "won";
  const q = Math.floor(voters.size / 2) + 1;
  let yes = 0;
  let no = 0;
  for (const id of voters) {
    if (v.get(id) === true) yes++;
    else if (v.get(id) === false) no++;
  }
  if (yes >= q) return "won";
  if (voters.size - no < q) return "lost";
  return "pending";
}

/** A deterministic stream of floats in [0, 1) (the simulator's PRNG), so failures replay. */
function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.float();
}

describe("quorum: majority commit index", () => {
  it("an empty config commits everything (so an empty joint half never holds back)", () => {
    expect(majorityCommitted(set(), matchOf({}))).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("a single voter commits what it has", () => {
    expect(majorityCommitted(set(7), matchOf({ 7: 12 }))).toBe(12);
    expect(majorityCommitted(set(7), matchOf({}))).toBe(0);
  });

  it("odd and even sizes take the value a majority has reached", () => {
    expect(majorityCommitted(set(1, 2, 3), matchOf({ 1: 5, 2: 3, 3: 1 }))).toBe(3);
    expect(majorityCommitted(set(1, 2, 3), matchOf({ 1: 5, 2: 5, 3: 1 }))).toBe(5);
    // 4 voters need 3: the third-highest match.
    expect(majorityCommitted(set(1, 2, 3, 4), matchOf({ 1: 4, 2: 3, 3: 2, 4: 1 }))).toBe(2);
    expect(majorityCommitted(set(1, 2, 3, 4), matchOf({ 1: 9, 2: 9, 3: 0, 4: 0 }))).toBe(0);
    expect(majorityCommitted(set(1, 2, 3, 4, 5), matchOf({ 1: 10, 2: 8, 3: 6, 4: 4, 5: 2 }))).toBe(6);
  });

  it("a voter with no known match counts as 0; non-voters do not count", () => {
    expect(majorityCommitted(set(1, 2, 3), matchOf({ 1: 5, 9: 5, 8: 5 }))).toBe(0);
  });

  it("agrees with the brute-force definition on random configs", () => {
    const r = rng(51);
    for (let t = 0; t < 2000; t++) {
      const n = 1 + Math.floor(r() * 7);
      const voters = new Set<number>();
      while (voters.size < n) voters.add(1 + Math.floor(r() * 9));
      const m: Record<number, number> = {};
      for (const id of voters) if (r() < 0.85) m[id] = Math.floor(r() * 6);
      expect(majorityCommitted(voters, matchOf(m))).toBe(refCommitted(voters, matchOf(m)));
    }
  });

  it("agrees with the brute-force definition on large configs (more voters than any buffer guess)", () => {
    const r = rng(53);
    for (let t = 0; t < 200; t++) {
      const n = 15 + Math.floor(r() * 50);
      const voters = new Set<number>();
      while (voters.size < n) voters.add(1 + Math.floor(r() * 200));
      const m: Record<number, number> = {};
      for (const id of voters) m[id] = Math.floor(r() * 1000);
      expect(majorityCommitted(voters, matchOf(m))).toBe(refCommitted(voters, matchOf(m)));
      // A small config right after a large one is not confused by leftovers.
      expect(majorityCommitted(set(1, 2, 3), matchOf({ 1: 1, 2: 2, 3: 3 }))).toBe(2);
    }
  });
});

describe("quorum: majority vote", () => {
  it("an empty config wins", () => {
    expect(majorityVote(set(), votes({}))).toBe("won");
  });

  it("won, lost and pending for 1, 3 and 4 voters", () => {
    expect(majorityVote(set(1), votes({ 1: true }))).toBe("won");
    expect(majorityVote(set(1), votes({ 1: false }))).toBe("lost");
    expect(majorityVote(set(1), votes({}))).toBe("pending");
    expect(majorityVote(set(1, 2, 3), votes({ 1: true, 2: true }))).toBe("won");
    expect(majorityVote(set(1, 2, 3), votes({ 1: true, 2: false }))).toBe("pending");
    expect(majorityVote(set(1, 2, 3), votes({ 1: true, 2: false, 3: false }))).toBe("lost");
    // An even split of 4 loses: 2 grants can never reach 3.
    expect(majorityVote(set(1, 2, 3, 4), votes({ 1: true, 2: true, 3: false, 4: false }))).toBe("lost");
    expect(majorityVote(set(1, 2, 3, 4), votes({ 1: true, 2: true }))).toBe("pending");
  });

  it("votes of non-voters are ignored", () => {
    expect(majorityVote(set(1, 2, 3), votes({ 1: true, 7: true, 8: true }))).toBe("pending");
    expect(majorityVote(set(1, 2, 3), votes({ 1: false, 7: true, 8: true, 9: true }))).toBe("pending");
  });

  it("agrees with the brute-force definition on random configs", () => {
    const r = rng(52);
    for (let t = 0; t < 2000; t++) {
      const n = Math.floor(r() * 7);
      const voters = new Set<number>();
      while (voters.size < n) voters.add(1 + Math.floor(r() * 9));
      const v = new Map<number, boolean>();
      for (let id = 1; id <= 9; id++) {
        const x = r();
        if (x < 0.4) v.set(id, true);
        else if (x < 0.7) v.set(id, false);
      }
      expect(majorityVote(voters, v)).toBe(refVote(voters, v));
    }
  });
});

describe("quorum: joint configs", () => {
  it("commit is the minimum of both halves", () => {
    const j = { incoming: set(1, 2, 3), outgoing: set(1, 4, 5) };
    // incoming majority at 5 (1,2), outgoing majority only at 2 (1 and 4 have >= 2).
    expect(jointCommitted(j, matchOf({ 1: 5, 2: 5, 3: 0, 4: 2, 5: 0 }))).toBe(2);
    expect(jointCommitted(j, matchOf({ 1: 5, 2: 1, 3: 1, 4: 5, 5: 5 }))).toBe(1);
  });

  it("a joint config with an empty outgoing half behaves like the incoming majority", () => {
    const m = matchOf({ 1: 4, 2: 7, 3: 1 });
    expect(jointCommitted({ incoming: set(1, 2, 3), outgoing: set() }, m)).toBe(
      majorityCommitted(set(1, 2, 3), m),
    );
    expect(jointVote({ incoming: set(1, 2, 3), outgoing: set() }, votes({ 2: true, 3: true }))).toBe("won");
  });

  it("an election needs a majority in both halves", () => {
    const j = { incoming: set(1, 2, 3), outgoing: set(3, 4, 5) };
    expect(jointVote(j, votes({ 1: true, 2: true }))).toBe("pending"); // won + pending
    expect(jointVote(j, votes({ 1: true, 2: true, 4: false, 5: false }))).toBe("lost"); // won + lost
    expect(jointVote(j, votes({ 1: true, 2: true, 4: true }))).toBe("pending");
    expect(jointVote(j, votes({ 1: true, 3: true, 4: true }))).toBe("won");
    expect(jointVote(j, votes({ 1: false, 2: false, 4: true, 5: true }))).toBe("lost"); // lost + won
    expect(jointVote(j, votes({ 1: false, 2: false, 4: false, 5: false }))).toBe("lost");
    expect(jointVote(j, votes({}))).toBe("pending");
  });

  it("jointVote and jointCommitted agree with the definition on random joint configs", () => {
    const r = rng(55);
    for (let t = 0; t < 2000; t++) {
      const mk = (min: number) => {
        const n = min + Math.floor(r() * 5);
        const s = new Set<number>();
        while (s.size < n) s.add(1 + Math.floor(r() * 7));
        return s;
      };
      const j = { incoming: mk(1), outgoing: mk(0) };
      const v = new Map<number, boolean>();
      const m: Record<number, number> = {};
      for (let id = 1; id <= 7; id++) {
        const x = r();
        if (x < 0.45) v.set(id, true);
        else if (x < 0.7) v.set(id, false);
        m[id] = Math.floor(r() * 5);
      }
      const a = refVote(j.incoming, v);
      const b = refVote(j.outgoing, v);
      const want: VoteResult =
        a === "lost" || b === "lost" ? "lost" : a === "won" && b === "won" ? "won" : "pending";
      expect(jointVote(j, v)).toBe(want);
      expect(jointCommitted(j, matchOf(m))).toBe(
        Math.min(refCommitted(j.incoming, matchOf(m)), refCommitted(j.outgoing, matchOf(m))),
      );
    }
  });

  it("jointActive needs an active quorum in both halves (CheckQuorum)", () => {
    const j = { incoming: set(1, 2, 3), outgoing: set(1, 4, 5) };
    expect(jointActive(j, (id) => id === 1 || id === 2 || id === 4)).toBe(true);
    expect(jointActive(j, (id) => id === 1 || id === 2 || id === 3)).toBe(false);
    expect(jointActive(j, (id) => id === 1 || id === 4 || id === 5)).toBe(false);
    expect(jointActive({ incoming: set(1, 2, 3), outgoing: set() }, (id) => id !== 3)).toBe(true);
    expect(jointActive({ incoming: set(1, 2, 3), outgoing: set() }, (id) => id === 1)).toBe(false);
  });
});
