// The whole-cluster safety properties (B66–B69, B32, and a few persistence and
// read checks), checked by the simulator after every step. Each keeps a registry
// over the whole run, across crashes and restarts:
//   - the leader of every term (B66);
//   - every entry ever handed out, by (index, term), with its checksum and the
//     term of the entry before it (B67: by induction, same (index, term) means
//     same prefix);
//   - every committed entry, by index, with the term it was seen committed in
//     (B68, B69);
//   - the state machine's hash at every applied index (B69);
//   - every vote granted, by (voter, term) (B35).

import { checksumOk } from "../raft/crc32c.ts";
import { type Entry, type Message, MessageType, type NodeId, type ReadState, Role } from "../raft/index.ts";
import { InvariantViolation } from "./failure.ts";
import type { LogMirror } from "./log-mirror.ts";
import type { StateMachine } from "./state-machine.ts";

/** What the simulator observes of one node after a step. */
export interface Observed {
  id: NodeId;
  term: number;
  role: Role;
  commit: number;
  /** The durable applied index of its state machine. */
  applied: number;
}

interface EntryLink {
  crc: number;
  prevTerm: number;
}

interface CommittedEntry {
  term: number;
  crc: number;
  /** The term of the node that first saw it committed (>= the term it was committed in). */
  commitTerm: number;
}

interface NodeTrack {
  term: number;
  commit: number;
  applied: number;
  /** Committed indexes up to here were registered from this node's log. */
  registeredTo: number;
  /** The last term this node was seen leading (its log was checked then, B68). */
  ledTerm: number;
}

const MAX_TERM = 1 << 21;

function linkKey(index: number, term: number): number {
  if (term >= MAX_TERM) throw new Error(`term ${term} too large for the simulator's registry`);
  return index * MAX_TERM + term;
}

function fail(behaviour: string, detail: string): never {
  throw new InvariantViolation(behaviour, detail);
}

export class Invariants {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly links = new Map<number, EntryLink>();
  private readonly committed = new Map<number, CommittedEntry>();
  private readonly appliedHash = new Map<number, number>();
  private readonly votes = new Map<number, NodeId>();
  private readonly nodes = new Map<NodeId, NodeTrack>();
  /** Read contexts waiting for their ReadState, with the highest committed index when asked. */
  private readonly reads = new Map<string, number>();
  /** Highest index seen committed anywhere. */
  maxCommitted = 0;
  readsServed = 0;
  leadersElected = 0;

  private track(id: NodeId): NodeTrack {
    let t = this.nodes.get(id);
    if (t === undefined) {
      t = { term: 0, commit: 0, applied: 0, registeredTo: 0, ledTerm: 0 };
      this.nodes.set(id, t);
    }
    return t;
  }

  /** A new incarnation: term and commit restart from the node's storage. */
  restarted(id: NodeId): void {
    const t = this.track(id);
    t.term = 0;
    t.commit = 0;
  }

  /**
   * B67 (and B26, B33's checksums): entries a node hands out to be persisted. Each
   * (index, term) names one entry with one predecessor term, whoever holds it.
   * Called before the mirror takes them.
   */
  entriesHandedOut(id: NodeId, entries: readonly Entry[], mirror: LogMirror, isLeader: boolean): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (isLeader && first <= mirror.lastIndex()) {
      fail("B26", `leader ${id} rewrites its log from ${first} (last ${mirror.lastIndex()})`);
    }
    if (first > mirror.lastIndex() + 1) {
      fail("B67", `node ${id} appends at ${first}, leaving a gap after ${mirror.lastIndex()}`);
    }
    let prevTerm = mirror.term(first - 1);
    let expect = first;
    for (const e of entries) {
      if (e.index !== expect)
        fail("B67", `node ${id} hands out non-contiguous entries (${e.index} after ${expect - 1})`);
      if (!checksumOk(e)) fail("B67", `node ${id} hands out entry ${e.index}@${e.term} with a bad checksum`);
      if (prevTerm !== undefined && prevTerm > e.term) {
        fail("B67", `node ${id}: entry ${e.index}@${e.term} follows an entry of higher term ${prevTerm}`);
      }
      const key = linkKey(e.index, e.term);
      const known = this.links.get(key);
      if (known === undefined) {
        if (prevTerm !== undefined) this.links.set(key, { crc: e.crc, prevTerm });
      } else {
        if (known.crc !== e.crc) {
          fail("B67", `node ${id}: two different entries at index ${e.index} term ${e.term}`);
        }
        if (prevTerm !== undefined && known.prevTerm !== prevTerm) {
          fail(
            "B67",
            `node ${id}: entry ${e.index}@${e.term} follows term ${prevTerm} here, term ${known.prevTerm} elsewhere`,
          );
        }
      }
      prevTerm = e.term;
      expect++;
    }
  }

  /** B66, B68, B32 and B4: a node's state after a step. */
  observe(o: Observed, mirror: LogMirror): void {
    const t = this.track(o.id);
    if (o.term < t.term) fail("B4", `node ${o.id}'s term went back from ${t.term} to ${o.term}`);
    t.term = o.term;
    if (o.commit < t.commit) fail("B32", `node ${o.id}'s commit went back from ${t.commit} to ${o.commit}`);
    t.commit = o.commit;
    if (o.applied < t.applied)
      fail("B32", `node ${o.id}'s applied went back from ${t.applied} to ${o.applied}`);
    t.applied = o.applied;
    if (o.applied > o.commit) fail("B32", `node ${o.id}: applied ${o.applied} > commit ${o.commit}`);
    if (o.commit > mirror.lastIndex()) {
      fail("B32", `node ${o.id}: commit ${o.commit} > last index ${mirror.lastIndex()}`);
    }

    // Register what this node now holds as committed, checking it against what others saw.
    const from = Math.max(t.registeredTo, mirror.snapshotIndex()) + 1;
    for (let i = from; i <= o.commit; i++) {
      this.commitEntry(o.id, i, mirror.term(i)!, mirror.crc(i)!, o.term);
    }
    if (o.commit > t.registeredTo) t.registeredTo = o.commit;

    if (o.role === Role.Leader) {
      const other = this.leaderOfTerm.get(o.term);
      if (other !== undefined && other !== o.id) {
        fail("B66", `two leaders in term ${o.term}: ${other} and ${o.id}`);
      }
      if (other === undefined) {
        this.leaderOfTerm.set(o.term, o.id);
        this.leadersElected++;
      }
      if (t.ledTerm !== o.term) {
        t.ledTerm = o.term;
        this.checkLeaderCompleteness(o.id, o.term, mirror);
      }
    }
  }

  /** B68: a new leader's log holds every entry seen committed in its term or before. */
  private checkLeaderCompleteness(id: NodeId, term: number, mirror: LogMirror): void {
    for (const [index, c] of this.committed) {
      if (c.commitTerm > term || index <= mirror.snapshotIndex()) continue;
      const have = mirror.term(index);
      if (have === undefined) {
        fail(
          "B68",
          `leader ${id} of term ${term} lacks committed entry ${index}@${c.term} (last ${mirror.lastIndex()})`,
        );
      }
      if (have !== c.term || mirror.crc(index) !== c.crc) {
        fail(
          "B68",
          `leader ${id} of term ${term} has ${index}@${have} where ${index}@${c.term} was committed`,
        );
      }
    }
  }

  private commitEntry(id: NodeId, index: number, term: number, crc: number, nodeTerm: number): void {
    const c = this.committed.get(index);
    if (c === undefined) {
      this.committed.set(index, { term, crc, commitTerm: nodeTerm });
      if (index > this.maxCommitted) this.maxCommitted = index;
      return;
    }
    if (c.term !== term || c.crc !== crc) {
      fail(
        "B69",
        `node ${id} holds ${index}@${term} as committed, but ${index}@${c.term} was committed before`,
      );
    }
  }

  /** B69 and B30: a node applies `e` in order; same index, same state everywhere. */
  applied(id: NodeId, e: Entry, before: number, after: StateMachine): void {
    if (e.index !== before + 1) fail("B30", `node ${id} applies ${e.index} after ${before}`);
    if (!checksumOk(e)) fail("B69", `node ${id} applies entry ${e.index}@${e.term} with a bad checksum`);
    this.commitEntry(id, e.index, e.term, e.crc, this.track(id).term);
    this.checkHash(id, after.applied, after.hash);
  }

  /** B69 (and B48): a state machine restored from a snapshot equals the one others had at that index. */
  snapshotRestored(id: NodeId, term: number, sm: StateMachine): void {
    const c = this.committed.get(sm.applied);
    if (c !== undefined && c.term !== term) {
      fail(
        "B69",
        `node ${id} installs a snapshot at ${sm.applied}@${term} but ${sm.applied}@${c.term} was committed`,
      );
    }
    this.checkHash(id, sm.applied, sm.hash);
  }

  private checkHash(id: NodeId, index: number, hash: number): void {
    const h = this.appliedHash.get(index);
    if (h === undefined) this.appliedHash.set(index, hash);
    else if (h !== hash)
      fail("B69", `node ${id}'s state at applied index ${index} differs from another node's`);
  }

  /** B35 and B9: a vote granted (and sent, so durable) is never granted to another candidate in that term. */
  messageSent(m: Message): void {
    if (m.type !== MessageType.VoteResp || m.reject) return;
    const key = m.term * 1024 + m.from;
    const prior = this.votes.get(key);
    if (prior === undefined) this.votes.set(key, m.to);
    else if (prior !== m.to) fail("B35", `node ${m.from} voted for ${prior} and ${m.to} in term ${m.term}`);
  }

  readRequested(context: string): void {
    this.reads.set(context, this.maxCommitted);
  }

  /** B61: a read point is at least every index committed before the read was asked. */
  readState(id: NodeId, rs: ReadState): void {
    const min = this.reads.get(rs.context);
    if (min === undefined) return;
    this.reads.delete(rs.context);
    if (rs.index < min) {
      fail(
        "B61",
        `node ${id}: read ${rs.context} at ${rs.index}, but ${min} was committed before it was asked`,
      );
    }
    this.readsServed++;
  }

  /** Reads never answered (e.g. lost with a leader) are forgotten so the registry stays bounded. */
  forgetReads(): void {
    this.reads.clear();
  }
}
