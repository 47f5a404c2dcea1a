// The node runtime: drives the pure Raft core with a real clock, real storage
// and a real transport. Every Ready is handled as
//   send immediate -> persist and apply (one LMDB transaction for all Readies
//   taken together, one fsync) -> send -> advance,
// without ever blocking the event loop on the fsync: while a write is in
// flight, ticks, messages and proposals keep arriving and their Readies queue
// up to be written together in the next batch (group commit).

import { EventEmitter } from "node:events";
import {
  type ConfChange,
  ConfChangeType,
  decodeConfChange,
  type Entry,
  EntryType,
  isRaftError,
  type Message,
  MessageType,
  type NodeId,
  type RaftConfig,
  RaftNode,
  type Ready,
  Role,
  type Status,
} from "../raft/index.ts";
import { CodedError, toCodedError } from "./coded-error.ts";
import { decodeEnvelope, EnvelopeKind, encodeEnvelope } from "./envelope.ts";
import { decodeForward, encodeForward, type Forward, ForwardKind } from "./forward.ts";
import {
  type AddressBook,
  decodeSnapshot,
  encodeSnapshot,
  loadAddressBook,
  type MemberAddress,
  saveAddressBook,
} from "./members.ts";
import type { DurableStorage, Logger, PeerTransport } from "./ports.ts";
import { silentLogger } from "./ports.ts";
import type { StateMachine } from "./state-machine.ts";

export type RuntimeErrorCode =
  | "NO_LEADER"
  | "BACKPRESSURE"
  | "COMMIT_TIMEOUT"
  | "CHANGE_IN_PROGRESS"
  | "STOPPED";

/** Readies queued behind an in-flight write before peer messages are dropped. */
const MAX_QUEUED_READIES = 10_000;
/** A group-commit fsync at least this long is logged as a warning. */
const SLOW_SYNC_SECONDS = 0.1;

export class RuntimeError extends CodedError {
  constructor(code: RuntimeErrorCode, message: string) {
    super(code, message);
    this.name = "RuntimeError";
  }
}

export interface RuntimeOptions<R> {
  id: NodeId;
  /** Initial voters other than this node, with the address to dial each at. */
  peers: Map<NodeId, string>;
  /** This node's own addresses, announced to the cluster. */
  self: { raft: string; http: string };
  /** Start as an empty node that waits to be added, instead of bootstrapping. */
  join?: boolean;
  storage: DurableStorage;
  stateMachine: StateMachine<R>;
  transport: PeerTransport;
  logger?: Logger;
  tickMs?: number;
  /** Raft core settings (electionTick, heartbeatTick, ...). */
  raft?: Partial<Omit<RaftConfig, "id" | "peers" | "storage" | "applied">>;
  /** Take a snapshot and compact once this many entries are applied past the first index. */
  snapshotEntries?: number;
  /** Entries kept before the snapshot index for slow followers. */
  compactionMarginEntries?: number;
  /** Proposals waiting for the next batch: beyond either bound, BACKPRESSURE. */
  maxPendingProposals?: number;
  maxPendingBytes?: number;
  defaultTimeoutMs?: number;
}

interface Waiter<R> {
  resolve: (r: R) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  bytes: number;
}

interface ReadWaiter {
  resolve: (index: number) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  index: number;
}

export interface RuntimeEvents<R> {
  /** An application command was applied (on every node). */
  applied: [index: number, result: R];
  /** Leadership or role changed. */
  role: [role: Role, leader: NodeId];
}

export class Runtime<R = unknown> extends EventEmitter {
  readonly id: NodeId;
  private readonly o: Required<Omit<RuntimeOptions<R>, "logger" | "raft" | "join">> & {
    raft: RuntimeOptions<R>["raft"];
    join: boolean;
  };
  private readonly log: Logger;
  private node!: RaftNode;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly readyQueue: Ready[] = [];
  private draining = false;
  private stopped = false;
  private drainDone: Promise<void> = Promise.resolve();

  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  /**
   * Request ids match applied entries to waiting clients, so they must not
   * repeat across restarts (an old entry of this node, committed after a
   * restart, must not answer a new request): start from the clock (ms × 1024,
   * plus noise), well below 2^53.
   */
  private nextRequestId = Date.now() * 1024 + Math.floor(Math.random() * 1024);
  private readonly waiters = new Map<number, Waiter<R>>();
  private readonly reads = new Map<string, ReadWaiter>();
  private readonly readsWaitingApply: ReadWaiter[] = [];
  private readSeq = 0;

  /** The address book: every member's raft and http address. */
  private members: AddressBook = new Map();
  private removedSelf = false;
  leader: NodeId = 0;
  role: Role = Role.Follower;
  /** Duration of the last group-commit fsync. */
  private lastSyncSeconds = 0;
  readonly stats = {
    readies: 0,
    droppedMessages: 0,
    batches: 0,
    syncs: 0,
    appliedEntries: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
  };

  constructor(opts: RuntimeOptions<R>) {
    super();
    this.id = opts.id;
    this.log = opts.logger ?? silentLogger;
    this.o = {
      id: opts.id,
      peers: opts.peers,
      self: opts.self,
      join: opts.join ?? false,
      storage: opts.storage,
      stateMachine: opts.stateMachine,
      transport: opts.transport,
      tickMs: opts.tickMs ?? 50,
      raft: opts.raft,
      snapshotEntries: opts.snapshotEntries ?? 100_000,
      compactionMarginEntries:
        opts.compactionMarginEntries ?? Math.min(1_000, Math.floor((opts.snapshotEntries ?? 100_000) / 10)),
      maxPendingProposals: opts.maxPendingProposals ?? 100_000,
      maxPendingBytes: opts.maxPendingBytes ?? 64 * 1024 * 1024,
      defaultTimeoutMs: opts.defaultTimeoutMs ?? 10_000,
    };
  }

  // ---- lifecycle -------------------------------------------------------------

  start(): void {
    const { storage, stateMachine: sm, transport } = this.o;
    const applied = sm.appliedIndex();
    const hasState = storage.lastIndex() > 0 || storage.initialState().confState.voters.length > 0;
    const peers = this.o.join || hasState ? [] : [this.id, ...this.o.peers.keys()];
    this.members = loadAddressBook(storage);
    // Our own record enters the book only through the log (announceSelf), so
    // every member learns it; peers' dial addresses come from --peers.
    if (!hasState && !this.o.join) {
      for (const [id, raft] of this.o.peers) this.members.set(id, { raft, http: "" });
    }
    // Initial voters are dialled at --peers addresses; later members at their record's.
    for (const [id, m] of this.members) if (id !== this.id && m.raft) transport.setPeer(id, m.raft);
    for (const [id, addr] of this.o.peers) transport.setPeer(id, addr);
    this.node = new RaftNode({
      electionTick: 10,
      heartbeatTick: 2,
      ...this.o.raft,
      id: this.id,
      peers,
      storage,
      applied,
      seed: (this.id * 2654435761 + Date.now()) >>> 0,
    });
    transport.onMessage((m) => this.onMessage(m));
    transport.onApp((from, payload) => this.onApp(from, payload));
    transport.onUnreachable((peer) => this.enqueue(this.node.reportUnreachable(peer)));
    this.tickTimer = setInterval(() => this.enqueue(this.node.tick()), this.o.tickMs);
    this.enqueue(this.node.ready());
    this.log.info(
      { id: this.id, applied, lastIndex: storage.lastIndex(), join: this.o.join },
      "raft runtime started",
    );
  }

  /** Stops ticking and proposing, waits for in-flight writes, closes transport and storage. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(new RuntimeError("STOPPED", "node is shutting down"));
    }
    this.waiters.clear();
    for (const r of [...this.reads.values(), ...this.readsWaitingApply]) {
      clearTimeout(r.timer);
      r.reject(new RuntimeError("STOPPED", "node is shutting down"));
    }
    this.reads.clear();
    this.readsWaitingApply.length = 0;
    await this.drainDone;
    await this.o.transport.close();
    await this.o.storage.flush();
    await this.o.storage.close();
  }

  // ---- inputs ----------------------------------------------------------------

  private onMessage(m: Message): void {
    if (this.stopped) return;
    // Bound the Readies waiting behind a slow write: past the bound, peer
    // messages are dropped (Raft retransmits) instead of queueing without end.
    if (this.readyQueue.length >= MAX_QUEUED_READIES) {
      this.stats.droppedMessages++;
      return;
    }
    this.enqueue(this.node.step(m));
  }

  /** Requests forwarded by followers, and the leader's refusals of ours. */
  private onApp(from: NodeId, payload: Uint8Array): void {
    if (this.stopped) return;
    let f: Forward;
    try {
      f = decodeForward(payload);
    } catch (e) {
      this.log.warn({ peer: from, err: (e as Error).message }, "malformed forwarded request");
      return;
    }
    if (f.kind === ForwardKind.Refusal) {
      const w = this.waiters.get(f.requestId);
      if (!w) return;
      this.waiters.delete(f.requestId);
      clearTimeout(w.timer);
      w.reject(f.error);
      return;
    }
    const refuse = (error: CodedError) =>
      this.o.transport.sendApp(
        from,
        encodeForward({ kind: ForwardKind.Refusal, requestId: f.requestId, error }),
      );
    if (this.role !== Role.Leader) {
      refuse(new CodedError("NO_LEADER", "the node forwarded to is no longer the leader"));
      return;
    }
    let body: Uint8Array;
    try {
      body = this.prepare(f.request);
    } catch (e) {
      refuse(toCodedError(e));
      return;
    }
    const err = this.enqueueProposal(encodeEnvelope(EnvelopeKind.App, from, f.requestId, body));
    if (err) refuse(err);
  }

  /**
   * Turns a client request into the command that is replicated; runs on the
   * leader only, so leader-decided values (timestamps) are set in one place.
   */
  setPreparer(prepare: (request: Uint8Array) => Uint8Array): void {
    this.prepare = prepare;
  }

  private prepare: (request: Uint8Array) => Uint8Array = (r) => r;

  /**
   * Submits a client request: on the leader it is prepared and proposed; on a
   * follower it is forwarded to the leader over the peer transport. Either way
   * it resolves once the command is committed and applied on this node, with
   * the state machine's result, exactly once per call (no internal retries).
   */
  submit(request: Uint8Array, timeoutMs = this.o.defaultTimeoutMs): Promise<R> {
    if (this.stopped) return Promise.reject(new RuntimeError("STOPPED", "node is shutting down"));
    if (this.removedSelf) return Promise.reject(new RuntimeError("NO_LEADER", "this node was removed"));
    const leader = this.leader;
    if (leader === 0) return Promise.reject(new RuntimeError("NO_LEADER", "no leader is known"));
    if (leader === this.id) {
      let body: Uint8Array;
      try {
        body = this.prepare(request);
      } catch (e) {
        return Promise.reject(e);
      }
      return this.proposeEnvelope(EnvelopeKind.App, body, timeoutMs);
    }
    if (this.waiters.size >= this.o.maxPendingProposals) {
      return Promise.reject(new RuntimeError("BACKPRESSURE", "too many requests waiting"));
    }
    const requestId = this.nextRequestId++;
    const p = this.wait(requestId, timeoutMs, request.length);
    const sent = this.o.transport.sendApp(
      leader,
      encodeForward({ kind: ForwardKind.Request, requestId, request }),
    );
    if (!sent) {
      const w = this.waiters.get(requestId);
      if (w) {
        this.waiters.delete(requestId);
        clearTimeout(w.timer);
        w.reject(new RuntimeError("NO_LEADER", `cannot reach the leader (node ${leader})`));
      }
    }
    return p;
  }

  private wait(requestId: number, timeoutMs: number, bytes: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiters.delete(requestId)) {
          reject(
            new RuntimeError("COMMIT_TIMEOUT", `not applied within ${timeoutMs} ms; it may still commit`),
          );
        }
      }, timeoutMs);
      this.waiters.set(requestId, { resolve, reject, timer, bytes });
    });
  }

  /** Queues an enveloped proposal for the next batch; returns the refusal, if any. */
  private enqueueProposal(data: Uint8Array): CodedError | undefined {
    if (
      this.pending.length >= this.o.maxPendingProposals ||
      this.pendingBytes + data.length > this.o.maxPendingBytes
    ) {
      return new RuntimeError("BACKPRESSURE", "too many proposals waiting");
    }
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushProposals());
    }
    return undefined;
  }

  /**
   * Proposes an application command; resolves with its result once it is
   * committed and applied here. Proposals of one event-loop turn go to Raft
   * as one batch.
   */
  propose(command: Uint8Array, timeoutMs = this.o.defaultTimeoutMs): Promise<R> {
    return this.proposeEnvelope(EnvelopeKind.App, command, timeoutMs);
  }

  private proposeEnvelope(kind: EnvelopeKind, body: Uint8Array, timeoutMs: number): Promise<R> {
    if (this.stopped) return Promise.reject(new RuntimeError("STOPPED", "node is shutting down"));
    if (this.removedSelf) return Promise.reject(new RuntimeError("NO_LEADER", "this node was removed"));
    if (this.leader === 0) return Promise.reject(new RuntimeError("NO_LEADER", "no leader is known"));
    const requestId = this.nextRequestId++;
    const data = encodeEnvelope(kind, this.id, requestId, body);
    const refused = this.enqueueProposal(data);
    if (refused) return Promise.reject(refused);
    return this.wait(requestId, timeoutMs, data.length);
  }

  private flushProposals(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.stopped) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      this.enqueue(this.node.proposeBatch(batch));
    } catch (e) {
      const err = isRaftError(e)
        ? e.code === "UNCOMMITTED_LIMIT"
          ? new RuntimeError("BACKPRESSURE", e.message)
          : new RuntimeError("NO_LEADER", e.message)
        : (e as Error);
      for (const data of batch) {
        const env = decodeEnvelope(data);
        if (!env) continue;
        if (env.origin !== this.id) {
          // A forwarded request: tell the follower that asked.
          const coded = toCodedError(err);
          this.o.transport.sendApp(
            env.origin,
            encodeForward({ kind: ForwardKind.Refusal, requestId: env.requestId, error: coded }),
          );
          continue;
        }
        const w = this.waiters.get(env.requestId);
        if (w) {
          clearTimeout(w.timer);
          this.waiters.delete(env.requestId);
          w.reject(err);
        }
      }
    }
  }

  /**
   * A linearizable read point: resolves once this node has applied everything
   * committed at the time of the call (ReadIndex, confirmed by a quorum).
   */
  readBarrier(timeoutMs = this.o.defaultTimeoutMs): Promise<number> {
    if (this.stopped) return Promise.reject(new RuntimeError("STOPPED", "node is shutting down"));
    const ctx = `${this.id}-${++this.readSeq}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(ctx);
        const i = this.readsWaitingApply.indexOf(w);
        if (i >= 0) this.readsWaitingApply.splice(i, 1);
        reject(new RuntimeError("COMMIT_TIMEOUT", `read not confirmed within ${timeoutMs} ms`));
      }, timeoutMs);
      const w: ReadWaiter = { resolve, reject, timer, index: 0 };
      this.reads.set(ctx, w);
      try {
        this.enqueue(this.node.readIndex(ctx));
      } catch (e) {
        clearTimeout(timer);
        this.reads.delete(ctx);
        reject(new RuntimeError("NO_LEADER", (e as Error).message));
      }
    });
  }

  /** Adds, promotes or removes a member; resolves once the change is applied here. */
  async changeMembership(change: {
    type: "add-voter" | "add-learner" | "remove";
    id: NodeId;
    raft?: string;
    http?: string;
  }): Promise<void> {
    if (this.leader === 0) throw new RuntimeError("NO_LEADER", "no leader is known");
    const type =
      change.type === "add-voter"
        ? ConfChangeType.AddVoter
        : change.type === "add-learner"
          ? ConfChangeType.AddLearner
          : ConfChangeType.RemoveNode;
    const context = new TextEncoder().encode(
      JSON.stringify({ id: change.id, raft: change.raft ?? "", http: change.http ?? "" }),
    );
    const cc: ConfChange = { changes: [{ type, nodeId: change.id }], context };
    const target = this.node.status().commit;
    try {
      this.enqueue(this.node.proposeConfChange(cc));
    } catch (e) {
      if (isRaftError(e, "CHANGE_IN_PROGRESS")) throw new RuntimeError("CHANGE_IN_PROGRESS", e.message);
      if (isRaftError(e, "INVALID_CONF_CHANGE")) throw new CodedError("INVALID_REQUEST", e.message);
      if (isRaftError(e)) throw new RuntimeError("NO_LEADER", e.message);
      throw e;
    }
    // Wait until the configuration reflects the change (or time out).
    const deadline = Date.now() + this.o.defaultTimeoutMs;
    while (Date.now() < deadline) {
      const cs = this.node.status().config;
      const has = cs.voters.includes(change.id) || cs.learners.includes(change.id);
      const isVoter = cs.voters.includes(change.id);
      const done =
        change.type === "remove"
          ? !has
          : change.type === "add-voter"
            ? isVoter
            : cs.learners.includes(change.id);
      if (done && this.node.status().applied > target && cs.votersOutgoing.length === 0) return;
      await new Promise((r) => setTimeout(r, this.o.tickMs));
    }
    throw new RuntimeError("COMMIT_TIMEOUT", "membership change not applied in time");
  }

  /** Sets the HTTP address this node announces (known only after the server listens). */
  setSelfHttp(http: string): void {
    this.o.self = { ...this.o.self, http };
  }

  transferLeadership(to: NodeId): void {
    this.enqueue(this.node.transferLeader(to));
  }

  /** Transfers leadership and resolves once `to` leads (COMMIT_TIMEOUT if it does not in time). */
  async transferLeadershipAndWait(to: NodeId, timeoutMs = this.o.defaultTimeoutMs): Promise<void> {
    this.transferLeadership(to);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.leader === to) return;
      await new Promise((r) => setTimeout(r, this.o.tickMs));
    }
    throw new RuntimeError("COMMIT_TIMEOUT", `node ${to} did not take over leadership in time`);
  }

  status(): Status {
    return this.node.status();
  }

  memberAddresses(): AddressBook {
    return new Map(this.members);
  }

  /** Whether this node knows a leader and has applied what it knows is committed. */
  isReady(): boolean {
    if (this.removedSelf || this.leader === 0) return false;
    const s = this.node.status();
    // The state machine applies before the core hears of it (advance follows the fsync).
    return Math.max(s.applied, this.o.stateMachine.appliedIndex()) >= s.commit;
  }

  lastSyncDurationSeconds(): number {
    return this.lastSyncSeconds;
  }

  // ---- the Ready loop ----------------------------------------------------------

  private enqueue(rd: Ready | null): void {
    if (!rd) return;
    // Sent at once: a leader's appends go out while its own write is in flight.
    for (const m of rd.immediateMessages) this.o.transport.send(m);
    rd.immediateMessages = [];
    this.readyQueue.push(rd);
    if (!this.draining) {
      this.draining = true;
      this.drainDone = this.drain().catch((e) => {
        this.log.error({ err: e }, "raft runtime failed: stopping");
        // Fail loudly: a broken invariant or an I/O error in persistence must not
        // let the node keep acknowledging anything.
        process.exitCode = 70;
        setImmediate(() => {
          throw e;
        });
      });
    }
  }

  private async drain(): Promise<void> {
    const { storage } = this.o;
    try {
      while (this.readyQueue.length > 0) {
        const batch = this.readyQueue.splice(0);
        this.stats.batches++;
        this.stats.readies += batch.length;
        let mustSync = false;
        // 1. Persist every Ready of the batch: these writes form one transaction.
        for (const rd of batch) {
          if (rd.snapshot) this.installSnapshot(rd);
          if (rd.entries.length > 0) storage.append(rd.entries);
          if (rd.hardState) storage.setHardState(rd.hardState);
          if (rd.mustSync) mustSync = true;
        }
        // 2. Apply committed entries without waiting for this batch's fsync: they are
        // already durable on a majority (the core counts an acknowledgement, the
        // leader's own included, only after its fsync), so their clients may be
        // answered now; and the applied state's writes join this same LMDB
        // transaction, after the log's, so they never become durable before the
        // entries they come from. Waiting here would hold every answer for one
        // more fsync (of entries proposed since) after its commit.
        for (const rd of batch) this.applyReady(rd);
        if (mustSync) {
          const t0 = performance.now();
          await storage.flush();
          this.lastSyncSeconds = (performance.now() - t0) / 1000;
          this.stats.syncs++;
          this.emit("sync", this.lastSyncSeconds);
          if (this.lastSyncSeconds >= SLOW_SYNC_SECONDS)
            this.log.warn(
              { seconds: this.lastSyncSeconds, term: this.node.status().term },
              "slow storage sync",
            );
        }
        // 3. Send what depended on that write; take in role changes. 4. Advance.
        for (const rd of batch) {
          for (const m of rd.messages) {
            if (m.type === MessageType.Snap && m.snapshot?.offset === 0)
              this.log.info(
                { peer: m.to, index: m.snapshot.metadata.index, term: m.term },
                "sending snapshot to a lagging peer",
              );
            this.o.transport.send(m);
          }
          this.applySoftState(rd);
          this.takeReadStates(rd);
        }
        for (const rd of batch) {
          const next = this.node.advance(rd);
          if (next) this.enqueue(next);
        }
        this.afterApply();
        // Snapshots are taken here, between batches, so nothing applies meanwhile.
        if (this.o.stateMachine.appliedIndex() - this.o.storage.firstIndex() >= this.o.snapshotEntries) {
          await this.takeSnapshot();
        }
        // Let timers, sockets and proposals in before the next batch.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.draining = false;
    }
  }

  private installSnapshot(rd: Ready): void {
    const snap = rd.snapshot!;
    const { members, state } = decodeSnapshot(snap.data);
    this.o.storage.applySnapshot(snap);
    this.o.stateMachine.restore(state, snap.metadata.index);
    this.members = members;
    saveAddressBook(this.o.storage, members);
    this.syncTransportPeers();
    this.stats.snapshotsInstalled++;
    this.log.info({ index: snap.metadata.index, bytes: snap.data.length }, "installed snapshot");
  }

  /** Applies a Ready's committed entries and the membership they carry (before its fsync). */
  private applyReady(rd: Ready): void {
    // Learning of a leader (or losing one) is taken in at once, with the entries
    // it sent; becoming leader waits for the fsync of the new term and vote.
    if (rd.softState && rd.softState.role !== Role.Leader) {
      this.applySoftState(rd);
      delete rd.softState;
    }
    for (const e of rd.committedEntries) this.applyEntry(e);
    if (rd.confState) {
      this.o.storage.setConfState(rd.confState);
      const cs = rd.confState;
      const member =
        cs.voters.includes(this.id) || cs.learners.includes(this.id) || cs.votersOutgoing.includes(this.id);
      if (!member && (cs.voters.length > 0 || this.removedSelf)) {
        if (!this.removedSelf) this.log.warn({ id: this.id }, "this node was removed from the cluster");
        this.removedSelf = true;
      } else if (member) this.removedSelf = false;
    }
  }

  /** Takes in a Ready's role; a new leader's once its writes are durable (its term and vote). */
  private applySoftState(rd: Ready): void {
    if (rd.softState) {
      const changed = rd.softState.leader !== this.leader || rd.softState.role !== this.role;
      this.leader = rd.softState.leader;
      this.role = rd.softState.role;
      if (changed) {
        this.emit("role", this.role, this.leader);
        const term = this.node.status().term;
        const what =
          this.role === Role.Leader
            ? "became leader"
            : this.role === Role.Follower
              ? this.leader
                ? "following leader"
                : "follower without a leader"
              : "campaigning";
        this.log.info({ role: this.role, leader: this.leader, term }, what);
        if (this.role === Role.Leader) setImmediate(() => this.announceSelf());
      }
    }
  }

  private takeReadStates(rd: Ready): void {
    for (const rs of rd.readStates) {
      const w = this.reads.get(rs.context);
      if (!w) continue;
      this.reads.delete(rs.context);
      w.index = rs.index;
      this.readsWaitingApply.push(w);
    }
  }

  private applyEntry(e: Entry): void {
    const sm = this.o.stateMachine;
    this.stats.appliedEntries++;
    if (e.type === EntryType.ConfChange) {
      this.applyMembershipContext(e);
      this.logConfChange(e);
      sm.skip(e.index);
      return;
    }
    const env = decodeEnvelope(e.data);
    if (!env) {
      sm.skip(e.index);
      return;
    }
    if (env.kind === EnvelopeKind.Members) {
      this.applyAnnouncement(env.body);
      sm.skip(e.index);
      this.settle(env.origin, env.requestId, undefined as R);
      return;
    }
    const result = sm.apply(e.index, env.body);
    this.emit("applied", e.index, result);
    this.settle(env.origin, env.requestId, result);
  }

  private settle(origin: NodeId, requestId: number, result: R): void {
    if (origin !== this.id) return;
    const w = this.waiters.get(requestId);
    if (!w) return;
    this.waiters.delete(requestId);
    clearTimeout(w.timer);
    w.resolve(result);
  }

  private logConfChange(e: Entry): void {
    try {
      const cc = decodeConfChange(e.data);
      const changes = cc.changes.map((c) => `${ConfChangeType[c.type] ?? c.type} ${c.nodeId}`);
      this.log.info(
        { index: e.index, term: e.term, changes: changes.length ? changes : ["leave joint"] },
        "membership change applied",
      );
    } catch {
      // Undecodable: applyMembershipContext ignores it too.
    }
  }

  private applyMembershipContext(e: Entry): void {
    // The ConfChange's context names the member and its addresses.
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      return;
    }
    if (!cc.context || cc.context.length === 0) return;
    try {
      const info = JSON.parse(new TextDecoder().decode(cc.context)) as {
        id: number;
        raft: string;
        http: string;
      };
      const removed = cc.changes.some((c) => c.type === ConfChangeType.RemoveNode && c.nodeId === info.id);
      if (removed) this.members.delete(info.id);
      else {
        const prev = this.members.get(info.id);
        this.members.set(info.id, {
          raft: info.raft || prev?.raft || "",
          http: info.http || prev?.http || "",
        });
      }
      saveAddressBook(this.o.storage, this.members);
      this.syncTransportPeers();
    } catch {
      // Not our context format: nothing to record.
    }
  }

  private applyAnnouncement(body: Uint8Array): void {
    try {
      const a = JSON.parse(new TextDecoder().decode(body)) as { id: number } & MemberAddress;
      // A member announces its listen address, which need not be where peers can
      // reach it (a proxy, NAT, 0.0.0.0): a raft address already on record (the
      // one it was added with, API.md) stays the dial address.
      const prev = this.members.get(a.id);
      this.members.set(a.id, { raft: prev?.raft || a.raft, http: a.http });
      saveAddressBook(this.o.storage, this.members);
      this.syncTransportPeers();
    } catch {
      // malformed announcements are ignored
    }
  }

  private syncTransportPeers(): void {
    for (const [id, m] of this.members) {
      // Initial voters keep the dial address this node was started with.
      if (id === this.id || this.o.peers.has(id) || !m.raft) continue;
      this.o.transport.setPeer(id, m.raft);
    }
  }

  /** The leader (re)announces its own addresses when its record is missing or stale. */
  private announceSelf(): void {
    if (this.stopped || this.role !== Role.Leader) return;
    const mine = this.members.get(this.id);
    // A raft address on record is kept (see applyAnnouncement): only a missing one or a new http matters.
    if (mine?.raft && mine.http === this.o.self.http) return;
    const body = new TextEncoder().encode(JSON.stringify({ id: this.id, ...this.o.self }));
    this.proposeEnvelope(EnvelopeKind.Members, body, this.o.defaultTimeoutMs).catch(() => {});
  }

  /** Followers announce themselves through the leader once one is known. */
  announceIfNeeded(): void {
    const mine = this.members.get(this.id);
    if (this.leader === 0 || (mine?.raft && mine.http === this.o.self.http)) return;
    const body = new TextEncoder().encode(JSON.stringify({ id: this.id, ...this.o.self }));
    this.proposeEnvelope(EnvelopeKind.Members, body, this.o.defaultTimeoutMs).catch(() => {});
  }

  private afterApply(): void {
    const s = this.node.status();
    if (this.readsWaitingApply.length > 0) {
      const still: ReadWaiter[] = [];
      for (const w of this.readsWaitingApply) {
        if (s.applied >= w.index) {
          clearTimeout(w.timer);
          w.resolve(w.index);
        } else still.push(w);
      }
      this.readsWaitingApply.length = 0;
      this.readsWaitingApply.push(...still);
    }
    if (!this.announced && this.leader !== 0 && this.role !== Role.Leader) {
      this.announced = true;
      setImmediate(() => this.announceIfNeeded());
    }
  }

  private announced = false;

  /**
   * Snapshots the state machine and compacts the log. Runs inside the drain
   * loop, between batches: after the flush every apply so far is durable, and
   * nothing applies until it returns, so the snapshot matches appliedIndex().
   */
  private async takeSnapshot(): Promise<void> {
    const { storage, stateMachine: sm } = this.o;
    await storage.flush();
    if (this.stopped) return;
    const index = sm.appliedIndex();
    if (index <= storage.snapshot().metadata.index) return;
    const state = sm.snapshot();
    const data = encodeSnapshot(this.members, state);
    storage.createSnapshot(index, this.node.status().config, data);
    const compactTo = index - this.o.compactionMarginEntries;
    if (compactTo > storage.firstIndex()) storage.compact(compactTo);
    this.stats.snapshotsTaken++;
    this.log.info(
      { index, bytes: data.length, firstIndex: storage.firstIndex() },
      "snapshot taken, log compacted",
    );
  }
}
