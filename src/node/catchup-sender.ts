// The leader's side of one snapshot stream to one follower (the protocol is
// described in catchup.ts). A SendSession offers, opens the state machine's
// source at a drain boundary once the follower accepts, then streams DATA
// frames one source.next() per event-loop turn, never more than `windowFrames`
// unacknowledged, keeping those frames until they are acknowledged so that a
// NACK or a silence can be answered by re-sending them (the source cannot
// rewind). It holds at most windowFrames encoded frames (about windowFrames x
// chunkBytes) and one open source.

import type { ConfState, NodeId } from "../raft/index.ts";
import { assert } from "./assert.ts";
import { type CatchUpFrame, CatchUpKind, chunkCrc, encodeCatchUp, foldCrc } from "./catchup-codec.ts";
import type { RuntimeStats } from "./core.ts";
import type { AddressBook } from "./members.ts";
import type { Logger } from "./ports.ts";
import type { SnapshotSource } from "./state-machine.ts";

export interface StreamLimits {
  /** Bytes asked of source.next() per DATA frame. */
  chunkBytes: number;
  /** DATA frames sent and not yet acknowledged, at most. */
  windowFrames: number;
  /** No progress for this long: re-send what is unacknowledged (and OFFER/BEGIN/END). */
  progressTimeoutMs: number;
  /** No progress for this long: abort the session. */
  abortTimeoutMs: number;
  /**
   * Stream bytes sent per second at most (0: no cap). A stream at full speed
   * takes the CPU and disk that produce requests need, on both nodes; the cap
   * keeps a catch-up from being felt by clients.
   */
  maxBytesPerSecond: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  chunkBytes: 1024 * 1024,
  windowFrames: 4,
  progressTimeoutMs: 2_000,
  abortTimeoutMs: 10_000,
  maxBytesPerSecond: 64 * 1024 * 1024,
};

/** A source's "about maxBytes" chunk larger than this many times chunkBytes is a bug. */
const MAX_CHUNK_OVERSHOOT = 8;

/**
 * One rate cap shared by every stream a node sends, re-sends included: the
 * cap is what the node spends on catch-up, whatever the number of followers.
 */
export class StreamPacer {
  private nextAt = 0;

  constructor(
    /** 0: no cap. */
    private readonly bytesPerSecond: number,
    private readonly now: () => number,
  ) {}

  /** How long to wait before the next frame may go (<= 0: now). */
  waitMs(): number {
    return this.bytesPerSecond > 0 ? this.nextAt - this.now() : 0;
  }

  /** `bytes` were sent: the next frame waits for them. */
  charge(bytes: number): void {
    if (this.bytesPerSecond <= 0) return;
    this.nextAt = Math.max(this.nextAt, this.now()) + (bytes * 1000) / this.bytesPerSecond;
  }
}

/** What a leader's session is opened with, at a drain boundary. */
export interface OpenedSource {
  source: SnapshotSource;
  /** Term of the entry at source.index. */
  term: number;
  /** Membership as of source.index. */
  conf: ConfState;
  members: AddressBook;
}

export interface SenderDeps {
  /** Queues a frame for the follower; false when the transport dropped it (the timers re-send). */
  send(frame: Uint8Array): boolean;
  /** Runs `task` at the runtime's next drain boundary. */
  atBoundary(task: () => void): void;
  /** Opens the source (at a drain boundary). Throws when it cannot. */
  open(have: Uint8Array): OpenedSource;
  /** Whether this node still leads in the session's term. */
  stillLeading(term: number): boolean;
  now(): number;
  /** The node's rate cap, shared by its streams. */
  pacer: StreamPacer;
  /** Called once, when the session ends either way. */
  onEnd(session: SendSession, sent: boolean): void;
  stats: RuntimeStats;
  log: Logger;
}

type SendState = "offered" | "opening" | "streaming" | "done";

interface UnackedFrame {
  seq: number;
  frame: Uint8Array;
  chunkBytes: number;
}

export class SendSession {
  private state: SendState = "offered";
  /** The applied index the stream describes (source.index); -1 until opened. */
  index = -1;
  private source: SnapshotSource | undefined;
  /** Frames sent and not acknowledged, in seq order; at most limits.windowFrames. */
  private readonly unacked: UnackedFrame[] = [];
  private nextSeq = 0;
  /** The follower has written every frame below this. */
  private acked = 0;
  private beginFrame: Uint8Array | undefined;
  private beginAcked = false;
  private endFrame: Uint8Array | undefined;
  private crcOfCrcs = 0;
  private streamBytes = 0;
  private resentFrames = 0;
  private pumpScheduled = false;
  /** The pacer's wait for the next DATA frame, if one is scheduled. */
  private pumpTimer: NodeJS.Timeout | undefined;
  private readonly startedAt: number;
  private lastProgressAt: number;
  private lastResendAt = 0;

  constructor(
    readonly peer: NodeId,
    readonly sessionId: number,
    readonly term: number,
    private readonly d: SenderDeps,
    private readonly limits: StreamLimits,
  ) {
    this.startedAt = d.now();
    this.lastProgressAt = this.startedAt;
  }

  start(): void {
    this.sendFrame({ kind: CatchUpKind.Offer, sessionId: this.sessionId, term: this.term });
  }

  onFrame(f: CatchUpFrame): void {
    if (this.state === "done") return;
    switch (f.kind) {
      case CatchUpKind.Accept:
        if (this.state !== "offered") return; // a duplicate ACCEPT (our OFFER was re-sent)
        this.progress();
        this.state = "opening";
        this.d.atBoundary(() => this.open(f.have));
        return;
      case CatchUpKind.Ack:
        if (this.state !== "streaming") return;
        this.beginAcked = true;
        this.acknowledge(f.next);
        this.pump();
        return;
      case CatchUpKind.Nack:
        if (this.state !== "streaming") return;
        if (f.needBegin) this.beginAcked = false;
        else this.beginAcked = true;
        if (!this.acknowledge(f.next)) return;
        this.resendFrom(f.next);
        return;
      case CatchUpKind.EndAck:
        if (this.state !== "streaming" || !this.endFrame) return;
        this.finish(f.installed);
        return;
      case CatchUpKind.Abort:
        this.abort(`the follower aborted: ${f.reason}`, false);
        return;
      default:
        return; // follower-bound kinds are not for us
    }
  }

  /** Timers: re-send after progressTimeoutMs of silence, abort after abortTimeoutMs. */
  tick(now: number): void {
    if (this.state === "done") return;
    if (!this.d.stillLeading(this.term)) {
      this.abort("no longer the leader of this term", true);
      return;
    }
    if (now - this.lastProgressAt >= this.limits.abortTimeoutMs) {
      this.abort(`no progress for ${this.limits.abortTimeoutMs} ms`, true);
      return;
    }
    if (now - Math.max(this.lastProgressAt, this.lastResendAt) < this.limits.progressTimeoutMs) return;
    if (this.state === "offered") {
      this.lastResendAt = now;
      this.start();
    } else if (this.state === "streaming") {
      this.resendFrom(this.acked);
    }
  }

  /** Ends the session; `tellPeer` sends ABORT so the follower drops what it staged. */
  abort(reason: string, tellPeer: boolean): void {
    if (this.state === "done") return;
    const opened = this.state === "streaming";
    this.state = "done";
    clearTimeout(this.pumpTimer);
    this.closeSource();
    this.unacked.length = 0;
    if (tellPeer) this.sendFrame({ kind: CatchUpKind.Abort, sessionId: this.sessionId, reason });
    this.d.log.warn(
      { peer: this.peer, session: this.sessionId, index: opened ? this.index : undefined, reason },
      "snapshot stream aborted",
    );
    this.d.onEnd(this, false);
  }

  // ---- internals ------------------------------------------------------------------

  private open(have: Uint8Array): void {
    if (this.state !== "opening") return; // aborted while waiting for the boundary
    if (!this.d.stillLeading(this.term)) {
      this.abort("no longer the leader of this term", true);
      return;
    }
    let opened: OpenedSource;
    try {
      opened = this.d.open(have);
    } catch (e) {
      this.abort(`cannot open the snapshot source: ${(e as Error).message}`, true);
      return;
    }
    this.source = opened.source;
    this.index = opened.source.index;
    this.state = "streaming";
    this.progress();
    this.d.log.info(
      { peer: this.peer, session: this.sessionId, index: this.index, have: describeHave(have) },
      "sending snapshot stream",
    );
    this.beginFrame = encodeCatchUp({
      kind: CatchUpKind.Begin,
      sessionId: this.sessionId,
      index: this.index,
      term: opened.term,
      conf: opened.conf,
      members: opened.members,
    });
    this.d.send(this.beginFrame);
    this.pump();
  }

  /** Schedules the next source.next() if the window has room: one chunk per event-loop turn. */
  private pump(): void {
    if (this.state !== "streaming" || this.endFrame || this.pumpScheduled) return;
    if (this.unacked.length >= this.limits.windowFrames) return;
    this.pumpScheduled = true;
    const run = () => {
      this.pumpScheduled = false;
      this.produceOne();
    };
    const waitMs = this.d.pacer.waitMs();
    if (waitMs > 1) this.pumpTimer = setTimeout(run, waitMs);
    else setImmediate(run);
  }

  private produceOne(): void {
    if (this.state !== "streaming" || this.endFrame || this.unacked.length >= this.limits.windowFrames)
      return;
    const source = this.source;
    assert(source, "a streaming session has a source");
    let chunk: Uint8Array | null;
    try {
      chunk = source.next(this.limits.chunkBytes);
    } catch (e) {
      this.abort(`the snapshot source failed: ${(e as Error).message}`, true);
      return;
    }
    if (chunk === null) {
      this.endFrame = encodeCatchUp({
        kind: CatchUpKind.End,
        sessionId: this.sessionId,
        frames: this.nextSeq,
        crcOfCrcs: this.crcOfCrcs,
        bytes: this.streamBytes,
      });
      this.d.send(this.endFrame);
      return;
    }
    assert(
      chunk.length <= this.limits.chunkBytes * MAX_CHUNK_OVERSHOOT,
      `snapshot chunk of ${chunk.length} bytes for ${this.limits.chunkBytes} asked`,
    );
    const seq = this.nextSeq++;
    assert(seq <= 0xffffffff, "DATA sequence numbers fit in u32");
    const crc = chunkCrc(chunk);
    this.crcOfCrcs = foldCrc(this.crcOfCrcs, crc);
    this.streamBytes += chunk.length;
    const frame = encodeCatchUp({ kind: CatchUpKind.Data, sessionId: this.sessionId, seq, crc, chunk });
    this.unacked.push({ seq, frame, chunkBytes: chunk.length });
    assert(this.unacked.length <= this.limits.windowFrames, "the send window holds");
    this.d.stats.snapshotBytesSent += chunk.length;
    this.d.send(frame);
    this.d.pacer.charge(chunk.length);
    this.pump();
  }

  /** Takes in "every frame below `next` is written"; false (and aborts) when it cannot be. */
  private acknowledge(next: number): boolean {
    if (next > this.nextSeq || next < this.acked) {
      this.abort(`acknowledgement ${next} outside [${this.acked}, ${this.nextSeq}]`, true);
      return false;
    }
    if (next > this.acked) {
      this.acked = next;
      while (this.unacked.length > 0 && this.unacked[0]!.seq < next) this.unacked.shift();
      this.progress();
    }
    return true;
  }

  private resendFrom(next: number): void {
    this.lastResendAt = this.d.now();
    if (!this.beginAcked && this.beginFrame) this.d.send(this.beginFrame);
    for (const u of this.unacked) {
      if (u.seq < next) continue;
      this.resentFrames++;
      this.d.stats.snapshotBytesSent += u.chunkBytes;
      this.d.pacer.charge(u.chunkBytes);
      this.d.send(u.frame);
    }
    if (this.endFrame) this.d.send(this.endFrame);
  }

  private finish(installed: boolean): void {
    this.state = "done";
    clearTimeout(this.pumpTimer);
    this.closeSource();
    const ms = Math.max(1, this.d.now() - this.startedAt);
    this.d.stats.snapshotsSent++;
    this.d.log.info(
      {
        peer: this.peer,
        session: this.sessionId,
        index: this.index,
        frames: this.nextSeq,
        bytes: this.streamBytes,
        resentFrames: this.resentFrames,
        ms: Math.round(ms),
        MBps: Number((this.streamBytes / 1e6 / (ms / 1000)).toFixed(1)),
        installed,
      },
      "snapshot stream sent",
    );
    this.d.onEnd(this, true);
  }

  private progress(): void {
    this.lastProgressAt = this.d.now();
  }

  private closeSource(): void {
    const s = this.source;
    this.source = undefined;
    if (!s) return;
    try {
      s.close();
    } catch (e) {
      this.d.log.warn({ peer: this.peer, err: (e as Error).message }, "closing the snapshot source failed");
    }
  }

  private sendFrame(f: CatchUpFrame): void {
    this.d.send(encodeCatchUp(f));
  }
}

/** The have vector for a log line: its size and first bytes in hex. */
function describeHave(have: Uint8Array): string {
  const hex = Buffer.from(have.subarray(0, 32)).toString("hex");
  return have.length > 32 ? `${have.length} bytes: ${hex}...` : hex || "(empty)";
}
