// Produce, fetch and offsets-by-timestamp through the HTTP app of a real single
// node (LMDB, Raft runtime, broker): every status and error code of the routes.

import { request as httpRequest } from "node:http";
import type { LightMyRequestResponse } from "fastify";
import { beforeAll, describe, expect, it } from "vitest";
import { partitionForKey } from "../../src/broker/partitioner.ts";
import { recordToJson } from "../../src/http/record-json.ts";
import { canonicalJson, decodeBase64Strict } from "../../src/http/routes/records.ts";
import { startTestNode } from "./fixture.ts";
import { app, node, useTestNode } from "./helpers.ts";

useTestNode();

let topicSeq = 0;
async function topic(partitions = 1, extra: Record<string, unknown> = {}): Promise<string> {
  const name = `t${++topicSeq}`;
  const res = await app.inject({
    method: "POST",
    url: "/v1/topics",
    payload: { name, partitions, ...extra },
  });
  expect(res.statusCode).toBe(201);
  return name;
}

function produce(t: string, records: unknown[], headers: Record<string, string> = {}, query = "") {
  return app.inject({
    method: "POST",
    url: `/v1/topics/${t}/records${query}`,
    payload: { records },
    headers,
  });
}

function produceRaw(t: string, body: Buffer | string, query = "", headers: Record<string, string> = {}) {
  return app.inject({
    method: "POST",
    url: `/v1/topics/${t}/records${query}`,
    payload: body,
    headers: { "content-type": "application/octet-stream", ...headers },
  });
}

/**
 * A request over a real connection of its own, closed after the answer
 * (fetch's pooled keep-alive connections, some opened and never used, would
 * hold the server open when the node stops).
 */
function real(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {},
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${node.url}${path}`,
      { method, headers: opts.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    opts.signal?.addEventListener("abort", () => req.destroy(new Error("aborted")), { once: true });
    req.end(opts.body);
  });
}

function get(url: string) {
  return app.inject({ method: "GET", url });
}

async function fetchAll(t: string, partition = 0, offset = 0) {
  const res = await get(`/v1/topics/${t}/partitions/${partition}/records?offset=${offset}&limit=10000`);
  expect(res.statusCode).toBe(200);
  return res.json() as {
    records: Record<string, unknown>[];
    nextOffset: number;
    endOffset: number;
  };
}

async function endOffset(t: string, partition = 0): Promise<number> {
  const res = await get(`/v1/topics/${t}`);
  return res.json().partitions[partition].endOffset;
}

/** The API's error shape, exactly: {"error": {code, message, retriable, ...extra}}. */
function expectError(
  res: LightMyRequestResponse,
  status: number,
  code: string,
  extra: Record<string, unknown> = {},
) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  const body = res.json();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toEqual({ code, message: expect.any(String), retriable: false, ...extra });
  expect(body.error.message.length).toBeGreaterThan(0);
}

describe("produce: success", () => {
  it("stores JSON values of every type and returns them as `value`", async () => {
    const t = await topic();
    const values = [
      { any: "json", nested: { a: [1, 2, { b: null }] } },
      [1, "two", false, null, { three: 3 }],
      [],
      {},
      'a string with "quotes", \\ and unicode: héllo ✓ 🚀',
      "",
      0,
      -17,
      -12.75e-3,
      1e21,
      true,
      false,
      null,
    ];
    const res = await produce(
      t,
      values.map((value) => ({ value })),
    );
    expect(res.statusCode, res.body).toBe(200);
    const positions = res.json().records;
    expect(positions).toHaveLength(values.length);
    const got = await fetchAll(t);
    expect(got.records.map((r) => r.value)).toEqual(values);
    for (const r of got.records) {
      expect(r).not.toHaveProperty("valueBase64");
      expect(r.key).toBeNull();
      expect(r.headers).toEqual({});
      expect(Object.keys(r)).toEqual(["offset", "timestamp", "key", "value", "headers"]);
    }
  });

  it("stores bytes from valueBase64 and returns them as `valueBase64`", async () => {
    const t = await topic();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString("base64");
    const samples = ["AAEC", "", "AA==", "AAE=", all];
    const res = await produce(
      t,
      samples.map((valueBase64) => ({ valueBase64 })),
    );
    expect(res.statusCode, res.body).toBe(200);
    const got = await fetchAll(t);
    expect(got.records.map((r) => r.valueBase64)).toEqual(samples);
    for (const r of got.records) {
      expect(r).not.toHaveProperty("value");
      expect(Object.keys(r)).toEqual(["offset", "timestamp", "key", "valueBase64", "headers"]);
    }
  });

  it("keeps keys and headers", async () => {
    const t = await topic();
    const res = await produce(t, [
      { key: "user-7", value: { a: 1 }, headers: { h: "v", "content-type": "x/y", empty: "" } },
      { key: null, valueBase64: "AAEC", headers: {} },
      { key: "", value: "empty key" },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    const got = await fetchAll(t);
    expect(got.records).toEqual([
      {
        offset: 0,
        timestamp: expect.any(Number),
        key: "user-7",
        value: { a: 1 },
        headers: { h: "v", "content-type": "x/y", empty: "" },
      },
      { offset: 1, timestamp: expect.any(Number), key: null, valueBase64: "AAEC", headers: {} },
      { offset: 2, timestamp: expect.any(Number), key: "", value: "empty key", headers: {} },
    ]);
    expect(got.nextOffset).toBe(3);
    expect(got.endOffset).toBe(3);
  });

  it("sends a keyed record to hash(key) mod partitions, the same one every time", async () => {
    const t = await topic(8);
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const first = await produce(
      t,
      keys.map((key) => ({ key, value: 1 })),
    );
    expect(first.statusCode).toBe(200);
    const second = await produce(
      t,
      keys.map((key) => ({ key, value: 2 })),
    );
    expect(second.statusCode).toBe(200);
    const p1 = first.json().records.map((r: { partition: number }) => r.partition);
    const p2 = second.json().records.map((r: { partition: number }) => r.partition);
    expect(p1).toEqual(keys.map((k) => partitionForKey(k, 8)));
    expect(p2).toEqual(p1);
    expect(new Set(p1).size).toBeGreaterThan(1); // 40 keys do spread over 8 partitions
  });

  it("honours an explicit partition, over the key's", async () => {
    const t = await topic(3);
    const res = await produce(t, [
      { value: "a", partition: 2 },
      { key: "k", value: "b", partition: 1 },
      { value: "c", partition: 0 },
    ]);
    expect(res.statusCode).toBe(200);
    expect(res.json().records.map((r: { partition: number }) => r.partition)).toEqual([2, 1, 0]);
    expect((await fetchAll(t, 2)).records.map((r) => r.value)).toEqual(["a"]);
    expect((await fetchAll(t, 1)).records.map((r) => [r.key, r.value])).toEqual([["k", "b"]]);
  });

  it("spreads keyless records over valid partitions", async () => {
    const t = await topic(3);
    const res = await produce(
      t,
      Array.from({ length: 9 }, (_, i) => ({ value: i })),
    );
    expect(res.statusCode).toBe(200);
    const parts = res.json().records.map((r: { partition: number }) => r.partition);
    for (const p of parts) expect([0, 1, 2]).toContain(p);
  });

  it("takes an octet-stream body as one record's bytes, with ?key= and ?partition=", async () => {
    const t = await topic(4);
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    const a = await produceRaw(t, bytes, "?key=user-7&partition=3");
    expect(a.statusCode, a.body).toBe(200);
    expect(a.json()).toEqual({ records: [{ partition: 3, offset: 0, timestamp: expect.any(Number) }] });
    const b = await produceRaw(t, bytes, "?key=user-7");
    expect(b.json().records[0].partition).toBe(partitionForKey("user-7", 4));
    const c = await produceRaw(t, Buffer.alloc(0), "?partition=1&timeoutMs=5000");
    expect(c.statusCode).toBe(200);
    expect(c.json().records[0]).toMatchObject({ partition: 1, offset: 0 });
    const got = await fetchAll(t, 3);
    expect(got.records[0]).toEqual({
      offset: 0,
      timestamp: a.json().records[0].timestamp,
      key: "user-7",
      valueBase64: bytes.toString("base64"),
      headers: {},
    });
    expect((await fetchAll(t, 1)).records[0]).toMatchObject({ key: null, valueBase64: "", headers: {} });
    // JSON text sent as octet-stream stays bytes.
    const d = await produceRaw(t, '{"a":1}', "?partition=0");
    expect(d.statusCode).toBe(200);
    expect((await fetchAll(t, 0)).records[0]).toMatchObject({
      valueBase64: Buffer.from('{"a":1}').toString("base64"),
    });
  });

  it("gives contiguous offsets in request order, higher for later requests, timestamps non-decreasing", async () => {
    const t = await topic(2);
    const one = await produce(
      t,
      Array.from({ length: 50 }, (_, i) => ({ value: i, partition: 0 })),
    );
    expect(one.statusCode).toBe(200);
    const r1 = one.json().records as { partition: number; offset: number; timestamp: number }[];
    expect(r1.map((r) => r.offset)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // Mixed partitions: contiguous per partition, in request order.
    const mixed = Array.from({ length: 30 }, (_, i) => ({ value: i, partition: i % 3 === 0 ? 1 : 0 }));
    const two = await produce(t, mixed);
    expect(two.statusCode).toBe(200);
    const r2 = two.json().records as { partition: number; offset: number; timestamp: number }[];
    expect(r2.map((r) => r.partition)).toEqual(mixed.map((m) => m.partition));
    const p0 = r2.filter((r) => r.partition === 0).map((r) => r.offset);
    const p1 = r2.filter((r) => r.partition === 1).map((r) => r.offset);
    expect(p0).toEqual(Array.from({ length: 20 }, (_, i) => 50 + i));
    expect(p1).toEqual(Array.from({ length: 10 }, (_, i) => i));
    // Many sequential requests: offsets grow, timestamps never decrease.
    for (let i = 0; i < 10; i++) {
      expect((await produce(t, [{ value: i, partition: 0 }])).statusCode).toBe(200);
    }
    const got = await fetchAll(t, 0);
    expect(got.records.map((r) => r.offset)).toEqual(Array.from({ length: 80 }, (_, i) => i));
    expect(got.records.slice(0, 50).map((r) => r.value)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const ts = got.records.map((r) => r.timestamp as number);
    for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThanOrEqual(ts[i - 1]!);
    // The answer's timestamps are the stored ones.
    expect(ts.slice(0, 50)).toEqual(r1.map((r) => r.timestamp));
  });

  it("accepts a record of exactly the size limit (key + value + headers)", async () => {
    const t = await topic();
    const MiB = 1024 * 1024;
    const value = Buffer.alloc(MiB - 10 - 4, 7); // key "0123456789" + header "h"/"vvv"
    const res = await produce(t, [
      { key: "0123456789", valueBase64: value.toString("base64"), headers: { h: "vvv" } },
    ]);
    expect(res.statusCode, res.body).toBe(200);
    expect(await endOffset(t)).toBe(1);
    const raw = await produceRaw(t, Buffer.alloc(MiB - 1), "?key=k");
    expect(raw.statusCode).toBe(200);
  });
});

describe("produce: 400 INVALID_REQUEST", () => {
  let t: string;
  beforeAll(async () => {
    t = await topic(2);
  });

  const post = (payload: string, contentType = "application/json", headers: Record<string, string> = {}) =>
    app.inject({
      method: "POST",
      url: `/v1/topics/${t}/records`,
      payload,
      headers: { "content-type": contentType, ...headers },
    });

  it("rejects malformed or empty JSON and bodies of the wrong shape", async () => {
    for (const body of [
      "{bad",
      '{"records": [',
      "",
      "null",
      "[]",
      '"records"',
      "{}",
      '{"records": {}}',
      '{"records": []}',
      '{"records": [1]}',
      '{"records": [null]}',
      '{"records": [{"value": 1}], "extra": true}',
      '{"records": [{"value": 1, "vaule": 2}]}',
      '{"records": [{"value": 1, "__proto__": {"x": 1}}]}',
    ]) {
      expectError(await post(body), 400, "INVALID_REQUEST");
    }
    expect(await endOffset(t)).toBe(0);
  });

  it("rejects fields of the wrong type", async () => {
    for (const record of [
      { value: 1, key: 5 },
      { value: 1, key: { k: 1 } },
      { value: 1, key: ["a"] },
      { value: 1, headers: { h: 1 } },
      { value: 1, headers: { h: null } },
      { value: 1, headers: ["a"] },
      { value: 1, headers: "h=v" },
      { valueBase64: 5 },
      { valueBase64: null },
      { value: 1, partition: -1 },
      { value: 1, partition: 1.5 },
      { value: 1, partition: "1" },
      { value: 1, partition: null },
      { value: 1, partition: 1e300 },
      { value: 1, partition: 2 ** 53 },
    ]) {
      const res = await produce(t, [record]);
      expectError(res, 400, "INVALID_REQUEST");
    }
    expect(await endOffset(t)).toBe(0);
  });

  it("needs exactly one of value and valueBase64", async () => {
    expectError(await produce(t, [{ key: "k" }]), 400, "INVALID_REQUEST");
    expectError(await produce(t, [{}]), 400, "INVALID_REQUEST");
    expectError(await produce(t, [{ value: "x", valueBase64: "AAEC" }]), 400, "INVALID_REQUEST");
    // One bad record refuses the whole request: nothing is appended.
    expectError(await produce(t, [{ value: 1 }, { key: "k" }]), 400, "INVALID_REQUEST");
    expect(await endOffset(t)).toBe(0);
    expect(await endOffset(t, 1)).toBe(0);
  });

  it("rejects invalid base64", async () => {
    for (const b of [
      "A",
      "AA",
      "AAE",
      "AA=A",
      "A===",
      "****",
      "AAEC\n",
      " AAEC",
      "AA==AAEC",
      "QR==",
      "AAF=",
      "AA-_",
    ]) {
      expectError(await produce(t, [{ valueBase64: b }]), 400, "INVALID_REQUEST");
    }
    expectError(await produce(t, [{ value: 1 }, { valueBase64: "%%%%" }]), 400, "INVALID_REQUEST");
    expect(await endOffset(t)).toBe(0);
  });

  it("rejects a malformed Idempotency-Key", async () => {
    for (const key of ["", "x".repeat(129), "é", "a\tb", "\x7f", "ключ"]) {
      const res = await produce(t, [{ value: 1 }], { "idempotency-key": key });
      expectError(res, 400, "INVALID_REQUEST");
    }
    // The bounds themselves are fine.
    expect((await produce(t, [{ value: 1 }], { "idempotency-key": "x".repeat(128) })).statusCode).toBe(200);
    expect((await produce(t, [{ value: 1 }], { "idempotency-key": "a" })).statusCode).toBe(200);
    expect((await produce(t, [{ value: 1 }], { "idempotency-key": "~ !x" })).statusCode).toBe(200);
  });

  it("rejects bad query parameters", async () => {
    for (const q of [
      "?timeoutMs=0",
      "?timeoutMs=abc",
      "?timeoutMs=-5",
      "?timeoutMs=1.5",
      "?timeoutMs=999999999",
    ]) {
      expectError(await produce(t, [{ value: 1 }], {}, q), 400, "INVALID_REQUEST");
    }
    // key/partition query parameters belong to octet-stream bodies.
    expectError(await produce(t, [{ value: 1 }], {}, "?partition=0"), 400, "INVALID_REQUEST");
    expectError(await produce(t, [{ value: 1 }], {}, "?key=k"), 400, "INVALID_REQUEST");
    for (const q of [
      "?partition=-1",
      "?partition=abc",
      "?partition=1.0",
      "?partition=99999999999999999999",
      "?key=a&key=b",
      "?partition=0&partition=1",
    ]) {
      expectError(await produceRaw(t, "x", q), 400, "INVALID_REQUEST");
    }
  });

  it("rejects a body that is neither JSON nor octet-stream", async () => {
    expectError(await post("hello", "text/plain"), 400, "INVALID_REQUEST");
    expectError(await app.inject({ method: "POST", url: `/v1/topics/${t}/records` }), 400, "INVALID_REQUEST");
    expectError(await post("<x/>", "application/xml"), 400, "INVALID_REQUEST");
  });
});

describe("produce: 404", () => {
  it("answers TOPIC_NOT_FOUND for an unknown topic", async () => {
    expectError(await produce("nope", [{ value: 1 }]), 404, "TOPIC_NOT_FOUND");
    expectError(await produceRaw("nope", "x"), 404, "TOPIC_NOT_FOUND");
  });
  it("answers PARTITION_NOT_FOUND for a partition that does not exist, appending nothing", async () => {
    const t = await topic(2);
    const res = await produce(t, [
      { value: 1, partition: 0 },
      { value: 2, partition: 2 },
    ]);
    expectError(res, 404, "PARTITION_NOT_FOUND");
    expectError(await produce(t, [{ value: 1, partition: 1_000_000 }]), 404, "PARTITION_NOT_FOUND");
    expectError(await produceRaw(t, "x", "?partition=9"), 404, "PARTITION_NOT_FOUND");
    expect(await endOffset(t, 0)).toBe(0);
  });
});

describe("produce: 413 RECORD_TOO_LARGE", () => {
  const MiB = 1024 * 1024;
  it("refuses a record over 1 MiB (key + value + headers), appending nothing", async () => {
    const t = await topic();
    const big = Buffer.alloc(MiB + 1).toString("base64");
    expectError(await produce(t, [{ valueBase64: big }]), 413, "RECORD_TOO_LARGE");
    // Exactly the limit in value, plus a key byte: over.
    const limit = Buffer.alloc(MiB).toString("base64");
    expectError(await produce(t, [{ key: "k", valueBase64: limit }]), 413, "RECORD_TOO_LARGE");
    // Headers count too.
    const almost = Buffer.alloc(MiB - 2).toString("base64");
    expectError(await produce(t, [{ valueBase64: almost, headers: { ab: "c" } }]), 413, "RECORD_TOO_LARGE");
    // A JSON value counts its JSON text.
    expectError(await produce(t, [{ value: "x".repeat(MiB) }]), 413, "RECORD_TOO_LARGE");
    // One large record refuses the whole request.
    expectError(await produce(t, [{ value: 1 }, { valueBase64: big }]), 413, "RECORD_TOO_LARGE");
    // Octet-stream: the body is the value; ?key= counts.
    expectError(await produceRaw(t, Buffer.alloc(MiB + 1)), 413, "RECORD_TOO_LARGE");
    expectError(await produceRaw(t, Buffer.alloc(MiB), "?key=k"), 413, "RECORD_TOO_LARGE");
    expect(await endOffset(t)).toBe(0);
  });

  it("refuses a request body over 8 MiB", async () => {
    const t = await topic();
    // Many small records, each under the record limit, together over the body limit.
    const chunk = Buffer.alloc(512 * 1024).toString("base64");
    const records = Array.from({ length: 13 }, () => ({ valueBase64: chunk }));
    const body = JSON.stringify({ records });
    expect(body.length).toBeGreaterThan(8 * MiB);
    const res = await app.inject({
      method: "POST",
      url: `/v1/topics/${t}/records`,
      payload: body,
      headers: { "content-type": "application/json" },
    });
    expectError(res, 413, "RECORD_TOO_LARGE");
    expectError(await produceRaw(t, Buffer.alloc(8 * MiB + 1)), 413, "RECORD_TOO_LARGE");
    expect(await endOffset(t)).toBe(0);
    // Just under the body limit, every record under the record limit: accepted.
    const ok = Array.from({ length: 11 }, () => ({ valueBase64: chunk }));
    expect(JSON.stringify({ records: ok }).length).toBeLessThan(8 * MiB);
    const res2 = await produce(t, ok);
    expect(res2.statusCode, res2.body.slice(0, 200)).toBe(200);
    expect(await endOffset(t)).toBe(11);
  });
});

describe("produce: idempotency", () => {
  it("answers a retry with the first answer and appends nothing", async () => {
    const t = await topic(3);
    const records = [
      { key: "a", value: { x: 1, y: [1, 2] }, headers: { h: "1" } },
      { valueBase64: "AAEC", partition: 2 },
    ];
    const first = await produce(t, records, { "idempotency-key": "req-1" });
    expect(first.statusCode).toBe(200);
    const ends = [await endOffset(t, 0), await endOffset(t, 1), await endOffset(t, 2)];
    await new Promise((r) => setTimeout(r, 5)); // a later timestamp, if it were appended again
    const retry = await produce(t, records, { "idempotency-key": "req-1" });
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toEqual(first.json());
    expect([await endOffset(t, 0), await endOffset(t, 1), await endOffset(t, 2)]).toEqual(ends);
    // JSON-equal (keys in another order, other whitespace) is the same body.
    const reordered = JSON.stringify({
      records: [
        { headers: { h: "1" }, value: { y: [1, 2], x: 1 }, key: "a" },
        { partition: 2, valueBase64: "AAEC" },
      ],
    }).replace(/,/g, " ,\n ");
    const again = await app.inject({
      method: "POST",
      url: `/v1/topics/${t}/records`,
      payload: reordered,
      headers: { "content-type": "application/json", "idempotency-key": "req-1" },
    });
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json()).toEqual(first.json());
    expect([await endOffset(t, 0), await endOffset(t, 1), await endOffset(t, 2)]).toEqual(ends);
    // Without a key, the same body appends again.
    expect((await produce(t, records)).statusCode).toBe(200);
    expect(await endOffset(t, 2)).toBe(ends[2]! + 1);
  });

  it("answers 422 IDEMPOTENCY_KEY_REUSED for the same key with a different body", async () => {
    const t = await topic();
    expect((await produce(t, [{ value: 1 }], { "idempotency-key": "k1" })).statusCode).toBe(200);
    expectError(await produce(t, [{ value: 2 }], { "idempotency-key": "k1" }), 422, "IDEMPOTENCY_KEY_REUSED");
    expectError(
      await produce(t, [{ value: 1 }, { value: 1 }], { "idempotency-key": "k1" }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    expectError(
      await produce(t, [{ value: 1, key: null }], { "idempotency-key": "k1" }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    expectError(
      await produce(t, [{ value: "1" }], { "idempotency-key": "k1" }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    expectError(await produceRaw(t, "1", "", { "idempotency-key": "k1" }), 422, "IDEMPOTENCY_KEY_REUSED");
    expect(await endOffset(t)).toBe(1);
    // Octet-stream: byte-equal, key and partition included.
    expect((await produceRaw(t, "abc", "?key=x", { "idempotency-key": "k2" })).statusCode).toBe(200);
    expect((await produceRaw(t, "abc", "?key=x", { "idempotency-key": "k2" })).statusCode).toBe(200);
    expectError(
      await produceRaw(t, "abd", "?key=x", { "idempotency-key": "k2" }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    expectError(
      await produceRaw(t, "abc", "?key=y", { "idempotency-key": "k2" }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    expectError(await produceRaw(t, "abc", "", { "idempotency-key": "k2" }), 422, "IDEMPOTENCY_KEY_REUSED");
    expectError(
      await produceRaw(t, "abc", "?key=x&partition=0", { "idempotency-key": "k2" }),
      422,
      "IDEMPOTENCY_KEY_REUSED",
    );
    expect(await endOffset(t)).toBe(2);
  });

  it("scopes keys to the topic", async () => {
    const a = await topic();
    const b = await topic();
    const ra = await produce(a, [{ value: 1 }], { "idempotency-key": "shared" });
    const rb = await produce(b, [{ value: 2 }], { "idempotency-key": "shared" });
    expect(ra.statusCode).toBe(200);
    expect(rb.statusCode).toBe(200);
    expect(await endOffset(a)).toBe(1);
    expect(await endOffset(b)).toBe(1);
  });

  it("remembers only a 200: after another answer the key is free", async () => {
    const t = await topic(2);
    expectError(
      await produce(t, [{ value: 1, partition: 5 }], { "idempotency-key": "free" }),
      404,
      "PARTITION_NOT_FOUND",
    );
    const ok = await produce(t, [{ value: "different" }], { "idempotency-key": "free" });
    expect(ok.statusCode).toBe(200);
  });

  it("appends once for concurrent first attempts with one key", async () => {
    const t = await topic();
    const records = Array.from({ length: 5 }, (_, i) => ({ value: i }));
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => produce(t, records, { "idempotency-key": "concurrent" })),
    );
    for (const a of answers) expect(a.statusCode).toBe(200);
    const first = answers[0]!.json();
    for (const a of answers) expect(a.json()).toEqual(first);
    expect(await endOffset(t)).toBe(5);
    expect(first.records.map((r: { offset: number }) => r.offset)).toEqual([0, 1, 2, 3, 4]);
  });

  it("appends once for concurrent first attempts over real connections", async () => {
    const t = await topic();
    const send = () =>
      real("POST", `/v1/topics/${t}/records`, {
        headers: { "content-type": "application/json", "idempotency-key": "real" },
        body: JSON.stringify({ records: [{ value: "once" }] }),
      });
    const answers = await Promise.all(Array.from({ length: 10 }, send));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.body).toEqual(answers[0]!.body);
    }
    expect(await endOffset(t)).toBe(1);
  });
});

describe("fetch", () => {
  let t: string;
  let positions: { partition: number; offset: number; timestamp: number }[];
  beforeAll(async () => {
    t = await topic(2);
    const res = await produce(
      t,
      Array.from({ length: 10 }, (_, i) => ({ value: i, partition: 0 })),
    );
    positions = res.json().records;
  });

  it("reads from an offset, at most `limit` records", async () => {
    const res = await get(`/v1/topics/${t}/partitions/0/records?offset=3&limit=4`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.records.map((r: { offset: number }) => r.offset)).toEqual([3, 4, 5, 6]);
    expect(body.records.map((r: { value: number }) => r.value)).toEqual([3, 4, 5, 6]);
    expect(body.records[0].timestamp).toBe(positions[3]!.timestamp);
    expect(body.nextOffset).toBe(7);
    expect(body.endOffset).toBe(10);
  });

  it("defaults to limit 100 and reads from the start without an offset", async () => {
    const t2 = await topic();
    await produce(
      t2,
      Array.from({ length: 150 }, (_, i) => ({ value: i })),
    );
    const res = await get(`/v1/topics/${t2}/partitions/0/records`);
    expect(res.statusCode).toBe(200);
    expect(res.json().records).toHaveLength(100);
    expect(res.json().records[0].offset).toBe(0);
    expect(res.json().nextOffset).toBe(100);
    const rest = await get(`/v1/topics/${t2}/partitions/0/records?offset=100&limit=10000`);
    expect(rest.json().records).toHaveLength(50);
    expect(rest.json().nextOffset).toBe(150);
    expect(rest.json().endOffset).toBe(150);
  });

  it("answers an empty page at the end (maxWaitMs=0: at once)", async () => {
    const started = Date.now();
    const res = await get(`/v1/topics/${t}/partitions/0/records?offset=10`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ records: [], nextOffset: 10, endOffset: 10 });
    expect(Date.now() - started).toBeLessThan(1000);
    const empty = await get(`/v1/topics/${t}/partitions/1/records?offset=0`);
    expect(empty.json()).toEqual({ records: [], nextOffset: 0, endOffset: 0 });
  });

  it("rejects bad parameters with 400", async () => {
    for (const q of [
      "offset=-1",
      "offset=abc",
      "offset=1.5",
      "offset=1e3",
      "offset=99999999999999999999",
      "offset=0&offset=1",
      "limit=0",
      "limit=10001",
      "limit=-1",
      "limit=x",
      "maxWaitMs=-1",
      "maxWaitMs=30001",
      "maxWaitMs=1.5",
      "maxWaitMs=abc",
    ]) {
      expectError(await get(`/v1/topics/${t}/partitions/0/records?${q}`), 400, "INVALID_REQUEST");
    }
    for (const p of ["-1", "abc", "1.5", "99999999999999999999", "0x1"]) {
      expectError(await get(`/v1/topics/${t}/partitions/${p}/records`), 400, "INVALID_REQUEST");
    }
    // The bounds themselves are fine.
    expect((await get(`/v1/topics/${t}/partitions/0/records?offset=0&limit=1`)).statusCode).toBe(200);
    expect((await get(`/v1/topics/${t}/partitions/0/records?offset=0&limit=10000`)).statusCode).toBe(200);
    expect((await get(`/v1/topics/${t}/partitions/0/records?offset=0&maxWaitMs=30000`)).statusCode).toBe(200);
  });

  it("answers 404 for an unknown topic or partition", async () => {
    expectError(await get("/v1/topics/nope/partitions/0/records"), 404, "TOPIC_NOT_FOUND");
    expectError(
      await get("/v1/topics/nope/partitions/0/records?offset=0&maxWaitMs=100"),
      404,
      "TOPIC_NOT_FOUND",
    );
    // (the broker adds the partition count)
    expectError(await get(`/v1/topics/${t}/partitions/2/records?offset=0`), 404, "PARTITION_NOT_FOUND", {
      partitions: 2,
    });
    expectError(await get(`/v1/topics/${t}/partitions/2/records`), 404, "PARTITION_NOT_FOUND", {
      partitions: 2,
    });
  });

  it("answers 416 beyond the end, with startOffset and endOffset", async () => {
    expectError(await get(`/v1/topics/${t}/partitions/0/records?offset=11`), 416, "OFFSET_OUT_OF_RANGE", {
      startOffset: 0,
      endOffset: 10,
    });
    expectError(
      await get(`/v1/topics/${t}/partitions/0/records?offset=9007199254740991&maxWaitMs=1000`),
      416,
      "OFFSET_OUT_OF_RANGE",
      { startOffset: 0, endOffset: 10 },
    );
  });

  it("answers 416 before the start of a trimmed partition", async () => {
    const t2 = await topic(1, { retentionBytes: 0 });
    await produce(
      t2,
      Array.from({ length: 5 }, (_, i) => ({ value: i })),
    );
    node.server.broker.enforceRetention();
    const deadline = Date.now() + 5000;
    while ((await get(`/v1/topics/${t2}`)).json().partitions[0].startOffset === 0) {
      if (Date.now() > deadline) throw new Error("retention did not trim");
      await new Promise((r) => setTimeout(r, 10));
    }
    const { startOffset, endOffset: end } = (await get(`/v1/topics/${t2}`)).json().partitions[0];
    expect(startOffset).toBeGreaterThan(0);
    expectError(await get(`/v1/topics/${t2}/partitions/0/records?offset=0`), 416, "OFFSET_OUT_OF_RANGE", {
      startOffset,
      endOffset: end,
    });
    // Without an offset the read starts where the partition starts.
    const res = await get(`/v1/topics/${t2}/partitions/0/records`);
    expect(res.statusCode).toBe(200);
    expect(res.json().nextOffset).toBe(startOffset + res.json().records.length);
  });

  it("long-polls at the end for a record produced meanwhile", async () => {
    const t2 = await topic();
    await produce(t2, [{ value: "before" }]);
    const started = Date.now();
    const poll = real("GET", `/v1/topics/${t2}/partitions/0/records?offset=1&maxWaitMs=10000`);
    await new Promise((r) => setTimeout(r, 150));
    const produced = await produce(t2, [{ key: "k", value: "during" }]);
    expect(produced.statusCode).toBe(200);
    const res = await poll;
    expect(res.status).toBe(200);
    const body = res.body as { records: unknown[]; nextOffset: number; endOffset: number };
    expect(body.records).toEqual([
      { offset: 1, timestamp: produced.json().records[0].timestamp, key: "k", value: "during", headers: {} },
    ]);
    expect(body.nextOffset).toBe(2);
    expect(body.endOffset).toBe(2);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(100);
    expect(took).toBeLessThan(5000);
  });

  it("long-polls through inject too, for a record produced after a delay", async () => {
    const t2 = await topic();
    const poll = get(`/v1/topics/${t2}/partitions/0/records?offset=0&maxWaitMs=10000`);
    setTimeout(() => void produce(t2, [{ value: "late" }]), 100);
    const res = await poll;
    expect(res.statusCode).toBe(200);
    expect(res.json().records.map((r: { value: unknown }) => r.value)).toEqual(["late"]);
  });

  it("answers with what there is after maxWaitMs", async () => {
    const started = Date.now();
    const res = await get(`/v1/topics/${t}/partitions/1/records?offset=0&maxWaitMs=300`);
    const took = Date.now() - started;
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ records: [], nextOffset: 0, endOffset: 0 });
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3000);
  });

  it("answers at once when records are there, whatever maxWaitMs", async () => {
    const started = Date.now();
    const res = await get(`/v1/topics/${t}/partitions/0/records?offset=5&maxWaitMs=30000`);
    expect(res.json().records).toHaveLength(5);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("ends a long poll when the topic is deleted (then 404)", async () => {
    const t2 = await topic();
    const poll = get(`/v1/topics/${t2}/partitions/0/records?offset=0&maxWaitMs=10000`);
    await new Promise((r) => setTimeout(r, 100));
    expect((await app.inject({ method: "DELETE", url: `/v1/topics/${t2}` })).statusCode).toBe(204);
    expectError(await poll, 404, "TOPIC_NOT_FOUND");
  });

  it("stops waiting when the client disconnects", async () => {
    const t2 = await topic();
    const state = node.server.state;
    const before = state.listenerCount("append");
    const ac = new AbortController();
    const poll = real("GET", `/v1/topics/${t2}/partitions/0/records?offset=0&maxWaitMs=30000`, {
      signal: ac.signal,
    }).catch((e: Error) => e);
    const deadline = Date.now() + 5000;
    while (state.listenerCount("append") === before) {
      if (Date.now() > deadline) throw new Error("the long poll never started waiting");
      await new Promise((r) => setTimeout(r, 5));
    }
    ac.abort();
    expect(await poll).toBeInstanceOf(Error);
    while (state.listenerCount("append") !== before) {
      if (Date.now() > deadline) throw new Error("the long poll kept waiting after the client left");
      await new Promise((r) => setTimeout(r, 5));
    }
  });
});

describe("offsets by timestamp", () => {
  it("finds the first offset whose timestamp is >= the given one", async () => {
    const t = await topic(2);
    const stamps: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await produce(t, [{ value: i, partition: 0 }]);
      stamps.push(res.json().records[0].timestamp);
      await new Promise((r) => setTimeout(r, 3));
    }
    const at = async (ts: number | string, p = 0) =>
      get(`/v1/topics/${t}/partitions/${p}/offsets?timestamp=${ts}`);
    expect((await at(0)).json()).toEqual({ offset: 0 });
    for (let i = 0; i < 5; i++) {
      const first = stamps.findIndex((s) => s >= stamps[i]!);
      expect((await at(stamps[i]!)).json()).toEqual({ offset: first });
    }
    expect((await at(stamps[4]! + 1)).json()).toEqual({ offset: 5 });
    expect((await at(Number.MAX_SAFE_INTEGER)).json()).toEqual({ offset: 5 });
    expect((await at(0, 1)).json()).toEqual({ offset: 0 }); // empty partition: its end
  });

  it("validates and answers 404s", async () => {
    const t = await topic();
    for (const q of [
      "",
      "?timestamp=",
      "?timestamp=-1",
      "?timestamp=abc",
      "?timestamp=1.5",
      "?timestamp=1&timestamp=2",
    ]) {
      expectError(await get(`/v1/topics/${t}/partitions/0/offsets${q}`), 400, "INVALID_REQUEST");
    }
    expectError(await get(`/v1/topics/${t}/partitions/x/offsets?timestamp=0`), 400, "INVALID_REQUEST");
    expectError(await get("/v1/topics/nope/partitions/0/offsets?timestamp=0"), 404, "TOPIC_NOT_FOUND");
    expectError(await get(`/v1/topics/${t}/partitions/1/offsets?timestamp=0`), 404, "PARTITION_NOT_FOUND", {
      partitions: 1,
    });
  });
});

describe("routes and methods", () => {
  it("serves topics whose names have the full 249 characters", async () => {
    const name = `long.${"n".repeat(244)}`;
    expect(name).toHaveLength(249);
    expect((await app.inject({ method: "POST", url: "/v1/topics", payload: { name } })).statusCode).toBe(201);
    const produced = await produce(name, [{ value: "long" }]);
    expect(produced.statusCode, produced.body).toBe(200);
    const fetched = await get(`/v1/topics/${name}/partitions/0/records?offset=0`);
    expect(fetched.statusCode, fetched.body).toBe(200);
    expect(fetched.json().records[0].value).toBe("long");
    expect((await get(`/v1/topics/${name}/partitions/0/offsets?timestamp=0`)).json()).toEqual({ offset: 0 });
  });

  it("answers an over-long path parameter in the error shape", async () => {
    const res = await get(`/v1/topics/${"x".repeat(5000)}/partitions/0/records`);
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).toBeLessThan(500);
    expect(res.json().error).toMatchObject({ message: expect.any(String), retriable: false });
  });

  it("answers 405 in the error shape for wrong methods", async () => {
    const r1 = await app.inject({ method: "PUT", url: "/v1/topics/x/records" });
    expect(r1.statusCode).toBe(405);
    expect(r1.json().error).toMatchObject({ code: "METHOD_NOT_ALLOWED", retriable: false });
    const r2 = await app.inject({ method: "POST", url: "/v1/topics/x/partitions/0/records" });
    expect(r2.statusCode).toBe(405);
    expect(r2.json().error.code).toBe("METHOD_NOT_ALLOWED");
  });
});

describe("helpers", () => {
  it("canonicalJson is equal for JSON-equal values only", () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 1 }] })).toBe(canonicalJson({ a: [{ c: 1, d: 2 }], b: 1 }));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: "1" }));
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    expect(canonicalJson({ a: null })).not.toBe(canonicalJson({}));
  });

  it("decodeBase64Strict takes canonical padded base64 only", () => {
    expect(decodeBase64Strict("AAEC")).toEqual(Buffer.from([0, 1, 2]));
    expect(decodeBase64Strict("")).toEqual(Buffer.alloc(0));
    expect(decodeBase64Strict("/+8=")).toEqual(Buffer.from([255, 239]));
    for (const bad of ["AAE", "QR==", "_-8=", "AA=A", "A"]) expect(decodeBase64Strict(bad)).toBeUndefined();
  });

  it("recordToJson shows JSON records as value, others as valueBase64", () => {
    const base = { offset: 3, timestamp: 7, key: null, headers: {} };
    expect(recordToJson({ ...base, value: Buffer.from('{"a":[1]}'), json: true })).toEqual({
      ...base,
      value: { a: [1] },
    });
    expect(recordToJson({ ...base, value: new Uint8Array([1, 2, 3]), json: false })).toEqual({
      ...base,
      valueBase64: "AQID",
    });
    // A subarray is encoded from its own bytes only.
    const big = new Uint8Array([9, 9, 1, 2, 3, 9]);
    expect(recordToJson({ ...base, value: big.subarray(2, 5), json: false }).valueBase64).toBe("AQID");
  });
});

describe("shutdown", () => {
  it("answers a pending long poll at once when the node stops", async () => {
    const own = await startTestNode();
    try {
      const a = own.server.app;
      await a.inject({ method: "POST", url: "/v1/topics", payload: { name: "s" } });
      const before = own.server.state.listenerCount("append");
      const poll = new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const req = httpRequest(
          `${own.url}/v1/topics/s/partitions/0/records?offset=0&maxWaitMs=30000`,
          { agent: false },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });
      const deadline = Date.now() + 5000;
      while (own.server.state.listenerCount("append") === before) {
        if (Date.now() > deadline) throw new Error("the long poll never started waiting");
        await new Promise((r) => setTimeout(r, 5));
      }
      const started = Date.now();
      await own.stop();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await poll).toEqual({ status: 200, body: { records: [], nextOffset: 0, endOffset: 0 } });
    } finally {
      await own.stop();
    }
  });
});
