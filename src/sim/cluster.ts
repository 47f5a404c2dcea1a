// The simulated cluster: every node (a RaftNode over its own disk, with a
// runtime), the network between them, crashes and restarts, and the checks run
// after every step. One PRNG drives it all.

import {
  type ConfState,
  type Entry,
  EntryType,
  isRaftError,
  type Message,
  MessageType,
  type NodeId,
  RaftNode,
  type Ready,
  Role,
  type Status,
} from "../raft/index.ts";
import { NodeDisk } from "./disk.ts";
import { InvariantViolation } from "./failure.ts";
import { Invariants } from "./invariants.ts";
import { copyForDelivery, SimNetwork } from "./network.ts";
import { payloadId } from "./payload.ts";
import type { Prng } from "./prng.ts";
import { NodeRuntime } from "./runtime.ts";
import type { Scenario } from "./scenario.ts";
import { describeMessage } from "./trace.ts";

/** Deliveries per tick at most (the rest wait for the next tick). */
const MAX_DELIVERIES_PER_TICK = 2000;

export interface SimNode {
  id: NodeId;
  disk: NodeDisk;
  /** Undefined while the node is down. */
  runtime: NodeRuntime | undefined;
  /** Tick at which a crashed node comes back. */
  restartAt: number;
  /** The voters it boots with (the initial cluster), or none for a node that joins later. */
  peers: NodeId[];
  incarnation: number;
  /** Shut down for good (a removed member, decommissioned). */
  retired: boolean;
}

export interface ClusterStats {
  ticks: number;
  steps: number;
  crashes: number;
  restarts: number;
  snapshots: number;
  /** Refusals by RaftError code (expected under faults). */
  refusals: Map<string, number>;
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>();
  readonly net: SimNetwork;
  readonly inv = new Invariants();
  readonly stats: ClusterStats = {
    ticks: 0,
    steps: 0,
    crashes: 0,
    restarts: 0,
    snapshots: 0,
    refusals: new Map(),
  };
  /** Ids that appeared in any membership anyone applied: never started afresh. */
  readonly everMember = new Set<NodeId>();
  now = 0;
  /** Payload id whose first applied index is wanted (the liveness probe), and that index. */
  probeId: number | undefined;
  probeIndex: number | undefined;
  private readonly sc: Scenario;
  private readonly prng: Prng;
  private readonly traceFn: ((line: string) => void) | undefined;

  constructor(sc: Scenario, prng: Prng, trace: ((line: string) => void) | undefined) {
    this.sc = sc;
    this.prng = prng;
    this.traceFn = trace;
    this.net = new SimNetwork(prng.fork());
    for (const id of sc.initialVoters) this.everMember.add(id);
  }

  trace(line: () => string): void {
    if (this.traceFn !== undefined) this.traceFn(`[${this.now}] ${line()}`);
  }

  running(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.runtime !== undefined) out.push(n);
    return out;
  }

  /** Starts a node for the first time: an initial voter, or a fresh node that will join. */
  start(id: NodeId, peers: NodeId[]): void {
    if (this.nodes.has(id)) return;
    const n: SimNode = {
      id,
      disk: new NodeDisk(),
      runtime: undefined,
      restartAt: 0,
      peers,
      incarnation: 0,
      retired: false,
    };
    this.nodes.set(id, n);
    this.boot(n);
  }

  private boot(n: SimNode): void {
    const r = this.sc.raft;
    n.incarnation++;
    const node = new RaftNode({
      id: n.id,
      peers: n.peers,
      storage: n.disk.storage,
      applied: n.disk.sm.applied,
      seed: this.prng.nextU32() || 1,
      ...r,
    });
    const rt = new NodeRuntime(n.id, node, n.disk, {
      invariants: this.inv,
      send: (m) => this.send(m),
      isLeader: () => node.status().role === Role.Leader,
      onApplied: (e) => this.onApplied(e),
      onConfApplied: (cs) => this.onConfApplied(cs),
      trace: (f) => this.trace(f),
    });
    n.runtime = rt;
    this.inv.restarted(n.id);
    this.trace(() => `boot ${n.id} (incarnation ${n.incarnation}, applied ${n.disk.sm.applied})`);
    rt.accept(node.ready());
    this.afterInput(n);
  }

  crash(n: SimNode, downTicks: number): void {
    if (n.runtime === undefined) return;
    this.stats.crashes++;
    n.runtime = undefined;
    n.disk.crash();
    n.restartAt = this.now + downTicks;
    this.trace(() => `crash ${n.id} (down ${downTicks} ticks)`);
  }

  /** Shuts a node down for good. */
  retire(n: SimNode): void {
    if (n.retired) return;
    n.retired = true;
    n.restartAt = Number.POSITIVE_INFINITY;
    if (n.runtime !== undefined) n.disk.crash();
    n.runtime = undefined;
    this.trace(() => `decommission ${n.id}`);
  }

  restart(n: SimNode): void {
    if (n.runtime !== undefined) return;
    this.stats.restarts++;
    this.boot(n);
  }

  private onApplied(e: Entry): void {
    if (this.probeId === undefined || this.probeIndex !== undefined || e.type !== EntryType.Normal) return;
    if (payloadId(e.data) === this.probeId) this.probeIndex = e.index;
  }

  private onConfApplied(cs: ConfState): void {
    for (const id of [...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]) {
      this.everMember.add(id);
    }
  }

  private send(m: Message): void {
    // Forwarded TransferLeader and ReadIndex keep their originator as `from`, which may be the receiver.
    if (m.to === m.from && m.type !== MessageType.TransferLeader && m.type !== MessageType.ReadIndex)
      throw new InvariantViolation("B34", `node ${m.from} sends ${MessageType[m.type]} to itself`);
    this.inv.messageSent(m);
    this.net.send(m, this.now);
  }

  status(n: SimNode): Status {
    return n.runtime!.node.status();
  }

  /** After a node took an input: maybe write and apply at once (synchronous runtime), then check. */
  afterInput(n: SimNode): void {
    const rt = n.runtime;
    if (rt === undefined) return;
    if (this.prng.chance(this.sc.syncRate)) rt.drain();
    this.observe(n);
  }

  /** The per-step checks (B66, B68, B32) on one node. */
  observe(n: SimNode): void {
    const rt = n.runtime;
    if (rt === undefined) return;
    const st = rt.node.status();
    if (st.lastIndex !== rt.mirror.lastIndex()) {
      throw new Error(
        `simulator: node ${n.id}'s log mirror ends at ${rt.mirror.lastIndex()}, core at ${st.lastIndex}`,
      );
    }
    this.inv.observe(
      { id: n.id, term: st.term, role: st.role, commit: st.commit, applied: n.disk.sm.applied },
      rt.mirror,
    );
  }

  /** Feeds one input to a running node and handles the Ready it returns. */
  input(n: SimNode, f: (node: RaftNode) => Ready | null): void {
    const rt = n.runtime;
    if (rt === undefined) return;
    this.stats.steps++;
    rt.accept(f(rt.node));
    this.afterInput(n);
  }

  /**
   * A client call: a RaftError thrown by the call itself is an expected refusal,
   * counted; anything else is a failure. Returns whether it was accepted.
   */
  client(n: SimNode, what: string, f: (node: RaftNode) => Ready | null): boolean {
    const rt = n.runtime;
    if (rt === undefined) return false;
    let ready: Ready | null;
    try {
      ready = f(rt.node);
    } catch (e) {
      if (!isRaftError(e)) throw e;
      this.stats.refusals.set(e.code, (this.stats.refusals.get(e.code) ?? 0) + 1);
      this.trace(() => `client ${what} at ${n.id}: refused ${e.code}`);
      return false;
    }
    this.trace(() => `client ${what} at ${n.id}`);
    this.stats.steps++;
    rt.accept(ready);
    this.afterInput(n);
    return true;
  }

  /** Every running node ticks once. */
  tickAll(): void {
    this.stats.ticks++;
    for (const n of this.nodes.values()) this.input(n, (node) => node.tick());
  }

  /** Delivers the messages due now, in random order, checking after each. */
  deliver(reportUnreachableRate: number): void {
    const due = this.net.takeDue(this.now);
    let delivered = 0;
    for (const m of due) {
      if (delivered >= MAX_DELIVERIES_PER_TICK) {
        this.net.requeue(m, this.now);
        continue;
      }
      const to = this.nodes.get(m.to);
      const cut = this.net.isCut(m.from, m.to);
      if (to?.runtime === undefined || cut) {
        if (cut) this.net.stats.cut++;
        else this.net.stats.dropped++;
        const from = this.nodes.get(m.from);
        if (from?.runtime !== undefined && this.prng.chance(reportUnreachableRate)) {
          this.trace(() => `unreachable ${m.from}->${m.to}`);
          this.input(from, (node) => node.reportUnreachable(m.to));
        }
        continue;
      }
      delivered++;
      this.net.stats.delivered++;
      this.trace(() => describeMessage(m));
      this.input(to, (node) => node.step(copyForDelivery(m)));
    }
  }

  /** Asynchronous writes catching up: each node persists/applies some of what it has queued. */
  background(): void {
    for (const n of this.nodes.values()) {
      const rt = n.runtime;
      if (rt === undefined || rt.pipelined() === 0) continue;
      if (this.prng.chance(0.5)) rt.drain();
      else rt.workSome(this.prng.int(0, 3), this.prng.int(0, 3));
      this.observe(n);
    }
  }

  /** The application snapshots and compacts now and then (only at what the core has seen applied). */
  maybeSnapshot(n: SimNode): void {
    const rt = n.runtime;
    if (rt === undefined) return;
    const snapIndex = n.disk.storage.snapshot().metadata.index;
    if (n.disk.sm.applied <= snapIndex) return;
    const snap = n.disk.takeSnapshot(this.prng.int(0, 4));
    if (snap !== undefined) {
      this.stats.snapshots++;
      this.trace(() => `snapshot ${n.id} at ${snap.metadata.index}@${snap.metadata.term}`);
    }
  }

  /** The running node that leads in the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const n of this.running()) {
      const st = this.status(n);
      if (st.role === Role.Leader && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }
}
