// The replicated application: a running hash over every applied entry, plus the
// last few payloads so that snapshots carry some bulk (and so get chunked). It is
// stored with its applied index, and both survive a crash together (durable apply).

import { crc32c } from "../raft/crc32c.ts";
import type { Entry } from "../raft/index.ts";

const MAGIC = 0x5349_4d31; // "SIM1"
/** Payloads kept for the snapshot's bulk. */
const RECENT_MAX = 16;

export class StateMachine {
  applied = 0;
  /** Running hash of every entry applied so far (the whole state, for B69). */
  hash = 0;
  recent: Uint8Array[] = [];

  apply(e: Entry): void {
    const word = new Uint8Array(4);
    new DataView(word.buffer).setUint32(0, e.crc >>> 0, true);
    this.hash = crc32c(word, this.hash);
    this.applied = e.index;
    if (e.data.length > 0) {
      this.recent.push(e.data);
      if (this.recent.length > RECENT_MAX) this.recent.shift();
    }
  }

  clone(): StateMachine {
    const c = new StateMachine();
    c.applied = this.applied;
    c.hash = this.hash;
    c.recent = [...this.recent];
    return c;
  }

  encode(): Uint8Array {
    let size = 20;
    for (const r of this.recent) size += 4 + r.length;
    const out = new Uint8Array(size);
    const v = new DataView(out.buffer);
    v.setUint32(0, MAGIC, true);
    v.setFloat64(4, this.applied, true);
    v.setUint32(12, this.hash >>> 0, true);
    v.setUint32(16, this.recent.length, true);
    let at = 20;
    for (const r of this.recent) {
      v.setUint32(at, r.length, true);
      out.set(r, at + 4);
      at += 4 + r.length;
    }
    return out;
  }

  static decode(data: Uint8Array): StateMachine {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.length < 20 || v.getUint32(0, true) !== MAGIC) {
      throw new Error(`state machine: bad snapshot data (${data.length} bytes)`);
    }
    const sm = new StateMachine();
    sm.applied = v.getFloat64(4, true);
    sm.hash = v.getUint32(12, true);
    const n = v.getUint32(16, true);
    let at = 20;
    for (let i = 0; i < n; i++) {
      if (at + 4 > data.length) throw new Error("state machine: truncated snapshot data");
      const len = v.getUint32(at, true);
      if (at + 4 + len > data.length) throw new Error("state machine: truncated snapshot data");
      sm.recent.push(data.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    if (at !== data.length) throw new Error("state machine: trailing bytes in snapshot data");
    return sm;
  }
}
