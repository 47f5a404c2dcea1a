// LmdbStorage: the durable Storage of a node, in one LMDB environment per node.
//
// Layout (named sub-databases of one environment, so that one LMDB transaction
// can cover the log, the hard state and the application's own data):
//   log   index (number) -> entry: [format u8][type u8][crc u32 LE][term u64 LE][data...]
//   meta  "v" format version, "hs" hard state, "cs" conf state, "snap" snapshot
//         metadata (+ length and CRC32C of its data), "first" the compaction point
//         (index and term of the entry before the first one kept)
//   snap  "data" -> the snapshot's bytes
// The application opens its own sub-databases in `env` and writes them with plain
// `put`/`remove` in the same event turn as the storage writes it belongs with
// (e.g. applied entries + applied index): lmdb-js commits everything queued in
// one event turn in one transaction.
//
// Reads are synchronous and see every write immediately (read-your-writes):
// firstIndex/lastIndex/hard state/conf state/snapshot metadata live in memory,
// and a tail cache keeps the most recent entries, including every entry whose
// write is not yet durable. Entries older than the cache are read from disk and
// their CRC is checked (CORRUPT_ENTRY otherwise).
//
// Writes are queued asynchronous lmdb-js writes: all writes of one event turn
// become one transaction with one sync (group commit). `flush()` resolves when
// every write issued so far is committed and fsynced.

import { type Database, open, type RootDatabase } from "lmdb";
import {
  type ConfState,
  checksumOk,
  cloneConfState,
  crc32c,
  type Entry,
  type EntryType,
  emptyConfState,
  entryWireSize,
  type HardState,
  type InitialState,
  RaftError,
  type Snapshot,
  type Storage,
} from "../raft/index.ts";

export interface LmdbStorageOptions {
  /** The initial voters, used only when the store is created (an empty directory). */
  voters?: number[];
  /** The initial learners, used only when the store is created. */
  learners?: number[];
  /** Skip fsync (tests, benchmarks): a kill -9 still loses nothing committed, a power cut may. */
  noSync?: boolean;
  /** Initial LMDB map size in bytes (lmdb-js grows it as needed). */
  mapSize?: number;
  /** Maximum number of named databases, including the 3 of the storage (default 32). */
  maxDbs?: number;
  /** Bytes of recent entries kept in memory (default 64 MiB). Non-durable entries are always kept. */
  cacheBytes?: number;
  /** Called with the latency of each group commit, from its first write to durable, in seconds. */
  onSync?: (seconds: number) => void;
}

export interface LmdbStorageStats {
  /** Group commits that became durable (one per event turn with writes). */
  syncs: number;
  /** LMDB write transactions committed (as reported by lmdb-js). */
  commits: number;
  /** Latency of the last group commit, from its first write to durable, in ms. */
  lastSyncMs: number;
  /** Bytes handed to LMDB as values (entries, metadata, snapshots). */
  bytesWritten: number;
  /** Entries appended. */
  entriesWritten: number;
  /** Entries and bytes held by the tail cache. */
  cacheEntries: number;
  cacheBytes: number;
  /** Entries read back from disk (cache misses). */
  diskReads: number;
  /** Writes issued but not yet known durable. */
  pendingWrites: number;
}

/** Format byte of each stored log entry. */
const FORMAT = 1;
/**
 * Format of the whole store ("v" in meta). 2: the state machine's data lives
 * in its own databases and snapshots carry no data (segment store). 1 (raftbus
 * 0.1): one key per record and snapshots holding every record.
 */
export const STORE_FORMAT = 2;
const HEADER = 14;
/** entryWireSize(e) - e.data.length. */
const WIRE_OVERHEAD = entryWireSize({ term: 0, index: 0, type: 0, data: new Uint8Array(), crc: 0 });
const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
const K_VERSION = "v";
const K_HARD = "hs";
const K_CONF = "cs";
const K_SNAP = "snap";
const K_FIRST = "first";
const K_SNAP_DATA = "data";
/** Prefix of the runtime's small records (getMeta/putMeta) in the `meta` db. */
const K_APP = "app:";

interface SnapMeta {
  index: number;
  term: number;
  conf: ConfState;
  dataLen: number;
  dataCrc: number;
}

/** Encodes an entry as the value stored in the `log` db (the key is its index). */
export function encodeEntry(e: Entry, out?: Uint8Array): Uint8Array {
  const b = out ?? new Uint8Array(HEADER + e.data.length);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[0] = FORMAT;
  b[1] = e.type;
  v.setUint32(2, e.crc >>> 0, true);
  v.setUint32(6, e.term >>> 0, true);
  v.setUint32(10, Math.floor(e.term / 0x100000000), true);
  b.set(e.data, HEADER);
  return b;
}

/** Decodes a stored value and checks its CRC against `index`; throws CORRUPT_ENTRY if bad. */
export function decodeEntry(index: number, b: Uint8Array | undefined): Entry {
  if (b === undefined) {
    throw new RaftError("CORRUPT_ENTRY", `log entry ${index} is missing on disk`);
  }
  if (b.length < HEADER || b[0] !== FORMAT) {
    throw new RaftError("CORRUPT_ENTRY", `log entry ${index} on disk is malformed (${b.length} bytes)`);
  }
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const e: Entry = {
    term: v.getUint32(6, true) + v.getUint32(10, true) * 0x100000000,
    index,
    type: b[1]! as EntryType,
    data: new Uint8Array(b.buffer, b.byteOffset + HEADER, b.length - HEADER),
    crc: v.getUint32(2, true),
  };
  if (!checksumOk(e)) {
    throw new RaftError("CORRUPT_ENTRY", `log entry ${index} on disk fails its checksum`);
  }
  return e;
}

export class LmdbStorage implements Storage {
  /** The environment (root database): open application sub-databases with `env.openDB(name, opts)`. */
  readonly env: RootDatabase;
  readonly dir: string;
  /** Histogram hook: called with each group commit's latency in seconds. */
  onSync: ((seconds: number) => void) | undefined;

  private readonly log: Database<Uint8Array, number>;
  private readonly meta: Database<unknown, string>;
  private readonly snapDb: Database<Uint8Array, string>;
  private readonly maxCacheBytes: number;

  // Cached durable state (as of the last write issued, not the last durable one).
  private hardState: HardState;
  private confState: ConfState;
  private snapMeta: SnapMeta;
  /** Snapshot data not yet durable (read from disk once it is). */
  private pendingSnapData: Uint8Array | null = null;
  private pendingSnapSeq = 0;
  /** Runtime records read or written so far (small; kept for read-your-writes). */
  private readonly appMeta = new Map<string, Uint8Array | undefined>();
  /** The compaction point: firstIndex() - 1 and its term. */
  private dummyIndex: number;
  private dummyTerm: number;
  private last: number;

  // Tail cache: entries [tailStart, last], at tailEnts[tailHead + (i - tailStart)].
  private tailEnts: Entry[] = [];
  private tailSeqs: number[] = [];
  private tailHead = 0;
  private tailStart: number;
  private tailBytes = 0;

  // Write sequencing: every write call gets a seq; durableSeq is the highest seq
  // known durable (all writes up to it are committed and synced).
  private writeSeq = 0;
  private durableSeq = 0;
  private turn: { firstAt: number } | null = null;
  private lastCommitPromise: Promise<boolean> | null = null;
  private failure: Error | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  private st = {
    syncs: 0,
    commits: 0,
    lastSyncMs: 0,
    bytesWritten: 0,
    entriesWritten: 0,
    diskReads: 0,
  };

  private constructor(dir: string, env: RootDatabase, opts: LmdbStorageOptions) {
    this.dir = dir;
    this.env = env;
    this.onSync = opts.onSync;
    this.maxCacheBytes = opts.cacheBytes ?? DEFAULT_CACHE_BYTES;
    this.log = env.openDB<Uint8Array, number>("log", { encoding: "binary" });
    this.meta = env.openDB<unknown, string>("meta", { encoding: "msgpack" });
    this.snapDb = env.openDB<Uint8Array, string>("snap", { encoding: "binary" });
    env.on("aftercommit", (ev: { txnId?: number }) => {
      // lmdb-js also reports a spurious txnId 0 once, for its initial sentinel.
      if (typeof ev?.txnId === "number" && ev.txnId > 0) this.st.commits++;
    });

    if (this.meta.get(K_VERSION) === undefined) {
      const cs: ConfState = {
        ...emptyConfState(),
        voters: [...(opts.voters ?? [])],
        learners: [...(opts.learners ?? [])],
      };
      const sm: SnapMeta = { index: 0, term: 0, conf: cs, dataLen: 0, dataCrc: 0 };
      // Created synchronously and durably, before any other write is queued.
      env.transactionSync(() => {
        this.meta.put(K_HARD, { term: 0, vote: 0, commit: 0 });
        this.meta.put(K_CONF, cs);
        this.meta.put(K_SNAP, sm);
        this.meta.put(K_FIRST, { index: 0, term: 0 });
        this.snapDb.put(K_SNAP_DATA, new Uint8Array());
        this.meta.put(K_VERSION, STORE_FORMAT);
      });
    }
    const version = this.meta.get(K_VERSION);
    if (version === 1) {
      throw new Error(
        `${dir} was written by raftbus 0.1 (storage format 1: one key per record, snapshots holding every record); this version stores record batches (format ${STORE_FORMAT}) and does not read it. Move the directory aside and start the node with an empty --data-dir: as a member of a running cluster it catches up from its peers. A cluster whose nodes all have format 1 must be created anew (read its topics out with raftbus 0.1's \`raftbus consume\` first).`,
      );
    }
    if (version !== STORE_FORMAT) {
      throw new Error(`${dir}: unsupported storage format ${String(version)}`);
    }
    const hs = this.meta.get(K_HARD) as HardState | undefined;
    const cs = this.meta.get(K_CONF) as ConfState | undefined;
    const sm = this.meta.get(K_SNAP) as SnapMeta | undefined;
    const first = this.meta.get(K_FIRST) as { index: number; term: number } | undefined;
    if (!hs || !cs || !sm || !first) throw new Error(`${dir}: storage metadata is incomplete`);
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    this.confState = normConf(cs);
    this.snapMeta = { ...sm, conf: normConf(sm.conf) };
    this.dummyIndex = first.index;
    this.dummyTerm = first.term;
    let last = this.dummyIndex;
    for (const k of this.log.getKeys({ reverse: true, limit: 1 })) {
      if (typeof k === "number" && k > last) last = k;
    }
    this.last = last;
    this.tailStart = last + 1;
  }

  /** Opens (creating if needed) the store in `dir`: one LMDB environment. */
  static open(dir: string, opts: LmdbStorageOptions = {}): LmdbStorage {
    const env = open(dir, {
      noSubdir: false,
      maxDbs: opts.maxDbs ?? 32,
      ...(opts.noSync ? { noSync: true } : {}),
      ...(opts.mapSize !== undefined ? { mapSize: opts.mapSize } : {}),
    });
    try {
      return new LmdbStorage(dir, env, opts);
    } catch (e) {
      void env.close();
      throw e;
    }
  }

  // ---- reads ----

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.confState) };
  }

  firstIndex(): number {
    return this.dummyIndex + 1;
  }

  lastIndex(): number {
    return this.last;
  }

  term(index: number): number {
    if (index < this.dummyIndex) {
      throw new RaftError("COMPACTED", `term(${index}): compacted before ${this.dummyIndex}`);
    }
    if (index > this.last) throw new RaftError("UNAVAILABLE", `term(${index}): last is ${this.last}`);
    if (index === this.dummyIndex) return this.dummyTerm;
    if (index >= this.tailStart) return this.tailEnts[this.tailHead + (index - this.tailStart)]!.term;
    this.st.diskReads++;
    return decodeEntry(index, this.log.get(index)).term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.dummyIndex) {
      throw new RaftError("COMPACTED", `entries(${lo}): compacted before ${this.dummyIndex + 1}`);
    }
    if (hi > this.last + 1) {
      throw new RaftError("UNAVAILABLE", `entries(${lo}, ${hi}): last is ${this.last}`);
    }
    const out: Entry[] = [];
    let bytes = 0;
    let i = lo;
    const diskEnd = Math.min(hi, this.tailStart);
    if (i < diskEnd) {
      for (const { key, value } of this.log.getRange({ start: i, end: diskEnd })) {
        if (key !== i) decodeEntry(i, undefined); // a hole: throws CORRUPT_ENTRY
        // The size limit first: an entry not returned is not decoded (nor checked).
        bytes += value.length - HEADER + WIRE_OVERHEAD;
        if (out.length > 0 && bytes > maxBytes) return out;
        this.st.diskReads++;
        out.push(decodeEntry(i, value));
        i++;
      }
      if (i < diskEnd) decodeEntry(i, undefined); // missing at the end of the range
    }
    for (; i < hi; i++) {
      const e = this.tailEnts[this.tailHead + (i - this.tailStart)]!;
      bytes += entryWireSize(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): Snapshot {
    const m = this.snapMeta;
    let data = this.pendingSnapData;
    if (data === null) {
      if (m.dataLen === 0) {
        data = new Uint8Array();
      } else {
        const b = this.snapDb.get(K_SNAP_DATA);
        if (b === undefined || b.length !== m.dataLen || crc32c(b) !== m.dataCrc) {
          throw new RaftError("CORRUPT_ENTRY", `snapshot ${m.index} data on disk fails its checksum`);
        }
        data = new Uint8Array(b.buffer, b.byteOffset, b.length);
      }
    }
    return { metadata: { index: m.index, term: m.term, conf: cloneConfState(m.conf) }, data };
  }

  // ---- writes (queued; one transaction per event turn) ----

  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.dummyIndex + 1;
    const newLast = entries[entries.length - 1]!.index;
    if (newLast < first) return; // all already compacted
    let es = entries;
    if (first > es[0]!.index) es = es.slice(first - es[0]!.index);
    const at = es[0]!.index;
    if (at > this.last + 1) {
      throw new RaftError("UNAVAILABLE", `append at ${at} leaves a gap after ${this.last}`);
    }
    this.checkOpen();
    const seq = this.beginWrite();
    // Stale keys beyond the new last index (a conflicting suffix).
    for (let k = newLast + 1; k <= this.last; k++) this.track(this.log.remove(k));
    let total = 0;
    for (const e of es) total += HEADER + e.data.length;
    // One fresh buffer per call: lmdb-js reads the values off-thread, later.
    const buf = new Uint8Array(total);
    let off = 0;
    for (const e of es) {
      const n = HEADER + e.data.length;
      const v = encodeEntry(e, buf.subarray(off, off + n));
      off += n;
      this.track(this.log.put(e.index, v));
    }
    this.st.bytesWritten += total;
    this.st.entriesWritten += es.length;

    // Tail cache: drop what is replaced, then add the new entries (pinned until durable).
    if (at <= this.tailStart) {
      this.dropTailFrom(this.tailStart);
      this.tailEnts.length = 0;
      this.tailSeqs.length = 0;
      this.tailHead = 0;
      this.tailBytes = 0;
      this.tailStart = at;
    } else {
      this.dropTailFrom(at);
    }
    for (const e of es) {
      this.tailEnts.push(e);
      this.tailSeqs.push(seq);
      this.tailBytes += cacheSize(e);
    }
    this.last = newLast;
    this.evict();
  }

  setHardState(hs: HardState): void {
    this.checkOpen();
    this.beginWrite();
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    this.writeMeta(K_HARD, this.hardState, 24);
  }

  setConfState(cs: ConfState): void {
    this.checkOpen();
    this.beginWrite();
    this.confState = cloneConfState(cs);
    this.writeMeta(K_CONF, this.confState, 64);
  }

  applySnapshot(snap: Snapshot): void {
    const m = snap.metadata;
    if (m.index < this.snapMeta.index) {
      throw new RaftError("SNAPSHOT_OUT_OF_DATE", `snapshot ${m.index} < ${this.snapMeta.index}`);
    }
    this.checkOpen();
    const seq = this.beginWrite();
    for (let k = this.dummyIndex + 1; k <= this.last; k++) this.track(this.log.remove(k));
    this.writeSnapshot(seq, m.index, m.term, m.conf, snap.data);
    this.confState = cloneConfState(m.conf);
    this.writeMeta(K_CONF, this.confState, 64);
    this.setFirst(m.index, m.term);
    this.tailEnts.length = 0;
    this.tailSeqs.length = 0;
    this.tailHead = 0;
    this.tailBytes = 0;
    this.last = m.index;
    this.tailStart = m.index + 1;
  }

  createSnapshot(index: number, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snapMeta.index) {
      throw new RaftError("SNAPSHOT_OUT_OF_DATE", `snapshot ${index} <= ${this.snapMeta.index}`);
    }
    if (index > this.last) throw new RaftError("UNAVAILABLE", `snapshot ${index} > last ${this.last}`);
    const term = this.term(index);
    this.checkOpen();
    const seq = this.beginWrite();
    this.writeSnapshot(seq, index, term, conf, data);
    return this.snapshot();
  }

  compact(index: number): void {
    if (index <= this.dummyIndex) return;
    if (index > this.last) throw new RaftError("UNAVAILABLE", `compact(${index}) > last ${this.last}`);
    const term = this.term(index);
    this.checkOpen();
    this.beginWrite();
    for (let k = this.dummyIndex + 1; k <= index; k++) this.track(this.log.remove(k));
    this.setFirst(index, term);
    // Drop compacted entries from the front of the tail cache.
    while (this.tailStart <= index && this.tailHead < this.tailEnts.length) this.evictOne();
    if (this.tailStart <= index) this.tailStart = index + 1;
    this.packTail();
  }

  // ---- small runtime records ----

  /** A small record of the runtime (e.g. the address book), as last put. */
  getMeta(key: string): Uint8Array | undefined {
    let v = this.appMeta.get(key);
    if (v === undefined && !this.appMeta.has(key)) {
      const raw = this.meta.get(K_APP + key);
      v = raw instanceof Uint8Array ? Uint8Array.from(raw) : undefined;
      this.appMeta.set(key, v);
    }
    return v === undefined ? undefined : v.slice();
  }

  /** Stores a small record of the runtime, in the current batch (durable with the next flush). */
  putMeta(key: string, value: Uint8Array): void {
    this.checkOpen();
    this.beginWrite();
    const copy = Uint8Array.from(value);
    this.appMeta.set(key, copy);
    this.writeMeta(K_APP + key, copy, copy.length + key.length);
  }

  // ---- durability ----

  /** Resolves once every write issued so far is committed and synced to disk. */
  async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    const target = this.writeSeq;
    if (target <= this.durableSeq) return;
    const commit = this.lastCommitPromise;
    await this.env.flushed;
    // Rejects if the last transaction failed (earlier failures are in `failure`).
    if (commit) await commit;
    if (this.failure) throw this.failure;
    this.markDurable(target);
  }

  /** Flushes and closes the environment. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        try {
          await this.flush();
        } finally {
          this.closed = true;
          await this.env.close();
        }
      })();
    }
    return this.closing;
  }

  stats(): LmdbStorageStats {
    return {
      ...this.st,
      cacheEntries: this.tailEnts.length - this.tailHead,
      cacheBytes: this.tailBytes,
      pendingWrites: this.writeSeq - this.durableSeq,
    };
  }

  // ---- internals ----

  private checkOpen(): void {
    if (this.closed || this.closing) throw new Error(`${this.dir}: storage is closed`);
    if (this.failure) throw this.failure;
  }

  /**
   * Starts a write: a new seq, and on the first write of an event turn, a watch on
   * that turn's group commit becoming durable.
   */
  private beginWrite(): number {
    const seq = ++this.writeSeq;
    if (this.turn === null) {
      const turn = { firstAt: performance.now() };
      this.turn = turn;
      // lmdb-js closes the turn's batch in a setImmediate queued by the first write of
      // the turn, so before this one: `env.flushed` here covers every write so far.
      setImmediate(() => {
        this.turn = null;
        if (this.closed) return;
        const upTo = this.writeSeq;
        Promise.resolve(this.env.flushed).then(
          () => {
            const ms = performance.now() - turn.firstAt;
            this.st.syncs++;
            this.st.lastSyncMs = ms;
            this.markDurable(upTo);
            this.onSync?.(ms / 1000);
          },
          (e: unknown) => this.fail(e),
        );
      });
    }
    return seq;
  }

  /** Watches a write's commit promise (shared by a batch) for failure. */
  private track(p: Promise<boolean>): void {
    if (p !== this.lastCommitPromise) {
      this.lastCommitPromise = p;
      p.then(undefined, (e: unknown) => this.fail(e));
    }
  }

  private fail(e: unknown): void {
    if (!this.failure) {
      this.failure = e instanceof Error ? e : new Error(String(e));
    }
  }

  private writeMeta(key: string, value: unknown, approxBytes: number): void {
    this.track(this.meta.put(key, value));
    this.st.bytesWritten += approxBytes;
  }

  private setFirst(index: number, term: number): void {
    this.dummyIndex = index;
    this.dummyTerm = term;
    this.writeMeta(K_FIRST, { index, term }, 16);
  }

  private writeSnapshot(seq: number, index: number, term: number, conf: ConfState, data: Uint8Array): void {
    // A private copy: lmdb-js reads it off-thread later, and snapshot() serves it until durable.
    const copy = data.slice();
    this.snapMeta = { index, term, conf: cloneConfState(conf), dataLen: copy.length, dataCrc: crc32c(copy) };
    this.track(this.snapDb.put(K_SNAP_DATA, copy));
    this.writeMeta(K_SNAP, this.snapMeta, 64 + copy.length);
    this.pendingSnapData = copy;
    this.pendingSnapSeq = seq;
  }

  private markDurable(seq: number): void {
    if (seq <= this.durableSeq) return;
    this.durableSeq = seq;
    if (this.pendingSnapData !== null && this.pendingSnapSeq <= seq) this.pendingSnapData = null;
    this.evict();
  }

  /** Removes cached entries at and after index `from` (>= tailStart), adjusting bytes. */
  private dropTailFrom(from: number): void {
    const cut = this.tailHead + (from - this.tailStart);
    for (let j = cut; j < this.tailEnts.length; j++) this.tailBytes -= cacheSize(this.tailEnts[j]!);
    this.tailEnts.length = cut;
    this.tailSeqs.length = cut;
  }

  private evictOne(): void {
    this.tailBytes -= cacheSize(this.tailEnts[this.tailHead]!);
    // Drop the reference now: the slot itself is reclaimed later by packTail().
    (this.tailEnts as (Entry | undefined)[])[this.tailHead] = undefined;
    this.tailHead++;
    this.tailStart++;
  }

  /** Evicts durable entries from the front while the cache is over its budget. */
  private evict(): void {
    if (this.tailBytes <= this.maxCacheBytes) return;
    let evicted = false;
    while (
      this.tailBytes > this.maxCacheBytes &&
      this.tailHead < this.tailEnts.length &&
      this.tailSeqs[this.tailHead]! <= this.durableSeq
    ) {
      if (!evicted) {
        // Reads of evicted entries go to disk: make sure they see the latest commit.
        this.env.resetReadTxn();
        evicted = true;
      }
      this.evictOne();
    }
    if (evicted) this.packTail();
  }

  private packTail(): void {
    if (this.tailHead > 1024 && this.tailHead * 2 > this.tailEnts.length) {
      this.tailEnts = this.tailEnts.slice(this.tailHead);
      this.tailSeqs = this.tailSeqs.slice(this.tailHead);
      this.tailHead = 0;
    } else if (this.tailHead === this.tailEnts.length) {
      this.tailEnts.length = 0;
      this.tailSeqs.length = 0;
      this.tailHead = 0;
    }
  }
}

function cacheSize(e: Entry): number {
  return HEADER + e.data.length + 64;
}

function normConf(cs: Partial<ConfState>): ConfState {
  return {
    voters: [...(cs.voters ?? [])],
    learners: [...(cs.learners ?? [])],
    votersOutgoing: [...(cs.votersOutgoing ?? [])],
    learnersNext: [...(cs.learnersNext ?? [])],
    autoLeave: cs.autoLeave ?? false,
  };
}
