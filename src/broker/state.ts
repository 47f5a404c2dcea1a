// The broker's replicated state machine: topics, partitions with dense
// offsets, record batches, consumer-group offsets and idempotency records.
// Applying a command is deterministic (time comes from the leader's stamp in
// the command), and its writes share one LMDB transaction with the applied
// index.
//
// Layout (named databases in the node's one LMDB environment):
//   broker.meta      "format" (2), "gen" (which state database is live),
//                    "stage:<topicId>/<p>" (staged batch ranges, see below)
//   broker.state.0|1 the small state, msgpack: "applied", "nextTopicId",
//                    "topic:<name>", "part:<id>/<p>", "group:<g>", "idem:<k>".
//                    Kept in memory too and written through. Two generations:
//                    a snapshot stream is staged into the idle one and made
//                    live by flipping "gen" (the commit point).
//   broker.batches   record batches (batch.ts): one value per produce request
//                    and partition, under (topicId, partition, baseOffset).
//
// A local Raft snapshot holds none of this (it is durable as applied); a
// lagging follower receives a stream (snapshot-stream.ts) of the small state
// and of only the batches it lacks.
//
// Retention and topic deletion only move metadata in apply (O(1)); the
// sweeper (sweeper.ts) deletes the batches below each partition's start, and
// those of deleted topics, in bounded slices in the background.
//
// Reads see every applied batch at once: writes are queued asynchronously and
// become visible in LMDB only when their transaction commits, so applied (and
// staged) batches stay in an in-memory overlay until then.

import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Database, RootDatabase } from "lmdb";
import type { SnapshotInstaller, SnapshotSource, StateMachine } from "../node/state-machine.ts";
import {
  batchCount,
  batchHeader,
  batchKey,
  checkPayload,
  decodeRecords,
  encodeBatch,
  recordTimestampAt,
  verifyBatch,
} from "./batch.ts";
import { type Command, decodeCommand, type ProduceCommand } from "./commands.ts";
import { faultArmed, faultPoint } from "./fault-points.ts";
import { BatchSnapshotSource, type StagedState, StagingInstaller } from "./snapshot-stream.ts";
import {
  type BrokerErrorCode,
  type GroupOffset,
  LIMITS,
  MAX_PARTITIONS,
  type SectionPosition,
  type StoredRecord,
  TOPIC_NAME,
  type TopicInfo,
} from "./types.ts";

export interface TopicMeta {
  id: number;
  name: string;
  partitions: number;
  retentionMs: number | null;
  retentionBytes: number | null;
}

export interface PartState {
  /** First offset readable (retention moves it; it may fall inside a batch). */
  start: number;
  /** The offset the next record gets. */
  end: number;
  /** Bytes of the stored batches not wholly below start. */
  bytes: number;
  lastTs: number;
}

export interface IdemEntry {
  hash: string;
  result: SectionPosition[];
  at: number;
  /** Raft index of the produce: the apply order, which every replica shares. */
  seq: number;
}

export type ApplyResult =
  | { ok: true; value: unknown }
  | { ok: false; code: BrokerErrorCode; message: string; extra?: Record<string, unknown> };

const fail = (code: BrokerErrorCode, message: string, extra?: Record<string, unknown>): ApplyResult =>
  extra ? { ok: false, code, message, extra } : { ok: false, code, message };

/** The store's format: 2 = record batches (1 was one key per record). */
const BROKER_FORMAT = 2;

export const partKey = (id: number, p: number) => `${id}/${p}`;
const idemKey = (topic: string, key: string) => `${topic}\u0000${key}`;

/** A batch as found by a read: its base offset, record count and stored bytes. */
export interface FoundBatch {
  base: number;
  count: number;
  value: Uint8Array;
}

/** A batch written but not yet committed: reads find it here. */
type OverlayEntry = FoundBatch;

export interface BrokerEvents {
  /** Records were appended: the partition's new end offset. */
  append: [topic: string, partition: number, endOffset: number];
  /** Retention moved a partition's start offset. */
  trim: [topic: string, partition: number, startOffset: number];
  deleted: [topic: string];
  /** Batches became garbage (a trim, a delete, a restore): the sweeper has work. */
  garbage: [];
}

/** A staged range of batches beyond a partition's end (a snapshot stream cut short). */
export interface StageMark {
  from: number;
  to: number;
}

export class BrokerState extends EventEmitter<BrokerEvents> implements StateMachine<ApplyResult> {
  readonly env: RootDatabase;
  private readonly metaDb: Database<unknown, string>;
  private readonly gens: [Database<unknown, string>, Database<unknown, string>];
  private gen: 0 | 1 = 0;
  /** Record batches, under 16-byte keys (batch.ts). */
  readonly batches: Database<Uint8Array, Buffer>;
  private applied = 0;
  private nextTopicId = 1;
  private topics = new Map<string, TopicMeta>();
  private topicsById = new Map<number, TopicMeta>();
  private parts = new Map<string, PartState>();
  private groups = new Map<string, Map<string, number>>();
  private idem = new Map<string, IdemEntry>();
  private readonly overlay = new Map<string, OverlayEntry[]>();
  /** Bytes of batches in the overlay (written, not yet committed). */
  private overlayBytes = 0;
  /** Staged ranges by partKey, as in broker.meta. */
  readonly stageMarks = new Map<string, StageMark>();
  /** Open snapshot sources: the sweeper waits while any needs old batches. */
  private sweepPauses = 0;
  private installSeq = 0;
  private staged: { token: Uint8Array; state: StagedState } | undefined;
  /** The commit promise of the last batch watched (lmdb-js shares one per batch). */
  private watchedCommit: Promise<boolean> | undefined;
  private writeFailed = false;
  /**
   * Called once when a batch of this state machine's writes fails to commit
   * (disk full, I/O error): the node must stop, since its applied state is no
   * longer on disk. By default it throws from a fresh stack, which ends the
   * process with the error (the server sets a handler that logs it first).
   */
  onWriteError: (e: Error) => void = (e) => {
    setImmediate(() => {
      throw e;
    });
  };

  constructor(env: RootDatabase) {
    super();
    this.setMaxListeners(0);
    this.env = env;
    this.metaDb = env.openDB<unknown, string>("broker.meta", { encoding: "msgpack" });
    this.gens = [
      env.openDB<unknown, string>("broker.state.0", { encoding: "msgpack", cache: true }),
      env.openDB<unknown, string>("broker.state.1", { encoding: "msgpack", cache: true }),
    ];
    this.batches = env.openDB<Uint8Array, Buffer>("broker.batches", {
      keyEncoding: "binary",
      encoding: "binary",
    });
    const format = this.metaDb.get("format");
    if (format === undefined) {
      env.transactionSync(() => {
        this.metaDb.put("format", BROKER_FORMAT);
        this.metaDb.put("gen", 0);
      });
    } else if (format !== BROKER_FORMAT) {
      throw new Error(
        `broker store format ${String(format)} is not ${BROKER_FORMAT}: this data directory was written by another version of raftbus`,
      );
    }
    this.gen = this.metaDb.get("gen") === 1 ? 1 : 0;
    for (const { key, value } of this.metaDb.getRange({ start: "stage:", end: "stage;" })) {
      this.stageMarks.set(String(key).slice(6), value as StageMark);
    }
    this.load(loadState(this.stateDb));
  }

  private get stateDb(): Database<unknown, string> {
    return this.gens[this.gen];
  }

  private load(s: StagedState): void {
    this.applied = s.applied;
    this.nextTopicId = s.nextTopicId;
    this.topics = s.topics;
    this.topicsById = new Map([...s.topics.values()].map((t) => [t.id, t]));
    this.parts = s.parts;
    this.groups = s.groups;
    this.idem = s.idem;
  }

  // ---- StateMachine ----------------------------------------------------------

  appliedIndex(): number {
    return this.applied;
  }

  skip(index: number): void {
    if (index <= this.applied) throw new Error(`broker: apply ${index} after ${this.applied}`);
    this.applied = index;
    this.watch(this.stateDb.put("applied", index));
  }

  /**
   * Every apply (and restore) writes "applied" in the same batch as the rest
   * of its writes, so watching that one put's commit covers them all.
   */
  private watch(commit: Promise<boolean>): void {
    if (commit === this.watchedCommit) return;
    this.watchedCommit = commit;
    commit.then(undefined, (e: unknown) => this.writeError(e));
  }

  private writeError(e: unknown): void {
    if (this.writeFailed) return;
    this.writeFailed = true;
    this.onWriteError(e instanceof Error ? e : new Error(String(e)));
  }

  apply(index: number, command: Uint8Array): ApplyResult {
    this.skip(index);
    const c = decodeCommand(command);
    if (!c) return fail("INVALID_REQUEST", "malformed command");
    switch (c.t) {
      case "create":
        return this.applyCreate(c);
      case "delete":
        return this.applyDelete(c.name);
      case "produce":
        return this.applyProduce(c, index);
      case "commit":
        return this.applyCommit(c);
      case "trim":
        return this.applyTrim(c);
    }
  }

  private putTopic(t: TopicMeta): void {
    this.topics.set(t.name, t);
    this.topicsById.set(t.id, t);
    this.stateDb.put(`topic:${t.name}`, t);
  }

  private putPart(id: number, p: number, s: PartState): void {
    this.parts.set(partKey(id, p), s);
    this.stateDb.put(`part:${partKey(id, p)}`, s);
  }

  private applyCreate(c: Extract<Command, { t: "create" }>): ApplyResult {
    if (!TOPIC_NAME.test(c.name)) return fail("INVALID_REQUEST", `invalid topic name "${c.name}"`);
    if (!Number.isInteger(c.partitions) || c.partitions < 1 || c.partitions > MAX_PARTITIONS) {
      return fail("INVALID_REQUEST", `partitions must be an integer in 1..${MAX_PARTITIONS}`);
    }
    if (this.topics.has(c.name)) return fail("TOPIC_EXISTS", `topic "${c.name}" already exists`);
    const id = this.nextTopicId++;
    this.stateDb.put("nextTopicId", this.nextTopicId);
    this.putTopic({
      id,
      name: c.name,
      partitions: c.partitions,
      retentionMs: c.retentionMs ?? null,
      retentionBytes: c.retentionBytes ?? null,
    });
    for (let p = 0; p < c.partitions; p++) this.putPart(id, p, { start: 0, end: 0, bytes: 0, lastTs: 0 });
    return { ok: true, value: this.describe(c.name) };
  }

  private applyDelete(name: string): ApplyResult {
    const t = this.topics.get(name);
    if (!t) return fail("TOPIC_NOT_FOUND", `topic "${name}" does not exist`);
    // Metadata only: the sweeper removes the batches of ids no longer live.
    for (let p = 0; p < t.partitions; p++) {
      this.parts.delete(partKey(t.id, p));
      this.stateDb.remove(`part:${partKey(t.id, p)}`);
    }
    this.topics.delete(name);
    this.topicsById.delete(t.id);
    this.stateDb.remove(`topic:${name}`);
    // Groups forget the topic; idempotency keys of the topic go too.
    for (const [g, offsets] of this.groups) {
      let changed = false;
      for (const k of [...offsets.keys()]) {
        if (k.slice(0, k.lastIndexOf("/")) === name) {
          offsets.delete(k);
          changed = true;
        }
      }
      if (changed) this.putGroup(g, offsets);
    }
    for (const k of [...this.idem.keys()]) {
      if (k.startsWith(`${name}\u0000`)) {
        this.idem.delete(k);
        this.stateDb.remove(`idem:${k}`);
      }
    }
    this.emit("deleted", name);
    this.emit("garbage");
    return { ok: true, value: null };
  }

  private putGroup(group: string, offsets: Map<string, number>): void {
    if (offsets.size === 0) {
      this.groups.delete(group);
      this.stateDb.remove(`group:${group}`);
    } else {
      this.groups.set(group, offsets);
      this.stateDb.put(`group:${group}`, Object.fromEntries(offsets));
    }
  }

  private applyProduce(c: ProduceCommand, index: number): ApplyResult {
    this.expireIdempotency(c.ts);
    const t = this.topics.get(c.topic);
    if (!t || (c.topicId !== 0 && c.topicId !== t.id)) {
      return fail("TOPIC_NOT_FOUND", `topic "${c.topic}" does not exist`);
    }
    if (c.idem) {
      const prior = this.idem.get(idemKey(c.topic, c.idem.key));
      if (prior) {
        if (prior.hash !== c.idem.hash) {
          return fail("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different body");
        }
        return { ok: true, value: prior.result }; // the first answer again, nothing appended
      }
    }
    // Check everything before writing anything: a request appends all or nothing.
    if (c.sections.length === 0) return fail("INVALID_REQUEST", "no records");
    for (const s of c.sections) {
      if (!Number.isInteger(s.partition) || s.partition >= t.partitions) {
        return fail("PARTITION_NOT_FOUND", `topic "${c.topic}" has no partition ${s.partition}`);
      }
      if (s.count < 1) return fail("INVALID_REQUEST", "an empty batch");
      const bad = checkPayload(s.payload, s.count);
      if (bad) return fail("INVALID_REQUEST", `malformed batch: ${bad}`);
    }
    const result: SectionPosition[] = [];
    const touched = new Map<number, PartState>();
    for (const sec of c.sections) {
      let s = touched.get(sec.partition);
      if (!s) {
        s = { ...this.parts.get(partKey(t.id, sec.partition))! };
        touched.set(sec.partition, s);
      }
      // Timestamps never decrease within a partition, whatever the clocks did.
      const timestamp = Math.max(c.ts, s.lastTs);
      const value = encodeBatch(s.end, sec.count, timestamp, sec.payload);
      this.putBatch(t.id, sec.partition, s.end, sec.count, value);
      result.push({ partition: sec.partition, baseOffset: s.end, count: sec.count, timestamp });
      s.end += sec.count;
      s.bytes += value.length;
      s.lastTs = timestamp;
    }
    for (const [p, s] of touched) this.putPart(t.id, p, s);
    if (c.idem) {
      const k = idemKey(c.topic, c.idem.key);
      const entry: IdemEntry = { hash: c.idem.hash, result, at: c.ts, seq: index };
      this.idem.set(k, entry);
      this.stateDb.put(`idem:${k}`, entry);
      if (this.idem.size > LIMITS.maxIdempotencyKeys) {
        const oldest = this.idem.keys().next().value as string;
        this.idem.delete(oldest);
        this.stateDb.remove(`idem:${oldest}`);
      }
    }
    for (const [p, s] of touched) this.emit("append", c.topic, p, s.end);
    return { ok: true, value: result };
  }

  /**
   * Queues a batch write and keeps the batch readable from memory until the
   * write commits (lmdb-js shows writes to reads only once committed).
   */
  putBatch(topicId: number, partition: number, base: number, count: number, value: Uint8Array): void {
    const pk = partKey(topicId, partition);
    let list = this.overlay.get(pk);
    if (!list) {
      list = [];
      this.overlay.set(pk, list);
    }
    const entry: OverlayEntry = { base, count, value };
    // Kept sorted by base; a batch written again (the same bytes) replaces the older entry.
    let i = list.length;
    while (i > 0 && list[i - 1]!.base > base) i--;
    if (i > 0 && list[i - 1]!.base === base) list[i - 1] = entry;
    else list.splice(i, 0, entry);
    this.overlayBytes += value.length;
    this.batches.put(batchKey(topicId, partition, base), value).then(
      () => {
        this.overlayBytes -= value.length;
        // Writes commit in order, so this is almost always the oldest entry.
        if (list[0] === entry) list.shift();
        else {
          const at = list.indexOf(entry);
          if (at >= 0) list.splice(at, 1);
        }
        if (list.length === 0 && this.overlay.get(pk) === list) this.overlay.delete(pk);
      },
      (e: unknown) => this.writeError(e),
    );
  }

  /**
   * Forgets idempotency keys older than the window, oldest applied first, by the
   * leader's clock in the command: the same decision on every replica.
   */
  private expireIdempotency(now: number): void {
    for (const [k, e] of this.idem) {
      if (e.at > now - LIMITS.idempotencyWindowMs) break;
      this.idem.delete(k);
      this.stateDb.remove(`idem:${k}`);
    }
  }

  private applyCommit(c: Extract<Command, { t: "commit" }>): ApplyResult {
    const t = this.topics.get(c.topic);
    if (!t) return fail("TOPIC_NOT_FOUND", `topic "${c.topic}" does not exist`);
    if (!Number.isInteger(c.partition) || c.partition < 0 || c.partition >= t.partitions) {
      return fail("PARTITION_NOT_FOUND", `topic "${c.topic}" has no partition ${c.partition}`);
    }
    const s = this.parts.get(partKey(t.id, c.partition))!;
    if (!Number.isInteger(c.offset) || c.offset < 0 || c.offset > s.end) {
      return fail("OFFSET_OUT_OF_RANGE", `offset ${c.offset} is beyond the end ${s.end}`, {
        startOffset: s.start,
        endOffset: s.end,
      });
    }
    const offsets = new Map(this.groups.get(c.group) ?? []);
    offsets.set(`${c.topic}/${c.partition}`, c.offset);
    this.putGroup(c.group, offsets);
    return { ok: true, value: { partition: c.partition, offset: c.offset } };
  }

  /**
   * Moves a partition's start (O(1)): the leader computed the new start and
   * the bytes it frees from the batches; a trim whose `from` is no longer the
   * start is stale (another trim won) and does nothing.
   */
  private applyTrim(c: Extract<Command, { t: "trim" }>): ApplyResult {
    const t = this.topics.get(c.topic);
    if (!t) return fail("TOPIC_NOT_FOUND", `topic "${c.topic}" does not exist`);
    const s = this.parts.get(partKey(t.id, c.partition));
    if (!s) return fail("PARTITION_NOT_FOUND", `no partition ${c.partition}`);
    if (c.from !== s.start || c.before <= s.start) return { ok: true, value: s.start };
    const before = Math.min(c.before, s.end);
    this.putPart(t.id, c.partition, {
      ...s,
      start: before,
      bytes: Math.max(0, s.bytes - Math.max(0, c.bytes)),
    });
    this.emit("trim", c.topic, c.partition, before);
    this.emit("garbage");
    return { ok: true, value: before };
  }

  // ---- batch lookups ------------------------------------------------------------------

  /** Bytes of batches written but not yet committed. */
  uncommittedBatchBytes(): number {
    return this.overlayBytes;
  }

  /** Deletes one stored batch (the sweeper's write; it joins the current batch). */
  removeBatch(key: Buffer): void {
    this.batches.remove(key).then(undefined, (e: unknown) => this.writeError(e));
  }

  /** The batch holding `offset` (one reverse range lookup), if it is stored. */
  findBatch(topicId: number, partition: number, offset: number): FoundBatch | undefined {
    const list = this.overlay.get(partKey(topicId, partition));
    if (list) {
      for (let i = list.length - 1; i >= 0; i--) {
        const e = list[i]!;
        if (e.base <= offset) {
          if (offset < e.base + e.count) return e;
          break;
        }
      }
    }
    for (const { key, value } of this.batches.getRange({
      start: batchKey(topicId, partition, offset),
      end: batchKey(topicId, partition, 0),
      inclusiveEnd: true,
      reverse: true,
      limit: 1,
    })) {
      const base = key.readUInt32BE(8) * 0x1_0000_0000 + key.readUInt32BE(12);
      const found = this.checked(topicId, partition, base, value);
      return offset < base + found.count ? found : undefined;
    }
    return undefined;
  }

  /** The batch whose base offset is exactly `base`, if it is stored. */
  batchAt(topicId: number, partition: number, base: number): FoundBatch | undefined {
    const list = this.overlay.get(partKey(topicId, partition));
    if (list) for (const e of list) if (e.base === base) return e;
    const value = this.batches.get(batchKey(topicId, partition, base));
    return value ? this.checked(topicId, partition, base, value) : undefined;
  }

  private checked(topicId: number, partition: number, base: number, value: Uint8Array): FoundBatch {
    const bad = verifyBatch(value, base);
    if (bad) throw new Error(`stored batch ${topicId}/${partition}@${base} is corrupt: ${bad}`);
    return { base, count: batchCount(value), value };
  }

  // ---- reads (this node's applied state) --------------------------------------

  topicNames(): string[] {
    return [...this.topics.keys()].sort();
  }

  describe(name: string): TopicInfo | undefined {
    const t = this.topics.get(name);
    if (!t) return undefined;
    const partitions = [];
    for (let p = 0; p < t.partitions; p++) {
      const s = this.parts.get(partKey(t.id, p))!;
      partitions.push({ partition: p, startOffset: s.start, endOffset: s.end });
    }
    return { name, partitions, retentionMs: t.retentionMs, retentionBytes: t.retentionBytes };
  }

  /** The topic's id (ids are never reused), or undefined. */
  topicId(name: string): number | undefined {
    return this.topics.get(name)?.id;
  }

  /** Bounds of a partition, or undefined when the topic or partition does not exist. */
  bounds(topic: string, partition: number): { start: number; end: number; bytes: number } | undefined {
    const t = this.topics.get(topic);
    if (!t || !Number.isInteger(partition) || partition < 0 || partition >= t.partitions) return undefined;
    const s = this.parts.get(partKey(t.id, partition))!;
    return { start: s.start, end: s.end, bytes: s.bytes };
  }

  /** Records from `offset` on, at most `limit` of them and about `maxBytes` of values. */
  read(
    topic: string,
    partition: number,
    offset: number,
    limit: number,
    maxBytes = 16 * 1024 * 1024,
  ): StoredRecord[] {
    const t = this.topics.get(topic);
    if (!t) return [];
    const s = this.parts.get(partKey(t.id, partition));
    if (!s) return [];
    const out: StoredRecord[] = [];
    let o = Math.max(offset, s.start);
    const end = Math.min(s.end, o + limit);
    let bytes = 0;
    let b = o < end ? this.findBatch(t.id, partition, o) : undefined;
    while (b && o < end && bytes < maxBytes) {
      const before = out.length;
      const n = decodeRecords(b.value, o - b.base, end - o, maxBytes - bytes, out);
      for (let i = before; i < out.length; i++) bytes += out[i]!.value.length;
      o += n;
      if (o < b.base + b.count) break; // stopped inside the batch: limit or maxBytes
      b = o < end ? this.batchAt(t.id, partition, o) : undefined;
    }
    return out;
  }

  /** The first offset whose timestamp is >= ts (the end offset when none is). */
  offsetForTimestamp(topic: string, partition: number, ts: number): number | undefined {
    const t = this.topics.get(topic);
    const s = t && this.parts.get(partKey(t.id, partition));
    if (!t || !s) return undefined;
    let lo = s.start;
    let hi = s.end;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const at = this.timestampOf(t.id, partition, mid);
      if (at !== undefined && at >= ts) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private timestampOf(topicId: number, partition: number, offset: number): number | undefined {
    const b = this.findBatch(topicId, partition, offset);
    return b ? recordTimestampAt(b.value, offset - b.base) : undefined;
  }

  /** Timestamp of the record at `offset`, if it is there. */
  timestampAt(topic: string, partition: number, offset: number): number | undefined {
    const t = this.topics.get(topic);
    const s = t && this.parts.get(partKey(t.id, partition));
    if (!t || !s || offset < s.start || offset >= s.end) return undefined;
    return this.timestampOf(t.id, partition, offset);
  }

  /**
   * Where retention would move a partition's start: past the records older
   * than `cutoffTs`, and past the oldest batches as long as at least `maxBytes`
   * remain (Kafka's rule: retention by size never leaves less), looking at no
   * more than `maxBatches` batches (the next check goes on from there). The
   * bytes are those of the batches wholly below the new start.
   */
  retentionPoint(
    topic: string,
    partition: number,
    cutoffTs: number | null,
    maxBytes: number | null,
    maxBatches = 256,
  ): { from: number; before: number; bytes: number } | undefined {
    const t = this.topics.get(topic);
    const s = t && this.parts.get(partKey(t.id, partition));
    if (!t || !s || s.start >= s.end) return undefined;
    let before = s.start;
    let freed = 0;
    let excess = maxBytes === null ? 0 : s.bytes - maxBytes;
    let b = this.findBatch(t.id, partition, s.start);
    for (let n = 0; b && n < maxBatches; n++) {
      const h = batchHeader(b.value);
      // As Kafka does: a batch goes only if what remains is still at least maxBytes.
      const byBytes = maxBytes !== null && excess - b.value.length >= 0;
      const byTime = cutoffTs !== null && h.maxTimestamp < cutoffTs;
      if (!byBytes && !byTime) {
        // Records of this batch older than the cutoff (per-record timestamps).
        if (cutoffTs !== null && h.firstTimestamp < cutoffTs) {
          for (let i = Math.max(0, before - b.base); i < b.count; i++) {
            if (recordTimestampAt(b.value, i) >= cutoffTs) break;
            before = b.base + i + 1;
          }
        }
        break;
      }
      before = b.base + b.count;
      freed += b.value.length;
      excess -= b.value.length;
      b = before < s.end ? this.batchAt(t.id, partition, before) : undefined;
    }
    if (before <= s.start) return undefined;
    return { from: s.start, before: Math.min(before, s.end), bytes: freed };
  }

  /**
   * A fingerprint of a partition's stored batches, from the one holding its
   * start to its end: replicas that agree have equal digests. Reads in slices
   * of 256 batches per event-loop turn.
   */
  async partitionDigest(
    topic: string,
    partition: number,
  ): Promise<{ start: number; end: number; bytes: number; batches: number; sha256: string } | undefined> {
    const t = this.topics.get(topic);
    const s = t && this.parts.get(partKey(t.id, partition));
    if (!t || !s) return undefined;
    const { start, end, bytes } = s;
    const hash = createHash("sha256");
    let batches = 0;
    let o = start;
    let b = o < end ? this.findBatch(t.id, partition, o) : undefined;
    while (b && o < end) {
      hash.update(b.value);
      batches++;
      o = b.base + b.count;
      if (batches % 256 === 0) await new Promise<void>((r) => setImmediate(r));
      if (this.topics.get(topic) !== t) return undefined;
      b = o < end ? this.batchAt(t.id, partition, o) : undefined;
    }
    if (o < end) throw new Error(`partition ${topic}/${partition}: batch at ${o} is missing`);
    return { start, end, bytes, batches, sha256: hash.digest("hex") };
  }

  groupOffset(group: string, topic: string, partition: number): number | undefined {
    return this.groups.get(group)?.get(`${topic}/${partition}`);
  }

  groupOffsets(group: string): GroupOffset[] {
    const out: GroupOffset[] = [];
    for (const [k, offset] of this.groups.get(group) ?? []) {
      const i = k.lastIndexOf("/");
      const topic = k.slice(0, i);
      const partition = Number(k.slice(i + 1));
      const b = this.bounds(topic, partition);
      if (!b) continue;
      out.push({ topic, partition, offset, lag: Math.max(0, b.end - Math.max(offset, b.start)) });
    }
    return out.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  }

  groupNames(): string[] {
    return [...this.groups.keys()].sort();
  }

  /** Retention settings of every topic, for the leader's retention check. */
  retentionTargets(): {
    topic: string;
    partitions: number;
    retentionMs: number | null;
    retentionBytes: number | null;
  }[] {
    return [...this.topics.values()]
      .filter((t) => t.retentionMs !== null || t.retentionBytes !== null)
      .map((t) => ({
        topic: t.name,
        partitions: t.partitions,
        retentionMs: t.retentionMs,
        retentionBytes: t.retentionBytes,
      }));
  }

  // ---- the sweeper's view ------------------------------------------------------------

  /** Whether the sweeper must wait (a snapshot stream still reads old batches). */
  sweepPaused(): boolean {
    return this.sweepPauses > 0;
  }

  /**
   * What may be deleted of a topic id's partition: "all" for a deleted topic,
   * "none" for one this node does not know yet (staged by a snapshot stream),
   * else the base offset below which every batch is garbage.
   */
  sweepLimit(topicId: number, partition: number): number | "all" | "none" {
    const t = this.topicsById.get(topicId);
    if (!t) return topicId < this.nextTopicId ? "all" : "none";
    const s = this.parts.get(partKey(topicId, partition));
    if (!s) return "all"; // a partition the topic does not have
    if (s.start >= s.end) return s.start;
    return this.findBatch(topicId, partition, s.start)?.base ?? s.start;
  }

  // ---- snapshots: streams out, staged installs in ---------------------------------------

  haveVector(): Uint8Array {
    const have: [number, number, number, number, number][] = [];
    const seen = new Set<string>();
    for (const [pk, s] of this.parts) {
      const [id, p] = pk.split("/").map(Number) as [number, number];
      const m = this.stageMarks.get(pk);
      have.push([id, p, s.end, m?.from ?? 0, m?.to ?? 0]);
      seen.add(pk);
    }
    for (const [pk, m] of this.stageMarks) {
      if (seen.has(pk)) continue;
      const [id, p] = pk.split("/").map(Number) as [number, number];
      have.push([id, p, 0, m.from, m.to]);
    }
    return encodeHave(have);
  }

  openSnapshotSource(have: Uint8Array): SnapshotSource {
    this.sweepPauses++;
    let closed = false;
    return new BatchSnapshotSource(this, this.applied, this.stateDb, decodeHave(have), () => {
      if (closed) return;
      closed = true;
      this.sweepPauses--;
      if (this.sweepPauses === 0) this.emit("garbage");
    });
  }

  openInstaller(): SnapshotInstaller {
    this.staged = undefined;
    const gen = this.gen === 0 ? 1 : 0;
    const db = this.gens[gen];
    const seq = ++this.installSeq;
    return new StagingInstaller(this, db, (state) => {
      const token = new Uint8Array(8);
      new DataView(token.buffer).setUint32(0, 0x53544731); // "STG1"
      new DataView(token.buffer).setUint32(4, seq);
      this.staged = { token, state };
      return token;
    });
  }

  /** Records a staged range of batches (persisted with the batches it describes). */
  markStaged(topicId: number, partition: number, mark: StageMark): void {
    const pk = partKey(topicId, partition);
    this.stageMarks.set(pk, mark);
    this.metaDb.put(`stage:${pk}`, mark);
  }

  restore(token: Uint8Array, index: number): void {
    const oldTopics = this.topics;
    const next: 0 | 1 = this.gen === 0 ? 1 : 0;
    let state: StagedState;
    if (token.length === 0) {
      this.gens[next].clearAsync();
      state = emptyState();
    } else {
      const staged = this.staged;
      if (!staged || !sameBytes(staged.token, token)) {
        throw new Error("broker: restore of a snapshot that was not staged here");
      }
      state = staged.state;
    }
    this.staged = undefined;
    state.applied = index;
    this.gens[next].put("applied", index);
    this.metaDb.put("gen", next);
    for (const pk of this.stageMarks.keys()) this.metaDb.remove(`stage:${pk}`);
    this.stageMarks.clear();
    this.gen = next;
    this.load(state);
    const committed = this.stateDb.put("applied", index);
    this.watch(committed);
    if (faultArmed("install-after-commit")) void committed.then(() => faultPoint("install-after-commit"));
    for (const name of oldTopics.keys()) if (!this.topics.has(name)) this.emit("deleted", name);
    for (const t of this.topics.values()) {
      for (let p = 0; p < t.partitions; p++) {
        const s = this.parts.get(partKey(t.id, p))!;
        this.emit("trim", t.name, p, s.start);
        this.emit("append", t.name, p, s.end);
      }
    }
    this.emit("garbage");
  }
}

// ---- helpers -------------------------------------------------------------------------

export function emptyState(): StagedState {
  return {
    applied: 0,
    nextTopicId: 1,
    topics: new Map(),
    parts: new Map(),
    groups: new Map(),
    idem: new Map(),
  };
}

/** Reads a generation's small state into memory. */
function loadState(db: Database<unknown, string>): StagedState {
  const s = emptyState();
  const idem: [string, IdemEntry][] = [];
  for (const { key, value } of db.getRange()) addStateEntry(s, String(key), value, idem);
  finishState(s, idem);
  return s;
}

/** Takes one key/value of the small state into `s` (idempotency entries into `idem`). */
export function addStateEntry(s: StagedState, k: string, value: unknown, idem: [string, IdemEntry][]): void {
  if (k === "applied") s.applied = value as number;
  else if (k === "nextTopicId") s.nextTopicId = value as number;
  else if (k.startsWith("topic:")) {
    const t = value as TopicMeta;
    s.topics.set(t.name, t);
  } else if (k.startsWith("part:")) s.parts.set(k.slice(5), value as PartState);
  else if (k.startsWith("group:")) {
    s.groups.set(k.slice(6), new Map(Object.entries(value as Record<string, number>)));
  } else if (k.startsWith("idem:")) idem.push([k.slice(5), value as IdemEntry]);
}

export function finishState(s: StagedState, idem: [string, IdemEntry][]): void {
  // The map's order drives expiry and eviction: rebuild it in apply order, as
  // it is on replicas that never restarted (LMDB returns keys sorted by name).
  idem.sort((a, b) => a[1].seq - b[1].seq);
  for (const [k, e] of idem) s.idem.set(k, e);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** have-vector: [u32 n] then n × [u32 topicId][u32 partition][f64 end][f64 stagedFrom][f64 stagedTo]. */
function encodeHave(rows: [number, number, number, number, number][]): Uint8Array {
  const out = Buffer.allocUnsafe(4 + rows.length * 32);
  out.writeUInt32BE(rows.length, 0);
  let o = 4;
  for (const [id, p, end, from, to] of rows) {
    o = out.writeUInt32BE(id, o);
    o = out.writeUInt32BE(p, o);
    o = out.writeDoubleBE(end, o);
    o = out.writeDoubleBE(from, o);
    o = out.writeDoubleBE(to, o);
  }
  return out;
}

/** Per partKey: the offset from which the follower lacks batches it can use. */
export type HaveMap = Map<string, { end: number; stagedFrom: number; stagedTo: number }>;

function decodeHave(b: Uint8Array): HaveMap {
  const out: HaveMap = new Map();
  if (b.length < 4) return out;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const n = buf.readUInt32BE(0);
  if (4 + n * 32 !== b.length) throw new Error("snapshot stream: malformed have-vector");
  let o = 4;
  for (let i = 0; i < n; i++) {
    out.set(partKey(buf.readUInt32BE(o), buf.readUInt32BE(o + 4)), {
      end: buf.readDoubleBE(o + 8),
      stagedFrom: buf.readDoubleBE(o + 16),
      stagedTo: buf.readDoubleBE(o + 24),
    });
    o += 32;
  }
  return out;
}
