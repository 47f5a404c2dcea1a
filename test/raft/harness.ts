// A small in-process cluster for the behaviour tests: RaftNodes on MemoryStorage,
// a network that delivers synchronously (FIFO) unless a link is cut, and a
// runtime that handles each Ready by the contract (persist, send, apply, advance).
// Readies can also be held (not persisted) to test asynchronous writes.

import {
  type Entry,
  EntryType,
  MemoryStorage,
  type Message,
  type MessageType,
  type RaftConfig,
  RaftNode,
  type ReadState,
  type Ready,
} from "../../src/raft/index.ts";

export interface Member {
  id: number;
  node: RaftNode;
  storage: MemoryStorage;
  /** Entries applied to the state machine, in order. */
  applied: Entry[];
  readStates: ReadState[];
  /** Readies taken but not persisted (when `hold` is set). */
  held: Ready[];
  /** When true, Readies are queued in `held` instead of being handled. */
  hold: boolean;
}

export type ConfigOverrides = Partial<Omit<RaftConfig, "id" | "storage">>;

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export class Cluster {
  readonly members = new Map<number, Member>();
  /** Messages in flight, delivered FIFO. */
  queue: Message[] = [];
  /** Cut links as "from-to". */
  private readonly cut = new Set<string>();
  /** Optional filter: return false to drop a message. */
  filter: ((m: Message) => boolean) | undefined;
  /** Every message delivered, for assertions. */
  delivered: Message[] = [];

  constructor(
    ids: number[],
    readonly overrides: ConfigOverrides = {},
    voters: number[] = ids,
  ) {
    for (const id of ids) this.add(id, voters.includes(id) ? voters : []);
  }

  add(
    id: number,
    peers: number[],
    storage = new MemoryStorage(),
    extra: ConfigOverrides = {},
    applied: Entry[] = [],
  ): Member {
    const node = new RaftNode({
      id,
      peers,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      seed: id,
      ...this.overrides,
      ...extra,
    });
    const m: Member = { id, node, storage, applied, readStates: [], held: [], hold: false };
    this.members.set(id, m);
    this.handle(id, node.ready());
    return m;
  }

  get(id: number): Member {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  node(id: number): RaftNode {
    return this.get(id).node;
  }

  /** Handles a Ready by the contract (or holds it), following each advance. */
  handle(id: number, rd: Ready | null): void {
    const m = this.get(id);
    let next = rd;
    while (next) {
      if (m.hold) {
        for (const msg of next.immediateMessages) this.send(msg);
        next.immediateMessages = [];
        m.held.push(next);
        return;
      }
      next = this.process(m, next);
    }
  }

  private process(m: Member, rd: Ready): Ready | null {
    for (const msg of rd.immediateMessages) this.send(msg);
    if (rd.snapshot) {
      m.storage.applySnapshot(rd.snapshot);
      m.applied = [];
    }
    m.storage.append(rd.entries);
    if (rd.hardState) m.storage.setHardState(rd.hardState);
    for (const msg of rd.messages) this.send(msg);
    for (const e of rd.committedEntries) m.applied.push(e);
    if (rd.confState) m.storage.setConfState(rd.confState);
    for (const rs of rd.readStates) m.readStates.push(rs);
    return m.node.advance(rd);
  }

  /** Persists and advances the held Readies of `id`, in order. */
  release(id: number): void {
    const m = this.get(id);
    m.hold = false;
    // Advance in the order received: a Ready returned by advance() goes behind
    // the ones still held.
    const queue = m.held;
    m.held = [];
    while (queue.length > 0) {
      const next = this.process(m, queue.shift()!);
      if (next) queue.push(next);
    }
  }

  private send(msg: Message): void {
    this.queue.push(msg);
  }

  /** Delivers queued messages until none are left (bounded). Returns how many were delivered. */
  deliver(maxMessages = 100_000): number {
    let n = 0;
    while (this.queue.length > 0) {
      if (n++ >= maxMessages) throw new Error("deliver: message storm");
      const msg = this.queue.shift()!;
      if (this.cut.has(`${msg.from}-${msg.to}`)) continue;
      if (this.filter && !this.filter(msg)) continue;
      const target = this.members.get(msg.to);
      if (!target) continue;
      this.delivered.push(msg);
      this.handle(msg.to, target.node.step(msg));
    }
    return n;
  }

  /** Takes the queued messages without delivering them. */
  drain(): Message[] {
    const q = this.queue;
    this.queue = [];
    return q;
  }

  step(id: number, msg: Message): void {
    this.handle(id, this.node(id).step(msg));
  }

  tick(id: number, n = 1): void {
    for (let i = 0; i < n; i++) this.handle(id, this.node(id).tick());
  }

  tickAll(n = 1, deliver = true): void {
    for (let i = 0; i < n; i++) {
      for (const id of this.members.keys()) this.tick(id);
      if (deliver) this.deliver();
    }
  }

  campaign(id: number): void {
    this.handle(id, this.node(id).campaign());
    this.deliver();
  }

  propose(id: number, data: string | Uint8Array): void {
    this.handle(id, this.node(id).propose(typeof data === "string" ? enc(data) : data));
    this.deliver();
  }

  isolate(id: number): void {
    for (const other of this.members.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}-${other}`);
      this.cut.add(`${other}-${id}`);
    }
  }

  cutLink(a: number, b: number): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  leaders(): number[] {
    return [...this.members.values()].filter((m) => m.node.status().role === "leader").map((m) => m.id);
  }

  leader(): number {
    const ls = this.leaders();
    if (ls.length !== 1) throw new Error(`expected one leader, have ${JSON.stringify(ls)}`);
    return ls[0]!;
  }

  /** Data of the normal, non-empty entries `id` has applied. */
  appliedData(id: number): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0)
      .map((e) => dec(e.data));
  }

  /** Restarts a node from its storage, losing everything not persisted. */
  restart(id: number, extra: ConfigOverrides = {}): Member {
    const old = this.get(id);
    const applied = old.applied.length > 0 ? old.applied[old.applied.length - 1]!.index : 0;
    const snapIndex = old.storage.snapshot().metadata.index;
    // The record of applied entries carries over (as a state machine's would),
    // before the restarted node hands out its first Ready.
    return this.add(id, [], old.storage, { applied: Math.max(applied, snapIndex), ...extra }, old.applied);
  }

  messagesOfType(t: MessageType): Message[] {
    return this.queue.filter((m) => m.type === t);
  }
}
