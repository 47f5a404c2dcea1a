// B70: once everything is healed, a leader must exist and a fresh proposal must
// be applied on every member of its configuration within a bounded number of ticks.

import type { NodeId } from "../raft/index.ts";
import type { Cluster } from "./cluster.ts";
import type { ClientLoad } from "./load.ts";
import { MAX_PAYLOAD_EXTRA_BYTES } from "./payload.ts";
import type { Scenario } from "./scenario.ts";

/** Ticks for one append round trip in the healed network, with slow (asynchronous) writes. */
const ROUND_TRIP_TICKS = 8;

/**
 * The bound of B70: 20 election timeouts to elect a leader and commit, plus the
 * time flow control needs to stream the backlog of the furthest-behind node
 * (the configuration may allow only one small append in flight).
 */
export function livenessBound(c: Cluster, sc: Scenario): number {
  let maxLast = 0;
  let minApplied = Number.POSITIVE_INFINITY;
  for (const n of c.running()) {
    maxLast = Math.max(maxLast, c.status(n).lastIndex);
    minApplied = Math.min(minApplied, n.disk.sm.applied);
  }
  const backlog = Math.max(0, maxLast - minApplied);
  const entriesPerMsg = Math.max(1, Math.floor(sc.raft.maxSizePerMsg / (4 + MAX_PAYLOAD_EXTRA_BYTES + 24)));
  const rounds = Math.ceil(backlog / (entriesPerMsg * sc.raft.maxInflightMsgs));
  return sc.livenessTicks + rounds * ROUND_TRIP_TICKS;
}

export class LivenessProbe {
  private readonly cluster: Cluster;
  private readonly load: ClientLoad;
  private readonly retryTicks: number;
  private lastAttempt = Number.NEGATIVE_INFINITY;
  readonly startedAt: number;

  constructor(cluster: Cluster, load: ClientLoad, electionTick: number) {
    this.cluster = cluster;
    this.load = load;
    this.retryTicks = Math.max(3, Math.floor(electionTick / 2));
    this.startedAt = cluster.now;
    cluster.probeId = load.newPayloadId();
    cluster.probeIndex = undefined;
  }

  /** Proposes the probe (again) until some node has applied it. */
  step(): void {
    const c = this.cluster;
    if (c.probeIndex !== undefined || c.now - this.lastAttempt < this.retryTicks) return;
    this.lastAttempt = c.now;
    const target = c.leader() ?? c.running()[0];
    if (target !== undefined) this.load.propose(target, c.probeId!);
  }

  /** Whether a leader exists and every member of its configuration has applied the probe. */
  met(): boolean {
    const c = this.cluster;
    const idx = c.probeIndex;
    if (idx === undefined) return false;
    const leader = c.leader();
    if (leader === undefined) return false;
    for (const id of members(c, leader.id)) {
      const n = c.nodes.get(id);
      if (n?.runtime === undefined || n.disk.sm.applied < idx) return false;
    }
    return true;
  }

  /** What is missing, for the failure report. */
  explain(): string {
    const c = this.cluster;
    const lines = [
      `no leader with the probe applied everywhere after ${c.now - this.startedAt} ticks (probe #${c.probeId} at index ${c.probeIndex ?? "none"})`,
    ];
    for (const n of c.nodes.values()) {
      if (n.runtime === undefined) {
        lines.push(`  node ${n.id}: down`);
        continue;
      }
      const st = c.status(n);
      const cfg = st.config;
      lines.push(
        `  node ${n.id}: ${st.role} term ${st.term} leader ${st.leader} commit ${st.commit} applied ${n.disk.sm.applied} ` +
          `last ${st.lastIndex} voters [${cfg.voters}] learners [${cfg.learners}] outgoing [${cfg.votersOutgoing}] ` +
          `pipelined ${n.runtime.pipelined()}`,
      );
      for (const pr of st.progress) {
        lines.push(
          `    progress ${pr.id}: ${pr.state} match ${pr.match} next ${pr.next} active ${pr.recentActive} ` +
            `inflight ${pr.inflightMsgs}/${pr.inflightBytes}B${pr.isLearner ? " learner" : ""}`,
        );
      }
    }
    return lines.join("\n");
  }
}

function members(c: Cluster, leader: NodeId): NodeId[] {
  const n = c.nodes.get(leader)!;
  const cfg = c.status(n).config;
  return [...new Set([...cfg.voters, ...cfg.learners, ...cfg.votersOutgoing, ...cfg.learnersNext])];
}
