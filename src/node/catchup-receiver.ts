// The follower's side of one snapshot stream (the protocol is described in
// catchup.ts). A ReceiveSession writes DATA frames to the state machine's
// installer strictly in sequence, and only those whose CRC checks: anything
// else is answered with a NACK naming the frame it needs, and never reaches
// the installer. It buffers nothing: a frame is written when it arrives or
// dropped. At END it checks the count and the CRC of the frames' CRCs, then
// hands the installer's token to `install` (which steps it into the core).

import type { ConfState, NodeId } from "../raft/index.ts";
import { assert } from "./assert.ts";
import { type CatchUpFrame, CatchUpKind, chunkCrc, encodeCatchUp, foldCrc } from "./catchup-codec.ts";
import type { StreamLimits } from "./catchup-sender.ts";
import type { RuntimeStats } from "./core.ts";
import type { AddressBook } from "./members.ts";
import type { Logger } from "./ports.ts";
import type { SnapshotInstaller } from "./state-machine.ts";

/** What BEGIN announced: the snapshot the stream describes. */
export interface StreamHeader {
  index: number;
  term: number;
  conf: ConfState;
  members: AddressBook;
}

export interface ReceiverDeps {
  /** Queues a frame for the leader. */
  send(frame: Uint8Array): boolean;
  /**
   * Installs a finished stream (steps the snapshot into the core); returns
   * whether the core took it (false: not needed, e.g. already committed).
   */
  install(session: ReceiveSession, header: StreamHeader, token: Uint8Array): boolean;
  now(): number;
  /** Called once, when the session ends either way. */
  onEnd(session: ReceiveSession): void;
  stats: RuntimeStats;
  log: Logger;
}

type ReceiveState = "receiving" | "finished" | "aborted";

/** Staged bytes not yet on disk beyond which acknowledgements wait. */
const MAX_BACKLOG_BYTES = 16 * 1024 * 1024;

export class ReceiveSession {
  private state: ReceiveState = "receiving";
  private header: StreamHeader | undefined;
  /** The next DATA seq to write. */
  private expected = 0;
  private crcOfCrcs = 0;
  private bytes = 0;
  private corruptFrames = 0;
  private installed = false;
  private ackTimer: NodeJS.Timeout | undefined;
  /** Dropped when the session ends: a finished session is kept only to answer a re-sent END. */
  private installer: SnapshotInstaller | undefined;
  private readonly startedAt: number;
  private lastFrameAt: number;
  /** The last NACK sent, so that a burst of frames after a gap asks once. */
  private lastNack = { next: -1, at: 0 };

  constructor(
    readonly from: NodeId,
    readonly sessionId: number,
    readonly term: number,
    installer: SnapshotInstaller,
    private readonly have: Uint8Array,
    private readonly d: ReceiverDeps,
    private readonly limits: StreamLimits,
  ) {
    this.installer = installer;
    this.startedAt = d.now();
    this.lastFrameAt = this.startedAt;
  }

  /** The installer of a session still receiving. */
  private get live(): SnapshotInstaller {
    assert(this.installer, "a receiving session has its installer");
    return this.installer;
  }

  /** The session is over either way: release what it held. */
  private release(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.installer = undefined;
  }

  get active(): boolean {
    return this.state === "receiving";
  }

  get aborted(): boolean {
    return this.state === "aborted";
  }

  /** Answers the OFFER (again, when the leader re-sends it). */
  accept(): void {
    this.sendFrame({ kind: CatchUpKind.Accept, sessionId: this.sessionId, have: this.have });
  }

  onFrame(f: CatchUpFrame): void {
    this.lastFrameAt = this.d.now();
    if (this.state === "finished") {
      // Our END_ACK was lost: say it again. Anything else of a finished session is stale.
      if (f.kind === CatchUpKind.End) this.sendEndAck();
      return;
    }
    if (this.state !== "receiving") return;
    switch (f.kind) {
      case CatchUpKind.Offer:
        this.accept();
        return;
      case CatchUpKind.Begin:
        if (!this.header) {
          this.header = { index: f.index, term: f.term, conf: f.conf, members: f.members };
        }
        this.ack();
        return;
      case CatchUpKind.Data:
        this.onData(f.seq, f.crc, f.chunk);
        return;
      case CatchUpKind.End:
        this.onEnd(f.frames, f.crcOfCrcs, f.bytes);
        return;
      case CatchUpKind.Abort:
        this.abort(`the leader aborted: ${f.reason}`, false);
        return;
      default:
        return; // leader-bound kinds are not for us
    }
  }

  /** Idle bound: a leader silent for abortTimeoutMs is gone. */
  tick(now: number): void {
    if (this.state === "receiving" && now - this.lastFrameAt >= this.limits.abortTimeoutMs) {
      this.abort(`nothing from the leader for ${this.limits.abortTimeoutMs} ms`, true);
    }
  }

  abort(reason: string, tellPeer: boolean): void {
    if (this.state !== "receiving") return;
    this.state = "aborted";
    try {
      this.live.abort();
    } catch (e) {
      this.d.log.warn({ err: (e as Error).message }, "aborting the snapshot installer failed");
    }
    this.release();
    if (tellPeer) this.sendFrame({ kind: CatchUpKind.Abort, sessionId: this.sessionId, reason });
    this.d.log.warn(
      {
        leader: this.from,
        session: this.sessionId,
        index: this.header?.index,
        frames: this.expected,
        reason,
      },
      "snapshot stream aborted",
    );
    this.d.onEnd(this);
  }

  // ---- internals ------------------------------------------------------------------

  private onData(seq: number, crc: number, chunk: Uint8Array): void {
    if (!this.header) {
      this.nack(0, true);
      return;
    }
    if (seq < this.expected) {
      this.ackWhenWritten(); // a re-sent frame we already wrote: our ACK may have been lost
      return;
    }
    if (seq > this.expected) {
      this.nack(this.expected, false); // a gap: frames are written in order only
      return;
    }
    if (chunkCrc(chunk) !== crc) {
      this.corruptFrames++;
      this.d.log.warn({ leader: this.from, session: this.sessionId, seq }, "snapshot frame fails its CRC");
      this.nack(this.expected, false);
      return;
    }
    try {
      this.live.write(chunk);
    } catch (e) {
      this.abort(`the installer refused frame ${seq}: ${(e as Error).message}`, true);
      return;
    }
    this.expected++;
    this.crcOfCrcs = foldCrc(this.crcOfCrcs, crc);
    this.bytes += chunk.length;
    this.d.stats.snapshotBytesReceived += chunk.length;
    this.ackWhenWritten();
  }

  /**
   * Acknowledges once the installer's uncommitted writes are below the bound:
   * the leader's window then waits for our disk, and memory stays bounded.
   */
  private ackWhenWritten(): void {
    if (this.live.backlogBytes() <= MAX_BACKLOG_BYTES) {
      this.ack();
      return;
    }
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      if (this.state === "receiving") this.ackWhenWritten();
    }, 5);
  }

  private onEnd(frames: number, crcOfCrcs: number, bytes: number): void {
    const header = this.header;
    if (!header) {
      this.nack(0, true);
      return;
    }
    if (this.expected < frames) {
      this.nack(this.expected, false); // frames are missing: ask for them
      return;
    }
    if (this.expected > frames || crcOfCrcs !== this.crcOfCrcs || bytes !== this.bytes) {
      // We wrote frames the leader did not send, or not the ones it sent: refuse.
      this.abort(
        `END does not match what was received (frames ${frames}/${this.expected}, bytes ${bytes}/${this.bytes}, ` +
          `crc of crcs ${crcOfCrcs}/${this.crcOfCrcs})`,
        true,
      );
      return;
    }
    let token: Uint8Array;
    try {
      token = this.live.finish();
    } catch (e) {
      this.abort(`the installer refused the stream: ${(e as Error).message}`, true);
      return;
    }
    this.state = "finished";
    this.release();
    const ms = Math.max(1, this.d.now() - this.startedAt);
    this.d.log.info(
      {
        leader: this.from,
        session: this.sessionId,
        index: header.index,
        frames,
        bytes,
        corruptFrames: this.corruptFrames,
        ms: Math.round(ms),
      },
      "snapshot stream received",
    );
    this.installed = this.d.install(this, header, token);
    if (!this.installed) {
      this.d.log.info(
        { leader: this.from, index: header.index },
        "snapshot stream not installed: the core did not need it",
      );
    }
    this.sendEndAck();
    this.d.onEnd(this);
  }

  private ack(): void {
    this.sendFrame({ kind: CatchUpKind.Ack, sessionId: this.sessionId, next: this.expected });
  }

  private nack(next: number, needBegin: boolean): void {
    const now = this.d.now();
    // One NACK per missing frame per quarter of the progress timeout: a window of
    // frames after a gap asks once, and the leader's timer covers a lost NACK.
    if (this.lastNack.next === next && now - this.lastNack.at < this.limits.progressTimeoutMs / 4) return;
    this.lastNack = { next, at: now };
    this.sendFrame({ kind: CatchUpKind.Nack, sessionId: this.sessionId, next, needBegin });
  }

  private sendEndAck(): void {
    this.sendFrame({ kind: CatchUpKind.EndAck, sessionId: this.sessionId, installed: this.installed });
  }

  private sendFrame(f: CatchUpFrame): void {
    this.d.send(encodeCatchUp(f));
  }
}
