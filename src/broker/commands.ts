// Replicated broker commands. A client request is prepared by the leader
// (which stamps the time) into a command; every node applies the same bytes.
// Produce requests are binary and carry each partition's batch payload ready
// to store (encoded once, by the node that took the request); the others are
// msgpack. Decoded commands are checked field by field, so a malformed
// command is a no-op with an error result, never a crash.

import { Packr } from "msgpackr";
import { payloadSize, writePayload } from "./batch.ts";
import type { RecordIn, TopicConfig } from "./types.ts";

const packr = new Packr({ useRecords: false, variableMapSize: true });

/** One partition's records of a produce request: the payload of one batch. */
export interface ProduceSection {
  partition: number;
  count: number;
  payload: Uint8Array;
}

export interface ProduceCommand {
  t: "produce";
  topic: string;
  /** The topic's id when the request was taken (0: any), so a re-created topic is not written. */
  topicId: number;
  ts: number;
  sections: ProduceSection[];
  idem?: { key: string; hash: string };
}

export type Command =
  | ({ t: "create"; ts: number } & TopicConfig)
  | { t: "delete"; name: string; ts: number }
  | ProduceCommand
  | { t: "commit"; group: string; topic: string; partition: number; offset: number; ts: number }
  | {
      t: "trim";
      topic: string;
      partition: number;
      /** The start the leader saw: a trim applies only if the start is still there. */
      from: number;
      before: number;
      /** Bytes of the batches that fall wholly below `before` (and not below `from`). */
      bytes: number;
      ts: number;
    };

/**
 * A produce request as the node that took it builds it: each partition's
 * records, encoded straight into the request (or a payload already encoded).
 */
export interface ProduceRequest extends Omit<ProduceCommand, "ts" | "sections"> {
  sections: ({ partition: number; records: readonly RecordIn[] } | ProduceSection)[];
}

/** A request is a command before the leader stamps it. */
export type Request = DistributiveOmit<Exclude<Command, ProduceCommand>, "ts"> | ProduceRequest;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** First byte of a binary produce request (msgpack maps start with 0x80-0x8f or 0xde/0xdf). */
const PRODUCE_TAG = 0xb1;

export function encodeRequest(r: Request): Uint8Array {
  if (r.t === "produce") return encodeProduce(r);
  return packr.pack(r);
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

/**
 * [u8 tag][u8 flags: 1 = idempotency key][u32 topicId][u16 len][topic]
 * ([u16 len][key][u16 len][hash])? [u16 sections] then per section
 * [u32 partition][u32 count][u32 payload length][payload].
 */
function encodeProduce(r: ProduceRequest): Uint8Array {
  const topic = utf8.encode(r.topic);
  const key = r.idem ? utf8.encode(r.idem.key) : undefined;
  const hash = r.idem ? utf8.encode(r.idem.hash) : undefined;
  if (topic.length > 0xffff || (key?.length ?? 0) > 0xffff || (hash?.length ?? 0) > 0xffff) {
    throw new Error("produce request: topic or idempotency key too long");
  }
  if (r.sections.length > 0xffff) throw new Error("produce request: too many partitions");
  let size = 1 + 1 + 4 + 2 + topic.length + 2;
  if (key && hash) size += 4 + key.length + hash.length;
  const sizes = r.sections.map((s) => ("records" in s ? payloadSize(s.records) : s.payload.length));
  for (const n of sizes) size += 12 + n;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  out[o++] = PRODUCE_TAG;
  out[o++] = key ? 1 : 0;
  o = out.writeUInt32BE(r.topicId, o);
  o = out.writeUInt16BE(topic.length, o);
  out.set(topic, o);
  o += topic.length;
  if (key && hash) {
    o = out.writeUInt16BE(key.length, o);
    out.set(key, o);
    o += key.length;
    o = out.writeUInt16BE(hash.length, o);
    out.set(hash, o);
    o += hash.length;
  }
  o = out.writeUInt16BE(r.sections.length, o);
  r.sections.forEach((s, i) => {
    o = out.writeUInt32BE(s.partition, o);
    o = out.writeUInt32BE("records" in s ? s.records.length : s.count, o);
    o = out.writeUInt32BE(sizes[i]!, o);
    if ("records" in s) o = writePayload(out, o, s.records);
    else {
      out.set(s.payload, o);
      o += s.payload.length;
    }
  });
  if (o !== size) throw new Error(`produce request: ${o} bytes written, ${size} expected`);
  return out;
}

function decodeProduce(b: Uint8Array, ts: number): ProduceCommand | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 1;
  const need = (n: number) => o + n <= b.length;
  if (!need(7)) return undefined;
  const flags = b[o++]!;
  const topicId = dv.getUint32(o);
  o += 4;
  const str = (): string | undefined => {
    if (!need(2)) return undefined;
    const n = dv.getUint16(o);
    o += 2;
    if (!need(n)) return undefined;
    const v = utf8d.decode(b.subarray(o, o + n));
    o += n;
    return v;
  };
  const topic = str();
  if (topic === undefined) return undefined;
  let idem: { key: string; hash: string } | undefined;
  if (flags & 1) {
    const key = str();
    const hash = str();
    if (key === undefined || hash === undefined) return undefined;
    idem = { key, hash };
  }
  if (!need(2)) return undefined;
  const n = dv.getUint16(o);
  o += 2;
  const sections: ProduceSection[] = [];
  for (let i = 0; i < n; i++) {
    if (!need(12)) return undefined;
    const partition = dv.getUint32(o);
    const count = dv.getUint32(o + 4);
    const len = dv.getUint32(o + 8);
    o += 12;
    if (!need(len)) return undefined;
    sections.push({ partition, count, payload: b.subarray(o, o + len) });
    o += len;
  }
  if (o !== b.length) return undefined;
  const c: ProduceCommand = { t: "produce", topic, topicId, ts, sections };
  if (idem) c.idem = idem;
  return c;
}

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
  if (b[8] === PRODUCE_TAG) return decodeProduce(b.subarray(8), ts);
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
    case "commit":
      return typeof o.group === "string" && typeof o.topic === "string" && typeof o.offset === "number"
        ? (o as Command)
        : undefined;
    case "trim":
      return typeof o.topic === "string" &&
        typeof o.partition === "number" &&
        typeof o.from === "number" &&
        typeof o.before === "number" &&
        typeof o.bytes === "number"
        ? (o as Command)
        : undefined;
    default:
      return undefined;
  }
}
