import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNode, type TestNode } from "./fixture.ts";

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  await node?.stop();
});

describe("topics on a real single node", () => {
  it("creates, lists, describes and deletes a topic", async () => {
    const app = node.server.app;
    const created = await app.inject({
      method: "POST",
      url: "/v1/topics",
      payload: { name: "orders", partitions: 2 },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toEqual({
      name: "orders",
      partitions: [
        { partition: 0, startOffset: 0, endOffset: 0 },
        { partition: 1, startOffset: 0, endOffset: 0 },
      ],
      retentionMs: null,
      retentionBytes: null,
    });
    const again = await app.inject({ method: "POST", url: "/v1/topics", payload: { name: "orders" } });
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatchObject({ code: "TOPIC_EXISTS", retriable: false });
    expect((await app.inject({ method: "GET", url: "/v1/topics" })).json().topics).toHaveLength(1);
    expect((await app.inject({ method: "GET", url: "/v1/topics/orders" })).statusCode).toBe(200);
    expect((await app.inject({ method: "DELETE", url: "/v1/topics/orders" })).statusCode).toBe(204);
    const gone = await app.inject({ method: "GET", url: "/v1/topics/orders" });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe("TOPIC_NOT_FOUND");
  });
  it("answers unknown routes and wrong methods in the error shape", async () => {
    const app = node.server.app;
    const nf = await app.inject({ method: "GET", url: "/v1/nope" });
    expect(nf.statusCode).toBe(404);
    expect(nf.json().error.code).toBe("NOT_FOUND");
    const ma = await app.inject({ method: "PUT", url: "/v1/topics" });
    expect(ma.statusCode).toBe(405);
    expect(ma.json().error.code).toBe("METHOD_NOT_ALLOWED");
  });
});
