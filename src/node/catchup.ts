// The catch-up service: brings a follower whose next entry the leader has
// compacted away up to date by streaming the state machine's state, instead of
// the Raft core's one-message snapshot.
//
// Why a stream beside the core: the state lives in LMDB and a local snapshot
// is only (index, term, membership), so the core's Snap message carries no
// application data. The core still decides WHEN a follower needs a snapshot
// (its progress enters Snapshot state and it emits Snap, again every
// heartbeat): the runtime hands those messages here instead of to the
// transport. HOW the state travels is ours: in bounded, checksummed frames
// over the transport's APP channel, paced by acknowledgements, so that no
// event-loop turn does work that grows with the data and no frame that fails
// its checksum is ever installed. The follower ends the stream by stepping a
// one-chunk Snap message into its own core, so the core's rules (refuse what
// is already committed, switch the configuration, answer AppResp) and the
// runtime's single commit point (storage.applySnapshot + stateMachine.restore
// in one LMDB batch) are exactly those of any snapshot.
//
// Protocol (frames in catchup-codec.ts; L = leader, F = follower):
//   L: the core emits Snap for F -> OFFER {session, term}.
//   F: aborts any other receive session, opens an installer,
//      ACCEPT {session, have: stateMachine.haveVector()}.
//   L: at a drain boundary (after a flush, nothing applying) opens
//      stateMachine.openSnapshotSource(have): A = source.index; BEGIN {A,
//      term(A), membership as of A, address book}.
//   L: DATA {seq, crc32, chunk of <= chunkBytes} one source.next per event-loop
//      turn, at most windowFrames unacknowledged. F writes a frame only if it
//      is the next in sequence and its CRC checks, then ACK {next}; otherwise
//      NACK {next} and L re-sends from there (it keeps the unacknowledged
//      frames). No progress for progressTimeoutMs: L re-sends what is
//      unacknowledged; for abortTimeoutMs: ABORT (either side).
//   L: END {frames, crc of the frames' crcs, bytes}. F checks them (a mismatch
//      is refused with ABORT), installer.finish() -> token, steps Snap {index A,
//      term, conf, data: address book + token} into its core; END_ACK.
//   L: closes the source. The core's AppResp from F (sent once F's install is
//      durable) takes F's progress out of Snapshot state; until then the Snap
//      messages the core repeats for F are ignored for cooldownMs.
//
// Bounds: at most maxSendingSessions streams from a leader at once (a peer
// over the limit waits: its core asks again every heartbeat), one per peer;
// at most one receive session on a follower; per sending session at most
// windowFrames frames of about chunkBytes kept; `holds` has an entry per peer
// at most and each expires after cooldownMs. Sessions end when this node
// stops leading, the term changes, the follower's leader changes, or on stop.
// While a stream is open (and through its cooldown) the leader never
// compacts its log past A (compactionFloor), so F can replicate from A + 1.

import type { Message, NodeId } from "../raft/index.ts";
import { MessageType, newMessage, Role } from "../raft/index.ts";
import { assert } from "./assert.ts";
import {
  type CatchUpFrame,
  CatchUpFrameError,
  CatchUpKind,
  decodeCatchUp,
  encodeCatchUp,
} from "./catchup-codec.ts";
import { ReceiveSession, type StreamHeader } from "./catchup-receiver.ts";
import {
  DEFAULT_STREAM_LIMITS,
  type OpenedSource,
  SendSession,
  type StreamLimits,
  StreamPacer,
} from "./catchup-sender.ts";
import type { Core } from "./core.ts";
import { type AddressBook, encodeSnapshot } from "./members.ts";
import type { DurableStorage, PeerTransport } from "./ports.ts";
import type { StateMachine } from "./state-machine.ts";

export interface CatchUpOptions extends StreamLimits {
  /** Streams a leader sends at once. */
  maxSendingSessions: number;
  /** After a stream completes, the core's repeated Snap for that peer is ignored this long. */
  cooldownMs: number;
  /** After a stream fails, a new one for that peer waits this long. */
  retryDelayMs: number;
  /** How often the timers are checked. */
  sweepMs: number;
}

export const DEFAULT_CATCHUP_OPTIONS: CatchUpOptions = {
  ...DEFAULT_STREAM_LIMITS,
  maxSendingSessions: 2,
  cooldownMs: 3_000,
  retryDelayMs: 1_000,
  sweepMs: 250,
};

export interface CatchUpDeps {
  core: Pick<
    Core,
    "id" | "log" | "stats" | "role" | "leaderId" | "term" | "isStopped" | "atBoundary" | "step"
  >;
  transport: Pick<PeerTransport, "sendApp">;
  stateMachine: Pick<StateMachine, "haveVector" | "openSnapshotSource" | "openInstaller">;
  storage: Pick<DurableStorage, "term" | "initialState">;
  /** The address book, as BEGIN carries it. */
  members(): AddressBook;
  now?: () => number;
}

interface Hold {
  untilMs: number;
  /** The stream's index, kept out of compaction while the follower starts replicating after it. */
  floor: number;
}

export class CatchUp {
  private readonly o: CatchUpOptions;
  private readonly now: () => number;
  /** The rate cap all of this node's streams share. */
  private readonly pacer: StreamPacer;
  /** Leader: one session per peer; at most o.maxSendingSessions. */
  private readonly sending = new Map<NodeId, SendSession>();
  /** Leader: peers recently served (cooldown) or failed (retry delay); expire after their time. */
  private readonly holds = new Map<NodeId, Hold>();
  /** Follower: the one receive session (kept once finished, to answer a re-sent END). */
  private receiving: ReceiveSession | undefined;
  /** Follower: the index of a stream handed to the core whose commit point is not written yet. */
  private pendingInstall: number | undefined;
  /** Follower: the last unknown session told to stop (one ABORT per session, not one per frame). */
  private lastRefused: { from: NodeId; sessionId: number } | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private nextSessionSeq = 0;
  private stopped = false;

  constructor(
    private readonly d: CatchUpDeps,
    options: Partial<CatchUpOptions> = {},
  ) {
    this.o = { ...DEFAULT_CATCHUP_OPTIONS, ...options };
    this.now = d.now ?? (() => performance.now());
    this.pacer = new StreamPacer(this.o.maxBytesPerSecond, this.now);
    assert(this.o.windowFrames >= 1 && this.o.chunkBytes >= 1, "a stream window of at least one frame");
    assert(this.o.progressTimeoutMs < this.o.abortTimeoutMs, "re-send before aborting");
    assert(this.o.maxSendingSessions >= 1, "at least one sending session");
  }

  /** Sessions sending now (leader). */
  get sendingSessions(): number {
    return this.sending.size;
  }

  /**
   * The highest index the log may be compacted to without cutting a stream in
   * flight (or just finished) off from the entries after it; Infinity if none.
   */
  compactionFloor(): number {
    let floor = Number.POSITIVE_INFINITY;
    for (const s of this.sending.values()) if (s.index >= 0) floor = Math.min(floor, s.index);
    const now = this.now();
    for (const [peer, h] of this.holds) {
      if (now >= h.untilMs) this.holds.delete(peer);
      else floor = Math.min(floor, h.floor);
    }
    return floor;
  }

  /** The leader's core wants `m.to` to get a snapshot (a Snap message, never sent as is). */
  onSnap(m: Message): void {
    if (this.stopped || m.type !== MessageType.Snap) return;
    const { core } = this.d;
    if (core.role() !== Role.Leader || m.term !== core.term()) return;
    const peer = m.to;
    if (this.sending.has(peer)) return; // a stream is under way
    const hold = this.holds.get(peer);
    if (hold) {
      if (this.now() < hold.untilMs) return; // cooling down: the AppResp is on its way
      this.holds.delete(peer);
    }
    if (this.sending.size >= this.o.maxSendingSessions) {
      core.log.debug({ peer, sending: this.sending.size }, "snapshot stream waits for a free slot");
      return;
    }
    const session = new SendSession(
      peer,
      this.newSessionId(),
      m.term,
      {
        send: (frame) => this.d.transport.sendApp(peer, frame),
        atBoundary: (task) => core.atBoundary(task),
        open: (have) => this.openSource(have),
        stillLeading: (term) => !this.stopped && core.role() === Role.Leader && core.term() === term,
        now: this.now,
        pacer: this.pacer,
        onEnd: (s, sent) => this.sendEnded(s, sent),
        stats: core.stats,
        log: core.log,
      },
      this.o,
    );
    this.sending.set(peer, session);
    assert(this.sending.size <= this.o.maxSendingSessions, "sending sessions within their bound");
    this.ensureSweep();
    session.start();
  }

  /** A catch-up frame from a peer (the runtime routes APP payloads with a kind >= 16 here). */
  onFrame(from: NodeId, payload: Uint8Array): void {
    if (this.stopped) return;
    let f: CatchUpFrame;
    try {
      f = decodeCatchUp(payload);
    } catch (e) {
      if (!(e instanceof CatchUpFrameError)) throw e;
      this.d.core.log.warn({ peer: from, err: e.message }, "malformed catch-up frame");
      return;
    }
    switch (f.kind) {
      case CatchUpKind.Accept:
      case CatchUpKind.Ack:
      case CatchUpKind.Nack:
      case CatchUpKind.EndAck:
        this.toSender(from, f);
        return;
      case CatchUpKind.Offer:
        this.onOffer(from, f.sessionId, f.term);
        return;
      case CatchUpKind.Begin:
      case CatchUpKind.Data:
      case CatchUpKind.End:
        this.toReceiver(from, f);
        return;
      case CatchUpKind.Abort: {
        const s = this.sending.get(from);
        if (s && s.sessionId === f.sessionId) s.onFrame(f);
        const r = this.receiving;
        if (r && r.from === from && r.sessionId === f.sessionId) r.onFrame(f);
        return;
      }
    }
  }

  /** Role or leader changed: a leader that stops leading ends its streams; a follower its stream from another leader. */
  onRole(role: Role, leader: NodeId): void {
    if (role !== Role.Leader) {
      for (const s of [...this.sending.values()]) s.abort("this node no longer leads", true);
      this.holds.clear();
    }
    const r = this.receiving;
    if (r?.active && r.from !== leader) r.abort(`the leader changed to ${leader || "none"}`, false);
  }

  /** The runtime wrote a snapshot's commit point (storage.applySnapshot + restore). */
  installed(index: number): void {
    if (this.pendingInstall !== undefined && index >= this.pendingInstall) this.pendingInstall = undefined;
  }

  /** Ends every session (the runtime is stopping): sources closed, installers aborted. */
  stop(): void {
    if (this.stopped) return;
    for (const s of [...this.sending.values()]) s.abort("the leader is stopping", true);
    this.receiving?.abort("this node is stopping", true);
    this.receiving = undefined;
    this.stopped = true;
    this.holds.clear();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  // ---- leader ---------------------------------------------------------------------

  private toSender(from: NodeId, f: CatchUpFrame): void {
    const s = this.sending.get(from);
    if (!s || s.sessionId !== f.sessionId) return; // a session that ended: stale
    s.onFrame(f);
  }

  /** Runs at a drain boundary: the applied state is on disk and nothing applies meanwhile. */
  private openSource(have: Uint8Array): OpenedSource {
    const { stateMachine, storage } = this.d;
    const source = stateMachine.openSnapshotSource(have);
    try {
      return {
        source,
        term: storage.term(source.index),
        conf: storage.initialState().confState,
        members: this.d.members(),
      };
    } catch (e) {
      source.close();
      throw e;
    }
  }

  private sendEnded(s: SendSession, sent: boolean): void {
    if (this.sending.get(s.peer) === s) this.sending.delete(s.peer);
    if (!this.stopped && this.d.core.role() === Role.Leader) {
      const wait = sent ? this.o.cooldownMs : this.o.retryDelayMs;
      this.holds.set(s.peer, { untilMs: this.now() + wait, floor: s.index >= 0 ? s.index : Infinity });
    }
    this.stopSweepIfIdle();
  }

  private newSessionId(): number {
    // Unique across this leader's restarts: ms clock x 1024 + a counter, below 2^53.
    this.nextSessionSeq = (this.nextSessionSeq + 1) % 1024;
    return Math.floor(Date.now()) * 1024 + this.nextSessionSeq;
  }

  // ---- follower -------------------------------------------------------------------

  private onOffer(from: NodeId, sessionId: number, term: number): void {
    const { core } = this.d;
    const r = this.receiving;
    if (r && r.from === from && r.sessionId === sessionId) {
      r.onFrame({ kind: CatchUpKind.Offer, sessionId, term }); // our ACCEPT was lost
      return;
    }
    if (core.role() === Role.Leader || term < core.term()) {
      this.sendTo(from, { kind: CatchUpKind.Abort, sessionId, reason: "stale offer" });
      return;
    }
    if (this.pendingInstall !== undefined) {
      // A finished stream's token waits for its commit point: a new installer
      // now would discard what restore() is about to take. The leader retries.
      this.sendTo(from, { kind: CatchUpKind.Abort, sessionId, reason: "a snapshot is being installed" });
      return;
    }
    if (r?.active) r.abort(`a new stream ${sessionId} from node ${from} replaces it`, false);
    this.receiving = undefined;
    const { stateMachine } = this.d;
    let session: ReceiveSession;
    try {
      const installer = stateMachine.openInstaller();
      session = new ReceiveSession(
        from,
        sessionId,
        term,
        installer,
        stateMachine.haveVector(),
        {
          send: (frame) => this.d.transport.sendApp(from, frame),
          install: (s, header, token) => this.install(s, header, token),
          now: this.now,
          onEnd: (s) => this.receiveEnded(s),
          stats: core.stats,
          log: core.log,
        },
        this.o,
      );
    } catch (e) {
      core.log.warn({ leader: from, err: (e as Error).message }, "cannot open a snapshot installer");
      this.sendTo(from, { kind: CatchUpKind.Abort, sessionId, reason: "the installer cannot open" });
      return;
    }
    this.receiving = session;
    this.ensureSweep();
    core.log.info({ leader: from, session: sessionId, term }, "receiving snapshot stream");
    session.accept();
  }

  private toReceiver(from: NodeId, f: CatchUpFrame): void {
    const r = this.receiving;
    if (r && r.from === from && r.sessionId === f.sessionId) {
      r.onFrame(f);
      return;
    }
    // A session we do not have (replaced, aborted, or from before a restart):
    // tell the leader once, so that it stops instead of waiting for its timeout.
    const refused = this.lastRefused;
    if (refused?.from === from && refused.sessionId === f.sessionId) return;
    this.lastRefused = { from, sessionId: f.sessionId };
    this.sendTo(from, { kind: CatchUpKind.Abort, sessionId: f.sessionId, reason: "unknown session" });
  }

  /** Steps the finished stream into the core as a one-chunk snapshot message. */
  private install(s: ReceiveSession, header: StreamHeader, token: Uint8Array): boolean {
    const { core } = this.d;
    const data = encodeSnapshot(header.members, token);
    const m = newMessage(MessageType.Snap, {
      from: s.from,
      to: core.id,
      term: s.term,
      snapshot: {
        metadata: { index: header.index, term: header.term, conf: header.conf },
        offset: 0,
        totalBytes: data.length,
        data,
        done: true,
      },
    });
    const rd = core.step(m);
    const installing = rd?.snapshot?.metadata.index === header.index;
    if (installing) this.pendingInstall = header.index;
    return installing;
  }

  private receiveEnded(s: ReceiveSession): void {
    // A finished session stays (to answer a re-sent END); an aborted one goes.
    if (this.receiving === s && s.aborted) this.receiving = undefined;
    this.stopSweepIfIdle();
  }

  // ---- timers ---------------------------------------------------------------------

  private ensureSweep(): void {
    if (this.sweepTimer || this.stopped) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.o.sweepMs);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    const now = this.now();
    const { core } = this.d;
    for (const s of [...this.sending.values()]) s.tick(now);
    const r = this.receiving;
    if (r?.active) {
      if (core.term() > r.term) r.abort(`the term moved on to ${core.term()}`, false);
      else r.tick(now);
    }
    this.stopSweepIfIdle();
  }

  private stopSweepIfIdle(): void {
    if (this.sending.size > 0 || this.receiving?.active) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private sendTo(peer: NodeId, f: CatchUpFrame): void {
    this.d.transport.sendApp(peer, encodeCatchUp(f));
  }
}
