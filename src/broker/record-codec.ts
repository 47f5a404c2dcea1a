// Binary form of a stored record: [f64 timestamp][u8 flags][u32 keyLen][key]
// [u32 headersLen][headers JSON][value]. flags: 1 = value is JSON text,
// 2 = key present.

import type { StoredRecord } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const EMPTY_HEADERS = "{}";

const EMPTY = new Uint8Array(0);
// Scratch for the big-endian f64 timestamp (one shared view, no DataView per record).
const f64 = new DataView(new ArrayBuffer(8));
const f64Bytes = new Uint8Array(f64.buffer);

function hasOwnKeys(o: Record<string, string>): boolean {
  for (const _ in o) return true;
  return false;
}

function putU32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24;
  out[o + 1] = (v >>> 16) & 0xff;
  out[o + 2] = (v >>> 8) & 0xff;
  out[o + 3] = v & 0xff;
}

export function encodeRecord(r: Omit<StoredRecord, "offset">): Uint8Array {
  const key = r.key === null ? EMPTY : enc.encode(r.key);
  let headers = EMPTY;
  if (hasOwnKeys(r.headers)) {
    const hjson = JSON.stringify(r.headers);
    if (hjson !== EMPTY_HEADERS) headers = enc.encode(hjson);
  }
  const out = new Uint8Array(8 + 1 + 4 + key.length + 4 + headers.length + r.value.length);
  f64.setFloat64(0, r.timestamp);
  out.set(f64Bytes, 0);
  out[8] = (r.json ? 1 : 0) | (r.key !== null ? 2 : 0);
  putU32(out, 9, key.length);
  if (key.length > 0) out.set(key, 13);
  let o = 13 + key.length;
  putU32(out, o, headers.length);
  if (headers.length > 0) out.set(headers, o + 4);
  o += 4 + headers.length;
  out.set(r.value, o);
  return out;
}

export function decodeRecord(offset: number, b: Uint8Array): StoredRecord {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const timestamp = dv.getFloat64(0);
  const flags = dv.getUint8(8);
  const keyLen = dv.getUint32(9);
  const key = flags & 2 ? dec.decode(b.subarray(13, 13 + keyLen)) : null;
  let o = 13 + keyLen;
  const hLen = dv.getUint32(o);
  const headers =
    hLen === 0 ? {} : (JSON.parse(dec.decode(b.subarray(o + 4, o + 4 + hLen))) as Record<string, string>);
  o += 4 + hLen;
  return { offset, timestamp, key, value: b.subarray(o), json: (flags & 1) === 1, headers };
}

/** Timestamp of an encoded record without decoding the rest. */
export function recordTimestamp(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0);
}
