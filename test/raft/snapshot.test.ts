// Snapshots and compaction (B44–B50): what compaction keeps, when the leader
// sends a snapshot and how (in chunks), what the follower does with it, and how
// replication resumes afterwards.

import { describe, expect, it } from "vitest";
import {
  ConfChangeType,
  type ConfState,
  isRaftError,
  MemoryStorage,
  type Message,
  MessageType,
  ProgressState,
  type Snapshot,
} from "../../src/raft/index.ts";
import { Chaos } from "./crash-chaos.ts";
import { Cluster, dec, enc } from "./harness.ts";
import { heartbeats, progress, recordAndDrop } from "./observe.ts";
import { msg, Solo, storageWithLog } from "./stepwise.ts";

/** The application on `id` snapshots its state at its applied index and compacts the log there. */
function snapshotAndCompact(c: Cluster, id: number, data?: Uint8Array): Snapshot {
  const st = c.node(id).status();
  const state = data ?? enc(JSON.stringify(c.appliedData(id)));
  const snap = c.get(id).storage.createSnapshot(st.applied, st.config, state);
  c.get(id).storage.compact(st.applied);
  return snap;
}

const snapsTo = (seen: Message[], to: number) =>
  seen.filter((m) => m.type === MessageType.Snap && m.to === to);

function throwsCode(f: () => unknown, code: "COMPACTED"): boolean {
  try {
    f();
  } catch (e) {
    return isRaftError(e, code);
  }
  return false;
}

/** A leader (1) whose log is compacted past what follower 3 has; 3 was isolated since the election. */
function laggingFollower(overrides = {}, data?: Uint8Array): { c: Cluster; snap: Snapshot } {
  const c = new Cluster([1, 2, 3], overrides);
  c.campaign(1);
  c.isolate(3);
  for (const d of ["a", "b", "c", "d", "e"]) c.propose(1, d);
  const snap = snapshotAndCompact(c, 1, data);
  expect(snap.metadata.index).toBe(6);
  expect(c.node(1).status().firstIndex).toBe(7);
  c.heal();
  return { c, snap };
}

describe("B44 compaction keeps the term of the compaction point", () => {
  it("B44 after compact(i), term(i) answers, term(i-1) and entries before firstIndex are COMPACTED (storage_test)", () => {
    const s = storageWithLog([1], [1, 1, 2, 2, 3]);
    s.compact(3);
    expect(s.firstIndex()).toBe(4);
    expect(s.term(3)).toBe(2);
    expect(throwsCode(() => s.term(2), "COMPACTED")).toBe(true);
    expect(throwsCode(() => s.entries(3, 6, 1 << 20), "COMPACTED")).toBe(true);
    expect(s.entries(4, 6, 1 << 20).map((e) => e.index)).toEqual([4, 5]);
  });

  it("B44 a follower whose next entry is the first kept one is caught up with appends matching at the compaction point, not a snapshot", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    c.isolate(3);
    const i = progress(c, 1, 3).match;
    expect(i).toBe(2);
    for (const d of ["b", "c", "d"]) c.propose(1, d);
    c.get(1).storage.createSnapshot(i, c.node(1).status().config, enc("state"));
    c.get(1).storage.compact(i);
    expect(c.node(1).status().firstIndex).toBe(i + 1);
    c.heal();
    const seen = recordAndDrop(c);
    heartbeats(c, 1, 3);
    expect(snapsTo(seen, 3)).toEqual([]);
    const app = seen.find((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0);
    expect(app).toMatchObject({ index: i, logTerm: 1 });
    expect(c.appliedData(3)).toEqual(["a", "b", "c", "d"]);
  });
});

describe("B45 a follower behind the compaction point gets a snapshot; appends to it pause", () => {
  it("B45 the leader sends a snapshot to a follower whose Next is compacted and sends it no appends while it is pending (ProvideSnap, PendingSnapshotPauseReplication)", () => {
    const { c, snap } = laggingFollower();
    // Snapshot messages are lost for now.
    const seen = recordAndDrop(c, (m) => m.type === MessageType.Snap);
    heartbeats(c, 1, 1);
    expect(snapsTo(seen, 3).length).toBeGreaterThan(0);
    expect(snapsTo(seen, 3)[0]!.snapshot!.metadata.index).toBe(snap.metadata.index);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Snapshot);

    const mark = seen.length;
    c.propose(1, "f");
    c.propose(1, "g");
    expect(seen.slice(mark).filter((m) => m.type === MessageType.App && m.to === 3)).toEqual([]);
    expect(c.appliedData(2)).toEqual(["a", "b", "c", "d", "e", "f", "g"]);

    c.filter = undefined;
    heartbeats(c, 1, 3);
    expect(c.get(3).storage.snapshot().metadata.index).toBe(snap.metadata.index);
    expect(dec(c.get(3).storage.snapshot().data)).toBe(dec(snap.data));
    expect(c.appliedData(3)).toEqual(["f", "g"]); // the rest came with the snapshot
    expect(progress(c, 1, 3).state).toBe(ProgressState.Replicate);
  });
});

describe("B46 leaving the snapshot state", () => {
  it("B46 an installed snapshot at the leader's last index moves the follower straight to replicate (snapshot_succeed_via_app_resp.txt)", () => {
    // Nodes 1 and 2 run; 3 is in the configuration but has no state at all.
    const c = new Cluster([1, 2], {}, [1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    const snap = snapshotAndCompact(c, 1);
    expect(snap.metadata.index).toBe(c.node(1).status().lastIndex);
    c.add(3, []);
    const seen = recordAndDrop(c);
    heartbeats(c, 1, 1);
    expect(snapsTo(seen, 3).length).toBe(1);
    expect(progress(c, 1, 3)).toMatchObject({
      state: ProgressState.Replicate,
      match: snap.metadata.index,
      next: snap.metadata.index + 1,
    });
    expect(c.node(3).status().commit).toBe(snap.metadata.index);
  });

  it("B46 an append acknowledgement at or past the pending snapshot index ends the snapshot state", () => {
    const { c, snap } = laggingFollower();
    recordAndDrop(c, (m) => m.type === MessageType.Snap);
    heartbeats(c, 1, 1);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Snapshot);
    const term = c.node(1).status().term;
    c.step(1, msg({ type: MessageType.AppResp, from: 3, to: 1, term, index: snap.metadata.index }));
    expect(progress(c, 1, 3)).toMatchObject({
      state: ProgressState.Replicate,
      match: snap.metadata.index,
      next: snap.metadata.index + 1,
    });
  });

  it("B46 a failed install (the follower's reject) sends the follower back to probe from Match+1 (raft_snap_test SnapshotFailure)", () => {
    const { c, snap } = laggingFollower();
    recordAndDrop(c, (m) => m.type === MessageType.Snap);
    heartbeats(c, 1, 1);
    const before = progress(c, 1, 3);
    expect(before.state).toBe(ProgressState.Snapshot);
    const term = c.node(1).status().term;
    // types.ts: "a failed install is an AppResp reject".
    c.step(
      1,
      msg({ type: MessageType.AppResp, from: 3, to: 1, term, index: snap.metadata.index, reject: true }),
    );
    expect(progress(c, 1, 3)).toMatchObject({ state: ProgressState.Probe, next: before.match + 1 });
  });
  it("B46 a snapshot installed after the leader compacted past it is followed by a newer snapshot, not a stall", () => {
    const { c, snap } = laggingFollower();
    const seen = recordAndDrop(c, (m) => m.type === MessageType.Snap); // the first transfer is delayed
    heartbeats(c, 1, 1);
    expect(progress(c, 1, 3)).toMatchObject({ state: ProgressState.Snapshot });
    // Meanwhile the leader moves on and compacts again.
    c.propose(1, "f");
    c.propose(1, "g");
    const newer = snapshotAndCompact(c, 1);
    expect(newer.metadata.index).toBeGreaterThan(snap.metadata.index);
    // The old snapshot arrives and is installed; 3 must still reach the leader's log.
    c.filter = undefined;
    heartbeats(c, 1, 10);
    expect(snapsTo(seen, 3).length).toBeGreaterThan(0);
    expect(c.get(3).storage.snapshot().metadata.index).toBe(newer.metadata.index);
    c.propose(1, "h");
    expect(c.appliedData(3)).toEqual(["h"]);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Replicate);
  });

  it("B46 a snapshot taken before the follower joined does not wedge it: it ends up replicating from the leader's log", () => {
    const c = new Cluster([1, 2]);
    c.campaign(1);
    c.propose(1, "a");
    // The application's snapshot predates node 3, which joins as a learner afterwards.
    const old = snapshotAndCompact(c, 1);
    expect(old.metadata.conf.learners).toEqual([]);
    c.add(3, []);
    c.handle(1, c.node(1).proposeConfChange({ changes: [{ type: ConfChangeType.AddLearner, nodeId: 3 }] }));
    c.deliver();
    heartbeats(c, 1, 3);
    // Later the application snapshots again, with 3 in the membership.
    c.propose(1, "b");
    const fresh = snapshotAndCompact(c, 1);
    expect(fresh.metadata.conf.learners).toEqual([3]);
    heartbeats(c, 1, 10);
    c.propose(1, "c");
    expect(c.appliedData(3).at(-1)).toBe("c");
    expect(c.node(3).status().config.learners).toEqual([3]);
    expect(progress(c, 1, 3)).toMatchObject({
      state: ProgressState.Replicate,
      match: c.node(1).status().lastIndex,
    });
  });
});

describe("B47 a follower ignores a snapshot it does not need", () => {
  /** Node 2 with entries 1..5 of term 1, 3 of them committed; node 1 leads term 2. */
  const follower = () =>
    new Solo(storageWithLog([1, 2, 3], [1, 1, 1, 1, 1], { term: 1, vote: 0, commit: 3 }), { id: 2 });
  const conf: ConfState = {
    voters: [1, 2, 3],
    learners: [],
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  };
  const snapMsg = (index: number, term: number) =>
    msg({
      type: MessageType.Snap,
      from: 1,
      to: 2,
      term: 2,
      snapshot: { metadata: { index, term, conf }, offset: 0, totalBytes: 1, data: enc("s"), done: true },
    });

  it("B47 a snapshot older than the follower's commit is ignored, and the leader is told the commit (RestoreIgnoreSnapshot)", () => {
    const f = follower();
    f.step(snapMsg(2, 1));
    expect(f.readies.some((rd) => rd.snapshot)).toBe(false);
    expect(f.storage.firstIndex()).toBe(1);
    expect(f.node.status()).toMatchObject({ commit: 3, lastIndex: 5 });
    expect(f.take().find((m) => m.type === MessageType.AppResp)).toMatchObject({ reject: false, index: 3 });
  });

  it("B47 a snapshot of entries the follower already has only fast-forwards its commit", () => {
    const f = follower();
    f.step(snapMsg(5, 1));
    expect(f.readies.some((rd) => rd.snapshot)).toBe(false);
    expect(f.node.status()).toMatchObject({ commit: 5, lastIndex: 5, firstIndex: 1 });
    expect(f.applied.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    expect(f.take().find((m) => m.type === MessageType.AppResp)).toMatchObject({ reject: false, index: 5 });
  });

  it("B47 a newer snapshot is installed", () => {
    const f = follower();
    f.step(snapMsg(7, 2));
    expect(f.readies.some((rd) => rd.snapshot?.metadata.index === 7)).toBe(true);
    expect(f.node.status()).toMatchObject({ commit: 7, lastIndex: 7, firstIndex: 8 });
    expect(f.storage.snapshot().metadata.index).toBe(7);
  });
});

describe("B47 snapshots under faults", () => {
  it("B47 in seeded runs with compaction, held writes and crashes, installing snapshots never forks or rewinds applied state", () => {
    let snapshots = 0;
    for (let seed = 401; seed <= 412; seed++) {
      const ids = seed % 2 === 0 ? [1, 2, 3] : [1, 2, 3, 4, 5];
      const ch = new Chaos({
        ids,
        seed,
        steps: 800,
        hold: true,
        crash: seed % 3 === 0,
        snapshots: true,
      }).run();
      expect(ch.violations).toEqual([]);
      snapshots += ch.stats.snapshots;
    }
    expect(snapshots).toBeGreaterThan(20);
  });
});

describe("B48 restoring a snapshot restores the membership", () => {
  it("B48 voters, learners and a joint outgoing config come back from the snapshot, and survive a restart (Restore)", () => {
    const conf: ConfState = {
      voters: [1, 2, 4],
      learners: [5],
      votersOutgoing: [1, 2, 3],
      learnersNext: [],
      autoLeave: true,
    };
    const storage = new MemoryStorage([1, 2, 3]);
    const f = new Solo(storage, { id: 2, peers: [1, 2, 3] });
    f.step({
      type: MessageType.Snap,
      from: 1,
      to: 2,
      term: 3,
      snapshot: {
        metadata: { index: 10, term: 3, conf },
        offset: 0,
        totalBytes: 2,
        data: enc("sm"),
        done: true,
      },
    });
    expect(f.node.status().config).toEqual(conf);
    expect(f.readies.find((rd) => rd.snapshot)?.snapshot?.metadata.conf).toEqual(conf);
    expect(storage.initialState().confState).toEqual(conf);
    // Restarted from its storage, it is in the same joint configuration.
    const again = new Solo(storage, { id: 2 });
    expect(again.node.status().config).toEqual(conf);
    expect(again.node.status()).toMatchObject({ commit: 10, firstIndex: 11 });
  });

  it("B48 a blank node learns its whole membership from the snapshot (learner included)", () => {
    const c = new Cluster([1, 2], {}, [1, 2]);
    c.campaign(1);
    c.add(3, []); // blank: no log, no configuration
    c.filter = (m) => m.to !== 3; // it hears nothing until the log is compacted
    c.handle(1, c.node(1).proposeConfChange({ changes: [{ type: ConfChangeType.AddLearner, nodeId: 3 }] }));
    c.deliver();
    c.propose(1, "a");
    const config = c.node(1).status().config;
    expect(config.learners).toEqual([3]);
    const snap = snapshotAndCompact(c, 1);
    expect(snap.metadata.conf).toEqual(config);
    c.filter = undefined;
    heartbeats(c, 1, 3);
    expect(c.get(3).storage.snapshot().metadata.index).toBe(snap.metadata.index);
    expect(c.node(3).status().config).toEqual(config);
    expect(c.get(3).storage.initialState().confState).toEqual(config);
  });
});

describe("B49 snapshots go in bounded chunks; appends resume after", () => {
  const state = enc("0123456789".repeat(10)); // 100 bytes

  it("B49 every chunk carries at most maxSnapshotChunkBytes, in order, and the follower resumes appends after installing (openraft#1009)", () => {
    const { c } = laggingFollower({ maxSnapshotChunkBytes: 16 }, state);
    const seen = recordAndDrop(c);
    heartbeats(c, 1, 3);
    const chunks = snapsTo(seen, 3).map((m) => m.snapshot!);
    expect(chunks.length).toBeGreaterThanOrEqual(7); // 100 / 16
    for (const ch of chunks) {
      expect(ch.data.length).toBeLessThanOrEqual(16);
      expect(ch.totalBytes).toBe(100);
    }
    // The distinct chunks, by offset, tile the snapshot.
    const byOffset = new Map(chunks.map((ch) => [ch.offset, ch]));
    let off = 0;
    const parts: Uint8Array[] = [];
    while (off < 100) {
      const ch = byOffset.get(off);
      expect(ch).toBeDefined();
      parts.push(ch!.data);
      off += ch!.data.length;
      expect(ch!.done).toBe(off === 100);
    }
    expect(dec(Buffer.concat(parts))).toBe(dec(state));
    expect(dec(c.get(3).storage.snapshot().data)).toBe(dec(state));
    // Normal appends follow.
    c.propose(1, "f");
    expect(c.appliedData(3)).toEqual(["f"]);
    expect(seen.some((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0)).toBe(true);
  });

  it("B49 a transfer interrupted by the follower's restart still completes", () => {
    const { c } = laggingFollower({ maxSnapshotChunkBytes: 16 }, state);
    let chunks = 0;
    c.filter = (m) => {
      if (m.type === MessageType.Snap && m.to === 3) chunks++;
      return true;
    };
    // Let three chunks through, then crash 3 mid-transfer.
    c.tick(1);
    while (c.queue.length > 0 && chunks < 3) {
      const m = c.queue.shift()!;
      if (c.filter(m)) c.step(m.to, m);
    }
    expect(c.get(3).storage.snapshot().metadata.index).toBe(0);
    c.restart(3);
    c.filter = undefined;
    heartbeats(c, 1, 10);
    expect(dec(c.get(3).storage.snapshot().data)).toBe(dec(state));
    c.propose(1, "f");
    expect(c.appliedData(3)).toEqual(["f"]);
  });

  it("B49 a chunk out of order is not accepted; the follower asks for the bytes it needs", () => {
    const f = new Solo(new MemoryStorage([1, 2, 3]), { id: 2 });
    const conf: ConfState = {
      voters: [1, 2, 3],
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    const chunk = (offset: number, data: string, done: boolean) =>
      msg({
        type: MessageType.Snap,
        from: 1,
        to: 2,
        term: 1,
        snapshot: { metadata: { index: 5, term: 1, conf }, offset, totalBytes: 6, data: enc(data), done },
      });
    f.step(chunk(0, "ab", false));
    f.step(chunk(4, "ef", true)); // 2..4 missing
    expect(f.storage.snapshot().metadata.index).toBe(0);
    const resps = f.take().filter((m) => m.type === MessageType.SnapResp);
    expect(resps.at(-1)).toMatchObject({ reject: true, rejectHint: 2 });
    f.step(chunk(2, "cd", false));
    f.step(chunk(4, "ef", true));
    expect(dec(f.storage.snapshot().data)).toBe("abcdef");
    expect(f.take().at(-1)).toMatchObject({ type: MessageType.AppResp, index: 5, reject: false });
  });
});

describe("B50 no snapshot to an inactive follower", () => {
  it("B50 the leader sends no snapshot to a follower it has not heard from within the election timeout (IgnoreProvidingSnap)", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    c.propose(1, "a");
    // 3 goes silent: everything to and from it is lost.
    const seen = recordAndDrop(c, (m) => m.to === 3 || m.from === 3);
    heartbeats(c, 1, 11); // an election timeout passes (CheckQuorum resets activity)
    expect(progress(c, 1, 3).recentActive).toBe(false);
    c.propose(1, "b");
    snapshotAndCompact(c, 1);
    c.handle(1, c.node(1).reportUnreachable(3)); // probe from its match, which is compacted
    c.propose(1, "c");
    expect(snapsTo(seen, 3)).toEqual([]);
    expect(progress(c, 1, 3).state).toBe(ProgressState.Probe);

    // 3 answers a heartbeat: now it is active and gets the snapshot.
    c.filter = undefined;
    const seen2 = recordAndDrop(c);
    heartbeats(c, 1, 3);
    expect(snapsTo(seen2, 3).length).toBeGreaterThan(0);
    expect(c.appliedData(3)).toEqual(["c"]);
  });

  it("B50 entries are still appended normally to an inactive follower that needs no snapshot", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    const seen = recordAndDrop(c, (m) => m.from === 3);
    heartbeats(c, 1, 11);
    expect(progress(c, 1, 3).recentActive).toBe(false);
    c.propose(1, "a");
    expect(seen.some((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0)).toBe(true);
    expect(snapsTo(seen, 3)).toEqual([]);
  });
});
