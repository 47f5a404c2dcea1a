// HTTP to a cluster: requests go to one server at a time and move on to the
// next when it fails (connection error, NO_LEADER). The server list starts as
// the seeds the user gave and grows with the members `/v1/cluster` reports.
// Retriable failures are retried with backoff until `retryTimeoutMs`; a
// request that may have taken effect (504, broken connection) is remembered
// as such, so the final error can say so.
//
// Timeouts. One attempt may take `requestTimeoutMs`, a fraction of the retry
// budget, so that a node that accepts requests and never answers (stopped,
// or a dead keep-alive connection) costs one attempt, not the whole budget:
// the next attempt goes to the next server. The default attempt timeout is
// the server's default commit timeout plus a margin, so a produce that the
// server is still committing is not cut short. Retry budgets are clamped to
// MAX_RETRY_TIMEOUT_MS, below the server's idempotency window (10 minutes):
// a retry after that window could append a batch a second time.

import { errorFromAnswer, RaftbusError, UnavailableError } from "./errors.ts";
import type { ClusterInfo } from "./types.ts";
import { backoffMs, normalizeServer, sleep } from "./util.ts";

/** The server's default time to wait for a produce to commit (API.md `?timeoutMs=`, 10 s). */
export const SERVER_COMMIT_TIMEOUT_MS = 10_000;
/** Default per-attempt timeout: the server's commit timeout plus 5 s (with the default retry budget). */
export const DEFAULT_REQUEST_TIMEOUT_MS = SERVER_COMMIT_TIMEOUT_MS + 5_000;
/** Default retry budget: four default attempts. */
export const DEFAULT_RETRY_TIMEOUT_MS = 4 * DEFAULT_REQUEST_TIMEOUT_MS;
/**
 * The longest retry budget (and producer `deliveryTimeoutMs`): 9 minutes,
 * below the server's 10-minute idempotency window, within which a retry with
 * the same Idempotency-Key is recognised. Longer values are clamped to this.
 */
export const MAX_RETRY_TIMEOUT_MS = 9 * 60_000;
/** The shortest default per-attempt timeout (when a short retryTimeoutMs is given). */
const MIN_DEFAULT_REQUEST_TIMEOUT_MS = 1000;

/** A retry budget, clamped to MAX_RETRY_TIMEOUT_MS. */
export function clampRetryTimeout(ms: number): number {
  return Math.min(ms, MAX_RETRY_TIMEOUT_MS);
}

/**
 * The default per-attempt timeout for a retry budget: a quarter of it (so a
 * hung server leaves time for the others), at least 1 s, at most
 * DEFAULT_REQUEST_TIMEOUT_MS.
 */
export function defaultRequestTimeout(retryTimeoutMs: number): number {
  return Math.min(
    DEFAULT_REQUEST_TIMEOUT_MS,
    Math.max(MIN_DEFAULT_REQUEST_TIMEOUT_MS, Math.floor(retryTimeoutMs / 4)),
  );
}

/** What a transport needs: the seeds, credentials and patience. */
export interface TransportOptions {
  /** Seed URLs (`http://host:port`, or `host:port`), tried in turn. At least one. */
  servers: string[];
  /** Bearer token, when the cluster runs with `--auth-token`. */
  token?: string | undefined;
  /**
   * Per-attempt timeout of an HTTP request, ms; after it the next attempt
   * goes to the next server. Default: a quarter of `retryTimeoutMs`, at least
   * 1000 and at most 15000 (the server's 10 s commit timeout plus 5 s).
   */
  requestTimeoutMs?: number;
  /**
   * How long to keep retrying retriable failures, ms (default 60000; at most
   * 540000, 9 minutes, below the server's 10-minute idempotency window:
   * longer values are clamped).
   */
  retryTimeoutMs?: number;
  /** Learn the other members from `/v1/cluster` (default true). */
  discover?: boolean;
  /** Called on each retry or failover, with a one-line note and the failure. */
  onRetry?: (note: string, error: RaftbusError) => void;
  /** The fetch to use (default: `globalThis.fetch`). */
  fetch?: typeof fetch;
}

/** One request's options. */
export interface RequestOptions {
  /** A JSON body, serialized here. */
  body?: unknown;
  /** A body already serialized as JSON (wins over `body`). */
  rawJson?: string;
  headers?: Record<string, string>;
  /** Per-attempt timeout, ms (default: the transport's). */
  timeoutMs?: number;
  /** Retry deadline, ms from now (default: the transport's retryTimeoutMs; clamped to 9 minutes). */
  retryTimeoutMs?: number;
}

const REDISCOVER_MS = 30_000;

/** Whether a failed fetch certainly never reached a server (so nothing can have happened). */
function neverSent(e: unknown): boolean {
  const code = (e as { cause?: { code?: string } })?.cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EHOSTUNREACH";
}

function describe(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === "TimeoutError" || err?.name === "AbortError") return "timed out";
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

/** HTTP requests to a cluster with failover and retries (used by the client, producer and consumer). */
export class Transport {
  /** Seeds first, then discovered members. */
  private list: string[];
  private readonly seeds: string[];
  private current = 0;
  readonly token: string | undefined;
  readonly requestTimeoutMs: number;
  /** Whether requestTimeoutMs was given (else each request's attempts follow its own budget). */
  private readonly requestTimeoutGiven: boolean;
  readonly retryTimeoutMs: number;
  private readonly onRetry: ((note: string, error: RaftbusError) => void) | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly discover: boolean;
  private discoveredAt = Number.NEGATIVE_INFINITY;
  private discovering = false;

  /** Normally made by RaftbusClient; throws TypeError without servers or fetch. */
  constructor(o: TransportOptions) {
    if (o.servers.length === 0) throw new TypeError("RaftbusClient: give at least one server");
    this.seeds = [...new Set(o.servers.map(normalizeServer))];
    this.list = [...this.seeds];
    this.token = o.token;
    this.retryTimeoutMs = clampRetryTimeout(o.retryTimeoutMs ?? DEFAULT_RETRY_TIMEOUT_MS);
    this.requestTimeoutMs = o.requestTimeoutMs ?? defaultRequestTimeout(this.retryTimeoutMs);
    this.requestTimeoutGiven = o.requestTimeoutMs !== undefined;
    this.onRetry = o.onRetry;
    this.discover = o.discover ?? true;
    const f = o.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError("RaftbusClient: no fetch; pass the `fetch` option");
    this.fetchFn = f.bind(globalThis);
  }

  /** The server requests go to now. */
  get server(): string {
    return this.list[this.current % this.list.length]!;
  }

  /** Every server known: the seeds and the members learned from the cluster. */
  get servers(): readonly string[] {
    return this.list;
  }

  /**
   * Moves on from `failed` to the next server, unless another caller has
   * moved on already (several requests or sockets may see one server fail).
   */
  rotate(failed: string = this.server): void {
    if (this.server === failed) this.current = (this.current + 1) % this.list.length;
  }

  /** The Authorization header, when there is a token. */
  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  /**
   * One API call, retried on other servers and with backoff while the
   * failure is retriable. Answers the parsed body of a 2xx; throws a typed
   * RaftbusError otherwise (UnavailableError when retries ran out).
   */
  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const budget = clampRetryTimeout(o.retryTimeoutMs ?? this.retryTimeoutMs);
    const deadline = Date.now() + budget;
    // A request with a budget of its own (a producer's deliveryTimeoutMs) gets attempts in proportion.
    const timeoutMs =
      o.timeoutMs ?? (this.requestTimeoutGiven ? this.requestTimeoutMs : defaultRequestTimeout(budget));
    let maybeApplied = false;
    const idempotent = method === "GET";
    for (let attempt = 0; ; attempt++) {
      const base = this.server;
      let res: Response;
      let text: string;
      try {
        ({ res, text } = await this.once(base, method, path, { ...o, timeoutMs }));
      } catch (e) {
        if (e instanceof RaftbusError) throw e;
        if (!neverSent(e) && !idempotent) maybeApplied = true;
        const err = new UnavailableError({
          status: 0,
          code: "UNAVAILABLE",
          message: `${base}: ${describe(e)}`,
          retriable: true,
          maybeApplied,
        });
        this.rotate(base);
        // Another server may well be up: try each once at once, then back off.
        const wait = attempt >= this.list.length - 1 ? backoffMs(attempt) : 0;
        if (Date.now() + wait >= deadline) throw this.giveUp(err, budget);
        this.onRetry?.(`${err.message}; trying ${this.server}`, err);
        if (attempt === this.list.length - 1) this.refresh();
        await sleep(wait);
        continue;
      }
      if (res.ok) {
        if (this.discover && Date.now() - this.discoveredAt > REDISCOVER_MS) this.refresh();
        return (text ? JSON.parse(text) : undefined) as T;
      }
      const err = errorFromAnswer(res.status, text, maybeApplied);
      if (!err.retriable) throw err;
      // NO_LEADER and BACKPRESSURE mean nothing happened; any other retriable answer (504) may have.
      if (err.code !== "NO_LEADER" && err.code !== "BACKPRESSURE" && !idempotent) maybeApplied = true;
      // A node without a leader (or shutting down) is best left for another one.
      if (err.code === "NO_LEADER" || err.status === 502) this.rotate(base);
      const retryAfter = Number(res.headers.get("retry-after"));
      const wait =
        Number.isFinite(retryAfter) && retryAfter > 0
          ? Math.min(retryAfter * 1000, backoffMs(attempt) * 2)
          : backoffMs(attempt);
      const marked = errorFromAnswer(res.status, text, maybeApplied);
      if (Date.now() + wait >= deadline) throw this.giveUp(marked, budget);
      this.onRetry?.(`${base}: ${err.code} ${err.message}; retrying`, marked);
      await sleep(wait);
    }
  }

  /** One attempt on one server: the answer, or the fetch error (thrown). */
  async once(
    base: string,
    method: string,
    path: string,
    o: RequestOptions = {},
  ): Promise<{ res: Response; text: string }> {
    const headers: Record<string, string> = { ...this.authHeaders(), ...o.headers };
    let body: string | undefined = o.rawJson;
    if (body === undefined && o.body !== undefined) body = JSON.stringify(o.body);
    if (body !== undefined) headers["content-type"] = "application/json";
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), o.timeoutMs ?? this.requestTimeoutMs);
    try {
      const res = await this.fetchFn(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: ac.signal,
      });
      const text = await res.text();
      return { res, text };
    } finally {
      clearTimeout(timer);
    }
  }

  private giveUp(last: RaftbusError, budgetMs: number): RaftbusError {
    const s = Math.round(budgetMs / 1000);
    const what = last.status === 0 ? `no server answered (${this.list.join(", ")})` : last.code;
    return new UnavailableError({
      status: last.status,
      code: last.code,
      message: `${what} after retrying for ${s} s: ${last.message}`,
      retriable: true,
      details: last.details,
      maybeApplied: last.maybeApplied,
    });
  }

  /** Learns the members' HTTP addresses from `/v1/cluster`, in the background. */
  refresh(): void {
    if (!this.discover || this.discovering) return;
    this.discovering = true;
    this.discoveredAt = Date.now();
    void this.learn().finally(() => {
      this.discovering = false;
    });
  }

  /** Asks the current server for the members and adds their HTTP addresses to the list. */
  async learn(): Promise<void> {
    const base = this.server;
    try {
      const { res, text } = await this.once(base, "GET", "/v1/cluster", { timeoutMs: 5000 });
      if (!res.ok) return;
      const info = JSON.parse(text) as ClusterInfo;
      const scheme = base.startsWith("https:") ? "https" : "http";
      const members = info.members
        .map((m) => m.http)
        .filter((h): h is string => typeof h === "string" && h.length > 0)
        .map((h) => normalizeServer(`${scheme}://${h}`));
      const keep = this.server;
      // Seeds stay (the user's choice); discovered servers follow the membership.
      this.list = [...new Set([...this.seeds, ...members])];
      const i = this.list.indexOf(keep);
      this.current = Math.max(i, 0);
    } catch {
      // discovery is best effort: the seeds still work
    }
  }
}
