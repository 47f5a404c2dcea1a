// The sweeper: deletes the batches nothing can read any more, on every node,
// in the background and in bounded slices. Apply only moves metadata (a
// retention trim moves a partition's start; a topic delete forgets its id),
// so that no apply does work that grows with the data; this is where the
// bytes go.
//
// A pass walks the partitions present in the batch database (one key lookup
// per partition: keys sort by topic id, then partition) and removes, per
// partition, every batch wholly below its start, or all of a deleted topic's
// batches. Batches of topic ids this node does not know yet (staged by a
// snapshot stream) and batches beyond a partition's end are kept. Each turn
// removes at most maxKeysPerTurn keys and looks at most at maxPartitionsPerTurn
// partitions, so one turn costs a few milliseconds at most; deletions join
// the current LMDB write batch. The sweeper waits while a snapshot stream is
// being sent (it still reads batches a trim may have freed), as etcd skips
// compaction while snapshots are in flight.

import { batchKey, parseBatchKey } from "./batch.ts";
import { faultArmed, faultPoint } from "./fault-points.ts";
import type { BrokerState } from "./state.ts";

export interface SweeperOptions {
  /** Time between turns while there is work. Default 100 ms. */
  intervalMs?: number;
  /** Keys removed per turn at most. Default 1000. */
  maxKeysPerTurn?: number;
  /** Partitions looked at per turn at most. Default 1000. */
  maxPartitionsPerTurn?: number;
}

export interface SweeperStats {
  passes: number;
  keysRemoved: number;
}

const MAX_U32 = 0xffff_ffff;

export class Sweeper {
  readonly stats: SweeperStats = { passes: 0, keysRemoved: 0 };
  private timer: NodeJS.Timeout | undefined;
  /** The next partition prefix to look at in this pass; undefined between passes. */
  private cursor: Buffer | undefined;
  private dirty = true;
  private readonly intervalMs: number;
  private readonly maxKeys: number;
  private readonly maxPartitions: number;
  /** Told of a pass that failed (the server logs it). */
  onError: (e: Error) => void = () => {};
  private readonly onGarbage = () => {
    this.dirty = true;
  };

  constructor(
    private readonly state: BrokerState,
    opts: SweeperOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 100;
    this.maxKeys = opts.maxKeysPerTurn ?? 1000;
    this.maxPartitions = opts.maxPartitionsPerTurn ?? 1000;
  }

  start(): void {
    this.state.on("garbage", this.onGarbage);
    this.timer = setInterval(() => {
      try {
        this.turn();
      } catch (e) {
        // A batch that fails its checksum stops this pass, never the node; the
        // next garbage event (or restart) tries again.
        this.cursor = undefined;
        this.onError(e instanceof Error ? e : new Error(String(e)));
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.state.off("garbage", this.onGarbage);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Whether a pass is under way or due. */
  busy(): boolean {
    return this.dirty || this.cursor !== undefined;
  }

  /** One bounded slice of work; returns the keys removed. */
  turn(): number {
    if (this.state.sweepPaused()) return 0;
    if (this.cursor === undefined) {
      if (!this.dirty) return 0;
      // A pass starts: garbage made from here on needs another pass.
      this.dirty = false;
      this.cursor = batchKey(0, 0, 0);
    }
    const db = this.state.batches;
    let removed = 0;
    for (let n = 0; n < this.maxPartitions && removed < this.maxKeys; n++) {
      let first: Buffer | undefined;
      for (const k of db.getKeys({ start: this.cursor, limit: 1 })) first = k as Buffer;
      if (!first) {
        this.cursor = undefined;
        this.stats.passes++;
        break;
      }
      const { topicId, partition } = parseBatchKey(first);
      const next = nextPartition(topicId, partition);
      const limit = this.state.sweepLimit(topicId, partition);
      if (limit !== "none") {
        const end = limit === "all" ? next : batchKey(topicId, partition, limit);
        let here = 0;
        for (const k of db.getKeys({ start: first, end, limit: this.maxKeys - removed })) {
          this.state.removeBatch(k as Buffer);
          here++;
        }
        removed += here;
        if (removed >= this.maxKeys) {
          // Out of budget: this partition may have more; resume here.
          this.cursor = first;
          break;
        }
      }
      if (!next) {
        this.cursor = undefined;
        this.stats.passes++;
        break;
      }
      this.cursor = next;
    }
    this.stats.keysRemoved += removed;
    if (removed > 0 && faultArmed("sweep")) void this.state.env.flushed.then(() => faultPoint("sweep"));
    return removed;
  }
}

function nextPartition(topicId: number, partition: number): Buffer | undefined {
  if (partition < MAX_U32) return batchKey(topicId, partition + 1, 0);
  if (topicId < MAX_U32) return batchKey(topicId + 1, 0, 0);
  return undefined;
}
