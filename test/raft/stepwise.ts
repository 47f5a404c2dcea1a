// Runtimes that handle one Ready at a time, for tests that need to stop between
// the steps of the Ready contract: `processOneHeld` works on a harness member
// whose Readies are held; `Solo` drives a single RaftNode whose peers are the
// test itself (messages are collected, not delivered).

import {
  type Entry,
  MemoryStorage,
  type Message,
  makeEntry,
  newMessage,
  type RaftConfig,
  RaftNode,
  type Ready,
} from "../../src/raft/index.ts";
import { type Cluster, enc, type Member } from "./harness.ts";

/** Persists what a Ready carries and applies its committed entries (steps 2 and 4). */
function persistAndApply(m: Pick<Member, "storage" | "applied">, rd: Ready): void {
  if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
  m.storage.append(rd.entries);
  if (rd.hardState) m.storage.setHardState(rd.hardState);
  for (const e of rd.committedEntries) m.applied.push(e);
  if (rd.confState) m.storage.setConfState(rd.confState);
}

/**
 * Handles the oldest held Ready of `id` by the contract (persist, send, apply,
 * advance). A Ready returned by advance is held in turn (its immediate messages
 * go out at once), so the member stays in asynchronous mode; `Cluster.release`
 * handles the rest.
 */
export function processOneHeld(c: Cluster, id: number): Ready {
  const m = c.get(id);
  const rd = m.held.shift();
  if (!rd) throw new Error(`node ${id} holds no Ready`);
  if (!m.hold) throw new Error(`node ${id} is not holding its Readies`);
  if (rd.snapshot) m.applied = []; // as the harness does: the state machine restarts from the snapshot
  persistAndApply(m, rd);
  for (const msg of rd.messages) c.queue.push(msg);
  for (const rs of rd.readStates) m.readStates.push(rs);
  const next = m.node.advance(rd);
  if (next) c.handle(id, next); // m.hold is set: sends its immediate messages and holds it
  return rd;
}

/**
 * Does steps 1-4 of the contract for the `n` oldest held Readies of `id` (persist,
 * send, apply) but never advances them: what a crash right before advance leaves.
 * Only a restart may follow.
 */
export function persistHeldWithoutAdvance(c: Cluster, id: number, n: number): void {
  const m = c.get(id);
  for (const rd of m.held.splice(0, n)) {
    if (rd.snapshot) m.applied = [];
    persistAndApply(m, rd);
    for (const msg of rd.messages) c.queue.push(msg);
  }
}

/** A single node; the test plays its peers. */
export class Solo {
  readonly node: RaftNode;
  readonly applied: Entry[] = [];
  /** Messages it sent, in order (immediate and after-write alike). */
  sent: Message[] = [];
  readonly readies: Ready[] = [];

  constructor(
    readonly storage: MemoryStorage,
    config: Omit<RaftConfig, "storage">,
  ) {
    this.node = new RaftNode({ electionTick: 10, heartbeatTick: 1, ...config, storage });
    this.handle(this.node.ready());
  }

  /** Handles a Ready and every Ready advance returns, by the contract. */
  handle(rd: Ready | null): void {
    let next = rd;
    while (next) {
      this.readies.push(next);
      for (const m of next.immediateMessages) this.sent.push(m);
      persistAndApply(this, next);
      for (const m of next.messages) this.sent.push(m);
      next = this.node.advance(next);
    }
  }

  step(m: Partial<Message> & Pick<Message, "type">): void {
    this.handle(this.node.step(msg(m)));
  }

  /** Takes the messages sent so far. */
  take(): Message[] {
    const out = this.sent;
    this.sent = [];
    return out;
  }
}

/** A message with every field defaulted. */
export function msg(m: Partial<Message> & Pick<Message, "type">): Message {
  return newMessage(m.type, m);
}

/** Storage for voters `voters` holding entries of the given terms at 1, 2, ... */
export function storageWithLog(voters: number[], terms: number[], hard = { term: 0, vote: 0, commit: 0 }) {
  const s = new MemoryStorage(voters);
  s.append(terms.map((t, i) => makeEntry(t, i + 1, enc(`e${i + 1}@${t}`))));
  const term = Math.max(hard.term, ...terms, 0);
  s.setHardState({ ...hard, term });
  return s;
}
