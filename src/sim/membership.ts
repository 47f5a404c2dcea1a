// Picks the next membership change for the client load: add a learner (a fresh
// node), promote it, remove or demote a voter, and joint changes of two voters
// (replace one, promote two), sometimes with an explicit leave. Ids that were
// ever members are never added back as new nodes, as an operator would not.

import { type ConfChange, ConfChangeType, type ConfState, type NodeId } from "../raft/index.ts";
import type { Prng } from "./prng.ts";

export interface PlannedChange {
  cc: ConfChange;
  /** Fresh nodes that must be started to join. */
  starts: NodeId[];
  description: string;
}

const add = (nodeId: NodeId) => ({ type: ConfChangeType.AddVoter, nodeId });
const learner = (nodeId: NodeId) => ({ type: ConfChangeType.AddLearner, nodeId });
const remove = (nodeId: NodeId) => ({ type: ConfChangeType.RemoveNode, nodeId });

/** `fresh` are ids that may still join: never members of any configuration. */
export function planConfChange(
  prng: Prng,
  conf: ConfState,
  fresh: readonly NodeId[],
  target: number,
): PlannedChange | undefined {
  const { voters, learners } = conf;
  if (conf.votersOutgoing.length > 0) {
    // Joint: only leaving it makes sense (the core refuses anything else).
    return { cc: { changes: [] }, starts: [], description: "leave joint" };
  }
  const options: PlannedChange[] = [];
  const l = learners.length > 0 ? prng.pick(learners) : undefined;
  const v = voters.length > 0 ? prng.pick(voters) : undefined;
  const f = fresh.length > 0 ? fresh[0] : undefined;
  const explicitLeave = prng.chance(0.3);
  if (f !== undefined && voters.length + learners.length < target + 1) {
    options.push({ cc: { changes: [learner(f)] }, starts: [f], description: `add learner ${f}` });
    if (prng.chance(0.2))
      options.push({ cc: { changes: [add(f)] }, starts: [f], description: `add voter ${f}` });
  }
  if (l !== undefined && voters.length < target) {
    options.push({ cc: { changes: [add(l)] }, starts: [], description: `promote ${l}` });
  }
  if (learners.length >= 2 && voters.length + 2 <= target + 1) {
    const [a, b] = prng.shuffle([...learners]);
    options.push({
      cc: { changes: [add(a!), add(b!)], explicitLeave },
      starts: [],
      description: `joint promote ${a} ${b}${explicitLeave ? " (explicit leave)" : ""}`,
    });
  }
  if (l !== undefined && v !== undefined) {
    options.push({
      cc: { changes: [add(l), remove(v)], explicitLeave },
      starts: [],
      description: `joint replace ${v} by ${l}${explicitLeave ? " (explicit leave)" : ""}`,
    });
    if (prng.chance(0.3))
      options.push({ cc: { changes: [remove(l)] }, starts: [], description: `remove learner ${l}` });
  }
  if (v !== undefined && voters.length >= Math.max(2, target)) {
    options.push({ cc: { changes: [remove(v)] }, starts: [], description: `remove voter ${v}` });
    options.push({ cc: { changes: [learner(v)] }, starts: [], description: `demote ${v}` });
  }
  if (options.length === 0) return undefined;
  return prng.pick(options);
}
