// Quorum arithmetic for a majority configuration and a joint one (two majorities,
// both needed while a membership change is in flight, B55).

import type { NodeId } from "./types.ts";

export type VoteResult = "won" | "lost" | "pending";

let scratch = new Float64Array(16);

/**
 * The largest index acknowledged by a majority of `voters`. An empty config
 * commits everything (so that a joint config's empty half never holds back).
 */
export function majorityCommitted(voters: ReadonlySet<NodeId>, matchOf: (id: NodeId) => number): number {
  const n = voters.size;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  if (n === 1) {
    for (const id of voters) return matchOf(id);
  }
  // Insertion sort (descending) into a reused buffer: voter sets are small and
  // this runs on every acknowledgement.
  if (scratch.length < n) scratch = new Float64Array(n * 2);
  let k = 0;
  for (const id of voters) {
    const v = matchOf(id);
    let j = k++;
    while (j > 0 && scratch[j - 1]! < v) {
      scratch[j] = scratch[j - 1]!;
      j--;
    }
    scratch[j] = v;
  }
  return scratch[Math.floor(n / 2)]!;
}

export function majorityVote(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return "won";
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) granted++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (granted >= q) return "won";
  if (granted + missing >= q) return "pending";
  return "lost";
}

export interface JointVoters {
  incoming: ReadonlySet<NodeId>;
  outgoing: ReadonlySet<NodeId>;
}

export function jointCommitted(j: JointVoters, matchOf: (id: NodeId) => number): number {
  return Math.min(majorityCommitted(j.incoming, matchOf), majorityCommitted(j.outgoing, matchOf));
}

export function jointVote(j: JointVoters, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const a = majorityVote(j.incoming, votes);
  const b = majorityVote(j.outgoing, votes);
  if (a === b) return a;
  if (a === "lost" || b === "lost") return "lost";
  return "pending";
}

/** Whether the nodes for which `active` holds form a quorum of the joint config. */
export function jointActive(j: JointVoters, active: (id: NodeId) => boolean): boolean {
  const votes = new Map<NodeId, boolean>();
  for (const id of j.incoming) votes.set(id, active(id));
  for (const id of j.outgoing) votes.set(id, active(id));
  return jointVote(j, votes) === "won";
}
