// The broker's replicated state machine: topics, partitions with dense
// offsets, records, consumer-group offsets and idempotency records. Applying a
// command is deterministic (time comes from the leader's stamp in the
// command), and its writes share one LMDB transaction with the applied index.
//
// Small state (topics, partition bounds, groups, idempotency keys) is kept in
// memory and written through; records live only in LMDB, under scalar keys in
// a cached database so a record is readable the moment it is applied.

import { EventEmitter } from "node:events";
import type { Database, RootDatabase } from "lmdb";
import { Packr } from "msgpackr";
import type { StateMachine } from "../node/state-machine.ts";
import { type Command, decodeCommand, type WireRecord } from "./commands.ts";
import { partitionForKey } from "./partitioner.ts";
import { decodeRecord, encodeRecord, recordTimestamp } from "./record-codec.ts";
import {
  type BrokerErrorCode,
  type GroupOffset,
  LIMITS,
  MAX_PARTITIONS,
  type RecordPosition,
  type StoredRecord,
  TOPIC_NAME,
  type TopicInfo,
} from "./types.ts";

interface TopicMeta {
  id: number;
  name: string;
  partitions: number;
  retentionMs: number | null;
  retentionBytes: number | null;
  /** Records produced without a key or partition so far (round-robin cursor). */
  rr: number;
}

interface PartState {
  start: number;
  end: number;
  bytes: number;
  lastTs: number;
}

interface IdemEntry {
  hash: string;
  result: RecordPosition[];
  at: number;
  /** Raft index of the produce: the apply order, which every replica shares. */
  seq: number;
}

export type ApplyResult =
  | { ok: true; value: unknown }
  | { ok: false; code: BrokerErrorCode; message: string; extra?: Record<string, unknown> };

const fail = (code: BrokerErrorCode, message: string, extra?: Record<string, unknown>): ApplyResult =>
  extra ? { ok: false, code, message, extra } : { ok: false, code, message };

const packr = new Packr({ useRecords: false, variableMapSize: true });

const partKey = (id: number, p: number) => `${id}/${p}`;
const recKey = (id: number, p: number, offset: number) => `${id}/${p}/${offset}`;
const idemKey = (topic: string, key: string) => `${topic}\u0000${key}`;

export interface BrokerEvents {
  /** Records were appended: the partition's new end offset. */
  append: [topic: string, partition: number, endOffset: number];
  /** Retention moved a partition's start offset. */
  trim: [topic: string, partition: number, startOffset: number];
  deleted: [topic: string];
}

export class BrokerState extends EventEmitter<BrokerEvents> implements StateMachine<ApplyResult> {
  private readonly stateDb: Database<unknown, string>;
  private readonly recordsDb: Database<Uint8Array, string>;
  private applied = 0;
  private nextTopicId = 1;
  private readonly topics = new Map<string, TopicMeta>();
  private readonly parts = new Map<string, PartState>();
  private readonly groups = new Map<string, Map<string, number>>();
  private readonly idem = new Map<string, IdemEntry>();
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
    this.stateDb = env.openDB<unknown, string>("broker.state", { encoding: "msgpack", cache: true });
    this.recordsDb = env.openDB<Uint8Array, string>("broker.records", { encoding: "binary", cache: true });
    this.load();
  }

  private load(): void {
    const idem: [string, IdemEntry][] = [];
    for (const { key, value } of this.stateDb.getRange()) {
      const k = String(key);
      if (k === "applied") this.applied = value as number;
      else if (k === "nextTopicId") this.nextTopicId = value as number;
      else if (k.startsWith("topic:")) {
        const t = value as TopicMeta;
        this.topics.set(t.name, t);
      } else if (k.startsWith("part:")) this.parts.set(k.slice(5), value as PartState);
      else if (k.startsWith("group:")) {
        this.groups.set(k.slice(6), new Map(Object.entries(value as Record<string, number>)));
      } else if (k.startsWith("idem:")) idem.push([k.slice(5), value as IdemEntry]);
    }
    // The map's order drives expiry and eviction: rebuild it in apply order, as
    // it is on replicas that never restarted (LMDB returns keys sorted by name).
    idem.sort((a, b) => a[1].seq - b[1].seq);
    for (const [k, e] of idem) this.idem.set(k, e);
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
    commit.then(undefined, (e: unknown) => {
      if (this.writeFailed) return;
      this.writeFailed = true;
      this.onWriteError(e instanceof Error ? e : new Error(String(e)));
    });
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
      rr: 0,
    });
    for (let p = 0; p < c.partitions; p++) this.putPart(id, p, { start: 0, end: 0, bytes: 0, lastTs: 0 });
    return { ok: true, value: this.describe(c.name) };
  }

  private applyDelete(name: string): ApplyResult {
    const t = this.topics.get(name);
    if (!t) return fail("TOPIC_NOT_FOUND", `topic "${name}" does not exist`);
    for (let p = 0; p < t.partitions; p++) {
      const s = this.parts.get(partKey(t.id, p));
      if (s) for (let o = s.start; o < s.end; o++) this.recordsDb.remove(recKey(t.id, p, o));
      this.parts.delete(partKey(t.id, p));
      this.stateDb.remove(`part:${partKey(t.id, p)}`);
    }
    this.topics.delete(name);
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

  private applyProduce(c: Extract<Command, { t: "produce" }>, index: number): ApplyResult {
    this.expireIdempotency(c.ts);
    const t = this.topics.get(c.topic);
    if (!t) return fail("TOPIC_NOT_FOUND", `topic "${c.topic}" does not exist`);
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
    const targets: number[] = [];
    let rr = t.rr;
    for (const r of c.records as WireRecord[]) {
      let p: number;
      if (typeof r.p === "number") p = r.p;
      else if (r.k !== null && r.k !== undefined) p = partitionForKey(r.k, t.partitions);
      else p = rr++ % t.partitions;
      if (!Number.isInteger(p) || p < 0 || p >= t.partitions) {
        return fail("PARTITION_NOT_FOUND", `topic "${c.topic}" has no partition ${r.p}`);
      }
      targets.push(p);
    }
    if (rr !== t.rr) this.putTopic({ ...t, rr });
    const result: RecordPosition[] = [];
    const touched = new Map<number, PartState>();
    (c.records as WireRecord[]).forEach((r, i) => {
      const p = targets[i]!;
      let s = touched.get(p);
      if (!s) {
        s = { ...this.parts.get(partKey(t.id, p))! };
        touched.set(p, s);
      }
      // Timestamps never decrease within a partition, whatever the clocks did.
      const timestamp = Math.max(c.ts, s.lastTs);
      const bytes = encodeRecord({ timestamp, key: r.k ?? null, value: r.v, json: r.j, headers: r.h ?? {} });
      this.recordsDb.put(recKey(t.id, p, s.end), bytes);
      result.push({ partition: p, offset: s.end, timestamp });
      s.end++;
      s.bytes += bytes.length;
      s.lastTs = timestamp;
    });
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

  private applyTrim(c: Extract<Command, { t: "trim" }>): ApplyResult {
    const t = this.topics.get(c.topic);
    if (!t) return fail("TOPIC_NOT_FOUND", `topic "${c.topic}" does not exist`);
    const s = this.parts.get(partKey(t.id, c.partition));
    if (!s) return fail("PARTITION_NOT_FOUND", `no partition ${c.partition}`);
    const before = Math.min(c.before, s.end, s.start + LIMITS.maxTrimRecords);
    if (before <= s.start) return { ok: true, value: s.start };
    const next = { ...s };
    for (let o = s.start; o < before; o++) {
      const k = recKey(t.id, c.partition, o);
      const b = this.recordsDb.get(k);
      if (b) next.bytes -= b.length;
      this.recordsDb.remove(k);
    }
    next.start = before;
    this.putPart(t.id, c.partition, next);
    this.emit("trim", c.topic, c.partition, before);
    return { ok: true, value: before };
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

  /** Bounds of a partition, or undefined when the topic or partition does not exist. */
  bounds(topic: string, partition: number): { start: number; end: number; bytes: number } | undefined {
    const t = this.topics.get(topic);
    if (!t || !Number.isInteger(partition) || partition < 0 || partition >= t.partitions) return undefined;
    const s = this.parts.get(partKey(t.id, partition))!;
    return { start: s.start, end: s.end, bytes: s.bytes };
  }

  /** Records from `offset` on, at most `limit` of them and about `maxBytes`. */
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
    let bytes = 0;
    const end = Math.min(s.end, offset + limit);
    for (let o = Math.max(offset, s.start); o < end; o++) {
      const b = this.recordsDb.get(recKey(t.id, partition, o));
      if (!b) break;
      out.push(decodeRecord(o, b));
      bytes += b.length;
      if (bytes >= maxBytes) break;
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
      const b = this.recordsDb.get(recKey(t.id, partition, mid));
      if (b && recordTimestamp(b) >= ts) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Timestamp of the record at `offset`, if it is there. */
  timestampAt(topic: string, partition: number, offset: number): number | undefined {
    const t = this.topics.get(topic);
    if (!t) return undefined;
    const b = this.recordsDb.get(recKey(t.id, partition, offset));
    return b ? recordTimestamp(b) : undefined;
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

  /** Size in bytes of the stored record at offset (0 when absent). */
  recordBytes(topic: string, partition: number, offset: number): number {
    const t = this.topics.get(topic);
    if (!t) return 0;
    return this.recordsDb.get(recKey(t.id, partition, offset))?.length ?? 0;
  }

  // ---- snapshots -----------------------------------------------------------------

  snapshot(): Uint8Array {
    const records: [string, Uint8Array][] = [];
    for (const t of this.topics.values()) {
      for (let p = 0; p < t.partitions; p++) {
        const s = this.parts.get(partKey(t.id, p))!;
        for (let o = s.start; o < s.end; o++) {
          const k = recKey(t.id, p, o);
          const b = this.recordsDb.get(k);
          if (b) records.push([k, b]);
        }
      }
    }
    return packr.pack({
      applied: this.applied,
      nextTopicId: this.nextTopicId,
      topics: [...this.topics.values()],
      parts: [...this.parts],
      groups: [...this.groups].map(([g, m]) => [g, Object.fromEntries(m)]),
      idem: [...this.idem],
      records,
    });
  }

  restore(data: Uint8Array, index: number): void {
    // Remove everything this node has, then write the snapshot's state.
    for (const t of this.topics.values()) {
      for (let p = 0; p < t.partitions; p++) {
        const s = this.parts.get(partKey(t.id, p));
        if (s) for (let o = s.start; o < s.end; o++) this.recordsDb.remove(recKey(t.id, p, o));
      }
    }
    // Keys written by applies not yet committed are invisible to getRange():
    // remove what the in-memory maps know too, so nothing stale survives.
    for (const name of this.topics.keys()) this.stateDb.remove(`topic:${name}`);
    for (const k of this.parts.keys()) this.stateDb.remove(`part:${k}`);
    for (const g of this.groups.keys()) this.stateDb.remove(`group:${g}`);
    for (const k of this.idem.keys()) this.stateDb.remove(`idem:${k}`);
    for (const { key } of this.stateDb.getRange()) this.stateDb.remove(key as string);
    this.topics.clear();
    this.parts.clear();
    this.groups.clear();
    this.idem.clear();
    if (data.length > 0) {
      const s = packr.unpack(data) as {
        nextTopicId: number;
        topics: TopicMeta[];
        parts: [string, PartState][];
        groups: [string, Record<string, number>][];
        idem: [string, IdemEntry][];
        records: [string, Uint8Array][];
      };
      this.nextTopicId = s.nextTopicId;
      this.stateDb.put("nextTopicId", s.nextTopicId);
      for (const t of s.topics) this.putTopic(t);
      for (const [k, p] of s.parts) {
        this.parts.set(k, p);
        this.stateDb.put(`part:${k}`, p);
      }
      for (const [g, m] of s.groups) this.putGroup(g, new Map(Object.entries(m)));
      for (const [k, e] of s.idem) {
        this.idem.set(k, e);
        this.stateDb.put(`idem:${k}`, e);
      }
      for (const [k, b] of s.records) this.recordsDb.put(k, b);
    }
    this.applied = index;
    this.watch(this.stateDb.put("applied", index));
  }
}
