// The consumer against a real 3-node cluster: failover of the node it reads
// from while records keep arriving (every committed record exactly once, in
// order per partition), group resume, and flow control (pause stops the server).

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ConsumedRecord } from "../../src/client/index.ts";
import { ProcCluster } from "../node/proc-cluster.ts";
import { clientOn, nodeOf, readPartition, sleep, waitFor } from "./helpers.ts";

let cluster: ProcCluster;

beforeAll(async () => {
  cluster = await ProcCluster.create({ size: 3 });
  cluster.startAll();
  await cluster.waitForLeader();
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

/** Produces `n` records with values `${tag}-${i}` (tag-0 .. tag-(n-1)). */
async function fill(topic: string, tag: string, n: number, partitions = 1): Promise<void> {
  const client = clientOn(cluster, [1, 2, 3]);
  const producer = client.producer();
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      producer.send(topic, { value: `${tag}-${i}`, partition: i % partitions }),
    ),
  );
  await producer.close();
}

describe("consumer on a 3-node cluster", () => {
  it("delivers every committed record once, in order per partition, while its node is killed and records keep arriving", async () => {
    const topic = "c-failover";
    const leader = await cluster.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const admin = clientOn(cluster, [1, 2, 3]);
    await admin.createTopic({ name: topic, partitions: 2 });

    const notes: string[] = [];
    const reader = clientOn(cluster, [follower, ...[1, 2, 3].filter((id) => id !== follower)]);
    const consumer = reader.subscribe(topic, {
      from: "earliest",
      window: 200,
      onEvent: (n) => notes.push(n),
    });
    await consumer.ready();
    const got = new Map<number, ConsumedRecord[]>([
      [0, []],
      [1, []],
    ]);
    let count = 0;
    const reading = (async () => {
      for await (const r of consumer) {
        got.get(r.partition)!.push(r);
        count++;
      }
    })();

    // A producer keeps appending through the faults.
    const writer = clientOn(cluster, [1, 2, 3], { retryTimeoutMs: 60_000 });
    const producer = writer.producer({ maxBatchRecords: 200 });
    let produced = 0;
    const producing = (async () => {
      for (let wave = 0; wave < 40; wave++) {
        const batch = Array.from({ length: 250 }, (_, i) => ({ value: wave * 250 + i }));
        await Promise.all(batch.map((r) => producer.send(topic, r).catch(() => {})));
        produced += batch.length;
        await sleep(50);
      }
      await producer.close();
    })();

    const killed: number[] = [];
    for (const at of [2000, 6000]) {
      await waitFor(`${at} records read`, () => count >= at, 30_000);
      const node = nodeOf(cluster, [...consumer.connections().values()][0] ?? reader.server);
      await cluster.kill(node);
      killed.push(node);
      await sleep(800);
      cluster.start(node);
    }
    await producing;
    expect(produced).toBe(10_000);

    // Everything committed, as the leader has it, must arrive exactly once and in order.
    const now = await cluster.waitForLeader();
    const logs = await Promise.all([0, 1].map((p) => readPartition(cluster, now, topic, p)));
    const total = logs[0]!.length + logs[1]!.length;
    await waitFor("every committed record", () => count >= total, 30_000);
    await sleep(200); // anything extra would show up now
    await consumer.close();
    await reading;
    for (const p of [0, 1]) {
      const want = logs[p]!.map((r) => [r.offset, r.value]);
      expect(got.get(p)!.map((r) => [r.offset, r.value])).toEqual(want);
    }
    expect(count).toBe(total);
    expect(killed).toHaveLength(2);
    // It did fail over (and said so).
    expect(
      notes.some((n) => /resum/.test(n)),
      notes.join("\n"),
    ).toBe(true);
  }, 90_000);

  it("resumes a group after a commit: consume half, commit, close, reopen, continue at the next record", async () => {
    const topic = "c-group";
    const client = clientOn(cluster, [1, 2, 3]);
    await client.createTopic({ name: topic });
    await fill(topic, "g", 1000);

    const first = client.subscribe(topic, { group: "billing", from: "earliest", autoCommit: false });
    const seen: ConsumedRecord[] = [];
    for await (const r of first) {
      seen.push(r);
      if (seen.length === 500) break;
    }
    // break closed it; commit() still stores what was handed out.
    await first.commit();
    expect(first.positions().get(0)).toBe(500);

    // No `from`: the group's committed offset.
    const second = client.subscribe(topic, { group: "billing", autoCommit: false });
    const rest: ConsumedRecord[] = [];
    for await (const r of second) {
      rest.push(r);
      if (rest.length === 500) break;
    }
    expect(rest[0]?.offset).toBe(500);
    expect([...seen, ...rest].map((r) => r.value)).toEqual(Array.from({ length: 1000 }, (_, i) => `g-${i}`));
    const offsets = await client.groupOffsets("billing");
    expect(offsets.find((o) => o.topic === topic)).toMatchObject({ partition: 0, offset: 500, lag: 500 });
  });

  it("auto-commits processed records on close; the record in hand when the loop broke comes again", async () => {
    const topic = "c-auto";
    const client = clientOn(cluster, [1, 2, 3]);
    await client.createTopic({ name: topic });
    await fill(topic, "a", 100);
    const c1 = client.subscribe(topic, { group: "auto", from: "earliest", autoCommitIntervalMs: 100 });
    let last = -1;
    for await (const r of c1) {
      last = r.offset;
      if (r.offset === 29) break;
    }
    expect(last).toBe(29);
    const c2 = client.subscribe(topic, { group: "auto" });
    const next = await c2.next();
    await c2.close();
    expect(next.value?.offset).toBe(29);
  });

  it("pause stops the server from sending (credit), buffering at most the window; resume delivers the rest in order", async () => {
    const topic = "c-pause";
    const client = clientOn(cluster, [1, 2, 3]);
    await client.createTopic({ name: topic });
    await fill(topic, "p", 3000);
    const c = client.subscribe(topic, { from: "earliest", window: 100 });
    const got: number[] = [];
    for (let i = 0; i < 10; i++) got.push((await c.next()).value!.offset);
    c.pause();
    await sleep(500);
    // Whatever was granted before the pause, no more: at most a window per partition.
    expect(c.bufferedRecords).toBeLessThanOrEqual(100);
    const before = c.bufferedRecords;
    while (c.bufferedRecords > 0) got.push((await c.next()).value!.offset);
    // Drained, still paused: nothing comes.
    const pending = c.next();
    const raced = await Promise.race([pending.then(() => "record"), sleep(500).then(() => "nothing")]);
    expect(raced).toBe("nothing");
    expect(got.length).toBe(10 + before);
    c.resume();
    got.push((await pending).value!.offset);
    while (got.length < 3000) got.push((await c.next()).value!.offset);
    await c.close();
    expect(got).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });

  it("the server honours ?credit= and credit frames, and answers ping with pong", async () => {
    const topic = "c-credit";
    const client = clientOn(cluster, [1, 2, 3]);
    await client.createTopic({ name: topic });
    await fill(topic, "x", 50);
    const ws = new WebSocket(
      cluster.url(1, `/v1/topics/${topic}/subscribe?from=earliest&credit=3`).replace("http", "ws"),
    );
    const frames: { type: string; records?: { offset: number }[] }[] = [];
    ws.on("message", (d) => frames.push(JSON.parse(String(d))));
    await new Promise((r) => ws.once("open", r));
    const offsets = () =>
      frames.flatMap((f) => (f.type === "records" ? f.records!.map((r) => r.offset) : []));
    await sleep(300);
    expect(offsets()).toEqual([0, 1, 2]);
    ws.send(JSON.stringify({ type: "credit", records: 4 }));
    await waitFor("4 more", () => offsets().length >= 7);
    await sleep(200);
    expect(offsets()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    ws.send(JSON.stringify({ type: "ping" }));
    await waitFor("pong", () => frames.some((f) => f.type === "pong"));
    // A credit frame on a subscription without ?credit= is an error frame; the socket stays open.
    const plain = new WebSocket(
      cluster.url(1, `/v1/topics/${topic}/subscribe?from=50`).replace("http", "ws"),
    );
    const errs: { type: string; code?: string }[] = [];
    plain.on("message", (d) => errs.push(JSON.parse(String(d))));
    await new Promise((r) => plain.once("open", r));
    plain.send(JSON.stringify({ type: "credit", records: 1 }));
    await waitFor("error frame", () => errs.length > 0);
    expect(errs[0]).toMatchObject({ type: "error", code: "INVALID_REQUEST" });
    ws.close();
    plain.close();
  });
});
