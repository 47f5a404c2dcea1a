// Behaviour tests B14–B19: PreVote, CheckQuorum and leader stickiness (Raft
// thesis §9.6 and §6.2; paper §5.2 and §6). Bracketed names are the etcd raft
// tests a behaviour is drawn from (see docs/raft-behaviours.md).

import { describe, expect, it } from "vitest";
import { MemoryStorage, MessageType, NONE, Role } from "../../src/raft/index.ts";
import { Cluster, enc } from "./harness.ts";
import { msg, Solo, storageWith } from "./solo.ts";

// ---- helpers (local to this file) ----------------------------------------------

/** Starts an election on `id` without delivering anything yet. */
function hupNoDeliver(c: Cluster, id: number): void {
  c.handle(id, c.node(id).campaign());
}

function role(c: Cluster, id: number): Role {
  return c.node(id).status().role;
}

function term(c: Cluster, id: number): number {
  return c.node(id).status().term;
}

/** Ticks every node (delivering between ticks) until `done` or `max` ticks; returns the ticks used. */
function tickUntil(c: Cluster, done: () => boolean, max: number): number {
  for (let t = 1; t <= max; t++) {
    c.tickAll(1);
    if (done()) return t;
  }
  return -1;
}

// ---- B14 -----------------------------------------------------------------------------

describe("PreVote", () => {
  it("B14 with PreVote a partitioned node's term does not grow, and it cannot depose the leader on rejoin (§9.6)", () => {
    const c = new Cluster([1, 2, 3]); // PreVote and CheckQuorum are on by default
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const t0 = term(c, 1);
    c.isolate(3);
    c.tickAll(100);
    c.propose(1, "during-partition");
    c.tickAll(100);
    expect(term(c, 3)).toBe(t0);
    expect(c.node(3).status().elections).toBe(0); // never ran a real election
    expect(c.leader()).toBe(1);
    c.heal();
    c.tickAll(30);
    expect(c.leaders()).toEqual([1]);
    for (const id of [1, 2, 3]) {
      expect(term(c, id)).toBe(t0);
      expect(c.node(id).status().leader).toBe(1);
    }
    expect(c.appliedData(3)).toEqual(["during-partition"]);
  });

  it("B14 (contrast) without PreVote the partitioned node's term does grow and it disrupts the leader on rejoin", () => {
    // Shows the scenario above can fail: same steps, PreVote and CheckQuorum off.
    const c = new Cluster([1, 2, 3], { preVote: false, checkQuorum: false });
    c.campaign(1);
    const t0 = term(c, 1);
    c.isolate(3);
    c.tickAll(100);
    expect(term(c, 3)).toBeGreaterThan(t0 + 3);
    c.heal();
    c.tickAll(30);
    expect(term(c, 1)).toBeGreaterThan(t0);
  });

  it("B14 a lagging node rejoining with PreVote cannot win a pre-vote and leaves the leader in place [DisruptiveFollowerPreVote]", () => {
    for (const checkQuorum of [true, false]) {
      const c = new Cluster([1, 2, 3], { checkQuorum });
      c.campaign(1);
      expect(c.leader()).toBe(1);
      const t0 = term(c, 1);
      c.isolate(3);
      c.propose(1, "a");
      c.propose(1, "b");
      c.propose(1, "c");
      c.heal();
      hupNoDeliver(c, 3);
      expect(role(c, 3)).toBe(Role.PreCandidate);
      c.deliver();
      // Leases (CheckQuorum) make 1 and 2 ignore it; without them its short log loses.
      expect(role(c, 1)).toBe(Role.Leader);
      expect(role(c, 2)).toBe(Role.Follower);
      for (const id of [1, 2, 3]) expect(term(c, id)).toBe(t0);
      // A heartbeat brings it back to follower of the same leader and term.
      c.tick(1);
      c.deliver();
      expect(c.leaders()).toEqual([1]);
      expect(c.node(3).status()).toMatchObject({ role: Role.Follower, term: t0, leader: 1 });
    }
  });

  it("B14 dueling pre-candidates: the cut-off one's pre-vote is refused and its term stays [DuelingPreCandidates]", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false });
    c.cutLink(1, 3);
    c.campaign(1);
    c.campaign(3);
    expect(role(c, 1)).toBe(Role.Leader); // votes of 1 and 2
    expect(role(c, 3)).toBe(Role.Follower); // its pre-vote was refused by 2, at 2's term
    c.heal();
    c.deliver();
    c.campaign(3);
    // 3's log is behind (no entry from 1), so its pre-vote fails and nobody moves.
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, term: 1, lastIndex: 1, commit: 1 });
    expect(c.node(2).status()).toMatchObject({ role: Role.Follower, term: 1, lastIndex: 1, commit: 1 });
    expect(c.node(3).status()).toMatchObject({ role: Role.Follower, term: 1, lastIndex: 0 });
  });

  it("B15 a pre-vote is granted only to an up-to-date log, and grants record no vote and no term (§9.6, §5.4.1)", () => {
    const cases: { index: number; logTerm: number; granted: boolean }[] = [
      { index: 1, logTerm: 1, granted: false },
      { index: 2, logTerm: 1, granted: true },
      { index: 1, logTerm: 2, granted: true },
    ];
    for (const x of cases) {
      const s = new Solo(1, [1, 2, 3], {}, storageWith([1, 1], { term: 1 }));
      s.take();
      s.step(msg(MessageType.PreVote, { from: 2, to: 1, term: 2, index: x.index, logTerm: x.logTerm }));
      const resp = s.take();
      expect(resp).toHaveLength(1);
      expect(resp[0]).toMatchObject({ type: MessageType.PreVoteResp, to: 2, reject: !x.granted });
      expect(resp[0]!.term).toBe(x.granted ? 2 : 1);
      expect(s.status()).toMatchObject({ term: 1, vote: NONE, role: Role.Follower });
      expect(s.storage.initialState().hardState).toMatchObject({ term: 1, vote: NONE });
    }
    // After granting a pre-vote to 2, a real vote for 3 in that term is still possible.
    const s = new Solo(1, [1, 2, 3], {}, storageWith([1, 1], { term: 1 }));
    s.step(msg(MessageType.PreVote, { from: 2, to: 1, term: 2, index: 2, logTerm: 1 }));
    s.take();
    s.step(msg(MessageType.Vote, { from: 3, to: 1, term: 2, index: 2, logTerm: 1 }));
    expect(s.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 3, reject: false })]);
  });

  it("B15 with CheckQuorum a voter that heard from a leader within the election timeout ignores pre-votes [prevote_checkquorum.txt]", () => {
    // A long election timeout (50 ticks): the node's own timeout, in [50, 100), is
    // then very unlikely to fire at exactly 50 whatever the PRNG draws.
    const s = new Solo(
      1,
      [1, 2, 3],
      { checkQuorum: true, electionTick: 50 },
      storageWith([1, 1], { term: 1 }),
    );
    s.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 1 }));
    s.take();
    const before = s.status();
    s.tick(49);
    s.step(msg(MessageType.PreVote, { from: 3, to: 1, term: 2, index: 2, logTerm: 1 }));
    expect(s.take()).toEqual([]);
    expect(s.status()).toMatchObject({ term: 1, role: Role.Follower, leader: 2, vote: before.vote });
    // Once the election timeout passes without word from the leader, it is granted.
    s.tick(1);
    expect(s.status().role).toBe(Role.Follower); // (precondition: it has not campaigned itself)
    s.step(msg(MessageType.PreVote, { from: 3, to: 1, term: 2, index: 2, logTerm: 1 }));
    expect(s.take()).toEqual([
      expect.objectContaining({ type: MessageType.PreVoteResp, to: 3, term: 2, reject: false }),
    ]);
    expect(s.status()).toMatchObject({ term: 1, vote: NONE });
  });

  it("B15 without CheckQuorum there is no lease: a voter with a leader still grants an up-to-date pre-vote [prevote.txt]", () => {
    const s = new Solo(1, [1, 2, 3], { checkQuorum: false }, storageWith([1, 1], { term: 1 }));
    s.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 1 }));
    s.take();
    s.step(msg(MessageType.PreVote, { from: 3, to: 1, term: 2, index: 2, logTerm: 1 }));
    expect(s.take()).toEqual([
      expect.objectContaining({ type: MessageType.PreVoteResp, to: 3, term: 2, reject: false }),
    ]);
    expect(s.status()).toMatchObject({ term: 1, leader: 2 });
  });

  it("B16 a split vote after the leader fails resolves in the next round [PreVoteWithSplitVote]", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false });
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const t0 = term(c, 1);
    c.isolate(1);
    hupNoDeliver(c, 2);
    hupNoDeliver(c, 3);
    c.deliver();
    // Both won their pre-votes (each granted the other's), then split the vote.
    expect(c.node(2).status()).toMatchObject({ role: Role.Candidate, term: t0 + 1, vote: 2 });
    expect(c.node(3).status()).toMatchObject({ role: Role.Candidate, term: t0 + 1, vote: 3 });
    // Node 2 times out first.
    c.campaign(2);
    expect(c.node(2).status()).toMatchObject({ role: Role.Leader, term: t0 + 2 });
    expect(c.node(3).status()).toMatchObject({ role: Role.Follower, term: t0 + 2, leader: 2 });
  });

  it("B16 a node with a smaller term can complete an election after the leader fails [NodeWithSmallerTermCanCompleteElection]", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false });
    c.cutLink(1, 3);
    c.cutLink(2, 3);
    c.campaign(1);
    expect(role(c, 1)).toBe(Role.Leader);
    expect(role(c, 2)).toBe(Role.Follower);
    c.campaign(3);
    expect(role(c, 3)).toBe(Role.PreCandidate);
    c.campaign(2);
    expect(c.node(1).status()).toMatchObject({ role: Role.Follower, term: 2 });
    expect(c.node(2).status()).toMatchObject({ role: Role.Leader, term: 2 });
    expect(c.node(3).status()).toMatchObject({ role: Role.PreCandidate, term: 0 });
    // Bring 3 back and lose the leader 2.
    c.heal();
    c.cutLink(2, 1);
    c.cutLink(2, 3);
    c.campaign(3);
    c.campaign(1);
    expect(role(c, 1) === Role.Leader || role(c, 3) === Role.Leader).toBe(true);
  });

  /**
   * The rolling-upgrade cluster of etcd's PreVoteMigration tests: 1 leads and 2
   * follows at term t with PreVote; 3 ran without PreVote while cut off, so its
   * term is t+2 and its log shorter. Then 3 restarts with PreVote, and the
   * network heals.
   */
  function preVoteMigrationCluster(): { c: Cluster; t: number } {
    const c = new Cluster([], { checkQuorum: false });
    c.add(1, [1, 2, 3]);
    c.add(2, [1, 2, 3]);
    c.add(3, [1, 2, 3], new MemoryStorage(), { preVote: false });
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const t = term(c, 1);
    c.isolate(3);
    c.propose(1, "some data");
    c.campaign(3);
    c.campaign(3);
    expect(c.node(3).status()).toMatchObject({ role: Role.Candidate, term: t + 2 });
    c.restart(3, { preVote: true });
    expect(c.node(3).status()).toMatchObject({ role: Role.Follower, term: t + 2 });
    c.heal();
    return { c, t };
  }

  it("B16 mixed-term pre-candidates converge after a PreVote migration [PreVoteMigrationCanCompleteElection]", () => {
    const { c } = preVoteMigrationCluster();
    c.isolate(1); // the leader fails
    c.campaign(3);
    c.campaign(2);
    // 3 (high term, short log) cannot win; 2 (long log, low term) was pushed to 3's term.
    expect(role(c, 2)).toBe(Role.Follower);
    expect(role(c, 3)).toBe(Role.PreCandidate);
    c.campaign(3);
    c.campaign(2);
    expect(role(c, 2)).toBe(Role.Leader);
    expect(role(c, 3)).toBe(Role.Follower);
  });

  it("B16 a stuck high-term pre-candidate is freed by the leader stepping down [PreVoteMigrationWithFreeStuckPreCandidate]", () => {
    const { c, t } = preVoteMigrationCluster();
    c.campaign(3);
    expect(role(c, 1)).toBe(Role.Leader);
    expect(role(c, 2)).toBe(Role.Follower);
    expect(role(c, 3)).toBe(Role.PreCandidate);
    c.campaign(3);
    expect(role(c, 1)).toBe(Role.Leader);
    expect(role(c, 3)).toBe(Role.PreCandidate);
    expect(term(c, 1)).toBe(t);
    // The leader's next heartbeat meets 3's higher term: the leader steps down.
    c.step(3, msg(MessageType.Heartbeat, { from: 1, to: 3, term: t }));
    c.deliver();
    expect(role(c, 1)).toBe(Role.Follower);
    expect(term(c, 1)).toBe(term(c, 3));
    // And the cluster elects a leader again by timeout.
    expect(tickUntil(c, () => c.leaders().length === 1, 100)).toBeGreaterThan(0);
    const l = c.leader();
    c.propose(l, "after");
    c.tickAll(3);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["some data", "after"]);
  });

  it("B16 split pre-votes and votes resolve by randomized timeouts in later rounds (5 nodes, many seeds) (§5.2)", () => {
    let worst = 0;
    let splits = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const c = new Cluster([]);
      for (let id = 1; id <= 5; id++)
        c.add(id, [1, 2, 3, 4, 5], new MemoryStorage(), { seed: seed * 100 + id });
      expect(tickUntil(c, () => c.leaders().length === 1, 200)).toBeGreaterThan(0);
      const old = c.leader();
      c.isolate(old);
      const before = [1, 2, 3, 4, 5].reduce((a, id) => a + c.node(id).status().elections, 0);
      const others = () => c.leaders().filter((l) => l !== old);
      const n = tickUntil(c, () => others().length === 1, 300);
      expect(n).toBeGreaterThan(0);
      worst = Math.max(worst, n);
      const after = [1, 2, 3, 4, 5].reduce((a, id) => a + c.node(id).status().elections, 0);
      if (after - before > 1) splits++;
      // The new leader can commit.
      const l = others()[0]!;
      c.propose(l, `s${seed}`);
      c.tickAll(2);
      for (const id of [1, 2, 3, 4, 5]) if (id !== old) expect(c.appliedData(id)).toContain(`s${seed}`);
    }
    expect(worst).toBeLessThan(200);
    // Some seeds needed more than one election round: the split case was exercised.
    expect(splits).toBeGreaterThanOrEqual(1);
  });
});

// ---- CheckQuorum -----------------------------------------------------------------------

describe("CheckQuorum", () => {
  it("B17 a leader that hears from no quorum for an election timeout steps down (§6.2 thesis) [LeaderStepdownWhenQuorumLost]", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    const t0 = term(c, 1);
    c.isolate(1);
    // It heard from both followers in the current timeout window, so it stays for now.
    c.tick(1, 9);
    expect(role(c, 1)).toBe(Role.Leader);
    let ticks = 9;
    while (role(c, 1) === Role.Leader && ticks < 100) {
      c.tick(1);
      ticks++;
    }
    expect(ticks).toBeLessThanOrEqual(20); // within two election timeouts of its last contact
    expect(c.node(1).status()).toMatchObject({ role: Role.Follower, term: t0, leader: NONE });
    // Its proposals are now refused rather than accepted into a dead term.
    expect(() => c.node(1).propose(enc("x"))).toThrow();
  });

  it("B17 a leader that hears from a quorum keeps leading; without CheckQuorum an isolated leader never steps down [LeaderStepdownWhenQuorumActive]", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.cutLink(1, 3); // 2 is still reachable: 1+2 is a quorum
    c.tickAll(100);
    expect(c.leaders()).toEqual([1]);

    const d = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
    d.campaign(1);
    d.isolate(1);
    d.tick(1, 100);
    expect(role(d, 1)).toBe(Role.Leader);
  });

  it("B17 after the leader steps down the majority side elects a new leader and commits (§6.2 thesis)", () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    c.campaign(1);
    c.isolate(1);
    const n = tickUntil(c, () => role(c, 1) !== Role.Leader && c.leaders().length === 1, 100);
    expect(n).toBeGreaterThan(0);
    const l = c.leader();
    expect(l).not.toBe(1);
    c.propose(l, "x");
    c.tickAll(2);
    for (const id of [2, 3, 4, 5]) expect(c.appliedData(id)).toEqual(["x"]);
    expect(c.appliedData(1)).toEqual([]);
  });

  it("B18 with CheckQuorum a follower in its leader's lease ignores a higher-term vote until the timeout passes [LeaderSupersedingWithCheckQuorum]", () => {
    // A long election timeout (50) so that 2's own randomized timeout, in [50, 100),
    // is very unlikely to fire at exactly 50 ticks.
    const c = new Cluster([1, 2, 3], { preVote: false, checkQuorum: true, electionTick: 50 });
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const t0 = term(c, 1);
    c.campaign(3);
    // 2 (and the leader) ignored the request: 3 is a lone candidate, nobody else moved.
    expect(c.node(3).status()).toMatchObject({ role: Role.Candidate, term: t0 + 1 });
    expect(c.node(2).status()).toMatchObject({ role: Role.Follower, term: t0, leader: 1 });
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, term: t0 });
    // Let 2's election timeout pass without hearing from the leader.
    c.tick(2, 49);
    c.campaign(3);
    expect(c.node(3).status()).toMatchObject({ role: Role.Candidate, term: t0 + 2 }); // still in the lease
    c.tick(2, 1);
    expect(role(c, 2)).toBe(Role.Follower); // (precondition: 2 did not campaign itself)
    c.campaign(3);
    expect(c.node(3).status()).toMatchObject({ role: Role.Leader, term: t0 + 3 });
  });

  it("B18 a forced (transfer) vote is granted within the lease, an unforced one is ignored (§3.10 thesis) [LeaderTransferWithCheckQuorum]", () => {
    const mk = () => {
      const s = new Solo(1, [1, 2, 3], { checkQuorum: true }, storageWith([1, 1], { term: 1 }));
      s.step(msg(MessageType.Heartbeat, { from: 2, to: 1, term: 1 }));
      s.take();
      return s;
    };
    const s = mk();
    s.step(msg(MessageType.Vote, { from: 3, to: 1, term: 2, index: 2, logTerm: 1 }));
    expect(s.take()).toEqual([]);
    expect(s.status()).toMatchObject({ term: 1, leader: 2, vote: NONE });

    const f = mk();
    f.step(msg(MessageType.Vote, { from: 3, to: 1, term: 2, index: 2, logTerm: 1, force: true }));
    expect(f.take()).toEqual([expect.objectContaining({ type: MessageType.VoteResp, to: 3, reject: false })]);
    expect(f.status()).toMatchObject({ term: 2, vote: 3 });
  });

  it("B18 leadership transfer succeeds despite CheckQuorum leases, both ways [LeaderTransferWithCheckQuorum]", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    expect(c.leader()).toBe(1);
    c.handle(1, c.node(1).transferLeader(2));
    c.deliver();
    expect(c.leaders()).toEqual([2]);
    expect(role(c, 1)).toBe(Role.Follower);
    c.propose(2, "x");
    c.handle(2, c.node(2).transferLeader(1));
    c.deliver();
    expect(c.leaders()).toEqual([1]);
    expect(term(c, 1)).toBe(3);
  });

  it("B19 a stuck higher-term candidate is freed: the leader learns its term and steps down, then it can win [FreeStuckCandidateWithCheckQuorum]", () => {
    const c = new Cluster([1, 2, 3], { preVote: false, checkQuorum: true });
    c.campaign(1);
    const t0 = term(c, 1);
    c.isolate(1);
    c.campaign(3);
    expect(c.node(2).status()).toMatchObject({ role: Role.Follower, term: t0 });
    expect(c.node(3).status()).toMatchObject({ role: Role.Candidate, term: t0 + 1 });
    c.campaign(3);
    expect(c.node(2).status()).toMatchObject({ role: Role.Follower, term: t0 });
    expect(c.node(3).status()).toMatchObject({ role: Role.Candidate, term: t0 + 2 });
    c.heal();
    c.step(3, msg(MessageType.Heartbeat, { from: 1, to: 3, term: t0 }));
    c.deliver();
    // The stale leader's heartbeat is answered with 3's term: it steps down.
    expect(c.node(1).status()).toMatchObject({ role: Role.Follower, term: t0 + 2 });
    c.campaign(3);
    expect(role(c, 3)).toBe(Role.Leader);
  });

  it("B19 after a long partition without PreVote the cluster converges on one leader and commits", () => {
    for (const preVote of [false, true]) {
      const c = new Cluster([1, 2, 3], { preVote, checkQuorum: true });
      c.campaign(1);
      c.isolate(3);
      c.tickAll(150);
      c.heal();
      const n = tickUntil(
        c,
        () => {
          if (c.leaders().length !== 1) return false;
          const l = c.leader();
          return [1, 2, 3].every((id) => term(c, id) === term(c, l) && c.node(id).status().leader === l);
        },
        200,
      );
      expect(n).toBeGreaterThan(0);
      const l = c.leader();
      c.propose(l, "after-heal");
      c.tickAll(3);
      for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["after-heal"]);
    }
  });
});
