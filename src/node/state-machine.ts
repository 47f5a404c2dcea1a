// The application's replicated state machine, as the runtime drives it.

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
  /** A consistent serialisation of the state at appliedIndex(). */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot taken at `index`. */
  restore(data: Uint8Array, index: number): void;
}
