// Multi-process tests: real `raftbus node` processes, real LMDB files, real TCP
// on loopback; kill -9 the leader, kill -9 everyone, restart, catch up by snapshot.

import { afterEach, describe, expect, it } from "vitest";
import { ProcCluster } from "./proc-cluster.ts";

let cluster: ProcCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

type FetchBody = { records: { offset: number; value: unknown }[]; nextOffset: number; endOffset: number };

const TOPIC = "t";

async function createTopic(c: ProcCluster, id: number): Promise<void> {
  const r = await c.json(id, "/v1/topics", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: TOPIC, partitions: 1 }),
  });
  expect(r.status).toBe(201);
}

/** Produces one record; returns its offset when acknowledged (200), else undefined. */
async function append(c: ProcCluster, id: number, value: unknown): Promise<number | undefined> {
  const r = await c.tryJson<{ records: { offset: number }[] }>(id, `/v1/topics/${TOPIC}/records`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ records: [{ value }] }),
  });
  return r?.status === 200 ? r.body.records[0]?.offset : undefined;
}

/** The whole partition as this node has it, values as JSON text. */
async function ledger(c: ProcCluster, id: number): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const r = await c.json<FetchBody>(
      id,
      `/v1/topics/${TOPIC}/partitions/0/records?offset=${out.length}&limit=10000`,
    );
    out.push(...r.body.records.map((rec) => JSON.stringify(rec.value)));
    if (r.body.records.length === 0 || out.length >= r.body.endOffset) return out;
  }
}

/** Waits until node `id` has applied at least `index`. */
async function waitApplied(c: ProcCluster, id: number, index: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await c.tryJson<{ appliedIndex: number }>(id, "/v1/cluster");
    if (r && r.body.appliedIndex >= index) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`node ${id} did not apply ${index} in time\n${c.logs()}`);
}

async function appliedIndex(c: ProcCluster, id: number): Promise<number> {
  return (await c.json<{ appliedIndex: number }>(id, "/v1/cluster")).body.appliedIndex;
}

/** Every acknowledged record must be at its acknowledged sequence number on every node. */
function expectAcked(log: string[], acked: Map<number, string>): void {
  for (const [seq, value] of acked) expect(log[seq], `record at seq ${seq}`).toBe(value);
}

describe("a 3-node cluster of real processes", () => {
  it("elects a leader, replicates, and loses nothing acknowledged when the leader is killed -9", async () => {
    cluster = await ProcCluster.create({ size: 3 });
    const c = cluster;
    c.startAll();
    const leader = await c.waitForLeader();
    await createTopic(c, leader);
    const acked = new Map<number, string>();
    const produce = async (ids: number[], from: number, n: number) => {
      await Promise.all(
        Array.from({ length: n }, async (_, k) => {
          const value = JSON.stringify({ i: from + k });
          const seq = await append(c, ids[k % ids.length]!, JSON.parse(value));
          if (seq !== undefined) acked.set(seq, value);
        }),
      );
    };
    await produce([1, 2, 3], 0, 150);
    expect(acked.size).toBe(150);

    // Kill the leader in the middle of a burst of writes.
    const burst = produce([1, 2, 3], 1000, 100);
    await new Promise((r) => setTimeout(r, 30));
    await c.kill(leader);
    await burst;
    const survivors = [1, 2, 3].filter((id) => id !== leader);
    const t0 = Date.now();
    const next = await c.waitForLeader(survivors);
    const electionMs = Date.now() - t0;
    expect(next).not.toBe(leader);
    // Election timeout is 10-20 ticks of 20 ms: a new leader within a few timeouts.
    expect(electionMs).toBeLessThan(5_000);
    await produce(survivors, 2000, 100);

    c.start(leader);
    await c.waitForLeader();
    const target = await appliedIndex(c, next);
    for (const id of [1, 2, 3]) await waitApplied(c, id, target);
    const logs = await Promise.all([1, 2, 3].map((id) => ledger(c, id)));
    for (const log of logs) {
      expect(log).toEqual(logs[0]);
      expectAcked(log, acked);
    }
  });

  it("keeps every acknowledged record through kill -9 of all three nodes at once", async () => {
    cluster = await ProcCluster.create({ size: 3 });
    const c = cluster;
    c.startAll();
    await createTopic(c, await c.waitForLeader());
    const acked = new Map<number, string>();
    let stop = false;
    const writers = [1, 2, 3].map(async (id) => {
      for (let i = 0; !stop; i++) {
        const value = JSON.stringify({ w: id, i });
        const seq = await append(c, id, JSON.parse(value));
        if (seq !== undefined) acked.set(seq, value);
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    await c.killAll(); // every node at once, writes in flight
    stop = true;
    await Promise.all(writers);
    expect(acked.size).toBeGreaterThan(10);

    c.startAll();
    const leader = await c.waitForLeader();
    // A fresh write commits after the restart, and everything before it is there.
    const seq = await append(c, leader, { after: "restart" });
    expect(seq).toBeDefined();
    const target = await appliedIndex(c, leader);
    for (const id of [1, 2, 3]) await waitApplied(c, id, target);
    const logs = await Promise.all([1, 2, 3].map((id) => ledger(c, id)));
    for (const log of logs) {
      expect(log).toEqual(logs[0]);
      expectAcked(log, acked);
    }
  });

  it("brings a follower that was down past log compaction back through a snapshot", async () => {
    // No byte margin: with this little data the log would otherwise never be compacted.
    cluster = await ProcCluster.create({
      size: 3,
      extraArgs: ["--snapshot-entries", "100", "--compaction-margin-bytes", "0"],
    });
    const c = cluster;
    c.startAll();
    const leader = await c.waitForLeader();
    await createTopic(c, leader);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    await c.kill(follower);
    const others = [1, 2, 3].filter((id) => id !== follower);
    for (let i = 0; i < 600; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => append(c, others[k % 2]!, { i: i + k })));
    }
    const st = await c.json<{ firstIndex: number; runtime: { snapshotsTaken: number } }>(
      leader,
      "/internal/status",
    );
    expect(st.body.runtime.snapshotsTaken).toBeGreaterThan(0);
    expect(st.body.firstIndex).toBeGreaterThan(100); // the follower's next entries are gone

    c.start(follower);
    const target = await appliedIndex(c, leader);
    await waitApplied(c, follower, target, 30_000);
    const fs = await c.json<{ runtime: { snapshotsInstalled: number } }>(follower, "/internal/status");
    expect(fs.body.runtime.snapshotsInstalled).toBeGreaterThan(0);
    // It came as a stream from a leader (catchup.ts), not as a Raft message.
    let sent = 0;
    for (const id of others) {
      const s = await c.json<{ runtime: { snapshotsSent: number } }>(id, "/internal/status");
      sent += s.body.runtime.snapshotsSent;
    }
    expect(sent).toBeGreaterThan(0);
    expect(await ledger(c, follower)).toEqual(await ledger(c, leader));
  });

  it("stops cleanly on SIGTERM (exit 0 within 10 s) and resumes from its data dir", async () => {
    cluster = await ProcCluster.create({ size: 3, extraArgs: ["--cluster-secret", "s3cret"] });
    const c = cluster;
    c.startAll();
    const leader = await c.waitForLeader();
    await createTopic(c, leader);
    for (let i = 0; i < 20; i++) expect(await append(c, leader, { i })).toBe(i);
    const { code, ms } = await c.terminate(leader);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
    c.start(leader);
    const l2 = await c.waitForLeader();
    expect(await append(c, l2, { i: 20 })).toBe(20);
    const target = await appliedIndex(c, l2);
    await waitApplied(c, leader, target);
    const log = await ledger(c, leader);
    expect(log.length).toBe(21);
  });
});
