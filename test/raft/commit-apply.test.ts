// Commit and apply (B28–B33): when an entry counts as committed, what followers
// learn of it, and how committed entries reach the state machine.

import { afterEach, describe, expect, it } from "vitest";
import {
  type Entry,
  type Message,
  MessageType,
  makeEntry,
  type RaftNode,
  Role,
} from "../../src/raft/index.ts";
import { Chaos } from "./crash-chaos.ts";
import { Cluster, dec, enc } from "./harness.ts";
import { progress } from "./observe.ts";
import { ReadyAudit } from "./ready-audit.ts";
import { msg, processOneHeld, Solo, storageWithLog } from "./stepwise.ts";

const noElectionTricks = { preVote: false, checkQuorum: false };

function matchOf(c: Cluster, leader: number, id: number): number {
  return progress(c, leader, id).match;
}

function indexes(es: Entry[]): number[] {
  return es.map((e) => e.index);
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

/** Campaigns until `id` leads (a first round may only bring it up to the others' term). */
function campaignUntilLeader(c: Cluster, id: number, rounds = 3): void {
  for (let i = 0; i < rounds && c.node(id).status().role !== Role.Leader; i++) c.campaign(id);
  expect(c.node(id).status().role).toBe(Role.Leader);
}

let audit: ReadyAudit | undefined;
/** Audits every Ready of the cluster's nodes for the rest of the test. */
function audited(c: Cluster): Cluster {
  audit = new ReadyAudit(
    (n: RaftNode) => [...c.members.values()].find((m) => m.node === n)?.storage,
  ).install();
  return c;
}
afterEach(() => {
  audit?.remove();
  audit = undefined;
});

describe("B28 committed iff stored on a majority of voters", () => {
  it("B28 a leader counts its own entry toward commit only after advance of the Ready carrying it (§5.3, async_storage_writes)", () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    c.campaign(1);
    expect(c.leader()).toBe(1);
    const base = c.node(1).status().commit;
    c.cutLink(1, 4);
    c.cutLink(1, 5);
    c.get(1).hold = true;
    c.propose(1, "x"); // appends go out at once; the leader's own write is held
    const idx = base + 1;
    expect(matchOf(c, 1, 2)).toBe(idx);
    expect(matchOf(c, 1, 3)).toBe(idx);
    // Stored on 2 and 3, written but not durable on 1: 2 of 5, not a majority.
    expect(matchOf(c, 1, 1)).toBe(base);
    expect(c.node(1).status().commit).toBe(base);
    expect(c.get(1).held.every((rd) => rd.committedEntries.length === 0)).toBe(true);

    c.release(1); // the leader's write is durable: 3 of 5
    expect(c.node(1).status().commit).toBe(idx);
    c.deliver();
    expect(c.appliedData(1)).toEqual(["x"]);
  });

  it("B28 one follower of four is not enough; the second makes the majority (§5.3)", () => {
    const c = new Cluster([1, 2, 3, 4, 5]);
    c.campaign(1);
    const base = c.node(1).status().commit;
    for (const p of [3, 4, 5]) c.cutLink(1, p);
    c.propose(1, "x");
    expect(matchOf(c, 1, 2)).toBe(base + 1);
    expect(c.node(1).status().commit).toBe(base); // leader + 2: 2 of 5
    expect(c.appliedData(2)).toEqual([]);

    c.heal();
    c.cutLink(1, 4);
    c.cutLink(1, 5);
    c.tick(1); // heartbeat: 3 answers and is caught up
    c.deliver();
    expect(matchOf(c, 1, 3)).toBe(base + 1);
    expect(c.node(1).status().commit).toBe(base + 1); // 3 of 5
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["x"]);
  });

  it("B28 with the leader's write in flight, two followers of three form the majority on their own", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    const base = c.node(1).status().commit;
    c.get(1).hold = true;
    c.propose(1, "x");
    expect(matchOf(c, 1, 1)).toBe(base);
    expect(c.node(1).status().commit).toBe(base + 1);
    c.release(1);
    c.deliver();
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["x"]);
  });
});

describe("B29 commit by counting replicas only for current-term entries", () => {
  /** Delivers appends without the entries of the sender's own (current) term. */
  const stripOwnTermEntries = (m: Message) => {
    if (m.type === MessageType.App) m.entries = m.entries.filter((e) => e.term < m.term);
    return true;
  };

  /**
   * Figure 8 (a)-(c) of the paper on five servers: S1 leads term 1 and gets 2@1
   * only onto S2, then crashes; S5 is elected in term 2 by S3, S4 and itself,
   * appends 2@2 only locally, and crashes; S1 restarts and is elected in term 3
   * by S2-S4. With `stripOwnTerm`, S1's appends carry only older entries, so that
   * 2@1 reaches S3 and S4 but S1's own 3@3 reaches nobody (Figure 8 (c)).
   */
  function figure8(stripOwnTerm: boolean): Cluster {
    const c = new Cluster([1, 2, 3, 4, 5], noElectionTricks);
    c.campaign(1);
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, term: 1, commit: 1 });
    for (const p of [3, 4, 5]) c.cutLink(1, p);
    c.propose(1, "x"); // 2@1 on S1 and S2
    expect(c.node(2).status().lastIndex).toBe(2);
    expect(c.node(1).status().commit).toBe(1);

    c.heal();
    c.isolate(1);
    c.restart(1); // S1 crashes
    c.isolate(2);
    c.filter = (m) => !(m.from === 5 && m.type === MessageType.App);
    c.campaign(5);
    expect(c.node(5).status()).toMatchObject({ role: Role.Leader, term: 2, lastIndex: 2 });
    expect(c.node(3).status().lastIndex).toBe(1);

    c.heal();
    c.isolate(5);
    c.restart(5); // S5 crashes
    c.filter = stripOwnTerm ? stripOwnTermEntries : undefined;
    campaignUntilLeader(c, 1);
    expect(c.node(1).status()).toMatchObject({ term: 3, lastIndex: 3 });
    return c;
  }

  it("B29 an earlier-term entry stored on a majority is not committed by counting replicas: Figure 8 (§5.4.2)", () => {
    const c = figure8(true);
    // 2@1 is now on S1, S2, S3 and S4 (four of five), and the leader knows it...
    for (const id of [2, 3, 4]) {
      expect(c.node(id).status().lastIndex).toBe(2);
      expect(matchOf(c, 1, id)).toBe(2);
    }
    // ...but it is of term 1 and the leader is in term 3: not committed.
    expect(c.node(1).status().commit).toBe(1);
    for (const id of [1, 2, 3, 4]) expect(c.appliedData(id)).toEqual([]);

    // Figure 8 (d): rightly so. S1 goes down; S5 (last term 2) wins and replaces 2@1.
    c.filter = undefined;
    c.heal();
    c.isolate(1);
    campaignUntilLeader(c, 5);
    c.propose(5, "y");
    for (const id of [2, 3, 4, 5]) {
      expect(c.appliedData(id)).toEqual(["y"]);
      expect(c.get(id).applied.find((e) => e.index === 2)?.term).toBe(2);
    }
  });

  it("B29 earlier-term entries commit indirectly once an entry of the current term commits: Figure 8 (e) (§5.4.2)", () => {
    const c = figure8(false);
    expect(c.node(1).status().commit).toBe(3); // 3@3 on a majority commits 2@1 with it
    c.deliver();
    for (const id of [1, 2, 3, 4]) expect(c.appliedData(id)).toEqual(["x"]);
    // S5 can no longer win: a majority holds a log with a later last term than its own.
    c.isolate(1);
    c.campaign(5);
    c.campaign(5);
    expect(c.node(5).status().role).not.toBe(Role.Leader);
  });

  it("B29 a new leader commits nothing of the previous term until an entry of its own term is on a majority (CannotCommitWithoutNewTermEntry)", () => {
    const c = new Cluster([1, 2, 3, 4, 5], noElectionTricks);
    c.campaign(1);
    for (const p of [3, 4, 5]) c.cutLink(1, p);
    c.propose(1, "a");
    c.propose(1, "b"); // 2@1 and 3@1 on nodes 1 and 2 only
    expect(c.node(1).status().commit).toBe(1);
    c.heal();
    c.restart(1);
    // Node 2 takes over in term 2; its appends carry only the term-1 entries.
    c.filter = stripOwnTermEntries;
    campaignUntilLeader(c, 2);
    expect(c.node(2).status()).toMatchObject({ term: 2, lastIndex: 4 });
    for (const id of [1, 3, 4, 5]) expect(matchOf(c, 2, id)).toBe(3);
    expect(c.node(2).status().commit).toBe(1);
    // Now its own no-op reaches them: everything commits at once.
    c.filter = undefined;
    c.tick(2);
    c.deliver();
    expect(c.node(2).status().commit).toBe(4);
    for (const id of [1, 2, 3, 4, 5]) expect(c.appliedData(id)).toEqual(["a", "b"]);
  });
});

describe("B30 commit is a prefix; apply in order, exactly once, across restarts", () => {
  it("B30 learning commit index i applies every entry up to i, in order and exactly once (§5.3)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.isolate(3);
    for (const d of ["a", "b", "c", "d", "e"]) c.propose(1, d);
    expect(c.appliedData(3)).toEqual([]);
    c.heal();
    c.tick(1);
    c.deliver();
    const last = c.node(1).status().lastIndex;
    for (const id of [1, 2, 3]) {
      expect(c.appliedData(id)).toEqual(["a", "b", "c", "d", "e"]);
      expect(indexes(c.get(id).applied)).toEqual(range(1, last));
    }
  });

  it("B30 a restart resumes apply right after the configured applied index, without gaps or repeats, paginated (CommitPaginationAfterRestart)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    for (let i = 0; i < 12; i++) c.propose(1, `v${i}`.padEnd(100, "."));
    const commit = c.node(2).status().commit;
    expect(commit).toBe(13);
    // Node 2's storage, reopened by an application that had applied up to 5.
    const s = new Solo(c.get(2).storage, { id: 2, applied: 5, maxCommittedBytesPerReady: 300 });
    expect(indexes(s.applied)).toEqual(range(6, commit));
    const pages = s.readies.filter((rd) => rd.committedEntries.length > 0);
    expect(pages.length).toBeGreaterThan(1);
    // ...and one that had applied everything gets nothing again.
    const t = new Solo(c.get(2).storage, { id: 2, applied: commit });
    expect(t.applied).toEqual([]);
  });

  it("B30 after a restart from storage, new entries are applied after the old ones with no repeat", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    c.propose(1, "b");
    c.restart(2);
    c.propose(1, "c");
    c.tick(1);
    c.deliver();
    expect(c.appliedData(2)).toEqual(["a", "b", "c"]);
    expect(indexes(c.get(2).applied)).toEqual(range(1, c.node(1).status().lastIndex));
    // The restarted leader, too.
    c.restart(1);
    campaignUntilLeader(c, 2);
    c.propose(2, "d");
    c.tick(2);
    c.deliver();
    for (const id of [1, 2, 3]) {
      expect(c.appliedData(id)).toEqual(["a", "b", "c", "d"]);
      expect(indexes(c.get(id).applied)).toEqual(range(1, c.node(2).status().lastIndex));
    }
  });
});

describe("B31 followers learn commit and never commit beyond their matched log", () => {
  /** Node 2 with entries 1..3 of term 1, none known committed; node 1 leads term 2. */
  function follower(): Solo {
    return new Solo(storageWithLog([1, 2, 3], [1, 1, 1]), { id: 2 });
  }
  const app = (index: number, logTerm: number, commit: number, entries: Entry[] = []) =>
    msg({ type: MessageType.App, from: 1, to: 2, term: 2, index, logTerm, commit, entries });

  it("B31 an append commits min(leader commit, index of the last new entry) (§5.3, HandleMsgApp)", () => {
    const f = follower();
    f.step(app(1, 1, 3)); // matches at 1, carries nothing: 2 and 3 are not known to match
    expect(f.node.status().commit).toBe(1);
    f.step(app(2, 1, 3));
    expect(f.node.status().commit).toBe(2);
    f.step(app(3, 1, 3));
    expect(f.node.status().commit).toBe(3);
    expect(indexes(f.applied)).toEqual([1, 2, 3]);
  });

  it("B31 a conflicting tail is replaced and commit stops at the last new entry", () => {
    const f = follower();
    f.step(app(1, 1, 5, [makeEntry(2, 2, enc("new"))]));
    expect(f.node.status()).toMatchObject({ lastIndex: 2, commit: 2 });
    expect(f.applied.map((e) => dec(e.data))).toEqual(["e1@1", "new"]);
  });

  it("B31 a rejected append changes no commit", () => {
    const f = follower();
    f.step(app(3, 2, 3)); // prev term does not match
    expect(f.node.status().commit).toBe(0);
    const resp = f.take().find((m) => m.type === MessageType.AppResp);
    expect(resp?.reject).toBe(true);
  });

  it("B31 a heartbeat's commit is taken only up to the follower's last index (HandleHeartbeat)", () => {
    const f = follower();
    f.step(msg({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2, commit: 2 }));
    expect(f.node.status().commit).toBe(2);
    f.step(msg({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2, commit: 10 }));
    expect(f.node.status().commit).toBe(3);
    f.step(msg({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2, commit: 1 }));
    expect(f.node.status().commit).toBe(3);
  });

  it("B31 in a cluster, a follower learns commit from the next append, or from a heartbeat if that is lost", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    const commit = c.node(1).status().commit;
    for (const id of [2, 3]) expect(c.node(id).status().commit).toBe(commit);
    // Appends to 2 are lost from now on: it still learns the commit from a heartbeat.
    c.filter = (m) => !(m.to === 2 && m.type === MessageType.App && m.entries.length === 0);
    c.propose(1, "b");
    expect(c.node(1).status().commit).toBe(commit + 1);
    expect(c.node(2).status().commit).toBe(commit);
    c.tick(1);
    c.deliver();
    expect(c.node(2).status().commit).toBe(commit + 1);
    expect(c.appliedData(2)).toEqual(["a", "b"]);
  });
});

describe("B32 commit and applied are monotonic; applied <= commit <= last", () => {
  it("B32 holds on every node after every step of seeded runs with reordering, loss, duplication and partitions", () => {
    let committed = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const ids = seed % 2 === 0 ? [1, 2, 3] : [1, 2, 3, 4, 5];
      const ch = new Chaos({ ids, seed, steps: 600 }).run();
      expect(ch.violations).toEqual([]);
      expect(ch.settle()).toBe(true);
      expect(ch.violations).toEqual([]);
      committed += ch.stats.committed;
    }
    expect(committed).toBeGreaterThan(100); // the runs did commit things
  });

  it("B32 holds with asynchronous writes (held Readies) too", () => {
    for (let seed = 101; seed <= 108; seed++) {
      const ch = new Chaos({ ids: [1, 2, 3], seed, steps: 600, hold: true }).run();
      expect(ch.violations).toEqual([]);
      expect(ch.settle()).toBe(true);
      expect(ch.violations).toEqual([]);
    }
  });
});

describe("B33 the single-voter case; committed entries are always stable", () => {
  it("B33 a single voter commits only after advance of its own append (etcd#14413)", () => {
    const c = new Cluster([1]);
    c.get(1).hold = true;
    c.campaign(1);
    expect(c.node(1).status().role).toBe(Role.Leader);
    c.propose(1, "a");
    c.propose(1, "b");
    const st = c.node(1).status();
    expect(st.lastIndex).toBe(3);
    expect(st.commit).toBe(0);
    expect(c.get(1).held.every((rd) => rd.committedEntries.length === 0)).toBe(true);

    // The Ready with the no-op is durable: exactly the no-op commits, not the
    // entries still being written.
    const first = processOneHeld(c, 1);
    expect(indexes(first.entries)).toEqual([1]);
    expect(c.node(1).status().commit).toBe(1);
    const newest = c.get(1).held[c.get(1).held.length - 1]!;
    expect(indexes(newest.committedEntries)).toEqual([1]);
    c.release(1);
    expect(c.node(1).status().commit).toBe(3);
    expect(c.appliedData(1)).toEqual(["a", "b"]);
  });

  it("B33 no Ready hands out a committed entry that was not handed out for writing first", () => {
    const c = audited(new Cluster([1, 2, 3]));
    c.campaign(1);
    c.get(2).hold = true;
    for (const d of ["a", "b", "c"]) c.propose(1, d);
    c.get(1).hold = true;
    c.propose(1, "d");
    c.tick(1);
    c.deliver();
    c.release(2);
    c.release(1);
    c.tickAll(3);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["a", "b", "c", "d"]);
    expect(audit!.readies).toBeGreaterThan(20);
    expect(audit!.violations).toEqual([]);
  });

  it("B33 the Ready audit itself flags a committed entry that was never written", () => {
    const c = audited(new Cluster([1]));
    const node = c.node(1);
    audit!.check(node, {
      entries: [],
      committedEntries: [{ term: 1, index: 1, type: 0, data: enc("ghost"), crc: 0 }],
      messages: [],
      immediateMessages: [],
      readStates: [],
      mustSync: false,
      hardState: { term: 1, vote: 1, commit: 1 },
    });
    expect(audit!.violations.some((v) => v.includes("never handed out"))).toBe(true);
  });
});
