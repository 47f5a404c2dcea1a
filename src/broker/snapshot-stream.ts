// The broker's side of a snapshot stream: what a leader sends a follower that
// fell behind the Raft log's start, and how the follower stages it.
//
// Source (leader), opened between Ready batches once every applied write is
// durable, so LMDB holds exactly the state at the applied index A:
//   1. STATE chunks: every key of the live small-state database, read through
//      one LMDB range iterator (a read snapshot held only for this phase,
//      which is short: the small state is metadata).
//   2. BATCH chunks: per partition, only the batches the follower lacks, from
//      max(partition start, what the follower has) to the partition's end at
//      A. Batches are immutable, and the sweeper is paused while a source is
//      open, so they are read with short lookups, turn by turn.
//   3. END: the counts, checked by the installer.
// Chunk layouts: [u8 kind] then
//   STATE [u32 n] n × ([u32 len][msgpack [key, value]])
//   BATCH [u32 topicId][u32 partition][u32 n] n × ([u32 len][stored batch])
//   END   [u32 state entries][u32 batches][f64 batch bytes]
// The runtime wraps each chunk in a checksummed frame; each stored batch also
// carries its own CRC, checked again before it is staged.
//
// Installer (follower): STATE goes into the idle state generation (cleared
// first) and into memory; batches go straight into the live batch database,
// beyond the partitions' ends, where nothing reads them yet. They are
// byte-identical to what applying the log would write, so after a crash they
// are reused: their range is recorded (stage marks) and reported in the next
// have-vector. restore() makes it all live in one small transaction.

import type { Database } from "lmdb";
import { Packr } from "msgpackr";
import type { SnapshotInstaller, SnapshotSource } from "../node/state-machine.ts";
import { batchHeader, verifyBatch } from "./batch.ts";
import { faultArmed, faultPoint } from "./fault-points.ts";
import {
  addStateEntry,
  type BrokerState,
  emptyState,
  finishState,
  type HaveMap,
  type IdemEntry,
  type PartState,
  partKey,
  type StageMark,
  type TopicMeta,
} from "./state.ts";

/** The small state, in memory. */
export interface StagedState {
  applied: number;
  nextTopicId: number;
  topics: Map<string, TopicMeta>;
  parts: Map<string, PartState>;
  groups: Map<string, Map<string, number>>;
  idem: Map<string, IdemEntry>;
}

const STATE = 1;
const BATCH = 2;
const END = 3;
/** State chunks stay small: packing them is work on the event loop. */
const MAX_STATE_CHUNK_BYTES = 256 * 1024;

const packr = new Packr({ useRecords: false, variableMapSize: true });

interface Work {
  topicId: number;
  partition: number;
  /** Next offset to send (the batch holding it goes first). */
  next: number;
  end: number;
}

export class BatchSnapshotSource implements SnapshotSource {
  readonly stats = { stateBytes: 0, batchBytes: 0, batches: 0 };
  private stateIter: Iterator<{ key: unknown; value: unknown }> | undefined;
  private pendingEntry: { key: unknown; value: unknown } | undefined;
  private stateEntries = 0;
  private readonly parts: { topicId: number; partition: number; start: number; end: number }[] = [];
  private work: Work[] = [];
  private ended = false;
  private closed = false;

  constructor(
    private readonly state: BrokerState,
    readonly index: number,
    stateDb: Database<unknown, string>,
    private readonly have: HaveMap,
    private readonly onClose: () => void,
  ) {
    // The iterator's read snapshot is taken now, at the applied index.
    this.stateIter = stateDb.getRange()[Symbol.iterator]();
    const first = this.stateIter.next();
    if (first.done) this.stateIter = undefined;
    else this.pendingEntry = first.value;
  }

  next(maxBytes: number): Uint8Array | null {
    if (this.closed) throw new Error("snapshot source is closed");
    if (this.pendingEntry) return this.nextState(Math.min(maxBytes, MAX_STATE_CHUNK_BYTES));
    if (this.stateIter) this.endState();
    while (this.work.length > 0) {
      const chunk = this.nextBatches(this.work[0]!, maxBytes);
      if (chunk) return chunk;
      this.work.shift();
    }
    if (this.ended) return null;
    this.ended = true;
    const out = Buffer.allocUnsafe(17);
    out[0] = END;
    out.writeUInt32BE(this.stateEntries, 1);
    out.writeUInt32BE(this.stats.batches, 5);
    out.writeDoubleBE(this.stats.batchBytes, 9);
    return out;
  }

  private nextState(maxBytes: number): Uint8Array {
    const packed: Uint8Array[] = [];
    let size = 5;
    while (this.pendingEntry && size < maxBytes) {
      const { key, value } = this.pendingEntry;
      const k = String(key);
      if (k.startsWith("part:")) {
        const [id, p] = k.slice(5).split("/").map(Number) as [number, number];
        const s = value as PartState;
        this.parts.push({ topicId: id, partition: p, start: s.start, end: s.end });
      }
      const b = packr.pack([k, value]);
      packed.push(b);
      size += 4 + b.length;
      this.stateEntries++;
      const n = this.stateIter!.next();
      this.pendingEntry = n.done ? undefined : n.value;
    }
    const out = Buffer.allocUnsafe(size);
    out[0] = STATE;
    let o = out.writeUInt32BE(packed.length, 1);
    for (const b of packed) {
      o = out.writeUInt32BE(b.length, o);
      out.set(b, o);
      o += b.length;
    }
    this.stats.stateBytes += size;
    return out;
  }

  /** The state phase is over: release its read snapshot and plan the batches. */
  private endState(): void {
    this.stateIter?.return?.();
    this.stateIter = undefined;
    for (const p of this.parts) {
      const h = this.have.get(partKey(p.topicId, p.partition));
      let from = p.start;
      if (h) {
        from = Math.max(from, h.end);
        // A staged range counts only if it joins what the follower will hold.
        if (h.stagedTo > h.stagedFrom && h.stagedFrom <= from && h.stagedTo > from) from = h.stagedTo;
      }
      if (from < p.end)
        this.work.push({ topicId: p.topicId, partition: p.partition, next: from, end: p.end });
    }
  }

  private nextBatches(w: Work, maxBytes: number): Uint8Array | null {
    const values: Uint8Array[] = [];
    let size = 13;
    while (w.next < w.end && (values.length === 0 || size < maxBytes)) {
      const b =
        values.length === 0
          ? this.state.findBatch(w.topicId, w.partition, w.next)
          : this.state.batchAt(w.topicId, w.partition, w.next);
      if (!b) throw new Error(`snapshot source: batch ${w.topicId}/${w.partition}@${w.next} is missing`);
      values.push(b.value);
      size += 4 + b.value.length;
      w.next = b.base + b.count;
    }
    if (values.length === 0) return null;
    const out = Buffer.allocUnsafe(size);
    out[0] = BATCH;
    let o = out.writeUInt32BE(w.topicId, 1);
    o = out.writeUInt32BE(w.partition, o);
    o = out.writeUInt32BE(values.length, o);
    for (const v of values) {
      o = out.writeUInt32BE(v.length, o);
      out.set(v, o);
      o += v.length;
    }
    this.stats.batches += values.length;
    this.stats.batchBytes += size - 13 - 4 * values.length;
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stateIter?.return?.();
    this.stateIter = undefined;
    this.onClose();
  }
}

export class StagingInstaller implements SnapshotInstaller {
  private readonly staged: StagedState = emptyState();
  private readonly idem: [string, IdemEntry][] = [];
  private stateEntries = 0;
  private batches = 0;
  private batchBytes = 0;
  private batchChunks = 0;
  /** Per partKey: where this stream's next batch must start. */
  private readonly nextBase = new Map<string, number>();
  private ended = false;
  private done = false;

  constructor(
    private readonly state: BrokerState,
    private readonly db: Database<unknown, string>,
    private readonly onFinish: (s: StagedState) => Uint8Array,
  ) {
    // The idle generation may hold an older, unfinished stream.
    db.clearAsync();
  }

  write(chunk: Uint8Array): void {
    if (this.done || this.ended) throw new Error("snapshot install: chunk after the end");
    if (chunk.length < 1) throw new Error("snapshot install: empty chunk");
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    switch (buf[0]) {
      case STATE:
        this.writeState(buf);
        return;
      case BATCH:
        this.writeBatches(buf);
        return;
      case END:
        this.writeEnd(buf);
        return;
      default:
        throw new Error(`snapshot install: unknown chunk kind ${buf[0]}`);
    }
  }

  private writeState(buf: Buffer): void {
    const n = buf.readUInt32BE(1);
    let o = 5;
    for (let i = 0; i < n; i++) {
      const len = buf.readUInt32BE(o);
      o += 4;
      if (o + len > buf.length) throw new Error("snapshot install: state entry overruns its chunk");
      const [k, v] = packr.unpack(buf.subarray(o, o + len)) as [string, unknown];
      o += len;
      if (typeof k !== "string") throw new Error("snapshot install: state key is not a string");
      this.stateEntries++;
      if (k === "applied") continue; // restore() writes the index it installs at
      this.db.put(k, v);
      addStateEntry(this.staged, k, v, this.idem);
    }
    if (o !== buf.length) throw new Error("snapshot install: trailing bytes in a state chunk");
    if (faultArmed("install-state")) void this.state.env.flushed.then(() => faultPoint("install-state"));
  }

  private writeBatches(buf: Buffer): void {
    const topicId = buf.readUInt32BE(1);
    const partition = buf.readUInt32BE(5);
    const n = buf.readUInt32BE(9);
    const pk = partKey(topicId, partition);
    let o = 13;
    // Check the whole chunk before staging any of it.
    const batches: { base: number; count: number; value: Uint8Array }[] = [];
    let expect = this.nextBase.get(pk);
    for (let i = 0; i < n; i++) {
      const len = buf.readUInt32BE(o);
      o += 4;
      if (o + len > buf.length) throw new Error("snapshot install: batch overruns its chunk");
      // A copy: the staged value must not pin (or alias) the whole frame.
      const value = Uint8Array.prototype.slice.call(buf.subarray(o, o + len)) as Uint8Array;
      o += len;
      const bad = verifyBatch(value);
      if (bad) throw new Error(`snapshot install: batch ${pk}: ${bad}`);
      const h = batchHeader(value);
      if (expect !== undefined && h.baseOffset !== expect) {
        throw new Error(`snapshot install: batch ${pk}@${h.baseOffset} does not follow ${expect}`);
      }
      expect = h.baseOffset + h.count;
      batches.push({ base: h.baseOffset, count: h.count, value });
    }
    if (o !== buf.length) throw new Error("snapshot install: trailing bytes in a batch chunk");
    if (batches.length === 0) return;
    for (const b of batches) this.state.putBatch(topicId, partition, b.base, b.count, b.value);
    const first = batches[0]!.base;
    const last = expect!;
    const m: StageMark | undefined = this.state.stageMarks.get(pk);
    const mark =
      m && m.from <= first && first <= m.to
        ? { from: m.from, to: Math.max(m.to, last) }
        : { from: first, to: last };
    this.state.markStaged(topicId, partition, mark);
    this.nextBase.set(pk, last);
    if (++this.batchChunks === 3 && faultArmed("install-batches")) {
      void this.state.env.flushed.then(() => faultPoint("install-batches"));
    }
    this.batches += batches.length;
    for (const b of batches) this.batchBytes += b.value.length;
  }

  private writeEnd(buf: Buffer): void {
    if (buf.length !== 17) throw new Error("snapshot install: malformed end");
    const entries = buf.readUInt32BE(1);
    const batches = buf.readUInt32BE(5);
    const bytes = buf.readDoubleBE(9);
    const got = this.stateEntries;
    if (entries !== got || batches !== this.batches || bytes !== this.batchBytes) {
      throw new Error(
        `snapshot install: stream incomplete (state ${got}/${entries}, batches ${this.batches}/${batches}, bytes ${this.batchBytes}/${bytes})`,
      );
    }
    this.ended = true;
  }

  backlogBytes(): number {
    return this.state.uncommittedBatchBytes();
  }

  finish(): Uint8Array {
    if (!this.ended) throw new Error("snapshot install: finish before the end of the stream");
    if (this.done) throw new Error("snapshot install: finished twice");
    faultPoint("install-before-commit");
    this.done = true;
    finishState(this.staged, this.idem);
    return this.onFinish(this.staged);
  }

  abort(): void {
    this.done = true;
  }
}
