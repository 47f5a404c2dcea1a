// GET /v1/topics/:topic/subscribe (API.md "Subscribe (WebSocket)") against a
// real single node on a real port, with real WebSockets.

import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { SUBSCRIBE_LIMITS, subscriberCounts, subscriptionStats } from "../../src/http/routes/subscribe.ts";
import { startTestNode, type TestNode } from "./fixture.ts";
import { createTopic, produce, refusedUpgrade, SubClient, subscribeUrl } from "./subscribe-client.ts";

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  await node?.stop();
});

/** The client's TCP socket: pausing it makes a reader that never reads. */
const tcp = (c: SubClient) => (c.ws as unknown as { _socket: Socket })._socket;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("records frames", () => {
  it("streams committed records from earliest, from an offset and from latest, each as fetch shows it", async () => {
    await createTopic(node, "basic");
    await produce(node, "basic", 5);
    const earliest = await SubClient.open(subscribeUrl(node, "basic", { partition: 0, from: "earliest" }));
    const fromOffset = await SubClient.open(subscribeUrl(node, "basic", { partition: 0, from: 3 }));
    const fromEnd = await SubClient.open(subscribeUrl(node, "basic", { partition: 0, from: 5 }));
    const latest = await SubClient.open(subscribeUrl(node, "basic", { partition: 0, from: "latest" }));
    const byDefault = await SubClient.open(subscribeUrl(node, "basic", { partition: 0 }));
    await earliest.waitFor(() => earliest.recordCount === 5, "5 records");
    await fromOffset.waitFor(() => fromOffset.recordCount === 2, "2 records");
    const r0 = earliest.records.get(0)![0]!;
    expect(r0).toEqual({
      offset: 0,
      timestamp: expect.any(Number),
      key: null,
      value: { i: 0, pad: "" },
      headers: {},
    });

    await node.server.broker.produce("basic", [
      { key: "k", value: new Uint8Array([0, 1, 2]), json: false, headers: { h: "v" } },
      { key: null, value: new TextEncoder().encode('{"i":6}'), json: true, headers: {} },
    ]);
    for (const c of [earliest, fromOffset, fromEnd, latest, byDefault]) {
      await c.waitFor(() => c.next.get(0) === 7, "records up to offset 6");
      expect(c.violations).toEqual([]);
    }
    expect(earliest.offsets(0)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(fromOffset.offsets(0)).toEqual([3, 4, 5, 6]);
    // `latest` (and the default without a group) is the end at the upgrade: only what came after.
    for (const c of [fromEnd, latest, byDefault]) expect(c.offsets(0)).toEqual([5, 6]);
    expect(latest.records.get(0)![0]).toEqual({
      offset: 5,
      timestamp: expect.any(Number),
      key: "k",
      valueBase64: "AAEC",
      headers: { h: "v" },
    });
    expect(latest.records.get(0)![1]).toMatchObject({ offset: 6, value: { i: 6 } });
    await Promise.all([earliest, fromOffset, fromEnd, latest, byDefault].map((c) => c.close()));
  });

  it("without partition streams every partition in its own order; a numeric from applies to each", async () => {
    await createTopic(node, "multi", 3);
    for (let p = 0; p < 3; p++) await produce(node, "multi", 4 + p, { partition: p });
    const all = await SubClient.open(subscribeUrl(node, "multi", { from: "earliest" }));
    const from2 = await SubClient.open(subscribeUrl(node, "multi", { from: 2 }));
    await all.waitFor(() => all.recordCount === 4 + 5 + 6, "every record");
    await from2.waitFor(() => from2.recordCount === 2 + 3 + 4, "records from 2");
    for (let p = 0; p < 3; p++) {
      expect(all.offsets(p)).toEqual([...Array(4 + p).keys()]);
      expect(from2.offsets(p)).toEqual([...Array(4 + p).keys()].slice(2));
    }
    await produce(node, "multi", 3, { partition: 1 });
    await all.waitFor(() => all.next.get(1) === 8, "live records of partition 1");
    expect(all.offsets(1)).toEqual([...Array(8).keys()]);
    expect(all.violations).toEqual([]);
    await Promise.all([all.close(), from2.close()]);
  });

  it("tails records live as they commit, in bounded frames, without gaps or repeats", async () => {
    await createTopic(node, "live", 2);
    const a = await SubClient.open(subscribeUrl(node, "live", { from: "latest" }), { keepRecords: false });
    const b = await SubClient.open(subscribeUrl(node, "live", { partition: 1 }), { keepRecords: false });
    // Produces in many small concurrent requests while the subscribers read.
    const total = 20_000;
    const writers = [0, 1, 2, 3].map(async (w) => {
      for (let i = 0; i < total / 4; i += 250)
        await produce(node, "live", 250, { batch: 250, first: w * 1e6 + i });
    });
    await Promise.all(writers);
    const ends = node.server.broker.getTopic("live").partitions.map((p) => p.endOffset);
    expect(ends[0]! + ends[1]!).toBe(total);
    await a.waitFor(() => a.recordCount === total, "every record", 30_000);
    await b.waitFor(() => b.recordCount === ends[1], "partition 1's records", 30_000);
    expect(a.violations).toEqual([]);
    expect(b.violations).toEqual([]);
    expect([a.first.get(0), a.first.get(1), b.first.get(1)]).toEqual([0, 0, 0]);
    expect(a.maxFrameRecords).toBeLessThanOrEqual(SUBSCRIBE_LIMITS.maxFrameRecords);
    await sleep(50);
    expect(a.recordCount).toBe(total); // and nothing twice after the end
    await Promise.all([a.close(), b.close()]);
  });

  it("counts open subscribers per topic", async () => {
    await createTopic(node, "counted");
    const broker = node.server.broker;
    const a = await SubClient.open(subscribeUrl(node, "counted"));
    const b = await SubClient.open(subscribeUrl(node, "counted", { partition: 0 }));
    expect(subscriberCounts(broker).get("counted")).toBe(2);
    await a.close();
    await until(() => subscriberCounts(broker).get("counted") === 1, "one subscriber left");
    await b.close();
    await until(() => !subscriberCounts(broker).has("counted"), "no subscribers left");
  });
});

describe("before the upgrade", () => {
  it("answers HTTP errors in the API's shape: 404, 400, 416", async () => {
    await createTopic(node, "checked", 2);
    await produce(node, "checked", 3, { partition: 0 });
    const cases: [Record<string, string | number>, number, string][] = [
      [{ partition: 2 }, 404, "PARTITION_NOT_FOUND"],
      [{ partition: "x" }, 400, "INVALID_REQUEST"],
      [{ partition: "-1" }, 400, "INVALID_REQUEST"],
      [{ partition: "0.5" }, 400, "INVALID_REQUEST"],
      [{ from: "oldest" }, 400, "INVALID_REQUEST"],
      [{ from: "-1" }, 400, "INVALID_REQUEST"],
      [{ from: "1e3" }, 400, "INVALID_REQUEST"],
      [{ from: "99999999999999999999" }, 400, "INVALID_REQUEST"],
      [{ group: "g".repeat(250) }, 400, "INVALID_REQUEST"],
      [{ group: "bad\u0001group" }, 400, "INVALID_REQUEST"],
      [{ group: "white space" }, 400, "INVALID_REQUEST"],
      [{ partition: 0, from: 4 }, 416, "OFFSET_OUT_OF_RANGE"],
      // Without partition a numeric from must be in range on every partition (partition 1 is empty).
      [{ from: 1 }, 416, "OFFSET_OUT_OF_RANGE"],
    ];
    for (const [query, status, code] of cases) {
      const r = await refusedUpgrade(subscribeUrl(node, "checked", query));
      expect({ query, status: r.status, code: r.body.error.code }).toEqual({ query, status, code });
      expect(r.body.error.retriable).toBe(false);
    }
    const range = await refusedUpgrade(subscribeUrl(node, "checked", { partition: 0, from: 4 }));
    expect(range.body.error).toMatchObject({ startOffset: 0, endOffset: 3 });
    const twice = await refusedUpgrade(`${subscribeUrl(node, "checked")}?partition=0&partition=1`);
    expect(twice.status).toBe(400);
    const missing = await refusedUpgrade(subscribeUrl(node, "no-such-topic"));
    expect([missing.status, missing.body.error.code]).toEqual([404, "TOPIC_NOT_FOUND"]);
    // A plain GET (no upgrade) is told to upgrade, in the same error shape.
    const plain = await fetch(`${node.url}/v1/topics/checked/subscribe`);
    expect(plain.status).toBe(426);
    expect(((await plain.json()) as { error: { code: string } }).error.code).toBe("UPGRADE_REQUIRED");
    const plainMissing = await fetch(`${node.url}/v1/topics/no-such-topic/subscribe`);
    expect(plainMissing.status).toBe(404);
  });

  it("with --auth-token, refuses a missing or wrong token with 401 and accepts the header or ?token=", async () => {
    const secured = await startTestNode({ authToken: "s3cret" });
    try {
      await createTopic(secured, "private");
      const url = subscribeUrl(secured, "private");
      for (const [u, headers] of [
        [url, {}],
        [url, { authorization: "Bearer wrong" }],
        [subscribeUrl(secured, "private", { token: "wrong" }), {}],
        // Checked before anything else: an unknown topic is still 401 without the token.
        [subscribeUrl(secured, "nope"), {}],
      ] as [string, Record<string, string>][]) {
        const r = await refusedUpgrade(u, headers);
        expect([r.status, r.body.error.code]).toEqual([401, "UNAUTHORIZED"]);
      }
      const viaHeader = await SubClient.open(url, { headers: { authorization: "Bearer s3cret" } });
      const viaQuery = await SubClient.open(subscribeUrl(secured, "private", { token: "s3cret" }));
      await produce(secured, "private", 2);
      await viaHeader.waitFor(() => viaHeader.recordCount === 2, "2 records");
      await viaQuery.waitFor(() => viaQuery.recordCount === 2, "2 records");
      await Promise.all([viaHeader.close(), viaQuery.close()]);
      // Refused upgrades leave no socket open on the server.
      const open = () =>
        new Promise<number>((resolve, reject) =>
          secured.server.app.server.getConnections((e, n) => (e ? reject(e) : resolve(n))),
        );
      const deadline = Date.now() + 5000;
      while ((await open()) > 0 && Date.now() < deadline) await sleep(20);
      expect(await open()).toBe(0);
    } finally {
      await secured.stop();
    }
  });
});

describe("client frames", () => {
  it("answers a malformed frame with INVALID_REQUEST and keeps the socket open", async () => {
    await createTopic(node, "frames");
    const c = await SubClient.open(subscribeUrl(node, "frames", { partition: 0 }));
    const bad: unknown[] = [
      "not json",
      "[1,2]",
      "null",
      "{}",
      { type: "subscribe" },
      { type: "commit", partition: 0, offset: 1 }, // no group on this subscription
    ];
    for (const f of bad) {
      c.send(f);
      const answer = await c.nextOther();
      expect(answer).toMatchObject({ type: "error", code: "INVALID_REQUEST", message: expect.any(String) });
    }
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.nextOther()).toMatchObject({ type: "error", code: "INVALID_REQUEST" });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    await produce(node, "frames", 3);
    await c.waitFor(() => c.recordCount === 3, "records after the errors");
    await c.close();
  });

  it("commits a group's offset over the socket; the group's offset is where the next subscription starts", async () => {
    await createTopic(node, "grouped", 2);
    await produce(node, "grouped", 10, { partition: 0 });
    await produce(node, "grouped", 4, { partition: 1 });
    const broker = node.server.broker;
    const c = await SubClient.open(subscribeUrl(node, "grouped", { group: "billing", from: "earliest" }));
    await c.waitFor(() => c.recordCount === 14, "every record");
    c.send({ type: "commit", partition: 0, offset: 7, id: "a" });
    expect(await c.nextOther()).toEqual({ type: "committed", partition: 0, offset: 7, id: "a" });
    c.send({ type: "commit", partition: 1, offset: 4 });
    expect(await c.nextOther()).toEqual({ type: "committed", partition: 1, offset: 4 });
    expect(broker.groupOffsets("billing")).toEqual([
      { topic: "grouped", partition: 0, offset: 7, lag: 3 },
      { topic: "grouped", partition: 1, offset: 4, lag: 0 },
    ]);
    // Errors from the broker come back as error frames; the socket stays open.
    c.send({ type: "commit", partition: 0, offset: 11 });
    expect(await c.nextOther()).toMatchObject({
      type: "error",
      code: "OFFSET_OUT_OF_RANGE",
      startOffset: 0,
      endOffset: 10,
      partition: 0,
      offset: 11,
    });
    c.send({ type: "commit", partition: 5, offset: 0 });
    expect(await c.nextOther()).toMatchObject({ type: "error", code: "PARTITION_NOT_FOUND" });
    c.send({ type: "commit", offset: 1 }); // two partitions: which one?
    expect(await c.nextOther()).toMatchObject({ type: "error", code: "INVALID_REQUEST" });
    c.send({ type: "commit", partition: 0, offset: -1 });
    expect(await c.nextOther()).toMatchObject({ type: "error", code: "INVALID_REQUEST" });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);

    // No `from`: the group's committed offsets; an explicit `from` wins; a group without one: latest.
    const resumed = await SubClient.open(subscribeUrl(node, "grouped", { group: "billing" }));
    const single = await SubClient.open(subscribeUrl(node, "grouped", { group: "billing", partition: 0 }));
    const explicit = await SubClient.open(subscribeUrl(node, "grouped", { group: "billing", from: 1 }));
    const fresh = await SubClient.open(subscribeUrl(node, "grouped", { group: "new" }));
    await produce(node, "grouped", 1, { partition: 1 });
    await resumed.waitFor(() => resumed.recordCount === 3 + 1, "the rest");
    expect(resumed.offsets(0)).toEqual([7, 8, 9]);
    expect(resumed.offsets(1)).toEqual([4]);
    await single.waitFor(() => single.recordCount === 3, "the rest of partition 0");
    expect(single.offsets(0)).toEqual([7, 8, 9]);
    // With one partition, `partition` may be left out of a commit.
    single.send({ type: "commit", offset: 9 });
    expect(await single.nextOther()).toEqual({ type: "committed", partition: 0, offset: 9 });
    expect(broker.groupOffset("billing", "grouped", 0)).toBe(9);
    await explicit.waitFor(() => explicit.recordCount === 9 + 4, "records from 1");
    expect(explicit.first.get(0)).toBe(1);
    await fresh.waitFor(() => fresh.recordCount === 1, "the one new record");
    expect(fresh.offsets(1)).toEqual([4]);
    // The commit also shows in the HTTP API.
    const http = await fetch(`${node.url}/v1/groups/billing/offsets`);
    expect(http.status).toBe(200);
    expect(((await http.json()) as { offsets: unknown[] }).offsets).toContainEqual({
      topic: "grouped",
      partition: 0,
      offset: 9,
      lag: 1,
    });
    await Promise.all([c, resumed, single, explicit, fresh].map((s) => s.close()));
  });
});

describe("close codes", () => {
  it("closes with 4404 when the topic is deleted", async () => {
    await createTopic(node, "doomed", 2);
    const a = await SubClient.open(subscribeUrl(node, "doomed"));
    const b = await SubClient.open(subscribeUrl(node, "doomed", { partition: 1, from: "earliest" }));
    await node.server.broker.deleteTopic("doomed");
    expect(await a.closed).toBe(4404);
    expect(await b.closed).toBe(4404);
    expect(subscriberCounts(node.server.broker).has("doomed")).toBe(false);
  });

  it("closes with 4416 a reader that retention trims past; a reader that has been sent everything stays", async () => {
    // 4000 records of ~10 KB (40 MB), 1 MB kept: the leader's retention check trims the rest.
    await createTopic(node, "trimmed", 1, { retentionBytes: 1024 * 1024 });
    await node.server.broker.commitOffset("laggard", "trimmed", 0, 0);
    const behind = await SubClient.open(subscribeUrl(node, "trimmed", { from: "earliest" }), {
      keepRecords: false,
    });
    tcp(behind).pause(); // a reader that does not read: the server's cursor stops short of the end
    await produce(node, "trimmed", 4000, { padBytes: 10_000, batch: 200 });
    const stats = subscriptionStats(node.server.broker).find((s) => s.topic === "trimmed");
    const end = node.server.broker.getTopic("trimmed").partitions[0]!.endOffset;
    const upToDate = await SubClient.open(subscribeUrl(node, "trimmed", { from: "latest" }));
    // (Unless retention has already trimmed past it and closed it.)
    if (stats) expect(stats.cursors.get(0)!).toBeLessThan(end / 2);
    await until(
      () => node.server.broker.getTopic("trimmed").partitions[0]!.startOffset > end / 2,
      "retention to trim",
    );
    tcp(behind).resume();
    expect(await behind.closed).toBe(4416);
    expect(behind.violations).toEqual([]);
    expect(behind.first.get(0)).toBe(0);
    expect(behind.recordCount).toBeLessThan(end);
    expect(upToDate.ws.readyState).toBe(WebSocket.OPEN);

    // After the trim: an explicit offset below the start is 416; a group offset below it starts at the start.
    const start = node.server.broker.getTopic("trimmed").partitions[0]!.startOffset;
    const r = await refusedUpgrade(subscribeUrl(node, "trimmed", { from: 0 }));
    expect([r.status, r.body.error.startOffset]).toEqual([416, start]);
    const resumed = await SubClient.open(subscribeUrl(node, "trimmed", { group: "laggard" }));
    await resumed.waitFor(() => resumed.recordCount > 0, "records");
    expect(resumed.first.get(0)).toBeGreaterThanOrEqual(start);
    expect(resumed.first.get(0)).toBeLessThan(end);
    await Promise.all([upToDate.close(), resumed.close()]);
  });

  it("closes every subscription with 1001 when the node stops; a reader that does not read is cut after a grace", async () => {
    const n = await startTestNode();
    try {
      await createTopic(n, "going", 1);
      const a = await SubClient.open(subscribeUrl(n, "going"));
      const b = await SubClient.open(subscribeUrl(n, "going", { from: "earliest" }));
      const stuck = await SubClient.open(subscribeUrl(n, "going", { from: "earliest" }), {
        keepRecords: false,
      });
      tcp(stuck).pause();
      await produce(n, "going", 1000, { padBytes: 10_000, batch: 100 });
      await b.waitFor(() => b.recordCount === 1000, "every record");
      const t0 = Date.now();
      await n.stop();
      const stopMs = Date.now() - t0;
      expect(await a.closed).toBe(1001);
      expect(await b.closed).toBe(1001);
      tcp(stuck).resume();
      // Cut (1006) once the grace is over, unless its kernel buffers took the close frame too.
      expect([1001, 1006]).toContain(await stuck.closed);
      expect(stuck.violations).toEqual([]);
      expect(stopMs).toBeLessThan(SUBSCRIBE_LIMITS.shutdownGraceMs + 3000);
    } finally {
      await n.stop();
    }
  });
});

describe("a slow reader", () => {
  // process.memoryUsage() after a full GC: heapUsed + external (Buffers live in external).
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const heapPlusExternal = () => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  // Anonymous resident memory (Linux): RSS without the pages of LMDB's memory-mapped file.
  const rss = () => {
    try {
      const kb = /RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
      if (kb) return Number(kb) * 1024;
    } catch {}
    return process.memoryUsage().rss;
  };
  const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

  it("is paused, never dropped: while 100k records commit and while it is 100k records behind, the server holds only a bounded send buffer; then it gets every record", async () => {
    const broker = node.server.broker;
    const count = 100_000;
    const padBytes = 1500;
    const recordJson = JSON.stringify({
      offset: count,
      timestamp: Date.now(),
      key: null,
      value: { i: count, pad: "x".repeat(padBytes) },
      headers: {},
    }).length;
    const totalJson = count * recordJson; // what a server that reads ahead would hold for one reader
    expect(totalJson).toBeGreaterThan(140 * 2 ** 20);
    const bufferBound = SUBSCRIBE_LIMITS.highWaterBytes + SUBSCRIBE_LIMITS.maxFrameBytes + 64 * 1024;
    await createTopic(node, "firehose");
    // Each reader has its own group, to find its subscription in subscriptionStats().
    const stats = (group: string) => subscriptionStats(broker).find((x) => x.group === group)!;

    // 1. Live: a reader that never reads while 100k records (about 150 MiB of JSON) commit.
    const live = await SubClient.open(subscribeUrl(node, "firehose", { from: "latest", group: "live" }), {
      keepRecords: false,
    });
    tcp(live).pause();
    const live0 = { mem: heapPlusExternal(), rss: rss() };
    let peakBuffered = 0;
    for (let done = 0; done < count; done += 10_000) {
      await produce(node, "firehose", 10_000, { padBytes, batch: 2000, first: done });
      peakBuffered = Math.max(peakBuffered, stats("live").bufferedBytes, stats("live").peakBufferedBytes);
    }
    const liveStats = stats("live");
    const liveGrowth = heapPlusExternal() - live0.mem;
    const liveRss = rss() - live0.rss;
    expect(liveStats.waitingForDrain).toBe(true);
    expect(liveStats.cursors.get(0)!).toBeLessThan(count / 4); // stopped reading ahead
    expect(peakBuffered).toBeLessThan(bufferBound);

    // 2. Backlog: a new reader from the earliest of those 100k stored records that never reads.
    //    (Measured separately: producing itself grows the node's memory, see the report.)
    const backlog0 = { mem: heapPlusExternal(), rss: rss() };
    const behind = await SubClient.open(
      subscribeUrl(node, "firehose", { from: "earliest", group: "backlog" }),
      {
        keepRecords: false,
      },
    );
    tcp(behind).pause();
    const behindStats = () => stats("backlog");
    await until(
      () => behindStats()?.waitingForDrain === true,
      "the backlog reader's pump to wait for the socket",
    );
    await sleep(300);
    const backlogGrowth = heapPlusExternal() - backlog0.mem;
    const backlogRss = rss() - backlog0.rss;
    expect(behindStats().cursors.get(0)!).toBeLessThan(count / 4);
    expect(behindStats().peakBufferedBytes).toBeLessThan(bufferBound);
    expect(backlogGrowth).toBeLessThan(32 * 2 ** 20);

    console.log(
      `slow readers: ${count} records, ${MiB(totalJson)} of JSON; send buffer bound ${MiB(bufferBound)}\n` +
        `  live (paused while producing): cursor ${liveStats.cursors.get(0)}, peak send buffer ${MiB(peakBuffered)}, ` +
        `heap+external growth ${MiB(liveGrowth)}, anonymous rss growth ${MiB(liveRss)}\n` +
        `  backlog (paused, 100k behind): cursor ${behindStats().cursors.get(0)}, peak send buffer ${MiB(behindStats().peakBufferedBytes)}, ` +
        `heap+external growth ${MiB(backlogGrowth)}, anonymous rss growth ${MiB(backlogRss)}`,
    );

    // Both read again: every record, in order, no gap, no repeat, still open.
    tcp(live).resume();
    tcp(behind).resume();
    await live.waitFor(() => live.recordCount === count, "every record (live)", 40_000);
    await behind.waitFor(() => behind.recordCount === count, "every record (backlog)", 40_000);
    for (const c of [live, behind]) {
      expect(c.violations).toEqual([]);
      expect(c.first.get(0)).toBe(0);
      expect(c.ws.readyState).toBe(WebSocket.OPEN);
    }
    await Promise.all([live.close(), behind.close()]);
  });
});
