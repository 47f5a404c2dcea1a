// The application's replicated state machine, as the runtime drives it.
//
// The state lives in LMDB and is durable as it is applied, so a local Raft
// snapshot carries no application data (etcd's model): it is only the applied
// index, term and membership. A follower that needs a snapshot receives a
// stream instead: the state machine on the leader opens a source at its
// applied index; the follower's installer stages what it receives and swaps it
// in at one small commit point (restore). The runtime moves the bytes; their
// meaning belongs to the state machine.

export interface StateMachine<R = unknown> {
  /**
   * Applies one committed command at `index`. Deterministic: every node computes
   * the same result from the same commands. Its writes must be queued in the
   * same LMDB write batch as the applied index (apply and applied index move in
   * one transaction), i.e. issued synchronously here.
   */
  apply(index: number, command: Uint8Array): R;
  /** The last applied index, as durable as the state it describes. */
  appliedIndex(): number;
  /** Records that `index` (an entry with no command for the application) was applied. */
  skip(index: number): void;

  /**
   * Follower side: what this node already holds (opaque to the runtime), sent
   * to the leader so that it streams only what is missing.
   */
  haveVector(): Uint8Array;
  /**
   * Leader side: a stream of the state at appliedIndex(). Called between
   * Ready batches, once every applied write is durable, so that the state on
   * disk is exactly the applied state. `have` is a follower's haveVector().
   */
  openSnapshotSource(have: Uint8Array): SnapshotSource;
  /** Follower side: stages a received stream; nothing is visible until restore(). */
  openInstaller(): SnapshotInstaller;
  /**
   * The commit point: replaces the state with what `token` names (a finished
   * installer's token, or an empty array for the empty state) as of `index`.
   * Its writes join the current LMDB batch, with the Raft log's reset.
   */
  restore(token: Uint8Array, index: number): void;
}

export interface SnapshotSource {
  /** The applied index the stream describes. */
  readonly index: number;
  /**
   * The next chunk of at most about `maxBytes`, or null at the end. Each call
   * does a bounded amount of work (a few milliseconds at most).
   */
  next(maxBytes: number): Uint8Array | null;
  /** Releases what the source holds (read transactions, the sweeper's pause). */
  close(): void;
  /** Bytes of state and of stored batches produced so far. */
  readonly stats: { stateBytes: number; batchBytes: number; batches: number };
}

export interface SnapshotInstaller {
  /** Stages one chunk (its writes are queued in LMDB); throws on a malformed chunk. */
  write(chunk: Uint8Array): void;
  /**
   * Bytes written but not yet committed to disk: the receiver holds its
   * acknowledgement while this is high, so a slow disk slows the sender
   * instead of growing memory.
   */
  backlogBytes(): number;
  /** Checks the stream is complete and returns the token restore() takes. */
  finish(): Uint8Array;
  /** Gives up: staged data stays invisible (and is reused by a later stream). */
  abort(): void;
}
