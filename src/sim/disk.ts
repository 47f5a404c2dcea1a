// One node's disk: its MemoryStorage (log, hard state, membership, snapshot) and
// the durable state machine with its applied index. What is written here
// survives a crash; a write made without fsync (a Ready with mustSync false)
// stays in the "page cache" until the next synced write and is lost on a crash.

import {
  type ConfState,
  cloneConfState,
  type HardState,
  MemoryStorage,
  type Snapshot,
} from "../raft/index.ts";
import { StateMachine } from "./state-machine.ts";

export class NodeDisk {
  readonly storage: MemoryStorage;
  /** The durable state machine; `sm.applied` is the durable applied index. */
  sm = new StateMachine();
  /** Hard state written without fsync, lost on a crash (B36). */
  private unsynced: HardState | undefined;
  /** The last hard state written (synced or not), to check mustSync (B36). */
  lastHardState: HardState = { term: 0, vote: 0, commit: 0 };

  /** A blank disk: a new node learns its membership from its `peers` or from the leader. */
  constructor() {
    this.storage = new MemoryStorage();
  }

  /** Everything not synced is lost. */
  crash(): void {
    this.unsynced = undefined;
    this.lastHardState = this.storage.initialState().hardState;
  }

  private sync(): void {
    if (this.unsynced !== undefined) this.storage.setHardState(this.unsynced);
    this.unsynced = undefined;
  }

  /** Installs a snapshot and restores the state machine from it, in one transaction. */
  installSnapshot(snap: Snapshot): StateMachine {
    this.sync();
    const sm =
      snap.data.length === 0 && snap.metadata.index === 0
        ? new StateMachine()
        : StateMachine.decode(snap.data);
    if (sm.applied !== snap.metadata.index) {
      throw new Error(`snapshot at ${snap.metadata.index} holds a state machine at ${sm.applied}`);
    }
    this.storage.applySnapshot(snap);
    this.sm = sm;
    return sm;
  }

  /** Writes a Ready's entries and hard state; fsyncs if `mustSync`. */
  write(entries: Parameters<MemoryStorage["append"]>[0], hs: HardState | undefined, mustSync: boolean): void {
    this.storage.append(entries);
    if (hs !== undefined) {
      this.lastHardState = { ...hs };
      if (mustSync) {
        this.unsynced = undefined;
        this.storage.setHardState(hs);
      } else {
        this.unsynced = { ...hs };
      }
    } else if (mustSync) {
      this.sync();
    }
  }

  /** The durable apply: the state machine, its applied index and the membership, in one synced transaction. */
  commitApply(sm: StateMachine, conf: ConfState | undefined): void {
    this.sync();
    this.sm = sm;
    if (conf !== undefined) this.storage.setConfState(cloneConfState(conf));
  }

  /** The application's snapshot at its applied index, then compaction keeping `keep` entries. */
  takeSnapshot(keep: number): Snapshot | undefined {
    const idx = this.sm.applied;
    if (idx <= this.storage.snapshot().metadata.index || idx > this.storage.lastIndex()) return undefined;
    const conf = this.storage.initialState().confState;
    const snap = this.storage.createSnapshot(idx, conf, this.sm.encode());
    const compactTo = Math.max(this.storage.firstIndex() - 1, idx - keep);
    this.storage.compact(compactTo);
    return snap;
  }
}
