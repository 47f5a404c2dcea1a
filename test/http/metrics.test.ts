// GET /metrics on a real single node: every API.md family is declared, raft
// gauges, produce counters, topic end offsets and consumer-group lag.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNode, type TestNode } from "./fixture.ts";

const FAMILIES = [
  "raftbus_raft_term",
  "raftbus_raft_leader_id",
  "raftbus_raft_is_leader",
  "raftbus_raft_commit_index",
  "raftbus_raft_applied_index",
  "raftbus_raft_last_index",
  "raftbus_raft_commit_lag",
  "raftbus_raft_apply_lag",
  "raftbus_raft_follower_lag",
  "raftbus_raft_elections_total",
  "raftbus_raft_leader_changes_total",
  "raftbus_storage_sync_seconds",
  "raftbus_produce_records_total",
  "raftbus_produce_bytes_total",
  "raftbus_produce_latency_seconds",
  "raftbus_topic_end_offset",
  "raftbus_subscribers",
  "raftbus_consumer_group_lag",
  "raftbus_consumer_group_lag_seconds",
  "raftbus_build_info",
  "raftbus_snapshots_sent_total",
  "raftbus_snapshot_bytes_sent_total",
  "raftbus_snapshots_installed_total",
];

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe("GET /metrics", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode();
  });
  afterAll(async () => {
    await node?.stop();
  });

  const scrape = async () => {
    const res = await node.server.app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    return res.body;
  };

  it("declares every family and reports the single node as leader", async () => {
    const text = await scrape();
    for (const f of FAMILIES) expect(text).toMatch(new RegExp(`^# TYPE ${f} `, "m"));
    expect(text).toMatch(/^# TYPE raftbus_storage_sync_seconds histogram$/m);
    expect(text).toMatch(/^# TYPE raftbus_produce_records_total counter$/m);
    expect(text).toMatch(/^# TYPE process_cpu_user_seconds_total /m); // default metrics
    expect(sample(text, "raftbus_raft_is_leader")).toBe(1);
    expect(sample(text, "raftbus_raft_leader_id")).toBe(1);
    expect(sample(text, "raftbus_raft_term")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "raftbus_raft_leader_changes_total")).toBe(1);
    expect(sample(text, 'raftbus_build_info{version="0.1.0"}')).toBe(1);
    expect(sample(text, "raftbus_storage_sync_seconds_count")).toBeGreaterThan(0);
    // A single node has no followers.
    expect(text).not.toMatch(/^raftbus_raft_follower_lag\{/m);
  });

  it("counts produced records, end offsets and consumer-group lag", async () => {
    const app = node.server.app;
    const topic = "metrics-t";
    expect(
      (await app.inject({ method: "POST", url: "/v1/topics", payload: { name: topic, partitions: 2 } }))
        .statusCode,
    ).toBe(201);
    for (const n of [3, 2]) {
      const res = await app.inject({
        method: "POST",
        url: `/v1/topics/${topic}/records`,
        payload: { records: Array.from({ length: n }, (_, i) => ({ value: i, partition: 0 })) },
      });
      expect(res.statusCode).toBe(200);
    }
    const commit = await app.inject({
      method: "POST",
      url: "/v1/groups/readers/offsets",
      payload: { topic, partition: 0, offset: 1 },
    });
    expect(commit.statusCode).toBe(200);

    const text = await scrape();
    expect(sample(text, `raftbus_produce_records_total{topic="${topic}"}`)).toBe(5);
    // Values 0..n-1 as JSON: one byte each.
    expect(sample(text, `raftbus_produce_bytes_total{topic="${topic}"}`)).toBe(5);
    expect(sample(text, "raftbus_produce_latency_seconds_count")).toBe(2);
    expect(sample(text, `raftbus_topic_end_offset{topic="${topic}",partition="0"}`)).toBe(5);
    expect(sample(text, `raftbus_topic_end_offset{topic="${topic}",partition="1"}`)).toBe(0);
    expect(sample(text, `raftbus_subscribers{topic="${topic}"}`)).toBe(0);
    const labels = `{group="readers",topic="${topic}",partition="0"}`;
    expect(sample(text, `raftbus_consumer_group_lag${labels}`)).toBe(4);
    expect(sample(text, `raftbus_consumer_group_lag_seconds${labels}`)).toBeGreaterThanOrEqual(0);
    expect(sample(text, "raftbus_raft_commit_lag")).toBe(0);

    // Caught up: lag and its age are 0.
    await app.inject({
      method: "POST",
      url: "/v1/groups/readers/offsets",
      payload: { topic, partition: 0, offset: 5 },
    });
    const after = await scrape();
    expect(sample(after, `raftbus_consumer_group_lag${labels}`)).toBe(0);
    expect(sample(after, `raftbus_consumer_group_lag_seconds${labels}`)).toBe(0);
  });
});

describe("GET /metrics with an auth token", () => {
  let node: TestNode;
  beforeAll(async () => {
    node = await startTestNode({ authToken: "t" });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("stays open while /v1 needs the token", async () => {
    const app = node.server.app;
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^# TYPE raftbus_raft_term gauge$/m);
    expect((await app.inject({ method: "GET", url: "/v1/cluster" })).statusCode).toBe(401);
    // Over the real port too.
    const real = await fetch(`${node.url}/metrics`);
    expect(real.status).toBe(200);
    expect(await real.text()).toContain("raftbus_raft_is_leader 1");
  });
});
