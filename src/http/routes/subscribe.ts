// WebSocket subscriptions: GET /v1/topics/:topic/subscribe streams a topic's
// committed records as they commit (API.md "Subscribe (WebSocket)").
//
// Everything that can be refused is checked in a preValidation hook, before
// the upgrade, so errors are plain HTTP answers in the API's error shape (the
// app's onRequest hook has already checked the token by then). After the
// upgrade, one Subscription per socket keeps a cursor (the next offset to
// send) per partition and a pump that reads committed records from this
// node's applied state and sends them in bounded frames.
//
// Bounds (STYLE: a limit on everything):
// - a `records` frame holds at most maxFrameRecords records and about
//   maxFrameBytes of JSON (always at least one record);
// - the pump sends a frame only while the socket's send buffer
//   (ws.bufferedAmount) is below highWaterBytes; above it, it waits until that
//   frame is flushed to the kernel. So the buffer of one subscription stays
//   below highWaterBytes + one frame, whatever the reader does. A slow reader
//   is paused, never dropped: its cursor simply stops moving;
// - replies to client frames (committed/error) share that buffer: while it is
//   over highWaterBytes, or while maxPendingCommits commits are in flight, the
//   server stops reading the client's frames (ws.pause()).
//
// Flow control by credit (an extension of API.md, see docs/client.md): with
// `?credit=N` the server sends at most N records, plus whatever the client
// grants later with `{"type":"credit","records":n}` frames. This is how a
// client that cannot pause its socket (a browser) stops the server from
// sending; without `credit` nothing changes (TCP backpressure only). A
// `{"type":"ping"}` frame is answered with `{"type":"pong"}`.
//
// Close codes: 4404 topic deleted, 4416 retention trimmed records this reader
// had not been sent yet, 1001 node shutting down (grace, then terminate).

import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RawData, WebSocket } from "ws";
import type { Broker } from "../../broker/broker.ts";
import { BrokerError } from "../../broker/types.ts";
import { CodedError } from "../../node/coded-error.ts";
import type { HttpDeps } from "../deps.ts";
import { errorBody, HttpError } from "../errors.ts";
import { recordJsonText } from "../record-json.ts";
import { GROUP_NAME_PATTERN } from "./groups.ts";
import { intParam } from "./params.ts";

export const SUBSCRIBE_LIMITS = {
  /** Records in one `records` frame, at most. */
  maxFrameRecords: 1000,
  /** JSON characters in one `records` frame, about (a single larger record still goes alone). */
  maxFrameBytes: 1024 * 1024,
  /** The pump sends only while the socket's send buffer is below this. */
  highWaterBytes: 1024 * 1024,
  /** Commits of one connection in flight before the server stops reading its frames. */
  maxPendingCommits: 64,
  /** On shutdown, how long sockets get to finish the close handshake before they are cut. */
  shutdownGraceMs: 2000,
};

export const CLOSE_TOPIC_DELETED = 4404;
export const CLOSE_TRIMMED = 4416;
export const CLOSE_GOING_AWAY = 1001;
const CLOSE_INTERNAL = 1011;

/** Where a subscription starts, decided before the upgrade. */
type From =
  | { kind: "earliest" }
  | { kind: "latest" }
  | { kind: "offset"; offset: number }
  /** No explicit `from`: the group's committed offset where it has one, else latest. */
  | { kind: "default" };

interface Plan {
  topic: string;
  partitions: number[];
  from: From;
  group: string | undefined;
  /** Initial credit in records; undefined: no credit flow control. */
  credit: number | undefined;
}

/** Credit a subscription may hold at once (initial plus granted): far above any useful window. */
export const MAX_CREDIT = 1_000_000_000;

/** One subscription's state, for metrics and tests. */
export interface SubscriptionStats {
  topic: string;
  group: string | undefined;
  /** partition -> next offset to send. */
  cursors: Map<number, number>;
  bufferedBytes: number;
  peakBufferedBytes: number;
  framesSent: number;
  recordsSent: number;
  /** Whether the pump is waiting for the send buffer to drain. */
  waitingForDrain: boolean;
}

// ---- registry: the open subscriptions of one broker ----------------------------------

class Registry {
  readonly byTopic = new Map<string, Set<Subscription>>();
  /** Sockets not closed yet (a subscription leaves byTopic when it decides to close). */
  readonly sockets = new Set<WebSocket>();

  private readonly onAppend = (topic: string, partition: number, endOffset: number) => {
    for (const s of this.byTopic.get(topic) ?? []) s.onAppend(partition, endOffset);
  };
  private readonly onTrim = (topic: string, partition: number, startOffset: number) => {
    for (const s of this.byTopic.get(topic) ?? []) s.onTrim(partition, startOffset);
  };
  private readonly onDeleted = (topic: string) => {
    for (const s of this.byTopic.get(topic) ?? []) s.close(CLOSE_TOPIC_DELETED, "topic deleted");
  };

  constructor(
    readonly broker: Broker,
    readonly log: FastifyBaseLogger,
  ) {
    broker.state.on("append", this.onAppend);
    broker.state.on("trim", this.onTrim);
    broker.state.on("deleted", this.onDeleted);
  }

  detach(): void {
    this.broker.state.off("append", this.onAppend);
    this.broker.state.off("trim", this.onTrim);
    this.broker.state.off("deleted", this.onDeleted);
  }

  add(s: Subscription): void {
    let set = this.byTopic.get(s.topic);
    if (!set) {
      set = new Set();
      this.byTopic.set(s.topic, set);
    }
    set.add(s);
  }

  remove(s: Subscription): void {
    const set = this.byTopic.get(s.topic);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) this.byTopic.delete(s.topic);
  }

  /** Closes every subscription with 1001; cuts sockets still open after graceMs. */
  async shutdown(graceMs: number): Promise<void> {
    for (const set of [...this.byTopic.values()]) {
      for (const s of [...set]) s.close(CLOSE_GOING_AWAY, "node shutting down");
    }
    if (this.sockets.size === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, graceMs);
      let left = this.sockets.size;
      for (const ws of this.sockets) {
        ws.once("close", () => {
          if (--left === 0) done();
        });
      }
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
    // A reader that does not read never sees the close frame behind its data.
    for (const ws of this.sockets) ws.terminate();
  }
}

const registries = new WeakMap<Broker, Registry>();

/** Open subscriptions per topic on this node (for raftbus_subscribers{topic}). */
export function subscriberCounts(broker: Broker): Map<string, number> {
  const out = new Map<string, number>();
  for (const [topic, set] of registries.get(broker)?.byTopic ?? []) out.set(topic, set.size);
  return out;
}

/** A snapshot of every open subscription on this node. */
export function subscriptionStats(broker: Broker): SubscriptionStats[] {
  const out: SubscriptionStats[] = [];
  for (const set of registries.get(broker)?.byTopic.values() ?? []) {
    for (const s of set) out.push(s.stats());
  }
  return out;
}

// ---- one subscription ---------------------------------------------------------------

class Subscription {
  private closed = false;
  private pumpScheduled = false;
  private pumping = false;
  /** Index (in partition order) of the partition the pump serves first next time. */
  private rrNext = 0;
  /** Resolves the pump's wait for the send buffer to drain (also on close). */
  private wakePump: (() => void) | undefined;
  private pendingCommits = 0;
  /** The reply whose flush unblocks input, while replies filled the buffer. */
  private replyBlock = 0;
  private replySeq = 0;
  private inputPaused = false;
  private peakBufferedBytes = 0;
  private framesSent = 0;
  private recordsSent = 0;

  constructor(
    private readonly ws: WebSocket,
    private readonly broker: Broker,
    private readonly registry: Registry,
    readonly topic: string,
    private readonly group: string | undefined,
    /** partition -> next offset to send, in partition order. */
    private readonly cursors: Map<number, number>,
    /** Records the client has granted and not been sent; undefined: no credit flow control. */
    private credit: number | undefined,
  ) {}

  start(): void {
    this.registry.add(this);
    this.registry.sockets.add(this.ws);
    this.ws.on("close", () => {
      this.registry.sockets.delete(this.ws);
      this.markClosed();
    });
    this.ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    this.kick();
  }

  stats(): SubscriptionStats {
    return {
      topic: this.topic,
      group: this.group,
      cursors: new Map(this.cursors),
      bufferedBytes: this.ws.bufferedAmount,
      peakBufferedBytes: this.peakBufferedBytes,
      framesSent: this.framesSent,
      recordsSent: this.recordsSent,
      waitingForDrain: this.wakePump !== undefined,
    };
  }

  // ---- events from the broker state (synchronous, inside apply: only schedule) ----

  onAppend(partition: number, endOffset: number): void {
    const next = this.cursors.get(partition);
    if (next !== undefined && next < endOffset) this.kick();
  }

  onTrim(partition: number, startOffset: number): void {
    const next = this.cursors.get(partition);
    if (next !== undefined && next < startOffset) {
      this.close(CLOSE_TRIMMED, `partition ${partition} trimmed past offset ${next}`);
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.markClosed();
    this.ws.close(code, reason);
  }

  private markClosed(): void {
    this.closed = true;
    this.registry.remove(this);
    const wake = this.wakePump;
    this.wakePump = undefined;
    wake?.();
  }

  // ---- server -> client: the pump ---------------------------------------------------

  private kick(): void {
    if (this.closed || this.pumping || this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump().catch((e: unknown) => {
        // A broken invariant (see buildFrame): say so loudly, end this stream, keep the node.
        this.registry.log.error({ err: e, topic: this.topic }, "subscription failed");
        this.close(CLOSE_INTERNAL, "internal error");
      });
    });
  }

  /**
   * Sends what is committed past each cursor, one bounded frame per partition
   * per round (partitions share the socket fairly), until a round finds
   * nothing new. Each round starts at the partition after the one served last
   * (also across pumps), so that partitions share small credit grants fairly
   * too. The last round has no await, so an append that lands after it finds
   * `pumping` false and kicks a new pump: nothing is missed.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      const order = [...this.cursors.keys()];
      let progressed = true;
      while (progressed && !this.closed) {
        progressed = false;
        const first = this.rrNext % order.length;
        for (let i = 0; i < order.length; i++) {
          if (this.closed) return;
          const k = (first + i) % order.length;
          const partition = order[k]!;
          const next = this.cursors.get(partition)!;
          const b = this.broker.state.bounds(this.topic, partition);
          if (!b) return this.close(CLOSE_TOPIC_DELETED, "topic deleted");
          if (next < b.start) {
            return this.close(CLOSE_TRIMMED, `partition ${partition} trimmed past offset ${next}`);
          }
          if (next >= b.end) continue;
          // Out of credit: stop; a credit frame kicks the pump again.
          if (this.credit !== undefined && this.credit <= 0) return;
          const frame = this.buildFrame(partition, next, this.credit);
          if (!frame) continue;
          progressed = true;
          this.rrNext = k + 1;
          this.cursors.set(partition, frame.nextOffset);
          this.framesSent++;
          this.recordsSent += frame.count;
          if (this.credit !== undefined) this.credit -= frame.count;
          await this.sendWithBackpressure(frame.text);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** A `records` frame from `offset` on: at least one record, no gap, bounded. */
  private buildFrame(
    partition: number,
    offset: number,
    credit: number | undefined,
  ): { text: string; count: number; nextOffset: number } | undefined {
    const { maxFrameBytes } = SUBSCRIBE_LIMITS;
    const maxFrameRecords = Math.min(SUBSCRIBE_LIMITS.maxFrameRecords, credit ?? Number.POSITIVE_INFINITY);
    const records = this.broker.state.read(this.topic, partition, offset, maxFrameRecords, maxFrameBytes);
    let text = `{"type":"records","partition":${partition},"records":[`;
    let expected = offset;
    for (const r of records) {
      // Invariant: dense offsets, read from the cursor on. Anything else is a bug, not a gap to hide.
      if (r.offset !== expected) throw new Error(`subscribe: read offset ${r.offset}, expected ${expected}`);
      const json = recordJsonText(r);
      if (expected > offset && text.length + json.length > maxFrameBytes) break;
      text += expected > offset ? `,${json}` : json;
      expected++;
    }
    if (expected === offset) return undefined;
    return { text: `${text}]}`, count: expected - offset, nextOffset: expected };
  }

  /**
   * Sends a frame; when the send buffer is then over the high-water mark,
   * waits until this frame (and so everything before it) is flushed to the
   * kernel. Only this frame's callback (or a close) ends the wait.
   */
  private async sendWithBackpressure(text: string): Promise<void> {
    let flushed = false;
    let wake: (() => void) | undefined;
    this.ws.send(text, () => {
      flushed = true;
      wake?.();
    });
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.peakBufferedBytes) this.peakBufferedBytes = buffered;
    if (buffered < SUBSCRIBE_LIMITS.highWaterBytes) {
      // Let I/O and the Raft loop run between frames to a fast reader.
      await yieldToLoop();
      return;
    }
    await new Promise<void>((resolve) => {
      if (flushed || this.closed) return resolve();
      wake = resolve;
      this.wakePump = resolve;
    });
    this.wakePump = undefined;
  }

  // ---- client -> server -------------------------------------------------------------

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    const sole = this.cursors.size === 1 ? this.cursors.keys().next().value : undefined;
    const f = parseClientFrame(data, isBinary, this.group !== undefined, sole, this.credit !== undefined);
    if ("error" in f) this.invalid(f.error);
    else if ("credit" in f) this.grant(f.credit);
    else if ("ping" in f) this.reply({ type: "pong" });
    else this.commit(this.group!, f);
  }

  private grant(records: number): void {
    this.credit = Math.min(MAX_CREDIT, (this.credit ?? 0) + records);
    this.kick();
  }

  private commit(group: string, c: CommitFrame): void {
    const { partition, offset } = c;
    // An `id` the client sent comes back on the answer, for correlation.
    const id = c.id === undefined ? {} : { id: c.id };
    this.pendingCommits++;
    this.updateInput();
    this.broker
      .commitOffset(group, this.topic, partition, offset)
      .then(
        () => this.reply({ type: "committed", partition, offset, ...id }),
        (e: unknown) => this.reply(errorFrame(e, { partition, offset, ...id })),
      )
      .finally(() => {
        this.pendingCommits--;
        this.updateInput();
      });
  }

  private invalid(message: string): void {
    this.reply(errorFrame(new HttpError("INVALID_REQUEST", message)));
  }

  private reply(frame: Record<string, unknown>): void {
    if (this.closed) return;
    const seq = ++this.replySeq;
    this.ws.send(JSON.stringify(frame), () => {
      if (this.replyBlock === seq) {
        this.replyBlock = 0;
        this.updateInput();
      }
    });
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.peakBufferedBytes) this.peakBufferedBytes = buffered;
    if (buffered >= SUBSCRIBE_LIMITS.highWaterBytes) {
      this.replyBlock = seq;
      this.updateInput();
    }
  }

  /** Stops reading client frames while their answers could pile up. */
  private updateInput(): void {
    if (this.closed) return;
    const pause = this.replyBlock !== 0 || this.pendingCommits >= SUBSCRIBE_LIMITS.maxPendingCommits;
    if (pause === this.inputPaused) return;
    this.inputPaused = pause;
    if (pause) this.ws.pause();
    else this.ws.resume();
  }
}

interface CommitFrame {
  partition: number;
  offset: number;
  id: string | number | undefined;
}

/**
 * A client frame: `commit`, `ping`, or `credit` on a subscription opened with
 * `?credit=`. `partition` may be left out of a commit when the subscription
 * has one partition (`sole`). Anything else is an error message for an
 * INVALID_REQUEST frame.
 */
export function parseClientFrame(
  data: RawData,
  isBinary: boolean,
  hasGroup: boolean,
  sole: number | undefined,
  hasCredit = false,
): CommitFrame | { credit: number } | { ping: true } | { error: string } {
  if (isBinary) return { error: "frames are JSON text, not binary" };
  let msg: unknown;
  try {
    msg = JSON.parse(rawText(data));
  } catch {
    return { error: "frame is not JSON" };
  }
  if (typeof msg !== "object" || msg === null || Array.isArray(msg)) {
    return { error: "a frame is a JSON object with a type" };
  }
  const m = msg as Record<string, unknown>;
  // A liveness probe for clients without WebSocket pings (browsers): answered with a pong frame.
  if (m.type === "ping") return { ping: true };
  if (m.type === "credit") {
    if (!hasCredit) return { error: "credit needs a subscription with ?credit=" };
    const n = m.records;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > MAX_CREDIT) {
      return { error: `credit needs records, an integer in 1..${MAX_CREDIT}` };
    }
    return { credit: n };
  }
  if (m.type !== "commit") {
    return {
      error: m.type === undefined ? "frame has no type" : `unknown frame type ${JSON.stringify(m.type)}`,
    };
  }
  if (!hasGroup) return { error: "commit needs a subscription with ?group=" };
  const partition = m.partition ?? sole;
  if (typeof partition !== "number" || !Number.isSafeInteger(partition) || partition < 0) {
    return { error: "commit needs partition, a non-negative integer" };
  }
  const offset = m.offset;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
    return { error: "commit needs offset, a non-negative integer" };
  }
  const id = typeof m.id === "string" || typeof m.id === "number" ? m.id : undefined;
  return { partition, offset, id };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("utf8");
  return data.toString("utf8");
}

function errorFrame(e: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const coded =
    e instanceof CodedError ? e : new CodedError("INTERNAL", e instanceof Error ? e.message : String(e));
  // A node that is shutting down is, to a client, a node without a leader (as in errors.ts).
  const code = coded.code === "STOPPED" ? "NO_LEADER" : coded.code;
  return { type: "error", ...errorBody(code, coded.message, { ...coded.extra, ...extra }).error };
}

// ---- before the upgrade: parameters ---------------------------------------------------

type Query = Record<string, string | string[] | undefined>;

function single(q: Query, name: string): string | undefined {
  const v = q[name];
  if (Array.isArray(v)) throw new HttpError("INVALID_REQUEST", `${name} is given more than once`);
  return v === "" ? undefined : v;
}

function parseFrom(raw: string | undefined): From {
  if (raw === undefined) return { kind: "default" };
  if (raw === "earliest") return { kind: "earliest" };
  if (raw === "latest") return { kind: "latest" };
  if (!/^\d+$/.test(raw)) {
    throw new HttpError("INVALID_REQUEST", `from must be earliest, latest or an offset, got "${raw}"`);
  }
  return { kind: "offset", offset: intParam(raw, "from", 0, Number.MAX_SAFE_INTEGER) };
}

const GROUP_NAME = new RegExp(GROUP_NAME_PATTERN);

/** Group names follow the groups API's rule (the topic-name rule). */
function parseGroup(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!GROUP_NAME.test(raw)) {
    throw new HttpError("INVALID_REQUEST", `group names match ${GROUP_NAME_PATTERN}, got "${raw}"`);
  }
  return raw;
}

/** Checks everything an HTTP error can refuse; throws BrokerError/HttpError (mapped by the app). */
function plan(broker: Broker, topic: string, q: Query): Plan {
  const info = broker.getTopic(topic); // 404 TOPIC_NOT_FOUND
  const rawPartition = single(q, "partition");
  const from = parseFrom(single(q, "from"));
  const group = parseGroup(single(q, "group"));
  const rawCredit = single(q, "credit");
  const credit = rawCredit === undefined ? undefined : intParam(rawCredit, "credit", 0, MAX_CREDIT);
  let partitions: number[];
  if (rawPartition === undefined) {
    partitions = info.partitions.map((p) => p.partition);
  } else {
    const p = intParam(rawPartition, "partition", 0, Number.MAX_SAFE_INTEGER);
    broker.requirePartition(topic, p); // 404 PARTITION_NOT_FOUND
    partitions = [p];
  }
  if (from.kind === "offset") {
    for (const p of partitions) {
      const b = broker.requirePartition(topic, p);
      if (from.offset < b.start || from.offset > b.end) {
        throw new BrokerError(
          "OFFSET_OUT_OF_RANGE",
          `from ${from.offset} is outside [${b.start}, ${b.end}] of partition ${p}`,
          { startOffset: b.start, endOffset: b.end, partition: p },
        );
      }
    }
  }
  return { topic, partitions, from, group, credit };
}

/**
 * Cursors at the moment of the upgrade (`latest` is the end then), or the
 * close code when the topic changed since the checks (deleted, or trimmed past
 * an explicit offset).
 */
function startCursors(broker: Broker, p: Plan): Map<number, number> | { code: number; reason: string } {
  const cursors = new Map<number, number>();
  for (const partition of p.partitions) {
    const b = broker.state.bounds(p.topic, partition);
    if (!b) return { code: CLOSE_TOPIC_DELETED, reason: "topic deleted" };
    let next: number;
    switch (p.from.kind) {
      case "earliest":
        next = b.start;
        break;
      case "latest":
        next = b.end;
        break;
      case "offset":
        if (p.from.offset < b.start) {
          return {
            code: CLOSE_TRIMMED,
            reason: `partition ${partition} trimmed past offset ${p.from.offset}`,
          };
        }
        // Ends only grow: an offset past the end means the topic was deleted and created again.
        if (p.from.offset > b.end) return { code: CLOSE_TOPIC_DELETED, reason: "topic deleted" };
        next = p.from.offset;
        break;
      case "default": {
        const committed = p.group === undefined ? undefined : broker.groupOffset(p.group, p.topic, partition);
        // A committed offset below the start points at trimmed records: start at the oldest one kept.
        next = committed === undefined ? b.end : Math.min(Math.max(committed, b.start), b.end);
        break;
      }
    }
    cursors.set(partition, next);
  }
  return cursors;
}

// ---- the route ----------------------------------------------------------------------------

export async function subscribeRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { broker } = deps;
  const registry = new Registry(broker, app.log);
  registries.set(broker, registry);
  const plans = new WeakMap<FastifyRequest, Plan>();

  // The websocket plugin's own preClose (it runs first) closes the clients it
  // tracks without a code; subscriptions leave its set so that they close here,
  // with 1001, as the API says.
  app.addHook("preClose", async () => {
    await registry.shutdown(SUBSCRIBE_LIMITS.shutdownGraceMs);
  });
  app.addHook("onClose", async () => {
    registry.detach();
  });

  app.route<{ Params: { topic: string }; Querystring: Query }>({
    method: "GET",
    url: "/v1/topics/:topic/subscribe",
    preValidation: async (req) => {
      plans.set(req, plan(broker, req.params.topic, req.query));
    },
    // An upgrade refused before the handler (by any hook) leaves a raw socket
    // behind that no HTTP parser watches any more: close it once answered.
    onResponse: async (req) => {
      if ((req.raw as { upgrade?: boolean }).upgrade === true) req.raw.socket?.destroy();
    },
    handler: async (_req, reply: FastifyReply) => {
      reply.header("Upgrade", "websocket");
      return reply
        .status(426)
        .send(errorBody("UPGRADE_REQUIRED", "subscribe is a WebSocket: send an upgrade request"));
    },
    wsHandler: (socket, req) => {
      app.websocketServer.clients.delete(socket);
      const p = plans.get(req);
      if (!p) return socket.close(CLOSE_INTERNAL, "internal error");
      const cursors = startCursors(broker, p);
      if (!(cursors instanceof Map)) return socket.close(cursors.code, cursors.reason);
      // Detects peers that vanished (kernel probes, answered even by a paused reader).
      req.raw.socket?.setKeepAlive?.(true, 30_000);
      new Subscription(socket, broker, registry, p.topic, p.group, cursors, p.credit).start();
    },
  });
}
