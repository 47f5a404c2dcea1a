// Leader transfer behaviours B62–B65: TimeoutNow to an up-to-date follower, catch
// a slow one up first (also through a snapshot), drop proposals while pending and
// abort after an election timeout, no-ops for self and non-members, retargeting.

import { describe, expect, it } from "vitest";
import { ConfChangeType, type Message, MessageType, Role } from "../../src/raft/index.ts";
import { Cluster, enc } from "./harness.ts";
import { change, expectRaftError, proposeConf } from "./helpers-b51-b65.ts";

/** Leader 1 with some committed data, everyone caught up. */
function settled(ids: number[], overrides: ConstructorParameters<typeof Cluster>[1] = {}): Cluster {
  const c = new Cluster(ids, overrides);
  c.campaign(1);
  c.propose(1, "a");
  c.tickAll(1);
  return c;
}

function transfer(c: Cluster, on: number, to: number, deliver = true): void {
  c.handle(on, c.node(on).transferLeader(to));
  if (deliver) c.deliver();
}

const timeoutNows = (ms: Message[]) => ms.filter((m) => m.type === MessageType.TimeoutNow);

describe("B62 transfer to an up-to-date follower", () => {
  it("B62 the leader sends TimeoutNow and the follower wins the next term", () => {
    const c = settled([1, 2, 3]);
    const term = c.node(1).status().term;
    transfer(c, 1, 2, false);
    expect(timeoutNows(c.queue).map((m) => [m.from, m.to])).toEqual([[1, 2]]);
    c.deliver();
    expect(c.leader()).toBe(2);
    expect(c.node(2).status().term).toBe(term + 1);
    expect(c.node(1).status()).toMatchObject({ role: Role.Follower, leader: 2, leadTransferee: 0 });
    c.propose(2, "b");
    c.tickAll(1);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["a", "b"]);
  });

  it("B62 a transfer asked on a follower is forwarded to the leader", () => {
    const c = settled([1, 2, 3]);
    transfer(c, 3, 3, false);
    expect(c.queue.filter((m) => m.type === MessageType.TransferLeader).map((m) => [m.to, m.from])).toEqual([
      [1, 3],
    ]);
    c.deliver();
    expect(c.leader()).toBe(3);
  });

  it("B62 the transfer campaign passes the followers' leader lease (CheckQuorum, PreVote)", () => {
    const c = settled([1, 2, 3, 4, 5], { checkQuorum: true, preVote: true });
    transfer(c, 1, 4);
    expect(c.leader()).toBe(4);
    const votes = c.delivered.filter((m) => m.type === MessageType.Vote && m.from === 4);
    expect(votes.length).toBe(4);
    expect(votes.every((m) => m.force)).toBe(true);
  });
});

describe("B63 transfer to a slow follower", () => {
  it("B63 the leader catches the follower up first, then sends TimeoutNow", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3);
    for (let i = 0; i < 5; i++) c.propose(1, `p${i}`);
    c.heal();
    transfer(c, 1, 3, false);
    expect(timeoutNows(c.queue)).toEqual([]);
    expect(c.queue.some((m) => m.type === MessageType.App && m.to === 3)).toBe(true);
    expect(c.node(1).status().leadTransferee).toBe(3);

    let atTimeoutNow: { follower: number; leader: number } | undefined;
    c.filter = (m) => {
      if (m.type === MessageType.TimeoutNow) {
        atTimeoutNow = { follower: c.node(3).status().lastIndex, leader: c.node(1).status().lastIndex };
      }
      return true;
    };
    c.deliver();
    expect(atTimeoutNow).toBeDefined();
    expect(atTimeoutNow!.follower).toBe(atTimeoutNow!.leader);
    expect(c.leader()).toBe(3);
    expect(c.appliedData(3)).toEqual(["a", "p0", "p1", "p2", "p3", "p4"]);
  });

  it("B63 a follower behind the leader's snapshot gets the snapshot, then TimeoutNow", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3);
    for (let i = 0; i < 10; i++) c.propose(1, `p${i}`);
    // The leader snapshots and compacts past everything 3 has.
    const l = c.get(1);
    const applied = l.node.status().applied;
    l.storage.createSnapshot(applied, l.node.status().config, enc("state"));
    l.storage.compact(applied);
    c.heal();
    transfer(c, 1, 3, false);
    let snapBeforeTimeoutNow = false;
    let sawSnap = false;
    let atTimeoutNow: { follower: number; leader: number } | undefined;
    c.filter = (m) => {
      if (m.type === MessageType.Snap && m.to === 3) sawSnap = true;
      if (m.type === MessageType.TimeoutNow) {
        snapBeforeTimeoutNow = sawSnap;
        atTimeoutNow = { follower: c.node(3).status().lastIndex, leader: c.node(1).status().lastIndex };
      }
      return true;
    };
    for (let i = 0; i < 9 && c.leaders()[0] !== 3; i++) c.tickAll(1);
    expect(sawSnap).toBe(true);
    expect(snapBeforeTimeoutNow).toBe(true);
    expect(atTimeoutNow!.follower).toBe(atTimeoutNow!.leader);
    expect(c.leader()).toBe(3);
    c.filter = undefined;
    c.propose(3, "after");
    c.tickAll(1);
    expect(c.node(1).status().commit).toBe(c.node(3).status().commit);
  });
});

describe("B64 proposals during a transfer, and its timeout", () => {
  it("B64 proposals are dropped while a transfer is pending", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3); // the transfer cannot complete
    transfer(c, 1, 3);
    expect(c.node(1).status().leadTransferee).toBe(3);
    const last = c.node(1).status().lastIndex;
    expectRaftError(() => c.node(1).propose(enc("x")), "PROPOSAL_DROPPED");
    expectRaftError(
      () => c.node(1).proposeConfChange({ changes: [change(ConfChangeType.AddLearner, 9)] }),
      "PROPOSAL_DROPPED",
    );
    // Forwarded by a follower: dropped too (the follower cannot know).
    c.handle(2, c.node(2).propose(enc("y")));
    c.deliver();
    expect(c.node(1).status().lastIndex).toBe(last);
    expect(
      c
        .node(1)
        .status()
        .progress.find((p) => p.id === 1)!.match,
    ).toBe(last);
  });

  it("B64 a transfer that does not complete is aborted after electionTick ticks", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3);
    transfer(c, 1, 3);
    c.tickAll(9);
    expect(c.node(1).status().leadTransferee).toBe(3);
    expectRaftError(() => c.node(1).propose(enc("x")), "PROPOSAL_DROPPED");
    c.tickAll(1);
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, leadTransferee: 0 });
    c.propose(1, "x");
    c.tickAll(1);
    expect(c.appliedData(2)).toEqual(["a", "x"]);
  });

  it("B64 the transfer also aborts when the leader steps down", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3);
    transfer(c, 1, 3);
    c.isolate(1);
    c.tickAll(30); // CheckQuorum deposes 1
    expect(c.node(1).status().role).not.toBe(Role.Leader);
    expect(c.node(1).status().leadTransferee).toBe(0);
  });
});

describe("B65 transfer no-ops, repeats and retargeting", () => {
  it("B65 transferring to self is a no-op", () => {
    const c = settled([1, 2, 3]);
    const term = c.node(1).status().term;
    transfer(c, 1, 1, false);
    expect(timeoutNows(c.queue)).toEqual([]);
    c.deliver();
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, leadTransferee: 0, term });
    c.propose(1, "ok"); // not blocked
    expect(c.appliedData(1)).toEqual(["a", "ok"]);
  });

  it("B65 transferring to a non-member or a learner is a no-op", () => {
    const c = new Cluster([1, 2], { learners: [3] });
    c.add(3, [1, 2]);
    c.campaign(1);
    c.tickAll(1);
    const term = c.node(1).status().term;
    for (const to of [9, 3]) {
      transfer(c, 1, to, false);
      expect(timeoutNows(c.queue)).toEqual([]);
      c.deliver();
      expect(c.node(1).status()).toMatchObject({ role: Role.Leader, leadTransferee: 0, term });
    }
    c.propose(1, "ok");
    expect(c.appliedData(3)).toEqual(["ok"]);
  });

  it("B65 a node removed from the cluster is a non-member: the transfer is a no-op", () => {
    const c = settled([1, 2, 3]);
    proposeConf(c, 1, { changes: [change(ConfChangeType.RemoveNode, 3)] });
    c.tickAll(1);
    transfer(c, 1, 3);
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, leadTransferee: 0 });
  });

  it("B65 repeating a transfer to the same node does not extend its timer", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3);
    transfer(c, 1, 3);
    c.tickAll(5);
    transfer(c, 1, 3);
    expect(c.node(1).status().leadTransferee).toBe(3);
    c.tickAll(4);
    expect(c.node(1).status().leadTransferee).toBe(3);
    c.tickAll(1); // electionTick ticks after the first request
    expect(c.node(1).status().leadTransferee).toBe(0);
  });

  it("B65 a transfer to another node retargets it, with a fresh timer", () => {
    const c = settled([1, 2, 3, 4, 5]);
    c.isolate(4);
    c.isolate(5);
    transfer(c, 1, 4);
    c.tickAll(5);
    transfer(c, 1, 5);
    expect(c.node(1).status().leadTransferee).toBe(5);
    c.tickAll(9);
    expect(c.node(1).status().leadTransferee).toBe(5);
    c.tickAll(1);
    expect(c.node(1).status().leadTransferee).toBe(0);
    expect(c.node(1).status().role).toBe(Role.Leader);
  });

  it("B65 retargeting a stuck transfer to an up-to-date node completes it", () => {
    const c = settled([1, 2, 3]);
    c.isolate(3);
    transfer(c, 1, 3);
    c.tickAll(3);
    transfer(c, 1, 2);
    expect(c.leaders()).toEqual([2]);
    expect(c.node(1).status().leader).toBe(2);
  });
});
