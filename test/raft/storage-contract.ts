// The contract every Storage implementation must honour: MemoryStorage runs it in
// test/raft/memory-storage.test.ts, a durable store (src/storage) runs it with
// `reopen` so that everything written is also checked to survive a restart.

import { describe, expect, it } from "vitest";
import { checksumOk, makeEntry } from "../../src/raft/crc32c.ts";
import { isRaftError, type RaftErrorCode } from "../../src/raft/errors.ts";
import type { Storage } from "../../src/raft/storage.ts";
import {
  type ConfState,
  type Entry,
  EntryType,
  emptyConfState,
  type Snapshot,
} from "../../src/raft/types.ts";

export interface StorageContractOptions {
  /** Closes `s` (if needed) and opens the same durable store again. */
  reopen?: (s: Storage) => Storage | Promise<Storage>;
}

/** 100 payload bytes: entryWireSize is then 124. */
const PAYLOAD = 100;
const WIRE = PAYLOAD + 24;

function payload(term: number, index: number, size = PAYLOAD): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (term * 31 + index * 7 + i) & 0xff;
  return b;
}

/** Entries lo..hi inclusive, all of `term`. */
function ents(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(makeEntry(term, i, payload(term, i)));
  return out;
}

/** Entries from `lo` whose terms are given one per entry. */
function entsWithTerms(lo: number, terms: number[]): Entry[] {
  return terms.map((t, k) => makeEntry(t, lo + k, payload(t, lo + k)));
}

function expectRaftError(f: () => unknown, code: RaftErrorCode): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, `expected a RaftError ${code}`).toBeDefined();
  if (!isRaftError(thrown, code)) {
    throw new Error(`expected RaftError ${code}, got ${String(thrown)}`);
  }
}

function terms(s: Storage, lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let i = lo; i <= hi; i++) out.push(s.term(i));
  return out;
}

/** Normalises an entry to a plain comparable object (data as a plain array). */
function plain(e: Entry): { term: number; index: number; type: EntryType; data: number[]; crc: number } {
  return { term: e.term, index: e.index, type: e.type, data: Array.from(e.data), crc: e.crc };
}

function plainAll(es: Entry[]): ReturnType<typeof plain>[] {
  return es.map(plain);
}

function sortedConf(cs: ConfState): ConfState {
  const num = (a: number, b: number) => a - b;
  return {
    voters: [...cs.voters].sort(num),
    learners: [...cs.learners].sort(num),
    votersOutgoing: [...cs.votersOutgoing].sort(num),
    learnersNext: [...cs.learnersNext].sort(num),
    autoLeave: cs.autoLeave,
  };
}

function conf(voters: number[], extra: Partial<ConfState> = {}): ConfState {
  return { ...emptyConfState(), voters, ...extra };
}

function snap(
  index: number,
  term: number,
  cs: ConfState,
  data: Uint8Array = payload(term, index, 32),
): Snapshot {
  return { metadata: { index, term, conf: cs }, data };
}

const ALL = Number.MAX_SAFE_INTEGER;

export function storageContract(
  name: string,
  make: (voters: number[]) => Storage | Promise<Storage>,
  opts: StorageContractOptions = {},
): void {
  describe(`Storage contract: ${name}`, () => {
    describe("empty storage", () => {
      it("starts with firstIndex 1, lastIndex 0 and term(0) = 0", async () => {
        const s = await make([1, 2, 3]);
        expect(s.firstIndex()).toBe(1);
        expect(s.lastIndex()).toBe(0);
        expect(s.term(0)).toBe(0);
      });

      it("has a zero hard state and the given voters as its membership", async () => {
        const s = await make([1, 2, 3]);
        const st = s.initialState();
        expect(st.hardState).toEqual({ term: 0, vote: 0, commit: 0 });
        expect(sortedConf(st.confState)).toEqual(conf([1, 2, 3]));
      });

      it("has an empty snapshot at index 0", async () => {
        const s = await make([1, 2, 3]);
        const sn = s.snapshot();
        expect(sn.metadata.index).toBe(0);
        expect(sn.metadata.term).toBe(0);
        expect(sn.data.length).toBe(0);
      });

      it("throws UNAVAILABLE for term(1) and entries(1, 2)", async () => {
        const s = await make([1]);
        expectRaftError(() => s.term(1), "UNAVAILABLE");
        expectRaftError(() => s.entries(1, 2, ALL), "UNAVAILABLE");
      });

      it("returns no entries for the empty range entries(1, 1)", async () => {
        const s = await make([1]);
        expect(s.entries(1, 1, ALL)).toEqual([]);
      });
    });

    describe("append and entries", () => {
      it("appends entries that entries() and term() return, intact", async () => {
        const s = await make([1]);
        const es = entsWithTerms(1, [1, 1, 2, 3, 3]);
        s.append(es);
        expect(s.firstIndex()).toBe(1);
        expect(s.lastIndex()).toBe(5);
        expect(terms(s, 0, 5)).toEqual([0, 1, 1, 2, 3, 3]);
        const got = s.entries(1, 6, ALL);
        expect(plainAll(got)).toEqual(plainAll(es));
        for (const e of got) expect(checksumOk(e)).toBe(true);
      });

      it("keeps the entry type and data of a ConfChange entry", async () => {
        const s = await make([1]);
        const cc = makeEntry(1, 1, new Uint8Array([9, 8, 7]), EntryType.ConfChange);
        const empty = makeEntry(1, 2, new Uint8Array());
        s.append([cc, empty]);
        expect(plainAll(s.entries(1, 3, ALL))).toEqual(plainAll([cc, empty]));
      });

      it("appends contiguously at lastIndex + 1 across several calls", async () => {
        const s = await make([1]);
        s.append(ents(1, 3, 1));
        s.append(ents(4, 4, 1));
        s.append(ents(5, 7, 2));
        expect(s.lastIndex()).toBe(7);
        expect(terms(s, 1, 7)).toEqual([1, 1, 1, 1, 2, 2, 2]);
        expect(plainAll(s.entries(1, 8, ALL))).toEqual(plainAll([...ents(1, 4, 1), ...ents(5, 7, 2)]));
      });

      it("ignores an empty append", async () => {
        const s = await make([1]);
        s.append(ents(1, 3, 1));
        s.append([]);
        expect(s.lastIndex()).toBe(3);
      });

      it("returns the sub-range [lo, hi) only", async () => {
        const s = await make([1]);
        s.append(ents(1, 10, 1));
        const got = s.entries(3, 7, ALL);
        expect(got.map((e) => e.index)).toEqual([3, 4, 5, 6]);
        expect(s.entries(10, 11, ALL).map((e) => e.index)).toEqual([10]);
        expect(s.entries(4, 4, ALL)).toEqual([]);
      });

      it("limits entries() to maxBytes by wire size", async () => {
        const s = await make([1]);
        s.append(ents(1, 10, 1));
        expect(s.entries(1, 11, WIRE).length).toBe(1);
        expect(s.entries(1, 11, 2 * WIRE - 1).length).toBe(1);
        expect(s.entries(1, 11, 2 * WIRE).length).toBe(2);
        expect(s.entries(1, 11, 3 * WIRE + 5).length).toBe(3);
        expect(s.entries(2, 11, 10 * WIRE).length).toBe(9);
        expect(s.entries(1, 11, ALL).length).toBe(10);
        expect(s.entries(1, 11, 3 * WIRE).map((e) => e.index)).toEqual([1, 2, 3]);
      });

      it("always returns at least one entry, even when it exceeds maxBytes", async () => {
        const s = await make([1]);
        s.append([makeEntry(1, 1, payload(1, 1, 1000)), ...ents(2, 3, 1)]);
        expect(s.entries(1, 4, 0).map((e) => e.index)).toEqual([1]);
        expect(s.entries(1, 4, 10).map((e) => e.index)).toEqual([1]);
        expect(s.entries(2, 4, 0).map((e) => e.index)).toEqual([2]);
      });

      it("replaces a conflicting suffix when appending inside the log", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        const repl = ents(3, 4, 2);
        s.append(repl);
        expect(s.lastIndex()).toBe(4);
        expect(terms(s, 1, 4)).toEqual([1, 1, 2, 2]);
        expectRaftError(() => s.term(5), "UNAVAILABLE");
        expect(plainAll(s.entries(1, 5, ALL))).toEqual(plainAll([...ents(1, 2, 1), ...repl]));
      });

      it("replaces a suffix with a longer one", async () => {
        const s = await make([1]);
        s.append(ents(1, 3, 1));
        s.append(ents(2, 6, 2));
        expect(s.lastIndex()).toBe(6);
        expect(terms(s, 1, 6)).toEqual([1, 2, 2, 2, 2, 2]);
      });

      it("replaces the whole log when appending at index 1", async () => {
        const s = await make([1]);
        s.append(ents(1, 4, 1));
        s.append(ents(1, 2, 3));
        expect(s.lastIndex()).toBe(2);
        expect(terms(s, 0, 2)).toEqual([0, 3, 3]);
      });

      it("replaces stored entries at and after entries[0].index even if terms match", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        s.append(ents(2, 3, 1));
        expect(s.lastIndex()).toBe(3);
      });

      it("throws UNAVAILABLE for an append that would leave a gap", async () => {
        const s = await make([1]);
        expectRaftError(() => s.append(ents(2, 3, 1)), "UNAVAILABLE");
        s.append(ents(1, 3, 1));
        expectRaftError(() => s.append(ents(5, 6, 1)), "UNAVAILABLE");
        // Nothing was written by the failed appends.
        expect(s.lastIndex()).toBe(3);
        expect(terms(s, 1, 3)).toEqual([1, 1, 1]);
      });

      it("returns a result that later appends and compactions do not change", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        const got = s.entries(1, 6, ALL);
        const before = plainAll(got);
        s.append(ents(3, 4, 2));
        s.compact(2);
        expect(plainAll(got)).toEqual(before);
      });

      it("throws UNAVAILABLE for term() and entries() past the last index", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        expectRaftError(() => s.term(6), "UNAVAILABLE");
        expectRaftError(() => s.entries(1, 7, ALL), "UNAVAILABLE");
        expectRaftError(() => s.entries(6, 7, ALL), "UNAVAILABLE");
        expect(s.entries(1, 6, ALL).length).toBe(5);
      });
    });

    describe("compact", () => {
      it("discards the log through index and keeps term(index) (B44)", async () => {
        const s = await make([1]);
        s.append(entsWithTerms(1, [1, 1, 2, 2, 3, 3]));
        s.compact(4);
        expect(s.firstIndex()).toBe(5);
        expect(s.lastIndex()).toBe(6);
        expect(s.term(4)).toBe(2);
        expect(terms(s, 4, 6)).toEqual([2, 3, 3]);
        expect(s.entries(5, 7, ALL).map((e) => [e.index, e.term])).toEqual([
          [5, 3],
          [6, 3],
        ]);
      });

      it("throws COMPACTED for term() below firstIndex - 1 and entries() below firstIndex", async () => {
        const s = await make([1]);
        s.append(ents(1, 6, 1));
        s.compact(3);
        expectRaftError(() => s.term(2), "COMPACTED");
        expectRaftError(() => s.term(0), "COMPACTED");
        expectRaftError(() => s.entries(3, 5, ALL), "COMPACTED");
        expectRaftError(() => s.entries(1, 7, ALL), "COMPACTED");
        expect(s.entries(4, 7, ALL).map((e) => e.index)).toEqual([4, 5, 6]);
      });

      it("can compact the whole log, keeping term(lastIndex) (B44)", async () => {
        const s = await make([1]);
        s.append(entsWithTerms(1, [1, 2, 5]));
        s.compact(3);
        expect(s.firstIndex()).toBe(4);
        expect(s.lastIndex()).toBe(3);
        expect(s.term(3)).toBe(5);
        expectRaftError(() => s.term(2), "COMPACTED");
        expectRaftError(() => s.term(4), "UNAVAILABLE");
        s.append(ents(4, 5, 5));
        expect(terms(s, 3, 5)).toEqual([5, 5, 5]);
      });

      it("ignores compaction at or below the current compaction point", async () => {
        const s = await make([1]);
        s.append(ents(1, 6, 1));
        s.compact(4);
        s.compact(4);
        s.compact(2);
        expect(s.firstIndex()).toBe(5);
        expect(s.term(4)).toBe(1);
      });

      it("keeps term(index) across successive compactions (B44)", async () => {
        const s = await make([1]);
        s.append(entsWithTerms(1, [1, 2, 3, 4, 5, 6]));
        s.compact(2);
        expect(s.term(2)).toBe(2);
        s.compact(5);
        expect(s.term(5)).toBe(5);
        expect(s.firstIndex()).toBe(6);
        expectRaftError(() => s.term(4), "COMPACTED");
      });

      it("throws UNAVAILABLE when compacting past the last index", async () => {
        const s = await make([1]);
        s.append(ents(1, 3, 1));
        expectRaftError(() => s.compact(4), "UNAVAILABLE");
        expect(s.firstIndex()).toBe(1);
        expect(s.lastIndex()).toBe(3);
      });

      it("drops the already-compacted prefix of an append and keeps the rest", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        s.compact(3);
        // Entries 2..7, of which 2..3 are compacted: 4..7 replace the tail.
        s.append(ents(2, 7, 1));
        expect(s.firstIndex()).toBe(4);
        expect(s.lastIndex()).toBe(7);
        expect(s.term(3)).toBe(1);
        // Wholly compacted entries change nothing.
        s.append(ents(1, 2, 1));
        expect(s.firstIndex()).toBe(4);
        expect(s.lastIndex()).toBe(7);
      });

      it("throws UNAVAILABLE for an append leaving a gap after a compacted log", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        s.compact(5);
        expectRaftError(() => s.append(ents(7, 8, 1)), "UNAVAILABLE");
        s.append(ents(6, 6, 2));
        expect(terms(s, 5, 6)).toEqual([1, 2]);
      });
    });

    describe("snapshots", () => {
      it("createSnapshot records index, term(index), conf and data without compacting", async () => {
        const s = await make([1, 2, 3]);
        s.append(entsWithTerms(1, [1, 1, 2, 2, 2]));
        const cs = conf([1, 2, 3], { learners: [4] });
        const data = new Uint8Array([1, 2, 3, 4]);
        const sn = s.createSnapshot(4, cs, data);
        expect(sn.metadata.index).toBe(4);
        expect(sn.metadata.term).toBe(2);
        expect(sortedConf(sn.metadata.conf)).toEqual(cs);
        expect(Array.from(sn.data)).toEqual([1, 2, 3, 4]);
        const got = s.snapshot();
        expect(got.metadata.index).toBe(4);
        expect(got.metadata.term).toBe(2);
        expect(sortedConf(got.metadata.conf)).toEqual(cs);
        expect(Array.from(got.data)).toEqual([1, 2, 3, 4]);
        // The log is untouched until compact().
        expect(s.firstIndex()).toBe(1);
        expect(s.lastIndex()).toBe(5);
        expect(s.entries(1, 6, ALL).length).toBe(5);
      });

      it("createSnapshot copies the conf: later changes by the caller do not leak in", async () => {
        const s = await make([1, 2, 3]);
        s.append(ents(1, 3, 1));
        const cs = conf([1, 2, 3]);
        s.createSnapshot(2, cs, new Uint8Array([5]));
        cs.voters.push(9);
        cs.learners.push(10);
        expect(sortedConf(s.snapshot().metadata.conf)).toEqual(conf([1, 2, 3]));
      });

      it("a snapshot returned earlier is not changed by later snapshots", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        const first = s.createSnapshot(2, conf([1]), new Uint8Array([2]));
        const seen = s.snapshot();
        s.createSnapshot(4, conf([1, 2]), new Uint8Array([4]));
        s.applySnapshot(snap(9, 2, conf([3])));
        for (const sn of [first, seen]) {
          expect(sn.metadata.index).toBe(2);
          expect(sortedConf(sn.metadata.conf)).toEqual(conf([1]));
          expect(Array.from(sn.data)).toEqual([2]);
        }
      });

      it("createSnapshot then compact keeps term(index) (B44)", async () => {
        const s = await make([1]);
        s.append(entsWithTerms(1, [1, 2, 3, 3]));
        s.createSnapshot(3, conf([1]), new Uint8Array([7]));
        s.compact(3);
        expect(s.firstIndex()).toBe(4);
        expect(s.term(3)).toBe(3);
        expect(s.snapshot().metadata.index).toBe(3);
      });

      it("createSnapshot at or below the current snapshot throws SNAPSHOT_OUT_OF_DATE", async () => {
        const s = await make([1]);
        s.append(ents(1, 5, 1));
        s.createSnapshot(3, conf([1]), new Uint8Array());
        expectRaftError(() => s.createSnapshot(3, conf([1]), new Uint8Array()), "SNAPSHOT_OUT_OF_DATE");
        expectRaftError(() => s.createSnapshot(2, conf([1]), new Uint8Array()), "SNAPSHOT_OUT_OF_DATE");
        expect(s.snapshot().metadata.index).toBe(3);
        s.createSnapshot(5, conf([1]), new Uint8Array());
        expect(s.snapshot().metadata.index).toBe(5);
      });

      it("createSnapshot past the last index throws UNAVAILABLE", async () => {
        const s = await make([1]);
        s.append(ents(1, 3, 1));
        expectRaftError(() => s.createSnapshot(4, conf([1]), new Uint8Array()), "UNAVAILABLE");
        expect(s.snapshot().metadata.index).toBe(0);
      });

      it("applySnapshot resets the log to start after the snapshot and restores its conf", async () => {
        const s = await make([1, 2, 3]);
        s.append(ents(1, 5, 1));
        const cs = conf([1, 2, 4], { learners: [5] });
        const sn = snap(10, 3, cs);
        s.applySnapshot(sn);
        expect(s.firstIndex()).toBe(11);
        expect(s.lastIndex()).toBe(10);
        expect(s.term(10)).toBe(3);
        expectRaftError(() => s.term(9), "COMPACTED");
        expectRaftError(() => s.term(11), "UNAVAILABLE");
        expectRaftError(() => s.entries(5, 6, ALL), "COMPACTED");
        expect(s.entries(11, 11, ALL)).toEqual([]);
        const got = s.snapshot();
        expect(got.metadata.index).toBe(10);
        expect(got.metadata.term).toBe(3);
        expect(sortedConf(got.metadata.conf)).toEqual(cs);
        expect(Array.from(got.data)).toEqual(Array.from(sn.data));
        expect(sortedConf(s.initialState().confState)).toEqual(cs);
      });

      it("applySnapshot inside the log discards the whole log, matching or not", async () => {
        const s = await make([1]);
        s.append(ents(1, 8, 2));
        s.applySnapshot(snap(5, 2, conf([1])));
        expect(s.firstIndex()).toBe(6);
        expect(s.lastIndex()).toBe(5);
        expect(s.term(5)).toBe(2);
        expectRaftError(() => s.term(6), "UNAVAILABLE");
      });

      it("applySnapshot keeps the hard state (term and vote are never lost)", async () => {
        const s = await make([1, 2, 3]);
        s.setHardState({ term: 4, vote: 2, commit: 0 });
        s.applySnapshot(snap(7, 3, conf([1, 2, 3])));
        expect(s.initialState().hardState).toEqual({ term: 4, vote: 2, commit: 0 });
      });

      it("applySnapshot then append continues the log after the snapshot", async () => {
        const s = await make([1]);
        s.applySnapshot(snap(10, 3, conf([1])));
        expectRaftError(() => s.append(ents(12, 12, 3)), "UNAVAILABLE");
        s.append(ents(11, 13, 4));
        expect(s.firstIndex()).toBe(11);
        expect(s.lastIndex()).toBe(13);
        expect(terms(s, 10, 13)).toEqual([3, 4, 4, 4]);
        expect(s.entries(11, 14, ALL).map((e) => e.index)).toEqual([11, 12, 13]);
      });

      it("applySnapshot restores a joint configuration exactly", async () => {
        const s = await make([1, 2, 3]);
        const cs = conf([1, 2, 4], {
          votersOutgoing: [1, 2, 3],
          learners: [5],
          learnersNext: [3],
          autoLeave: true,
        });
        s.applySnapshot(snap(3, 1, cs));
        expect(sortedConf(s.initialState().confState)).toEqual(cs);
        expect(sortedConf(s.snapshot().metadata.conf)).toEqual(cs);
      });

      it("applySnapshot older than the applied snapshot throws SNAPSHOT_OUT_OF_DATE and changes nothing", async () => {
        const s = await make([1]);
        s.applySnapshot(snap(10, 3, conf([1, 2])));
        s.append(ents(11, 12, 3));
        expectRaftError(() => s.applySnapshot(snap(9, 3, conf([7]))), "SNAPSHOT_OUT_OF_DATE");
        expect(s.snapshot().metadata.index).toBe(10);
        expect(s.firstIndex()).toBe(11);
        expect(s.lastIndex()).toBe(12);
        expect(sortedConf(s.initialState().confState)).toEqual(conf([1, 2]));
      });

      it("applySnapshot older than a created snapshot throws SNAPSHOT_OUT_OF_DATE", async () => {
        const s = await make([1]);
        s.append(ents(1, 6, 1));
        s.createSnapshot(5, conf([1]), new Uint8Array([1]));
        s.compact(5);
        expectRaftError(() => s.applySnapshot(snap(4, 1, conf([1]))), "SNAPSHOT_OUT_OF_DATE");
        expect(s.snapshot().metadata.index).toBe(5);
        expect(s.lastIndex()).toBe(6);
      });

      it("applySnapshot newer than a created snapshot replaces it", async () => {
        const s = await make([1]);
        s.append(ents(1, 6, 1));
        s.createSnapshot(3, conf([1]), new Uint8Array([1]));
        s.compact(3);
        s.applySnapshot(snap(20, 4, conf([1, 2, 3])));
        expect(s.snapshot().metadata.index).toBe(20);
        expect(s.firstIndex()).toBe(21);
        expect(s.lastIndex()).toBe(20);
        expect(s.term(20)).toBe(4);
      });
    });

    describe("hard state and conf state", () => {
      it("initialState returns what setHardState and setConfState stored", async () => {
        const s = await make([1, 2, 3]);
        s.setHardState({ term: 5, vote: 3, commit: 2 });
        const cs = conf([1, 2, 3], { learners: [4, 5] });
        s.setConfState(cs);
        const st = s.initialState();
        expect(st.hardState).toEqual({ term: 5, vote: 3, commit: 2 });
        expect(sortedConf(st.confState)).toEqual(cs);
      });

      it("the last setHardState wins", async () => {
        const s = await make([1]);
        s.setHardState({ term: 1, vote: 1, commit: 0 });
        s.setHardState({ term: 2, vote: 0, commit: 7 });
        expect(s.initialState().hardState).toEqual({ term: 2, vote: 0, commit: 7 });
      });

      it("keeps a joint conf state exactly", async () => {
        const s = await make([1, 2, 3]);
        const cs = conf([3, 4, 5], {
          votersOutgoing: [1, 2, 3],
          learners: [6],
          learnersNext: [1],
          autoLeave: true,
        });
        s.setConfState(cs);
        expect(sortedConf(s.initialState().confState)).toEqual(cs);
      });

      it("is isolated from later mutation of the values passed in or returned", async () => {
        const s = await make([1, 2, 3]);
        const hs = { term: 2, vote: 1, commit: 1 };
        const cs = conf([1, 2, 3]);
        s.setHardState(hs);
        s.setConfState(cs);
        hs.term = 99;
        cs.voters.push(99);
        const st = s.initialState();
        st.hardState.commit = 99;
        st.confState.voters.push(98);
        const again = s.initialState();
        expect(again.hardState).toEqual({ term: 2, vote: 1, commit: 1 });
        expect(sortedConf(again.confState)).toEqual(conf([1, 2, 3]));
      });

      it("hard state and conf state are independent of the log", async () => {
        const s = await make([1]);
        s.setHardState({ term: 3, vote: 1, commit: 2 });
        s.append(ents(1, 4, 3));
        s.compact(2);
        expect(s.initialState().hardState).toEqual({ term: 3, vote: 1, commit: 2 });
        expect(sortedConf(s.initialState().confState)).toEqual(conf([1]));
      });
    });

    const reopen = opts.reopen;
    if (reopen) {
      describe("durability (reopen)", () => {
        it("keeps an empty store empty", async () => {
          const s = await reopen(await make([1, 2, 3]));
          expect(s.firstIndex()).toBe(1);
          expect(s.lastIndex()).toBe(0);
          expect(s.term(0)).toBe(0);
          expect(s.initialState().hardState).toEqual({ term: 0, vote: 0, commit: 0 });
          expect(sortedConf(s.initialState().confState)).toEqual(conf([1, 2, 3]));
        });

        it("keeps entries, hard state and conf state", async () => {
          const s = await make([1, 2, 3]);
          const es = [
            ...entsWithTerms(1, [1, 1, 2]),
            makeEntry(2, 4, new Uint8Array([1, 2]), EntryType.ConfChange),
            makeEntry(3, 5, new Uint8Array()),
          ];
          s.append(es);
          s.setHardState({ term: 3, vote: 2, commit: 4 });
          const cs = conf([1, 2, 3], {
            learners: [4],
            votersOutgoing: [1, 2],
            learnersNext: [2],
            autoLeave: true,
          });
          s.setConfState(cs);
          const r = await reopen(s);
          expect(r.firstIndex()).toBe(1);
          expect(r.lastIndex()).toBe(5);
          expect(terms(r, 0, 5)).toEqual([0, 1, 1, 2, 2, 3]);
          expect(plainAll(r.entries(1, 6, ALL))).toEqual(plainAll(es));
          for (const e of r.entries(1, 6, ALL)) expect(checksumOk(e)).toBe(true);
          expect(r.initialState().hardState).toEqual({ term: 3, vote: 2, commit: 4 });
          expect(sortedConf(r.initialState().confState)).toEqual(cs);
        });

        it("keeps an overwritten suffix overwritten", async () => {
          const s = await make([1]);
          s.append(ents(1, 6, 1));
          s.append(ents(3, 4, 2));
          const r = await reopen(s);
          expect(r.lastIndex()).toBe(4);
          expect(terms(r, 1, 4)).toEqual([1, 1, 2, 2]);
          expectRaftError(() => r.term(5), "UNAVAILABLE");
          // Appending after reopen continues at the right place.
          r.append(ents(5, 5, 2));
          expect(r.lastIndex()).toBe(5);
        });

        it("keeps a created snapshot and the compaction point with term(index) (B44)", async () => {
          const s = await make([1, 2, 3]);
          s.append(entsWithTerms(1, [1, 1, 2, 2, 3, 3]));
          const cs = conf([1, 2, 3], { learners: [7] });
          s.createSnapshot(4, cs, new Uint8Array([4, 4, 4]));
          s.compact(4);
          const r = await reopen(s);
          expect(r.firstIndex()).toBe(5);
          expect(r.lastIndex()).toBe(6);
          expect(r.term(4)).toBe(2);
          expectRaftError(() => r.term(3), "COMPACTED");
          expectRaftError(() => r.entries(4, 6, ALL), "COMPACTED");
          expect(plainAll(r.entries(5, 7, ALL))).toEqual(plainAll(entsWithTerms(5, [3, 3])));
          const sn = r.snapshot();
          expect(sn.metadata.index).toBe(4);
          expect(sn.metadata.term).toBe(2);
          expect(sortedConf(sn.metadata.conf)).toEqual(cs);
          expect(Array.from(sn.data)).toEqual([4, 4, 4]);
          expectRaftError(() => r.createSnapshot(4, cs, new Uint8Array()), "SNAPSHOT_OUT_OF_DATE");
        });

        it("keeps an applied snapshot, its conf, and the entries appended after it", async () => {
          const s = await make([1, 2, 3]);
          s.append(ents(1, 3, 1));
          s.setHardState({ term: 5, vote: 3, commit: 12 });
          const cs = conf([2, 3, 4]);
          const sn = snap(10, 4, cs);
          s.applySnapshot(sn);
          s.append(ents(11, 12, 5));
          const r = await reopen(s);
          expect(r.firstIndex()).toBe(11);
          expect(r.lastIndex()).toBe(12);
          expect(terms(r, 10, 12)).toEqual([4, 5, 5]);
          expectRaftError(() => r.term(9), "COMPACTED");
          const got = r.snapshot();
          expect(got.metadata.index).toBe(10);
          expect(got.metadata.term).toBe(4);
          expect(sortedConf(got.metadata.conf)).toEqual(cs);
          expect(Array.from(got.data)).toEqual(Array.from(sn.data));
          expect(r.initialState().hardState).toEqual({ term: 5, vote: 3, commit: 12 });
          expect(sortedConf(r.initialState().confState)).toEqual(cs);
          expectRaftError(() => r.applySnapshot(snap(9, 4, cs)), "SNAPSHOT_OUT_OF_DATE");
        });

        it("survives several reopens with writes in between", async () => {
          let s = await make([1]);
          s.append(ents(1, 2, 1));
          s = await reopen(s);
          s.append(ents(3, 4, 2));
          s.setHardState({ term: 2, vote: 1, commit: 3 });
          s = await reopen(s);
          s.compact(2);
          s = await reopen(s);
          expect(s.firstIndex()).toBe(3);
          expect(s.lastIndex()).toBe(4);
          expect(terms(s, 2, 4)).toEqual([1, 2, 2]);
          expect(s.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 3 });
        });
      });
    }
  });
}
