// The catch-up protocol (src/node/catchup.ts): a leader's CatchUp and a
// follower's, each with an in-memory state machine (fake-state-machine.ts) and
// a fake core, over an in-memory link that keeps per-direction FIFO order (as
// the TCP transport does) and lets a test corrupt, drop or delay frames.

import { afterEach, describe, expect, it } from "vitest";
import { CatchUp, type CatchUpDeps, type CatchUpOptions } from "../../src/node/catchup.ts";
import {
  type CatchUpFrame,
  CatchUpKind,
  decodeCatchUp,
  encodeCatchUp,
  isCatchUpFrame,
} from "../../src/node/catchup-codec.ts";
import { StreamPacer } from "../../src/node/catchup-sender.ts";
import { newRuntimeStats, type RuntimeStats } from "../../src/node/core.ts";
import { encodeForward, ForwardKind } from "../../src/node/forward.ts";
import { type AddressBook, decodeSnapshot } from "../../src/node/members.ts";
import { silentLogger } from "../../src/node/ports.ts";
import {
  type ConfState,
  type Message,
  MessageType,
  newMessage,
  type Ready,
  Role,
} from "../../src/raft/index.ts";
import { chunkOf, FakeStateMachine } from "./fake-state-machine.ts";

const OPTIONS: Partial<CatchUpOptions> = {
  chunkBytes: 256 * 1024,
  windowFrames: 4,
  progressTimeoutMs: 150,
  abortTimeoutMs: 1_500,
  cooldownMs: 300,
  retryDelayMs: 100,
  sweepMs: 10,
};
const LEADER = 1;
const FOLLOWER = 2;
const TERM = 5;
/** The leader's applied index: what the stream describes. */
const APPLIED = 1234;
/** The term of the entry at APPLIED. */
const APPLIED_TERM = 4;
const CONF: ConfState = {
  voters: [1, 2, 3],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};
const MEMBERS: AddressBook = new Map([
  [1, { raft: "h1:9091", http: "h1:8081" }],
  [2, { raft: "h2:9092", http: "h2:8082" }],
  [3, { raft: "h3:9093", http: "h3:8083" }],
]);

/** 16 chunks of 256 KiB: 4 MiB of state. */
function leaderChunks(n = 16): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => chunkOf(i + 1, 256 * 1024));
}

interface Sent {
  from: number;
  to: number;
  f: CatchUpFrame;
  at: number;
}

/** What a hook does with a frame: pass it (possibly changed), or drop it. */
type Hook = (from: number, to: number, payload: Uint8Array, f: CatchUpFrame) => Uint8Array | null;

class Net {
  readonly nodes = new Map<number, TestNode>();
  /** Frames as delivered (after hooks). */
  readonly delivered: Sent[] = [];
  /** Frames as sent (before hooks). */
  readonly sent: Sent[] = [];
  hook: Hook = (_f, _t, p) => p;
  /** Called as each frame is sent. */
  onSend: (s: Sent) => void = () => {};
  /** Delay of one direction, "from->to" -> ms (0: next turn). */
  readonly delays = new Map<string, number>();

  transport(from: number): CatchUpDeps["transport"] {
    return {
      sendApp: (to, payload) => {
        const copy = payload.slice();
        const sent = { from, to, f: decodeCatchUp(copy), at: performance.now() };
        this.sent.push(sent);
        this.onSend(sent);
        const delay = this.delays.get(`${from}->${to}`) ?? 0;
        const deliver = () => {
          const node = this.nodes.get(to);
          if (!node) return;
          const out = this.hook(from, to, copy, decodeCatchUp(copy));
          if (out === null) return;
          this.delivered.push({ from, to, f: decodeCatchUp(out), at: performance.now() });
          node.catchUp.onFrame(from, out);
        };
        if (delay > 0) setTimeout(deliver, delay);
        else setImmediate(deliver);
        return true;
      },
    };
  }

  sentOf(kind: CatchUpKind, from?: number): Sent[] {
    return this.sent.filter((s) => s.f.kind === kind && (from === undefined || s.from === from));
  }

  deliveredOf(kind: CatchUpKind, from?: number): Sent[] {
    return this.delivered.filter((s) => s.f.kind === kind && (from === undefined || s.from === from));
  }
}

interface TestNode {
  id: number;
  role: Role;
  leader: number;
  term: number;
  sm: FakeStateMachine;
  stats: RuntimeStats;
  stepped: Message[];
  catchUp: CatchUp;
  /** The runtime has not written the installed snapshot's commit point yet. */
  holdInstall?: boolean;
}

const nodes: TestNode[] = [];
afterEach(() => {
  for (const n of nodes.splice(0)) n.catchUp.stop();
});

function addNode(
  net: Net,
  id: number,
  role: Role,
  leader: number,
  sm: FakeStateMachine,
  options = OPTIONS,
): TestNode {
  const n = {
    id,
    role,
    leader,
    term: TERM,
    sm,
    stats: newRuntimeStats(),
    stepped: [],
  } as unknown as TestNode;
  const deps: CatchUpDeps = {
    core: {
      id,
      log: silentLogger,
      stats: n.stats,
      role: () => n.role,
      leaderId: () => n.leader,
      term: () => n.term,
      isStopped: () => false,
      atBoundary: (task) => setImmediate(task),
      // A core that installs any snapshot past what it has applied.
      step: (m: Message): Ready | null => {
        n.stepped.push(m);
        const snap = m.snapshot!;
        if (snap.metadata.index <= sm.applied) return null;
        sm.restore(decodeSnapshot(snap.data).state, snap.metadata.index);
        // The runtime writes the commit point in its next batch, then tells catch-up.
        if (!n.holdInstall) setImmediate(() => n.catchUp.installed(snap.metadata.index));
        return {
          entries: [],
          committedEntries: [],
          messages: [],
          immediateMessages: [],
          readStates: [],
          mustSync: true,
          snapshot: { metadata: snap.metadata, data: snap.data },
        };
      },
    },
    transport: net.transport(id),
    stateMachine: sm,
    storage: {
      term: (index) => (index === APPLIED ? APPLIED_TERM : 1),
      initialState: () => ({ hardState: { term: TERM, vote: 1, commit: APPLIED }, confState: CONF }),
    },
    members: () => MEMBERS,
  };
  n.catchUp = new CatchUp(deps, options);
  net.nodes.set(id, n);
  nodes.push(n);
  return n;
}

/** A leader (node 1) holding `chunks` at APPLIED and a follower (node 2) holding `held` of them. */
function pair(chunks = leaderChunks(), held = 0, options = OPTIONS) {
  const net = new Net();
  const leader = addNode(net, LEADER, Role.Leader, LEADER, new FakeStateMachine(chunks, APPLIED), options);
  const follower = addNode(
    net,
    FOLLOWER,
    Role.Follower,
    LEADER,
    new FakeStateMachine(chunks.slice(0, held), 10),
  );
  return { net, leader, follower, chunks };
}

/** The core's Snap message for `to` (the tiny local snapshot). */
function snapFor(to: number, term = TERM): Message {
  return newMessage(MessageType.Snap, {
    from: LEADER,
    to,
    term,
    snapshot: {
      metadata: { index: 1000, term: 3, conf: CONF },
      offset: 0,
      totalBytes: 0,
      data: new Uint8Array(),
      done: true,
    },
  });
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether two lists of chunks are byte for byte the same (expect's deep equality is slow on MBs). */
function sameChunks(a: Uint8Array[], b: Uint8Array[]): boolean {
  return a.length === b.length && a.every((c, i) => Buffer.from(c).equals(Buffer.from(b[i]!)));
}

function flipByte(payload: Uint8Array, at: number): Uint8Array {
  const out = payload.slice();
  out[at] = out[at]! ^ 0xff;
  return out;
}

function dataSeqs(sent: Sent[]): number[] {
  return sent.map((s) => (s.f.kind === CatchUpKind.Data ? s.f.seq : -1));
}

describe("catch-up frames", () => {
  it("are told apart from forwarding frames by their first byte and round-trip", () => {
    const frames: CatchUpFrame[] = [
      { kind: CatchUpKind.Offer, sessionId: 12345, term: 9 },
      { kind: CatchUpKind.Accept, sessionId: 1, have: new Uint8Array([1, 2, 3]) },
      { kind: CatchUpKind.Begin, sessionId: 1, index: 77, term: 3, conf: CONF, members: MEMBERS },
      { kind: CatchUpKind.Data, sessionId: 1, seq: 4, crc: 0xdeadbeef, chunk: new Uint8Array([9, 9]) },
      { kind: CatchUpKind.Ack, sessionId: 1, next: 5 },
      { kind: CatchUpKind.Nack, sessionId: 1, next: 2, needBegin: true },
      { kind: CatchUpKind.End, sessionId: 1, frames: 5, crcOfCrcs: 42, bytes: 1e9 },
      { kind: CatchUpKind.EndAck, sessionId: 1, installed: true },
      { kind: CatchUpKind.Abort, sessionId: 1, reason: "why" },
    ];
    for (const f of frames) {
      const bytes = encodeCatchUp(f);
      expect(isCatchUpFrame(bytes)).toBe(true);
      expect(decodeCatchUp(bytes)).toEqual(f);
    }
    const fwd = encodeForward({ kind: ForwardKind.Request, requestId: 1, request: new Uint8Array([16, 17]) });
    expect(isCatchUpFrame(fwd)).toBe(false);
  });
});

describe("snapshot streams", () => {
  it("delivers the frames in order and the follower steps the finished stream into its core", async () => {
    const { net, leader, follower, chunks } = pair(leaderChunks(), 2);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is installed", () => follower.stepped.length === 1);
    await until("the leader is done", () => leader.catchUp.sendingSessions === 0);

    // Only what the follower lacked (its have vector said 2 chunks), in order, each once.
    const seqs = dataSeqs(net.deliveredOf(CatchUpKind.Data));
    expect(seqs).toEqual(Array.from({ length: chunks.length - 2 }, (_, i) => i));
    expect(sameChunks(follower.sm.chunks, chunks)).toBe(true);
    expect(sameChunks(follower.sm.installers[0]!.written, chunks.slice(2))).toBe(true);

    // The synthesized Snap: the leader's index, the term of its entry, the conf, the book.
    const m = follower.stepped[0]!;
    expect(m).toMatchObject({ type: MessageType.Snap, from: LEADER, to: FOLLOWER, term: TERM });
    expect(m.snapshot!.metadata).toEqual({ index: APPLIED, term: APPLIED_TERM, conf: CONF });
    expect(m.snapshot).toMatchObject({ offset: 0, done: true, totalBytes: m.snapshot!.data.length });
    expect(decodeSnapshot(m.snapshot!.data).members).toEqual(MEMBERS);
    expect(follower.sm.applied).toBe(APPLIED);

    expect(leader.sm.sources).toHaveLength(1);
    expect(leader.sm.sources[0]!.closed).toBe(true);
    const bytes = chunks.slice(2).reduce((a, c) => a + c.length, 0);
    expect(leader.stats).toMatchObject({ snapshotsSent: 1, snapshotBytesSent: bytes });
    expect(follower.stats.snapshotBytesReceived).toBe(bytes);
    expect(net.deliveredOf(CatchUpKind.EndAck)).toHaveLength(1);
  });

  it("never installs a frame that fails its CRC: the follower NACKs it and the leader re-sends it", async () => {
    const { net, leader, follower, chunks } = pair();
    let corrupted = 0;
    net.hook = (from, _to, payload, f) => {
      if (from === LEADER && f.kind === CatchUpKind.Data && f.seq === 3 && corrupted === 0) {
        corrupted++;
        return flipByte(payload, payload.length - 100); // a byte of the chunk
      }
      return payload;
    };
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is installed", () => follower.stepped.length === 1);

    expect(corrupted).toBe(1);
    expect(net.deliveredOf(CatchUpKind.Nack, FOLLOWER).map((s) => s.f)).toContainEqual(
      expect.objectContaining({ next: 3, needBegin: false }),
    );
    expect(dataSeqs(net.sentOf(CatchUpKind.Data)).filter((s) => s === 3).length).toBeGreaterThanOrEqual(2);
    // What the installer got is exactly the source's chunks, in order: never the corrupted one.
    expect(sameChunks(follower.sm.installers[0]!.written, chunks)).toBe(true);
    expect(sameChunks(follower.sm.chunks, chunks)).toBe(true);
  });

  it("re-sends a dropped frame after the progress timeout when nothing asks for it", async () => {
    const { net, leader, follower, chunks } = pair();
    let droppedAt = 0;
    net.hook = (from, _to, payload, f) => {
      if (from === LEADER && f.kind === CatchUpKind.Data && f.seq === 2 && droppedAt === 0) {
        droppedAt = performance.now();
        return null;
      }
      if (from === FOLLOWER && f.kind === CatchUpKind.Nack) return null; // only the timer can recover
      return payload;
    };
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is installed", () => follower.stepped.length === 1);

    const resends = net
      .sentOf(CatchUpKind.Data)
      .filter((s) => s.f.kind === CatchUpKind.Data && s.f.seq === 2);
    expect(resends.length).toBeGreaterThanOrEqual(2);
    expect(resends[1]!.at - droppedAt).toBeGreaterThanOrEqual(OPTIONS.progressTimeoutMs! - 5);
    expect(sameChunks(follower.sm.installers[0]!.written, chunks)).toBe(true);
  });

  it("keeps at most 4 frames unacknowledged", async () => {
    const { net, leader, follower } = pair(leaderChunks(24));
    net.delays.set(`${FOLLOWER}->${LEADER}`, 15); // slow acknowledgements: the window fills
    let acked = 0;
    net.hook = (from, _to, payload, f) => {
      if (from === FOLLOWER && f.kind === CatchUpKind.Ack) acked = Math.max(acked, f.next);
      return payload;
    };
    // At every DATA frame the leader sends: frames sent minus frames acknowledged to it.
    let worst = 0;
    net.onSend = (s) => {
      if (s.from === LEADER && s.f.kind === CatchUpKind.Data) worst = Math.max(worst, s.f.seq + 1 - acked);
    };
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is installed", () => follower.stepped.length === 1, 10_000);
    expect(dataSeqs(net.sentOf(CatchUpKind.Data))).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(worst).toBe(4); // never more, and the window is used
  });

  it("holds its acknowledgements while its installer's writes are not yet on disk (a slow disk slows the sender)", async () => {
    const { net, leader, follower } = pair(leaderChunks(12));
    let writtenWhileHeld = -1;
    net.hook = (from, _to, payload, f) => {
      // From BEGIN on, the installer reports a backlog of writes not yet on disk.
      if (from === LEADER && f.kind === CatchUpKind.Begin) {
        const inst = follower.sm.installers[0];
        if (inst && writtenWhileHeld < 0) inst.backlog = 64 * 1024 * 1024;
      }
      return payload;
    };
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await new Promise((r) => setTimeout(r, 300));
    writtenWhileHeld = follower.sm.installers[0]!.written.length;
    // Nothing past the window was sent while the follower acknowledged nothing.
    expect(writtenWhileHeld).toBeLessThanOrEqual(4); // the window, then nothing
    expect(follower.stepped).toHaveLength(0);
    follower.sm.installers[0]!.backlog = 0;
    await until("the stream is installed", () => follower.stepped.length === 1, 10_000);
    expect(follower.sm.installers[0]!.written.length).toBe(12);
  });

  it("one pacer holds the node's cap, whatever the number of streams charging it", () => {
    let now = 1000;
    const pacer = new StreamPacer(1024 * 1024, () => now); // 1 MiB/s
    expect(pacer.waitMs()).toBeLessThanOrEqual(0);
    pacer.charge(512 * 1024); // stream A
    pacer.charge(512 * 1024); // stream B (or a re-send)
    expect(pacer.waitMs()).toBeCloseTo(1000);
    now += 400;
    expect(pacer.waitMs()).toBeCloseTo(600);
    now += 5000; // idle time is not saved up as a burst
    pacer.charge(1024 * 1024);
    expect(pacer.waitMs()).toBeCloseTo(1000);
    expect(new StreamPacer(0, () => now).waitMs()).toBe(0);
  });

  it("sends no faster than its rate cap", async () => {
    const rate = 8 * 1024 * 1024; // 16 chunks of 256 KiB: 4 MiB, about half a second
    const { net, leader, follower, chunks } = pair(leaderChunks(16), 0, {
      ...OPTIONS,
      maxBytesPerSecond: rate,
    });
    let t0 = 0;
    let sent = 0;
    let worstAhead = 0;
    net.onSend = (x) => {
      if (x.from !== LEADER || x.f.kind !== CatchUpKind.Data) return;
      if (sent === 0) t0 = performance.now();
      // One chunk of burst, and the pacing's 1 ms of slack (it does not sleep for less).
      const allowed = ((performance.now() - t0 + 2) / 1000) * rate + x.f.chunk.length;
      sent += x.f.chunk.length;
      worstAhead = Math.max(worstAhead, sent - allowed);
    };
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is installed", () => follower.stepped.length === 1, 10_000);
    const total = chunks.reduce((a, c) => a + c.length, 0);
    expect(sent).toBe(total);
    expect(worstAhead).toBeLessThanOrEqual(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(((total - chunks[0]!.length) / rate) * 1000 - 20);
  });

  it("refuses an END whose crc of crcs does not match: nothing is installed and both sides end", async () => {
    const { net, leader, follower } = pair();
    net.hook = (from, _to, payload, f) => {
      if (from === LEADER && f.kind === CatchUpKind.End) {
        return encodeCatchUp({ ...f, crcOfCrcs: (f.crcOfCrcs + 1) >>> 0 });
      }
      return payload;
    };
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the follower aborts", () => follower.sm.installers[0]?.aborted === true);
    await until("the leader ends the session", () => leader.catchUp.sendingSessions === 0);
    expect(follower.sm.installers[0]!.finished).toBe(false);
    expect(follower.stepped).toHaveLength(0);
    expect(net.deliveredOf(CatchUpKind.Abort, FOLLOWER)).toHaveLength(1);
    expect(leader.sm.sources[0]!.closed).toBe(true);
    expect(leader.stats.snapshotsSent).toBe(0);
  });

  it("aborts on both sides when the leader stops leading", async () => {
    const { net, leader, follower } = pair();
    // Hold every acknowledgement: the stream stalls with its window full.
    net.hook = (from, _to, payload, f) => (from === FOLLOWER && f.kind === CatchUpKind.Ack ? null : payload);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("frames flow", () => net.deliveredOf(CatchUpKind.Data).length >= 2);
    leader.role = Role.Follower;
    leader.leader = 3;
    leader.catchUp.onRole(Role.Follower, 3);
    await until("the follower aborts", () => follower.sm.installers[0]?.aborted === true);
    expect(leader.catchUp.sendingSessions).toBe(0);
    expect(leader.sm.sources[0]!.closed).toBe(true);
    expect(follower.stepped).toHaveLength(0);
    expect(leader.catchUp.compactionFloor()).toBe(Number.POSITIVE_INFINITY);
  });

  it("aborts a receive session when the follower's leader changes", async () => {
    const { net, leader, follower } = pair();
    net.hook = (from, _to, payload, f) => (from === FOLLOWER && f.kind === CatchUpKind.Ack ? null : payload);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("frames flow", () => net.deliveredOf(CatchUpKind.Data).length >= 1);
    follower.leader = 3;
    follower.catchUp.onRole(Role.Follower, 3);
    expect(follower.sm.installers[0]!.aborted).toBe(true);
    // Frames of the old session that still arrive are not written.
    const written = follower.sm.installers[0]!.written.length;
    await sleep(50);
    expect(follower.sm.installers[0]!.written.length).toBe(written);
    expect(follower.stepped).toHaveLength(0);
  });

  it("aborts a session that makes no progress for the abort timeout", async () => {
    const { net, leader, follower } = pair();
    net.hook = (from, _to, payload) => (from === FOLLOWER ? null : payload); // the follower is unheard
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the offer is re-sent", () => net.sentOf(CatchUpKind.Offer).length >= 2);
    await until("the leader gives up", () => leader.catchUp.sendingSessions === 0, 5_000);
    expect(net.sentOf(CatchUpKind.Abort, LEADER)).toHaveLength(1);
    await until("the follower drops its installer", () => follower.sm.installers[0]?.aborted === true);
  });

  it("stops at once when the follower no longer knows the session (it restarted)", async () => {
    const { net, leader } = pair();
    net.hook = (from, _to, payload, f) => (from === FOLLOWER && f.kind === CatchUpKind.Ack ? null : payload);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("frames flow", () => net.deliveredOf(CatchUpKind.Data).length >= 2);
    // A crash: the old process says nothing; a new one takes its place on the network.
    const restarted = addNode(net, FOLLOWER, Role.Follower, LEADER, new FakeStateMachine([], 10));
    net.hook = (_from, _to, payload) => payload;
    const t0 = performance.now();
    await until("the leader ends the session", () => leader.catchUp.sendingSessions === 0);
    expect(performance.now() - t0).toBeLessThan(OPTIONS.abortTimeoutMs!);
    expect(net.sentOf(CatchUpKind.Abort, FOLLOWER).map((x) => x.f)).toContainEqual(
      expect.objectContaining({ reason: "unknown session" }),
    );
    expect(restarted.stepped).toHaveLength(0);
    expect(leader.sm.sources[0]!.closed).toBe(true);
  });

  it("refuses a new stream while a finished one waits for its commit point", async () => {
    const { net, leader, follower } = pair();
    follower.holdInstall = true;
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is handed to the core", () => follower.stepped.length === 1);
    // Another leader offers meanwhile: opening an installer now would discard the token.
    follower.term = TERM + 1;
    follower.catchUp.onFrame(3, encodeCatchUp({ kind: CatchUpKind.Offer, sessionId: 99, term: TERM + 1 }));
    expect(follower.sm.installers).toHaveLength(1);
    await until("it says so", () => net.sentOf(CatchUpKind.Abort, FOLLOWER).length === 1);
    expect(net.sentOf(CatchUpKind.Abort, FOLLOWER)[0]!.to).toBe(3);
    follower.catchUp.installed(APPLIED);
    follower.catchUp.onFrame(3, encodeCatchUp({ kind: CatchUpKind.Offer, sessionId: 100, term: TERM + 1 }));
    expect(follower.sm.installers).toHaveLength(2);
  });

  it("ignores the core's repeated Snap messages while a stream runs and during the cooldown after it", async () => {
    const { net, leader, follower } = pair(leaderChunks(4));
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the stream is installed", () => follower.stepped.length === 1);
    await until("the leader is done", () => leader.catchUp.sendingSessions === 0);
    // The stream's index stays out of compaction through the cooldown.
    expect(leader.catchUp.compactionFloor()).toBe(APPLIED);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    expect(net.sentOf(CatchUpKind.Offer)).toHaveLength(1);
    await sleep(OPTIONS.cooldownMs! + 20);
    expect(leader.catchUp.compactionFloor()).toBe(Number.POSITIVE_INFINITY);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    expect(net.sentOf(CatchUpKind.Offer)).toHaveLength(2);
  });

  it("sends at most 2 streams at once; Snap messages of other terms or from a non-leader are ignored", () => {
    const net = new Net();
    const leader = addNode(net, LEADER, Role.Leader, LEADER, new FakeStateMachine(leaderChunks(2), APPLIED));
    leader.catchUp.onSnap(snapFor(2));
    leader.catchUp.onSnap(snapFor(3));
    leader.catchUp.onSnap(snapFor(4));
    expect(leader.catchUp.sendingSessions).toBe(2);
    expect(net.sentOf(CatchUpKind.Offer).map((s) => s.to)).toEqual([2, 3]);
    leader.catchUp.onSnap(snapFor(5, TERM - 1));
    leader.role = Role.Follower;
    leader.catchUp.onSnap(snapFor(6));
    expect(net.sentOf(CatchUpKind.Offer)).toHaveLength(2);
  });

  it("keeps the stream's index out of compaction while it is sent", async () => {
    const { net, leader, follower } = pair();
    net.hook = (from, _to, payload, f) => (from === FOLLOWER && f.kind === CatchUpKind.Ack ? null : payload);
    expect(leader.catchUp.compactionFloor()).toBe(Number.POSITIVE_INFINITY);
    leader.catchUp.onSnap(snapFor(FOLLOWER));
    await until("the source is open", () => net.deliveredOf(CatchUpKind.Begin).length === 1);
    expect(leader.catchUp.compactionFloor()).toBe(APPLIED);
    expect(follower.stepped).toHaveLength(0);
  });
});
