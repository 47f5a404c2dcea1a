// RaftbusClient: the entry point. Holds the cluster's servers (a Transport),
// makes producers and consumers, and has the admin calls of API.md.

import { Consumer, type SubscribeOptions, type WebSocketConstructor } from "./consumer.ts";
import { Producer, type ProducerOptions, wireRecord } from "./producer.ts";
import { type RequestOptions, Transport, type TransportOptions } from "./transport.ts";
import type {
  ClusterInfo,
  CreateTopicOptions,
  FetchResult,
  GroupOffset,
  ProducerRecord,
  RecordMetadata,
  TopicInfo,
} from "./types.ts";
import { randomKey } from "./util.ts";

/** What a client needs: seed servers, and optionally a token, a WebSocket class and timeouts. */
export interface ClientOptions extends TransportOptions {
  /**
   * The WebSocket class for subscriptions (default: `globalThis.WebSocket`).
   * In Node 20, pass `ws`'s: `import WebSocket from "ws"`.
   */
  WebSocket?: WebSocketConstructor;
}

const enc = encodeURIComponent;

/**
 * A client of a raftbus cluster. Tries the servers in turn, learns the other
 * members from `/v1/cluster`, and fails over when a node is down.
 *
 * ```ts
 * const client = new RaftbusClient({ servers: ["http://127.0.0.1:8081"] });
 * const producer = client.producer();
 * await producer.send("orders", { key: "user-7", value: { item: "book" } });
 * ```
 */
export class RaftbusClient {
  /** The HTTP side: servers, failover, retries (shared by producers and consumers). */
  readonly transport: Transport;
  private readonly WS: WebSocketConstructor | undefined;

  /** Connects lazily: nothing is sent until the first call. */
  constructor(o: ClientOptions) {
    this.transport = new Transport(o);
    this.WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  }

  /** The server requests go to now. */
  get server(): string {
    return this.transport.server;
  }

  /** A producer that batches concurrent sends (see Producer). */
  producer(o?: ProducerOptions): Producer {
    return new Producer(this.transport, o);
  }

  /**
   * A consumer of `topic`: an async iterator of its records that survives
   * node failures without gaps or repeats (see Consumer). Starts connecting
   * at once.
   */
  subscribe(topic: string, o?: SubscribeOptions): Consumer {
    if (!this.WS) {
      throw new TypeError("subscribe() needs a WebSocket class: pass the `WebSocket` option (in Node, ws's)");
    }
    return new Consumer(this.transport, this.WS, topic, o);
  }

  /** Any API call, with the client's failover and retries; answers the parsed JSON body. */
  request<T>(method: string, path: string, o?: RequestOptions): Promise<T> {
    return this.transport.request<T>(method, path, o);
  }

  // ---- topics ----

  /** Creates a topic (TopicExistsError when there is one of that name). */
  createTopic(t: CreateTopicOptions): Promise<TopicInfo> {
    return this.request("POST", "/v1/topics", { body: t });
  }

  /** Every topic. */
  async listTopics(): Promise<TopicInfo[]> {
    return (await this.request<{ topics: TopicInfo[] }>("GET", "/v1/topics")).topics;
  }

  /** One topic with its partitions' offsets (TopicNotFoundError when there is none). */
  describeTopic(name: string): Promise<TopicInfo> {
    return this.request("GET", `/v1/topics/${enc(name)}`);
  }

  /** Deletes a topic and its records (TopicNotFoundError when there is none). */
  async deleteTopic(name: string): Promise<void> {
    await this.request("DELETE", `/v1/topics/${enc(name)}`);
  }

  // ---- records (one request each; the producer batches) ----

  /**
   * Appends `records` in one request, with one Idempotency-Key (fresh unless
   * given) for every retry, so they are appended exactly once.
   */
  async produce(
    topic: string,
    records: ProducerRecord[],
    o: { idempotencyKey?: string; retryTimeoutMs?: number } = {},
  ): Promise<RecordMetadata[]> {
    const res = await this.request<{ records: RecordMetadata[] }>(
      "POST",
      `/v1/topics/${enc(topic)}/records`,
      {
        body: { records: records.map(wireRecord) },
        headers: { "idempotency-key": o.idempotencyKey ?? randomKey() },
        ...(o.retryTimeoutMs === undefined ? {} : { retryTimeoutMs: o.retryTimeoutMs }),
      },
    );
    return res.records;
  }

  /** Committed records of one partition from `offset` on (long-polls up to maxWaitMs at the end). */
  fetch(
    topic: string,
    partition: number,
    offset: number,
    o: { limit?: number; maxWaitMs?: number } = {},
  ): Promise<FetchResult> {
    const q = new URLSearchParams({ offset: String(offset) });
    if (o.limit !== undefined) q.set("limit", String(o.limit));
    if (o.maxWaitMs !== undefined) q.set("maxWaitMs", String(o.maxWaitMs));
    return this.request("GET", `/v1/topics/${enc(topic)}/partitions/${partition}/records?${q}`, {
      ...(o.maxWaitMs ? { timeoutMs: o.maxWaitMs + this.transport.requestTimeoutMs } : {}),
    });
  }

  /** The first offset of a partition whose timestamp is >= `timestamp` (its end when there is none). */
  async offsetForTimestamp(topic: string, partition: number, timestamp: number): Promise<number> {
    const res = await this.request<{ offset: number }>(
      "GET",
      `/v1/topics/${enc(topic)}/partitions/${partition}/offsets?timestamp=${timestamp}`,
    );
    return res.offset;
  }

  // ---- consumer groups ----

  /** A group's committed offsets, with lag. */
  async groupOffsets(group: string): Promise<GroupOffset[]> {
    return (await this.request<{ offsets: GroupOffset[] }>("GET", `/v1/groups/${enc(group)}/offsets`))
      .offsets;
  }

  /** Stores a group's next offset to read of one partition. */
  async commitOffset(group: string, topic: string, partition: number, offset: number): Promise<void> {
    await this.request("POST", `/v1/groups/${enc(group)}/offsets`, { body: { topic, partition, offset } });
  }

  // ---- cluster ----

  /**
   * The cluster as a node sees it: members, leader, term, commit/applied
   * indexes. With `fromLeader`, asks the leader (only it knows how far each
   * member has replicated), falling back to the first answer.
   */
  async clusterStatus(o: { fromLeader?: boolean } = {}): Promise<ClusterInfo & { via: string }> {
    const c = await this.request<ClusterInfo>("GET", "/v1/cluster");
    const via = this.transport.server;
    const leaderHttp = c.members.find((m) => m.id === c.leaderId)?.http;
    if (!o.fromLeader || c.leaderId === null || c.leaderId === c.nodeId || !leaderHttp) return { ...c, via };
    const scheme = via.startsWith("https:") ? "https" : "http";
    const leader = `${scheme}://${leaderHttp}`;
    try {
      const { res, text } = await this.transport.once(leader, "GET", "/v1/cluster", { timeoutMs: 3000 });
      if (res.ok) return { ...(JSON.parse(text) as ClusterInfo), via: leader };
    } catch {
      // the view of the node that answered will do
    }
    return { ...c, via };
  }

  /** Whether a server's `/readyz` says ready: "ready", "not ready" or "unreachable". */
  async probe(server: string, timeoutMs = 1500): Promise<"ready" | "not ready" | "unreachable"> {
    try {
      const { res } = await this.transport.once(server, "GET", "/readyz", { timeoutMs });
      return res.status === 200 ? "ready" : "not ready";
    } catch {
      return "unreachable";
    }
  }
}
