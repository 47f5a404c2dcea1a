// Crash-safe install (docs/storage.md, "Installing: stage, then swap"): a
// follower that needs a snapshot stream is killed (SIGKILL, by its own fault
// point: RAFTBUS_FAULT_KILL_AT) at each stage of the install — small state
// staged, some batches staged, the whole stream staged just before the commit
// point, just after it, and during the sweep that follows — and restarted.
// It converges: every partition's start, end, bytes and the hash of its
// stored batches equal the leader's, on every node.

import { afterEach, describe, expect, it } from "vitest";
import { ProcCluster } from "./proc-cluster.ts";

let cluster: ProcCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const TOPICS: [string, number, number | null][] = [
  ["a", 3, null],
  ["r", 1, 40_000], // retention moves its start while the follower is away
];

interface Digest {
  start: number;
  end: number;
  bytes: number;
  batches: number;
  sha256: string;
}

async function produce(c: ProcCluster, id: number, requests: number, round: number): Promise<void> {
  for (let i = 0; i < requests; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, k) => {
        const n = i + k;
        const topic = n % 3 === 0 ? "r" : "a";
        const records = Array.from({ length: 5 }, (_, j) => ({
          key: `k${round}-${n}-${j}`,
          value: { round, n, j, pad: "x".repeat(300) },
        }));
        const r = await c.json(id, `/v1/topics/${topic}/records`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ records }),
        });
        expect(r.status).toBe(200);
      }),
    );
  }
}

async function digests(c: ProcCluster, id: number): Promise<Record<string, Digest> | undefined> {
  const out: Record<string, Digest> = {};
  for (const [t, parts] of TOPICS) {
    for (let p = 0; p < parts; p++) {
      const r = await c.tryJson<Digest>(id, `/v1/topics/${t}/partitions/${p}/digest`);
      if (r?.status !== 200) return undefined;
      out[`${t}/${p}`] = r.body;
    }
  }
  return out;
}

function exited(c: ProcCluster, id: number, timeoutMs: number): Promise<NodeJS.Signals | number | null> {
  const proc = c.get(id).proc!;
  if (proc.exitCode !== null || proc.signalCode !== null)
    return Promise.resolve(proc.signalCode ?? proc.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`node ${id} did not die within ${timeoutMs} ms\n${c.get(id).log.join("").slice(-4000)}`),
        ),
      timeoutMs,
    );
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve(signal ?? code);
    });
  });
}

describe("crash-safe install", () => {
  it("a follower killed at each stage of a snapshot install converges to the leader's batches", async () => {
    cluster = await ProcCluster.create({
      size: 3,
      // Compact eagerly so that a follower that was away needs a stream.
      extraArgs: ["--snapshot-entries", "20", "--compaction-margin-bytes", "0"],
    });
    const c = cluster;
    c.startAll();
    const leader = await c.waitForLeader();
    for (const [name, partitions, retentionBytes] of TOPICS) {
      const r = await c.json(leader, "/v1/topics", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, partitions, retentionMs: null, retentionBytes }),
      });
      expect(r.status).toBe(201);
    }
    await produce(c, leader, 60, 0);
    const follower = [1, 2, 3].find((id) => id !== leader)!;

    const stages = ["install-state", "install-batches", "install-before-commit", "install-after-commit"];
    for (const [round, stage] of stages.entries()) {
      await c.kill(follower);
      // Enough new data that the leader's log is compacted past the follower.
      await produce(c, leader, 120, round + 1);
      c.start(follower, [], { RAFTBUS_FAULT_KILL_AT: stage });
      expect([stage, await exited(c, follower, 30_000)]).toEqual([stage, "SIGKILL"]);
    }
    // The install committed just before the last kill left garbage below the
    // new starts: the sweeper removes it on the next start, and dies there.
    c.start(follower, [], { RAFTBUS_FAULT_KILL_AT: "sweep" });
    expect(await exited(c, follower, 30_000)).toBe("SIGKILL");

    c.start(follower);
    await c.waitForLeader();
    await produce(c, leader, 20, 9);
    // Converged: every node holds the same batches (retention may still move
    // the start for a moment: wait until all agree).
    const deadline = Date.now() + 30_000;
    let all: (Record<string, Digest> | undefined)[] = [];
    while (Date.now() < deadline) {
      all = await Promise.all([1, 2, 3].map((id) => digests(c, id)));
      if (all.every((d) => d && JSON.stringify(d) === JSON.stringify(all[0]))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(all[0]).toBeDefined();
    for (const d of all) expect(d).toEqual(all[0]);
    // The retained topic really was trimmed.
    expect(all[0]!["r/0"]!.start).toBeGreaterThan(0);
  }, 240_000);
});
