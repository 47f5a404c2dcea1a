// The producer: batches concurrent sends, one request per batch, each batch
// with its own Idempotency-Key so that retries (another server, NO_LEADER,
// COMMIT_TIMEOUT, a broken connection) append it exactly once (API.md
// "Produce"). A send's records are never split: they go in one request, so
// they are appended atomically and contiguously per partition, in order.

import { ClosedError, RaftbusError } from "./errors.ts";
import { clampRetryTimeout, type Transport } from "./transport.ts";
import type { ProducerRecord, RecordMetadata } from "./types.ts";
import { randomKey, toBase64, utf8Length } from "./util.ts";

/** How a producer batches and how much it keeps in flight. */
export interface ProducerOptions {
  /** How long a send waits for others to share its request, ms (default 5). */
  lingerMs?: number;
  /** Records per request, at most (default 10000; a single larger send still goes alone). */
  maxBatchRecords?: number;
  /** JSON bytes per request, about (default 1 MiB; a single larger send still goes alone). */
  maxBatchBytes?: number;
  /**
   * Requests in flight at once (default 5). Concurrent sends in different
   * requests may be appended in either order; use 1 to append them in the
   * order they were sent.
   */
  maxInFlightRequests?: number;
  /** Bytes queued or in flight beyond which `send` waits for room (default 32 MiB). */
  maxBufferedBytes?: number;
  /**
   * How long a batch is retried before its sends reject, ms (default: the
   * client's retryTimeoutMs). At most 540000 (9 minutes, below the server's
   * 10-minute idempotency window, so that a retry is never appended twice):
   * longer values are clamped.
   */
  deliveryTimeoutMs?: number;
}

interface PendingSend {
  json: string[];
  bytes: number;
  resolve: (m: RecordMetadata[]) => void;
  reject: (e: unknown) => void;
}

interface TopicQueue {
  sends: PendingSend[];
  records: number;
  bytes: number;
  /** Whether the oldest send has lingered long enough (or a flush asked to send now). */
  due: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Errors caused by one record of a batch, not by the batch as a whole: the
 * batch is then tried again one send at a time, so that one bad send does not
 * fail the others it happened to share a request with.
 */
const PER_SEND_CODES = new Set(["RECORD_TOO_LARGE", "PARTITION_NOT_FOUND", "INVALID_REQUEST"]);

/** One record in the API's JSON form; `bytes` become `valueBase64`. */
export function wireRecord(r: ProducerRecord): Record<string, unknown> {
  const values = (r.value !== undefined ? 1 : 0) + (r.bytes ? 1 : 0) + (r.valueBase64 !== undefined ? 1 : 0);
  if (values > 1) throw new TypeError("a record has one of value, bytes or valueBase64");
  const out: Record<string, unknown> = {};
  if (r.key !== undefined) out.key = r.key;
  if (r.bytes) out.valueBase64 = toBase64(r.bytes);
  else if (r.valueBase64 !== undefined) out.valueBase64 = r.valueBase64;
  else out.value = r.value === undefined ? null : r.value;
  if (r.headers !== undefined) out.headers = r.headers;
  if (r.partition !== undefined) out.partition = r.partition;
  return out;
}

/**
 * Sends records to topics, batching concurrent sends into one request per
 * topic within a short linger window. Get one with `client.producer()`.
 *
 * Each `send` resolves with where its records were appended once they are
 * committed, or rejects with a RaftbusError: a typed one for a permanent
 * failure (TopicNotFoundError, RecordTooLargeError, ...), an
 * UnavailableError when retries ran out (then `maybeApplied` says whether the
 * records may be in the log after all). A send never appends twice.
 */
export class Producer {
  private readonly queues = new Map<string, TopicQueue>();
  private readonly o: Required<ProducerOptions>;
  private inFlight = 0;
  private buffered = 0;
  private readonly roomWaiters: { bytes: number; go: () => void }[] = [];
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;

  /** Use `client.producer()`. */
  constructor(
    private readonly transport: Transport,
    o: ProducerOptions = {},
  ) {
    this.o = {
      lingerMs: o.lingerMs ?? 5,
      maxBatchRecords: o.maxBatchRecords ?? 10_000,
      maxBatchBytes: o.maxBatchBytes ?? 1024 * 1024,
      maxInFlightRequests: o.maxInFlightRequests ?? 5,
      maxBufferedBytes: o.maxBufferedBytes ?? 32 * 1024 * 1024,
      deliveryTimeoutMs: clampRetryTimeout(o.deliveryTimeoutMs ?? transport.retryTimeoutMs),
    };
  }

  /** How long a batch is retried before its sends reject, ms (after clamping to 9 minutes). */
  get deliveryTimeoutMs(): number {
    return this.o.deliveryTimeoutMs;
  }

  /** Bytes of records queued or in flight (what `maxBufferedBytes` bounds). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Appends one record; resolves with its partition, offset and timestamp
   * once it is committed. Waits first while `maxBufferedBytes` are queued.
   */
  send(topic: string, record: ProducerRecord): Promise<RecordMetadata>;
  /** Appends records atomically, in order; resolves with where each one went, in the same order. */
  send(topic: string, records: ProducerRecord[]): Promise<RecordMetadata[]>;
  send(topic: string, r: ProducerRecord | ProducerRecord[]): Promise<RecordMetadata | RecordMetadata[]> {
    const p = this.doSend(topic, r);
    this.pending.add(p);
    const forget = () => this.pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async doSend(
    topic: string,
    r: ProducerRecord | ProducerRecord[],
  ): Promise<RecordMetadata | RecordMetadata[]> {
    if (this.closed) throw new ClosedError({ status: 0, code: "CLOSED", message: "the producer is closed" });
    const list = Array.isArray(r) ? r : [r];
    if (list.length === 0) return [];
    const json = list.map((x) => JSON.stringify(wireRecord(x)));
    let bytes = 0;
    for (const j of json) bytes += utf8Length(j) + 1;
    await this.room(bytes);
    const out = await new Promise<RecordMetadata[]>((resolve, reject) =>
      this.enqueue(topic, { json, bytes, resolve, reject }),
    );
    return Array.isArray(r) ? out : out[0]!;
  }

  /**
   * Sends what is queued now, and resolves once every send made before this
   * call has settled (resolved or rejected).
   */
  async flush(): Promise<void> {
    const waiting = [...this.pending];
    for (const q of this.queues.values()) q.due = true;
    this.dispatch();
    await Promise.allSettled(waiting);
  }

  /** Refuses new sends, then flushes: resolves once every send has settled. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  // ---- backpressure -------------------------------------------------------------------

  /** Waits (first come, first served) until `bytes` more fit under maxBufferedBytes. */
  private async room(bytes: number): Promise<void> {
    const fits = () => this.buffered === 0 || this.buffered + bytes <= this.o.maxBufferedBytes;
    if (this.roomWaiters.length === 0 && fits()) {
      this.buffered += bytes;
      return;
    }
    await new Promise<void>((go) => this.roomWaiters.push({ bytes, go }));
  }

  private release(bytes: number): void {
    this.buffered -= bytes;
    while (this.roomWaiters.length > 0) {
      const w = this.roomWaiters[0]!;
      if (this.buffered !== 0 && this.buffered + w.bytes > this.o.maxBufferedBytes) break;
      this.roomWaiters.shift();
      this.buffered += w.bytes;
      w.go();
    }
  }

  // ---- batching -----------------------------------------------------------------------

  private enqueue(topic: string, s: PendingSend): void {
    let q = this.queues.get(topic);
    if (!q) {
      q = { sends: [], records: 0, bytes: 0, due: false, timer: undefined };
      this.queues.set(topic, q);
    }
    q.sends.push(s);
    q.records += s.json.length;
    q.bytes += s.bytes;
    if (this.full(q)) this.dispatch();
    else this.arm(q);
  }

  /** Starts the linger timer of a queue that is waiting for its first send to linger. */
  private arm(q: TopicQueue): void {
    if (q.timer || q.due || q.sends.length === 0) return;
    q.timer = setTimeout(() => {
      q.timer = undefined;
      q.due = true;
      this.dispatch();
    }, this.o.lingerMs);
  }

  private full(q: TopicQueue): boolean {
    return q.records >= this.o.maxBatchRecords || q.bytes >= this.o.maxBatchBytes;
  }

  /** Starts requests for the queues that are due or full, while request slots are free. */
  private dispatch(): void {
    for (const [topic, q] of this.queues) {
      while (this.inFlight < this.o.maxInFlightRequests && q.sends.length > 0 && (q.due || this.full(q))) {
        const batch = this.take(q);
        this.inFlight++;
        const bytes = batch.reduce((n, s) => n + s.bytes, 0);
        void this.sendBatch(topic, batch).finally(() => {
          this.inFlight--;
          this.release(bytes);
          this.dispatch();
        });
      }
      if (q.sends.length === 0) {
        if (q.timer) clearTimeout(q.timer);
        this.queues.delete(topic);
      } else {
        this.arm(q);
      }
    }
  }

  /** Whole sends from the front of `q`, within the batch bounds (at least one send). */
  private take(q: TopicQueue): PendingSend[] {
    const batch: PendingSend[] = [];
    let records = 0;
    let bytes = 0;
    while (q.sends.length > 0) {
      const s = q.sends[0]!;
      const more =
        records + s.json.length <= this.o.maxBatchRecords && bytes + s.bytes <= this.o.maxBatchBytes;
      if (batch.length > 0 && !more) break;
      q.sends.shift();
      batch.push(s);
      records += s.json.length;
      bytes += s.bytes;
    }
    q.records -= records;
    q.bytes -= bytes;
    return batch;
  }

  /** One request (with its retries) for a batch; settles every send of it. */
  private async sendBatch(topic: string, batch: PendingSend[]): Promise<void> {
    const body = `{"records":[${batch.map((s) => s.json.join(",")).join(",")}]}`;
    try {
      const res = await this.transport.request<{ records: RecordMetadata[] }>(
        "POST",
        `/v1/topics/${encodeURIComponent(topic)}/records`,
        {
          rawJson: body,
          headers: { "idempotency-key": randomKey() },
          retryTimeoutMs: this.o.deliveryTimeoutMs,
        },
      );
      let i = 0;
      for (const s of batch) {
        s.resolve(res.records.slice(i, i + s.json.length));
        i += s.json.length;
      }
    } catch (e) {
      // A permanent answer means nothing was appended: find the send it is about.
      if (batch.length > 1 && e instanceof RaftbusError && !e.maybeApplied && PER_SEND_CODES.has(e.code)) {
        for (const s of batch) await this.sendBatch(topic, [s]);
        return;
      }
      for (const s of batch) s.reject(e);
    }
  }
}
