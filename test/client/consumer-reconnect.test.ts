// The consumer's reconnects against scripted fake servers (HTTP and ws): nodes
// that accept the upgrade and close at once make it back off and fail after
// reconnectTimeoutMs instead of spinning; a socket that delivers records ends
// a run of failures; a topic deleted while it reconnects (404 before the
// upgrade) ends it with TopicDeletedError.

import { once } from "node:events";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket as WsSocket } from "ws";
import {
  type ConsumedRecord,
  type Consumer,
  RaftbusClient,
  TopicDeletedError,
  UnavailableError,
} from "../../src/client/index.ts";
import { NodeWebSocket } from "./helpers.ts";

interface Fake {
  url: string;
  /** Upgrades accepted so far. */
  accepted: number;
  /** Whether the topic is gone: GETs and upgrades answer 404 TOPIC_NOT_FOUND. */
  deleted: boolean;
  sockets: Set<WsSocket>;
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

const notFound = JSON.stringify({
  error: { code: "TOPIC_NOT_FOUND", message: "no topic t", retriable: false },
});

/** A node serving topic "t" (1 partition); `onSocket` scripts each accepted subscription. */
async function fakeNode(onSocket: (ws: WsSocket, from: number, f: Fake) => void): Promise<Fake> {
  const f: Fake = { url: "", accepted: 0, deleted: false, sockets: new Set() };
  const srv = http.createServer((req, res) => {
    if (req.url === "/v1/topics/t" && !f.deleted) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          name: "t",
          partitions: [{ partition: 0, startOffset: 0, endOffset: 0 }],
          retentionMs: null,
          retentionBytes: null,
        }),
      );
    } else {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(notFound);
    }
  });
  const wss = new WebSocketServer({ noServer: true });
  srv.on("upgrade", (req, socket: Socket, head) => {
    if (f.deleted) {
      socket.end(
        `HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${notFound.length}\r\nconnection: close\r\n\r\n${notFound}`,
      );
      return;
    }
    const q = new URL(req.url ?? "", "http://x").searchParams;
    const from = q.get("from") === "earliest" ? 0 : Number(q.get("from"));
    wss.handleUpgrade(req, socket, head, (ws) => {
      f.accepted++;
      f.sockets.add(ws);
      ws.on("close", () => f.sockets.delete(ws));
      onSocket(ws, from, f);
    });
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  f.url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  closers.push(async () => {
    for (const ws of wss.clients) ws.terminate();
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  });
  return f;
}

/** The first outcome of iterating `c`, or "still running" after `ms`. */
async function outcome(c: Consumer, ms: number, got: ConsumedRecord[] = []): Promise<unknown> {
  const loop = (async () => {
    try {
      for await (const r of c) got.push(r);
      return "done";
    } catch (e) {
      return e;
    }
  })();
  const timer = new Promise((r) => setTimeout(() => r("still running"), ms));
  return Promise.race([loop, timer]);
}

const record = (offset: number) => ({ offset, timestamp: 1, key: null, value: offset, headers: {} });

describe("consumer reconnects", () => {
  it("backs off from nodes that accept the upgrade and close at once, then fails with UnavailableError", async () => {
    const a = await fakeNode((ws) => ws.close(1011, "internal error"));
    const b = await fakeNode((ws) => ws.close(1001, "going away"));
    const notes: string[] = [];
    const client = new RaftbusClient({ servers: [a.url, b.url], discover: false, WebSocket: NodeWebSocket });
    const c = client.subscribe("t", {
      from: "earliest",
      reconnectTimeoutMs: 1500,
      onEvent: (n) => notes.push(n),
    });
    const t0 = Date.now();
    const e = await outcome(c, 8000);
    await c.close();
    expect(e).toBeInstanceOf(UnavailableError);
    expect((e as Error).message).toMatch(/partition 0: no server took the subscription for 2 s/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    // Backoff: a handful of sockets, not thousands.
    expect(a.accepted + b.accepted).toBeGreaterThanOrEqual(3);
    expect(a.accepted + b.accepted).toBeLessThan(20);
    expect(notes.some((n) => /closed \(10(11|01) .*\) right after opening/.test(n))).toBe(true);
  });

  it("a socket that delivers records ends the run of failures: records keep coming past reconnectTimeoutMs", async () => {
    // Each socket sends the next record and closes.
    const a = await fakeNode((ws, from) => {
      ws.send(JSON.stringify({ type: "records", partition: 0, records: [record(from)] }));
      ws.close(1001, "going away");
    });
    const client = new RaftbusClient({ servers: [a.url], discover: false, WebSocket: NodeWebSocket });
    const c = client.subscribe("t", { from: "earliest", reconnectTimeoutMs: 500 });
    const got: ConsumedRecord[] = [];
    const e = await outcome(c, 1500, got);
    await c.close();
    expect(e).toBe("still running");
    expect(got.length).toBeGreaterThan(3);
    expect(got.map((r) => r.offset)).toEqual([...got.keys()]);
  });

  it("a topic deleted while the consumer reconnects (404 before the upgrade) ends it with TopicDeletedError", async () => {
    const a = await fakeNode(() => {});
    const client = new RaftbusClient({ servers: [a.url], discover: false, WebSocket: NodeWebSocket });
    const c = client.subscribe("t", { from: "earliest", reconnectTimeoutMs: 20_000 });
    await c.ready();
    a.deleted = true;
    for (const ws of a.sockets) ws.close(1001, "going away");
    const t0 = Date.now();
    const e = await outcome(c, 8000);
    expect(e).toBeInstanceOf(TopicDeletedError);
    expect((e as TopicDeletedError).code).toBe("TOPIC_DELETED");
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it("a node that has not got the topic yet while another has it is skipped, not taken for a deletion", async () => {
    // The second socket on `a` (after the detour) gets a record.
    const a = await fakeNode((ws, from, f) => {
      if (f.accepted >= 2)
        ws.send(JSON.stringify({ type: "records", partition: 0, records: [record(from)] }));
    });
    const behind = await fakeNode(() => {});
    const client = new RaftbusClient({
      servers: [a.url, behind.url],
      discover: false,
      WebSocket: NodeWebSocket,
    });
    const c = client.subscribe("t", { from: "earliest", reconnectTimeoutMs: 20_000 });
    await c.ready();
    behind.deleted = true;
    // The consumer's socket is on `a`; it goes to `behind` (404), then back to `a`.
    for (const ws of a.sockets) ws.close(1001, "going away");
    const got: ConsumedRecord[] = [];
    const e = await outcome(c, 3000, got);
    await c.close();
    expect(e).toBe("still running");
    expect(got.map((r) => r.offset)).toEqual([0]);
  });
});
