// Helpers shared by the commit/apply, flow-control and snapshot behaviour tests:
// a leader's progress for a follower, a record of the messages delivered, and
// heartbeat rounds. Built on the Cluster harness; nothing here changes it.

import type { Message, ProgressStatus } from "../../src/raft/index.ts";
import type { Cluster } from "./harness.ts";

/** The progress `leader` keeps for `id`; throws if it keeps none. */
export function progress(c: Cluster, leader: number, id: number): ProgressStatus {
  const p = c
    .node(leader)
    .status()
    .progress.find((x) => x.id === id);
  if (!p) throw new Error(`leader ${leader} has no progress for ${id}`);
  return p;
}

/** Records every delivered message and drops those `drop` selects. */
export function recordAndDrop(c: Cluster, drop: (m: Message) => boolean = () => false): Message[] {
  const seen: Message[] = [];
  c.filter = (m) => {
    seen.push(m);
    return !drop(m);
  };
  return seen;
}

/** `n` rounds of ticking `leader` once and delivering everything (a heartbeat round at heartbeatTick 1). */
export function heartbeats(c: Cluster, leader: number, n: number): void {
  for (let i = 0; i < n; i++) {
    c.tick(leader);
    c.deliver();
  }
}
