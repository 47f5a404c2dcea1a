// The persistence contract (B34–B37): what must be durable before a message goes
// out, what survives a crash, when a Ready needs an fsync, and how pipelined
// (asynchronous) writes interact with acknowledgements.

import { afterEach, describe, expect, it } from "vitest";
import {
  MemoryStorage,
  type Message,
  MessageType,
  makeEntry,
  type RaftNode,
  type Ready,
  Role,
} from "../../src/raft/index.ts";
import { Chaos } from "./crash-chaos.ts";
import { Cluster, enc } from "./harness.ts";
import { ReadyAudit, tapRaftNodes } from "./ready-audit.ts";
import { msg, processOneHeld, Solo, storageWithLog } from "./stepwise.ts";

const noElectionTricks = { preVote: false, checkQuorum: false };

let audit: ReadyAudit | undefined;
let untap: (() => void) | undefined;
function auditCluster(c: () => Cluster | undefined): ReadyAudit {
  audit = new ReadyAudit((n: RaftNode) => {
    const cl = c();
    return cl ? [...cl.members.values()].find((m) => m.node === n)?.storage : undefined;
  }).install();
  return audit;
}
afterEach(() => {
  audit?.remove();
  audit = undefined;
  untap?.();
  untap = undefined;
});

/** The Ready that carried the message of type `t`, and whether it went as immediate. */
function readyWith(readies: Ready[], t: MessageType): { rd: Ready; immediate: boolean } {
  for (const rd of readies) {
    if (rd.messages.some((m) => m.type === t)) return { rd, immediate: false };
    if (rd.immediateMessages.some((m) => m.type === t)) return { rd, immediate: true };
  }
  throw new Error(`no Ready carried a ${MessageType[t]}`);
}

describe("B34 term, vote and commit are in a Ready's hard state before messages that depend on them", () => {
  it("B34 a granted vote is in the hard state of the Ready whose after-write messages carry the grant (§5.2, doc.go)", () => {
    const f = new Solo(new MemoryStorage([1, 2, 3]), { id: 2 });
    const before = f.readies.length;
    f.step({ type: MessageType.Vote, from: 1, to: 2, term: 5, index: 0, logTerm: 0 });
    const { rd, immediate } = readyWith(f.readies.slice(before), MessageType.VoteResp);
    expect(immediate).toBe(false);
    expect(rd.messages.find((m) => m.type === MessageType.VoteResp)).toMatchObject({
      reject: false,
      term: 5,
      to: 1,
    });
    expect(rd.hardState).toMatchObject({ term: 5, vote: 1 });
    expect(rd.mustSync).toBe(true);
    expect(f.storage.initialState().hardState).toMatchObject({ term: 5, vote: 1 });
  });

  it("B34 a candidate's new term and self-vote are in the Ready that sends its vote requests (§5.2)", () => {
    const c = new Cluster([1, 2, 3], noElectionTricks);
    c.get(1).hold = true;
    c.handle(1, c.node(1).campaign());
    const { rd, immediate } = readyWith(c.get(1).held, MessageType.Vote);
    expect(immediate).toBe(false);
    expect(rd.hardState).toMatchObject({ term: 1, vote: 1 });
    expect(c.queue).toEqual([]); // nothing left before the write
  });

  it("B34 a leader sends at once only in a durable term; appends of a term still being written wait for the write", () => {
    const c = new Cluster([1, 2, 3], noElectionTricks);
    const m1 = c.get(1);
    // What node 1's Readies carry as they are handed out (the harness empties the
    // immediate messages of a held Ready once it has sent them).
    const taken: { immediate: Message[]; after: Message[] }[] = [];
    untap = tapRaftNodes({
      onReady: (n, rd) => {
        if (n === m1.node) taken.push({ immediate: rd.immediateMessages, after: rd.messages });
      },
    });
    const apps = (ms: Message[]) => ms.filter((m) => m.type === MessageType.App);
    m1.hold = true;
    c.handle(1, c.node(1).campaign());
    // Write the candidate's Ready and send its vote requests, but do not advance it yet.
    const r1 = m1.held[0]!;
    m1.storage.setHardState(r1.hardState!);
    m1.storage.append(r1.entries);
    for (const m of r1.messages) c.queue.push(m);
    const mark = taken.length;
    c.deliver();
    expect(c.node(1).status().role).toBe(Role.Leader);
    const afterWin = taken.slice(mark);
    expect(afterWin.flatMap((t) => apps(t.immediate))).toEqual([]); // the core does not know term 1 is durable yet
    expect(afterWin.flatMap((t) => apps(t.after)).length).toBeGreaterThan(0);

    // Once term 1 is acknowledged durable, the leader's appends go at once.
    m1.held.shift();
    c.handle(1, c.node(1).advance(r1));
    c.release(1);
    c.deliver();
    m1.hold = true;
    const mark2 = taken.length;
    c.propose(1, "x");
    expect(apps(taken[mark2]!.immediate).length).toBe(2);
    expect(apps(taken[mark2]!.after)).toEqual([]);
    c.release(1);
    c.deliver();
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["x"]);
  });

  it("B34 every Ready of seeded runs (with held writes and crashes) respects the order: the Ready audit finds nothing", () => {
    let cl: Cluster | undefined;
    const a = auditCluster(() => cl);
    for (let seed = 201; seed <= 210; seed++) {
      const ch = new Chaos({ ids: [1, 2, 3], seed, steps: 500, hold: true, crash: true });
      cl = ch.c;
      ch.run();
      expect(ch.settle()).toBe(true);
      expect(ch.violations).toEqual([]);
    }
    expect(a.readies).toBeGreaterThan(500);
    expect(a.violations).toEqual([]);
  });

  it("B34 the Ready audit flags a vote response that is not backed by the Ready's hard state", () => {
    const c = new Cluster([1, 2, 3]);
    const a = auditCluster(() => c);
    const node = c.node(2);
    a.check(node, {
      entries: [],
      committedEntries: [],
      messages: [msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 })],
      immediateMessages: [msg({ type: MessageType.AppResp, from: 2, to: 1, term: 0 })],
      readStates: [],
      mustSync: false,
    });
    expect(a.violations.some((v) => v.includes("grants a vote"))).toBe(true);
    expect(a.violations.some((v) => v.includes("AppResp sent as an immediate"))).toBe(true);
  });
});

describe("B35 a crash after any Ready without advance loses nothing promised", () => {
  it("B35 a vote that was sent survives a crash: the restarted voter refuses another candidate in that term (§5.2)", () => {
    const c = new Cluster([1, 2, 3], noElectionTricks);
    c.cutLink(1, 2);
    c.campaign(1); // 3 votes for 1 in term 1
    expect(c.node(1).status()).toMatchObject({ role: Role.Leader, term: 1 });
    c.get(3).hold = true;
    c.tick(3);
    c.restart(3);
    expect(c.node(3).status()).toMatchObject({ term: 1, vote: 1 });
    c.isolate(1);
    c.campaign(2); // term 1 too: 2 had heard of no term
    expect(c.node(2).status().term).toBe(1);
    expect(c.node(2).status().role).not.toBe(Role.Leader);
  });

  it("B35 a follower that crashes before writing an append never acknowledged it, and the entry commits only once stored", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    const base = c.node(1).status().commit;
    c.cutLink(1, 3);
    c.get(2).hold = true;
    c.propose(1, "x");
    expect(c.node(1).status().commit).toBe(base); // 2 has not acknowledged
    expect(c.delivered.some((m) => m.type === MessageType.AppResp && m.from === 2 && m.index > base)).toBe(
      false,
    );
    c.restart(2); // the held Ready, with x, is lost
    expect(c.node(2).status().lastIndex).toBe(base);
    expect(c.node(1).status().commit).toBe(base);
    c.tick(1);
    c.deliver();
    expect(c.node(1).status().commit).toBe(base + 1);
    c.heal();
    c.tick(1);
    c.deliver();
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["x"]);
  });

  it("B35 a leader that crashes with its own write and commit unwritten loses no committed entry and restarts with commit >= applied", () => {
    const c = new Cluster([1, 2, 3], noElectionTricks);
    c.campaign(1);
    c.propose(1, "a");
    c.get(1).hold = true;
    c.propose(1, "b"); // 2 and 3 store b; commit reaches them while 1 has written nothing
    expect(c.appliedData(2)).toEqual(["a", "b"]);
    const appliedBefore = c.get(1).applied.at(-1)!.index;
    c.restart(1);
    const st = c.node(1).status();
    expect(st.commit).toBeGreaterThanOrEqual(appliedBefore);
    expect(st.lastIndex).toBe(appliedBefore); // b was never written on 1
    // 1 cannot win with a log missing b; 2 can, and b stays committed.
    c.campaign(1);
    expect(c.node(1).status().role).not.toBe(Role.Leader);
    if (c.leaders().length === 0) c.campaign(2);
    const l = c.leader();
    expect(l).not.toBe(1);
    c.propose(l, "c");
    c.tick(l);
    c.deliver();
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["a", "b", "c"]);
  });

  it("B35 seeded crash runs: no double vote in a term, no acknowledged entry lost, no commit regression", () => {
    let crashes = 0;
    let lost = 0;
    let writtenNotAdvanced = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const ids = seed % 3 === 0 ? [1, 2, 3, 4, 5] : [1, 2, 3];
      const overrides = seed % 2 === 0 ? {} : noElectionTricks;
      const ch = new Chaos({ ids, seed, steps: 500, overrides, hold: true, crash: true }).run();
      expect(ch.violations).toEqual([]);
      expect(ch.settle()).toBe(true);
      expect(ch.violations).toEqual([]);
      crashes += ch.stats.crashes;
      lost += ch.stats.lostReadies;
      writtenNotAdvanced += ch.stats.writtenNotAdvanced;
    }
    expect(crashes).toBeGreaterThan(50);
    expect(lost).toBeGreaterThan(50); // crashes did hit unwritten Readies
    expect(writtenNotAdvanced).toBeGreaterThan(5); // and written but not advanced ones
  });
});

describe("B36 MustSync", () => {
  it("B36 a Ready with only a commit change or only messages need not be synced; votes, terms and entries must", () => {
    const f = new Solo(storageWithLog([1, 2, 3], [1, 1, 1], { term: 1, vote: 0, commit: 0 }), {
      id: 2,
      ...noElectionTricks,
    });
    let from = f.readies.length;
    const since = () => {
      const rs = f.readies.slice(from);
      from = f.readies.length;
      return rs;
    };
    f.step({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1, commit: 2 });
    let rs = since();
    expect(rs[0]!.hardState).toEqual({ term: 1, vote: 0, commit: 2 });
    expect(rs.every((rd) => !rd.mustSync)).toBe(true);

    f.step({ type: MessageType.Heartbeat, from: 1, to: 2, term: 1, commit: 2 });
    rs = since();
    expect(rs[0]!.hardState).toBeUndefined();
    expect(rs[0]!.messages.map((m) => m.type)).toEqual([MessageType.HeartbeatResp]);
    expect(rs[0]!.mustSync).toBe(false);

    f.step({
      type: MessageType.App,
      from: 1,
      to: 2,
      term: 1,
      index: 3,
      logTerm: 1,
      entries: [makeEntry(1, 4, enc("x"))],
    });
    expect(since()[0]!.mustSync).toBe(true);

    f.step({ type: MessageType.Vote, from: 3, to: 2, term: 2, index: 4, logTerm: 1 });
    rs = since();
    expect(rs[0]!.hardState).toMatchObject({ term: 2, vote: 3 });
    expect(rs[0]!.mustSync).toBe(true);

    // A term change alone: a vote request of a later term, refused for a stale log.
    f.step({ type: MessageType.Vote, from: 1, to: 2, term: 3, index: 1, logTerm: 1 });
    rs = since();
    expect(rs[0]!.hardState).toEqual({ term: 3, vote: 0, commit: 2 });
    expect(rs[0]!.messages.find((m) => m.type === MessageType.VoteResp)?.reject).toBe(true);
    expect(rs[0]!.mustSync).toBe(true);

    // A vote change alone, in the same term.
    f.step({ type: MessageType.Vote, from: 3, to: 2, term: 3, index: 4, logTerm: 1 });
    rs = since();
    expect(rs[0]!.hardState).toEqual({ term: 3, vote: 3, commit: 2 });
    expect(rs[0]!.mustSync).toBe(true);
  });

  it("B36 in seeded runs every Ready's mustSync matches its content (audited)", () => {
    let cl: Cluster | undefined;
    const a = auditCluster(() => cl);
    for (let seed = 301; seed <= 306; seed++) {
      const ch = new Chaos({ ids: [1, 2, 3, 4, 5], seed, steps: 500, hold: seed % 2 === 0 });
      cl = ch.c;
      ch.run();
      expect(ch.settle()).toBe(true);
    }
    expect(a.readies).toBeGreaterThan(500);
    expect(a.violations.filter((v) => v.includes("mustSync"))).toEqual([]);
    expect(a.violations).toEqual([]);
  });
});

describe("B37 asynchronous writes", () => {
  it("B37 ticks, steps and proposals are accepted while every node's writes are in flight", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    for (const id of [1, 2, 3]) c.get(id).hold = true;
    for (const d of ["a", "b", "c"]) {
      c.propose(1, d);
      c.tickAll(1);
    }
    expect(c.node(1).status().lastIndex).toBe(4);
    expect(c.get(1).held.length).toBeGreaterThan(3);
    expect(c.get(2).held.length).toBeGreaterThan(3);
    // Nothing is acknowledged before it is written, so nothing is committed yet.
    expect(c.node(1).status().commit).toBe(1);
    for (const id of [2, 3, 1]) c.release(id);
    c.deliver();
    c.tickAll(2);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["a", "b", "c"]);
  });

  it("B37 the write of an entry replaced meanwhile does not make the replacement stable (ABA, async_storage_writes_append_aba_race)", () => {
    const c = new Cluster([1, 2, 3, 4, 5], noElectionTricks);
    c.campaign(1);
    for (const p of [3, 4, 5]) c.cutLink(1, p);
    const m2 = c.get(2);
    m2.hold = true;
    c.propose(1, "x"); // node 2 starts writing 2@1
    expect(m2.held.map((rd) => rd.entries.map((e) => `${e.index}@${e.term}`))).toContainEqual(["2@1"]);

    // Node 3 wins term 2 without 1 and replaces 2@1 on node 2 with its 2@2.
    c.heal();
    c.isolate(1);
    for (let i = 0; i < 3 && c.node(3).status().role !== Role.Leader; i++) c.campaign(3);
    expect(c.node(3).status()).toMatchObject({ role: Role.Leader, term: 2 });
    expect(m2.held.some((rd) => rd.entries.some((e) => e.index === 2 && e.term === 2))).toBe(true);

    // The write of 2@1 completes and is acknowledged; 2@2 is still being written.
    const first = processOneHeld(c, 2);
    expect(first.entries.map((e) => `${e.index}@${e.term}`)).toEqual(["2@1"]);
    expect(m2.storage.term(2)).toBe(1);

    // Node 2 must still see 2@2 as its entry: the leader's next append, after (2, 2), matches.
    c.propose(3, "y"); // 3@2, committed by 3, 4 and 5 (node 2 is still being probed)
    const n = m2.held.length;
    c.step(
      2,
      msg({
        type: MessageType.App,
        from: 3,
        to: 2,
        term: 2,
        index: 2,
        logTerm: 2,
        entries: [makeEntry(2, 3, enc("y"))],
      }),
    );
    const resp = m2.held
      .slice(n)
      .flatMap((rd) => rd.messages)
      .find((m) => m.type === MessageType.AppResp);
    expect(resp).toMatchObject({ reject: false, index: 3 });

    c.release(2);
    expect(m2.storage.term(2)).toBe(2);
    expect(m2.storage.term(3)).toBe(2);
    c.deliver();
    c.tick(3);
    c.deliver();
    for (const id of [2, 3, 4, 5]) expect(c.appliedData(id)).toEqual(["y"]);
  });
});
