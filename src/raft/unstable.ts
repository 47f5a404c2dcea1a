// The tail of the log (and possibly a snapshot) that is not yet durable. Entries
// before `offsetInProgress` have been handed to the runtime in a Ready and are
// being written; they leave this structure on `stableTo` (after advance).

import type { Entry, Snapshot } from "./types.ts";

export class Unstable {
  snapshot: Snapshot | undefined;
  snapshotInProgress = false;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;
  /** entries below this index are being written. */
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const e = this.entries[i - this.offset];
    return e ? e.term : undefined;
  }

  /** Entries not yet handed out for writing. */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (inProgress >= this.entries.length) return [];
    return this.entries.slice(inProgress);
  }

  nextSnapshot(): Snapshot | undefined {
    return this.snapshot && !this.snapshotInProgress ? this.snapshot : undefined;
  }

  /** Everything currently here is now being written. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /**
   * Entries through (index, term) are durable. Ignored when the entry at index
   * has since been replaced by one of another term (B37, the ABA race).
   * Returns whether anything became stable.
   */
  stableTo(index: number, term: number): boolean {
    const t = this.maybeTerm(index);
    if (t === undefined || t !== term || index < this.offset) return false;
    const n = index + 1 - this.offset;
    if (n >= this.entries.length) this.entries = [];
    else this.entries.splice(0, n); // in place: no copy of the remaining tail
    this.offset = index + 1;
    this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
    return true;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot && this.snapshot.metadata.index === index) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(snap: Snapshot): void {
    this.offset = snap.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = snap;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: Entry[]): void {
    const from = ents[0]!.index;
    if (from === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (from <= this.offset) {
      // Replaces everything unstable, and part of what is in storage.
      this.offset = from;
      this.offsetInProgress = from;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, from - this.offset);
      for (const e of ents) this.entries.push(e);
      this.offsetInProgress = Math.min(this.offsetInProgress, from);
    }
  }

  /** Entries in [lo, hi); the caller has checked the bounds. */
  slice(lo: number, hi: number): Entry[] {
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
