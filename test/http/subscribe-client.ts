// A WebSocket subscriber for tests: opens /v1/topics/:topic/subscribe on a
// real port, checks every `records` frame as it arrives (at least one record,
// offsets dense and increasing per partition: no gap, no repeat), and lets a
// test wait for a condition. Also: refused upgrades as {status, body}, and a
// producer of numbered JSON records.

import WebSocket from "ws";
import type { RecordIn } from "../../src/broker/types.ts";
import type { TestNode } from "./fixture.ts";

export interface WireRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  value?: unknown;
  valueBase64?: string;
  headers: Record<string, string>;
}

export type Frame = { type: string } & Record<string, unknown>;

export function subscribeUrl(node: TestNode, topic: string, query: Record<string, string | number> = {}) {
  const q = new URLSearchParams(
    Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  return `${node.url.replace("http", "ws")}/v1/topics/${encodeURIComponent(topic)}/subscribe${q ? `?${q}` : ""}`;
}

export class SubClient {
  /** Frames other than `records`, in order. */
  readonly others: Frame[] = [];
  /** partition -> records received (kept only with keepRecords). */
  readonly records = new Map<number, WireRecord[]>();
  /** partition -> next offset expected (after the first frame of that partition). */
  readonly next = new Map<number, number>();
  /** partition -> first offset received. */
  readonly first = new Map<number, number>();
  readonly violations: string[] = [];
  recordCount = 0;
  frameCount = 0;
  maxFrameRecords = 0;
  closeCode: number | undefined;
  closeReason = "";
  readonly closed: Promise<number>;
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly ws: WebSocket,
    private readonly keepRecords: boolean,
  ) {
    ws.on("message", (data, isBinary) => this.onMessage(String(data), isBinary));
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.notify();
        resolve(code);
      });
    });
    ws.on("error", () => {});
  }

  static open(
    url: string,
    opts: { headers?: Record<string, string>; keepRecords?: boolean } = {},
  ): Promise<SubClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: opts.headers ?? {} });
      // Listening before "open": frames sent right after the upgrade are not lost.
      const client = new SubClient(ws, opts.keepRecords ?? true);
      ws.once("open", () => resolve(client));
      ws.once("unexpected-response", (_req, res) => {
        reject(new Error(`unexpected response ${res.statusCode}`));
        ws.terminate();
      });
      ws.once("error", reject);
    });
  }

  private onMessage(text: string, isBinary: boolean): void {
    if (isBinary) this.violations.push("binary frame");
    const f = JSON.parse(text) as Frame;
    if (f.type !== "records") {
      this.others.push(f);
    } else {
      this.frameCount++;
      const p = f.partition as number;
      const recs = f.records as WireRecord[];
      if (recs.length === 0) this.violations.push(`empty records frame for partition ${p}`);
      this.maxFrameRecords = Math.max(this.maxFrameRecords, recs.length);
      for (const r of recs) {
        const want = this.next.get(p);
        if (want === undefined) this.first.set(p, r.offset);
        else if (r.offset !== want)
          this.violations.push(`partition ${p}: got offset ${r.offset}, expected ${want}`);
        this.next.set(p, r.offset + 1);
      }
      this.recordCount += recs.length;
      if (this.keepRecords) {
        const list = this.records.get(p) ?? [];
        this.records.set(p, list);
        for (const r of recs) list.push(r);
      }
    }
    this.notify();
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves once `cond` holds (checked on every frame and on close). */
  waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `timed out waiting for ${what} (records ${this.recordCount}, close ${this.closeCode}, others ${JSON.stringify(this.others)})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** The next non-records frame after the ones seen so far. */
  async nextOther(timeoutMs = 10_000): Promise<Frame> {
    const seen = this.seenOthers;
    await this.waitFor(() => this.others.length > seen, "a non-records frame", timeoutMs);
    this.seenOthers++;
    return this.others[seen]!;
  }
  private seenOthers = 0;

  offsets(partition: number): number[] {
    return (this.records.get(partition) ?? []).map((r) => r.offset);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  close(): Promise<number> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}

/** An upgrade the server refuses: its HTTP status and JSON body. */
export function refusedUpgrade(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: { error: Record<string, unknown> } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on("error", () => {});
    ws.once("open", () => {
      ws.terminate();
      reject(new Error(`upgrade of ${url} was accepted`));
    });
    ws.once("unexpected-response", (_req, res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => {
        ws.terminate();
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          reject(new Error(`status ${res.statusCode}, body not JSON: ${text}`));
        }
      });
    });
  });
}

const enc = new TextEncoder();

/** Produces `count` JSON records {"i": n, "pad": "..."} in batches; returns the offsets' partitions in order. */
export async function produce(
  node: TestNode,
  topic: string,
  count: number,
  opts: { partition?: number; padBytes?: number; batch?: number; first?: number } = {},
): Promise<void> {
  const batch = opts.batch ?? 1000;
  const pad = "x".repeat(opts.padBytes ?? 0);
  for (let done = 0; done < count; done += batch) {
    const records: RecordIn[] = [];
    for (let i = done; i < Math.min(count, done + batch); i++) {
      const r: RecordIn = {
        key: null,
        value: enc.encode(JSON.stringify({ i: (opts.first ?? 0) + i, pad })),
        json: true,
        headers: {},
      };
      if (opts.partition !== undefined) r.partition = opts.partition;
      records.push(r);
    }
    await node.server.broker.produce(topic, records);
  }
}

export async function createTopic(
  node: TestNode,
  name: string,
  partitions = 1,
  retention: { retentionMs?: number | null; retentionBytes?: number | null } = {},
): Promise<void> {
  await node.server.broker.createTopic({
    name,
    partitions,
    retentionMs: retention.retentionMs ?? null,
    retentionBytes: retention.retentionBytes ?? null,
  });
}
