// The Storage interface the core reads its durable state from, and MemoryStorage,
// the in-memory implementation used by the pure tests, the simulator and the
// micro-benchmark. The LMDB implementation (src/storage) passes the same contract
// tests (test/raft/storage-contract.ts).
//
// The core only *reads* storage. The runtime writes to it, in Ready order:
// applySnapshot, append, setHardState, setConfState; and it creates snapshots
// and compacts the log when it decides to.

import { RaftError } from "./errors.ts";
import {
  type ConfState,
  type Entry,
  emptyConfState,
  entryWireSize,
  type HardState,
  type Snapshot,
} from "./types.ts";

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  /** Durable hard state and the membership as of the applied index. */
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at most `maxBytes` of them by entryWireSize but always
   * at least one. Throws COMPACTED if lo < firstIndex, UNAVAILABLE if hi > lastIndex + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /**
   * Term of the entry at `index`. firstIndex - 1 (the snapshot's index) is allowed.
   * Throws COMPACTED below that, UNAVAILABLE above lastIndex.
   */
  term(index: number): number;
  /** Index of the first entry kept (snapshot index + 1). */
  firstIndex(): number;
  /** Index of the last entry (snapshot index when the log is empty). */
  lastIndex(): number;
  /** The latest snapshot (index 0 and empty data when there is none). */
  snapshot(): Snapshot;

  /** Appends entries; any stored entries at or after entries[0].index are replaced. */
  append(entries: Entry[]): void;
  setHardState(hs: HardState): void;
  setConfState(cs: ConfState): void;
  /** Replaces everything with the snapshot: the log restarts after its index. */
  applySnapshot(snap: Snapshot): void;
  /** Records a snapshot of the application's state at `index` (<= applied). */
  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot;
  /**
   * Discards the log through `index` (<= the last applied index), keeping its
   * term: afterwards firstIndex() is index + 1 and term(index) still answers.
   */
  compact(index: number): void;
}

export function cloneConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    learners: [...cs.learners],
    votersOutgoing: [...cs.votersOutgoing],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}

/**
 * Keeps the log in an array whose slot 0 is a dummy entry at the snapshot's
 * (index, term). Not durable: the simulator models crashes by keeping a
 * MemoryStorage per node as its "disk" and dropping what was not written to it.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private confState: ConfState;
  private snap: Snapshot;
  /** ents[0] is the dummy at the snapshot position. */
  private ents: Entry[];

  constructor(voters: number[] = [], learners: number[] = []) {
    this.confState = { ...emptyConfState(), voters: [...voters], learners: [...learners] };
    this.snap = {
      metadata: { index: 0, term: 0, conf: cloneConfState(this.confState) },
      data: new Uint8Array(),
    };
    this.ents = [{ term: 0, index: 0, type: 0, data: new Uint8Array(), crc: 0 }];
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.confState) };
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  term(index: number): number {
    const off = this.offset();
    if (index < off) throw new RaftError("COMPACTED", `term(${index}): compacted before ${off}`);
    if (index > this.lastIndex())
      throw new RaftError("UNAVAILABLE", `term(${index}): last is ${this.lastIndex()}`);
    return this.ents[index - off]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const off = this.offset();
    if (lo <= off) throw new RaftError("COMPACTED", `entries(${lo}): compacted before ${off + 1}`);
    if (hi > this.lastIndex() + 1) {
      throw new RaftError("UNAVAILABLE", `entries(${lo}, ${hi}): last is ${this.lastIndex()}`);
    }
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - off]!;
      bytes += entryWireSize(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return; // all already compacted
    // Drop the part that is already compacted.
    let es = entries;
    if (first > es[0]!.index) es = es.slice(first - es[0]!.index);
    const at = es[0]!.index - this.offset();
    if (at > this.ents.length) {
      throw new RaftError("UNAVAILABLE", `append at ${es[0]!.index} leaves a gap after ${this.lastIndex()}`);
    }
    this.ents.length = at;
    for (const e of es) this.ents.push(e);
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  setConfState(cs: ConfState): void {
    this.confState = cloneConfState(cs);
  }

  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.snap.metadata.index) {
      throw new RaftError(
        "SNAPSHOT_OUT_OF_DATE",
        `snapshot ${snap.metadata.index} < ${this.snap.metadata.index}`,
      );
    }
    this.snap = snap;
    this.confState = cloneConfState(snap.metadata.conf);
    this.ents = [
      { term: snap.metadata.term, index: snap.metadata.index, type: 0, data: new Uint8Array(), crc: 0 },
    ];
  }

  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) {
      throw new RaftError("SNAPSHOT_OUT_OF_DATE", `snapshot ${index} <= ${this.snap.metadata.index}`);
    }
    if (index > this.lastIndex()) {
      throw new RaftError("UNAVAILABLE", `snapshot ${index} > last ${this.lastIndex()}`);
    }
    const term = this.term(index);
    this.snap = { metadata: { index, term, conf: cloneConfState(conf) }, data };
    return this.snap;
  }

  compact(index: number): void {
    const off = this.offset();
    if (index <= off) return;
    if (index > this.lastIndex())
      throw new RaftError("UNAVAILABLE", `compact(${index}) > last ${this.lastIndex()}`);
    const e = this.ents[index - off]!;
    // Keep entry `index` as the new dummy so term(index) still answers (B44).
    const rest = this.ents.slice(index - off + 1);
    this.ents = [{ term: e.term, index: e.index, type: 0, data: new Uint8Array(), crc: 0 }];
    for (const x of rest) this.ents.push(x);
  }
}
