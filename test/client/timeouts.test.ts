// The transport's timeouts against scripted fake servers: one attempt is a
// fraction of the retry budget, so a server that accepts requests and never
// answers (a stopped node, a dead keep-alive connection) costs one attempt and
// the request fails over to another server; retry budgets are clamped below
// the server's 10-minute idempotency window.

import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RETRY_TIMEOUT_MS,
  MAX_RETRY_TIMEOUT_MS,
  RaftbusClient,
  Transport,
} from "../../src/client/index.ts";
import { DEFAULT_TIMEOUT_MS as SERVER_PRODUCE_TIMEOUT_MS } from "../../src/http/routes/params.ts";

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(handler: http.RequestListener): Promise<{ url: string; hits: () => number }> {
  let n = 0;
  const srv = http.createServer((req, res) => {
    n++;
    handler(req, res);
  });
  servers.push(srv);
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, hits: () => n };
}

/** Accepts every request and never answers. */
const hung = () => listen(() => {});

/** Answers a produce with offsets counting up. */
function appender(): http.RequestListener {
  let end = 0;
  return (req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      const n = (JSON.parse(body) as { records: unknown[] }).records.length;
      const records = Array.from({ length: n }, (_, i) => ({ partition: 0, offset: end + i, timestamp: 1 }));
      end += n;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ records }));
    });
  };
}

describe("timeouts", () => {
  it("defaults: an attempt outlasts the server's commit timeout and is well under the retry budget", () => {
    const t = new Transport({ servers: ["127.0.0.1:1"] });
    expect(t.requestTimeoutMs).toBe(DEFAULT_REQUEST_TIMEOUT_MS);
    expect(t.retryTimeoutMs).toBe(DEFAULT_RETRY_TIMEOUT_MS);
    expect(t.requestTimeoutMs).toBeGreaterThan(SERVER_PRODUCE_TIMEOUT_MS);
    // Room for a hung server's attempt and then at least two more on other servers.
    expect(t.requestTimeoutMs * 3).toBeLessThanOrEqual(t.retryTimeoutMs);
    // The default attempt timeout follows a shorter budget given alone, and an explicit one wins.
    expect(new Transport({ servers: ["a:1"], retryTimeoutMs: 8000 }).requestTimeoutMs).toBe(2000);
    expect(
      new Transport({ servers: ["a:1"], retryTimeoutMs: 8000, requestTimeoutMs: 7000 }).requestTimeoutMs,
    ).toBe(7000);
  });

  it("a server that accepts and never answers costs one attempt: the send goes through the next server", async () => {
    const stuck = await hung();
    const good = await listen(appender());
    const notes: string[] = [];
    // The same proportion as the defaults (attempt = budget / 4), scaled down to keep the test fast.
    const client = new RaftbusClient({
      servers: [stuck.url, good.url],
      discover: false,
      retryTimeoutMs: 4000,
      onRetry: (n) => notes.push(n),
    });
    expect(client.transport.requestTimeoutMs).toBe(1000);
    const t0 = Date.now();
    const m = await client.producer().send("t", { value: 1 });
    expect(m.offset).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect([stuck.hits(), good.hits()]).toEqual([1, 1]);
    expect(notes).toEqual([`${stuck.url}: timed out; trying ${good.url}`]);
  });

  it("with the default client options, a producer's shorter deliveryTimeoutMs gets attempts in proportion", async () => {
    const stuck = await hung();
    const good = await listen(appender());
    const client = new RaftbusClient({ servers: [stuck.url, good.url], discover: false });
    const t0 = Date.now();
    const m = await client.producer({ deliveryTimeoutMs: 4000 }).send("t", { value: 1 });
    expect(m.offset).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect([stuck.hits(), good.hits()]).toEqual([1, 1]);
  });

  it("retry budgets are clamped below the server's 10-minute idempotency window", () => {
    expect(MAX_RETRY_TIMEOUT_MS).toBeLessThan(10 * 60_000);
    const client = new RaftbusClient({ servers: ["a:1"], retryTimeoutMs: 3_600_000 });
    expect(client.transport.retryTimeoutMs).toBe(MAX_RETRY_TIMEOUT_MS);
    expect(client.producer({ deliveryTimeoutMs: 3_600_000 }).deliveryTimeoutMs).toBe(MAX_RETRY_TIMEOUT_MS);
    expect(client.producer({ deliveryTimeoutMs: 5000 }).deliveryTimeoutMs).toBe(5000);
    expect(client.producer().deliveryTimeoutMs).toBe(MAX_RETRY_TIMEOUT_MS);
  });
});
