// Prometheus metrics of one node (API.md "Metrics"). Each node has its own
// Registry (never prom-client's global one): tests run several nodes in one
// process. Gauges are computed in collect() callbacks at scrape time, so the
// hot paths pay nothing for them; the produce path pays one counter inc and one
// histogram observe per request (observeProduce). Every family is declared on
// every node, with or without samples. Labels never carry offsets or request ids.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Broker } from "../broker/broker.ts";
import type { ApplyResult } from "../broker/state.ts";
import type { GroupOffset } from "../broker/types.ts";
import { subscriberCounts } from "../http/routes/subscribe.ts";
import type { Runtime } from "../node/runtime.ts";
import { Role } from "../raft/index.ts";

/** 100 µs to 10 s. */
export const SECONDS_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export interface MetricsDeps {
  runtime: Runtime<ApplyResult>;
  broker: Broker;
  /** The build's version, for raftbus_build_info{version}. */
  version: string;
  /** Clock for consumer-group lag ages (ms since the epoch); Date.now by default. */
  now?: () => number;
}

export interface Metrics {
  readonly registry: Registry;
  /** A produce answered 200 on this node: `records` records of `bytes` value bytes, request to commit in `seconds`. */
  observeProduce(topic: string, records: number, bytes: number, seconds: number): void;
  /** Stops listening to the runtime's events. */
  close(): void;
}

export function createMetrics(deps: MetricsDeps): Metrics {
  const { runtime, broker } = deps;
  const state = broker.state;
  const now = deps.now ?? Date.now;
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  // ---- raft ------------------------------------------------------------------------

  const raftGauge = (name: string, help: string, value: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(value());
      },
    });
  raftGauge("raftbus_raft_term", "Current Raft term.", () => runtime.status().term);
  raftGauge("raftbus_raft_leader_id", "Leader this node knows (0: none).", () => runtime.status().leader);
  raftGauge("raftbus_raft_is_leader", "1 when this node is the leader.", () =>
    runtime.status().role === Role.Leader ? 1 : 0,
  );
  raftGauge("raftbus_raft_commit_index", "Highest committed log index.", () => runtime.status().commit);
  raftGauge("raftbus_raft_applied_index", "Highest applied log index.", () => runtime.status().applied);
  raftGauge("raftbus_raft_last_index", "Last index in this node's log.", () => runtime.status().lastIndex);
  raftGauge("raftbus_raft_commit_lag", "Entries appended on this node but not yet committed.", () => {
    const s = runtime.status();
    return Math.max(0, s.lastIndex - s.commit);
  });
  raftGauge("raftbus_raft_apply_lag", "Entries committed but not yet applied.", () => {
    const s = runtime.status();
    return Math.max(0, s.commit - s.applied);
  });

  new Gauge({
    name: "raftbus_raft_follower_lag",
    help: "Entries a peer's log is behind the leader's (leader only).",
    labelNames: ["peer"] as const,
    registers,
    collect() {
      this.reset();
      const s = runtime.status();
      if (s.role !== Role.Leader) return;
      for (const p of s.progress) {
        if (p.id !== s.id) this.set({ peer: String(p.id) }, Math.max(0, s.lastIndex - p.match));
      }
    },
  });

  let electionsSeen = 0;
  new Counter({
    name: "raftbus_raft_elections_total",
    help: "Elections this node started.",
    registers,
    collect() {
      const n = runtime.status().elections;
      if (n > electionsSeen) this.inc(n - electionsSeen);
      electionsSeen = n;
    },
  });

  // Snapshot streams (src/node/catchup.ts), from the runtime's counters.
  const statCounter = (name: string, help: string, value: () => number) => {
    let seen = 0;
    return new Counter({
      name,
      help,
      registers,
      collect() {
        const n = value();
        if (n > seen) this.inc(n - seen);
        seen = n;
      },
    });
  };
  statCounter(
    "raftbus_snapshots_sent_total",
    "Snapshot streams this node sent to a follower as leader (completed).",
    () => runtime.stats.snapshotsSent,
  );
  statCounter(
    "raftbus_snapshot_bytes_sent_total",
    "Chunk bytes of snapshot streams this node sent, re-sent frames included.",
    () => runtime.stats.snapshotBytesSent,
  );
  statCounter(
    "raftbus_snapshots_installed_total",
    "Snapshots this node installed from a leader's stream.",
    () => runtime.stats.snapshotsInstalled,
  );

  // A change is a new known leader other than the last known one (a spell with
  // no leader in between does not count twice).
  const leaderChanges = new Counter({
    name: "raftbus_raft_leader_changes_total",
    help: "Times this node saw a new leader.",
    registers,
  });
  let lastLeader = runtime.leader;
  const onRole = (_role: Role, leader: number) => {
    if (leader === 0 || leader === lastLeader) return;
    lastLeader = leader;
    leaderChanges.inc();
  };
  runtime.on("role", onRole);

  // ---- storage ---------------------------------------------------------------------

  const sync = new Histogram({
    name: "raftbus_storage_sync_seconds",
    help: "Duration of each storage fsync.",
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const onSync = (seconds: number) => sync.observe(seconds);
  runtime.on("sync", onSync);

  // ---- produce ---------------------------------------------------------------------

  const produceRecords = new Counter({
    name: "raftbus_produce_records_total",
    help: "Records produced through this node (counted on the node that answered the client).",
    labelNames: ["topic"] as const,
    registers,
  });
  const produceBytes = new Counter({
    name: "raftbus_produce_bytes_total",
    help: "Value bytes of the records produced through this node (counted on the node that answered).",
    labelNames: ["topic"] as const,
    registers,
  });
  const produceLatency = new Histogram({
    name: "raftbus_produce_latency_seconds",
    help: "Produce requests answered 200 by this node, request to commit.",
    buckets: SECONDS_BUCKETS,
    registers,
  });

  // ---- topics, subscribers, consumer groups ---------------------------------------

  new Gauge({
    name: "raftbus_topic_end_offset",
    help: "Next offset of each partition (applied on this node).",
    labelNames: ["topic", "partition"] as const,
    registers,
    collect() {
      this.reset();
      for (const topic of state.topicNames()) {
        for (const p of state.describe(topic)?.partitions ?? []) {
          this.set({ topic, partition: String(p.partition) }, p.endOffset);
        }
      }
    },
  });

  new Gauge({
    name: "raftbus_subscribers",
    help: "Open WebSocket subscriptions on this node.",
    labelNames: ["topic"] as const,
    registers,
    collect() {
      this.reset();
      for (const topic of state.topicNames()) this.set({ topic }, 0);
      for (const [topic, n] of subscriberCounts(broker)) this.set({ topic }, n);
    },
  });

  const groupLabels = (group: string, g: GroupOffset) => ({
    group,
    topic: g.topic,
    partition: String(g.partition),
  });
  new Gauge({
    name: "raftbus_consumer_group_lag",
    help: "Records after a consumer group's committed offset.",
    labelNames: ["group", "topic", "partition"] as const,
    registers,
    collect() {
      this.reset();
      for (const group of state.groupNames()) {
        for (const g of state.groupOffsets(group)) this.set(groupLabels(group, g), g.lag);
      }
    },
  });
  new Gauge({
    name: "raftbus_consumer_group_lag_seconds",
    help: "Age of a consumer group's oldest unconsumed record (0 when caught up).",
    labelNames: ["group", "topic", "partition"] as const,
    registers,
    collect() {
      this.reset();
      const t = now();
      for (const group of state.groupNames()) {
        for (const g of state.groupOffsets(group)) {
          let age = 0;
          if (g.lag > 0) {
            // The oldest unconsumed record: at the committed offset, or at the
            // start when retention removed it (lag counts from there): end - lag.
            const end = state.bounds(g.topic, g.partition)?.end;
            const ts = end === undefined ? undefined : state.timestampAt(g.topic, g.partition, end - g.lag);
            if (ts !== undefined) age = Math.max(0, (t - ts) / 1000);
          }
          this.set(groupLabels(group, g), age);
        }
      }
    },
  });

  new Gauge({
    name: "raftbus_build_info",
    help: "Build information; always 1.",
    labelNames: ["version"] as const,
    registers,
  }).set({ version: deps.version }, 1);

  return {
    registry,
    observeProduce(topic, records, bytes, seconds) {
      produceRecords.inc({ topic }, records);
      produceBytes.inc({ topic }, bytes);
      produceLatency.observe(seconds);
    },
    close() {
      runtime.off("role", onRole);
      runtime.off("sync", onSync);
    },
  };
}
