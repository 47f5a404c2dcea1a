// How many bytes of Raft log were appended after a given index, as far as this
// process knows: the compaction policy keeps at least a margin of bytes behind
// the compaction point (so that a follower restarted within minutes catches up
// from the log, not by a snapshot stream), and LMDB does not tell entry sizes
// cheaply. Appends are counted in memory, with a checkpoint (index, cumulative
// bytes) about every `intervalBytes`. The checkpoints are saved with the
// snapshots the policy takes (save/restore), so a restarted node knows the log
// it finds; entries appended after the last save count as nothing (an
// undercount: compaction only waits longer).
//
// Bound: at most MAX_CHECKPOINTS checkpoints; past it every other one is
// dropped and the interval doubles, so the list covers the whole log at a
// coarser grain instead of forgetting its oldest part.

import type { Entry } from "../raft/index.ts";
import { entryWireSize } from "../raft/index.ts";
import { assert } from "./assert.ts";

export const MAX_CHECKPOINTS = 1024;
export const DEFAULT_CHECKPOINT_INTERVAL_BYTES = 1024 * 1024;

export class AppendedBytes {
  /** Checkpoint indexes, ascending; cumulative[i] bytes were appended through indexes[i]. */
  private readonly indexes: number[] = [];
  private readonly cumulative: number[] = [];
  private total = 0;
  /** The last index noted (or the base): an append at or before it replaces a suffix. */
  private lastNoted: number;
  private intervalBytes: number;

  /** `baseIndex`: the last index already in the log (nothing is known of it or before). */
  constructor(baseIndex: number, intervalBytes = DEFAULT_CHECKPOINT_INTERVAL_BYTES) {
    assert(intervalBytes >= 1, "a positive checkpoint interval");
    this.intervalBytes = intervalBytes;
    this.lastNoted = baseIndex;
    this.reset(baseIndex);
  }

  /** The checkpoints as bytes, for restore() after a restart. */
  save(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({
        v: 1,
        intervalBytes: this.intervalBytes,
        total: this.total,
        lastNoted: this.lastNoted,
        indexes: this.indexes,
        cumulative: this.cumulative,
      }),
    );
  }

  /**
   * The counter a previous process saved, continued for a log whose last
   * index is now `lastIndex`; a fresh one (nothing known before lastIndex) when
   * there is none or it does not fit the log.
   */
  static restore(saved: Uint8Array | undefined, lastIndex: number): AppendedBytes {
    const fresh = new AppendedBytes(lastIndex);
    if (!saved) return fresh;
    let o: {
      v?: unknown;
      intervalBytes?: unknown;
      total?: unknown;
      lastNoted?: unknown;
      indexes?: unknown;
      cumulative?: unknown;
    };
    try {
      o = JSON.parse(new TextDecoder().decode(saved));
    } catch {
      return fresh;
    }
    const nums = (a: unknown): a is number[] => Array.isArray(a) && a.every((x) => Number.isSafeInteger(x));
    if (
      o.v !== 1 ||
      !nums(o.indexes) ||
      !nums(o.cumulative) ||
      o.indexes.length === 0 ||
      o.indexes.length !== o.cumulative.length ||
      o.indexes.length > MAX_CHECKPOINTS ||
      typeof o.total !== "number" ||
      typeof o.lastNoted !== "number" ||
      typeof o.intervalBytes !== "number" ||
      o.lastNoted > lastIndex // the log was replaced since (a snapshot installed)
    ) {
      return fresh;
    }
    const a = new AppendedBytes(o.lastNoted, o.intervalBytes);
    a.indexes.splice(0, a.indexes.length, ...o.indexes);
    a.cumulative.splice(0, a.cumulative.length, ...o.cumulative);
    a.total = o.total;
    // Entries written after the save: their sizes are unknown, counted as 0.
    if (lastIndex > a.lastNoted) {
      a.indexes.push(lastIndex);
      a.cumulative.push(a.total);
      a.lastNoted = lastIndex;
      if (a.indexes.length > MAX_CHECKPOINTS) a.thin();
    }
    return a;
  }

  get checkpoints(): number {
    return this.indexes.length;
  }

  /** The log restarts after `baseIndex` (a snapshot was installed). */
  reset(baseIndex: number): void {
    this.lastNoted = baseIndex;
    this.indexes.length = 0;
    this.cumulative.length = 0;
    this.indexes.push(baseIndex);
    this.cumulative.push(this.total);
  }

  /** Entries appended to the log (they may replace a suffix of it). */
  note(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first <= this.lastNoted) {
      // A replaced suffix: checkpoints at or after its start no longer describe
      // the log, and the bytes counted after the last one that does are
      // forgotten (an undercount: compaction only waits longer).
      while (this.indexes.length > 0 && this.indexes[this.indexes.length - 1]! >= first) {
        this.indexes.pop();
        this.cumulative.pop();
      }
      if (this.indexes.length === 0) {
        this.indexes.push(first - 1);
        this.cumulative.push(this.total);
      } else {
        this.total = this.cumulative[this.cumulative.length - 1]!;
      }
    }
    this.lastNoted = entries[entries.length - 1]!.index;
    let sinceCheckpoint = this.total - this.cumulative[this.cumulative.length - 1]!;
    for (const e of entries) {
      const size = entryWireSize(e);
      this.total += size;
      sinceCheckpoint += size;
      if (sinceCheckpoint >= this.intervalBytes) {
        this.indexes.push(e.index);
        this.cumulative.push(this.total);
        sinceCheckpoint = 0;
      }
    }
    if (this.indexes.length > MAX_CHECKPOINTS) this.thin();
  }

  /**
   * The largest index C (a checkpoint) with at least `marginBytes` appended
   * after it; -1 if there is none. Every index <= C has at least as many after it.
   */
  lastIndexWithBytesAfter(marginBytes: number): number {
    if (marginBytes <= 0) return Number.POSITIVE_INFINITY;
    // cumulative is ascending: the last checkpoint with cumulative <= total - margin.
    const limit = this.total - marginBytes;
    let lo = 0;
    let hi = this.cumulative.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid]! <= limit) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? -1 : this.indexes[found]!;
  }

  /** The log was compacted through `index`: checkpoints before it are of no more use (one is kept). */
  forgetBefore(index: number): void {
    let drop = 0;
    while (drop < this.indexes.length - 1 && this.indexes[drop]! < index) drop++;
    if (drop === 0) return;
    this.indexes.splice(0, drop);
    this.cumulative.splice(0, drop);
  }

  private thin(): void {
    // Keep the first and the last; drop every other one in between.
    const keepI: number[] = [];
    const keepC: number[] = [];
    const last = this.indexes.length - 1;
    for (let i = 0; i <= last; i++) {
      if (i === 0 || i === last || i % 2 === 0) {
        keepI.push(this.indexes[i]!);
        keepC.push(this.cumulative[i]!);
      }
    }
    this.indexes.splice(0, this.indexes.length, ...keepI);
    this.cumulative.splice(0, this.cumulative.length, ...keepC);
    this.intervalBytes *= 2;
    assert(this.indexes.length <= MAX_CHECKPOINTS, "checkpoints within their bound after thinning");
  }
}
