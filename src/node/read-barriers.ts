// Read barriers: linearizable read points (ReadIndex). A barrier asks the core
// for a read index (confirmed by a quorum of heartbeats on the leader, asked
// of the leader on a follower); when the ReadState comes back in a Ready, the
// barrier waits until this node has applied that index, then resolves.
//
// Bound: at most maxPendingReads barriers wait at once; beyond, BACKPRESSURE.

import type { ReadState } from "../raft/index.ts";
import type { Core } from "./core.ts";
import { RuntimeError } from "./runtime-error.ts";

export interface ReadBarrierOptions {
  maxPendingReads: number;
  defaultTimeoutMs: number;
}

interface ReadWaiter {
  resolve: (index: number) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** The read index, once the core confirmed it (0 before). */
  index: number;
}

export class ReadBarriers {
  /** Asked of the core, by context; waiting for their ReadState. */
  private readonly asked = new Map<string, ReadWaiter>();
  /** Confirmed, waiting for apply to reach their index. */
  private readonly waitingApply: ReadWaiter[] = [];
  private seq = 0;

  constructor(
    private readonly core: Pick<Core, "id" | "isStopped" | "act">,
    private readonly o: ReadBarrierOptions,
  ) {}

  /**
   * A linearizable read point: resolves once this node has applied everything
   * committed at the time of the call (ReadIndex, confirmed by a quorum).
   */
  readBarrier(timeoutMs = this.o.defaultTimeoutMs): Promise<number> {
    if (this.core.isStopped()) return Promise.reject(new RuntimeError("STOPPED", "node is shutting down"));
    if (this.asked.size + this.waitingApply.length >= this.o.maxPendingReads) {
      return Promise.reject(new RuntimeError("BACKPRESSURE", "too many reads waiting"));
    }
    const ctx = `${this.core.id}-${++this.seq}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asked.delete(ctx);
        const i = this.waitingApply.indexOf(w);
        if (i >= 0) this.waitingApply.splice(i, 1);
        reject(new RuntimeError("COMMIT_TIMEOUT", `read not confirmed within ${timeoutMs} ms`));
      }, timeoutMs);
      const w: ReadWaiter = { resolve, reject, timer, index: 0 };
      this.asked.set(ctx, w);
      try {
        this.core.act((node) => node.readIndex(ctx));
      } catch (e) {
        clearTimeout(timer);
        this.asked.delete(ctx);
        reject(new RuntimeError("NO_LEADER", (e as Error).message));
      }
    });
  }

  /** A Ready's read states: their barriers now wait for apply. */
  take(readStates: ReadState[]): void {
    for (const rs of readStates) {
      const w = this.asked.get(rs.context);
      if (!w) continue;
      this.asked.delete(rs.context);
      w.index = rs.index;
      this.waitingApply.push(w);
    }
  }

  /** After a batch is applied: resolves the barriers whose index is applied. */
  afterApply(applied: () => number): void {
    if (this.waitingApply.length === 0) return;
    const a = applied();
    const still: ReadWaiter[] = [];
    for (const w of this.waitingApply) {
      if (a >= w.index) {
        clearTimeout(w.timer);
        w.resolve(w.index);
      } else still.push(w);
    }
    this.waitingApply.length = 0;
    this.waitingApply.push(...still);
  }

  /** Refuses every waiting barrier (the runtime is stopping). */
  stop(): void {
    for (const r of [...this.asked.values(), ...this.waitingApply]) {
      clearTimeout(r.timer);
      r.reject(new RuntimeError("STOPPED", "node is shutting down"));
    }
    this.asked.clear();
    this.waitingApply.length = 0;
  }
}
