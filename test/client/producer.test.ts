// The producer and transport without a cluster, against scripted fake servers:
// batching of concurrent sends, one Idempotency-Key per batch kept across
// retries, typed errors, a bad send not failing its batch-mates, backpressure,
// failover and member discovery.

import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  RaftbusClient,
  RecordTooLargeError,
  TopicNotFoundError,
  UnavailableError,
} from "../../src/client/index.ts";
import { freePort } from "../node/proc-cluster.ts";
import { sleep } from "./helpers.ts";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
type Answer = { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number };
type Script = (req: Seen, n: number) => Answer;

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function fake(script: Script): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", async () => {
      const s = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body };
      seen.push(s);
      const a = script(s, seen.length - 1);
      if (a.delayMs) await sleep(a.delayMs);
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
      res.end(a.body === undefined ? "" : JSON.stringify(a.body));
    });
  });
  servers.push(srv);
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen };
}

const err = (status: number, code: string, retriable = false): Answer => ({
  status,
  body: { error: { code, message: `${code} happened`, retriable } },
});

/** Answers a produce with offsets counting up from where the last one ended. */
function appender(delayMs = 0) {
  let end = 0;
  return (req: Seen): Answer => {
    const n = (JSON.parse(req.body) as { records: unknown[] }).records.length;
    const records = Array.from({ length: n }, (_, i) => ({ partition: 0, offset: end + i, timestamp: 1 }));
    end += n;
    return { status: 200, body: { records }, delayMs };
  };
}

const produces = (seen: Seen[]) => seen.filter((s) => s.method === "POST" && s.url.endsWith("/records"));

describe("producer", () => {
  it("batches concurrent sends into one request and resolves each with its own offsets", async () => {
    const s = await fake(appender());
    const p = new RaftbusClient({ servers: [s.url], discover: false }).producer({ lingerMs: 20 });
    const [a, b, c] = await Promise.all([
      p.send("t", { value: "a" }),
      p.send("t", [{ value: "b1" }, { key: "k", value: "b2" }]),
      p.send("t", { bytes: new Uint8Array([0, 1, 2]) }),
    ]);
    expect(a).toEqual({ partition: 0, offset: 0, timestamp: 1 });
    expect(b.map((m) => m.offset)).toEqual([1, 2]);
    expect(c.offset).toBe(3);
    expect(s.seen).toHaveLength(1);
    expect(JSON.parse(s.seen[0]!.body)).toEqual({
      records: [{ value: "a" }, { value: "b1" }, { key: "k", value: "b2" }, { valueBase64: "AAEC" }],
    });
    expect(s.seen[0]!.headers["idempotency-key"]).toMatch(/^[\x21-\x7e]{1,128}$/);
  });

  it("splits by the record and byte bounds, never splitting a send", async () => {
    const s = await fake(appender());
    const p = new RaftbusClient({ servers: [s.url], discover: false }).producer({
      lingerMs: 10,
      maxBatchRecords: 3,
    });
    await Promise.all([
      p.send("t", [{ value: 1 }, { value: 2 }]),
      p.send("t", [{ value: 3 }, { value: 4 }]),
      p.send("t", { value: 5 }),
    ]);
    const sizes = produces(s.seen).map((x) => (JSON.parse(x.body) as { records: unknown[] }).records.length);
    expect(sizes.sort()).toEqual([2, 3]);
  });

  it("retries 503/429/504 with the same key and body: a retry never appends twice", async () => {
    const answers = [
      { ...err(503, "NO_LEADER", true), headers: { "retry-after": "1" } },
      err(429, "BACKPRESSURE", true),
      err(504, "COMMIT_TIMEOUT", true),
    ];
    const s = await fake((req, n) => answers[n] ?? appender()(req));
    const p = new RaftbusClient({ servers: [s.url], discover: false }).producer();
    expect((await p.send("t", { value: "x" })).offset).toBe(0);
    expect(s.seen).toHaveLength(4);
    expect(new Set(s.seen.map((x) => x.headers["idempotency-key"])).size).toBe(1);
    expect(new Set(s.seen.map((x) => x.body)).size).toBe(1);
    await p.send("t", { value: "y" });
    expect(s.seen[4]!.headers["idempotency-key"]).not.toBe(s.seen[0]!.headers["idempotency-key"]);
  });

  it("rejects with typed errors; a send with a bad record does not fail the sends it was batched with", async () => {
    const s = await fake((req) => {
      if (req.url.startsWith("/v1/topics/nope/")) return err(404, "TOPIC_NOT_FOUND");
      if (req.body.includes("HUGE")) return err(413, "RECORD_TOO_LARGE");
      return appender()(req);
    });
    const p = new RaftbusClient({ servers: [s.url], discover: false }).producer({ lingerMs: 20 });
    const results = await Promise.allSettled([
      p.send("t", { value: "fine-1" }),
      p.send("t", { value: "HUGE" }),
      p.send("t", { value: "fine-2" }),
      p.send("nope", { value: 1 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected"]);
    const tooLarge = (results[1] as PromiseRejectedResult).reason;
    expect(tooLarge).toBeInstanceOf(RecordTooLargeError);
    expect(tooLarge.code).toBe("RECORD_TOO_LARGE");
    expect(tooLarge.maybeApplied).toBe(false);
    expect((results[3] as PromiseRejectedResult).reason).toBeInstanceOf(TopicNotFoundError);
  });

  it("gives up after the delivery timeout with UnavailableError saying the records may be there", async () => {
    const s = await fake(() => err(504, "COMMIT_TIMEOUT", true));
    const p = new RaftbusClient({ servers: [s.url], discover: false }).producer({ deliveryTimeoutMs: 300 });
    const e = await p.send("t", { value: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UnavailableError);
    expect((e as UnavailableError).code).toBe("COMMIT_TIMEOUT");
    expect((e as UnavailableError).maybeApplied).toBe(true);
  });

  it("send waits while maxBufferedBytes are queued or in flight (backpressure)", async () => {
    let inflightRecords = 0;
    let peak = 0;
    const append = appender();
    const s = await fake((req) => {
      const n = (JSON.parse(req.body) as { records: unknown[] }).records.length;
      inflightRecords += n;
      peak = Math.max(peak, inflightRecords);
      setTimeout(() => {
        inflightRecords -= n;
      }, 30);
      return { ...append(req), delayMs: 30 };
    });
    const p = new RaftbusClient({ servers: [s.url], discover: false }).producer({
      lingerMs: 1,
      maxBatchRecords: 10,
      maxBufferedBytes: 2000,
    });
    const value = "v".repeat(90); // ~100 bytes a record: about 20 fit in the buffer
    const sends = Array.from({ length: 200 }, () => p.send("t", { value }));
    await sleep(5);
    expect(p.bufferedBytes).toBeLessThanOrEqual(2000);
    const res = await Promise.all(sends);
    expect(res.map((m) => m.offset).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(peak).toBeLessThanOrEqual(20);
    expect(p.bufferedBytes).toBe(0);
  });

  it("fails over to the next server and learns the other members from /v1/cluster", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const other = await fake(appender());
    const otherHost = new URL(other.url).host;
    const seed = await fake((req) => {
      if (req.url === "/v1/cluster") {
        return {
          status: 200,
          body: {
            nodeId: 1,
            leaderId: 1,
            term: 1,
            commitIndex: 0,
            appliedIndex: 0,
            members: [
              { id: 1, role: "voter", raft: "x:1", http: new URL(dead).host, matchIndex: 0 },
              { id: 2, role: "voter", raft: "x:2", http: otherHost, matchIndex: 0 },
            ],
          },
        };
      }
      return err(503, "NO_LEADER", true);
    });
    const client = new RaftbusClient({ servers: [dead, seed.url], retryTimeoutMs: 5000 });
    await client.clusterStatus();
    await sleep(100); // discovery runs in the background
    expect(client.transport.servers).toContain(other.url);
    // The seed has no leader, the first is down: the record goes through the learned member.
    const m = await client.producer().send("t", { value: 1 });
    expect(m.offset).toBe(0);
    expect(produces(other.seen)).toHaveLength(1);
  });
});
