// The broker service: what the HTTP layer calls. Writes become replicated
// commands (through the leader, answered after commit and apply here); reads
// are served from this node's applied state. The leader also runs retention.

import { EventEmitter } from "node:events";
import type { Runtime } from "../node/runtime.ts";
import { encodeRequest, prepareCommand, type Request } from "./commands.ts";
import { partitionForKey } from "./partitioner.ts";
import type { ApplyResult, BrokerState } from "./state.ts";
import { Sweeper } from "./sweeper.ts";
import {
  BrokerError,
  type GroupOffset,
  LIMITS,
  MAX_PARTITIONS,
  type RecordIn,
  type RecordPosition,
  type SectionPosition,
  type StoredRecord,
  TOPIC_NAME,
  type TopicConfig,
  type TopicInfo,
} from "./types.ts";

export interface FetchResult {
  records: StoredRecord[];
  nextOffset: number;
  endOffset: number;
}

export interface BrokerOptions {
  /** How often the leader checks retention. */
  retentionIntervalMs?: number;
}

export class Broker extends EventEmitter {
  private retentionTimer: NodeJS.Timeout | undefined;
  private readonly trimming = new Set<string>();
  /** Deletes the batches retention and topic deletes left behind (every node). */
  readonly sweeper: Sweeper;
  /** Partition cursor for records with neither key nor partition (this node's requests). */
  private keyless = 0;

  constructor(
    readonly runtime: Runtime<ApplyResult>,
    readonly state: BrokerState,
    private readonly opts: BrokerOptions = {},
  ) {
    super();
    this.setMaxListeners(0);
    // The leader stamps its clock into every command it proposes.
    runtime.setPreparer((request) => prepareCommand(request, Date.now()));
    this.sweeper = new Sweeper(state);
  }

  start(): void {
    const every = this.opts.retentionIntervalMs ?? 1000;
    this.retentionTimer = setInterval(() => this.enforceRetention(), every);
    this.retentionTimer.unref();
    this.sweeper.start();
  }

  stop(): void {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.sweeper.stop();
  }

  private async submit(r: Request, timeoutMs?: number): Promise<unknown> {
    const res = await this.runtime.submit(encodeRequest(r), timeoutMs);
    if (!res.ok) throw new BrokerError(res.code, res.message, res.extra);
    return res.value;
  }

  // ---- topics -------------------------------------------------------------------

  async createTopic(cfg: TopicConfig, timeoutMs?: number): Promise<TopicInfo> {
    if (!TOPIC_NAME.test(cfg.name)) {
      throw new BrokerError("INVALID_REQUEST", "topic names match ^[a-zA-Z0-9._-]{1,249}$");
    }
    if (!Number.isInteger(cfg.partitions) || cfg.partitions < 1 || cfg.partitions > MAX_PARTITIONS) {
      throw new BrokerError("INVALID_REQUEST", `partitions must be an integer in 1..${MAX_PARTITIONS}`);
    }
    if (this.state.describe(cfg.name))
      throw new BrokerError("TOPIC_EXISTS", `topic "${cfg.name}" already exists`);
    return (await this.submit({ t: "create", ...cfg }, timeoutMs)) as TopicInfo;
  }

  async deleteTopic(name: string, timeoutMs?: number): Promise<void> {
    this.requireTopic(name);
    await this.submit({ t: "delete", name }, timeoutMs);
  }

  listTopics(): TopicInfo[] {
    return this.state.topicNames().map((n) => this.state.describe(n)!);
  }

  getTopic(name: string): TopicInfo {
    return this.requireTopic(name);
  }

  private requireTopic(name: string): TopicInfo {
    const t = this.state.describe(name);
    if (!t) throw new BrokerError("TOPIC_NOT_FOUND", `topic "${name}" does not exist`);
    return t;
  }

  /**
   * A topic this node does not know may still exist: a node that was just
   * added, or is behind, has not applied its creation yet. Catch up to the
   * leader's commit (a ReadIndex barrier) before answering TOPIC_NOT_FOUND, so
   * that answer is true of the cluster, not of this node's lag.
   */
  private async freshTopic(name: string, timeoutMs?: number): Promise<TopicInfo> {
    await this.runtime.readBarrier(timeoutMs);
    return this.requireTopic(name);
  }

  requirePartition(topic: string, partition: number): { start: number; end: number } {
    const t = this.requireTopic(topic);
    const b = this.state.bounds(topic, partition);
    if (!b) {
      throw new BrokerError("PARTITION_NOT_FOUND", `topic "${topic}" has no partition ${partition}`, {
        partitions: t.partitions.length,
      });
    }
    return b;
  }

  // ---- produce ------------------------------------------------------------------

  /**
   * Appends records atomically (contiguous per partition), answered once they
   * are committed and applied. With an idempotency key, a retry with the same
   * body gets the first answer and appends nothing.
   */
  async produce(
    topic: string,
    records: RecordIn[],
    opts: { idempotencyKey?: string; bodyHash?: string; timeoutMs?: number } = {},
  ): Promise<RecordPosition[]> {
    const t = this.state.describe(topic) ?? (await this.freshTopic(topic, opts.timeoutMs));
    if (records.length === 0) throw new BrokerError("INVALID_REQUEST", "no records");
    if (records.length > LIMITS.maxRecordsPerRequest) {
      throw new BrokerError("INVALID_REQUEST", `at most ${LIMITS.maxRecordsPerRequest} records per request`);
    }
    const partitions = t.partitions.length;
    // One batch per partition, its records in request order. Records with
    // neither key nor partition all go to one partition (as Kafka's sticky
    // partitioner does): chosen by the idempotency key when there is one, so
    // a retry through any node groups the records the same way.
    let keylessPartition = -1;
    const bySection = new Map<number, number>();
    const sections: { partition: number; records: RecordIn[] }[] = [];
    const where = new Array<number>(records.length);
    records.forEach((r, i) => {
      let p: number;
      if (r.partition !== undefined) {
        if (r.partition < 0 || r.partition >= partitions) {
          throw new BrokerError("PARTITION_NOT_FOUND", `topic "${topic}" has no partition ${r.partition}`);
        }
        p = r.partition;
      } else if (r.key !== null) p = partitionForKey(r.key, partitions);
      else {
        if (keylessPartition < 0) {
          keylessPartition =
            opts.idempotencyKey !== undefined
              ? partitionForKey(opts.idempotencyKey, partitions)
              : this.keyless++ % partitions;
        }
        p = keylessPartition;
      }
      let s = bySection.get(p);
      if (s === undefined) {
        s = sections.length;
        bySection.set(p, s);
        sections.push({ partition: p, records: [] });
      }
      where[i] = s;
      sections[s]!.records.push(r);
    });
    // Each partition's records are encoded once, straight into the request.
    const req: Request = { t: "produce", topic, topicId: this.state.topicId(topic) ?? 0, sections };
    if (opts.idempotencyKey !== undefined) req.idem = { key: opts.idempotencyKey, hash: opts.bodyHash ?? "" };
    const placed = (await this.submit(req, opts.timeoutMs)) as SectionPosition[];
    if (placed.length !== sections.length || placed.some((p, i) => p.partition !== sections[i]!.partition)) {
      throw new Error("produce: the stored answer does not match this request's batches");
    }
    // Every record's own position: its batch's base plus its place in the batch.
    const seen = new Array<number>(sections.length).fill(0);
    return where.map((s) => {
      const b = placed[s]!;
      return { partition: b.partition, offset: b.baseOffset + seen[s]!++, timestamp: b.timestamp };
    });
  }

  // ---- fetch --------------------------------------------------------------------

  fetch(topic: string, partition: number, offset: number, limit: number): FetchResult {
    const b = this.requirePartition(topic, partition);
    if (offset < b.start || offset > b.end) {
      throw new BrokerError("OFFSET_OUT_OF_RANGE", `offset ${offset} is outside [${b.start}, ${b.end}]`, {
        startOffset: b.start,
        endOffset: b.end,
      });
    }
    const records = this.state.read(topic, partition, offset, Math.min(limit, LIMITS.maxFetchRecords));
    const last = records[records.length - 1];
    return { records, nextOffset: last ? last.offset + 1 : offset, endOffset: b.end };
  }

  /**
   * Resolves once the partition's end passes `offset`, the topic is deleted,
   * `maxWaitMs` passes, or `signal` aborts: a long poll.
   */
  waitForRecords(
    topic: string,
    partition: number,
    offset: number,
    maxWaitMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const b = this.state.bounds(topic, partition);
    if (!b || b.end > offset || maxWaitMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.state.off("append", onAppend);
        this.state.off("deleted", onDeleted);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const onAppend = (t: string, p: number, end: number) => {
        if (t === topic && p === partition && end > offset) done();
      };
      const onDeleted = (t: string) => {
        if (t === topic) done();
      };
      const timer = setTimeout(done, maxWaitMs);
      this.state.on("append", onAppend);
      this.state.on("deleted", onDeleted);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** A fingerprint of the partition's stored batches on this node (replicas that agree are equal). */
  async partitionDigest(topic: string, partition: number) {
    this.requirePartition(topic, partition);
    const d = await this.state.partitionDigest(topic, partition);
    if (!d) throw new BrokerError("TOPIC_NOT_FOUND", `topic "${topic}" does not exist`);
    return d;
  }

  offsetForTimestamp(topic: string, partition: number, ts: number): number {
    this.requirePartition(topic, partition);
    return this.state.offsetForTimestamp(topic, partition, ts)!;
  }

  // ---- consumer groups -------------------------------------------------------------

  async commitOffset(
    group: string,
    topic: string,
    partition: number,
    offset: number,
    timeoutMs?: number,
  ): Promise<void> {
    const b = this.requirePartition(topic, partition);
    if (offset > b.end) {
      throw new BrokerError("OFFSET_OUT_OF_RANGE", `offset ${offset} is beyond the end ${b.end}`, {
        startOffset: b.start,
        endOffset: b.end,
      });
    }
    await this.submit({ t: "commit", group, topic, partition, offset }, timeoutMs);
  }

  groupOffsets(group: string): GroupOffset[] {
    return this.state.groupOffsets(group);
  }

  groupOffset(group: string, topic: string, partition: number): number | undefined {
    return this.state.groupOffset(group, topic, partition);
  }

  // ---- retention (leader only) -----------------------------------------------------

  /**
   * Proposes trims for partitions past their retention; one in flight per
   * partition. Each trim looks at a bounded number of batches; a partition
   * far past its retention gets there over a few checks.
   */
  enforceRetention(now = Date.now()): void {
    if (!this.runtime.isLeader()) return;
    for (const t of this.state.retentionTargets()) {
      for (let p = 0; p < t.partitions; p++) {
        const key = `${t.topic}/${p}`;
        if (this.trimming.has(key)) continue;
        const cutoff = t.retentionMs !== null ? now - t.retentionMs : null;
        const point = this.state.retentionPoint(t.topic, p, cutoff, t.retentionBytes);
        if (!point) continue;
        this.trimming.add(key);
        this.submit({ t: "trim", topic: t.topic, partition: p, ...point })
          .catch(() => {})
          .finally(() => this.trimming.delete(key));
      }
    }
  }
}
