// Snapshot policy and log compaction.
//
// A local snapshot is metadata only (applied index, its term, membership, the
// address book): the state machine's data is durable in LMDB as it is applied,
// so taking one is O(1) and needs no flush (its write joins the same LMDB
// batch as the applies it describes, after them). One is taken every
// `snapshotEntries` applied entries, and whenever the byte margin would let
// compaction go past the last one (with large batched entries the log passes
// its byte margin long before it has that many entries).
//
// The log is compacted to the largest index C with
//   C <= the snapshot's index          (term(C) and the snapshot stay answerable)
//   C <= applied - marginEntries       (a follower a little behind replicates)
//   bytes appended after C >= marginBytes  (one restarted within minutes too)
//   C <= every snapshot stream's index (catch-up's floor: a follower that just
//                                       installed A replicates from A + 1)
// in slices of at most MAX_COMPACT_ENTRIES_PER_TURN entries per drain turn,
// so no event-loop turn does work that grows with the log.

import type { Entry } from "../raft/index.ts";
import { AppendedBytes } from "./appended-bytes.ts";
import { assert } from "./assert.ts";
import type { Core } from "./core.ts";
import { type AddressBook, encodeSnapshot } from "./members.ts";
import type { DurableStorage } from "./ports.ts";

/** Where the appended-bytes checkpoints are saved (storage meta). */
const APPENDED_KEY = "appended-bytes";
/** They are saved with a snapshot, at most this often. */
const SAVE_INTERVAL_MS = 5_000;

/** Entries removed from the log per drain turn, at most. */
export const MAX_COMPACT_ENTRIES_PER_TURN = 5_000;

export interface SnapshotPolicyOptions {
  /** Take a snapshot every this many applied entries. */
  snapshotEntries: number;
  /** Entries kept before the applied index. */
  marginEntries: number;
  /** Bytes of log kept after the compaction point (as far as this process counted them). */
  marginBytes: number;
}

export interface SnapshotPolicyDeps {
  core: Pick<Core, "log" | "stats">;
  storage: Pick<
    DurableStorage,
    | "snapshot"
    | "createSnapshot"
    | "compact"
    | "firstIndex"
    | "lastIndex"
    | "initialState"
    | "getMeta"
    | "putMeta"
  >;
  appliedIndex(): number;
  members(): AddressBook;
  /** The highest index compaction may reach for snapshot streams in flight (Infinity: none). */
  compactionFloor(): number;
}

export class SnapshotPolicy {
  private snapshotIndex: number;
  private readonly appended: AppendedBytes;
  /** The compaction point last computed; slices continue towards it. */
  private compactTarget = 0;
  private savedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly d: SnapshotPolicyDeps,
    private readonly o: SnapshotPolicyOptions,
  ) {
    assert(o.snapshotEntries >= 1, "snapshotEntries >= 1");
    assert(o.marginEntries >= 0 && o.marginBytes >= 0, "compaction margins >= 0");
    this.snapshotIndex = d.storage.snapshot().metadata.index;
    this.appended = AppendedBytes.restore(d.storage.getMeta(APPENDED_KEY), d.storage.lastIndex());
  }

  /** Entries written to the log (counted for the byte margin). */
  noteAppend(entries: Entry[]): void {
    this.appended.note(entries);
  }

  /** A snapshot received from the leader replaced the log. */
  noteInstalled(index: number): void {
    this.snapshotIndex = index;
    this.appended.reset(index);
    this.compactTarget = 0;
  }

  /** Whether compaction slices remain towards the last target (the loop keeps turning for them). */
  hasWork(): boolean {
    return this.compactTarget >= this.d.storage.firstIndex();
  }

  /** At a drain boundary: every Ready so far applied; nothing applies until this returns. */
  atBoundary(): void {
    const applied = this.d.appliedIndex();
    if (
      applied - this.snapshotIndex >= this.o.snapshotEntries ||
      (this.o.marginBytes > 0 && this.compactionPoint(applied, Number.POSITIVE_INFINITY) > this.snapshotIndex)
    ) {
      this.takeSnapshot(applied);
    }
    this.compactSlice(applied);
  }

  /** Where the margins and streams in flight let compaction go, below `snapshotIndex`. */
  private compactionPoint(applied: number, snapshotIndex: number): number {
    return Math.min(
      snapshotIndex,
      applied - this.o.marginEntries,
      this.appended.lastIndexWithBytesAfter(this.o.marginBytes),
      this.d.compactionFloor(),
    );
  }

  private takeSnapshot(applied: number): void {
    const { storage } = this.d;
    assert(applied <= storage.lastIndex(), `applied ${applied} <= last index ${storage.lastIndex()}`);
    const conf = storage.initialState().confState; // as of the applied index
    storage.createSnapshot(applied, conf, encodeSnapshot(this.d.members(), new Uint8Array()));
    this.snapshotIndex = applied;
    const now = performance.now();
    if (now - this.savedAt >= SAVE_INTERVAL_MS) {
      this.savedAt = now;
      storage.putMeta(APPENDED_KEY, this.appended.save());
    }
    this.d.core.stats.snapshotsTaken++;
    this.d.core.log.info({ index: applied, firstIndex: storage.firstIndex() }, "snapshot taken");
  }

  private compactSlice(applied: number): void {
    const { storage } = this.d;
    const target = this.compactionPoint(applied, this.snapshotIndex);
    this.compactTarget = target;
    const first = storage.firstIndex();
    if (target < first) return;
    const to = Math.min(target, first - 1 + MAX_COMPACT_ENTRIES_PER_TURN);
    storage.compact(to);
    assert(storage.firstIndex() === to + 1, `compacted through ${to}`);
    this.appended.forgetBefore(to);
    this.d.core.stats.compactedEntries += to - first + 1;
    if (to === target) {
      this.d.core.log.debug({ firstIndex: to + 1, snapshotIndex: this.snapshotIndex }, "log compacted");
    }
  }
}
