// Membership through the HTTP API on real processes: a --join node waits, is
// added as a learner through a follower, catches up, is promoted, takes over
// leadership; a removed member stops serving.

import { afterEach, describe, expect, it } from "vitest";
import { ProcCluster } from "./proc-cluster.ts";

let cluster: ProcCluster | undefined;
afterEach(async () => {
  await cluster?.destroy();
  cluster = undefined;
});

const json = { "content-type": "application/json" };
type Members = { members: { id: number; role: string; raft: string | null; http: string | null }[] };

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("cluster membership over HTTP", () => {
  it("adds a joining node as a learner, promotes it, transfers leadership to it, and removes an old member", async () => {
    cluster = await ProcCluster.create({ size: 3 });
    const c = cluster;
    c.startAll();
    const leader = await c.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    expect(
      (
        await c.json(leader, "/v1/topics", {
          method: "POST",
          headers: json,
          body: JSON.stringify({ name: "m" }),
        })
      ).status,
    ).toBe(201);
    for (let i = 0; i < 30; i++) {
      const r = await c.json(follower, "/v1/topics/m/records", {
        method: "POST",
        headers: json,
        body: JSON.stringify({ records: [{ value: i }] }),
      });
      expect(r.status).toBe(200);
    }

    const n4 = await c.addNode(4);
    c.start(4, ["--join"]);
    // A joining node is not ready until the cluster adds it.
    const early = await until("node 4 to answer", () => c.tryJson<{ ready: boolean }>(4, "/readyz"));
    expect(early.status).toBe(503);

    // Added as a learner through a follower (which passes it to the leader).
    const add = await c.json<Members>(follower, "/v1/cluster/members", {
      method: "POST",
      headers: json,
      body: JSON.stringify({
        id: 4,
        raft: `127.0.0.1:${n4.raft}`,
        http: `127.0.0.1:${n4.http}`,
        role: "learner",
      }),
    });
    expect(add.status).toBe(200);
    expect(add.body.members.find((m) => m.id === 4)).toMatchObject({
      role: "learner",
      raft: `127.0.0.1:${n4.raft}`,
    });

    // Right away, before it has caught up, a produce through it to a topic it
    // has not applied yet is not refused as TOPIC_NOT_FOUND: it catches up to
    // the leader's commit first (the fault suite saw such 404s).
    // Retriable answers (503 while it learns who leads) are retried with the
    // same Idempotency-Key, so the record is appended once.
    const codes: string[] = [];
    const earlyProduce = await until("node 4 to take a produce", async () => {
      const r = await c.json<{ error?: { code: string; retriable: boolean } }>(4, "/v1/topics/m/records", {
        method: "POST",
        headers: { ...json, "idempotency-key": "early-1" },
        body: JSON.stringify({ records: [{ value: "early" }] }),
      });
      if (r.body.error) codes.push(r.body.error.code);
      return r.status === 200 || !r.body.error?.retriable ? r : undefined;
    });
    expect(codes).not.toContain("TOPIC_NOT_FOUND");
    expect(earlyProduce.status).toBe(200);

    // It catches up and serves the topic.
    await until("node 4 to catch up", async () => {
      const r = await c.tryJson<{ partitions: { endOffset: number }[] }>(4, "/v1/topics/m");
      return r?.status === 200 && r.body.partitions[0]?.endOffset === 31 ? true : undefined;
    });
    expect((await c.json(4, "/readyz")).status).toBe(200);

    // A second change while none is pending is fine: promote it to a voter.
    const promote = await c.json<Members>(leader, "/v1/cluster/members", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ id: 4, raft: `127.0.0.1:${n4.raft}`, role: "voter" }),
    });
    expect(promote.status).toBe(200);
    expect(promote.body.members.find((m) => m.id === 4)?.role).toBe("voter");

    // Leadership moves to the new node.
    const transfer = await c.json(follower, "/v1/cluster/leader", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ id: 4 }),
    });
    expect(transfer.status).toBe(200);
    expect(await c.waitForLeader([1, 2, 3, 4])).toBe(4);

    // Remove the old leader: it stops serving (readyz 503); the rest keeps going.
    const del = await c.json<Members>(4, `/v1/cluster/members/${leader}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(del.body.members.map((m) => m.id).sort()).toEqual([1, 2, 3, 4].filter((id) => id !== leader));
    await until("the removed node to stop serving", async () => {
      const r = await c.tryJson(leader, "/readyz");
      return r?.status === 503 ? true : undefined;
    });
    const rest = [1, 2, 3, 4].filter((id) => id !== leader);
    const p = await c.json<{ records: { offset: number }[] }>(rest[0]!, "/v1/topics/m/records", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ records: [{ value: "after" }] }),
    });
    expect(p.status).toBe(200);
    expect(p.body.records[0]?.offset).toBe(31);

    // Bad requests get the documented errors.
    const bad = await c.json<{ error: { code: string } }>(4, "/v1/cluster/members", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ id: -1, raft: "x" }),
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("INVALID_REQUEST");
  });
});
