// Behaviour tests B1–B13: terms and roles, and elections. Section numbers are
// the Raft paper's (Ongaro & Ousterhout, 2014); bracketed names are the etcd
// raft tests a behaviour is drawn from (see docs/raft-behaviours.md).

import { describe, expect, it } from "vitest";
import {
  EntryType,
  emptyConfState,
  MemoryStorage,
  type Message,
  MessageType,
  makeEntry,
  NONE,
  type RaftNode,
  Role,
  type SnapshotChunk,
} from "../../src/raft/index.ts";
import { Cluster, enc } from "./harness.ts";
import { msg, Solo, storageWith, testRng } from "./solo.ts";

// ---- helpers (local to this file) ----------------------------------------------

/** A one-chunk snapshot message body at index 0 (nothing to install). */
function emptySnapChunk(): SnapshotChunk {
  return {
    metadata: { index: 0, term: 0, conf: emptyConfState() },
    offset: 0,
    totalBytes: 0,
    data: new Uint8Array(),
    done: true,
  };
}

function ids(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/**
 * Persists, sends, applies and advances the Readies `id` holds, in order. Like
 * the harness's release, but a Ready returned by an advance is queued behind the
 * Readies still held (advance order), and immediate messages, already sent when
 * the Ready was held, are not sent twice.
 */
function releaseHeld(c: Cluster, id: number): void {
  const m = c.get(id);
  m.hold = false;
  const q = m.held.map((rd) => ({ rd, immediateSent: true }));
  m.held = [];
  while (q.length > 0) {
    const { rd, immediateSent } = q.shift()!;
    if (!immediateSent) c.queue.push(...rd.immediateMessages);
    if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
    m.storage.append(rd.entries);
    if (rd.hardState) m.storage.setHardState(rd.hardState);
    c.queue.push(...rd.messages);
    m.applied.push(...rd.committedEntries);
    if (rd.confState) m.storage.setConfState(rd.confState);
    const next = m.node.advance(rd);
    if (next) q.push({ rd: next, immediateSent: false });
  }
}

/**
 * A deterministic run with partitions, dropped messages, restarts and proposals;
 * with `async`, nodes also hold their Readies (writes in flight) for a while, and
 * a restart loses whatever was held (a crash before fsync). `check` runs before
 * every third delivered message and after every tick.
 */
function chaos(c: Cluster, ticks: number, seed: number, check: () => void, async = false): void {
  const rnd = testRng(seed);
  const members = [...c.members.keys()];
  let delivered = 0;
  c.filter = () => {
    if (++delivered % 3 === 0) check();
    return rnd(10) !== 0; // drop 10%
  };
  for (let t = 0; t < ticks; t++) {
    if (t % 20 === 0) {
      c.heal();
      const k = rnd(4);
      if (k === 1) c.isolate(members[rnd(members.length)]!);
      else if (k === 2) c.cutLink(members[rnd(members.length)]!, members[rnd(members.length)]!);
    }
    if (async) {
      for (const id of members) {
        const m = c.get(id);
        if (m.hold && rnd(3) === 0) releaseHeld(c, id);
        else if (!m.hold && rnd(8) === 0) m.hold = true;
      }
    }
    if (t % 45 === 30) {
      c.restart(members[rnd(members.length)]!); // held Readies are lost with the old node
      check();
    }
    if (t % 3 === 0) {
      for (const l of c.leaders()) {
        try {
          c.handle(l, c.node(l).propose(enc(`p${t}`)));
        } catch {
          // a refused proposal is fine here
        }
      }
    }
    c.tickAll(1);
    check();
  }
  for (const id of members) if (c.get(id).hold) releaseHeld(c, id);
  c.filter = undefined;
  c.heal();
}

// ---- Terms and roles ---------------------------------------------------------------

describe("terms and roles", () => {
  it("B1 boots as a follower at term 0, with no vote and no leader (§5.1, §5.2)", () => {
    const s = new Solo(1, [1, 2, 3]);
    const st = s.status();
    expect(st.role).toBe(Role.Follower);
    expect(st.term).toBe(0);
    expect(st.vote).toBe(NONE);
    expect(st.leader).toBe(NONE);
    expect(st.commit).toBe(0);
    expect(st.lastIndex).toBe(0);
    // Booting changes no term or vote and sends nothing.
    for (const rd of s.readies) expect(rd.hardState).toBeUndefined();
    expect(s.out).toEqual([]);
  });

  it("B1 a restarted leader boots as a follower with its persisted term and vote (§5.1)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const term = c.node(1).status().term;
    expect(term).toBeGreaterThan(0);
    c.restart(1);
    const st = c.node(1).status();
    expect(st.role).toBe(Role.Follower);
    expect(st.term).toBe(term);
    expect(st.vote).toBe(1);
    expect(st.leader).toBe(NONE);
  });

  // Builds a node of the given role: term 1 for follower, candidate and leader,
  // term 0 for the pre-candidate. Five voters, so one vote decides nothing.
  function inRole(role: Role): Solo {
    const peers = ids(5);
    switch (role) {
      case Role.Follower: {
        const s = new Solo(1, peers, { preVote: false, checkQuorum: false });
        s.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 1 }));
        expect(s.status()).toMatchObject({ role: Role.Follower, term: 1, leader: 2 });
        return s;
      }
      case Role.PreCandidate: {
        const s = new Solo(1, peers, { preVote: true, checkQuorum: false });
        s.campaign();
        expect(s.status()).toMatchObject({ role: Role.PreCandidate, term: 0 });
        return s;
      }
      case Role.Candidate: {
        const s = new Solo(1, peers, { preVote: false, checkQuorum: false });
        s.campaign();
        expect(s.status()).toMatchObject({ role: Role.Candidate, term: 1, vote: 1 });
        return s;
      }
      case Role.Leader: {
        const s = new Solo(1, peers, { preVote: false, checkQuorum: false });
        s.campaign();
        s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 1 }));
        s.step(msg(MessageType.VoteResp, { from: 3, to: 1, term: 1 }));
        expect(s.status()).toMatchObject({ role: Role.Leader, term: 1 });
        return s;
      }
    }
  }

  const roles = [Role.Follower, Role.PreCandidate, Role.Candidate, Role.Leader];
  const higher: { name: string; m: Message; leader: number; vote: number }[] = [
    { name: "App", m: msg(MessageType.App, { from: 2, to: 1, term: 5 }), leader: 2, vote: NONE },
    { name: "Heartbeat", m: msg(MessageType.Heartbeat, { from: 2, to: 1, term: 5 }), leader: 2, vote: NONE },
    {
      name: "Vote",
      m: msg(MessageType.Vote, { from: 3, to: 1, term: 5, index: 10, logTerm: 4 }),
      leader: NONE,
      vote: 3,
    },
    {
      name: "Snap",
      m: msg(MessageType.Snap, { from: 2, to: 1, term: 5, snapshot: emptySnapChunk() }),
      leader: 2,
      vote: NONE,
    },
    { name: "AppResp", m: msg(MessageType.AppResp, { from: 3, to: 1, term: 5 }), leader: NONE, vote: NONE },
    { name: "SnapResp", m: msg(MessageType.SnapResp, { from: 3, to: 1, term: 5 }), leader: NONE, vote: NONE },
    {
      name: "HeartbeatResp",
      m: msg(MessageType.HeartbeatResp, { from: 3, to: 1, term: 5 }),
      leader: NONE,
      vote: NONE,
    },
    {
      name: "rejected VoteResp",
      m: msg(MessageType.VoteResp, { from: 3, to: 1, term: 5, reject: true }),
      leader: NONE,
      vote: NONE,
    },
    {
      name: "rejected PreVoteResp",
      m: msg(MessageType.PreVoteResp, { from: 3, to: 1, term: 5, reject: true }),
      leader: NONE,
      vote: NONE,
    },
  ];

  for (const role of roles) {
    for (const h of higher) {
      it(`B2 a ${role} adopts the term of a higher-term ${h.name} and becomes follower (§5.1)`, () => {
        const s = inRole(role);
        s.readies = [];
        s.step(h.m);
        const st = s.status();
        expect(st.term).toBe(5);
        expect(st.role).toBe(Role.Follower);
        expect(st.leader).toBe(h.leader);
        expect(st.vote).toBe(h.vote);
        // The new term is persisted.
        expect(s.readies.some((rd) => rd.hardState?.term === 5)).toBe(true);
        expect(s.storage.initialState().hardState.term).toBe(5);
      });
    }
  }

  for (const role of roles) {
    it(`B2 a higher-term PreVote or granted PreVoteResp does not change a ${role}'s term (§9.6 PreVote)`, () => {
      const s = inRole(role);
      const before = s.status();
      s.take();
      s.step(msg(MessageType.PreVote, { from: 3, to: 1, term: 5, index: 10, logTerm: 4 }));
      let st = s.status();
      expect(st.term).toBe(before.term);
      expect(st.vote).toBe(before.vote);
      expect(st.role).toBe(before.role);
      // An up-to-date pre-vote for a later term is granted, at the asked term.
      const resp = s.take().filter((m) => m.type === MessageType.PreVoteResp);
      expect(resp).toHaveLength(1);
      expect(resp[0]).toMatchObject({ to: 3, term: 5, reject: false });

      s.step(msg(MessageType.PreVoteResp, { from: 4, to: 1, term: 5 }));
      st = s.status();
      expect(st.term).toBe(before.term);
      expect(st.vote).toBe(before.vote);
      expect(st.role).toBe(before.role);
    });
  }

  // Builds a node of the given role at term 5 with log [1, 1, 2].
  function atTerm5(role: Role): Solo {
    const peers = [1, 2, 3];
    switch (role) {
      case Role.Follower: {
        const s = new Solo(1, peers, { preVote: false }, storageWith([1, 1, 2], { term: 4 }));
        s.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 5 }));
        expect(s.status()).toMatchObject({ role: Role.Follower, term: 5, leader: 2 });
        return s;
      }
      case Role.PreCandidate: {
        const s = new Solo(1, peers, { preVote: true }, storageWith([1, 1, 2], { term: 5 }));
        s.campaign();
        expect(s.status()).toMatchObject({ role: Role.PreCandidate, term: 5 });
        return s;
      }
      case Role.Candidate: {
        const s = new Solo(1, peers, { preVote: false }, storageWith([1, 1, 2], { term: 4 }));
        s.campaign();
        expect(s.status()).toMatchObject({ role: Role.Candidate, term: 5 });
        return s;
      }
      case Role.Leader: {
        const s = new Solo(1, peers, { preVote: false }, storageWith([1, 1, 2], { term: 4 }));
        s.campaign();
        s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 5 }));
        expect(s.status()).toMatchObject({ role: Role.Leader, term: 5 });
        return s;
      }
    }
  }

  const stale: { name: string; m: Message }[] = [
    {
      name: "App with a conflicting entry",
      m: msg(MessageType.App, {
        from: 3,
        to: 1,
        term: 3,
        index: 1,
        logTerm: 1,
        entries: [makeEntry(3, 2, enc("stale"))],
        commit: 2,
      }),
    },
    { name: "Heartbeat", m: msg(MessageType.Heartbeat, { from: 3, to: 1, term: 3, commit: 3 }) },
    { name: "Vote", m: msg(MessageType.Vote, { from: 3, to: 1, term: 3, index: 9, logTerm: 3 }) },
    { name: "PreVote", m: msg(MessageType.PreVote, { from: 3, to: 1, term: 3, index: 9, logTerm: 3 }) },
    { name: "granted VoteResp", m: msg(MessageType.VoteResp, { from: 3, to: 1, term: 3 }) },
    { name: "granted PreVoteResp", m: msg(MessageType.PreVoteResp, { from: 3, to: 1, term: 3 }) },
    { name: "AppResp", m: msg(MessageType.AppResp, { from: 3, to: 1, term: 3, index: 4 }) },
    { name: "HeartbeatResp", m: msg(MessageType.HeartbeatResp, { from: 3, to: 1, term: 3 }) },
    { name: "TimeoutNow", m: msg(MessageType.TimeoutNow, { from: 3, to: 1, term: 3 }) },
    { name: "Snap", m: msg(MessageType.Snap, { from: 3, to: 1, term: 3, snapshot: emptySnapChunk() }) },
  ];

  for (const role of roles) {
    for (const x of stale) {
      it(`B3 a ${role} ignores a stale-term ${x.name}; its state is unchanged (§5.1)`, () => {
        const s = atTerm5(role);
        const before = s.status();
        const logBefore = s.storage.entries(1, s.storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
        const hsBefore = s.storage.initialState().hardState;
        s.take();
        s.step(x.m);
        expect(s.status()).toEqual(before);
        expect(s.storage.entries(1, s.storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER)).toEqual(logBefore);
        expect(s.storage.initialState().hardState).toEqual(hsBefore);
        // Nothing is granted; any answer carries our newer term so the sender can catch up.
        for (const out of s.take()) {
          expect(out.term).toBe(5);
          expect(out.to).toBe(3);
          if (out.type === MessageType.VoteResp || out.type === MessageType.PreVoteResp) {
            expect(out.reject).toBe(true);
          }
        }
      });
    }
  }

  it("B4 the term never decreases and the vote never changes within a term, across faults, async writes and restarts", () => {
    let termsSeen = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const c = new Cluster(ids(5), { preVote: seed !== 2, checkQuorum: seed !== 3 });
      type Seen = { node: RaftNode; term: number; vote: number; dterm: number; dvote: number };
      const seen = new Map<number, Seen>();
      let violations = 0;
      const check = () => {
        for (const [id, m] of c.members) {
          const st = m.node.status();
          const hs = m.storage.initialState().hardState;
          const prev = seen.get(id);
          if (prev) {
            // A restart loses what was not yet durable (nothing depending on it was
            // sent), so a new incarnation is compared with the durable state.
            const restarted = prev.node !== m.node;
            const term = restarted ? prev.dterm : prev.term;
            const vote = restarted ? prev.dvote : prev.vote;
            if (st.term < term) violations++;
            if (st.term === term && vote !== NONE && st.vote !== vote) violations++;
            if (hs.term < prev.dterm) violations++;
            if (hs.term === prev.dterm && prev.dvote !== NONE && hs.vote !== prev.dvote) violations++;
          }
          seen.set(id, { node: m.node, term: st.term, vote: st.vote, dterm: hs.term, dvote: hs.vote });
        }
      };
      chaos(c, 300, seed, check, seed > 3);
      expect(violations).toBe(0);
      // Each run changed leader at least once, and runs overall saw many terms.
      const maxTerm = Math.max(...[...seen.values()].map((v) => v.term));
      expect(maxTerm).toBeGreaterThanOrEqual(2);
      termsSeen += maxTerm;
    }
    expect(termsSeen).toBeGreaterThanOrEqual(20);
  });
});

// ---- Election -------------------------------------------------------------------------

describe("election", () => {
  it("B5 a follower without contact for the election timeout becomes candidate at term+1, votes for itself and asks every voter (§5.2)", () => {
    // Log [1, 1, 2] at term 2; voters 1..3 and a learner 4.
    const s = new Solo(1, [1, 2, 3], { preVote: false, learners: [4] }, storageWith([1, 1, 2]));
    s.readies = [];
    // Not before electionTick ticks.
    s.tick(9);
    expect(s.status().role).toBe(Role.Follower);
    expect(s.take()).toEqual([]);
    let ticks = 9;
    while (s.status().role === Role.Follower && ticks < 100) {
      s.tick();
      ticks++;
    }
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(ticks).toBeLessThan(20);
    const st = s.status();
    expect(st).toMatchObject({ role: Role.Candidate, term: 3, vote: 1, leader: NONE });
    // The new term and self-vote are persisted with the requests.
    expect(s.readies.some((rd) => rd.hardState?.term === 3 && rd.hardState.vote === 1)).toBe(true);
    const votes = s.take().filter((m) => m.type === MessageType.Vote);
    expect(votes.map((m) => m.to).sort()).toEqual([2, 3]); // every voter, not the learner
    for (const v of votes) expect(v).toMatchObject({ from: 1, term: 3, index: 3, logTerm: 2 });
  });

  it("B5 a candidate that times out starts a new election at the next term (§5.2)", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false });
    s.campaign();
    expect(s.status()).toMatchObject({ role: Role.Candidate, term: 1 });
    s.take();
    let ticks = 0;
    while (s.status().term === 1 && ticks < 100) {
      s.tick();
      ticks++;
    }
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(ticks).toBeLessThan(20);
    expect(s.status()).toMatchObject({ role: Role.Candidate, term: 2, vote: 1 });
    const votes = s.take().filter((m) => m.type === MessageType.Vote);
    expect(votes.map((m) => [m.to, m.term])).toEqual([
      [2, 2],
      [3, 2],
    ]);
  });

  it("B5 a follower that keeps hearing from its leader never campaigns (§5.2)", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false });
    for (let i = 0; i < 30; i++) {
      s.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 1 }));
      s.tick(9);
    }
    expect(s.status()).toMatchObject({ role: Role.Follower, term: 1, leader: 2 });
  });

  function ticksToCampaign(seed: number): number {
    const s = new Solo(1, [1, 2, 3], { preVote: false, seed });
    for (let t = 1; t <= 100; t++) {
      s.tick();
      if (s.status().role === Role.Candidate) return t;
    }
    return -1;
  }

  it("B6 the election timeout is uniform in [ET, 2ET) over seeds (§5.2 randomized timeouts)", () => {
    const counts = new Map<number, number>();
    const n = 400;
    for (let seed = 1; seed <= n; seed++) {
      const t = ticksToCampaign(seed);
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    const values = [...counts.keys()].sort((a, b) => a - b);
    expect(values).toEqual(ids(10).map((i) => i + 9)); // every value 10..19, nothing else
    // Roughly uniform: each of the 10 values ~40 times.
    for (const c of counts.values()) {
      expect(c).toBeGreaterThan(15);
      expect(c).toBeLessThan(70);
    }
  });

  it("B6 later timeouts (a candidate re-campaigning) are also in [ET, 2ET) and vary", () => {
    const gaps = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const s = new Solo(1, [1, 2, 3], { preVote: false, seed });
      s.campaign();
      for (let round = 0; round < 5; round++) {
        const term = s.status().term;
        let ticks = 0;
        while (s.status().term === term && ticks < 100) {
          s.tick();
          ticks++;
        }
        expect(ticks).toBeGreaterThanOrEqual(10);
        expect(ticks).toBeLessThan(20);
        gaps.add(ticks);
      }
    }
    expect(gaps.size).toBeGreaterThanOrEqual(8);
  });

  it("B6 with fixed seeds a whole run is reproducible, and the seed matters", () => {
    const run = (seedBase: number) => {
      const c = new Cluster([]);
      for (const id of ids(5)) c.add(id, ids(5), new MemoryStorage(), { seed: seedBase + id });
      c.tickAll(40);
      c.isolate(c.leader());
      c.tickAll(60);
      c.heal();
      c.tickAll(20);
      return JSON.stringify(
        c.delivered.map((m) => [m.type, m.from, m.to, m.term, m.index, m.logTerm, m.commit, m.reject]),
      );
    };
    expect(run(100)).toBe(run(100));
    expect(ticksToCampaign(7)).toBe(ticksToCampaign(7));
    // Different seeds give different schedules (the first timeout differs for some pair).
    const firsts = new Set(ids(10).map((s) => ticksToCampaign(s)));
    expect(firsts.size).toBeGreaterThan(1);
  });

  type VoteCase = { size: number; grants: number[]; rejects: number[]; role: Role };
  const voteCases: VoteCase[] = [
    { size: 1, grants: [], rejects: [], role: Role.Leader },
    { size: 3, grants: [2], rejects: [], role: Role.Leader },
    { size: 3, grants: [], rejects: [2], role: Role.Candidate },
    { size: 3, grants: [], rejects: [2, 3], role: Role.Follower },
    { size: 5, grants: [2], rejects: [], role: Role.Candidate },
    { size: 5, grants: [2, 3], rejects: [], role: Role.Leader },
    { size: 5, grants: [2], rejects: [3, 4], role: Role.Candidate },
    { size: 5, grants: [], rejects: [2, 3, 4], role: Role.Follower },
    { size: 5, grants: [2], rejects: [3, 4, 5], role: Role.Follower },
    // The same voter twice counts once; a non-member's grant counts not at all.
    { size: 5, grants: [2, 2], rejects: [], role: Role.Candidate },
    { size: 3, grants: [9], rejects: [], role: Role.Candidate },
  ];
  for (const vc of voteCases) {
    it(`B7 ${vc.size} voters, grants ${JSON.stringify(vc.grants)}, rejects ${JSON.stringify(vc.rejects)} → ${vc.role} (§5.2)`, () => {
      const s = new Solo(1, ids(vc.size), { preVote: false });
      s.campaign();
      for (const g of vc.grants) s.step(msg(MessageType.VoteResp, { from: g, to: 1, term: 1 }));
      for (const r of vc.rejects)
        s.step(msg(MessageType.VoteResp, { from: r, to: 1, term: 1, reject: true }));
      const st = s.status();
      expect(st.role).toBe(vc.role);
      expect(st.term).toBe(1); // losing does not change the term
      expect(st.vote).toBe(1);
      expect(st.leader).toBe(vc.role === Role.Leader ? 1 : NONE);
    });
  }

  it("B7 a pre-candidate moves on to a real election on a pre-vote majority, and back to follower on a majority of rejects (§9.6)", () => {
    const a = new Solo(1, ids(3), { preVote: true });
    a.campaign();
    expect(a.status()).toMatchObject({ role: Role.PreCandidate, term: 0 });
    a.take();
    a.step(msg(MessageType.PreVoteResp, { from: 2, to: 1, term: 1 }));
    expect(a.status()).toMatchObject({ role: Role.Candidate, term: 1, vote: 1 });
    expect(a.take().filter((m) => m.type === MessageType.Vote)).toHaveLength(2);

    const b = new Solo(1, ids(3), { preVote: true }, storageWith([1], { term: 1 }));
    b.campaign();
    b.step(msg(MessageType.PreVoteResp, { from: 2, to: 1, term: 1, reject: true }));
    expect(b.status().role).toBe(Role.PreCandidate);
    b.step(msg(MessageType.PreVoteResp, { from: 3, to: 1, term: 1, reject: true }));
    expect(b.status()).toMatchObject({ role: Role.Follower, term: 1, vote: NONE });
  });

  for (const preVote of [false, true]) {
    it(`B8 a single-voter cluster elects itself on its first timeout (preVote=${preVote}) [SingleNodeCandidate]`, () => {
      const s = new Solo(1, [1], { preVote });
      let ticks = 0;
      while (s.status().role === Role.Follower && ticks < 100) {
        s.tick();
        ticks++;
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      const st = s.status();
      expect(st).toMatchObject({ role: Role.Leader, term: 1, vote: 1, leader: 1 });
      expect(st.elections).toBe(1);
      // It commits its own empty entry once that is durable.
      expect(st.commit).toBe(1);
      expect(s.out).toEqual([]); // nobody to talk to
    });
  }

  it("B9 one vote per term: a second candidate is refused, the same candidate is granted again (§5.2)", () => {
    const storage = new MemoryStorage();
    let s = new Solo(1, [1, 2, 3], {}, storage);
    s.readies = [];
    s.step(msg(MessageType.Vote, { from: 2, to: 1, term: 1 }));
    expect(s.status()).toMatchObject({ term: 1, vote: 2 });
    expect(s.readies.some((rd) => rd.hardState?.vote === 2)).toBe(true);
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 2, reject: false })]);

    s.step(msg(MessageType.Vote, { from: 3, to: 1, term: 1 }));
    expect(s.status().vote).toBe(2);
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 3, reject: true })]);

    // A retransmitted request from the same candidate is granted again.
    s.step(msg(MessageType.Vote, { from: 2, to: 1, term: 1 }));
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 2, reject: false })]);

    // The vote survives a restart.
    s = new Solo(1, [1, 2, 3], {}, storage);
    s.step(msg(MessageType.Vote, { from: 3, to: 1, term: 1 }));
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 3, reject: true })]);
    s.step(msg(MessageType.Vote, { from: 2, to: 1, term: 1 }));
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 2, reject: false })]);

    // A new term is a new vote.
    s.step(msg(MessageType.Vote, { from: 3, to: 1, term: 2 }));
    expect(s.status()).toMatchObject({ term: 2, vote: 3 });
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 3, reject: false })]);
  });

  it("B9 a candidate has voted for itself and refuses another candidate of its term (§5.2)", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false });
    s.campaign();
    s.take();
    s.step(msg(MessageType.Vote, { from: 2, to: 1, term: 1 }));
    expect(s.status()).toMatchObject({ role: Role.Candidate, term: 1, vote: 1 });
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 2, reject: true })]);
  });

  it("B9 election safety: at most one leader per term over faulty runs (§5.2, Figure 3)", () => {
    let terms = 0;
    for (const seed of [11, 12, 13, 14, 15, 16, 17, 18]) {
      const c = new Cluster(ids(5), { preVote: seed % 2 === 0, checkQuorum: seed % 3 !== 0 });
      const leaderOf = new Map<number, number>();
      let violations = 0;
      chaos(
        c,
        300,
        seed,
        () => {
          for (const [id, m] of c.members) {
            const st = m.node.status();
            if (st.role !== Role.Leader) continue;
            const l = leaderOf.get(st.term);
            if (l === undefined) leaderOf.set(st.term, id);
            else if (l !== id) violations++;
          }
        },
        seed > 14,
      );
      expect(violations).toBe(0);
      terms += leaderOf.size;
    }
    expect(terms).toBeGreaterThanOrEqual(8); // many elections happened
  });

  // Voter log [1, 2, 2] (last index 3, last term 2) at term 2.
  const upToDate: { logTerm: number; index: number; granted: boolean }[] = [
    { logTerm: 0, index: 0, granted: false },
    { logTerm: 1, index: 5, granted: false }, // longer but older last term
    { logTerm: 2, index: 2, granted: false }, // same last term, shorter
    { logTerm: 2, index: 3, granted: true }, // same log
    { logTerm: 2, index: 4, granted: true }, // same last term, longer
    { logTerm: 3, index: 1, granted: true }, // newer last term, shorter
  ];
  for (const type of [MessageType.Vote, MessageType.PreVote]) {
    for (const u of upToDate) {
      it(`B10 ${MessageType[type]} from a candidate with last (term ${u.logTerm}, index ${u.index}) vs voter (2, 3) is ${u.granted ? "granted" : "denied"} (§5.4.1)`, () => {
        const s = new Solo(1, [1, 2, 3], {}, storageWith([1, 2, 2]));
        s.take();
        s.step(msg(type, { from: 2, to: 1, term: 3, index: u.index, logTerm: u.logTerm }));
        const resp = s.take().filter((m) => m.type === type + 1);
        expect(resp).toHaveLength(1);
        expect(resp[0]!.reject).toBe(!u.granted);
        if (type === MessageType.Vote) {
          // A real vote request of a later term moves us to that term either way.
          expect(s.status()).toMatchObject({ term: 3, vote: u.granted ? 2 : NONE });
        } else {
          expect(s.status()).toMatchObject({ term: 2, vote: NONE });
        }
      });
    }
  }

  const candidateInputs: { name: string; m: Message; role: Role; term: number; leader: number }[] = [
    {
      name: "an App of its term",
      m: msg(MessageType.App, { from: 2, to: 1, term: 2, index: 1, logTerm: 1 }),
      role: Role.Follower,
      term: 2,
      leader: 2,
    },
    {
      name: "a Heartbeat of its term",
      m: msg(MessageType.Heartbeat, { from: 2, to: 1, term: 2 }),
      role: Role.Follower,
      term: 2,
      leader: 2,
    },
    {
      name: "an App of a later term",
      m: msg(MessageType.App, { from: 3, to: 1, term: 4, index: 1, logTerm: 1 }),
      role: Role.Follower,
      term: 4,
      leader: 3,
    },
    {
      name: "a Heartbeat of an earlier term",
      m: msg(MessageType.Heartbeat, { from: 3, to: 1, term: 1 }),
      role: Role.Candidate,
      term: 2,
      leader: NONE,
    },
  ];
  for (const x of candidateInputs) {
    it(`B11 a candidate receiving ${x.name} becomes ${x.role} (§5.2)`, () => {
      const s = new Solo(1, [1, 2, 3], { preVote: false }, storageWith([1], { term: 1 }));
      s.campaign();
      expect(s.status()).toMatchObject({ role: Role.Candidate, term: 2 });
      s.step(x.m);
      const st = s.status();
      expect(st).toMatchObject({ role: x.role, term: x.term, leader: x.leader });
      if (x.term === 2) expect(st.vote).toBe(1); // same term: the vote stands
    });
  }

  it("B11 a pre-candidate receiving an App or Heartbeat of its term becomes follower (§5.2, §9.6)", () => {
    for (const type of [MessageType.App, MessageType.Heartbeat]) {
      const s = new Solo(1, [1, 2, 3], { preVote: true }, storageWith([1], { term: 1 }));
      s.campaign();
      expect(s.status()).toMatchObject({ role: Role.PreCandidate, term: 1 });
      s.step(msg(type, { from: 2, to: 1, term: 1, index: 1, logTerm: 1 }));
      expect(s.status()).toMatchObject({ role: Role.Follower, term: 1, leader: 2 });
    }
  });

  it("B12 a candidate does not count grants from an earlier election's term [candidate_ignores_vote_from_previous_election]", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false });
    s.campaign(); // term 1
    // Times out before any answer: a new election at term 2.
    while (s.status().term === 1) s.tick();
    expect(s.status()).toMatchObject({ role: Role.Candidate, term: 2 });
    // The late grant from term 1 must not make it leader of term 2.
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 1 }));
    s.step(msg(MessageType.VoteResp, { from: 3, to: 1, term: 1 }));
    expect(s.status()).toMatchObject({ role: Role.Candidate, term: 2 });
    // A grant of the current term still counts.
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 2 }));
    expect(s.status()).toMatchObject({ role: Role.Leader, term: 2 });
  });

  it("B12 a candidate that lost its election ignores late grants of that election [CandidateSelfVoteAfterLostElection]", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false });
    s.campaign();
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 1, reject: true }));
    s.step(msg(MessageType.VoteResp, { from: 3, to: 1, term: 1, reject: true }));
    expect(s.status()).toMatchObject({ role: Role.Follower, term: 1 });
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 1 }));
    s.step(msg(MessageType.VoteResp, { from: 3, to: 1, term: 1 }));
    expect(s.status()).toMatchObject({ role: Role.Follower, term: 1 });

    // Likewise a candidate that heard from the winner of its term.
    const t = new Solo(1, [1, 2, 3], { preVote: false });
    t.campaign();
    t.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 1 }));
    expect(t.status()).toMatchObject({ role: Role.Follower, leader: 2 });
    t.step(msg(MessageType.VoteResp, { from: 3, to: 1, term: 1 }));
    expect(t.status()).toMatchObject({ role: Role.Follower, leader: 2, term: 1 });
  });

  it("B12 a pre-candidate does not count real-vote grants, nor a candidate pre-vote grants (§9.6)", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: true }, storageWith([1], { term: 1 }));
    s.campaign();
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 1 }));
    expect(s.status()).toMatchObject({ role: Role.PreCandidate, term: 1 });

    const t = new Solo(1, [1, 2, 3], { preVote: false }, storageWith([1], { term: 1 }));
    t.campaign(); // candidate at term 2
    t.step(msg(MessageType.PreVoteResp, { from: 2, to: 1, term: 2 }));
    expect(t.status()).toMatchObject({ role: Role.Candidate, term: 2 });
  });

  it("B13 a new leader appends an empty entry of its term and sends it at once (§5.4.2, §8)", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false }, storageWith([1, 1], { term: 1 }));
    s.campaign();
    s.take();
    s.readies = [];
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 2 }));
    expect(s.status()).toMatchObject({ role: Role.Leader, term: 2, lastIndex: 3 });
    const appended = s.readies.flatMap((rd) => rd.entries);
    expect(appended).toHaveLength(1);
    expect(appended[0]).toMatchObject({ index: 3, term: 2, type: EntryType.Normal });
    expect(appended[0]!.data.length).toBe(0);
    const apps = s.take().filter((m) => m.type === MessageType.App);
    expect(apps.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const a of apps) {
      expect(a).toMatchObject({ term: 2, index: 2, logTerm: 1 });
      expect(a.entries.map((e) => [e.index, e.term])).toEqual([[3, 2]]);
    }
  });

  it("B13 in a cluster the new leader's empty entry reaches every follower and commits", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const term = c.node(1).status().term;
    for (const id of [1, 2, 3]) {
      const st = c.node(id).status();
      expect(st.lastIndex).toBe(1);
      expect(c.get(id).storage.term(1)).toBe(term);
    }
    expect(c.node(1).status().commit).toBe(1);
  });
});
