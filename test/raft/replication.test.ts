// Behaviour tests B20–B27: log replication and the Log Matching property (Raft
// paper §5.3, §5.4). Bracketed names are the etcd raft tests a behaviour is
// drawn from (see docs/raft-behaviours.md).

import { describe, expect, it } from "vitest";
import {
  checksumOk,
  isRaftError,
  type MemoryStorage,
  type Message,
  MessageType,
  makeEntry,
  NONE,
  Role,
} from "../../src/raft/index.ts";
import { Cluster, dec, enc } from "./harness.ts";
import { msg, Solo, storageWith, testRng } from "./solo.ts";

// ---- helpers (local to this file) ----------------------------------------------

/**
 * The data every test gives entry (index, term), as storageWith does: equal positions
 * carry equal data.
 */
const dataOf = (index: number, term: number) => enc(`i${index}t${term}`);
const entry = (index: number, term: number) => makeEntry(term, index, dataOf(index, term));

type LogRow = [index: number, term: number, data: string];

/** The whole log in storage as (index, term, data) rows. */
function logOf(s: MemoryStorage): LogRow[] {
  const first = s.firstIndex();
  const last = s.lastIndex();
  if (last < first) return [];
  return s.entries(first, last + 1, Number.MAX_SAFE_INTEGER).map((e) => [e.index, e.term, dec(e.data)]);
}

const termsOf = (s: MemoryStorage) => logOf(s).map((r) => r[1]);

/** The log as (index, term, checksum) rows: cheap, and the checksum covers the data. */
function idsOf(s: MemoryStorage): [number, number, number][] {
  const first = s.firstIndex();
  const last = s.lastIndex();
  if (last < first) return [];
  return s.entries(first, last + 1, Number.MAX_SAFE_INTEGER).map((e) => [e.index, e.term, e.crc]);
}

function errorCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (isRaftError(e)) return e.code;
    throw e;
  }
  return undefined;
}

// ---- B20–B22 ---------------------------------------------------------------------------

describe("replication", () => {
  it("B20 a proposal on the leader is appended at lastIndex+1 with the current term and sent with the right prev (§5.3)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    const before = c.node(1).status();
    expect(before).toMatchObject({ role: Role.Leader, term: 1, lastIndex: 2 });
    const rd = c.node(1).proposeBatch([enc("b"), enc("c")]);
    expect(rd).not.toBeNull();
    expect(rd!.entries.map((e) => [e.index, e.term, dec(e.data)])).toEqual([
      [3, 1, "b"],
      [4, 1, "c"],
    ]);
    for (const e of rd!.entries) expect(checksumOk(e)).toBe(true);
    const apps = [...rd!.immediateMessages, ...rd!.messages].filter((m) => m.type === MessageType.App);
    expect(apps.map((m) => m.to).sort()).toEqual([2, 3]);
    for (const a of apps) {
      expect(a).toMatchObject({ from: 1, term: 1, index: 2, logTerm: 1 });
      expect(a.entries.map((e) => e.index)).toEqual([3, 4]);
    }
    c.handle(1, rd);
    c.deliver();
    c.tickAll(2);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["a", "b", "c"]);
  });

  it("B20 every append a leader sends names a prev (index, term) from its own log, also to lagging followers (§5.3)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.handle(1, c.node(1).transferLeader(2));
    c.deliver();
    expect(c.leader()).toBe(2);
    c.propose(2, "x");
    const rd = c.node(2).propose(enc("y"));
    const st = c.node(2).status();
    expect(rd!.entries).toEqual([expect.objectContaining({ index: st.lastIndex, term: 2 })]);
    c.handle(2, rd);
    c.deliver();
    c.isolate(3);
    for (let i = 0; i < 5; i++) c.propose(2, `p${i}`);
    c.heal();
    c.delivered = [];
    c.tickAll(3);
    c.propose(2, "z");
    c.tickAll(3);
    const leaderLog = new Map(logOf(c.get(2).storage).map((r) => [r[0], r]));
    const apps = c.delivered.filter((m) => m.type === MessageType.App);
    expect(apps.some((m) => m.to === 3 && m.entries.length > 0)).toBe(true); // 3 was caught up
    for (const a of apps) {
      expect(a.from).toBe(2);
      if (a.index > 0) expect(leaderLog.get(a.index)?.[1]).toBe(a.logTerm);
      for (const e of a.entries) expect(leaderLog.get(e.index)).toEqual([e.index, e.term, dec(e.data)]);
    }
    for (const id of [1, 2, 3]) expect(logOf(c.get(id).storage)).toEqual(logOf(c.get(2).storage));
  });

  // Follower log, an App (prev index, prev term), and the expected answer.
  const rejections: { log: number[]; index: number; logTerm: number; hint: number; hintTerm: number }[] = [
    { log: [1, 1, 2, 2, 2], index: 5, logTerm: 3, hint: 5, hintTerm: 2 }, // last entry's term differs
    { log: [1, 1, 3, 3, 3], index: 4, logTerm: 2, hint: 2, hintTerm: 1 }, // skip the whole term-3 run
    { log: [1, 1], index: 5, logTerm: 1, hint: 2, hintTerm: 1 }, // follower is short
    { log: [2, 2, 2], index: 2, logTerm: 1, hint: 0, hintTerm: 0 }, // nothing can match
  ];
  for (const r of rejections) {
    it(`B21 a follower with log ${JSON.stringify(r.log)} rejects prev (${r.index}, ${r.logTerm}) with hint (${r.hint}, ${r.hintTerm}) (§5.3)`, () => {
      const s = new Solo(2, [1, 2, 3], {}, storageWith(r.log, { term: 3 }));
      const before = logOf(s.storage);
      s.take();
      s.step(
        msg(MessageType.App, { from: 1, to: 2, term: 3, index: r.index, logTerm: r.logTerm, commit: 0 }),
      );
      const out = s.take();
      expect(out).toHaveLength(1);
      expect(out[0]).toMatchObject({
        type: MessageType.AppResp,
        to: 1,
        term: 3,
        reject: true,
        index: r.index,
        rejectHint: r.hint,
        logTerm: r.hintTerm,
      });
      expect(logOf(s.storage)).toEqual(before);
      expect(s.status()).toMatchObject({ role: Role.Follower, leader: 1, term: 3 });
    });
  }

  it("B21 a follower accepts an App whose prev matches (§5.3)", () => {
    const s = new Solo(2, [1, 2, 3], {}, storageWith([1, 1, 1], { term: 1 }));
    s.take();
    s.step(msg(MessageType.App, { from: 1, to: 2, term: 1, index: 3, logTerm: 1, entries: [entry(4, 1)] }));
    expect(s.take()).toEqual([
      expect.objectContaining({ type: MessageType.AppResp, to: 1, reject: false, index: 4 }),
    ]);
    expect(termsOf(s.storage)).toEqual([1, 1, 1, 1]);
  });

  it("B22 on a match a follower truncates the conflicting suffix and appends the leader's entries (§5.3)", () => {
    const s = new Solo(2, [1, 2, 3], {}, storageWith([1, 1, 2, 2], { term: 2 }));
    s.readies = [];
    s.take();
    s.step(msg(MessageType.App, { from: 1, to: 2, term: 3, index: 2, logTerm: 1, entries: [entry(3, 3)] }));
    expect(logOf(s.storage)).toEqual([
      [1, 1, "i1t1"],
      [2, 1, "i2t1"],
      [3, 3, "i3t3"],
    ]);
    expect(s.take()).toEqual([
      expect.objectContaining({ type: MessageType.AppResp, to: 1, reject: false, index: 3 }),
    ]);
    expect(s.readies.flatMap((rd) => rd.entries).map((e) => [e.index, e.term])).toEqual([[3, 3]]);
  });

  it("B22 a follower appends only the entries it is missing (§5.3)", () => {
    const s = new Solo(2, [1, 2, 3], {}, storageWith([1, 1, 1], { term: 1 }));
    s.readies = [];
    s.step(
      msg(MessageType.App, {
        from: 1,
        to: 2,
        term: 1,
        index: 1,
        logTerm: 1,
        entries: [entry(2, 1), entry(3, 1), entry(4, 1)],
      }),
    );
    expect(s.readies.flatMap((rd) => rd.entries).map((e) => e.index)).toEqual([4]);
    expect(termsOf(s.storage)).toEqual([1, 1, 1, 1]);
  });

  it("B22 a duplicate or reordered App does not truncate matching or committed entries [LogReplicationWithReorderedMessage]", () => {
    // Follower holds 1..5 of term 1, commit 3.
    const s = new Solo(2, [1, 2, 3], {}, storageWith([1, 1, 1, 1, 1], { term: 1, commit: 3 }));
    s.readies = [];
    s.take();
    // A late copy of an old append (prev 3, entry 4): entry 5 stays.
    s.step(
      msg(MessageType.App, {
        from: 1,
        to: 2,
        term: 1,
        index: 3,
        logTerm: 1,
        entries: [entry(4, 1)],
        commit: 2,
      }),
    );
    expect(termsOf(s.storage)).toEqual([1, 1, 1, 1, 1]);
    expect(s.readies.flatMap((rd) => rd.entries)).toEqual([]);
    expect(s.status()).toMatchObject({ lastIndex: 5, commit: 3 }); // commit never goes back
    expect(s.take()).toEqual([
      expect.objectContaining({ type: MessageType.AppResp, reject: false, index: 4 }),
    ]);
    // An append below the commit index is answered with the commit index and changes nothing.
    s.step(
      msg(MessageType.App, {
        from: 1,
        to: 2,
        term: 1,
        index: 1,
        logTerm: 1,
        entries: [entry(2, 1)],
        commit: 2,
      }),
    );
    expect(s.take()).toEqual([
      expect.objectContaining({ type: MessageType.AppResp, reject: false, index: 3 }),
    ]);
    expect(termsOf(s.storage)).toEqual([1, 1, 1, 1, 1]);
    expect(s.readies.flatMap((rd) => rd.entries)).toEqual([]);
    expect(s.status()).toMatchObject({ lastIndex: 5, commit: 3 });
  });

  it("B22 in a cluster, appends delivered out of order and duplicated leave the follower's log whole (§5.3)", () => {
    const c = new Cluster([1, 2]);
    c.campaign(1);
    c.handle(1, c.node(1).propose(enc("a")));
    const req1 = c.drain().filter((m) => m.type === MessageType.App && m.to === 2);
    c.handle(1, c.node(1).propose(enc("b")));
    const req2 = c.drain().filter((m) => m.type === MessageType.App && m.to === 2);
    expect(req1).toHaveLength(1);
    expect(req2).toHaveLength(1);
    expect(req2[0]!.index).toBe(2);

    // The second append arrives first: rejected (a gap), nothing is written.
    c.step(2, req2[0]!);
    const resp2 = c.drain();
    expect(resp2).toEqual([expect.objectContaining({ type: MessageType.AppResp, reject: true, index: 2 })]);
    // Then the first; then both again.
    c.step(2, req1[0]!);
    const resp1 = c.drain();
    expect(resp1).toEqual([expect.objectContaining({ type: MessageType.AppResp, reject: false, index: 2 })]);
    c.step(2, req2[0]!);
    c.step(2, req1[0]!);
    c.step(2, req2[0]!);
    const later = c.drain();
    expect(termsOf(c.get(2).storage)).toEqual([1, 1, 1]);

    // The leader learns match 2, then loses contact (probe); the stale rejection
    // arrives: it must resend from its match, not further back.
    c.step(1, resp1[0]!);
    c.drain();
    expect(
      c
        .node(1)
        .status()
        .progress.find((p) => p.id === 2)?.match,
    ).toBe(2);
    c.handle(1, c.node(1).reportUnreachable(2));
    c.step(1, resp2[0]!);
    const resend = c.drain().filter((m) => m.type === MessageType.App && m.to === 2);
    expect(resend).toHaveLength(1);
    expect(resend[0]!.index).toBe(2);

    for (const m of [...later, ...resend]) c.queue.push(m);
    c.deliver();
    c.tickAll(3);
    expect(logOf(c.get(2).storage)).toEqual(logOf(c.get(1).storage));
    expect(c.appliedData(2)).toEqual(["a", "b"]);
  });
});

// ---- B23–B26 ---------------------------------------------------------------------------

describe("log repair", () => {
  // Figure 7 of the paper: the leader of term 8 and six possible followers.
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const figure7: Record<string, number[]> = {
    "(a) missing one entry": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "(b) missing many entries": [1, 1, 1, 4],
    "(c) one extra uncommitted entry": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "(d) extra entries of a later term": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "(e) missing entries and extra ones of an old term": [1, 1, 1, 4, 4, 4, 4],
    "(f) many extra entries of other terms": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };

  for (const [shape, followerTerms] of Object.entries(figure7)) {
    it(`B23 the leader repairs Figure 7 follower ${shape} (§5.3, Figure 7) [LeaderSyncFollowerLog]`, () => {
      const voters = [1, 2, 3];
      const c = new Cluster([]);
      // The leader-to-be at term 8 with everything committed; 3 holds the same log
      // (and votes for it: 2 may be more up to date).
      c.add(1, voters, storageWith(leaderTerms, { term: 8, commit: leaderTerms.length }, voters));
      c.add(2, voters, storageWith(followerTerms, { term: 7 }, voters));
      c.add(3, voters, storageWith(leaderTerms, { term: 7 }, voters));
      c.campaign(1);
      expect(c.leader()).toBe(1);
      expect(c.node(1).status().term).toBe(9);
      c.propose(1, "new");
      c.tickAll(3);
      const want = logOf(c.get(1).storage);
      expect(want.map((r) => r[1])).toEqual([...leaderTerms, 9, 9]);
      expect(logOf(c.get(2).storage)).toEqual(want);
      expect(c.node(2).status().commit).toBe(want.length);
      // Applied on the follower in order, exactly the leader's entries.
      expect(c.get(2).applied.map((e) => [e.index, e.term])).toEqual(want.map((r) => [r[0], r[1]]));
    });
  }

  // Leader and follower logs (terms), and how many rejections fast back-off may need.
  const backoff: { name: string; leader: number[]; follower: number[]; maxRejects: number }[] = [
    {
      name: "a long divergent tail of one term",
      leader: [...Array(5).fill(1), ...Array(100).fill(3)],
      follower: [...Array(5).fill(1), ...Array(100).fill(2)],
      maxRejects: 1,
    },
    {
      name: "a follower far behind",
      leader: [...Array(5).fill(1), ...Array(30).fill(3), ...Array(30).fill(5)],
      follower: [...Array(5).fill(1), ...Array(30).fill(2)],
      maxRejects: 1,
    },
    {
      name: "a follower far ahead with an old term",
      leader: [...Array(10).fill(1), ...Array(5).fill(3)],
      follower: [...Array(10).fill(1), ...Array(100).fill(2)],
      maxRejects: 1,
    },
    {
      name: "several divergent terms on both sides",
      leader: [...Array(5).fill(1), ...Array(10).fill(2), ...Array(10).fill(4), ...Array(10).fill(6)],
      follower: [...Array(5).fill(1), ...Array(10).fill(2), ...Array(10).fill(3), ...Array(10).fill(5)],
      maxRejects: 2,
    },
  ];
  for (const b of backoff) {
    it(`B24 fast back-off repairs ${b.name} in O(#terms) round trips, not O(#entries) (§5.3) [FastLogRejection]`, () => {
      const voters = [1, 2, 3];
      const c = new Cluster([]);
      c.add(1, voters, storageWith(b.leader, {}, voters));
      c.add(2, voters, storageWith(b.follower, {}, voters));
      c.add(3, voters, storageWith(b.leader, {}, voters));
      c.campaign(1);
      expect(c.leader()).toBe(1);
      c.tickAll(3);
      const rejects = c.delivered.filter((m) => m.type === MessageType.AppResp && m.from === 2 && m.reject);
      expect(rejects.length).toBeGreaterThanOrEqual(1);
      expect(rejects.length).toBeLessThanOrEqual(b.maxRejects);
      expect(logOf(c.get(2).storage)).toEqual(logOf(c.get(1).storage));
    });
  }

  it("B25 a new leader overwrites higher-term uncommitted entries on followers (§5.4.1) [LeaderElectionOverwriteNewerLogs]", () => {
    for (const preVote of [false, true]) {
      const voters = [1, 2, 3, 4, 5];
      const c = new Cluster([], { preVote });
      c.add(1, voters, storageWith([1], {}, voters)); // won term 1, wrote entry 1
      c.add(2, voters, storageWith([1], {}, voters)); // got entry 1 from node 1
      c.add(3, voters, storageWith([2], {}, voters)); // won term 2, wrote entry 1 alone
      c.add(4, voters, storageWith([], { term: 2, vote: 3 }, voters)); // voted for 3, no entries
      c.add(5, voters, storageWith([], { term: 2, vote: 3 }, voters));
      // The first try fails: a quorum already knows term 2. It is pushed to term 2.
      c.campaign(1);
      expect(c.node(1).status()).toMatchObject({ role: Role.Follower, term: 2 });
      // The second wins term 3.
      c.campaign(1);
      expect(c.node(1).status()).toMatchObject({ role: Role.Leader, term: 3 });
      c.tickAll(2);
      for (const id of voters) {
        expect(termsOf(c.get(id).storage)).toEqual([1, 3]);
        expect(c.node(id).status().commit).toBe(2);
      }
    }
  });

  it("B26 a leader never overwrites or deletes its own entries, whatever it receives (§5.3 Leader Append-Only)", () => {
    const s = new Solo(1, [1, 2, 3], { preVote: false }, storageWith([1, 1, 2], { term: 2 }));
    s.handle(s.node.campaign());
    s.step(msg(MessageType.VoteResp, { from: 2, to: 1, term: 3 }));
    expect(s.status()).toMatchObject({ role: Role.Leader, term: 3 });
    s.handle(s.node.propose(enc("x")));
    const mine = logOf(s.storage);
    expect(mine.map((r) => r[1])).toEqual([1, 1, 2, 3, 3]);
    const inputs: Message[] = [
      // An append of its own term from another node (impossible if elections are safe).
      msg(MessageType.App, { from: 2, to: 1, term: 3, index: 1, logTerm: 1, entries: [entry(2, 3)] }),
      // An old leader's append with conflicting entries (a lower term).
      msg(MessageType.App, {
        from: 2,
        to: 1,
        term: 2,
        index: 1,
        logTerm: 1,
        entries: [entry(2, 2), entry(3, 2)],
      }),
      // Rejections and stale acks from followers.
      msg(MessageType.AppResp, {
        from: 2,
        to: 1,
        term: 3,
        index: 5,
        reject: true,
        rejectHint: 1,
        logTerm: 1,
      }),
      msg(MessageType.AppResp, {
        from: 3,
        to: 1,
        term: 3,
        index: 3,
        reject: true,
        rejectHint: 0,
        logTerm: 0,
      }),
      msg(MessageType.AppResp, { from: 2, to: 1, term: 3, index: 2 }),
      msg(MessageType.HeartbeatResp, { from: 3, to: 1, term: 3 }),
      // A vote request of its own term, and an old snapshot-free heartbeat.
      msg(MessageType.Vote, { from: 2, to: 1, term: 3, index: 9, logTerm: 3 }),
      msg(MessageType.Heartbeat, { from: 2, to: 1, term: 2, commit: 3 }),
    ];
    for (const m of inputs) {
      s.step(m);
      expect(s.status().role).toBe(Role.Leader);
      expect(logOf(s.storage)).toEqual(mine);
      for (const rd of s.readies) {
        // Nothing handed to storage may start at or before an existing entry.
        for (const e of rd.entries) expect(e.index).toBeGreaterThan(2);
      }
    }
    // Ticks (heartbeats) change nothing either.
    for (let i = 0; i < 5; i++) s.handle(s.node.tick());
    expect(logOf(s.storage)).toEqual(mine);
  });

  it("B26 Leader Append-Only over faulty runs: while a node leads a term its log only grows (§5.3, Figure 3)", () => {
    let leaderships = 0;
    for (const seed of [21, 22, 23]) {
      const c = new Cluster([1, 2, 3, 4, 5], { preVote: seed !== 22 });
      const rnd = testRng(seed);
      const seen = new Map<string, [number, number, number][]>();
      let violations = 0;
      const check = () => {
        for (const [id, m] of c.members) {
          const st = m.node.status();
          if (st.role !== Role.Leader) continue;
          const key = `${id}@${st.term}`;
          const now = idsOf(m.storage);
          const prev = seen.get(key);
          if (prev) {
            if (now.length < prev.length) violations++;
            for (let i = 0; i < prev.length; i++) {
              const a = prev[i]!;
              const b = now[i];
              if (!b || b[0] !== a[0] || b[1] !== a[1] || b[2] !== a[2]) {
                violations++;
                break;
              }
            }
          }
          seen.set(key, now);
        }
      };
      let n = 0;
      c.filter = () => {
        if (++n % 8 === 0) check();
        return rnd(8) !== 0;
      };
      for (let t = 0; t < 250; t++) {
        if (t % 25 === 0) {
          c.heal();
          if (rnd(2) === 0) c.isolate(1 + rnd(5));
        }
        if (t % 60 === 45) c.restart(1 + rnd(5));
        for (const l of c.leaders()) {
          try {
            c.handle(l, c.node(l).propose(enc(`s${seed}t${t}`)));
          } catch {
            // refused: fine
          }
        }
        c.tickAll(1);
        check();
      }
      c.filter = undefined;
      expect(violations).toBe(0);
      leaderships += seen.size;
    }
    expect(leaderships).toBeGreaterThanOrEqual(4);
  });
});

// ---- B27 -----------------------------------------------------------------------------------

describe("proposals on followers", () => {
  it("B27 a proposal on a follower is forwarded to the leader and committed [ProposalByProxy]", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.delivered = [];
    c.propose(2, "via-2");
    const props = c.delivered.filter((m) => m.type === MessageType.Prop);
    expect(props).toHaveLength(1);
    expect(props[0]).toMatchObject({ from: 2, to: 1 });
    expect(props[0]!.entries.map((e) => dec(e.data))).toEqual(["via-2"]);
    c.tickAll(2);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["via-2"]);
    // The follower's own log got it only from the leader, at the leader's term.
    const e = logOf(c.get(2).storage).at(-1)!;
    expect(e).toEqual([2, c.node(1).status().term, "via-2"]);
  });

  it("B27 with forwarding disabled a follower drops a proposal with an error [DisableProposalForwarding]", () => {
    const c = new Cluster([1, 2, 3], { disableProposalForwarding: true });
    c.campaign(1);
    c.drain();
    expect(errorCode(() => c.node(2).propose(enc("x")))).toBe("PROPOSAL_DROPPED");
    expect(c.drain()).toEqual([]);
    // A proposal forwarded by a peer is dropped silently.
    c.step(2, msg(MessageType.Prop, { from: 3, to: 2, entries: [makeEntry(0, 0, enc("y"))] }));
    expect(c.drain()).toEqual([]);
    c.tickAll(2);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual([]);
    // The leader itself still accepts proposals.
    c.propose(1, "z");
    c.tickAll(2);
    expect(c.appliedData(2)).toEqual(["z"]);
  });

  it("B27 with no leader a proposal is dropped with an error (follower, pre-candidate, candidate)", () => {
    const f = new Solo(1, [1, 2, 3]);
    expect(errorCode(() => f.node.propose(enc("x")))).toBe("NO_LEADER");
    expect(f.take()).toEqual([]);

    const p = new Solo(1, [1, 2, 3], { preVote: true });
    p.handle(p.node.campaign());
    expect(p.status().role).toBe(Role.PreCandidate);
    p.take();
    expect(errorCode(() => p.node.propose(enc("x")))).toBe("NO_LEADER");
    expect(p.take()).toEqual([]);

    const k = new Solo(1, [1, 2, 3], { preVote: false });
    k.handle(k.node.campaign());
    expect(k.status().role).toBe(Role.Candidate);
    k.take();
    expect(errorCode(() => k.node.propose(enc("x")))).toBe("NO_LEADER");
    expect(k.take()).toEqual([]);
    expect(k.status().lastIndex).toBe(0);

    // A follower whose leader stepped down (lost quorum) also refuses.
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.isolate(1);
    for (let i = 0; i < 30 && c.node(1).status().role === Role.Leader; i++) c.tick(1);
    expect(c.node(1).status()).toMatchObject({ role: Role.Follower, leader: NONE });
    expect(errorCode(() => c.node(1).propose(enc("x")))).toBe("NO_LEADER");
  });
});
