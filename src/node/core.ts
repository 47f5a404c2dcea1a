// What the services around the Ready-loop driver (runtime.ts) see of it: a
// narrow handle on the Raft core. Services never hold the RaftNode or the
// Ready queue; they ask the driver to run a core operation (act), to run a
// task at a drain boundary, and read the role it last took in.

import type { Message, NodeId, RaftNode, Ready, Role, Status } from "../raft/index.ts";
import type { Logger } from "./ports.ts";

/** Counters of one node (GET /internal/status shows them as `runtime`). */
export interface RuntimeStats {
  readies: number;
  droppedMessages: number;
  batches: number;
  syncs: number;
  appliedEntries: number;
  /** Local (metadata-only) snapshots taken. */
  snapshotsTaken: number;
  /** Snapshots installed from a leader's stream. */
  snapshotsInstalled: number;
  /** Snapshot streams a leader finished sending (acknowledged by the follower). */
  snapshotsSent: number;
  /** Chunk bytes a leader put on the wire in snapshot streams, re-sends included. */
  snapshotBytesSent: number;
  /** Chunk bytes a follower accepted (checksummed, in order) from snapshot streams. */
  snapshotBytesReceived: number;
  /** Entries removed from the front of the Raft log. */
  compactedEntries: number;
}

export function newRuntimeStats(): RuntimeStats {
  return {
    readies: 0,
    droppedMessages: 0,
    batches: 0,
    syncs: 0,
    appliedEntries: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotsSent: 0,
    snapshotBytesSent: 0,
    snapshotBytesReceived: 0,
    compactedEntries: 0,
  };
}

export interface Core {
  readonly id: NodeId;
  readonly log: Logger;
  readonly stats: RuntimeStats;
  /** The leader this node knows (0: none), as the driver last took it in. */
  leaderId(): NodeId;
  role(): Role;
  /** The term of the last hard state handed to storage. */
  term(): number;
  isStopped(): boolean;
  /** The core's status (builds a copy: not for hot paths). */
  status(): Status;
  /** Runs one operation on the core and queues its Ready; returns it. Throws what the core throws. */
  act(op: (node: RaftNode) => Ready | null): Ready | null;
  /** Steps a message built on this node (e.g. a snapshot received as a stream) into the core. */
  step(m: Message): Ready | null;
  /**
   * Runs `task` at the next drain boundary: every Ready taken so far is
   * persisted, applied and flushed, and nothing applies until it returns.
   */
  atBoundary(task: () => void): void;
}
