// Assembles a node's runtime: the Ready-loop driver (runtime.ts) and the
// services it hands work to, each given only the handle and ports it needs.
// src/cli/server.ts calls this; so can tests that want a runtime in-process.

import type { NodeId, RaftConfig } from "../raft/index.ts";
import { CatchUp, type CatchUpOptions } from "./catchup.ts";
import { Membership } from "./membership.ts";
import type { DurableStorage, Logger, PeerTransport } from "./ports.ts";
import { Proposals } from "./proposals.ts";
import { ReadBarriers } from "./read-barriers.ts";
import { Runtime } from "./runtime.ts";
import { SnapshotPolicy } from "./snapshot-policy.ts";
import type { StateMachine } from "./state-machine.ts";

export interface RuntimeOptions<R> {
  id: NodeId;
  /** Initial voters other than this node, with the address to dial each at. */
  peers: Map<NodeId, string>;
  /** This node's own addresses, announced to the cluster. */
  self: { raft: string; http: string };
  /** Start as an empty node that waits to be added, instead of bootstrapping. */
  join?: boolean;
  storage: DurableStorage;
  stateMachine: StateMachine<R>;
  transport: PeerTransport;
  logger?: Logger;
  tickMs?: number;
  /** Raft core settings (electionTick, heartbeatTick, ...). */
  raft?: Partial<Omit<RaftConfig, "id" | "peers" | "storage" | "applied">>;
  /** Take a (metadata-only) snapshot every this many applied entries. */
  snapshotEntries?: number;
  /** Entries kept before the applied index when compacting. Default min(1000, snapshotEntries / 10). */
  compactionMarginEntries?: number;
  /** Bytes of log kept behind the compaction point (appended since start). Default 256 MiB. */
  compactionMarginBytes?: number;
  /** Proposals waiting for the next batch: beyond either bound, BACKPRESSURE. */
  maxPendingProposals?: number;
  maxPendingBytes?: number;
  /** Read barriers waiting at once: beyond, BACKPRESSURE. Default maxPendingProposals. */
  maxPendingReads?: number;
  defaultTimeoutMs?: number;
  /** Snapshot stream settings (windows, timeouts); defaults in catchup.ts. */
  catchUp?: Partial<CatchUpOptions>;
}

export const DEFAULT_SNAPSHOT_ENTRIES = 100_000;
export const DEFAULT_COMPACTION_MARGIN_BYTES = 256 * 1024 * 1024;

export function createRuntime<R>(opts: RuntimeOptions<R>): Runtime<R> {
  const tickMs = opts.tickMs ?? 50;
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 10_000;
  const snapshotEntries = opts.snapshotEntries ?? DEFAULT_SNAPSHOT_ENTRIES;
  const maxPendingProposals = opts.maxPendingProposals ?? 100_000;
  const { storage, stateMachine, transport } = opts;
  return new Runtime<R>(
    {
      id: opts.id,
      peers: opts.peers,
      join: opts.join ?? false,
      storage,
      stateMachine,
      transport,
      ...(opts.logger ? { logger: opts.logger } : {}),
      tickMs,
      ...(opts.raft ? { raft: opts.raft } : {}),
      defaultTimeoutMs,
    },
    (core) => {
      const membership: Membership = new Membership(
        {
          core,
          storage,
          transport,
          proposeEnvelope: (kind, body) => proposals.proposeEnvelope(kind, body),
        },
        { peers: opts.peers, self: opts.self, join: opts.join ?? false, tickMs, defaultTimeoutMs },
      );
      const proposals = new Proposals<R>(
        { core, transport, removed: () => membership.removed() },
        {
          maxPendingProposals,
          maxPendingBytes: opts.maxPendingBytes ?? 64 * 1024 * 1024,
          defaultTimeoutMs,
        },
      );
      const reads = new ReadBarriers(core, {
        maxPendingReads: opts.maxPendingReads ?? maxPendingProposals,
        defaultTimeoutMs,
      });
      const catchUp = new CatchUp(
        { core, transport, stateMachine, storage, members: () => membership.addresses() },
        opts.catchUp,
      );
      const snapshots = new SnapshotPolicy(
        {
          core,
          storage,
          appliedIndex: () => stateMachine.appliedIndex(),
          members: () => membership.addresses(),
          compactionFloor: () => catchUp.compactionFloor(),
        },
        {
          snapshotEntries,
          marginEntries: opts.compactionMarginEntries ?? Math.min(1_000, Math.floor(snapshotEntries / 10)),
          marginBytes: opts.compactionMarginBytes ?? DEFAULT_COMPACTION_MARGIN_BYTES,
        },
      );
      return { proposals, reads, membership, snapshots, catchUp };
    },
  );
}
