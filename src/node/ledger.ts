// A minimal replicated state machine: an append-only ledger of opaque records
// with dense sequence numbers, kept in LMDB beside the Raft log. It proves the
// runtime end to end (tests, `raftbus node`'s internal hook) before the broker
// takes its place. Its writes and its applied index share one transaction.

import type { Database, RootDatabase } from "lmdb";
import type { StateMachine } from "./state-machine.ts";

const APPLIED = -1;
const COUNT = -2;

export class LedgerStateMachine implements StateMachine<number> {
  private readonly db: Database<Uint8Array | number, number>;
  private applied: number;
  private count: number;

  constructor(env: RootDatabase) {
    this.db = env.openDB<Uint8Array | number, number>("ledger", {
      encoding: "msgpack",
      keyEncoding: "ordered-binary",
    });
    this.applied = (this.db.get(APPLIED) as number | undefined) ?? 0;
    this.count = (this.db.get(COUNT) as number | undefined) ?? 0;
  }

  apply(index: number, command: Uint8Array): number {
    const seq = this.count++;
    this.db.put(seq, command);
    this.db.put(COUNT, this.count);
    this.skip(index);
    return seq;
  }

  skip(index: number): void {
    if (index <= this.applied) throw new Error(`ledger: apply ${index} after ${this.applied}`);
    this.applied = index;
    this.db.put(APPLIED, index);
  }

  appliedIndex(): number {
    return this.applied;
  }

  size(): number {
    return this.count;
  }

  /** Records [from, from+limit) — only what has been applied here. */
  read(from: number, limit: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const end = Math.min(this.count, from + limit);
    for (let i = from; i < end; i++) {
      const v = this.db.get(i);
      if (v instanceof Uint8Array) out.push(v);
      else break; // not yet visible (written in this turn's batch)
    }
    return out;
  }

  snapshot(): Uint8Array {
    // The caller has flushed: read the latest committed state, not a stale view.
    this.db.resetReadTxn();
    // [u32 count][per record: u32 len, bytes]
    const parts: Uint8Array[] = [];
    let size = 4;
    for (let i = 0; i < this.count; i++) {
      const v = this.db.get(i);
      const b = v instanceof Uint8Array ? v : new Uint8Array();
      parts.push(b);
      size += 4 + b.length;
    }
    const out = new Uint8Array(size);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, parts.length);
    let o = 4;
    for (const p of parts) {
      dv.setUint32(o, p.length);
      out.set(p, o + 4);
      o += 4 + p.length;
    }
    return out;
  }

  restore(data: Uint8Array, index: number): void {
    for (let i = 0; i < this.count; i++) this.db.remove(i);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const n = data.length >= 4 ? dv.getUint32(0) : 0;
    let o = 4;
    for (let i = 0; i < n; i++) {
      const len = dv.getUint32(o);
      this.db.put(i, data.slice(o + 4, o + 4 + len));
      o += 4 + len;
    }
    this.count = n;
    this.applied = index;
    this.db.put(COUNT, n);
    this.db.put(APPLIED, index);
  }
}
