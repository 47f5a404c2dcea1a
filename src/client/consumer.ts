// The consumer: an async iterator of a topic's records over WebSocket
// subscriptions, one per partition (API.md "Subscribe").
//
// Position. Per partition the consumer keeps the next offset to receive.
// Every socket, the first and each one after a failure (on the next server),
// starts exactly there, and records below it are dropped, so the records
// delivered have no gap and no repeat. `latest` and the group's committed
// offset are turned into numbers before the first socket for the same reason.
//
// Flow control. Each socket is opened with `?credit=` (docs/client.md): the
// server sends a partition at most `window` records ahead of what the
// iterator has handed out, so the client buffers at most `window` records
// per partition. `pause()` stops granting credit, so the server stops sending.
//
// Reconnects. A socket that closes is reopened at once on the next server.
// One that opened but closed again before it delivered a record or stayed
// open MIN_HEALTHY_MS counts as a failure to connect, like one that never
// opened: after each server was tried once, reconnects back off, and after
// reconnectTimeoutMs of failures the iterator fails. So nodes that accept
// the upgrade and close at once do not make the consumer spin.
//
// Commits go over HTTP (`POST /v1/groups/:group/offsets`, retried on any
// node). A record counts as processed once the iterator is asked for the
// next one; auto-commit commits processed records, `commit()` everything
// handed out.

import {
  ClosedError,
  errorFromAnswer,
  OffsetOutOfRangeError,
  PartitionNotFoundError,
  type RaftbusError,
  TopicDeletedError,
  TopicNotFoundError,
  UnavailableError,
} from "./errors.ts";
import type { Transport } from "./transport.ts";
import type { ConsumedRecord, FetchedRecord, GroupOffset, TopicInfo } from "./types.ts";
import { backoffMs, sleep } from "./util.ts";

/** The part of the browser's WebSocket the consumer uses (`ws`'s WebSocket has it too). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // biome-ignore lint/suspicious/noExplicitAny: each implementation types its events its own way (DOM, ws)
  addEventListener(type: string, listener: (ev: any) => void): void;
}

/** A WebSocket class: the browser's `WebSocket`, or `ws`'s in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Where and how a consumer reads. */
export interface SubscribeOptions {
  /** Consumer group: without `from`, start at its committed offsets; commits go to it. */
  group?: string;
  /**
   * `earliest`, `latest` or an offset (each partition). Default: the group's
   * committed offset where it has one, else `latest`.
   */
  from?: "earliest" | "latest" | number;
  /** Only this partition (default: every partition of the topic). */
  partition?: number;
  /** With a group, commit processed records every autoCommitIntervalMs and on close (default true). */
  autoCommit?: boolean;
  /** Default 1000. */
  autoCommitIntervalMs?: number;
  /** Records per partition the server may send ahead of the iterator (default 1000). */
  window?: number;
  /** A socket silent this long gets a ping; one silent twice as long is given up (default 10000). */
  heartbeatMs?: number;
  /** How long to keep trying to reconnect before the iterator fails, ms (default: the client's retryTimeoutMs). */
  reconnectTimeoutMs?: number;
  /** Called with a one-line note on each reconnect, skipped range or server error frame. */
  onEvent?: (note: string) => void;
}

interface Part {
  partition: number;
  /** Next offset to receive; "earliest" until the first record when started there. */
  next: number | "earliest";
  /** Records of this partition in the consumer's buffer. */
  buffered: number;
  /** Credit granted on the current socket and not used yet. */
  credit: number;
  ws: WebSocketLike | undefined;
  /** The server of the current socket. */
  server: string | undefined;
  /** Offset after the last record handed out, and after the last one processed. */
  delivered: number | undefined;
  processed: number | undefined;
  /** Highest offset committed (or found committed) for the group. */
  committed: number;
  /** When consecutive failures to connect began (undefined: connected). */
  failingSince: number | undefined;
  /** Consecutive failures: sockets that did not open, or closed before they were healthy. */
  failures: number;
  opened: boolean;
}

interface Waiter {
  resolve: (r: IteratorResult<ConsumedRecord>) => void;
  reject: (e: unknown) => void;
}

const OPEN = 1;
const CLOSE_TOPIC_DELETED = 4404;
const OPEN_TIMEOUT_MS = 10_000;
/** A socket is healthy (ends a run of failures) once it delivers a record or stays open this long. */
const MIN_HEALTHY_MS = 3000;

/** How a socket ended: whether it opened, and whether it became healthy before it closed. */
interface Ended {
  opened: boolean;
  healthy: boolean;
  code: number;
  reason: string;
}

/**
 * An async iterator of a topic's records: `for await (const r of consumer)`.
 * Get one with `client.subscribe()`. Delivers committed records in offset
 * order per partition, each once, across reconnects to other nodes.
 */
export class Consumer implements AsyncIterableIterator<ConsumedRecord> {
  private readonly parts = new Map<number, Part>();
  private buffer: ConsumedRecord[] = [];
  private head = 0;
  private readonly waiters: Waiter[] = [];
  private lastHandedOut: ConsumedRecord | undefined;
  private error: unknown;
  private closed = false;
  private closing: Promise<void> | undefined;
  private paused = false;
  private commitChain: Promise<void> = Promise.resolve();
  private autoTimer: ReturnType<typeof setInterval> | undefined;
  private readonly window: number;
  private readonly heartbeatMs: number;
  private readonly reconnectTimeoutMs: number;
  private readonly autoCommit: boolean;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (e: unknown) => void;

  /** Use `client.subscribe()`. */
  constructor(
    private readonly transport: Transport,
    private readonly WS: WebSocketConstructor,
    /** The topic this consumer reads. */
    readonly topic: string,
    private readonly o: SubscribeOptions = {},
  ) {
    this.window = Math.max(1, Math.floor(o.window ?? 1000));
    this.heartbeatMs = o.heartbeatMs ?? 10_000;
    this.reconnectTimeoutMs = o.reconnectTimeoutMs ?? transport.retryTimeoutMs;
    this.autoCommit = o.group !== undefined && (o.autoCommit ?? true);
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Failures reach the caller through next() and ready(); this copy must not count as unhandled.
    this.readyPromise.catch(() => {});
    void this.start().catch((e: unknown) => this.fail(e));
  }

  /** Resolves once every partition's first subscription is open (e.g. before producing to a `latest` reader). */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Whether credit is withheld (see pause()). */
  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Stops the server from sending more: no more credit is granted, so at
   * most `window` records per partition arrive after this. Records already
   * buffered are still handed out.
   */
  pause(): void {
    this.paused = true;
  }

  /** Grants credit again: the server resumes sending where it stopped. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    for (const p of this.parts.values()) this.topUp(p);
  }

  /** Records received and not handed out yet (at most `window` per partition). */
  get bufferedRecords(): number {
    return this.buffer.length - this.head;
  }

  /** Per partition, the offset after the last record handed out (what commit() stores). */
  positions(): Map<number, number> {
    const out = new Map<number, number>();
    for (const p of this.parts.values()) if (p.delivered !== undefined) out.set(p.partition, p.delivered);
    return out;
  }

  /** Per partition, the server its socket is open (or opening) to. */
  connections(): Map<number, string> {
    const out = new Map<number, string>();
    for (const p of this.parts.values()) if (p.ws && p.server) out.set(p.partition, p.server);
    return out;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next record; waits for one. Rejects once with a fatal error, then is done. */
  next(): Promise<IteratorResult<ConsumedRecord>> {
    this.markProcessed();
    if (this.head < this.buffer.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.error !== undefined) {
      const e = this.error;
      this.error = undefined;
      return Promise.reject(e);
    }
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Ends the iteration (`break` out of `for await` calls it): closes the consumer. */
  async return(): Promise<IteratorResult<ConsumedRecord>> {
    await this.close();
    return { value: undefined, done: true };
  }

  /**
   * Commits, for each partition, the offset after the last record handed
   * out (or the given offsets), so that the group resumes there. Needs a group.
   */
  commit(offsets?: { partition: number; offset: number }[]): Promise<void> {
    const group = this.o.group;
    if (group === undefined) return Promise.reject(new TypeError("commit() needs a consumer group"));
    const targets =
      offsets ??
      [...this.parts.values()]
        .filter((p) => p.delivered !== undefined)
        .map((p) => ({ partition: p.partition, offset: p.delivered! }));
    return this.commitOffsets(group, targets);
  }

  /**
   * Stops reading, commits processed records (with auto-commit), closes the
   * sockets. A pending next() resolves as done. Safe to call twice.
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    if (this.autoTimer) clearInterval(this.autoTimer);
    for (const p of this.parts.values()) this.drop(p, 1000);
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
    this.rejectReady(new ClosedError({ status: 0, code: "CLOSED", message: "the consumer was closed" }));
    if (this.autoCommit) await this.commitProcessed();
    await this.commitChain;
  }

  // ---- start ------------------------------------------------------------------------

  private async start(): Promise<void> {
    const info = await this.transport.request<TopicInfo>(
      "GET",
      `/v1/topics/${encodeURIComponent(this.topic)}`,
    );
    const chosen =
      this.o.partition === undefined
        ? info.partitions
        : info.partitions.filter((p) => p.partition === this.o.partition);
    if (chosen.length === 0) {
      throw new PartitionNotFoundError({
        status: 404,
        code: "PARTITION_NOT_FOUND",
        message: `topic "${this.topic}" has no partition ${this.o.partition}`,
      });
    }
    const from = this.o.from;
    let committed = new Map<number, number>();
    if (this.o.group !== undefined) {
      const res = await this.transport.request<{ offsets: GroupOffset[] }>(
        "GET",
        `/v1/groups/${encodeURIComponent(this.o.group)}/offsets`,
      );
      committed = new Map(
        res.offsets.filter((g) => g.topic === this.topic).map((g) => [g.partition, g.offset]),
      );
    }
    for (const b of chosen) {
      let next: number | "earliest";
      if (from === "earliest") next = "earliest";
      else if (typeof from === "number") {
        if (!Number.isSafeInteger(from) || from < b.startOffset || from > b.endOffset) {
          throw new OffsetOutOfRangeError({
            status: 416,
            code: "OFFSET_OUT_OF_RANGE",
            message: `from ${from} is outside [${b.startOffset}, ${b.endOffset}] of partition ${b.partition}`,
            details: { startOffset: b.startOffset, endOffset: b.endOffset, partition: b.partition },
          });
        }
        next = from;
      } else if (from === "latest") next = b.endOffset;
      else next = Math.min(Math.max(committed.get(b.partition) ?? b.endOffset, b.startOffset), b.endOffset);
      this.parts.set(b.partition, {
        partition: b.partition,
        next,
        buffered: 0,
        credit: 0,
        ws: undefined,
        server: undefined,
        delivered: undefined,
        processed: undefined,
        committed: committed.get(b.partition) ?? -1,
        failingSince: undefined,
        failures: 0,
        opened: false,
      });
    }
    if (this.closed) return;
    if (this.autoCommit) {
      this.autoTimer = setInterval(
        () => void this.commitProcessed().catch(() => {}),
        this.o.autoCommitIntervalMs ?? 1000,
      );
    }
    for (const p of this.parts.values()) void this.run(p).catch((e: unknown) => this.fail(e));
  }

  // ---- one partition's subscription, reconnected until the consumer closes -------------------

  private async run(p: Part): Promise<void> {
    while (!this.closed) {
      const server = this.transport.server;
      const r = await this.connect(p, server);
      if (this.closed) return;
      if (r.opened) {
        if (r.code === CLOSE_TOPIC_DELETED) {
          throw new TopicDeletedError({
            status: 0,
            code: "TOPIC_DELETED",
            message: `topic "${this.topic}" was deleted`,
          });
        }
        const why = `closed (${r.code}${r.reason ? ` ${r.reason}` : ""})`;
        if (r.healthy) {
          // 1001 (node shutting down), a broken connection, a silent socket, 4416: next server, at once.
          this.transport.rotate(server);
          this.note(
            `partition ${p.partition}: connection to ${server} ${why}; resuming at offset ${p.next} via ${this.transport.server}`,
          );
          continue;
        }
        // Accepted, then closed before a record or MIN_HEALTHY_MS: a failure to connect.
        await this.failed(p, server, `${why} right after opening`);
        continue;
      }
      await this.afterFailedOpen(p, server);
    }
  }

  /** Opens a socket at p.next on `server`; resolves when it closes (or is given up). */
  private connect(p: Part, server: string): Promise<Ended> {
    const q = new URLSearchParams({ partition: String(p.partition), from: String(p.next) });
    if (this.o.group !== undefined) q.set("group", this.o.group);
    const initial = this.paused ? 0 : Math.max(0, this.window - p.buffered);
    q.set("credit", String(initial));
    if (this.transport.token) q.set("token", this.transport.token);
    const url = `${server.replace(/^http/, "ws")}/v1/topics/${encodeURIComponent(this.topic)}/subscribe?${q}`;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch {
      return Promise.resolve({ opened: false, healthy: false, code: 1006, reason: "cannot connect" });
    }
    p.ws = ws;
    p.server = server;
    p.credit = initial;
    return new Promise((resolve) => {
      let opened = false;
      let healthy = false;
      let lastFrameAt = Date.now();
      let settled = false;
      let healthyTimer: ReturnType<typeof setTimeout> | undefined;
      const finish = (code: number, reason: string) => {
        if (settled) return;
        settled = true;
        clearInterval(beat);
        clearTimeout(openTimer);
        clearTimeout(healthyTimer);
        if (p.ws === ws) p.ws = undefined;
        resolve({ opened, healthy, code, reason });
      };
      // Only a socket that works ends a run of failures (and so the backoff).
      const markHealthy = () => {
        if (healthy || settled) return;
        healthy = true;
        p.failures = 0;
        p.failingSince = undefined;
      };
      // A socket that neither opens nor fails (a black-holed address) is given up.
      const openTimer = setTimeout(() => {
        if (!opened) {
          safeClose(ws, 4000);
          finish(1006, "open timed out");
        }
      }, OPEN_TIMEOUT_MS);
      // A silent socket gets a ping; one silent for two heartbeats is given up (its node may be gone).
      const beat = setInterval(
        () => {
          if (!opened) return;
          const silent = Date.now() - lastFrameAt;
          if (silent >= 2 * this.heartbeatMs) {
            safeClose(ws, 4000);
            finish(1006, "no answer to pings");
          } else if (silent >= this.heartbeatMs && ws.readyState === OPEN) ws.send('{"type":"ping"}');
        },
        Math.max(50, this.heartbeatMs / 2),
      );
      ws.addEventListener("open", () => {
        opened = true;
        lastFrameAt = Date.now();
        clearTimeout(openTimer);
        if (p.failures > 0) this.note(`partition ${p.partition}: resumed at offset ${p.next} via ${server}`);
        healthyTimer = setTimeout(markHealthy, MIN_HEALTHY_MS);
        if (!p.opened) {
          p.opened = true;
          if ([...this.parts.values()].every((x) => x.opened)) this.resolveReady();
        }
        this.topUp(p);
      });
      ws.addEventListener("message", (ev: { data: unknown }) => {
        if (p.ws !== ws || this.closed) return;
        lastFrameAt = Date.now();
        if (typeof ev.data !== "string") return;
        const before = p.next;
        if (!this.onFrame(p, ev.data)) {
          safeClose(ws, 4000);
          finish(1006, "records out of order");
        } else if (p.next !== before) markHealthy();
      });
      ws.addEventListener("error", () => {
        // a close follows
      });
      ws.addEventListener("close", (ev: { code: number; reason: string }) => finish(ev.code, ev.reason));
    });
  }

  /** After a socket failed to open: find out why from the same server, then wait or move on. */
  private async afterFailedOpen(p: Part, server: string): Promise<void> {
    let why = "cannot connect";
    try {
      const { res, text } = await this.transport.once(
        server,
        "GET",
        `/v1/topics/${encodeURIComponent(this.topic)}`,
        { timeoutMs: 5000 },
      );
      if (res.status === 401) throw errorFromAnswer(res.status, text);
      if (res.ok) {
        const b = (JSON.parse(text) as TopicInfo).partitions.find((x) => x.partition === p.partition);
        if (b && typeof p.next === "number" && p.next < b.startOffset) {
          // Retention removed records before they were read: they are gone from every node.
          this.note(
            `partition ${p.partition}: records ${p.next}..${b.startOffset - 1} were removed by retention before they were read; continuing at ${b.startOffset}`,
          );
          p.next = b.startOffset;
          return;
        }
        // Past this node's end: it is behind the node that sent the records. Another one, or later.
        why = b && typeof p.next === "number" && p.next > b.endOffset ? "node is behind" : `refused`;
      } else {
        const err = errorFromAnswer(res.status, text);
        if (err.code === "TOPIC_NOT_FOUND") await this.confirmDeleted(server);
        why = `HTTP ${res.status}${err.code.startsWith("HTTP_") ? "" : ` ${err.code}`}`;
      }
    } catch (e) {
      if (e instanceof TopicDeletedError || (e as RaftbusError)?.code === "UNAUTHORIZED") throw e;
      why = "unreachable";
    }
    await this.failed(p, server, why);
  }

  /**
   * The topic existed when the consumer started, and `server` says it does
   * not now: it was deleted (TopicDeletedError), unless the cluster, asked
   * again (the next server first), still has it (then `server` is behind).
   */
  private async confirmDeleted(server: string): Promise<void> {
    this.transport.rotate(server);
    try {
      await this.transport.request("GET", `/v1/topics/${encodeURIComponent(this.topic)}`, {
        retryTimeoutMs: 5000,
      });
    } catch (e) {
      if (!(e instanceof TopicNotFoundError)) return; // no second opinion: retry as usual
      throw new TopicDeletedError({
        status: 404,
        code: "TOPIC_DELETED",
        message: `topic "${this.topic}" was deleted`,
      });
    }
  }

  /** Counts a failure to connect on `server`; moves on, backs off, or gives up after reconnectTimeoutMs. */
  private async failed(p: Part, server: string, why: string): Promise<void> {
    const now = Date.now();
    p.failingSince ??= now;
    p.failures++;
    this.transport.rotate(server);
    if (now - p.failingSince > this.reconnectTimeoutMs) {
      throw new UnavailableError({
        status: 0,
        code: "UNAVAILABLE",
        message: `partition ${p.partition}: no server took the subscription for ${Math.round(this.reconnectTimeoutMs / 1000)} s (last: ${server} ${why})`,
        retriable: true,
      });
    }
    if (p.failures === 1 || p.failures % 10 === 0) {
      this.note(
        `partition ${p.partition}: cannot subscribe at ${server} (${why}); trying ${this.transport.server}`,
      );
    }
    // Each server once at once, then back off.
    if (p.failures >= this.transport.servers.length) await sleep(backoffMs(p.failures));
  }

  // ---- frames and the buffer ------------------------------------------------------------

  /** Handles a server frame; false when records do not continue at p.next (then the socket is dropped). */
  private onFrame(p: Part, text: string): boolean {
    let msg: { type?: string; records?: FetchedRecord[]; code?: string; message?: string };
    try {
      msg = JSON.parse(text);
    } catch {
      return true;
    }
    if (msg.type === "records" && Array.isArray(msg.records)) {
      p.credit = Math.max(0, p.credit - msg.records.length);
      for (const r of msg.records) {
        if (typeof p.next === "number") {
          if (r.offset < p.next) continue; // never deliver one twice
          if (r.offset > p.next) return false; // a gap: never skip one either
        }
        this.buffer.push({ ...r, partition: p.partition });
        p.buffered++;
        p.next = r.offset + 1;
      }
      this.wake();
    } else if (msg.type === "error") {
      this.note(`partition ${p.partition}: server says ${msg.code ?? "ERROR"}: ${msg.message ?? ""}`);
    }
    return true;
  }

  private take(): ConsumedRecord {
    const r = this.buffer[this.head]!;
    this.buffer[this.head] = undefined as unknown as ConsumedRecord;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.buffer.length) {
      this.buffer = this.buffer.slice(this.head);
      this.head = 0;
    }
    const p = this.parts.get(r.partition)!;
    p.buffered--;
    p.delivered = r.offset + 1;
    this.lastHandedOut = r;
    this.topUp(p);
    return r;
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.head < this.buffer.length) {
      this.waiters.shift()!.resolve({ value: this.take(), done: false });
    }
  }

  /** The record handed out last is processed once the next one is asked for. */
  private markProcessed(): void {
    const r = this.lastHandedOut;
    if (!r) return;
    this.lastHandedOut = undefined;
    const p = this.parts.get(r.partition);
    if (p) p.processed = Math.max(p.processed ?? 0, r.offset + 1);
  }

  /** Grants credit so that buffered + outstanding gets back to `window`, once it is down to half. */
  private topUp(p: Part): void {
    const ws = p.ws;
    if (this.paused || this.closed || !ws || ws.readyState !== OPEN) return;
    const ahead = p.credit + p.buffered;
    if (ahead > this.window / 2) return;
    const n = this.window - ahead;
    ws.send(JSON.stringify({ type: "credit", records: n }));
    p.credit += n;
  }

  private drop(p: Part, code: number): void {
    const ws = p.ws;
    p.ws = undefined;
    if (ws) safeClose(ws, code);
  }

  private fail(e: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (this.autoTimer) clearInterval(this.autoTimer);
    for (const p of this.parts.values()) this.drop(p, 1000);
    this.rejectReady(e);
    const w = this.waiters.shift();
    if (w) w.reject(e);
    else this.error = e;
    for (const x of this.waiters.splice(0)) x.resolve({ value: undefined, done: true });
  }

  private note(s: string): void {
    this.o.onEvent?.(s);
  }

  // ---- commits ------------------------------------------------------------------------

  private commitProcessed(): Promise<void> {
    const group = this.o.group;
    if (group === undefined) return Promise.resolve();
    const targets = [...this.parts.values()]
      .filter((p) => p.processed !== undefined)
      .map((p) => ({ partition: p.partition, offset: p.processed! }));
    return this.commitOffsets(group, targets);
  }

  /** Commits in order (one chain per consumer), never moving a partition's offset backwards. */
  private commitOffsets(group: string, targets: { partition: number; offset: number }[]): Promise<void> {
    const run = async () => {
      for (const t of targets) {
        const p = this.parts.get(t.partition);
        if (p && t.offset <= p.committed) continue;
        await this.transport.request("POST", `/v1/groups/${encodeURIComponent(group)}/offsets`, {
          body: { topic: this.topic, partition: t.partition, offset: t.offset },
        });
        if (p) p.committed = Math.max(p.committed, t.offset);
      }
    };
    const next = this.commitChain.then(run, run);
    this.commitChain = next.catch(() => {});
    return next;
  }
}

function safeClose(ws: WebSocketLike, code: number): void {
  try {
    ws.close(code);
  } catch {
    // closing a socket that is not open yet may throw in some implementations
  }
}
