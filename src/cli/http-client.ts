// The CLI's client for the HTTP/WebSocket API (API.md): tries the `--server`
// URLs in turn, retries what the API calls retriable (NO_LEADER, BACKPRESSURE,
// COMMIT_TIMEOUT) and connection failures with backoff, and sends every produce
// batch with an Idempotency-Key so that a retry never appends twice.

import { randomUUID } from "node:crypto";
import { type Command, InvalidArgumentError, Option } from "commander";
import WebSocket from "ws";

export const DEFAULT_SERVERS = "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083";

/** An error answer of the API, or a failure to get any answer. */
export class ApiError extends Error {
  constructor(
    /** HTTP status; 0 when no server could be reached. */
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retriable: boolean,
    /** Further fields of the error object (e.g. startOffset/endOffset of a 416). */
    readonly details: Record<string, unknown> = {},
    /** Whether an earlier attempt of this request may have taken effect (504, broken connection). */
    readonly afterUncertainAttempt = false,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** A usage or input error of the CLI itself: printed without a stack, exit code `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export interface ClientOptions {
  /** Base URLs, tried in turn. */
  servers: string[];
  token?: string | undefined;
  /** Per-attempt timeout of an HTTP request. */
  requestTimeoutMs?: number;
  /** How long to keep retrying retriable failures before giving up. */
  retryTimeoutMs?: number;
  /** Called with a one-line note on each retry (e.g. to print with --verbose). */
  onRetry?: (note: string) => void;
}

/** Raw client flags as commander gives them. */
export interface ClientFlags {
  server?: string;
  token?: string;
  retryTimeoutMs?: number;
  verbose?: boolean;
}

const RETRIABLE_CODES = new Set(["NO_LEADER", "BACKPRESSURE", "COMMIT_TIMEOUT"]);

/** "a:1,http://b:2/" -> ["http://a:1", "http://b:2"]. */
export function parseServers(s: string): string[] {
  const out: string[] = [];
  for (const raw of s
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
    let u: URL;
    try {
      u = new URL(withScheme);
    } catch {
      throw new CliError(`--server: not a URL or host:port: "${raw}"`, 2);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw new CliError(`--server: expected http:// or https://, got "${raw}"`, 2);
    out.push(`${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`);
  }
  if (out.length === 0) throw new CliError("--server: no server given", 2);
  return out;
}

/** Flags win over RAFTBUS_SERVER / RAFTBUS_AUTH_TOKEN, which win over the local dev cluster. */
export function clientOptionsFrom(flags: ClientFlags): ClientOptions {
  const env = (n: string) => {
    const v = process.env[n];
    return v === undefined || v === "" ? undefined : v;
  };
  return {
    servers: parseServers(flags.server ?? env("RAFTBUS_SERVER") ?? DEFAULT_SERVERS),
    token: flags.token ?? env("RAFTBUS_AUTH_TOKEN"),
    ...(flags.retryTimeoutMs !== undefined ? { retryTimeoutMs: flags.retryTimeoutMs } : {}),
    ...(flags.verbose ? { onRetry: (note: string) => process.stderr.write(`raftbus: ${note}\n`) } : {}),
  };
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Per-attempt timeout (default: the client's). */
  timeoutMs?: number;
}

// ---- API shapes -------------------------------------------------------------------

export interface PartitionInfo {
  partition: number;
  startOffset: number;
  endOffset: number;
}
export interface TopicInfo {
  name: string;
  partitions: PartitionInfo[];
  retentionMs: number | null;
  retentionBytes: number | null;
}
export interface ProduceRecord {
  key?: string | null;
  value?: unknown;
  valueBase64?: string;
  headers?: Record<string, string>;
  partition?: number;
}
export interface RecordPosition {
  partition: number;
  offset: number;
  timestamp: number;
}
export interface FetchedRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  value?: unknown;
  valueBase64?: string;
  headers: Record<string, string>;
}
export interface FetchResult {
  records: FetchedRecord[];
  nextOffset: number;
  endOffset: number;
}
export interface GroupOffset {
  topic: string;
  partition: number;
  offset: number;
  lag: number;
}
export interface MemberInfo {
  id: number;
  role: "voter" | "learner";
  raft: string | null;
  http: string | null;
  matchIndex: number | null;
}
export interface ClusterInfo {
  nodeId: number;
  leaderId: number | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  members: MemberInfo[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Exponential backoff with full jitter: 100 ms doubling to 2 s. */
export function backoffMs(attempt: number): number {
  const cap = Math.min(2000, 100 * 2 ** Math.min(attempt, 10));
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

/** Whether a failed fetch certainly never reached the server (so nothing can have happened). */
function neverSent(e: unknown): boolean {
  const code = (e as { cause?: { code?: string } })?.cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EHOSTUNREACH";
}

function describeFetchError(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === "TimeoutError") return "timed out";
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

export class RaftbusClient {
  readonly servers: string[];
  readonly token: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly retryTimeoutMs: number;
  private readonly onRetry: ((note: string) => void) | undefined;
  /** Index of the server that answered last: requests start there. */
  private current = 0;

  constructor(o: ClientOptions) {
    if (o.servers.length === 0) throw new CliError("no server given", 2);
    this.servers = o.servers;
    this.token = o.token;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 30_000;
    this.retryTimeoutMs = o.retryTimeoutMs ?? 30_000;
    this.onRetry = o.onRetry;
  }

  /** The server requests currently go to. */
  get server(): string {
    return this.servers[this.current % this.servers.length]!;
  }

  /**
   * Moves on from `failed` to the next server, unless another caller has moved
   * on already (several requests or subscriptions may see one server fail).
   */
  rotate(failed: string = this.server): void {
    if (this.server === failed) this.current = (this.current + 1) % this.servers.length;
  }

  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  /**
   * One API call, retried on other servers and with backoff while the failure
   * is retriable, for up to retryTimeoutMs. Answers the parsed body of a 2xx;
   * throws ApiError otherwise.
   */
  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const deadline = Date.now() + this.retryTimeoutMs;
    let uncertain = false;
    let last: ApiError | undefined;
    for (let attempt = 0; ; attempt++) {
      const base = this.server;
      const headers: Record<string, string> = { ...this.authHeaders(), ...o.headers };
      let body: string | undefined;
      if (o.body !== undefined) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(o.body);
      }
      let res: Response;
      let text: string;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
          signal: AbortSignal.timeout(o.timeoutMs ?? this.requestTimeoutMs),
        });
        text = await res.text();
      } catch (e) {
        if (!neverSent(e) && method !== "GET") uncertain = true;
        last = new ApiError(0, "UNAVAILABLE", `${base}: ${describeFetchError(e)}`, true, {}, uncertain);
        this.rotate(base);
        if (Date.now() + backoffMs(attempt) >= deadline) throw this.giveUp(last);
        this.onRetry?.(`${last.message}; trying ${this.server}`);
        // Another server may well be up: try it at once the first time round.
        if (attempt >= this.servers.length - 1) await sleep(backoffMs(attempt));
        continue;
      }
      if (res.ok) return (text ? JSON.parse(text) : undefined) as T;
      const err = parseError(res.status, text, uncertain);
      if (!err.retriable) throw err;
      // NO_LEADER and BACKPRESSURE mean nothing happened; anything else retriable (504) may have.
      if (err.code !== "NO_LEADER" && err.code !== "BACKPRESSURE" && method !== "GET") uncertain = true;
      last = new ApiError(err.status, err.code, err.message, true, err.details, uncertain);
      // A node without a leader (or shutting down) is best left for another one.
      if (err.code === "NO_LEADER") this.rotate(base);
      const retryAfter = Number(res.headers.get("retry-after"));
      const wait =
        Number.isFinite(retryAfter) && retryAfter > 0
          ? Math.min(retryAfter * 1000, backoffMs(attempt) * 2)
          : backoffMs(attempt);
      if (Date.now() + wait >= deadline) throw this.giveUp(last);
      this.onRetry?.(`${base}: ${err.code} ${err.message}; retrying`);
      await sleep(wait);
    }
  }

  private giveUp(last: ApiError): ApiError {
    const s = Math.round(this.retryTimeoutMs / 1000);
    const what = last.status === 0 ? `no server answered (${this.servers.join(", ")})` : last.code;
    return new ApiError(
      last.status,
      last.code,
      `${what} after retrying for ${s} s: ${last.message}`,
      true,
      last.details,
      last.afterUncertainAttempt,
    );
  }

  // ---- topics ----

  listTopics(): Promise<{ topics: TopicInfo[] }> {
    return this.request("GET", "/v1/topics");
  }
  getTopic(name: string): Promise<TopicInfo> {
    return this.request("GET", `/v1/topics/${encodeURIComponent(name)}`);
  }
  createTopic(t: {
    name: string;
    partitions?: number;
    retentionMs?: number | null;
    retentionBytes?: number | null;
  }): Promise<TopicInfo> {
    return this.request("POST", "/v1/topics", { body: t });
  }
  async deleteTopic(name: string): Promise<void> {
    await this.request("DELETE", `/v1/topics/${encodeURIComponent(name)}`);
  }

  // ---- records ----

  /**
   * Appends one batch. The Idempotency-Key (fresh unless given) is the same for
   * every retry of the batch, so the batch is appended exactly once.
   */
  async produce(
    topic: string,
    records: ProduceRecord[],
    idempotencyKey: string = randomUUID(),
  ): Promise<RecordPosition[]> {
    const res = await this.request<{ records: RecordPosition[] }>(
      "POST",
      `/v1/topics/${encodeURIComponent(topic)}/records`,
      { body: { records }, headers: { "idempotency-key": idempotencyKey } },
    );
    return res.records;
  }

  fetchRecords(
    topic: string,
    partition: number,
    offset: number,
    o: { limit?: number; maxWaitMs?: number } = {},
  ): Promise<FetchResult> {
    const q = new URLSearchParams({ offset: String(offset) });
    if (o.limit !== undefined) q.set("limit", String(o.limit));
    if (o.maxWaitMs !== undefined) q.set("maxWaitMs", String(o.maxWaitMs));
    return this.request(
      "GET",
      `/v1/topics/${encodeURIComponent(topic)}/partitions/${partition}/records?${q}`,
      o.maxWaitMs ? { timeoutMs: o.maxWaitMs + this.requestTimeoutMs } : {},
    );
  }

  // ---- groups ----

  async groupOffsets(group: string): Promise<GroupOffset[]> {
    const res = await this.request<{ offsets: GroupOffset[] }>(
      "GET",
      `/v1/groups/${encodeURIComponent(group)}/offsets`,
    );
    return res.offsets;
  }
  async commitOffset(group: string, topic: string, partition: number, offset: number): Promise<void> {
    await this.request("POST", `/v1/groups/${encodeURIComponent(group)}/offsets`, {
      body: { topic, partition, offset },
    });
  }

  // ---- cluster ----

  cluster(): Promise<ClusterInfo> {
    return this.request("GET", "/v1/cluster");
  }

  // ---- subscribe ----

  /** The WebSocket URL of a subscription on the current server. */
  subscribeUrl(topic: string, params: Record<string, string | number | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
    const base = this.server.replace(/^http/, "ws");
    const qs = q.toString();
    return `${base}/v1/topics/${encodeURIComponent(topic)}/subscribe${qs ? `?${qs}` : ""}`;
  }

  /**
   * Opens a subscription on the current server. Resolves once it is open, or
   * rejects with the ApiError the node answered instead of upgrading (404,
   * 416, ...) or an UNAVAILABLE ApiError when it could not be reached.
   * `onMessage` is attached before the upgrade: the node may send the first
   * frame in the same packet as its 101 answer, before any later listener.
   */
  openSubscription(
    topic: string,
    params: Record<string, string | number | undefined>,
    onMessage: (text: string) => void,
    timeoutMs = 10_000,
  ): Promise<Subscription> {
    const url = this.subscribeUrl(topic, params);
    return new Promise<Subscription>((resolve, reject) => {
      const ws = new WebSocket(url, { headers: this.authHeaders(), handshakeTimeout: timeoutMs });
      let settled = false;
      const closed = new Promise<{ code: number; reason: string }>((r) =>
        ws.once("close", (code, reason) => r({ code, reason: reason.toString() })),
      );
      const fail = (e: ApiError) => {
        if (settled) return;
        settled = true;
        ws.terminate();
        reject(e);
      };
      ws.on("message", (data) => onMessage(data.toString()));
      ws.once("open", () => {
        if (settled) return;
        settled = true;
        resolve({ ws, closed });
      });
      ws.once("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => fail(parseError(res.statusCode ?? 0, Buffer.concat(chunks).toString(), false)));
        res.on("error", () => fail(parseError(res.statusCode ?? 0, "", false)));
      });
      // Before the upgrade an error fails the attempt; after it, a close follows.
      ws.on("error", (e) => fail(new ApiError(0, "UNAVAILABLE", `${url}: ${describeFetchError(e)}`, true)));
    });
  }
}

/** An open subscription: the socket, and its close (code and reason) once it comes. */
export interface Subscription {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string }>;
}

/** The API's error body, or a stand-in for a non-API answer (e.g. a proxy's 502). */
export function parseError(status: number, text: string, uncertain: boolean): ApiError {
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string; retriable?: boolean; [k: string]: unknown };
    };
    if (body?.error?.code) {
      const { code, message, retriable, ...details } = body.error;
      return new ApiError(
        status,
        code,
        message ?? code,
        retriable ?? RETRIABLE_CODES.has(code),
        details,
        uncertain,
      );
    }
  } catch {
    // not JSON: fall through
  }
  // Not an API answer: a gateway or a node in trouble. 502/503/504 are worth another try.
  const retriable = status === 502 || status === 503 || status === 504;
  const snippet = text.trim().slice(0, 200);
  return new ApiError(
    status,
    `HTTP_${status}`,
    `HTTP ${status}${snippet ? `: ${snippet}` : ""}`,
    retriable,
    {},
    uncertain,
  );
}

/** "CODE: message" for printing. */
export function formatError(e: unknown): string {
  if (e instanceof ApiError) return e.status === 0 ? e.message : `${e.code}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

// ---- command-line plumbing shared by the client commands ---------------------------

/** Adds --server, --token, --retry-timeout-ms and --verbose to a client command. */
export function addClientOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "-s, --server <urls>",
        "comma-separated server URLs, tried in turn (RAFTBUS_SERVER; default: the local dev cluster)",
      ),
    )
    .addOption(new Option("--token <token>", "bearer token for the API (RAFTBUS_AUTH_TOKEN)"))
    .addOption(
      new Option(
        "--retry-timeout-ms <ms>",
        "keep retrying retriable failures this long (default 30000)",
      ).argParser(intArg(1)),
    )
    .addOption(new Option("-v, --verbose", "report retries and failovers on stderr"));
}

/** A commander argument parser for an integer >= min. */
export function intArg(min: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`expected an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/** Left-aligned columns with a header row, two spaces apart. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
