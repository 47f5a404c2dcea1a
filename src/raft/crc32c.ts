// CRC32C (Castagnoli), slicing-by-8, in pure TypeScript so the core stays free of I/O modules.
// Every entry carries one over (type, term, index, data): set when the leader appends it,
// checked when a follower receives it and before it is applied.

import { type Entry, EntryType } from "./types.ts";

const POLY = 0x82f63b78;
const TABLE = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = TABLE[n]!;
  for (let t = 1; t < 8; t++) {
    c = TABLE[c & 0xff]! ^ (c >>> 8);
    TABLE[t * 256 + n] = c;
  }
}

/** Continues a CRC32C over `data`; start with crc = 0. */
export function crc32c(data: Uint8Array, crc = 0): number {
  let c = ~crc;
  let i = 0;
  const n = data.length;
  const t = TABLE;
  for (; i + 8 <= n; i += 8) {
    const a = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) | 0;
    const b = data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
    c =
      t[1792 + (a & 0xff)]! ^
      t[1536 + ((a >>> 8) & 0xff)]! ^
      t[1280 + ((a >>> 16) & 0xff)]! ^
      t[1024 + (a >>> 24)]! ^
      t[768 + (b & 0xff)]! ^
      t[512 + ((b >>> 8) & 0xff)]! ^
      t[256 + ((b >>> 16) & 0xff)]! ^
      t[b >>> 24]!;
  }
  for (; i < n; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function crcU32(crc: number, v: number): number {
  let c = ~crc;
  for (let k = 0; k < 4; k++) {
    c = TABLE[(c ^ (v >>> (8 * k))) & 0xff]! ^ (c >>> 8);
  }
  return ~c >>> 0;
}

/** Checksum of an entry's identity and content. Terms and indexes are < 2^53. */
export function entryChecksum(type: EntryType, term: number, index: number, data: Uint8Array): number {
  let c = crcU32(0, type);
  c = crcU32(c, term >>> 0);
  c = crcU32(c, Math.floor(term / 0x100000000));
  c = crcU32(c, index >>> 0);
  c = crcU32(c, Math.floor(index / 0x100000000));
  return crc32c(data, c);
}

export function checksumOk(e: Entry): boolean {
  return entryChecksum(e.type, e.term, e.index, e.data) === e.crc;
}

export function makeEntry(term: number, index: number, data: Uint8Array, type = EntryType.Normal): Entry {
  return { term, index, type, data, crc: entryChecksum(type, term, index, data) };
}
