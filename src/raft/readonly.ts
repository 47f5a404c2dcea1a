// ReadIndex requests on the leader waiting for a heartbeat quorum to confirm
// it is still the leader (§6.4 of the Raft thesis). Bounded: beyond
// MAX_PENDING_READS new requests are refused.

import type { NodeId } from "./types.ts";

export const MAX_PENDING_READS = 4096;

export interface ReadRequest {
  /** The commit index when the request arrived: the read point once confirmed. */
  index: number;
  /** Who asked: NONE for a local request, or a follower that forwarded it. */
  from: NodeId;
  context: string;
  acks: Set<NodeId>;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadRequest>();
  private queue: string[] = [];

  get size(): number {
    return this.pending.size;
  }

  /** Adds a request; returns false for a duplicate context or when full (B59). */
  add(index: number, from: NodeId, context: string): boolean {
    if (this.pending.has(context) || this.pending.size >= MAX_PENDING_READS) return false;
    this.pending.set(context, { index, from, context, acks: new Set() });
    this.queue.push(context);
    return true;
  }

  /** Records a heartbeat ack carrying `context`; returns who has acked, or undefined. */
  recvAck(id: NodeId, context: string): Set<NodeId> | undefined {
    const r = this.pending.get(context);
    if (!r) return undefined;
    r.acks.add(id);
    return r.acks;
  }

  /**
   * The request with `context` is confirmed: it and every request queued before
   * it are released (an ack for a later heartbeat confirms the earlier ones too).
   */
  advance(context: string): ReadRequest[] {
    const at = this.queue.indexOf(context);
    if (at < 0) return [];
    const released = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadRequest[] = [];
    for (const c of released) {
      const r = this.pending.get(c);
      if (r) out.push(r);
      this.pending.delete(c);
    }
    return out;
  }

  lastPendingContext(): string {
    return this.queue[this.queue.length - 1] ?? "";
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
