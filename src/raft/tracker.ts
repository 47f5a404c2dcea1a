// The membership configuration (voters, joint outgoing voters, learners) and the
// leader's Progress for every member; tallies votes and computes commit.

import type { Progress } from "./progress.ts";
import { jointActive, jointCommitted, jointVote, type VoteResult } from "./quorum.ts";
import type { ConfState, NodeId } from "./types.ts";

export interface TrackerConfig {
  voters: Set<NodeId>;
  /** The old voters while in a joint config; empty otherwise. */
  votersOutgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

export function configFromConfState(cs: ConfState): TrackerConfig {
  return {
    voters: new Set(cs.voters),
    votersOutgoing: new Set(cs.votersOutgoing),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
}

export function confStateOf(c: TrackerConfig): ConfState {
  const sorted = (s: Set<NodeId>) => [...s].sort((a, b) => a - b);
  return {
    voters: sorted(c.voters),
    learners: sorted(c.learners),
    votersOutgoing: sorted(c.votersOutgoing),
    learnersNext: sorted(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return {
    voters: new Set(c.voters),
    votersOutgoing: new Set(c.votersOutgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

export class ProgressTracker {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
  votes = new Map<NodeId, boolean>();

  constructor(
    config: TrackerConfig,
    progress: Map<NodeId, Progress>,
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {
    this.config = config;
    this.progress = progress;
  }

  private joint() {
    return { incoming: this.config.voters, outgoing: this.config.votersOutgoing };
  }

  isJoint(): boolean {
    return this.config.votersOutgoing.size > 0;
  }

  isVoter(id: NodeId): boolean {
    return this.config.voters.has(id) || this.config.votersOutgoing.has(id);
  }

  isMember(id: NodeId): boolean {
    return this.isVoter(id) || this.config.learners.has(id) || this.config.learnersNext.has(id);
  }

  /** Exactly one voter in total (and not joint). */
  isSingleton(): boolean {
    return this.config.voters.size === 1 && this.config.votersOutgoing.size === 0;
  }

  /** Every voter, incoming and outgoing, once each, in id order. */
  voterIds(): NodeId[] {
    const s = new Set([...this.config.voters, ...this.config.votersOutgoing]);
    return [...s].sort((a, b) => a - b);
  }

  /** The largest index committed by the configuration's quorum(s). */
  committed(): number {
    return this.committedBy((id) => this.progress.get(id)?.match ?? 0);
  }

  /** The largest value that a quorum of voters has reached (by `metric`). */
  committedBy(metric: (id: NodeId) => number): number {
    return jointCommitted(this.joint(), metric);
  }

  quorumActive(self: NodeId): boolean {
    return jointActive(this.joint(), (id) => id === self || (this.progress.get(id)?.recentActive ?? false));
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: jointVote(this.joint(), this.votes) };
  }

  confState(): ConfState {
    return confStateOf(this.config);
  }
}
