// The address book: where to reach each member (raft for peers, http for
// clients). Replicated through membership changes and announcements, persisted
// beside the Raft state, and carried inside snapshots.

import type { NodeId } from "../raft/index.ts";
import type { DurableStorage } from "./ports.ts";

export interface MemberAddress {
  raft: string;
  http: string;
}

export type AddressBook = Map<NodeId, MemberAddress>;

const KEY = "members";

export function loadAddressBook(storage: Pick<DurableStorage, "getMeta">): AddressBook {
  const raw = storage.getMeta(KEY);
  if (!raw) return new Map();
  return parseBook(new TextDecoder().decode(raw));
}

export function saveAddressBook(storage: Pick<DurableStorage, "putMeta">, book: AddressBook): void {
  storage.putMeta(KEY, new TextEncoder().encode(JSON.stringify([...book])));
}

function parseBook(json: string): AddressBook {
  const rows = JSON.parse(json) as [NodeId, MemberAddress][];
  return new Map(rows);
}

/** Snapshot layout: [u32 address book length][address book JSON][state machine bytes]. */
export function encodeSnapshot(book: AddressBook, state: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify([...book]));
  const out = new Uint8Array(4 + json.length + state.length);
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  out.set(state, 4 + json.length);
  return out;
}

export function decodeSnapshot(data: Uint8Array): { members: AddressBook; state: Uint8Array } {
  if (data.length < 4) return { members: new Map(), state: data };
  const len = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (4 + len > data.length) throw new Error("snapshot: address book overruns the data");
  const members = parseBook(new TextDecoder().decode(data.subarray(4, 4 + len)));
  return { members, state: data.subarray(4 + len) };
}
