// RaftLog: the node's view of the log, stable storage followed by the unstable
// tail, and its cursors: committed (known committed), applying (handed out to
// apply), applied (acknowledged by advance). committed >= applying >= applied.

import { checksumOk } from "./crc32c.ts";
import { RaftError } from "./errors.ts";
import type { Storage } from "./storage.ts";
import { type Entry, entryWireSize, type Snapshot } from "./types.ts";
import { Unstable } from "./unstable.ts";

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  committed: number;
  applying: number;
  applied: number;
  /** The last index in storage when this node started (see slice's `verify`). */
  private readonly bootLastIndex: number;

  constructor(storage: Storage, applied: number) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.bootLastIndex = last;
    this.committed = first - 1;
    this.applied = first - 1;
    this.applying = first - 1;
    const hs = storage.initialState().hardState;
    if (hs.commit > this.committed) this.committed = Math.min(hs.commit, last);
    if (applied > 0) this.appliedTo(Math.min(applied, this.committed));
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term at index, or undefined if it is compacted or beyond the end. */
  term(i: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof RaftError && (e.code === "COMPACTED" || e.code === "UNAVAILABLE")) return undefined;
      throw e;
    }
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  matchTerm(i: number, t: number): boolean {
    const x = this.term(i);
    return x !== undefined && x === t;
  }

  /** The Raft vote rule: is (lastIndex, lastTerm) at least as up to date as ours (§5.4.1)? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower's side of AppendEntries: if our log has (index, logTerm), append
   * what is new, truncating a conflicting suffix, and learn commit. Returns the
   * index of the last new entry, or undefined if the log does not match.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) {
        throw new Error(`raft: entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      }
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends entries (which may replace an uncommitted suffix). Returns the new last index. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed) {
      throw new Error(`raft: append after ${after} is below committed ${this.committed}`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * Index of the first entry that is new or conflicts with ours; 0 when every
   * entry is already in the log (a duplicate or reordered append must not
   * truncate anything, B22).
   */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: where
   * the leader's and a follower's logs may match (fast back-off, B24).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; ; i--) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
  }

  commitTo(tocommit: number): void {
    if (tocommit <= this.committed) return;
    if (tocommit > this.lastIndex()) {
      throw new Error(`raft: commit ${tocommit} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = tocommit;
  }

  /** Commits maxIndex if its entry is of `term` (the current-term rule, §5.4.2, B29). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: number): void {
    if (i > this.committed) throw new Error(`raft: applied ${i} beyond committed ${this.committed}`);
    if (i > this.applied) this.applied = i;
    if (i > this.applying) this.applying = i;
  }

  hasNextCommittedEnts(): boolean {
    if (this.unstable.snapshot && !this.unstable.snapshotInProgress) return false;
    const lo = Math.max(this.applying + 1, this.firstIndex());
    return this.committed >= lo;
  }

  /** Committed entries not yet handed out, at most maxBytes of them (at least one). */
  nextCommittedEnts(maxBytes: number): Entry[] {
    if (this.unstable.snapshot && !this.unstable.snapshotInProgress) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, maxBytes, true);
  }

  /** Entries from i on, at most maxBytes of them (at least one). */
  entries(i: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, last + 1, maxBytes);
  }

  /**
   * Entries in [lo, hi); throws COMPACTED when lo is before the first index.
   * With `verify`, entries read back from storage that were there when this
   * node started are checked against their checksums. Every entry appended
   * since went through the unstable log, where it was checked on receipt (or
   * made by this leader), so checking it again would only cost time.
   */
  slice(lo: number, hi: number, maxBytes: number, verify = false): Entry[] {
    const first = this.firstIndex();
    if (lo < first) throw new RaftError("COMPACTED", `slice(${lo}): compacted before ${first}`);
    if (hi > this.lastIndex() + 1)
      throw new Error(`raft: slice(${lo}, ${hi}) beyond last ${this.lastIndex()}`);
    if (lo >= hi) return [];
    const uoff = this.unstable.offset;
    let out: Entry[] = [];
    if (lo < uoff) {
      const stored = this.storage.entries(lo, Math.min(hi, uoff), maxBytes);
      if (verify) {
        for (const e of stored) {
          if (e.index > this.bootLastIndex) break;
          if (!checksumOk(e)) {
            throw new RaftError(
              "CORRUPT_ENTRY",
              `entry ${e.index} (term ${e.term}) read from storage fails its checksum`,
            );
          }
        }
      }
      if (stored.length < Math.min(hi, uoff) - lo) return stored;
      out = stored;
    }
    if (hi > uoff) {
      const u = this.unstable.slice(Math.max(lo, uoff), hi);
      if (out.length === 0) out = limitSize(u, maxBytes);
      else {
        let bytes = 0;
        for (const e of out) bytes += entryWireSize(e);
        for (const e of u) {
          bytes += entryWireSize(e);
          if (bytes > maxBytes) break;
          out.push(e);
        }
      }
    }
    return out;
  }

  /** Replaces the log with a snapshot (the follower side of InstallSnapshot). */
  restore(snap: Snapshot): void {
    this.committed = snap.metadata.index;
    this.unstable.restore(snap);
  }

  stableTo(index: number, term: number): boolean {
    return this.unstable.stableTo(index, term);
  }

  /** The last index known durable here (what a leader may count itself for). */
  stableIndex(): number {
    if (this.unstable.snapshot) return 0;
    return Math.min(this.unstable.offset - 1, this.storage.lastIndex());
  }
}

/** The longest prefix within maxBytes, but at least one entry (B39). */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  let bytes = 0;
  for (let i = 0; i < ents.length; i++) {
    bytes += entryWireSize(ents[i]!);
    if (i > 0 && bytes > maxBytes) return ents.slice(0, i);
  }
  return ents;
}
