// The shape of one run, drawn from its seed: cluster size and who starts, the
// Raft configuration, how hostile the network is, and how busy the clients are.

import type { NodeId, RaftConfig } from "../raft/index.ts";
import type { NetFaults } from "./network.ts";
import type { Prng } from "./prng.ts";

export type RaftTuning = Required<
  Pick<
    RaftConfig,
    | "electionTick"
    | "heartbeatTick"
    | "maxSizePerMsg"
    | "maxInflightMsgs"
    | "maxInflightBytes"
    | "maxUncommittedBytes"
    | "maxCommittedBytesPerReady"
    | "maxSnapshotChunkBytes"
    | "preVote"
    | "checkQuorum"
    | "disableProposalForwarding"
  >
>;

export interface Scenario {
  seed: number;
  /** Voters wanted in the end: membership changes aim for this. */
  clusterSize: number;
  /** The voters that boot the cluster; the others join through membership changes. */
  initialVoters: NodeId[];
  /** Every id a node may have; ids above the initial ones are only ever used once. */
  maxNodeId: number;
  raft: RaftTuning;
  net: NetFaults;
  /** Per-tick probabilities of faults and client operations. */
  rates: {
    crash: number;
    partition: number;
    heal: number;
    netChange: number;
    propose: number;
    read: number;
    transfer: number;
    campaign: number;
    confChange: number;
    snapshot: number;
  };
  /** Longest a crashed node stays down, in ticks. */
  maxDowntimeTicks: number;
  /** Chance that a node persists/applies/advances right after each input instead of later. */
  syncRate: number;
  /** Ticks of faults and load before everything heals. */
  faultTicks: number;
  /** Ticks after healing within which a leader must exist and a fresh proposal commit (B70). */
  livenessTicks: number;
}

export interface RunLength {
  /** Ticks of the fault phase. */
  faultTicks: number;
}

export function makeScenario(seed: number, prng: Prng, length: RunLength): Scenario {
  const clusterSize = prng.chance(0.6) ? 3 : 5;
  const startSmall = prng.chance(0.25);
  const initialCount = startSmall ? prng.pick(clusterSize === 3 ? [1, 2] : [1, 3]) : clusterSize;
  const initialVoters = Array.from({ length: initialCount }, (_, i) => i + 1);
  const electionTick = prng.int(6, 12);
  const calm = prng.chance(0.15);
  return {
    seed,
    clusterSize,
    initialVoters,
    maxNodeId: clusterSize + 3,
    raft: {
      electionTick,
      heartbeatTick: prng.int(1, 2),
      maxSizePerMsg: prng.pick([64, 256, 4096]),
      maxInflightMsgs: prng.pick([1, 2, 4, 16]),
      maxInflightBytes: prng.pick([0, 512, 1 << 20]),
      maxUncommittedBytes: prng.pick([0, 300, 4096]),
      maxCommittedBytesPerReady: prng.pick([32, 256, 1 << 20]),
      maxSnapshotChunkBytes: prng.pick([128, 256, 1 << 20]),
      preVote: prng.chance(0.8),
      checkQuorum: prng.chance(0.8),
      disableProposalForwarding: prng.chance(0.1),
    },
    net: calm
      ? { dropRate: 0, dupRate: 0, maxDelayTicks: 2, longDelayRate: 0, longDelayTicks: 0, corruptRate: 0 }
      : {
          dropRate: prng.pick([0, 0.02, 0.1, 0.2]),
          dupRate: prng.pick([0, 0.02, 0.1]),
          maxDelayTicks: prng.int(1, 4),
          longDelayRate: prng.pick([0, 0.01, 0.05]),
          longDelayTicks: prng.int(5, 4 * electionTick),
          corruptRate: prng.pick([0, 0, 0.01]),
        },
    rates: {
      crash: calm ? 0 : prng.pick([0, 0.002, 0.006, 0.015]),
      partition: calm ? 0 : prng.pick([0, 0.005, 0.02]),
      heal: prng.pick([0.02, 0.05, 0.1]),
      netChange: calm ? 0 : 0.005,
      propose: prng.pick([0.2, 0.5, 1]),
      read: prng.pick([0, 0.05, 0.2]),
      transfer: prng.pick([0, 0.005, 0.02]),
      campaign: prng.pick([0, 0, 0.003]),
      confChange: startSmall ? 0.05 : prng.pick([0, 0.005, 0.02]),
      snapshot: prng.pick([0, 0.01, 0.05]),
    },
    maxDowntimeTicks: prng.pick([5, 30, 100]),
    syncRate: prng.pick([1, 0.7, 0.3]),
    faultTicks: length.faultTicks,
    livenessTicks: 20 * electionTick,
  };
}
