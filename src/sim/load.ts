// The clients: proposals of small random payloads to any node (followers
// forward them), ReadIndex calls, leadership transfers, forced campaigns and
// membership changes. Refusals (RaftError) are expected and counted.

import type { NodeId } from "../raft/index.ts";
import type { Cluster, SimNode } from "./cluster.ts";
import { planConfChange } from "./membership.ts";
import { makePayload } from "./payload.ts";
import type { Prng } from "./prng.ts";
import type { Scenario } from "./scenario.ts";

export class ClientLoad {
  private nextPayload = 1;
  private nextRead = 1;
  proposals = 0;
  confChanges = 0;
  private readonly cluster: Cluster;
  private readonly prng: Prng;
  private readonly sc: Scenario;

  constructor(cluster: Cluster, prng: Prng, sc: Scenario) {
    this.cluster = cluster;
    this.prng = prng;
    this.sc = sc;
  }

  newPayloadId(): number {
    return this.nextPayload++;
  }

  private anyRunning(): SimNode | undefined {
    const rs = this.cluster.running();
    return rs.length > 0 ? this.prng.pick(rs) : undefined;
  }

  /** Proposes payload `id` at node `n`. */
  propose(n: SimNode, id: number): boolean {
    const p = makePayload(id, this.prng);
    this.proposals++;
    return this.cluster.client(n, `propose #${id}`, (node) => node.propose(p));
  }

  step(): void {
    const rates = this.sc.rates;
    const c = this.cluster;
    if (this.prng.chance(rates.propose)) {
      const n = this.anyRunning();
      if (n !== undefined) {
        if (this.prng.chance(0.2)) {
          const ids = [this.newPayloadId(), this.newPayloadId()];
          const ps = ids.map((id) => makePayload(id, this.prng));
          this.proposals += 2;
          c.client(n, `propose batch #${ids}`, (node) => node.proposeBatch(ps));
        } else {
          this.propose(n, this.newPayloadId());
        }
      }
    }
    if (this.prng.chance(rates.read)) {
      const n = this.anyRunning();
      if (n !== undefined) {
        const ctx = `read-${this.nextRead++}`;
        c.inv.readRequested(ctx);
        c.client(n, ctx, (node) => node.readIndex(ctx));
      }
    }
    if (this.prng.chance(rates.transfer)) {
      const leader = c.leader();
      const n = leader !== undefined && this.prng.chance(0.8) ? leader : this.anyRunning();
      if (n !== undefined) {
        const voters = c.status(n).config.voters;
        const to: NodeId =
          voters.length > 0 && this.prng.chance(0.9)
            ? this.prng.pick(voters)
            : this.prng.int(1, this.sc.maxNodeId);
        c.client(n, `transfer to ${to}`, (node) => node.transferLeader(to));
      }
    }
    if (this.prng.chance(rates.campaign)) {
      const n = this.anyRunning();
      if (n !== undefined) c.client(n, "campaign", (node) => node.campaign());
    }
    if (this.prng.chance(rates.confChange)) this.changeMembership();
  }

  private changeMembership(): void {
    const c = this.cluster;
    const leader = c.leader();
    if (leader === undefined) return;
    const fresh: NodeId[] = [];
    for (let id = 1; id <= this.sc.maxNodeId; id++) if (!c.everMember.has(id)) fresh.push(id);
    const plan = planConfChange(this.prng, c.status(leader).config, fresh, this.sc.clusterSize);
    if (plan === undefined) return;
    for (const id of plan.starts) c.start(id, []);
    if (leader.runtime === undefined) return;
    this.confChanges++;
    c.client(leader, plan.description, (node) => node.proposeConfChange(plan.cc));
  }
}
