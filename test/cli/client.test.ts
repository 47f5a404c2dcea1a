// The CLI's building blocks without a cluster: the client (src/client) as the
// CLI makes it, its failover, retries and idempotency keys against a scripted
// fake server; parsing of
// servers, records and --from; record formatting.

import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { formatRecord, parseFrom, valueText } from "../../src/cli/consume-command.ts";
import {
  ApiError,
  CliError,
  clientOptionsFrom,
  DEFAULT_SERVERS,
  parseServers,
  RaftbusClient,
  table,
} from "../../src/cli/http-client.ts";
import { Batcher, readLines, toRecord } from "../../src/cli/produce-command.ts";
import { TopicNotFoundError } from "../../src/client/index.ts";
import { freePort } from "../node/proc-cluster.ts";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}
type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server that answers requests with `answers` in turn (the last one repeats). */
async function fake(answers: Answer[]): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const a = answers[Math.min(seen.length - 1, answers.length - 1)]!;
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
      res.end(a.body === undefined ? "" : JSON.stringify(a.body));
    });
  });
  servers.push(srv);
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, seen };
}

const err = (status: number, code: string, retriable: boolean): Answer => ({
  status,
  body: { error: { code, message: `${code} happened`, retriable } },
});
const produced = { status: 200, body: { records: [{ partition: 0, offset: 7, timestamp: 1 }] } };

describe("http client", () => {
  it("parses --server lists and defaults to the local dev cluster", () => {
    expect(parseServers("a:1, http://b:2/ ,https://c")).toEqual(["http://a:1", "http://b:2", "https://c"]);
    expect(() => parseServers(" , ")).toThrow(CliError);
    expect(() => parseServers("ftp://x")).toThrow(/http/);
    const saved = { ...process.env };
    delete process.env.RAFTBUS_SERVER;
    process.env.RAFTBUS_AUTH_TOKEN = "env-token";
    try {
      const o = clientOptionsFrom({});
      expect(o.servers).toEqual(parseServers(DEFAULT_SERVERS));
      expect(o.servers).toEqual(["http://127.0.0.1:8081", "http://127.0.0.1:8082", "http://127.0.0.1:8083"]);
      expect(o.token).toBe("env-token");
      expect(clientOptionsFrom({ token: "flag" }).token).toBe("flag");
    } finally {
      process.env = saved;
    }
  });

  it("retries a produce batch on 503/429/504 with the same Idempotency-Key and the same body", async () => {
    const s = await fake([
      { ...err(503, "NO_LEADER", true), headers: { "retry-after": "1" } },
      err(429, "BACKPRESSURE", true),
      err(504, "COMMIT_TIMEOUT", true),
      produced,
    ]);
    const c = new RaftbusClient({ servers: [s.url], token: "t0k", retryTimeoutMs: 10_000, discover: false });
    const pos = await c.produce("demo", [{ value: "a" }, { key: "k", value: { n: 1 } }]);
    expect(pos).toEqual([{ partition: 0, offset: 7, timestamp: 1 }]);
    expect(s.seen).toHaveLength(4);
    const keys = new Set(s.seen.map((x) => x.headers["idempotency-key"]));
    expect(keys.size).toBe(1);
    expect([...keys][0]).toMatch(/^[\x21-\x7e]{1,128}$/);
    expect(new Set(s.seen.map((x) => x.body)).size).toBe(1);
    expect(JSON.parse(s.seen[0]!.body)).toEqual({ records: [{ value: "a" }, { key: "k", value: { n: 1 } }] });
    for (const x of s.seen) {
      expect(x.method).toBe("POST");
      expect(x.url).toBe("/v1/topics/demo/records");
      expect(x.headers.authorization).toBe("Bearer t0k");
      expect(x.headers["content-type"]).toBe("application/json");
    }
    // A second batch gets a key of its own.
    await c.produce("demo", [{ value: "b" }]);
    expect(s.seen[4]!.headers["idempotency-key"]).not.toBe(s.seen[0]!.headers["idempotency-key"]);
  });

  it("moves on to the next server when one is down or has no leader", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const noLeader = await fake([err(503, "NO_LEADER", true)]);
    const good = await fake([produced]);
    const c = new RaftbusClient({
      servers: [dead, noLeader.url, good.url],
      retryTimeoutMs: 10_000,
      discover: false,
    });
    await c.produce("t", [{ value: 1 }]);
    expect(noLeader.seen).toHaveLength(1);
    expect(good.seen).toHaveLength(1);
    expect(good.seen[0]!.headers["idempotency-key"]).toBe(noLeader.seen[0]!.headers["idempotency-key"]);
    // Later requests start at the server that answered.
    await c.listTopics().catch(() => {});
    expect(good.seen).toHaveLength(2);
  });

  it("does not retry permanent errors and reports the API's code and message", async () => {
    const s = await fake([err(404, "TOPIC_NOT_FOUND", false)]);
    const c = new RaftbusClient({ servers: [s.url] });
    const e = await c.produce("nope", [{ value: 1 }]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).code).toBe("TOPIC_NOT_FOUND");
    expect((e as ApiError).status).toBe(404);
    expect((e as ApiError).message).toBe("TOPIC_NOT_FOUND happened");
    expect(s.seen).toHaveLength(1);
  });

  it("gives up after the retry timeout and says an earlier attempt may have taken effect", async () => {
    const s = await fake([err(504, "COMMIT_TIMEOUT", true)]);
    const c = new RaftbusClient({ servers: [s.url], retryTimeoutMs: 400 });
    const t0 = Date.now();
    const e = (await c.createTopic({ name: "x" }).catch((x: unknown) => x)) as ApiError;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(e.code).toBe("COMMIT_TIMEOUT");
    expect(e.maybeApplied).toBe(true);
    expect(s.seen.length).toBeGreaterThanOrEqual(1);
  });

  it("fails fast with UNAVAILABLE when no server can be reached", async () => {
    const c = new RaftbusClient({
      servers: [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`],
      retryTimeoutMs: 500,
    });
    const e = (await c.clusterStatus().catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(0);
    expect(e.message).toMatch(/no server answered/);
    expect(e.maybeApplied).toBe(false);
  });
});

describe("produce input", () => {
  it("turns lines into records: keys, separators, JSON, headers, partition", () => {
    expect(toRecord("hello", "line 1", {})).toEqual({ value: "hello" });
    expect(toRecord("hello", "line 1", { key: "k", partition: 2 })).toEqual({
      key: "k",
      value: "hello",
      partition: 2,
    });
    expect(toRecord('u1:{"n":1}', "line 1", { keySeparator: ":", json: true })).toEqual({
      key: "u1",
      value: { n: 1 },
    });
    expect(toRecord("a::b", "line 1", { keySeparator: "::", headers: { h: "v" } })).toEqual({
      key: "a",
      value: "b",
      headers: { h: "v" },
    });
    expect(() => toRecord("nokey", "line 3", { keySeparator: ":" })).toThrow(/line 3: no key separator/);
    expect(() => toRecord("{bad", "line 4", { json: true })).toThrow(/line 4: not valid JSON/);
  });

  it("reads lines (LF, CRLF, no final newline) across chunk boundaries", async () => {
    const { Readable } = await import("node:stream");
    const lines: string[] = [];
    await readLines(Readable.from(["a\r\nb", "c\n\nd"]), async (l) => {
      lines.push(l);
    });
    expect(lines).toEqual(["a", "bc", "", "d"]);
  });

  it("batches by count and bytes, in order, with at most `concurrency` requests in flight", async () => {
    let inflight = 0;
    let peak = 0;
    const batches: unknown[][] = [];
    const client = {
      produce: async (_t: string, records: { value?: unknown }[]) => {
        inflight++;
        peak = Math.max(peak, inflight);
        batches.push(records.map((r) => r.value));
        await new Promise((r) => setTimeout(r, 5));
        inflight--;
        return records.map((_, i) => ({ partition: 0, offset: i, timestamp: 0 }));
      },
    } as unknown as RaftbusClient;
    const b = new Batcher(client, "t", { maxRecords: 3, maxBytes: 1 << 20, concurrency: 2, lingerMs: 1000 });
    for (let i = 0; i < 10; i++) await b.add({ value: i });
    await b.close();
    expect(batches).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]);
    expect(peak).toBeLessThanOrEqual(2);
    expect(b.acked).toBe(10);

    batches.length = 0;
    const big = "x".repeat(400);
    const byBytes = new Batcher(client, "t", {
      maxRecords: 100,
      maxBytes: 1024,
      concurrency: 1,
      lingerMs: 1000,
    });
    for (let i = 0; i < 5; i++) await byBytes.add({ value: big });
    await byBytes.close();
    expect(batches.map((x) => x.length)).toEqual([2, 2, 1]);
  });

  it("close() waits for a batch the linger timer queued behind a busy slot", async () => {
    const batches: unknown[][] = [];
    const client = {
      produce: async (_t: string, records: { value?: unknown }[]) => {
        batches.push(records.map((r) => r.value));
        await new Promise((r) => setTimeout(r, 30));
        return [];
      },
    } as unknown as RaftbusClient;
    const b = new Batcher(client, "t", { maxRecords: 2, maxBytes: 1 << 20, concurrency: 1, lingerMs: 1 });
    for (let i = 0; i < 3; i++) await b.add({ value: i });
    await new Promise((r) => setTimeout(r, 10)); // the linger timer fires while [0, 1] is in flight
    await b.close();
    expect(batches).toEqual([[0, 1], [2]]);
    expect(b.acked).toBe(3);
  });

  it("stops at the first permanent failure", async () => {
    let calls = 0;
    const client = {
      produce: async () => {
        calls++;
        throw new TopicNotFoundError({ status: 404, code: "TOPIC_NOT_FOUND", message: "no such topic" });
      },
    } as unknown as RaftbusClient;
    const b = new Batcher(client, "t", { maxRecords: 2, maxBytes: 1 << 20, concurrency: 1, lingerMs: 1000 });
    const e = await (async () => {
      for (let i = 0; i < 100; i++) await b.add({ value: i });
      await b.close();
    })().catch((x: unknown) => x);
    expect((e as ApiError).code).toBe("TOPIC_NOT_FOUND");
    expect(calls).toBeLessThanOrEqual(2);
  });
});

describe("consume output", () => {
  const rec = { offset: 4, timestamp: 99, key: "k", headers: {} };
  it("prints strings as text, other JSON as JSON, bytes as base64", () => {
    expect(valueText({ ...rec, value: "hello" })).toBe("hello");
    expect(valueText({ ...rec, value: { a: [1, 2] } })).toBe('{"a":[1,2]}');
    expect(valueText({ ...rec, value: 42 })).toBe("42");
    expect(valueText({ ...rec, value: null })).toBe("null");
    expect(valueText({ ...rec, value: "two\nlines" })).toBe('"two\\nlines"');
    expect(valueText({ ...rec, valueBase64: "AAEC" })).toBe("AAEC");
  });

  it("formats offsets, keys, timestamps and JSON records", () => {
    const f = { commitIntervalMs: 1000 };
    expect(formatRecord(1, { ...rec, value: "v" }, f)).toBe("v");
    expect(formatRecord(1, { ...rec, value: "v" }, { ...f, printOffset: true, printKey: true })).toBe(
      "Partition:1\tOffset:4\tk\tv",
    );
    expect(formatRecord(1, { ...rec, key: null, value: "v" }, { ...f, printKey: true })).toBe("null\tv");
    expect(formatRecord(1, { ...rec, value: "v" }, { ...f, printTimestamp: true })).toBe("CreateTime:99\tv");
    expect(JSON.parse(formatRecord(1, { ...rec, value: { x: 1 } }, { ...f, json: true }))).toEqual({
      partition: 1,
      offset: 4,
      timestamp: 99,
      key: "k",
      value: { x: 1 },
      headers: {},
    });
  });

  it("parses --from", () => {
    expect(parseFrom("earliest")).toBe("earliest");
    expect(parseFrom("latest")).toBe("latest");
    expect(parseFrom("17")).toBe(17);
    expect(parseFrom(undefined)).toBeUndefined();
    expect(() => parseFrom("-1")).toThrow(CliError);
    expect(() => parseFrom("soon")).toThrow(CliError);
  });

  it("lays out tables", () => {
    expect(
      table(
        ["ID", "NAME"],
        [
          [1, "alpha"],
          [10, "b"],
        ],
      ),
    ).toBe("ID  NAME\n1   alpha\n10  b");
  });
});
