// The producer against a real 3-node cluster while nodes die: 50k records,
// the leader killed and restarted, then the node the client talks to killed
// and restarted. Every send either resolves with an offset at which its record
// really is, or rejects; no record is in the log twice.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RecordMetadata } from "../../src/client/index.ts";
import { ProcCluster } from "../node/proc-cluster.ts";
import { clientOn, nodeOf, readPartition, sleep } from "./helpers.ts";

let cluster: ProcCluster;

beforeAll(async () => {
  cluster = await ProcCluster.create({ size: 3 });
  cluster.startAll();
  await cluster.waitForLeader();
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe("producer on a 3-node cluster with failures", () => {
  it("sends 50k records while the leader and then its own node are killed: each acked record is where it says, none twice", async () => {
    const leader = await cluster.waitForLeader();
    const followers = [1, 2, 3].filter((id) => id !== leader);
    // Start on a follower, so that killing the leader and killing "our" node are different faults.
    const retries: string[] = [];
    const client = clientOn(cluster, [...followers, leader], {
      retryTimeoutMs: 60_000,
      onRetry: (note) => retries.push(note),
    });
    const topic = "p50k";
    await client.createTopic({ name: topic, partitions: 3 });
    const producer = client.producer({
      maxBatchRecords: 500,
      maxInFlightRequests: 4,
      maxBufferedBytes: 256 * 1024,
    });

    const N = 50_000;
    const ok = new Map<number, RecordMetadata>();
    const failed = new Map<number, unknown>();
    const sends: Promise<void>[] = [];
    let issued = 0;
    const sender = (async () => {
      for (let i = 0; i < N; i++) {
        sends.push(
          producer.send(topic, { key: `k${i % 101}`, value: i }).then(
            (m) => void ok.set(i, m),
            (e: unknown) => void failed.set(i, e),
          ),
        );
        issued++;
        // Spread the sends over a few seconds so that the faults land in the middle of them.
        if (i % 1000 === 999) await sleep(60);
      }
    })();

    const faults: string[] = [];
    const chaos = (async () => {
      while (issued < 10_000) await sleep(10);
      const l = await cluster.waitForLeader();
      await cluster.kill(l);
      faults.push(`killed leader ${l} at ${issued} sends, ${ok.size} acked`);
      await sleep(1500);
      cluster.start(l);
      while (issued < 30_000) await sleep(10);
      const mine = nodeOf(cluster, client.server);
      await cluster.kill(mine);
      faults.push(`killed the client's node ${mine} at ${issued} sends, ${ok.size} acked`);
      await sleep(1000);
      cluster.start(mine);
    })();

    await Promise.all([sender, chaos]);
    await Promise.all(sends);
    await producer.close();
    expect(faults).toHaveLength(2);
    // The faults hit requests in flight: the producer had to retry (and fail over).
    expect(retries.length, faults.join("; ")).toBeGreaterThan(0);
    console.log(`${faults.join("; ")}; ${retries.length} retries, e.g. ${retries.slice(0, 3).join(" | ")}`);
    expect(ok.size + failed.size).toBe(N);

    // Read the whole log from the leader once every node is back.
    const now = await cluster.waitForLeader();
    const log = new Map<number, Map<number, unknown>>();
    const seen = new Map<unknown, number>();
    let total = 0;
    for (let p = 0; p < 3; p++) {
      const records = await readPartition(cluster, now, topic, p);
      expect(records.map((r) => r.offset)).toEqual(records.map((_, i) => i));
      log.set(p, new Map(records.map((r) => [r.offset, r.value])));
      for (const r of records) seen.set(r.value, (seen.get(r.value) ?? 0) + 1);
      total += records.length;
    }
    const dups = [...seen].filter(([, n]) => n > 1);
    expect(dups, "records appended twice").toEqual([]);
    for (const [i, m] of ok) {
      expect(log.get(m.partition)?.get(m.offset), `send ${i} acked at ${m.partition}@${m.offset}`).toBe(i);
    }
    // Every acked record is in the log; unacked ones may be too (their outcome was unknown), once at most.
    expect(total).toBeGreaterThanOrEqual(ok.size);
    expect(total).toBeLessThanOrEqual(N);
    // With a minute of retries, nothing should have failed.
    expect([...failed.values()].map(String).slice(0, 3)).toEqual([]);
  }, 120_000);
});
