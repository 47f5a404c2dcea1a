// Fault injection: crashes (losing what was not written) and restarts,
// partitions (clean and partial) and heals, and spells of a quiet network.

import type { NodeId } from "../raft/index.ts";
import type { Cluster, SimNode } from "./cluster.ts";
import { RELIABLE } from "./network.ts";
import { randomPartition } from "./partition.ts";
import type { Prng } from "./prng.ts";
import type { Scenario } from "./scenario.ts";

export class Faults {
  private readonly cluster: Cluster;
  private readonly prng: Prng;
  private readonly sc: Scenario;
  partitions = 0;

  constructor(cluster: Cluster, prng: Prng, sc: Scenario) {
    this.cluster = cluster;
    this.prng = prng;
    this.sc = sc;
    cluster.net.faults = sc.net;
  }

  /** Restarts the crashed nodes whose downtime is over. */
  restartDue(): void {
    for (const n of this.cluster.nodes.values()) {
      if (n.runtime === undefined && n.restartAt <= this.cluster.now) this.cluster.restart(n);
    }
  }

  step(): void {
    const c = this.cluster;
    const rates = this.sc.rates;
    for (const n of c.nodes.values()) {
      if (n.runtime !== undefined && this.prng.chance(rates.crash)) {
        c.crash(n, this.prng.int(1, this.sc.maxDowntimeTicks));
      }
    }
    this.restartDue();
    if (c.net.partition === undefined) {
      if (this.prng.chance(rates.partition)) {
        const leader = c.leader();
        const p = randomPartition(this.prng, [...c.nodes.keys()], leader?.id);
        c.net.partition = p;
        this.partitions++;
        c.trace(() => `partition: ${p.description}`);
      }
    } else if (this.prng.chance(rates.heal)) {
      c.net.heal();
      c.trace(() => "partition healed");
    }
    if (this.prng.chance(rates.netChange)) {
      c.net.faults = c.net.faults === RELIABLE ? this.sc.net : RELIABLE;
      c.trace(() => (c.net.faults === RELIABLE ? "network quiet" : "network faulty"));
    }
  }

  /** Heals everything: a reliable network, no partition, every crashed node back. */
  healAll(): void {
    const c = this.cluster;
    c.net.faults = RELIABLE;
    c.net.heal();
    for (const n of c.nodes.values()) if (!n.retired) n.restartAt = c.now;
    this.restartDue();
    c.trace(() => "heal: network reliable, partitions healed, crashed nodes restarted");
  }

  /** Each tick after healing: crashed nodes come back; removed ones may be shut down. */
  healedStep(): void {
    if (!this.sc.raft.checkQuorum) this.decommissionRemoved();
    this.restartDue();
  }

  /**
   * Without CheckQuorum a removed server that never learnt of its removal keeps
   * deposing leaders with higher terms (Raft thesis 4.2.3), so, as an operator
   * would, shut down former members once the membership no longer needs them:
   * outside the latest applied membership, and outside what every member of it
   * has applied. (Never-members may still be joining: their change can be in flight.)
   */
  private decommissionRemoved(): void {
    const c = this.cluster;
    let latest: SimNode | undefined;
    for (const n of c.nodes.values())
      if (latest === undefined || n.disk.sm.applied > latest.disk.sm.applied) latest = n;
    if (latest === undefined) return;
    const members = membersOf(latest);
    const needed = new Set(members);
    for (const id of members) {
      const m = c.nodes.get(id);
      if (m !== undefined) for (const x of membersOf(m)) needed.add(x);
    }
    for (const n of c.nodes.values()) {
      if (!needed.has(n.id) && c.everMember.has(n.id)) c.retire(n);
    }
  }
}

/** Every member of the membership a node has applied (durably). */
function membersOf(n: SimNode): Set<NodeId> {
  const cs = n.disk.storage.initialState().confState;
  return new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
}
