// Membership behaviours B51–B57: one change at a time, no campaign with unapplied
// changes, quorum changes, learners, joint consensus with auto-leave, removed
// leaders stepping down, and removed nodes ignoring TimeoutNow.

import { describe, expect, it } from "vitest";
import {
  ConfChangeType,
  EntryType,
  encodeConfChange,
  MemoryStorage,
  type Message,
  MessageType,
  makeEntry,
  newMessage,
  RaftNode,
  Role,
} from "../../src/raft/index.ts";
import { Cluster, dec, enc } from "./harness.ts";
import {
  change,
  config,
  deliverStashing,
  electAmong,
  expectRaftError,
  isConfChange,
  isLeaveJoint,
  proposeConf,
  recordConfStates,
} from "./helpers-b51-b65.ts";

const { AddVoter, AddLearner, RemoveNode } = ConfChangeType;

/** Entries of `id`'s log (stable storage), from the first index on. */
function logOf(c: Cluster, id: number) {
  const s = c.get(id).storage;
  if (s.lastIndex() < s.firstIndex()) return [];
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
}

/** Voters 1 and 2 and learner 3, as every node sees it from the start. */
function learnerCluster(extra: ConstructorParameters<typeof Cluster>[1] = {}): Cluster {
  const c = new Cluster([1, 2], { learners: [3], ...extra });
  c.add(3, [1, 2]);
  return c;
}

/**
 * Starts a fresh node that knows the cluster's initial voters, as if the bootstrap
 * membership were in the log (etcd appends it there). Used where a test is about
 * something else than joining; joining with an empty config is tested on its own
 * (see "B53 a node that joins with an empty config ...").
 */
function join(c: Cluster, id: number, initialVoters: number[]): void {
  c.add(id, initialVoters);
  expect(c.node(id).status().role).toBe(Role.Follower);
}

const votesFrom = (c: Cluster, id: number) =>
  c.delivered.filter((m) => m.from === id && (m.type === MessageType.Vote || m.type === MessageType.PreVote));

describe("B51 one membership change at a time", () => {
  it("B51 rejects a second change while the first is unapplied, and accepts it once applied", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    join(c, 5, [1, 2, 3]);
    c.isolate(1); // the first change cannot commit
    c.handle(1, c.node(1).proposeConfChange({ changes: [change(AddLearner, 4)] }));
    const last = c.node(1).status().lastIndex;

    expectRaftError(
      () => c.node(1).proposeConfChange({ changes: [change(AddLearner, 5)] }),
      "CHANGE_IN_PROGRESS",
    );
    expect(c.node(1).status().lastIndex).toBe(last); // nothing appended
    // Ordinary proposals are unaffected.
    c.handle(1, c.node(1).propose(enc("x")));
    expect(c.node(1).status().lastIndex).toBe(last + 1);

    c.heal();
    c.tickAll(3);
    expect(config(c, 1).learners).toEqual([4]);
    proposeConf(c, 1, { changes: [change(AddLearner, 5)] });
    c.tickAll(2);
    for (const id of [1, 2, 3, 4, 5]) expect(config(c, id).learners).toEqual([4, 5]);
  });

  it("B51 a new leader accepts no change until everything from earlier terms is applied (NewLeaderPendingConfig)", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
    c.campaign(1);
    c.propose(1, "a");
    c.tickAll(1);
    // "b" reaches every log but commits nowhere.
    c.filter = (m) => m.type !== MessageType.AppResp;
    c.propose(1, "b");
    // 2 wins, but cannot replicate its empty entry yet.
    c.filter = (m) => !(m.from === 2 && m.type === MessageType.App);
    c.campaign(2);
    expect(c.leader()).toBe(2);
    expect(c.node(2).status().applying).toBeLessThan(c.node(2).status().lastIndex);
    expectRaftError(
      () => c.node(2).proposeConfChange({ changes: [change(RemoveNode, 3)] }),
      "CHANGE_IN_PROGRESS",
    );

    c.filter = undefined;
    c.tickAll(2);
    expect(c.appliedData(2)).toEqual(["a", "b"]);
    proposeConf(c, 2, { changes: [change(RemoveNode, 3)] });
    c.tickAll(1);
    expect(config(c, 2).voters).toEqual([1, 2]);
  });

  it("B51 a change forwarded by a follower while another is pending is dropped, not applied", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    join(c, 5, [1, 2, 3]);
    c.filter = (m) => m.type !== MessageType.AppResp;
    proposeConf(c, 1, { changes: [change(AddLearner, 4)] });
    // Forwarded: the follower cannot know, so it does not throw; the leader drops it.
    c.handle(2, c.node(2).proposeConfChange({ changes: [change(AddLearner, 5)] }));
    c.deliver();
    c.filter = undefined;
    c.tickAll(3);
    for (const id of [1, 2, 3]) {
      expect(config(c, id).learners).toEqual([4]);
      expect(logOf(c, id).filter(isConfChange)).toHaveLength(1);
    }
  });
});

describe("B52 no campaign with unapplied membership changes", () => {
  /** Node 2 restarting with a committed, not yet handed-out change that removes 3. */
  function nodeWithUnappliedChange() {
    const storage = new MemoryStorage([1, 2, 3]);
    const cc = encodeConfChange({ changes: [change(RemoveNode, 3)] });
    storage.append([
      makeEntry(1, 1, new Uint8Array()),
      makeEntry(1, 2, enc("x")),
      makeEntry(1, 3, cc, EntryType.ConfChange),
    ]);
    storage.setHardState({ term: 1, vote: 1, commit: 3 });
    return new RaftNode({ id: 2, storage, applied: 1, electionTick: 10, heartbeatTick: 1 });
  }

  const isVoteReq = (m: Message) => m.type === MessageType.Vote || m.type === MessageType.PreVote;

  it("B52 a node with a committed but unapplied config change does not campaign", () => {
    const n = nodeWithUnappliedChange();
    const rd = n.campaign();
    expect(n.status().role).toBe(Role.Follower);
    expect(n.status().term).toBe(1);
    expect([...(rd?.messages ?? []), ...(rd?.immediateMessages ?? [])].filter(isVoteReq)).toEqual([]);
    // The change is handed out in that Ready; once applied, the node campaigns in the new config.
    expect(rd?.committedEntries.map((e) => e.index)).toEqual([2, 3]);
    expect(rd?.confState?.voters).toEqual([1, 2]);
    expect(n.advance(rd!)).toBeNull();
    const rd2 = n.campaign();
    expect(n.status().role).toBe(Role.PreCandidate);
    expect(rd2!.messages.filter(isVoteReq).map((m) => m.to)).toEqual([1]);
  });

  it("B52 nor does it campaign on TimeoutNow until the change is applied", () => {
    const n = nodeWithUnappliedChange();
    const rd = n.step(newMessage(MessageType.TimeoutNow, { from: 1, to: 2, term: 1 }));
    expect(n.status().role).toBe(Role.Follower);
    expect(n.status().term).toBe(1);
    expect([...(rd?.messages ?? []), ...(rd?.immediateMessages ?? [])].filter(isVoteReq)).toEqual([]);
    n.advance(rd!);
    const rd2 = n.step(newMessage(MessageType.TimeoutNow, { from: 1, to: 2, term: 1 }));
    expect(n.status().role).toBe(Role.Candidate);
    expect(n.status().term).toBe(2);
    const votes = rd2!.messages.filter(isVoteReq);
    expect(votes.map((m) => [m.type, m.to, m.force])).toEqual([[MessageType.Vote, 1, true]]);
  });
});

describe("B53 membership changes change the quorum", () => {
  it("B53 commits pending entries when a removal shrinks the quorum", () => {
    // Voters 1..4 (quorum 3); 4 is down and is being removed.
    const c = new Cluster([1, 2, 3, 4]);
    c.campaign(1);
    c.tickAll(1);
    c.isolate(4);
    c.handle(1, c.node(1).proposeConfChange({ changes: [change(RemoveNode, 4)] }));
    const k = c.node(1).status().lastIndex;
    c.handle(1, c.node(1).propose(enc("x"))); // k+1, appended before the removal applies
    // 2 acks both entries; 3 acks only the removal, and that ack is held back for now.
    const held = deliverStashing(c, (m) => m.from === 3 && m.type === MessageType.AppResp);
    const acksOf3 = held.filter((m) => m.index === k);
    expect(acksOf3.length).toBeGreaterThan(0);
    // Under {1,2,3,4} nothing commits: only 1 and 2 have k and k+1.
    expect(c.node(1).status().commit).toBeLessThan(k);

    // 3's ack commits the removal; applying it leaves {1,2,3}, where 1 and 2 hold k+1.
    c.filter = (m) => !(m.from === 3 && m.type === MessageType.AppResp && m.index > k);
    c.queue.push(...acksOf3);
    c.deliver();
    expect(config(c, 1).voters).toEqual([1, 2, 3]);
    expect(c.node(1).status().commit).toBe(k + 1);
    expect(c.appliedData(1)).toEqual(["x"]);
    expect(c.appliedData(2)).toEqual(["x"]);
  });

  it("B53 adding a voter raises the quorum: the new voter's ack is then required", () => {
    const c = new Cluster([1]);
    c.campaign(1);
    join(c, 2, [1]);
    proposeConf(c, 1, { changes: [change(AddVoter, 2)] });
    c.tickAll(2);
    expect(config(c, 1).voters).toEqual([1, 2]);
    expect(config(c, 2).voters).toEqual([1, 2]);

    c.cutLink(1, 2);
    c.propose(1, "y");
    const st = c.node(1).status();
    expect(st.commit).toBeLessThan(st.lastIndex);
    expect(c.appliedData(1)).toEqual([]);

    c.heal();
    c.tickAll(2);
    expect(c.appliedData(1)).toEqual(["y"]);
    expect(c.appliedData(2)).toEqual(["y"]);
  });

  it("B53 a node that joins with an empty config learns the whole membership from the log", () => {
    const c = new Cluster([1, 2]);
    c.campaign(1);
    c.propose(1, "a");
    c.add(3, []); // joins empty, as the harness and RaftConfig.peers document
    proposeConf(c, 1, { changes: [change(AddVoter, 3)] });
    c.tickAll(2);
    expect(config(c, 1).voters).toEqual([1, 2, 3]);
    expect(c.appliedData(3)).toEqual(["a"]);
    expect(config(c, 3)).toEqual(config(c, 1));
  });

  it("B53 a voter that joined with an empty config cannot elect itself or commit alone", () => {
    const c = new Cluster([1, 2]);
    c.campaign(1);
    c.propose(1, "a");
    c.add(3, []);
    proposeConf(c, 1, { changes: [change(AddVoter, 3)] });
    c.tickAll(2);
    // 3 is cut off: in {1,2,3} it can neither win nor commit; 1 and 2 still can.
    c.isolate(3);
    c.tick(3, 50);
    try {
      c.handle(3, c.node(3).propose(enc("on-3")));
    } catch {
      /* refused (no leader): as it should be */
    }
    c.propose(1, "on-1");
    expect(c.appliedData(1)).toEqual(["a", "on-1"]);
    // State Machine Safety: no index is applied with different entries on 1 and 3.
    const on1 = new Map(c.get(1).applied.map((e) => [e.index, e]));
    for (const e of c.get(3).applied) {
      const o = on1.get(e.index);
      if (o)
        expect({ index: e.index, term: e.term, data: dec(e.data) }).toEqual({
          index: o.index,
          term: o.term,
          data: dec(o.data),
        });
    }
    expect(c.node(3).status().role).not.toBe(Role.Leader);
    expect(c.appliedData(3)).toEqual(["a"]);
  });

  it("B53 removing a voter lowers the quorum: the rest commit without it", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    proposeConf(c, 1, { changes: [change(RemoveNode, 3)] });
    c.tickAll(1);
    expect(config(c, 1).voters).toEqual([1, 2]);
    c.isolate(3);
    c.propose(1, "z");
    expect(c.appliedData(1)).toEqual(["z"]);
    expect(c.appliedData(2)).toEqual(["z"]);
  });
});

describe("B54 learners", () => {
  it("B54 a learner receives and applies the log", () => {
    const c = learnerCluster();
    c.campaign(1);
    c.propose(1, "a");
    c.propose(2, "b");
    c.tickAll(2);
    expect(c.appliedData(3)).toEqual(["a", "b"]);
    const pr3 = c
      .node(1)
      .status()
      .progress.find((p) => p.id === 3)!;
    expect(pr3.isLearner).toBe(true);
    expect(pr3.match).toBe(c.node(1).status().lastIndex);
  });

  it("B54 a learner never campaigns, even with no leader for a long time", () => {
    const c = learnerCluster();
    c.campaign(1);
    c.tickAll(1);
    const term = c.node(3).status().term;
    c.isolate(1);
    c.tickAll(100);
    c.handle(3, c.node(3).campaign());
    c.deliver();
    expect(votesFrom(c, 3)).toEqual([]);
    expect(c.node(3).status().role).toBe(Role.Follower);
    expect(c.node(3).status().term).toBe(term);
    expect(c.node(3).status().elections).toBe(0);
  });

  it("B54 learners are not counted in the commit quorum", () => {
    const c = learnerCluster();
    c.campaign(1);
    c.tickAll(1);
    c.cutLink(1, 2);
    c.propose(1, "z");
    const st = c.node(1).status();
    expect(st.progress.find((p) => p.id === 3)!.match).toBe(st.lastIndex); // the learner has it
    expect(st.commit).toBeLessThan(st.lastIndex); // but it does not count
    expect(c.appliedData(1)).toEqual([]);
    c.heal();
    c.tickAll(2);
    expect(c.appliedData(1)).toEqual(["z"]);
  });

  it("B54 a learner still votes when asked (campaign_learner_must_vote)", () => {
    const c = learnerCluster({ checkQuorum: false, preVote: false });
    c.campaign(1);
    c.tickAll(1);
    // Promote 3; 1 and 2 apply it, 3 hears nothing.
    c.filter = (m) => m.to !== 3;
    proposeConf(c, 1, { changes: [change(AddVoter, 3)] });
    c.tickAll(1);
    expect(config(c, 2).voters).toEqual([1, 2, 3]);
    expect(config(c, 3).learners).toEqual([3]); // 3 still thinks it is a learner
    // 1 dies; 2 needs 3's vote.
    c.filter = undefined;
    c.isolate(1);
    c.campaign(2);
    const resp = c.delivered.filter((m) => m.from === 3 && m.type === MessageType.VoteResp);
    expect(resp.map((m) => m.reject)).toEqual([false]);
    expect(c.node(2).status().role).toBe(Role.Leader);
    c.tickAll(2);
    expect(config(c, 3).voters).toEqual([1, 2, 3]);
    c.propose(2, "after");
    expect(c.appliedData(3)).toEqual(["after"]);
  });
});

describe("B55 joint consensus", () => {
  it("B55 changing two voters enters a joint config and leaves it automatically exactly once", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    join(c, 5, [1, 2, 3]);
    const seen = recordConfStates(c, 1);
    proposeConf(c, 1, { changes: [change(AddVoter, 4), change(AddVoter, 5)] });
    c.tickAll(3);
    expect(seen.map((s) => s.cs)).toEqual([
      { voters: [1, 2, 3, 4, 5], learners: [], votersOutgoing: [1, 2, 3], learnersNext: [], autoLeave: true },
      { voters: [1, 2, 3, 4, 5], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    ]);
    for (const id of [1, 2, 3, 4, 5]) {
      expect(config(c, id)).toEqual(seen[1]!.cs);
      expect(c.get(id).applied.filter(isLeaveJoint)).toHaveLength(1);
    }
  });

  it("B55 auto-leave is proposed once even when more entries are applied before it commits (etcd#12582)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    join(c, 5, [1, 2, 3]);
    c.handle(1, c.node(1).proposeConfChange({ changes: [change(AddVoter, 4), change(AddVoter, 5)] }));
    for (const d of ["a", "b", "c", "d"]) c.handle(1, c.node(1).propose(enc(d)));
    c.deliver();
    c.propose(1, "e");
    c.tickAll(3);
    for (const id of [1, 2, 3, 4, 5]) {
      expect(logOf(c, id).filter(isLeaveJoint)).toHaveLength(1);
      expect(config(c, id).votersOutgoing).toEqual([]);
      expect(c.appliedData(id)).toEqual(["a", "b", "c", "d", "e"]);
    }
  });

  it("B55 auto-leave happens exactly once across a leader change", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    join(c, 5, [1, 2, 3]);
    // Every append of 1 that carries its leave entry is lost.
    c.filter = (m) => !(m.from === 1 && m.type === MessageType.App && m.entries.some(isLeaveJoint));
    proposeConf(c, 1, { changes: [change(AddVoter, 4), change(AddVoter, 5)] });
    expect(logOf(c, 1).filter(isLeaveJoint)).toHaveLength(1);
    expect(config(c, 2).votersOutgoing).toEqual([1, 2, 3]); // 2 is in the joint config
    c.filter = undefined;
    c.isolate(1);
    c.campaign(2);
    expect(c.node(2).status().role).toBe(Role.Leader);
    c.tickAll(3);
    c.heal();
    c.tickAll(5);
    for (const id of [1, 2, 3, 4, 5]) {
      expect(config(c, id)).toEqual({
        voters: [1, 2, 3, 4, 5],
        learners: [],
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      });
      expect(c.get(id).applied.filter(isLeaveJoint)).toHaveLength(1);
      expect(logOf(c, id).filter(isLeaveJoint)).toHaveLength(1);
    }
  });

  /** {1,2,3} -> {1,4,5} held joint (explicitLeave), everyone caught up. */
  function jointCluster() {
    const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    join(c, 5, [1, 2, 3]);
    proposeConf(c, 1, {
      changes: [change(AddVoter, 4), change(AddVoter, 5), change(RemoveNode, 2), change(RemoveNode, 3)],
      explicitLeave: true,
    });
    c.tickAll(3);
    for (const id of [1, 2, 3, 4, 5]) {
      expect(config(c, id)).toEqual({
        voters: [1, 4, 5],
        learners: [],
        votersOutgoing: [1, 2, 3],
        learnersNext: [],
        autoLeave: false,
      });
    }
    return c;
  }

  it("B55 a joint config needs a majority of both halves to commit", () => {
    const c = jointCluster();
    const uncommitted = () => {
      const s = c.node(1).status();
      return s.lastIndex - s.commit;
    };
    // Outgoing majority (1,2,3) but only 1 of the incoming {1,4,5}.
    c.cutLink(1, 4);
    c.cutLink(1, 5);
    c.propose(1, "p");
    expect(uncommitted()).toBe(1);
    c.heal();
    c.tickAll(2);
    expect(uncommitted()).toBe(0);
    // Incoming majority (1,4,5) but only 1 of the outgoing {1,2,3}.
    c.cutLink(1, 2);
    c.cutLink(1, 3);
    c.propose(1, "q");
    expect(uncommitted()).toBe(1);
    c.heal();
    c.tickAll(2);
    expect(uncommitted()).toBe(0);
    expect(c.appliedData(4)).toEqual(["p", "q"]);
    // The joint config stays until it is left explicitly.
    expect(config(c, 1).votersOutgoing).toEqual([1, 2, 3]);
    proposeConf(c, 1, { changes: [] });
    c.tickAll(2);
    for (const id of [1, 4, 5]) expect(config(c, id).votersOutgoing).toEqual([]);
    expect(config(c, 1).voters).toEqual([1, 4, 5]);
  });

  it("B55 a joint config needs a majority of both halves to elect a leader", () => {
    const c = jointCluster();
    c.isolate(1);
    // 4 can reach 5 (incoming majority {4,5}) but not 2 or 3 (outgoing {1,2,3}).
    c.cutLink(4, 2);
    c.cutLink(4, 3);
    c.campaign(4);
    expect(c.node(4).status().role).not.toBe(Role.Leader);
    expect(c.delivered.some((m) => m.from === 5 && m.to === 4 && m.type === MessageType.VoteResp)).toBe(true);
    // With 2 and 3 reachable it wins.
    c.heal();
    c.isolate(1);
    c.campaign(4);
    expect(c.node(4).status().role).toBe(Role.Leader);
  });
});

describe("B56 a removed or demoted leader steps down", () => {
  it("B56 a removed leader steps down and never leads again", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    proposeConf(c, 1, { changes: [change(RemoveNode, 1)] });
    expect(c.node(1).status().role).toBe(Role.Follower);
    expect(c.node(1).status().leader).toBe(0);
    for (let i = 0; i < 100; i++) {
      c.tickAll(1);
      expect(c.leaders()).not.toContain(1);
    }
    const lead = c.leader();
    expect([2, 3]).toContain(lead);
    c.handle(1, c.node(1).campaign());
    c.deliver();
    expect(c.node(1).status().role).toBe(Role.Follower);
    expect(c.leader()).toBe(lead);
    expect(config(c, lead).voters).toEqual([2, 3]);
    c.propose(lead, "after");
    expect(c.appliedData(2)).toEqual(["after"]);
    expect(c.appliedData(3)).toEqual(["after"]);
  });

  it("B56 a demoted leader steps down, stays a learner and keeps receiving the log", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    proposeConf(c, 1, { changes: [change(AddLearner, 1)] });
    expect(c.node(1).status().role).toBe(Role.Follower);
    const lead = electAmong(c, [2, 3]);
    for (let i = 0; i < 50; i++) {
      c.tickAll(1);
      expect(c.leaders()).toEqual([lead]);
    }
    expect(config(c, lead)).toMatchObject({ voters: [2, 3], learners: [1] });
    c.propose(lead, "after");
    c.tickAll(1);
    expect(c.appliedData(1)).toEqual(["after"]);
  });

  it("B56 a leader replaced through a joint config leads until the config is left, then steps down", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    const seen = recordConfStates(c, 1);
    proposeConf(c, 1, { changes: [change(RemoveNode, 1), change(AddVoter, 4)] });
    expect(seen.map((s) => [s.cs.voters, s.cs.votersOutgoing, s.role])).toEqual([
      [[2, 3, 4], [1, 2, 3], Role.Leader],
      [[2, 3, 4], [], Role.Follower],
    ]);
    const lead = electAmong(c, [2, 3, 4]);
    for (let i = 0; i < 50; i++) {
      c.tickAll(1);
      expect(c.leaders()).toEqual([lead]);
    }
    c.handle(1, c.node(1).campaign());
    c.deliver();
    expect(c.leaders()).toEqual([lead]);
  });
  it("B56 a leader demoted through a joint config (learnersNext) steps down when the config is left", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    join(c, 4, [1, 2, 3]);
    const seen = recordConfStates(c, 1);
    proposeConf(c, 1, { changes: [change(AddLearner, 1), change(AddVoter, 4)] });
    expect(
      seen.map((s) => [s.cs.voters, s.cs.votersOutgoing, s.cs.learners, s.cs.learnersNext, s.role]),
    ).toEqual([
      [[2, 3, 4], [1, 2, 3], [], [1], Role.Leader],
      [[2, 3, 4], [], [1], [], Role.Follower],
    ]);
    const lead = electAmong(c, [2, 3, 4]);
    c.propose(lead, "after");
    c.tickAll(1);
    expect(c.appliedData(1)).toEqual(["after"]);
    for (let i = 0; i < 30; i++) {
      c.tickAll(1);
      expect(c.leaders()).toEqual([lead]);
    }
  });
});

describe("B57 a removed node ignores TimeoutNow", () => {
  it("B57 a node not in its own config does nothing on TimeoutNow (TransferNonMember)", () => {
    const n = new RaftNode({ id: 1, peers: [2, 3, 4], storage: new MemoryStorage(), electionTick: 10 });
    let rd = n.step(newMessage(MessageType.TimeoutNow, { from: 2, to: 1, term: 1 }));
    const sent: Message[] = [];
    while (rd) {
      sent.push(...rd.messages, ...rd.immediateMessages);
      rd = n.advance(rd);
    }
    for (const from of [2, 3]) {
      rd = n.step(newMessage(MessageType.VoteResp, { from, to: 1, term: 1 }));
      while (rd) {
        sent.push(...rd.messages, ...rd.immediateMessages);
        rd = n.advance(rd);
      }
    }
    expect(n.status().role).toBe(Role.Follower);
    expect(n.status().elections).toBe(0);
    expect(sent.filter((m) => m.type === MessageType.Vote || m.type === MessageType.PreVote)).toEqual([]);
  });

  it("B57 a node removed from a running cluster does not campaign on TimeoutNow", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    proposeConf(c, 1, { changes: [change(RemoveNode, 3)] });
    c.tickAll(2);
    expect(config(c, 3).voters).toEqual([1, 2]);
    const term = c.node(1).status().term;
    c.step(3, newMessage(MessageType.TimeoutNow, { from: 1, to: 3, term }));
    expect(c.queue.filter((m) => m.from === 3)).toEqual([]);
    c.deliver();
    expect(c.node(3).status().role).toBe(Role.Follower);
    expect(c.node(3).status().term).toBe(term);
    expect(c.leader()).toBe(1);
    expect(c.node(1).status().term).toBe(term);
    // And the leader refuses to transfer to it.
    c.handle(1, c.node(1).transferLeader(3));
    expect(c.node(1).status().leadTransferee).toBe(0);
    expect(c.messagesOfType(MessageType.TimeoutNow)).toEqual([]);
  });
});
