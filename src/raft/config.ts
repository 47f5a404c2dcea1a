// Configuration of one Raft node, with defaults and validation.

import { RaftError } from "./errors.ts";
import type { Storage } from "./storage.ts";
import type { NodeId } from "./types.ts";

export type ReadOnlyOption = "safe" | "lease";

export interface RaftConfig {
  /** This node's id, a positive integer. */
  id: NodeId;
  /**
   * The initial voters, this node included, used only when storage holds no
   * membership yet (a new cluster). Empty for a node that joins an existing
   * cluster: it waits to be contacted by the leader.
   */
  peers?: NodeId[];
  /** Initial learners, like `peers`. */
  learners?: NodeId[];
  storage: Storage;
  /** Ticks without a leader before an election; the timeout is uniform in [electionTick, 2*electionTick). */
  electionTick?: number;
  /** Ticks between a leader's heartbeats. */
  heartbeatTick?: number;
  /** The application's last applied index (entries up to it are not handed out again). */
  applied?: number;
  /** Byte cap of the entries in one append message (a single larger entry still goes alone). */
  maxSizePerMsg?: number;
  /** Append messages in flight to one follower in replicate state. */
  maxInflightMsgs?: number;
  /** Bytes of entries in flight to one follower (0: no byte limit). */
  maxInflightBytes?: number;
  /** Bytes of the leader's uncommitted tail beyond which proposals are refused (0: no limit). */
  maxUncommittedBytes?: number;
  /** Bytes of committed entries handed out in one Ready. */
  maxCommittedBytesPerReady?: number;
  /** Bytes of snapshot data in one Snap message. */
  maxSnapshotChunkBytes?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  readOnlyOption?: ReadOnlyOption;
  /** Refuse proposals on followers instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Seed of the node's own PRNG (election timeouts). */
  seed?: number;
}

export type ResolvedConfig = Required<RaftConfig>;

export function resolveConfig(c: RaftConfig): ResolvedConfig {
  const r: ResolvedConfig = {
    id: c.id,
    peers: c.peers ?? [],
    learners: c.learners ?? [],
    storage: c.storage,
    electionTick: c.electionTick ?? 10,
    heartbeatTick: c.heartbeatTick ?? 1,
    applied: c.applied ?? 0,
    maxSizePerMsg: c.maxSizePerMsg ?? 1024 * 1024,
    maxInflightMsgs: c.maxInflightMsgs ?? 256,
    maxInflightBytes: c.maxInflightBytes ?? 32 * 1024 * 1024,
    maxUncommittedBytes: c.maxUncommittedBytes ?? 64 * 1024 * 1024,
    maxCommittedBytesPerReady: c.maxCommittedBytesPerReady ?? 16 * 1024 * 1024,
    maxSnapshotChunkBytes: c.maxSnapshotChunkBytes ?? 1024 * 1024,
    preVote: c.preVote ?? true,
    checkQuorum: c.checkQuorum ?? true,
    readOnlyOption: c.readOnlyOption ?? "safe",
    disableProposalForwarding: c.disableProposalForwarding ?? false,
    seed: c.seed ?? c.id,
  };
  const bad = (m: string) => new RaftError("INVALID_CONFIG", m);
  if (!Number.isSafeInteger(r.id) || r.id <= 0) throw bad(`id must be a positive integer, got ${r.id}`);
  if (!(r.heartbeatTick >= 1)) throw bad("heartbeatTick must be >= 1");
  if (!(r.electionTick > r.heartbeatTick)) throw bad("electionTick must be greater than heartbeatTick");
  if (!(r.maxInflightMsgs >= 1)) throw bad("maxInflightMsgs must be >= 1");
  if (!(r.maxSizePerMsg >= 1)) throw bad("maxSizePerMsg must be >= 1");
  if (!(r.maxSnapshotChunkBytes >= 1)) throw bad("maxSnapshotChunkBytes must be >= 1");
  if (!(r.maxCommittedBytesPerReady >= 1)) throw bad("maxCommittedBytesPerReady must be >= 1");
  // Lease reads trust that no other leader can be elected while a quorum's votes
  // are held by the leader's lease; only with CheckQuorum do voters refuse votes
  // while they hear from a live leader (B60). See Raft.leaseValid.
  if (r.readOnlyOption === "lease" && !r.checkQuorum)
    throw bad("readOnlyOption 'lease' requires checkQuorum");
  return r;
}
