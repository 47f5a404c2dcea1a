// A mirror of one node's Raft log (stable storage plus the unstable tail), kept
// by the runtime from the Readies the node hands out. The invariant checks read
// it instead of the core's internals: after every call the core has handed out
// all of its new entries, so the mirror is exactly the log the node acts on.

import type { Entry, Storage } from "../raft/index.ts";

export class LogMirror {
  /** Index of the snapshot the log starts after (its term is terms[0]). */
  private offset = 0;
  private terms: number[] = [0];
  private crcs: number[] = [0];

  static fromStorage(storage: Storage): LogMirror {
    const m = new LogMirror();
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    m.reset(first - 1, storage.term(first - 1));
    if (last >= first) m.append(storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER));
    return m;
  }

  /** Restarts the log after a snapshot at (index, term). */
  reset(index: number, term: number): void {
    this.offset = index;
    this.terms = [term];
    this.crcs = [0];
  }

  /** Appends entries, replacing any at or after entries[0].index (like Storage.append). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let from = 0;
    const first = entries[0]!.index;
    if (first <= this.offset) from = this.offset + 1 - first;
    if (from >= entries.length) return;
    const at = entries[from]!.index - this.offset;
    if (at > this.terms.length) {
      throw new Error(`log mirror: append at ${entries[from]!.index} leaves a gap after ${this.lastIndex()}`);
    }
    this.terms.length = at;
    this.crcs.length = at;
    for (let i = from; i < entries.length; i++) {
      const e = entries[i]!;
      this.terms.push(e.term);
      this.crcs.push(e.crc);
    }
  }

  /** Index of the snapshot the log starts after. */
  snapshotIndex(): number {
    return this.offset;
  }

  lastIndex(): number {
    return this.offset + this.terms.length - 1;
  }

  /** Term at `index`, or undefined if it is before the snapshot or after the last entry. */
  term(index: number): number | undefined {
    if (index < this.offset || index > this.lastIndex()) return undefined;
    return this.terms[index - this.offset];
  }

  /** Checksum of the entry at `index` (undefined at or before the snapshot index). */
  crc(index: number): number | undefined {
    if (index <= this.offset || index > this.lastIndex()) return undefined;
    return this.crcs[index - this.offset];
  }
}
