// An in-memory state machine implementing the snapshot-stream half of
// StateMachine (src/node/state-machine.ts), for tests of the catch-up
// protocol: its state is a list of chunks; its have vector is how many of
// them it holds (a source streams only the rest); its installer records every
// chunk written, so a test can tell exactly what was installed.

import type { SnapshotInstaller, SnapshotSource, StateMachine } from "../../src/node/state-machine.ts";

/** Deterministic pseudo-random bytes (xorshift32), so that chunks differ. */
export function chunkOf(seed: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export class FakeInstaller implements SnapshotInstaller {
  readonly written: Uint8Array[] = [];
  finished = false;
  aborted = false;

  constructor(
    readonly id: number,
    readonly heldChunks: number,
  ) {}

  write(chunk: Uint8Array): void {
    if (this.finished || this.aborted) throw new Error("installer is closed");
    this.written.push(chunk.slice());
  }

  /** Bytes "not yet on disk": a test sets it to hold the follower's acknowledgements. */
  backlog = 0;

  backlogBytes(): number {
    return this.backlog;
  }

  finish(): Uint8Array {
    if (this.aborted) throw new Error("installer was aborted");
    this.finished = true;
    return new Uint8Array(new Uint32Array([this.id]).buffer);
  }

  abort(): void {
    this.aborted = true;
  }
}

export class FakeSource implements SnapshotSource {
  closed = false;
  private next_: number;
  readonly stats = { stateBytes: 0, batchBytes: 0, batches: 0 };

  constructor(
    readonly index: number,
    private readonly chunks: Uint8Array[],
    from: number,
  ) {
    this.next_ = from;
  }

  next(maxBytes: number): Uint8Array | null {
    if (this.closed) throw new Error("source is closed");
    const c = this.chunks[this.next_];
    if (!c) return null;
    if (c.length > maxBytes) throw new Error(`chunk of ${c.length} bytes > ${maxBytes}`);
    this.next_++;
    this.stats.batchBytes += c.length;
    this.stats.batches++;
    return c;
  }

  close(): void {
    this.closed = true;
  }
}

export class FakeStateMachine implements StateMachine<number> {
  chunks: Uint8Array[];
  applied: number;
  readonly sources: FakeSource[] = [];
  readonly installers: FakeInstaller[] = [];
  restored: { token: Uint8Array; index: number }[] = [];

  constructor(chunks: Uint8Array[] = [], applied = 0) {
    this.chunks = chunks;
    this.applied = applied;
  }

  apply(index: number, command: Uint8Array): number {
    this.applied = index;
    this.chunks.push(command.slice());
    return this.chunks.length;
  }

  appliedIndex(): number {
    return this.applied;
  }

  skip(index: number): void {
    this.applied = index;
  }

  haveVector(): Uint8Array {
    return new Uint8Array(new Uint32Array([this.chunks.length]).buffer);
  }

  openSnapshotSource(have: Uint8Array): SnapshotSource {
    const held = have.length === 4 ? new Uint32Array(have.slice().buffer)[0]! : 0;
    const s = new FakeSource(this.applied, this.chunks, Math.min(held, this.chunks.length));
    this.sources.push(s);
    return s;
  }

  openInstaller(): SnapshotInstaller {
    const inst = new FakeInstaller(this.installers.length + 1, this.chunks.length);
    this.installers.push(inst);
    return inst;
  }

  restore(token: Uint8Array, index: number): void {
    this.restored.push({ token: token.slice(), index });
    this.applied = index;
    if (token.length === 0) {
      this.chunks = [];
      return;
    }
    const id = new Uint32Array(token.slice().buffer)[0]!;
    const inst = this.installers.find((i) => i.id === id);
    if (!inst?.finished) throw new Error(`restore of token ${id}: not a finished installer`);
    this.chunks = [...this.chunks.slice(0, inst.heldChunks), ...inst.written];
  }
}
