// Replicated broker commands. A client request is prepared by the leader
// (which stamps the time) into a command; every node applies the same bytes.
// Requests are msgpack; decoded commands are checked field by field, so a
// malformed command is a no-op with an error result, never a crash.

import { Packr } from "msgpackr";
import type { TopicConfig } from "./types.ts";

const packr = new Packr({ useRecords: false, variableMapSize: true });

export interface WireRecord {
  k: string | null;
  v: Uint8Array;
  j: boolean;
  h: Record<string, string>;
  p?: number;
}

export type Command =
  | ({ t: "create"; ts: number } & TopicConfig)
  | { t: "delete"; name: string; ts: number }
  | { t: "produce"; topic: string; ts: number; records: WireRecord[]; idem?: { key: string; hash: string } }
  | { t: "commit"; group: string; topic: string; partition: number; offset: number; ts: number }
  | { t: "trim"; topic: string; partition: number; before: number; ts: number };

/** A request is a command before the leader stamps it. */
export type Request = DistributiveOmit<Command, "ts">;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export function encodeRequest(r: Request): Uint8Array {
  return packr.pack(r);
}

/** Runs on the leader: the command carries the leader's clock. */
/**
 * Runs on the leader: the command is [f64 leader clock][request bytes], so the
 * stamp costs no decode and re-encode of the request on the hot path.
 */
export function prepareCommand(request: Uint8Array, now: number): Uint8Array {
  const out = new Uint8Array(8 + request.length);
  new DataView(out.buffer).setFloat64(0, now);
  out.set(request, 8);
  return out;
}

export function decodeCommand(b: Uint8Array): Command | undefined {
  if (b.length < 8) return undefined;
  const ts = new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0);
  if (!Number.isFinite(ts)) return undefined;
  let c: unknown;
  try {
    c = packr.unpack(b.subarray(8));
  } catch {
    return undefined;
  }
  if (typeof c !== "object" || c === null) return undefined;
  const o = c as Record<string, unknown>;
  o.ts = ts;
  switch (o.t) {
    case "create":
      return typeof o.name === "string" && typeof o.partitions === "number" ? (o as Command) : undefined;
    case "delete":
      return typeof o.name === "string" ? (o as Command) : undefined;
    case "produce":
      return typeof o.topic === "string" && Array.isArray(o.records) ? (o as Command) : undefined;
    case "commit":
      return typeof o.group === "string" && typeof o.topic === "string" && typeof o.offset === "number"
        ? (o as Command)
        : undefined;
    case "trim":
      return typeof o.topic === "string" && typeof o.before === "number" ? (o as Command) : undefined;
    default:
      return undefined;
  }
}
