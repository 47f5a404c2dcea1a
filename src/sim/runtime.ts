// The runtime of one node incarnation: the Ready contract of docs/raft-core.md,
// with asynchronous (pipelined) writes. Each Ready the node hands out is queued;
// later, in order, it is persisted (then its messages go out), applied (the
// durable apply, with its membership), and advanced — and the Ready that
// `advance` returns joins the queue. A crash drops the queue: everything not yet
// written to the disk, and every message not yet sent.

import type { ConfState, Entry, Message, RaftNode, Ready } from "../raft/index.ts";
import type { NodeDisk } from "./disk.ts";
import { InvariantViolation } from "./failure.ts";
import type { Invariants } from "./invariants.ts";
import { LogMirror } from "./log-mirror.ts";
import { describeReady } from "./trace.ts";

/** Readies a node may have handed out and not yet advanced. */
export const MAX_PIPELINED_READIES = 64;
/** Writes and applies in one drain at most: far more than any run's log needs, so hitting it means a loop. */
const MAX_DRAIN_STEPS = 1_000_000;

export interface RuntimeEnv {
  invariants: Invariants;
  send(m: Message): void;
  /** The node's role right now (for B26). */
  isLeader(): boolean;
  /** An entry was applied (durably, with the rest of its Ready's). */
  onApplied(e: Entry): void;
  /** A membership was applied. */
  onConfApplied(cs: ConfState): void;
  trace(line: () => string): void;
}

interface Pending {
  ready: Ready;
  persisted: boolean;
}

export class NodeRuntime {
  readonly id: number;
  readonly node: RaftNode;
  readonly disk: NodeDisk;
  readonly mirror: LogMirror;
  private readonly env: RuntimeEnv;
  private readonly queue: Pending[] = [];
  private draining = false;
  readies = 0;

  constructor(id: number, node: RaftNode, disk: NodeDisk, env: RuntimeEnv) {
    this.id = id;
    this.node = node;
    this.disk = disk;
    this.env = env;
    this.mirror = LogMirror.fromStorage(disk.storage);
  }

  pipelined(): number {
    return this.queue.length;
  }

  /** Takes a Ready the node just handed out: immediate messages go at once. */
  accept(ready: Ready | null): void {
    if (ready === null) return;
    this.readies++;
    const inv = this.env.invariants;
    if (ready.snapshot !== undefined)
      this.mirror.reset(ready.snapshot.metadata.index, ready.snapshot.metadata.term);
    inv.entriesHandedOut(this.id, ready.entries, this.mirror, this.env.isLeader());
    this.mirror.append(ready.entries);
    for (const rs of ready.readStates) inv.readState(this.id, rs);
    this.env.trace(() => describeReady(this.id, ready));
    for (const m of ready.immediateMessages) this.env.send(m);
    this.queue.push({ ready, persisted: false });
    // Bounded pipeline: a runtime that falls this far behind writes everything out.
    if (this.queue.length > MAX_PIPELINED_READIES && !this.draining) this.drain();
  }

  /** Persists the oldest unpersisted Ready, then sends its messages. False if there is none it may write now. */
  persistOne(): boolean {
    const at = this.queue.findIndex((p) => !p.persisted);
    if (at < 0) return false;
    const p = this.queue[at]!;
    const r = p.ready;
    if (!r.mustSync && (r.entries.length > 0 || r.snapshot !== undefined || this.termOrVoteChanged(r))) {
      throw new InvariantViolation(
        "B36",
        `node ${this.id} hands out a Ready with mustSync false that needs a sync`,
      );
    }
    if (r.snapshot !== undefined) {
      // The snapshot replaces the state machine, so earlier Readies must be applied first.
      if (at > 0) return false;
      const sm = this.disk.installSnapshot(r.snapshot);
      this.env.invariants.snapshotRestored(this.id, r.snapshot.metadata.term, sm);
    }
    this.disk.write(r.entries, r.hardState, r.mustSync);
    p.persisted = true;
    for (const m of r.messages) this.env.send(m);
    return true;
  }

  private termOrVoteChanged(r: Ready): boolean {
    const hs = r.hardState;
    if (hs === undefined) return false;
    const last = this.disk.lastHardState;
    return hs.term !== last.term || hs.vote !== last.vote;
  }

  /** Applies and advances the oldest Ready if it is persisted. */
  applyOne(): boolean {
    const p = this.queue[0];
    if (p === undefined || !p.persisted) return false;
    this.queue.shift();
    const r = p.ready;
    if (r.committedEntries.length > 0 || r.confState !== undefined) {
      const sm = this.disk.sm.clone();
      for (const e of r.committedEntries) {
        const before = sm.applied;
        sm.apply(e);
        this.env.invariants.applied(this.id, e, before, sm);
      }
      this.disk.commitApply(sm, r.confState);
      for (const e of r.committedEntries) this.env.onApplied(e);
      if (r.confState !== undefined) this.env.onConfApplied(r.confState);
    }
    this.accept(this.node.advance(r));
    return true;
  }

  /** Persists, applies and advances everything handed out so far. */
  drain(): void {
    this.draining = true;
    try {
      for (let guard = 0; guard < MAX_DRAIN_STEPS; guard++) {
        if (!this.persistOne() && !this.applyOne()) return;
      }
    } finally {
      this.draining = false;
    }
    throw new Error(`node ${this.id}: Readies keep coming after ${MAX_DRAIN_STEPS} writes and applies`);
  }

  /** Does a random part of the pending work (asynchronous writes). */
  workSome(persists: number, applies: number): void {
    for (let i = 0; i < persists; i++) if (!this.persistOne()) break;
    for (let i = 0; i < applies; i++) if (!this.applyOne()) break;
  }
}
