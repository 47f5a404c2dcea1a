// Consumer groups' committed offsets through the HTTP app of a real single node.

import type { LightMyRequestResponse } from "fastify";
import { beforeAll, describe, expect, it } from "vitest";
import { app, useTestNode } from "./helpers.ts";

useTestNode();

let topicSeq = 0;
async function topic(partitions = 1, records: Record<number, number> = {}): Promise<string> {
  const name = `g${++topicSeq}`;
  const res = await app.inject({ method: "POST", url: "/v1/topics", payload: { name, partitions } });
  expect(res.statusCode).toBe(201);
  for (const [p, n] of Object.entries(records)) {
    const r = await app.inject({
      method: "POST",
      url: `/v1/topics/${name}/records`,
      payload: { records: Array.from({ length: n }, (_, i) => ({ value: i, partition: Number(p) })) },
    });
    expect(r.statusCode).toBe(200);
  }
  return name;
}

const commit = (group: string, body: unknown, query = "") =>
  app.inject({ method: "POST", url: `/v1/groups/${group}/offsets${query}`, payload: body as object });

const offsets = (group: string) => app.inject({ method: "GET", url: `/v1/groups/${group}/offsets` });

function expectError(
  res: LightMyRequestResponse,
  status: number,
  code: string,
  extra: Record<string, unknown> = {},
) {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toEqual({ code, message: expect.any(String), retriable: false, ...extra });
}

describe("group offsets", () => {
  it("commits offsets and lists them with their lag", async () => {
    const t = await topic(2, { 0: 10, 1: 3 });
    const res = await commit("readers", { topic: t, partition: 0, offset: 4 });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ group: "readers", topic: t, partition: 0, offset: 4 });
    expect((await commit("readers", { topic: t, partition: 1, offset: 3 })).statusCode).toBe(200);
    const got = await offsets("readers");
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual({
      offsets: [
        { topic: t, partition: 0, offset: 4, lag: 6 },
        { topic: t, partition: 1, offset: 3, lag: 0 },
      ],
    });
    // Lag follows new records; a commit may move backwards too.
    await app.inject({
      method: "POST",
      url: `/v1/topics/${t}/records`,
      payload: { records: [{ value: "x", partition: 1 }] },
    });
    expect((await commit("readers", { topic: t, partition: 0, offset: 0 })).statusCode).toBe(200);
    expect((await offsets("readers")).json().offsets).toEqual([
      { topic: t, partition: 0, offset: 0, lag: 10 },
      { topic: t, partition: 1, offset: 3, lag: 1 },
    ]);
  });

  it("keeps groups apart and sorts by topic and partition", async () => {
    const a = await topic(1, { 0: 2 });
    const b = await topic(3, { 2: 5 });
    await commit("multi", { topic: b, partition: 2, offset: 1 });
    await commit("multi", { topic: a, partition: 0, offset: 2 });
    await commit("multi", { topic: b, partition: 0, offset: 0 });
    await commit("other", { topic: a, partition: 0, offset: 1 });
    expect((await offsets("multi")).json().offsets).toEqual([
      { topic: a, partition: 0, offset: 2, lag: 0 },
      { topic: b, partition: 0, offset: 0, lag: 0 },
      { topic: b, partition: 2, offset: 1, lag: 4 },
    ]);
    expect((await offsets("other")).json().offsets).toEqual([{ topic: a, partition: 0, offset: 1, lag: 1 }]);
  });

  it("answers an unknown group with no offsets", async () => {
    const res = await offsets("never-committed");
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ offsets: [] });
  });

  it("accepts the partition's end, and names of every allowed character", async () => {
    const t = await topic(1, { 0: 5 });
    const name = `A-z_0.9-${"x".repeat(241)}`; // 249 characters
    expect(name).toHaveLength(249);
    expect((await commit(name, { topic: t, partition: 0, offset: 5 }, "?timeoutMs=5000")).statusCode).toBe(
      200,
    );
    expect((await offsets(name)).json().offsets).toEqual([{ topic: t, partition: 0, offset: 5, lag: 0 }]);
  });

  it("answers 416 for an offset beyond the partition's end, committing nothing", async () => {
    const t = await topic(1, { 0: 5 });
    expectError(await commit("late", { topic: t, partition: 0, offset: 6 }), 416, "OFFSET_OUT_OF_RANGE", {
      startOffset: 0,
      endOffset: 5,
    });
    expectError(
      await commit("late", { topic: t, partition: 0, offset: Number.MAX_SAFE_INTEGER }),
      416,
      "OFFSET_OUT_OF_RANGE",
      { startOffset: 0, endOffset: 5 },
    );
    expect((await offsets("late")).json()).toEqual({ offsets: [] });
  });

  it("answers 404 for an unknown topic or partition", async () => {
    const t = await topic(2);
    expectError(await commit("g", { topic: "nope", partition: 0, offset: 0 }), 404, "TOPIC_NOT_FOUND");
    expectError(await commit("g", { topic: t, partition: 2, offset: 0 }), 404, "PARTITION_NOT_FOUND", {
      partitions: 2,
    });
  });

  it("forgets a deleted topic", async () => {
    const t = await topic(1, { 0: 3 });
    await commit("forgetful", { topic: t, partition: 0, offset: 1 });
    expect((await offsets("forgetful")).json().offsets).toHaveLength(1);
    expect((await app.inject({ method: "DELETE", url: `/v1/topics/${t}` })).statusCode).toBe(204);
    expect((await offsets("forgetful")).json()).toEqual({ offsets: [] });
  });
});

describe("group offsets: 400 INVALID_REQUEST", () => {
  let t: string;
  beforeAll(async () => {
    t = await topic(1, { 0: 3 });
  });

  it("rejects invalid group names", async () => {
    for (const g of ["bad%20name", "a%2Fb", "caf%C3%A9", "x".repeat(250), "a*b", "%00"]) {
      expectError(await commit(g, { topic: t, partition: 0, offset: 0 }), 400, "INVALID_REQUEST");
      expectError(await offsets(g), 400, "INVALID_REQUEST");
    }
  });

  it("rejects malformed bodies", async () => {
    for (const body of [
      {},
      { topic: t, partition: 0 },
      { topic: t, offset: 0 },
      { partition: 0, offset: 0 },
      { topic: t, partition: 0, offset: -1 },
      { topic: t, partition: -1, offset: 0 },
      { topic: t, partition: 0, offset: 1.5 },
      { topic: t, partition: "0", offset: 0 },
      { topic: t, partition: 0, offset: "1" },
      { topic: t, partition: 0, offset: null },
      { topic: t, partition: 0, offset: 1e300 },
      { topic: 5, partition: 0, offset: 0 },
      { topic: "bad name", partition: 0, offset: 0 },
      { topic: t, partition: 0, offset: 0, extra: 1 },
    ]) {
      expectError(await commit("g", body), 400, "INVALID_REQUEST");
    }
    for (const raw of ["{bad", "", "[]", "null"]) {
      const res = await app.inject({
        method: "POST",
        url: "/v1/groups/g/offsets",
        payload: raw,
        headers: { "content-type": "application/json" },
      });
      expectError(res, 400, "INVALID_REQUEST");
    }
    for (const q of ["?timeoutMs=0", "?timeoutMs=x", "?timeoutMs=1&timeoutMs=2"]) {
      expectError(await commit("g", { topic: t, partition: 0, offset: 0 }, q), 400, "INVALID_REQUEST");
    }
    expect((await offsets("g")).json()).toEqual({ offsets: [] });
  });

  it("answers 405 for a wrong method", async () => {
    const res = await app.inject({ method: "DELETE", url: "/v1/groups/g/offsets" });
    expect(res.statusCode).toBe(405);
    expect(res.json().error).toMatchObject({ code: "METHOD_NOT_ALLOWED", retriable: false });
  });
});
