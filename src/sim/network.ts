// The simulated network: every message in flight waits a number of ticks, and
// may be dropped, duplicated or overtaken by later ones. Links can be cut (see
// partition.ts); a cut link drops what reaches it. The queue is bounded.

import type { Entry, Message, NodeId } from "../raft/index.ts";
import { linkKey, type Partition } from "./partition.ts";
import type { Prng } from "./prng.ts";

/** Messages in flight at most; beyond it new ones are dropped (a full socket buffer). */
export const MAX_IN_FLIGHT = 4096;

export interface NetFaults {
  dropRate: number;
  dupRate: number;
  /** Ordinary delay is uniform in [1, maxDelayTicks]. */
  maxDelayTicks: number;
  /** Some messages are held much longer (stale messages arrive late). */
  longDelayRate: number;
  longDelayTicks: number;
  /** Messages with entries that arrive with one entry's payload bit-flipped (its checksum unchanged). */
  corruptRate: number;
}

export const RELIABLE: NetFaults = {
  dropRate: 0,
  dupRate: 0,
  maxDelayTicks: 1,
  longDelayRate: 0,
  longDelayTicks: 0,
  corruptRate: 0,
};

interface InFlight {
  msg: Message;
  deliverAt: number;
}

export interface NetStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  cut: number;
  overflow: number;
  corrupted: number;
}

export class SimNetwork {
  faults: NetFaults = RELIABLE;
  partition: Partition | undefined;
  readonly stats: NetStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    cut: 0,
    overflow: 0,
    corrupted: 0,
  };
  private inflight: InFlight[] = [];
  private readonly prng: Prng;

  constructor(prng: Prng) {
    this.prng = prng;
  }

  inFlight(): number {
    return this.inflight.length;
  }

  send(msg: Message, now: number): void {
    this.stats.sent++;
    // Entries are shared by sender, receivers and storages: nobody may change them.
    for (const e of msg.entries) freezeEntry(e);
    if (this.prng.chance(this.faults.dropRate)) {
      this.stats.dropped++;
      return;
    }
    this.enqueue(this.maybeCorrupt(msg), now);
    if (this.prng.chance(this.faults.dupRate)) {
      this.stats.duplicated++;
      this.enqueue(msg, now);
    }
  }

  /** A copy with one entry's payload damaged, as a bad NIC or disk would: the receiver must notice. */
  private maybeCorrupt(msg: Message): Message {
    if (msg.entries.length === 0 || !this.prng.chance(this.faults.corruptRate)) return msg;
    const at = this.prng.int(0, msg.entries.length - 1);
    const e = msg.entries[at]!;
    const data = e.data.length > 0 ? e.data.slice() : new Uint8Array(1);
    const bit = this.prng.int(0, data.length * 8 - 1);
    data[bit >> 3]! ^= 1 << (bit & 7);
    const entries = msg.entries.slice();
    entries[at] = Object.freeze({ ...e, data });
    this.stats.corrupted++;
    return { ...msg, entries };
  }

  private enqueue(msg: Message, now: number): void {
    if (this.inflight.length >= MAX_IN_FLIGHT) {
      this.stats.overflow++;
      return;
    }
    const f = this.faults;
    const delay = this.prng.chance(f.longDelayRate)
      ? this.prng.int(1, Math.max(1, f.longDelayTicks))
      : this.prng.int(1, Math.max(1, f.maxDelayTicks));
    this.inflight.push({ msg, deliverAt: now + delay });
  }

  /** Puts a due message back for the next tick (no new faults: it was already sent). */
  requeue(msg: Message, now: number): void {
    this.inflight.push({ msg, deliverAt: now + 1 });
  }

  /** Removes and returns, in random order, the messages due by `now`. */
  takeDue(now: number): Message[] {
    const due: Message[] = [];
    const rest: InFlight[] = [];
    for (const f of this.inflight) {
      if (f.deliverAt <= now) due.push(f.msg);
      else rest.push(f);
    }
    this.inflight = rest;
    return this.prng.shuffle(due);
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.partition?.blocked.has(linkKey(from, to)) === true;
  }

  /** Heals every link; messages in flight keep going. */
  heal(): void {
    this.partition = undefined;
  }
}

function freezeEntry(e: Entry): void {
  if (!Object.isFrozen(e)) Object.freeze(e);
}

/** A copy of a message for one delivery, so a duplicate is unaffected by what the receiver does. */
export function copyForDelivery(m: Message): Message {
  return { ...m, entries: m.entries.slice() };
}
