// The node runtime: the Ready-loop driver of the pure Raft core, with a real
// clock, real storage and a real transport. Every Ready is handled as
//   send immediate -> persist (one LMDB transaction for all Readies taken
//   together) -> apply -> flush (one fsync) -> send -> advance,
// without ever blocking the event loop on the fsync: while a write is in
// flight, ticks, messages and proposals keep arriving and their Readies queue
// up to be written together in the next batch (group commit). Between batches
// is the drain boundary: everything taken so far is applied, and tasks that
// need the applied state still (a snapshot stream's source, the snapshot
// policy) run there.
//
// The driver only drives. The services around it (assembled by
// create-runtime.ts) do the rest through a narrow handle (core.ts):
// proposals.ts (batching, forwarding, waiting clients), read-barriers.ts
// (ReadIndex), membership.ts (changes, address book, announcements),
// snapshot-policy.ts (local snapshots, compaction) and catchup.ts (snapshot
// streams: the core's Snap messages are handed there, never sent as is).
// The methods below that the broker, HTTP and metrics call delegate to them;
// the role and leader are read-only.

import { EventEmitter } from "node:events";
import {
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type NodeId,
  type RaftConfig,
  RaftNode,
  type Ready,
  Role,
  type Status,
} from "../raft/index.ts";
import { assert } from "./assert.ts";
import type { CatchUp } from "./catchup.ts";
import { isCatchUpFrame } from "./catchup-codec.ts";
import { type Core, newRuntimeStats, type RuntimeStats } from "./core.ts";
import { decodeEnvelope, EnvelopeKind } from "./envelope.ts";
import { type AddressBook, decodeSnapshot, encodeSnapshot } from "./members.ts";
import type { Membership, MembershipChange } from "./membership.ts";
import type { DurableStorage, Logger, PeerTransport } from "./ports.ts";
import { silentLogger } from "./ports.ts";
import type { Proposals } from "./proposals.ts";
import type { ReadBarriers } from "./read-barriers.ts";
import { RuntimeError } from "./runtime-error.ts";
import type { SnapshotPolicy } from "./snapshot-policy.ts";
import type { StateMachine } from "./state-machine.ts";

export { RuntimeError, type RuntimeErrorCode } from "./runtime-error.ts";

/** Readies queued behind an in-flight write before peer messages are dropped. */
const MAX_QUEUED_READIES = 10_000;
/** Tasks waiting for the next drain boundary (catch-up opens one per stream). */
const MAX_BOUNDARY_TASKS = 64;
/** A group-commit fsync at least this long is logged as a warning. */
const SLOW_SYNC_SECONDS = 0.1;

export interface DriverOptions<R> {
  id: NodeId;
  /** The initial voters other than this node (bootstrap only). */
  peers: Map<NodeId, string>;
  /** Start as an empty node that waits to be added, instead of bootstrapping. */
  join: boolean;
  storage: DurableStorage;
  stateMachine: StateMachine<R>;
  transport: PeerTransport;
  logger?: Logger;
  tickMs: number;
  /** Raft core settings (electionTick, heartbeatTick, ...). */
  raft?: Partial<Omit<RaftConfig, "id" | "peers" | "storage" | "applied">>;
  defaultTimeoutMs: number;
}

/** The services the driver hands work to; built by create-runtime.ts from the driver's Core handle. */
export interface RuntimeServices<R> {
  proposals: Proposals<R>;
  reads: ReadBarriers;
  membership: Membership;
  snapshots: SnapshotPolicy;
  catchUp: CatchUp;
}

export interface RuntimeEvents<R> {
  /** An application command was applied (on every node). */
  applied: [index: number, result: R];
  /** Leadership or role changed. */
  role: [role: Role, leader: NodeId];
  /** A group-commit fsync finished, in seconds. */
  sync: [seconds: number];
}

export class Runtime<R = unknown> extends EventEmitter<RuntimeEvents<R>> {
  readonly id: NodeId;
  private readonly o: DriverOptions<R>;
  private readonly log: Logger;
  private readonly counters: RuntimeStats = newRuntimeStats();
  private readonly s: RuntimeServices<R>;
  private node: RaftNode | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly readyQueue: Ready[] = [];
  private readonly boundaryTasks: (() => void)[] = [];
  private draining = false;
  private stopped = false;
  private drainDone: Promise<void> = Promise.resolve();
  private leaderNow: NodeId = 0;
  private roleNow: Role = Role.Follower;
  private termNow = 0;
  /** Duration of the last group-commit fsync. */
  private lastSyncSeconds = 0;

  constructor(o: DriverOptions<R>, build: (core: Core) => RuntimeServices<R>) {
    super();
    this.id = o.id;
    this.o = o;
    this.log = o.logger ?? silentLogger;
    const core: Core = {
      id: o.id,
      log: this.log,
      stats: this.counters,
      leaderId: () => this.leaderNow,
      role: () => this.roleNow,
      term: () => this.termNow,
      isStopped: () => this.stopped,
      status: () => this.raft().status(),
      act: (op) => this.act(op),
      step: (m) => this.act((node) => node.step(m)),
      atBoundary: (task) => this.atBoundary(task),
    };
    this.s = build(core);
  }

  // ---- read-only status --------------------------------------------------------

  /** Counters (GET /internal/status, metrics). */
  get stats(): Readonly<RuntimeStats> {
    return this.counters;
  }

  /** The leader this node knows (0: none). */
  get leader(): NodeId {
    return this.leaderNow;
  }

  get role(): Role {
    return this.roleNow;
  }

  leaderId(): NodeId {
    return this.leaderNow;
  }

  isLeader(): boolean {
    return this.roleNow === Role.Leader;
  }

  status(): Status {
    return this.raft().status();
  }

  memberAddresses(): AddressBook {
    return this.s.membership.addresses();
  }

  /** Whether this node knows a leader and has applied what it knows is committed. */
  isReady(): boolean {
    if (this.s.membership.removed() || this.leaderNow === 0) return false;
    const st = this.raft().status();
    // The state machine applies before the core hears of it (advance follows the fsync).
    return Math.max(st.applied, this.o.stateMachine.appliedIndex()) >= st.commit;
  }

  lastSyncDurationSeconds(): number {
    return this.lastSyncSeconds;
  }

  // ---- the services' entry points ----------------------------------------------

  submit(request: Uint8Array, timeoutMs?: number): Promise<R> {
    return this.s.proposals.submit(request, timeoutMs);
  }

  propose(command: Uint8Array, timeoutMs?: number): Promise<R> {
    return this.s.proposals.propose(command, timeoutMs);
  }

  setPreparer(prepare: (request: Uint8Array) => Uint8Array): void {
    this.s.proposals.setPreparer(prepare);
  }

  readBarrier(timeoutMs?: number): Promise<number> {
    return this.s.reads.readBarrier(timeoutMs);
  }

  changeMembership(change: MembershipChange): Promise<void> {
    return this.s.membership.change(change);
  }

  /** Sets the HTTP address this node announces (known only after the server listens). */
  setSelfHttp(http: string): void {
    this.s.membership.setSelfHttp(http);
  }

  transferLeadership(to: NodeId): void {
    this.act((node) => node.transferLeader(to));
  }

  /** Transfers leadership and resolves once `to` leads (COMMIT_TIMEOUT if it does not in time). */
  async transferLeadershipAndWait(to: NodeId, timeoutMs = this.o.defaultTimeoutMs): Promise<void> {
    this.transferLeadership(to);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.leaderNow === to) return;
      await new Promise((r) => setTimeout(r, this.o.tickMs));
    }
    throw new RuntimeError("COMMIT_TIMEOUT", `node ${to} did not take over leadership in time`);
  }

  // ---- lifecycle -------------------------------------------------------------

  start(): void {
    const { storage, stateMachine: sm, transport } = this.o;
    assert(!this.node, "the runtime starts once");
    const applied = sm.appliedIndex();
    const initial = storage.initialState();
    const hasState = storage.lastIndex() > 0 || initial.confState.voters.length > 0;
    const voters = this.o.join || hasState ? [] : [this.id, ...this.o.peers.keys()];
    this.termNow = initial.hardState.term;
    this.s.membership.start(hasState);
    this.node = new RaftNode({
      electionTick: 10,
      heartbeatTick: 2,
      ...this.o.raft,
      id: this.id,
      peers: voters,
      storage,
      applied,
      seed: (this.id * 2654435761 + Date.now()) >>> 0,
    });
    transport.onMessage((m) => this.onMessage(m));
    transport.onApp((from, payload) => this.onApp(from, payload));
    transport.onUnreachable((peer) => {
      if (!this.stopped) this.act((node) => node.reportUnreachable(peer));
    });
    this.tickTimer = setInterval(() => this.act((node) => node.tick()), this.o.tickMs);
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
    this.s.proposals.stop();
    this.s.reads.stop();
    this.s.catchUp.stop(); // closes snapshot sources before storage closes
    await this.drainDone;
    await this.o.transport.close();
    await this.o.storage.flush();
    await this.o.storage.close();
  }

  // ---- inputs ----------------------------------------------------------------

  private raft(): RaftNode {
    assert(this.node, "the runtime is started");
    return this.node;
  }

  /** Every input to the core goes through here: after stop() there is none. */
  private act(op: (node: RaftNode) => Ready | null): Ready | null {
    if (this.stopped) throw new RuntimeError("STOPPED", "node is shutting down");
    const rd = op(this.raft());
    this.enqueue(rd);
    return rd;
  }

  private onMessage(m: Message): void {
    if (this.stopped) return;
    if (m.type === MessageType.Snap) {
      // Snapshots arrive as catch-up streams (catchup.ts); a peer's Snap message
      // carries no state to install.
      this.log.debug({ peer: m.from }, "snapshot message from a peer ignored: snapshots are streamed");
      return;
    }
    // Bound the Readies waiting behind a slow write: past the bound, peer
    // messages are dropped (Raft retransmits) instead of queueing without end.
    if (this.readyQueue.length >= MAX_QUEUED_READIES) {
      this.counters.droppedMessages++;
      return;
    }
    this.enqueue(this.raft().step(m));
  }

  /** APP payloads: catch-up frames (first byte >= 16) or forwarded requests and refusals. */
  private onApp(from: NodeId, payload: Uint8Array): void {
    if (this.stopped) return;
    if (isCatchUpFrame(payload)) this.s.catchUp.onFrame(from, payload);
    else this.s.proposals.onForward(from, payload);
  }

  /** Raft messages go to the transport, except Snap: the catch-up service streams instead. */
  private send(m: Message): void {
    if (m.type === MessageType.Snap) this.s.catchUp.onSnap(m);
    else this.o.transport.send(m);
  }

  private atBoundary(task: () => void): void {
    assert(this.boundaryTasks.length < MAX_BOUNDARY_TASKS, "boundary tasks within their bound");
    this.boundaryTasks.push(task);
    this.kick();
  }

  // ---- the Ready loop ----------------------------------------------------------

  private enqueue(rd: Ready | null): void {
    if (!rd) return;
    // Sent at once: a leader's appends go out while its own write is in flight.
    for (const m of rd.immediateMessages) this.send(m);
    rd.immediateMessages = [];
    this.readyQueue.push(rd);
    this.kick();
  }

  private kick(): void {
    if (this.draining) return;
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

  private hasBoundaryWork(): boolean {
    return this.boundaryTasks.length > 0 || (!this.stopped && this.s.snapshots.hasWork());
  }

  private async drain(): Promise<void> {
    try {
      while (this.readyQueue.length > 0 || this.hasBoundaryWork()) {
        if (this.readyQueue.length > 0) await this.handleBatch(this.readyQueue.splice(0));
        await this.boundary();
        // Let timers, sockets and proposals in before the next batch.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.draining = false;
    }
  }

  /** One batch: persist, apply, fsync, send, advance. */
  private async handleBatch(batch: Ready[]): Promise<void> {
    const { storage } = this.o;
    const node = this.raft();
    this.counters.batches++;
    this.counters.readies += batch.length;
    let mustSync = false;
    // 1. Persist every Ready of the batch: these writes form one transaction.
    for (const rd of batch) {
      if (rd.snapshot) this.installSnapshot(rd);
      if (rd.entries.length > 0) {
        storage.append(rd.entries);
        this.s.snapshots.noteAppend(rd.entries);
      }
      if (rd.hardState) {
        storage.setHardState(rd.hardState);
        this.termNow = rd.hardState.term;
      }
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
      this.counters.syncs++;
      this.emit("sync", this.lastSyncSeconds);
      if (this.lastSyncSeconds >= SLOW_SYNC_SECONDS)
        this.log.warn({ seconds: this.lastSyncSeconds, term: this.termNow }, "slow storage sync");
    }
    // 3. Send what depended on that write; take in role changes. 4. Advance.
    for (const rd of batch) {
      for (const m of rd.messages) this.send(m);
      this.applySoftState(rd);
      this.s.reads.take(rd.readStates);
    }
    for (const rd of batch) {
      const next = node.advance(rd);
      if (next) this.enqueue(next);
    }
    this.s.reads.afterApply(() => node.status().applied);
    this.s.membership.afterApply();
  }

  /** The drain boundary: tasks (after a flush), then the snapshot policy. */
  private async boundary(): Promise<void> {
    if (this.boundaryTasks.length > 0) {
      // Every applied write durable, and nothing applies until the tasks return.
      await this.o.storage.flush();
      const tasks = this.boundaryTasks.splice(0);
      if (!this.stopped) for (const task of tasks) task();
    }
    if (!this.stopped) this.s.snapshots.atBoundary();
  }

  /**
   * The commit point of a snapshot received as a stream: the log restarts after
   * its index and the state machine swaps in what the installer staged, in the
   * same LMDB batch. The local snapshot keeps only the address book.
   */
  private installSnapshot(rd: Ready): void {
    const snap = rd.snapshot!;
    const { members, state: token } = decodeSnapshot(snap.data);
    const index = snap.metadata.index;
    this.o.storage.applySnapshot({
      metadata: snap.metadata,
      data: encodeSnapshot(members, new Uint8Array()),
    });
    this.o.stateMachine.restore(token, index);
    this.s.membership.install(members);
    this.s.snapshots.noteInstalled(index);
    this.s.catchUp.installed(index);
    this.counters.snapshotsInstalled++;
    this.log.info({ index, term: snap.metadata.term }, "installed snapshot");
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
      this.s.membership.onConfState(rd.confState);
    }
  }

  private applyEntry(e: Entry): void {
    const sm = this.o.stateMachine;
    this.counters.appliedEntries++;
    if (e.type === EntryType.ConfChange) {
      this.s.membership.applyConfChange(e);
      sm.skip(e.index);
      return;
    }
    const env = decodeEnvelope(e.data);
    if (!env) {
      sm.skip(e.index); // a leader's empty entry
      return;
    }
    if (env.kind === EnvelopeKind.Members) {
      this.s.membership.applyAnnouncement(env.body);
      sm.skip(e.index);
      this.s.proposals.settle(env.origin, env.requestId, undefined as R);
      return;
    }
    const result = sm.apply(e.index, env.body);
    this.emit("applied", e.index, result);
    this.s.proposals.settle(env.origin, env.requestId, result);
  }

  /** Takes in a Ready's role; a new leader's once its writes are durable (its term and vote). */
  private applySoftState(rd: Ready): void {
    if (!rd.softState) return;
    const { leader, role } = rd.softState;
    if (leader === this.leaderNow && role === this.roleNow) return;
    this.leaderNow = leader;
    this.roleNow = role;
    this.emit("role", role, leader);
    const what =
      role === Role.Leader
        ? "became leader"
        : role === Role.Follower
          ? leader
            ? "following leader"
            : "follower without a leader"
          : "campaigning";
    this.log.info({ role, leader, term: this.raft().status().term }, what);
    this.s.membership.onRole(role);
    this.s.catchUp.onRole(role, leader);
  }
}
