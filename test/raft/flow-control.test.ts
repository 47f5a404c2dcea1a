// Flow control and backpressure (B38–B43): what the leader keeps in flight to each
// follower, how big its messages and its uncommitted tail may grow, how much a
// Ready hands out to apply, and how a follower recovers from probing.

import { afterEach, describe, expect, it } from "vitest";
import {
  type Entry,
  entryWireSize,
  isRaftError,
  type Message,
  MessageType,
  ProgressState,
  type RaftNode,
  Role,
} from "../../src/raft/index.ts";
import { Cluster, enc } from "./harness.ts";
import { heartbeats, progress, recordAndDrop } from "./observe.ts";
import { tapRaftNodes } from "./ready-audit.ts";

const bytes = (n: number, tag = "x") => tag.repeat(n);
const wire = (es: Entry[]) => es.reduce((s, e) => s + entryWireSize(e), 0);
const isApp = (m: Message, to: number) => m.type === MessageType.App && m.to === to;

let untap: (() => void) | undefined;
afterEach(() => {
  untap?.();
  untap = undefined;
});

describe("B38 in-flight appends are bounded per follower", () => {
  it("B38 in probe state at most one append is in flight; a heartbeat response allows the next (MsgAppFlowControl)", () => {
    const c = new Cluster([1, 2, 3]);
    // Node 3's answers to appends are lost: it stays in probe.
    const seen = recordAndDrop(c, (m) => m.from === 3 && m.type === MessageType.AppResp);
    c.campaign(1);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Probe);
    const sentBefore = seen.filter((m) => isApp(m, 3)).length;
    expect(sentBefore).toBe(1);
    for (let i = 0; i < 5; i++) c.propose(1, `p${i}`);
    expect(seen.filter((m) => isApp(m, 3)).length).toBe(sentBefore); // paused
    c.tick(1); // heartbeat; 3 answers it
    c.deliver();
    expect(seen.filter((m) => isApp(m, 3)).length).toBe(sentBefore + 1);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Probe);
  });

  it("B38 in replicate state at most maxInflightMsgs appends are in flight, and an ack frees the window (MsgAppFlowControlFull/MoveForward)", () => {
    const c = new Cluster([1, 2, 3], { maxInflightMsgs: 3 });
    c.campaign(1);
    expect(progress(c, 1, 2).state).toBe(ProgressState.Replicate);
    const acks: Message[] = [];
    let holdAcks = true;
    const seen = recordAndDrop(c, (m) => {
      if (holdAcks && m.from === 2 && m.type === MessageType.AppResp) {
        acks.push(m);
        return true;
      }
      return false;
    });
    for (let i = 0; i < 6; i++) c.propose(1, `p${i}`);
    const apps = () => seen.filter((m) => isApp(m, 2) && m.entries.length > 0);
    expect(apps().length).toBe(3);
    expect(progress(c, 1, 2).inflightMsgs).toBe(3);

    c.step(1, acks.shift()!); // frees one slot: the three waiting entries go in one append
    c.deliver();
    expect(apps().map((m) => m.entries.length)).toEqual([1, 1, 1, 3]);
    expect(progress(c, 1, 2).inflightMsgs).toBe(3);
    holdAcks = false;
    for (const a of acks.splice(0)) c.step(1, a);
    c.deliver();
    expect(progress(c, 1, 2)).toMatchObject({ inflightMsgs: 0, match: c.node(1).status().lastIndex });
    expect(c.appliedData(2).length).toBe(6);
  });

  it("B38 no append is sent while maxInflightBytes are in flight; acks free the bytes (MsgAppFlowControl bytes)", () => {
    const c = new Cluster([1, 2, 3], { maxInflightBytes: 250 });
    c.campaign(1);
    const acks: Message[] = [];
    const seen = recordAndDrop(c, (m) => {
      if (m.from === 2 && m.type === MessageType.AppResp) acks.push(m);
      return m.from === 2 && m.type === MessageType.AppResp;
    });
    for (let i = 0; i < 6; i++) c.propose(1, bytes(100, String(i)));
    const apps = seen.filter((m) => isApp(m, 2) && m.entries.length > 0);
    // 100 and 200 bytes are under the limit, so a third goes; then 300 >= 250 pauses.
    expect(apps.map((m) => m.entries.length)).toEqual([1, 1, 1]);
    expect(progress(c, 1, 2)).toMatchObject({ inflightBytes: 300, inflightMsgs: 3 });
    c.step(1, acks[0]!); // frees 100 bytes: 200 < 250, one more append (with all three waiting)
    c.deliver();
    const after = seen.filter((m) => isApp(m, 2) && m.entries.length > 0);
    expect(after.length).toBe(4);
    expect(after[3]!.entries.length).toBe(3);
    expect(progress(c, 1, 2).inflightBytes).toBe(500);
  });

  it("B38 a follower whose in-flight appends were all lost is not left behind: a heartbeat response re-probes it (replicate_pause.txt)", () => {
    const c = new Cluster([1, 2, 3], { maxInflightMsgs: 3 });
    c.campaign(1);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Replicate);
    // Every append to 3 is lost while the window fills up.
    c.filter = (m) => !isApp(m, 3);
    for (let i = 0; i < 6; i++) c.propose(1, `p${i}`);
    expect(progress(c, 1, 3)).toMatchObject({ state: ProgressState.Replicate, inflightMsgs: 3 });
    expect(c.appliedData(2).length).toBe(6);
    // The network is fine again; only heartbeats follow.
    c.filter = undefined;
    heartbeats(c, 1, 5);
    expect(c.appliedData(3)).toEqual(c.appliedData(1));
    expect(progress(c, 1, 3).match).toBe(c.node(1).status().lastIndex);
  });
});

describe("B39 appends are bounded by maxSizePerMsg", () => {
  it("B39 each append carries at most maxSizePerMsg bytes of entries, and a lagging follower catches up in pages (AppendPagination)", () => {
    const c = new Cluster([1, 2, 3], { maxSizePerMsg: 200 });
    c.campaign(1);
    c.isolate(3);
    for (let i = 0; i < 10; i++) c.propose(1, bytes(50, String(i)));
    c.heal();
    const seen = recordAndDrop(c);
    heartbeats(c, 1, 3);
    const pages = seen.filter((m) => isApp(m, 3) && m.entries.length > 0);
    expect(pages.length).toBeGreaterThanOrEqual(5); // 10 entries of 74 wire bytes: 2 a page
    for (const m of pages) {
      expect(m.entries.length === 1 || wire(m.entries) <= 200).toBe(true);
      expect(m.entries.length).toBeLessThanOrEqual(2);
    }
    expect(c.appliedData(3)).toEqual(c.appliedData(1));
    expect(c.appliedData(3).length).toBe(10);
  });

  it("B39 an entry larger than maxSizePerMsg is still sent, alone", () => {
    const c = new Cluster([1, 2, 3], { maxSizePerMsg: 200 });
    c.campaign(1);
    c.isolate(3);
    c.propose(1, "small");
    c.propose(1, bytes(500, "B"));
    c.propose(1, "tiny");
    c.heal();
    const seen = recordAndDrop(c);
    heartbeats(c, 1, 3);
    const pages = seen.filter((m) => isApp(m, 3) && m.entries.length > 0);
    const big = pages.find((m) => m.entries.some((e) => e.data.length === 500));
    expect(big?.entries.length).toBe(1);
    expect(c.appliedData(3)).toEqual(["small", bytes(500, "B"), "tiny"]);
  });
});

describe("B40 the uncommitted tail is bounded by maxUncommittedBytes", () => {
  it("B40 proposals beyond the limit are refused with UNCOMMITTED_LIMIT; the accounting returns to 0 on commit (UncommittedEntryLimit)", () => {
    const c = new Cluster([1, 2, 3], { maxUncommittedBytes: 1000 });
    c.campaign(1);
    c.isolate(1);
    for (let i = 0; i < 10; i++) c.propose(1, bytes(100, String(i)));
    expect(c.node(1).status().uncommittedBytes).toBe(1000);
    let err: unknown;
    try {
      c.node(1).propose(enc(bytes(100)));
    } catch (e) {
      err = e;
    }
    expect(isRaftError(err, "UNCOMMITTED_LIMIT")).toBe(true);
    expect(() => c.node(1).propose(enc("y"))).toThrow(/uncommitted/);
    // An empty entry always fits.
    c.handle(1, c.node(1).propose(new Uint8Array()));
    expect(c.node(1).status().lastIndex).toBe(12);

    c.heal();
    c.tick(1);
    c.deliver();
    expect(c.node(1).status().commit).toBe(12);
    expect(c.node(1).status().uncommittedBytes).toBe(0);
    c.propose(1, bytes(100, "n"));
    expect(c.appliedData(2).length).toBe(11);
  });

  it("B40 one entry larger than the limit is accepted when nothing is uncommitted, and nothing more until it commits", () => {
    const c = new Cluster([1, 2, 3], { maxUncommittedBytes: 100 });
    c.campaign(1);
    c.isolate(1);
    c.handle(1, c.node(1).propose(enc(bytes(500))));
    expect(() => c.node(1).propose(enc("a"))).toThrow(/uncommitted/);
    c.heal();
    c.tick(1);
    c.deliver();
    expect(c.node(1).status().uncommittedBytes).toBe(0);
    c.propose(1, "a");
    expect(c.appliedData(3)).toEqual([bytes(500), "a"]);
  });

  it("B40 a partitioned leader's log stops growing at the limit, and a new leader's empty entry is never refused (BoundedLogGrowthWithPartition)", () => {
    const c = new Cluster([1, 2, 3], { maxUncommittedBytes: 1000, checkQuorum: false });
    c.campaign(1);
    c.isolate(1);
    const start = c.node(1).status().lastIndex;
    let refused = 0;
    for (let i = 0; i < 100; i++) {
      try {
        c.propose(1, bytes(64));
      } catch (e) {
        if (!isRaftError(e, "UNCOMMITTED_LIMIT")) throw e;
        refused++;
      }
    }
    const grown = c.node(1).status().lastIndex - start;
    expect(grown).toBe(15); // 15 * 64 = 960 <= 1000 < 16 * 64
    expect(refused).toBe(85);
    // The other side elects a leader whose no-op is appended regardless.
    c.campaign(2);
    expect(c.node(2).status().role).toBe(Role.Leader);
    expect(c.node(2).status().uncommittedBytes).toBe(0);
    c.propose(2, "after");
    expect(c.appliedData(3)).toEqual(["after"]);
  });
});

describe("B41 committed entries per Ready are bounded", () => {
  /** Collects the committed entries of every Ready of every node, per node id. */
  function tapCommitted(): Map<number, Entry[][]> {
    const pages = new Map<number, Entry[][]>();
    untap = tapRaftNodes({
      onReady: (node: RaftNode, rd) => {
        if (rd.committedEntries.length === 0) return;
        const list = pages.get(node.id) ?? [];
        list.push(rd.committedEntries);
        pages.set(node.id, list);
      },
    });
    return pages;
  }

  it("B41 CommittedEntries per Ready stay within maxCommittedBytesPerReady, and apply continues page by page (CommitPagination)", () => {
    const pages = tapCommitted();
    const c = new Cluster([1, 2, 3], { maxCommittedBytesPerReady: 300 });
    c.campaign(1);
    c.handle(1, c.node(1).proposeBatch(Array.from({ length: 10 }, (_, i) => enc(bytes(100, String(i))))));
    c.deliver();
    c.tick(1);
    c.deliver();
    for (const id of [1, 2, 3]) {
      const ps = pages.get(id)!;
      expect(ps.length).toBeGreaterThanOrEqual(5);
      for (const p of ps) expect(p.length === 1 || wire(p) <= 300).toBe(true);
      const idx = ps.flat().map((e) => e.index);
      expect(idx).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
      expect(c.appliedData(id).length).toBe(10);
    }
  });

  it("B41 with apply in flight, later Readies hand out the following pages, never the same entries twice", () => {
    const c = new Cluster([1, 2, 3], { maxCommittedBytesPerReady: 300 });
    c.campaign(1);
    const m2 = c.get(2);
    m2.hold = true;
    // 1 and 3 commit the batch; 2 learns the commit while its write of the entries is still in flight.
    c.handle(1, c.node(1).proposeBatch(Array.from({ length: 10 }, (_, i) => enc(bytes(100, String(i))))));
    c.deliver();
    expect(c.node(2).status().commit).toBe(11);
    for (let i = 0; i < 10; i++) c.handle(2, c.node(2).ready());
    const handed = m2.held.flatMap((rd) => rd.committedEntries.map((e) => e.index));
    expect(new Set(handed).size).toBe(handed.length);
    expect(handed).toEqual(Array.from({ length: handed.length }, (_, i) => handed[0]! + i));
    expect(handed.at(-1)).toBe(c.node(1).status().commit);
    for (const rd of m2.held) expect(rd.committedEntries.length).toBeLessThanOrEqual(2);
    c.release(2);
    expect(c.appliedData(2).length).toBe(10);
    expect(c.get(2).applied.map((e) => e.index)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
  });
});

describe("B42 ReportUnreachable and recovery from probing", () => {
  it("B42 an unreachable follower goes to probe; a heartbeat response from a caught-up prober restores replicate (heartbeat_resp_recovers_from_probing.txt)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    expect(progress(c, 1, 2).state).toBe(ProgressState.Replicate);
    c.handle(1, c.node(1).reportUnreachable(2));
    expect(progress(c, 1, 2)).toMatchObject({
      state: ProgressState.Probe,
      next: progress(c, 1, 2).match + 1,
    });
    expect(progress(c, 1, 3).state).toBe(ProgressState.Replicate);
    c.tick(1);
    c.deliver();
    expect(progress(c, 1, 2).state).toBe(ProgressState.Replicate);
    c.propose(1, "b");
    expect(c.appliedData(2)).toEqual(["a", "b"]);
  });

  it("B42 reporting a follower that is already probing unreachable changes nothing", () => {
    const c = new Cluster([1, 2, 3]);
    const seen = recordAndDrop(c, (m) => m.from === 3 && m.type === MessageType.AppResp);
    c.campaign(1);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Probe);
    const before = progress(c, 1, 3);
    c.handle(1, c.node(1).reportUnreachable(3));
    expect(progress(c, 1, 3)).toEqual(before);
    expect(seen.length).toBeGreaterThan(0);
  });
});

describe("B43 heartbeats carry commit capped at the follower's match", () => {
  it("B43 a heartbeat tells each follower min(commit, its match) (HandleHeartbeat)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    const match3 = progress(c, 1, 3).match;
    const seen = recordAndDrop(c, (m) => isApp(m, 3)); // 3 gets heartbeats but no entries
    c.propose(1, "a");
    c.propose(1, "b");
    const commit = c.node(1).status().commit;
    expect(commit).toBe(match3 + 2);
    c.tick(1);
    c.deliver();
    const hb = (to: number) => seen.find((m) => m.type === MessageType.Heartbeat && m.to === to)!;
    expect(hb(2).commit).toBe(commit);
    expect(hb(3).commit).toBe(match3);
    expect(c.node(3).status().commit).toBeLessThanOrEqual(match3);
  });

  it("B43 a follower with a stale, longer log is not told to commit entries the leader has not matched", () => {
    const c = new Cluster([1, 2, 3], { preVote: false, checkQuorum: false });
    c.campaign(1);
    c.isolate(1);
    c.propose(1, "lost1");
    c.propose(1, "lost2"); // only on 1
    c.heal();
    c.restart(1);
    // 1 only gets heartbeats from the next leader: it keeps its stale tail.
    const seen = recordAndDrop(c, (m) => isApp(m, 1));
    c.campaign(2); // term 2 with 3's vote
    expect(c.node(2).status().role).toBe(Role.Leader);
    c.propose(2, "x");
    c.tick(2);
    c.deliver();
    const hb = seen.find((m) => m.type === MessageType.Heartbeat && m.to === 1)!;
    expect(hb.commit).toBeLessThanOrEqual(progress(c, 2, 1).match);
    expect(c.appliedData(1)).toEqual([]);
    expect(c.node(1).status()).toMatchObject({ lastIndex: 3, commit: 1 });
    c.filter = undefined;
    c.tick(2);
    c.deliver();
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["x"]);
  });
});
