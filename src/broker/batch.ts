// The record batch: the unit raftbus stores, replicates and reads (as in Kafka
// and Redpanda). The records of one produce request for one partition form one
// batch; it is encoded once, by the node that took the request, and every
// replica stores the same bytes under the same key.
//
// Key (16 bytes, big-endian, so LMDB orders batches by topic, partition, offset):
//   u32 topicId | u32 partition | u32 baseOffset high | u32 baseOffset low
// Topic ids are never reused: deleting and re-creating a topic cannot mix data.
//
// Value: a 40-byte header, then the records.
//   0  u8  format version (1)
//   1  u8  flags (compression codec; 0 = none)
//   2  u16 reserved (0)
//   4  u32 CRC-32 of bytes [8, end): everything below, records included
//   8  u32 baseOffset high | 12 u32 baseOffset low (the key's, checked on read)
//   16 u32 record count
//   20 u32 payload length (bytes of records)
//   24 f64 first timestamp (ms) | 32 f64 max timestamp (ms)
// Record (Kafka's record model: bytes keys, null values, ordered headers with
// repeats allowed; the offset is the batch's base plus the record's position):
//   u32 length of what follows | i32 timestamp delta from the first timestamp
//   u8 attributes: 1 = value is JSON text, 2 = key present, 4 = value present
//   u32 key length | key | u32 value length | value
//   u32 header count | per header: u32 name length | name (UTF-8) |
//     i32 value length (-1 = null) | value
//
// The CRC is zlib's CRC-32 (native in Node), checked whenever a batch is read
// back from disk or received in a snapshot stream.

import { crc32 } from "node:zlib";
import { LIMITS, type RecordIn, type StoredRecord } from "./types.ts";

const BATCH_VERSION = 1;
const BATCH_HEADER_BYTES = 40;
const BATCH_KEY_BYTES = 16;
/** Fixed bytes of a record besides key, value and headers. */
const RECORD_FIXED_BYTES = 4 + 4 + 1 + 4 + 4 + 4;
const TWO32 = 0x1_0000_0000;

const ATTR_JSON = 1;
const ATTR_KEY = 2;
const ATTR_VALUE = 4;

const dec = new TextDecoder();

export class BatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BatchError";
  }
}

// ---- keys ----------------------------------------------------------------------

export function batchKey(topicId: number, partition: number, baseOffset: number): Buffer {
  const k = Buffer.allocUnsafe(BATCH_KEY_BYTES);
  k.writeUInt32BE(topicId, 0);
  k.writeUInt32BE(partition, 4);
  k.writeUInt32BE(Math.floor(baseOffset / TWO32), 8);
  k.writeUInt32BE(baseOffset >>> 0, 12);
  return k;
}

export interface BatchKey {
  topicId: number;
  partition: number;
  baseOffset: number;
}

export function parseBatchKey(k: Uint8Array): BatchKey {
  if (k.length !== BATCH_KEY_BYTES) throw new BatchError(`batch key of ${k.length} bytes`);
  const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
  return {
    topicId: dv.getUint32(0),
    partition: dv.getUint32(4),
    baseOffset: dv.getUint32(8) * TWO32 + dv.getUint32(12),
  };
}

// ---- records (the payload) --------------------------------------------------------

/** Encoded size of one record in a batch payload. */
function recordSize(r: RecordIn): number {
  let n = RECORD_FIXED_BYTES + r.value.length;
  if (r.key !== null) n += Buffer.byteLength(r.key);
  for (const name in r.headers) n += 8 + Buffer.byteLength(name) + Buffer.byteLength(r.headers[name]!);
  return n;
}

/** Bytes of a payload holding `records`. */
export function payloadSize(records: readonly RecordIn[]): number {
  let n = 0;
  for (const r of records) n += recordSize(r);
  return n;
}

/**
 * Writes records, as they arrive over HTTP (string keys and header values are
 * their UTF-8 bytes; timestamp delta 0), straight into `out` at `o`: no
 * intermediate buffer per record. Returns the offset after them.
 */
export function writePayload(out: Buffer, o: number, records: readonly RecordIn[]): number {
  for (const r of records) {
    const lenAt = o;
    o += 4;
    o = out.writeInt32BE(0, o);
    out[o++] = (r.json ? ATTR_JSON : 0) | (r.key !== null ? ATTR_KEY : 0) | ATTR_VALUE;
    o = writeString(out, o, r.key ?? "");
    o = out.writeUInt32BE(r.value.length, o);
    out.set(r.value, o);
    o += r.value.length;
    const countAt = o;
    o += 4;
    let headers = 0;
    for (const name in r.headers) {
      o = writeString(out, o, name);
      o = writeString(out, o, r.headers[name]!);
      headers++;
    }
    out.writeUInt32BE(headers, countAt);
    out.writeUInt32BE(o - lenAt - 4, lenAt);
  }
  return o;
}

/** A new payload holding `records` (tests; produce writes into its command directly). */
export function encodePayload(records: readonly RecordIn[]): Buffer {
  const out = Buffer.allocUnsafe(payloadSize(records));
  const end = writePayload(out, 0, records);
  if (end !== out.length) throw new BatchError(`payload size ${end} != ${out.length}`);
  return out;
}

/** [u32 byte length][UTF-8]: a key, a header name or a header value. */
function writeString(out: Buffer, o: number, v: string): number {
  const n = out.write(v, o + 4, "utf8");
  out.writeUInt32BE(n, o);
  return o + 4 + n;
}

/**
 * Checks that `payload` holds exactly `count` well-formed records (lengths
 * within bounds); returns an error message, or undefined when it does.
 * Deterministic: every replica reaches the same verdict on the same bytes.
 */
export function checkPayload(payload: Uint8Array, count: number): string | undefined {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let o = 0;
  for (let i = 0; i < count; i++) {
    if (o + 4 > payload.length) return `record ${i} overruns the batch`;
    const len = dv.getUint32(o);
    if (len < RECORD_FIXED_BYTES - 4 || o + 4 + len > payload.length) return `record ${i} overruns the batch`;
    if (len - (RECORD_FIXED_BYTES - 4) > LIMITS.maxRecordBytes + 64 * 1024) return `record ${i} is too large`;
    o += 4 + len;
  }
  return o === payload.length ? undefined : "trailing bytes after the records";
}

// ---- batches ---------------------------------------------------------------------

export interface BatchHeader {
  baseOffset: number;
  count: number;
  payloadLength: number;
  firstTimestamp: number;
  maxTimestamp: number;
}

/** Builds a stored batch: header, payload copy, CRC. */
export function encodeBatch(
  baseOffset: number,
  count: number,
  timestamp: number,
  payload: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(BATCH_HEADER_BYTES + payload.length);
  out[0] = BATCH_VERSION;
  out[1] = 0;
  out.writeUInt16BE(0, 2);
  out.writeUInt32BE(Math.floor(baseOffset / TWO32), 8);
  out.writeUInt32BE(baseOffset >>> 0, 12);
  out.writeUInt32BE(count, 16);
  out.writeUInt32BE(payload.length, 20);
  out.writeDoubleBE(timestamp, 24);
  out.writeDoubleBE(timestamp, 32);
  out.set(payload, BATCH_HEADER_BYTES);
  out.writeUInt32BE(crc32(out.subarray(8)), 4);
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** The header of a stored batch, without checking its CRC. */
export function batchHeader(b: Uint8Array): BatchHeader {
  if (b.length < BATCH_HEADER_BYTES) throw new BatchError(`batch of ${b.length} bytes`);
  const dv = view(b);
  return {
    baseOffset: dv.getUint32(8) * TWO32 + dv.getUint32(12),
    count: dv.getUint32(16),
    payloadLength: dv.getUint32(20),
    firstTimestamp: dv.getFloat64(24),
    maxTimestamp: dv.getFloat64(32),
  };
}

/** Record count of a stored batch (no CRC check). */
export function batchCount(b: Uint8Array): number {
  return view(b).getUint32(16);
}

/**
 * Verifies a stored batch: version, length, CRC and (when given) the base
 * offset its key says. Returns what is wrong, or undefined.
 */
export function verifyBatch(b: Uint8Array, expectedBase?: number): string | undefined {
  if (b.length < BATCH_HEADER_BYTES) return `batch of ${b.length} bytes is shorter than its header`;
  if (b[0] !== BATCH_VERSION) return `unknown batch format ${b[0]}`;
  const dv = view(b);
  if (dv.getUint32(20) !== b.length - BATCH_HEADER_BYTES) return "batch length does not match its header";
  if (crc32(b.subarray(8)) !== dv.getUint32(4)) return "batch checksum mismatch";
  if (expectedBase !== undefined && dv.getUint32(8) * TWO32 + dv.getUint32(12) !== expectedBase) {
    return `batch holds base offset ${dv.getUint32(8) * TWO32 + dv.getUint32(12)}, its key ${expectedBase}`;
  }
  return undefined;
}

/**
 * Decodes records [from, from + limit) of a verified batch (positions within
 * the batch), at most about maxBytes of values. Keys and header names are
 * UTF-8 text in the HTTP model; values stay zero-copy views of the batch.
 */
export function decodeRecords(
  b: Uint8Array,
  from: number,
  limit: number,
  maxBytes: number,
  out: StoredRecord[],
): number {
  const h = batchHeader(b);
  const dv = view(b);
  let o = BATCH_HEADER_BYTES;
  let bytes = 0;
  const end = Math.min(h.count, from + limit);
  for (let i = 0; i < end; i++) {
    const len = dv.getUint32(o);
    if (i < from) {
      o += 4 + len;
      continue;
    }
    const next = o + 4 + len;
    const tsDelta = dv.getInt32(o + 4);
    const attrs = b[o + 8]!;
    let p = o + 9;
    const keyLen = dv.getUint32(p);
    const key = attrs & ATTR_KEY ? dec.decode(b.subarray(p + 4, p + 4 + keyLen)) : null;
    p += 4 + keyLen;
    const valueLen = dv.getUint32(p);
    const value = b.subarray(p + 4, p + 4 + valueLen);
    p += 4 + valueLen;
    const headerCount = dv.getUint32(p);
    p += 4;
    const headers: Record<string, string> = {};
    for (let k = 0; k < headerCount; k++) {
      const nameLen = dv.getUint32(p);
      const name = dec.decode(b.subarray(p + 4, p + 4 + nameLen));
      p += 4 + nameLen;
      const vLen = dv.getInt32(p);
      p += 4;
      headers[name] = vLen < 0 ? "" : dec.decode(b.subarray(p, p + vLen));
      if (vLen > 0) p += vLen;
    }
    if (p !== next) throw new BatchError(`record ${i} of batch ${h.baseOffset} is malformed`);
    out.push({
      offset: h.baseOffset + i,
      timestamp: h.firstTimestamp + tsDelta,
      key,
      value,
      json: (attrs & ATTR_JSON) !== 0,
      headers,
    });
    bytes += valueLen;
    o = next;
    if (bytes >= maxBytes) return i + 1 - from;
  }
  return end - from;
}

/** Timestamp of the record at position `i` of a batch. */
export function recordTimestampAt(b: Uint8Array, i: number): number {
  const dv = view(b);
  let o = BATCH_HEADER_BYTES;
  for (let k = 0; k < i; k++) o += 4 + dv.getUint32(o);
  return dv.getFloat64(24) + dv.getInt32(o + 4);
}
