// Helpers shared by the membership, read-index and leader-transfer behaviour
// tests (B51–B65). Built on the Cluster harness; nothing here changes it.

import { expect } from "vitest";
import {
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  decodeConfChange,
  type Entry,
  EntryType,
  type Message,
  RaftError,
  type RaftErrorCode,
  type ReadState,
} from "../../src/raft/index.ts";
import type { Cluster } from "./harness.ts";

/** Runs `fn` and asserts it throws a RaftError with `code`. */
export function expectRaftError(fn: () => unknown, code: RaftErrorCode): RaftError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected RaftError ${code}`).toBeInstanceOf(RaftError);
  expect((caught as RaftError).code).toBe(code);
  return caught as RaftError;
}

/** Proposes a membership change on `id`, handles the Ready and delivers everything. */
export function proposeConf(c: Cluster, id: number, cc: ConfChange): void {
  c.handle(id, c.node(id).proposeConfChange(cc));
  c.deliver();
}

export const change = (type: ConfChangeSingle["type"], nodeId: number): ConfChangeSingle => ({
  type,
  nodeId,
});

/** Whether an entry is the empty ConfChange that leaves a joint configuration. */
export function isLeaveJoint(e: Entry): boolean {
  return e.type === EntryType.ConfChange && decodeConfChange(e.data).changes.length === 0;
}

export function isConfChange(e: Entry): boolean {
  return e.type === EntryType.ConfChange;
}

/** The membership as `id` currently sees it. */
export function config(c: Cluster, id: number): ConfState {
  return c.node(id).status().config;
}

/** Ticks every node (delivering after each round) until `done` holds; fails after `max` rounds. */
export function tickUntil(c: Cluster, done: () => boolean, max = 200, what = "condition"): number {
  for (let i = 0; i < max; i++) {
    if (done()) return i;
    c.tickAll(1);
  }
  if (done()) return max;
  throw new Error(`tickUntil: ${what} not reached within ${max} rounds`);
}

/** Ticks until exactly one node is leader and it is one of `among`; returns it. */
export function electAmong(c: Cluster, among: number[], max = 200): number {
  tickUntil(
    c,
    () => {
      const ls = c.leaders().filter((id) => among.includes(id));
      return ls.length === 1;
    },
    max,
    `a leader among ${JSON.stringify(among)}`,
  );
  return c.leaders().find((id) => among.includes(id))!;
}

/** Records every confState persisted by `id` (with the node's role at that moment). */
export function recordConfStates(c: Cluster, id: number): { cs: ConfState; role: string }[] {
  const m = c.get(id);
  const out: { cs: ConfState; role: string }[] = [];
  const orig = m.storage.setConfState.bind(m.storage);
  m.storage.setConfState = (cs: ConfState) => {
    out.push({ cs: structuredClone(cs), role: m.node.status().role });
    orig(cs);
  };
  return out;
}

/** The read states every member has received, with who received them. */
export function allReadStates(c: Cluster): (ReadState & { at: number })[] {
  const out: (ReadState & { at: number })[] = [];
  for (const m of c.members.values()) for (const rs of m.readStates) out.push({ ...rs, at: m.id });
  return out;
}

/** Delivers queued messages, but stashes (removes and returns) those `stash` selects. */
export function deliverStashing(c: Cluster, stash: (m: Message) => boolean): Message[] {
  const stashed: Message[] = [];
  const prev = c.filter;
  c.filter = (m) => {
    if (stash(m)) {
      stashed.push(m);
      return false;
    }
    return prev ? prev(m) : true;
  };
  try {
    c.deliver();
  } finally {
    c.filter = prev;
  }
  return stashed;
}
