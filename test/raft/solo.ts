// Helpers shared by the terms/election, PreVote/CheckQuorum and replication
// behaviour tests (B1–B27): one node driven by hand, and storages and messages
// built for it. Built on the public raft API; nothing here changes the harness.

import {
  type HardState,
  MemoryStorage,
  type Message,
  type MessageType,
  makeEntry,
  NONE,
  newMessage,
  type RaftConfig,
  RaftNode,
  type Ready,
  type Status,
} from "../../src/raft/index.ts";
import { enc } from "./harness.ts";

export type Overrides = Partial<Omit<RaftConfig, "id" | "storage" | "peers">>;

/**
 * One node driven by hand: every Ready is persisted to its storage and advanced
 * at once, and the messages it emits are collected in `out` (every Ready handled
 * is kept in `readies`).
 */
export class Solo {
  readonly node: RaftNode;
  readonly storage: MemoryStorage;
  out: Message[] = [];
  readies: Ready[] = [];

  constructor(
    readonly id: number,
    peers: number[],
    overrides: Overrides = {},
    storage = new MemoryStorage(),
  ) {
    this.storage = storage;
    this.node = new RaftNode({
      id,
      peers,
      storage,
      electionTick: 10,
      heartbeatTick: 1,
      seed: id,
      ...overrides,
    });
    this.handle(this.node.ready());
  }

  handle(first: Ready | null): void {
    let rd = first;
    while (rd) {
      this.readies.push(rd);
      this.out.push(...rd.immediateMessages);
      if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
      this.storage.append(rd.entries);
      if (rd.hardState) this.storage.setHardState(rd.hardState);
      this.out.push(...rd.messages);
      if (rd.confState) this.storage.setConfState(rd.confState);
      rd = this.node.advance(rd);
    }
  }

  step(m: Message): void {
    this.handle(this.node.step(m));
  }

  tick(n = 1): void {
    for (let i = 0; i < n; i++) this.handle(this.node.tick());
  }

  campaign(): void {
    this.handle(this.node.campaign());
  }

  /** The messages emitted since the last take. */
  take(): Message[] {
    const o = this.out;
    this.out = [];
    return o;
  }

  status(): Status {
    return this.node.status();
  }
}

/**
 * A storage (for `voters`, none by default) holding entries 1..n with the given
 * terms, and a hard state. Entry (index, term) carries the data `i<index>t<term>`.
 */
export function storageWith(
  terms: number[],
  hs: Partial<HardState> = {},
  voters: number[] = [],
): MemoryStorage {
  const s = new MemoryStorage(voters);
  s.append(terms.map((t, i) => makeEntry(t, i + 1, enc(`i${i + 1}t${t}`))));
  s.setHardState({ term: terms.at(-1) ?? 0, vote: NONE, commit: 0, ...hs });
  return s;
}

export const msg = (type: MessageType, fields: Partial<Message>) => newMessage(type, fields);

/** A small xorshift PRNG for a test's own fault schedule (not the node's). */
export function testRng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}
