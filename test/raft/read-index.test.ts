// Read behaviours B58–B61: ReadIndex needs a heartbeat quorum and a commit in the
// leader's term, goes through the leader from followers, handles duplicates and
// frees its memory; lease reads need CheckQuorum; no stale read from a deposed
// or partitioned leader.

import { describe, expect, it } from "vitest";
import { MemoryStorage, MessageType, RaftNode, type ReadState, Role } from "../../src/raft/index.ts";
import { Cluster } from "./harness.ts";
import { allReadStates, deliverStashing, expectRaftError } from "./helpers-b51-b65.ts";

/** Asks `id` for a read point and delivers everything. */
function read(c: Cluster, id: number, ctx: string): void {
  c.handle(id, c.node(id).readIndex(ctx));
  c.deliver();
}

/** A settled cluster with leader 1 and some committed data. */
function settled(ids: number[], overrides: ConstructorParameters<typeof Cluster>[1] = {}): Cluster {
  const c = new Cluster(ids, overrides);
  c.campaign(1);
  c.propose(1, "a");
  c.propose(1, "b");
  c.tickAll(1);
  return c;
}

describe("B58 ReadIndex on the leader", () => {
  it("B58 a read is answered only after a heartbeat quorum acknowledges, with the commit index at request time", () => {
    const c = settled([1, 2, 3, 4, 5]);
    const commit = c.node(1).status().commit;
    const ackFrom = new Set<number>();
    c.filter = (m) => m.type !== MessageType.HeartbeatResp || ackFrom.has(m.from);

    read(c, 1, "r1");
    expect(c.get(1).readStates).toEqual([]);
    // Self + 2 of 5 is no quorum.
    ackFrom.add(2);
    c.tickAll(1);
    expect(c.get(1).readStates).toEqual([]);
    // Self + 2 + 3 is.
    ackFrom.add(3);
    c.tickAll(1);
    expect(c.get(1).readStates).toEqual([{ index: commit, context: "r1" }]);
    // Nothing is answered twice.
    c.filter = undefined;
    c.tickAll(3);
    expect(c.get(1).readStates).toHaveLength(1);
  });

  it("B58 a new leader answers only after committing an entry of its own term (etcd#7331)", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
    c.campaign(1);
    c.tickAll(1);
    // 1 commits "a", but no follower learns that it is committed.
    c.filter = (m) =>
      !(
        m.from === 1 &&
        (m.type === MessageType.App || m.type === MessageType.Heartbeat) &&
        m.entries.length === 0
      );
    c.propose(1, "a");
    const aIndex = c.node(1).status().lastIndex;
    expect(c.node(1).status().commit).toBe(aIndex);
    expect(c.node(2).status().commit).toBeLessThan(aIndex);

    // 2 becomes leader; its empty entry cannot commit yet.
    c.filter = (m) => !(m.to === 2 && m.type === MessageType.AppResp);
    c.isolate(1);
    c.campaign(2);
    expect(c.node(2).status().role).toBe(Role.Leader);
    read(c, 2, "new");
    c.tickAll(3); // heartbeats are acknowledged, but 2 has no commit of its own term
    expect(c.get(2).readStates).toEqual([]);

    c.filter = undefined;
    c.tickAll(2);
    const rs = c.get(2).readStates;
    expect(rs.map((r) => r.context)).toEqual(["new"]);
    // The read point covers what the old leader committed.
    expect(rs[0]!.index).toBeGreaterThanOrEqual(aIndex);
    expect(c.node(2).status().commit).toBeGreaterThanOrEqual(rs[0]!.index);
  });

  it("B58 a learner's acknowledgement does not confirm a read", () => {
    const c = new Cluster([1, 2], { learners: [3] });
    c.add(3, [1, 2]);
    c.campaign(1);
    c.propose(1, "a");
    c.tickAll(1);
    c.filter = (m) => !(m.type === MessageType.HeartbeatResp && m.from === 2);
    read(c, 1, "l");
    c.tickAll(2);
    expect(
      c.delivered.some((m) => m.type === MessageType.HeartbeatResp && m.from === 3 && m.context === "l"),
    ).toBe(true);
    expect(c.get(1).readStates).toEqual([]);
    c.filter = undefined;
    c.tickAll(1);
    expect(c.get(1).readStates.map((r) => r.context)).toEqual(["l"]);
  });

  it("B58 a single-voter leader answers at once", () => {
    const c = new Cluster([1]);
    c.campaign(1);
    c.propose(1, "a");
    const rd = c.node(1).readIndex("solo");
    expect(rd?.readStates).toEqual([{ index: c.node(1).status().commit, context: "solo" }]);
    c.handle(1, rd);
  });
});

describe("B59 ReadIndex through followers, duplicates, memory", () => {
  it("B59 a read on a follower goes through the leader", () => {
    const c = settled([1, 2, 3]);
    const commit = c.node(1).status().commit;
    c.handle(2, c.node(2).readIndex("f"));
    expect(c.queue.filter((m) => m.type === MessageType.ReadIndex).map((m) => [m.from, m.to])).toEqual([
      [2, 1],
    ]);
    c.deliver();
    expect(c.get(2).readStates).toEqual([{ index: commit, context: "f" }]);
    expect(c.get(1).readStates).toEqual([]);
    expect(
      c.delivered.filter((m) => m.type === MessageType.ReadIndexResp).map((m) => [m.from, m.to]),
    ).toEqual([[1, 2]]);
  });

  it("B59 a read without a known leader or without a context is refused", () => {
    const c = new Cluster([1, 2, 3]);
    expectRaftError(() => c.node(2).readIndex("x"), "NO_LEADER");
    c.campaign(1);
    expectRaftError(() => c.node(2).readIndex(""), "PROPOSAL_DROPPED");
    expectRaftError(() => c.node(1).readIndex(""), "PROPOSAL_DROPPED");
  });

  it("B59 a duplicate context is answered once while pending, and can be used again afterwards", () => {
    const c = settled([1, 2, 3]);
    const commit = c.node(1).status().commit;
    c.filter = (m) => m.type !== MessageType.HeartbeatResp;
    read(c, 1, "d");
    read(c, 1, "d");
    read(c, 2, "d"); // the same context from a follower
    c.filter = undefined;
    c.tickAll(2);
    expect(allReadStates(c).filter((r) => r.context === "d" && r.at === 1)).toEqual([
      { index: commit, context: "d", at: 1 },
    ]);
    // Reusable once answered, with a fresh index.
    c.propose(1, "c");
    read(c, 1, "d");
    expect(c.get(1).readStates.map((r) => r.index)).toEqual([commit, commit + 1]);
  });

  it("B59 a duplicated request is not answered with an index older than a later write (ReadOnlyDuplicateRequest)", () => {
    const c = new Cluster([1, 2, 3], { checkQuorum: false, preVote: false });
    c.campaign(1);
    c.tickAll(1);
    const minA = c.node(1).status().commit;
    // Read A from 2 through 1; its heartbeat acks are delayed.
    c.handle(2, c.node(2).readIndex("A"));
    const reqA = c.queue.find((m) => m.type === MessageType.ReadIndex)!;
    const delayed = [structuredClone(reqA)];
    delayed.push(...deliverStashing(c, (m) => m.type === MessageType.HeartbeatResp));
    c.tick(1);
    delayed.push(...deliverStashing(c, (m) => m.type === MessageType.HeartbeatResp));

    // 1 is cut off; 2 wins and commits a write.
    c.isolate(1);
    c.campaign(2);
    c.propose(2, "someOp");
    const minB = c.node(2).status().commit;
    expect(c.appliedData(2)).toEqual(["someOp"]);
    // Read B on the old leader, which still believes it leads.
    expect(c.node(1).status().role).toBe(Role.Leader);
    read(c, 1, "B");
    c.heal();
    // The duplicate of A first, then the delayed heartbeat acks.
    c.queue.push(...delayed);
    c.deliver();
    for (const rs of allReadStates(c)) {
      if (rs.context === "A") expect(rs.index).toBeGreaterThanOrEqual(minA);
      if (rs.context === "B") expect(rs.index).toBeGreaterThanOrEqual(minB);
    }
  });

  it("B59 answered reads free their memory: thousands in a row keep being answered", () => {
    const c = settled([1, 2, 3]);
    const n = 5000; // beyond the 4096 pending-read bound
    for (let i = 0; i < n; i++) read(c, i % 2 === 0 ? 1 : 2, `m${i}`);
    const answered = allReadStates(c).length;
    expect(answered).toBe(n);
  });

  it("B59 reads pending on a leader that loses leadership are dropped, and later reads still work", () => {
    const c = settled([1, 2, 3]);
    c.filter = (m) => m.type !== MessageType.HeartbeatResp;
    for (let i = 0; i < 100; i++) read(c, 1, `p${i}`);
    c.filter = undefined;
    c.handle(1, c.node(1).transferLeader(2));
    c.deliver();
    expect(c.leader()).toBe(2);
    c.tickAll(3);
    expect(c.get(1).readStates).toEqual([]);
    read(c, 1, "after");
    expect(c.get(1).readStates.map((r) => r.context)).toEqual(["after"]);
  });
});

describe("B60 lease reads require CheckQuorum", () => {
  it("B60 readOnlyOption 'lease' without CheckQuorum is a configuration error", () => {
    expectRaftError(
      () =>
        new RaftNode({
          id: 1,
          peers: [1, 2, 3],
          storage: new MemoryStorage(),
          readOnlyOption: "lease",
          checkQuorum: false,
        }),
      "INVALID_CONFIG",
    );
    expect(
      () =>
        new RaftNode({
          id: 1,
          peers: [1, 2, 3],
          storage: new MemoryStorage(),
          readOnlyOption: "lease",
          checkQuorum: true,
        }),
    ).not.toThrow();
  });

  it("B60 with CheckQuorum, a lease read is answered by the leader without a heartbeat round", () => {
    const c = settled([1, 2, 3], { readOnlyOption: "lease" });
    const commit = c.node(1).status().commit;
    c.filter = () => false; // nothing gets through
    read(c, 1, "lease");
    expect(c.get(1).readStates).toEqual([{ index: commit, context: "lease" }]);
  });
});

describe("B61 no stale read from a deposed or partitioned leader", () => {
  it("B61 a leader cut off with a minority serves no read, even after the majority committed (safe)", () => {
    // No CheckQuorum: the old leader keeps believing it leads for as long as we like.
    const c = settled([1, 2, 3, 4, 5], { checkQuorum: false });
    const earlyCommit = c.node(1).status().commit;
    const minority = [1, 2];
    const majority = [3, 4, 5];
    for (const a of minority) for (const b of majority) c.cutLink(a, b);
    read(c, 1, "early-1");
    read(c, 2, "early-2");
    let lead = 0;
    for (let i = 0; i < 100 && !lead; i++) {
      c.tickAll(1);
      lead = c.leaders().find((id) => majority.includes(id)) ?? 0;
    }
    expect(lead).not.toBe(0);
    c.propose(lead, "new");
    const newCommit = c.node(lead).status().commit;
    expect(c.appliedData(lead)).toContain("new");
    expect(c.node(1).status().role).toBe(Role.Leader); // deposed without knowing it
    // Reads that start after "new" was acknowledged must see it.
    read(c, 1, "late-1");
    read(c, 2, "late-2");
    c.tickAll(20);
    expect(c.get(1).readStates).toEqual([]);
    expect(c.get(2).readStates).toEqual([]);

    // After healing, no read is answered with a point older than it may be.
    c.heal();
    c.tickAll(20);
    for (const rs of allReadStates(c)) {
      expect(rs.index).toBeGreaterThanOrEqual(rs.context.startsWith("late") ? newCommit : earlyCommit);
    }
  });

  it("B61 a partitioned lease-based leader serves no read once another leader may have committed (lease + CheckQuorum)", () => {
    // Try every alignment of the partition with the leader's CheckQuorum window.
    const stale: { shift: number; round: number; rs: ReadState; newCommit: number }[] = [];
    for (let shift = 0; shift < 10; shift++) {
      const c = settled([1, 2, 3], { readOnlyOption: "lease" });
      c.tickAll(shift);
      c.isolate(1);
      let newCommit = 0;
      for (let round = 0; round < 40; round++) {
        c.tickAll(1);
        const other = c.leaders().find((id) => id !== 1);
        if (other !== undefined && newCommit === 0) {
          c.propose(other, "b");
          if (c.appliedData(other).includes("b")) newCommit = c.node(other).status().commit;
        }
        if (newCommit > 0 && c.node(1).status().role === Role.Leader) {
          const before = c.get(1).readStates.length;
          read(c, 1, `r${shift}-${round}`);
          for (const rs of c.get(1).readStates.slice(before)) {
            if (rs.index < newCommit) stale.push({ shift, round, rs, newCommit });
          }
        }
      }
      expect(newCommit, `shift ${shift}: the majority elected a leader and committed`).toBeGreaterThan(0);
    }
    // Report the first stale read of each alignment.
    const firstPerShift = stale.filter((x, i) => i === 0 || stale[i - 1]!.shift !== x.shift);
    expect(firstPerShift, `${stale.length} stale lease reads`).toEqual([]);
  });

  it("B61 a leader that handed leadership over serves no lease read after the new leader committed", () => {
    const c = settled([1, 2, 3], { readOnlyOption: "lease" });
    // TimeoutNow reaches 2; from then on nothing reaches 1 (the transfer campaign
    // ignores leases, so 2 wins at once).
    c.handle(1, c.node(1).transferLeader(2));
    c.filter = (m) => m.to !== 1;
    c.deliver();
    expect(c.node(2).status().role).toBe(Role.Leader);
    c.propose(2, "b");
    const newCommit = c.node(2).status().commit;
    expect(c.appliedData(2)).toContain("b");
    for (let i = 0; i < 20; i++) {
      if (c.node(1).status().role === Role.Leader) read(c, 1, `after-transfer-${i}`);
      c.tickAll(1);
    }
    const stale = c.get(1).readStates.filter((r) => r.index < newCommit);
    expect(stale.slice(0, 3), `${stale.length} stale lease reads`).toEqual([]);
  });

  it("B61 a deposed leader drops the reads it holds once it learns of the new term", () => {
    const c = settled([1, 2, 3], { checkQuorum: false });
    c.isolate(1);
    let lead = 0;
    for (let i = 0; i < 100 && !lead; i++) {
      c.tickAll(1);
      lead = c.leaders().find((id) => id !== 1) ?? 0;
    }
    expect(lead).not.toBe(0);
    c.propose(lead, "new");
    const newCommit = c.node(lead).status().commit;
    expect(c.node(1).status().role).toBe(Role.Leader);
    for (let i = 0; i < 10; i++) read(c, 1, `late-${i}`);
    c.heal();
    c.tickAll(5);
    expect(c.node(1).status().role).toBe(Role.Follower);
    expect(c.node(1).status().leader).toBe(lead);
    for (const rs of allReadStates(c)) expect(rs.index).toBeGreaterThanOrEqual(newCommit);
    // Retried through the new leader, the read sees the write.
    read(c, 1, "retry");
    expect(c.get(1).readStates.find((r) => r.context === "retry")!.index).toBeGreaterThanOrEqual(newCommit);
  });
});
