// Binary codec for Raft messages on the wire (node-to-node transport).
//
// Compact and strict: encoding sizes the output in a first pass and writes it
// into one preallocated buffer; decoding validates every length, count, flag
// and number against the buffer and throws CodecError on anything malformed,
// so garbage from the network can never crash a node, allocate more than the
// input justifies, or loop.
//
// Layout of one message (little-endian throughout):
//
//   u8  type                MessageType (0..17)
//   u8  flags               1 reject | 2 force | 4 context | 8 entries | 16 snapshot
//   u8  present             bit i set: numeric field i is non-zero and follows
//   u8  wide                bit i set: field i is a float64, else a uint32
//   ... present fields, in order: from, to, term, logTerm, index, commit, rejectHint
//   [context]   u32 byteLength, utf-8 bytes
//   [entries]   u32 count, then per entry:
//                 u8 tag   (type in bits 0..5, bit 6 term is float64, bit 7 index is float64)
//                 term     u32 | f64
//                 index    u32 | f64
//                 u32 crc, u32 dataLength, data bytes
//   [snapshot]  u8 sflags (1 done | 2 conf.autoLeave)
//               f64 metadata.index, f64 metadata.term, f64 offset, f64 totalBytes
//               4 x (u32 count, count x f64 node id): voters, learners, votersOutgoing, learnersNext
//               u32 dataLength, data bytes
//
// Numbers are non-negative safe integers (terms, indexes and node ids all are):
// those below 2^32 travel as uint32, larger ones as float64, zero fields not at
// all. Encoding a number that is not a non-negative safe integer throws
// CodecError, and so does decoding one, so whatever decodes is well formed.
// Decoded entry and snapshot data are zero-copy views (plain Uint8Array, not
// Buffer) into the input buffer: the caller must not reuse that buffer while
// the message is alive (the transport gives each frame its own buffer).

import { type Entry, EntryType, type Message, MessageType, type SnapshotChunk } from "../raft/types.ts";

/** A malformed or unencodable message, frame or handshake. */
export class CodecError extends Error {
  override readonly name = "CodecError";
}

const F_REJECT = 1;
const F_FORCE = 2;
const F_CONTEXT = 4;
const F_ENTRIES = 8;
const F_SNAPSHOT = 16;
const F_ALL = F_REJECT | F_FORCE | F_CONTEXT | F_ENTRIES | F_SNAPSHOT;

const S_DONE = 1;
const S_AUTO_LEAVE = 2;

const E_WIDE_TERM = 0x40;
const E_WIDE_INDEX = 0x80;
const E_TYPE_MASK = 0x3f;

const MAX_MESSAGE_TYPE = MessageType.Unreachable;
const MAX_ENTRY_TYPE = EntryType.ConfChange;
const U32_LIMIT = 0x1_0000_0000;
/** Smallest encoding of one entry: tag, u32 term, u32 index, crc, length. */
const MIN_ENTRY_BYTES = 17;
const NUM_FIELDS = 7;

const utf8 = new TextDecoder("utf-8", { fatal: true });

function checkNum(v: number, what: string): void {
  if (!(Number.isSafeInteger(v) && v >= 0)) {
    throw new CodecError(`${what} must be a non-negative safe integer, got ${String(v)}`);
  }
}

function numSize(v: number, what: string): number {
  checkNum(v, what);
  return v === 0 ? 0 : v < U32_LIMIT ? 4 : 8;
}

function confBytes(ids: readonly number[], what: string): number {
  if (!Array.isArray(ids)) throw new CodecError(`${what} must be an array`);
  for (const id of ids) checkNum(id, what);
  return 4 + 8 * ids.length;
}

function messageFields(m: Message): [number, number, number, number, number, number, number] {
  return [m.from, m.to, m.term, m.logTerm, m.index, m.commit, m.rejectHint];
}

const FIELD_NAMES = ["from", "to", "term", "logTerm", "index", "commit", "rejectHint"] as const;

/** Bytes `encodeMessage(m)` produces. Throws CodecError if `m` cannot be encoded. */
export function encodedSize(m: Message): number {
  return sizeOf(m, messageFields(m)).size;
}

interface Sized {
  size: number;
  contextBytes: number;
}

function sizeOf(m: Message, fields: number[]): Sized {
  if (!(Number.isInteger(m.type) && m.type >= 0 && m.type <= MAX_MESSAGE_TYPE)) {
    throw new CodecError(`unknown message type ${String(m.type)}`);
  }
  let size = 4;
  for (let i = 0; i < NUM_FIELDS; i++) size += numSize(fields[i]!, FIELD_NAMES[i]!);
  let contextBytes = 0;
  if (m.context) {
    contextBytes = Buffer.byteLength(m.context, "utf8");
    size += 4 + contextBytes;
  }
  const ents = m.entries;
  if (ents && ents.length > 0) {
    size += 4;
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!(Number.isInteger(e.type) && e.type >= 0 && e.type <= MAX_ENTRY_TYPE)) {
        throw new CodecError(`unknown entry type ${String(e.type)}`);
      }
      if (!(Number.isInteger(e.crc) && e.crc >= 0 && e.crc < U32_LIMIT)) {
        throw new CodecError(`entry crc must be a uint32, got ${String(e.crc)}`);
      }
      checkNum(e.term, "entry term");
      checkNum(e.index, "entry index");
      size += 9 + (e.term < U32_LIMIT ? 4 : 8) + (e.index < U32_LIMIT ? 4 : 8) + e.data.length;
    }
  }
  const s = m.snapshot;
  if (s) {
    const md = s.metadata;
    checkNum(md.index, "snapshot index");
    checkNum(md.term, "snapshot term");
    checkNum(s.offset, "snapshot offset");
    checkNum(s.totalBytes, "snapshot totalBytes");
    size += 1 + 32;
    size += confBytes(md.conf.voters, "conf.voters");
    size += confBytes(md.conf.learners, "conf.learners");
    size += confBytes(md.conf.votersOutgoing, "conf.votersOutgoing");
    size += confBytes(md.conf.learnersNext, "conf.learnersNext");
    size += 4 + s.data.length;
  }
  return { size, contextBytes };
}

/** Encodes `m`. Throws CodecError if a field cannot be encoded (see the header). */
export function encodeMessage(m: Message): Uint8Array {
  return encodeMessageWithPrefix(m, 0);
}

/**
 * Encodes `m` after `prefix` reserved bytes (0 or 4). With 4, the first four
 * bytes hold the message length as a u32: the transport's batch framing.
 */
export function encodeMessageWithPrefix(m: Message, prefix: 0 | 4): Buffer {
  const fields = messageFields(m);
  const { size, contextBytes } = sizeOf(m, fields);
  const out = Buffer.allocUnsafe(prefix + size);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (prefix === 4) dv.setUint32(0, size, true);
  let p = prefix;
  let flags = 0;
  if (m.reject) flags |= F_REJECT;
  if (m.force) flags |= F_FORCE;
  if (contextBytes > 0) flags |= F_CONTEXT;
  if (m.entries && m.entries.length > 0) flags |= F_ENTRIES;
  if (m.snapshot) flags |= F_SNAPSHOT;
  let present = 0;
  let wide = 0;
  for (let i = 0; i < NUM_FIELDS; i++) {
    const v = fields[i]!;
    if (v !== 0) {
      present |= 1 << i;
      if (v >= U32_LIMIT) wide |= 1 << i;
    }
  }
  out[p] = m.type;
  out[p + 1] = flags;
  out[p + 2] = present;
  out[p + 3] = wide;
  p += 4;
  for (let i = 0; i < NUM_FIELDS; i++) {
    const v = fields[i]!;
    if (v === 0) continue;
    if (v < U32_LIMIT) {
      dv.setUint32(p, v, true);
      p += 4;
    } else {
      dv.setFloat64(p, v, true);
      p += 8;
    }
  }
  if (contextBytes > 0) {
    dv.setUint32(p, contextBytes, true);
    p += 4;
    p += out.write(m.context, p, contextBytes, "utf8");
  }
  if (flags & F_ENTRIES) {
    const ents = m.entries;
    dv.setUint32(p, ents.length, true);
    p += 4;
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      const wt = e.term >= U32_LIMIT;
      const wi = e.index >= U32_LIMIT;
      out[p++] = e.type | (wt ? E_WIDE_TERM : 0) | (wi ? E_WIDE_INDEX : 0);
      if (wt) {
        dv.setFloat64(p, e.term, true);
        p += 8;
      } else {
        dv.setUint32(p, e.term, true);
        p += 4;
      }
      if (wi) {
        dv.setFloat64(p, e.index, true);
        p += 8;
      } else {
        dv.setUint32(p, e.index, true);
        p += 4;
      }
      dv.setUint32(p, e.crc, true);
      dv.setUint32(p + 4, e.data.length, true);
      p += 8;
      out.set(e.data, p);
      p += e.data.length;
    }
  }
  const s = m.snapshot;
  if (s) {
    const conf = s.metadata.conf;
    out[p++] = (s.done ? S_DONE : 0) | (conf.autoLeave ? S_AUTO_LEAVE : 0);
    dv.setFloat64(p, s.metadata.index, true);
    dv.setFloat64(p + 8, s.metadata.term, true);
    dv.setFloat64(p + 16, s.offset, true);
    dv.setFloat64(p + 24, s.totalBytes, true);
    p += 32;
    for (const ids of [conf.voters, conf.learners, conf.votersOutgoing, conf.learnersNext]) {
      dv.setUint32(p, ids.length, true);
      p += 4;
      for (const id of ids) {
        dv.setFloat64(p, id, true);
        p += 8;
      }
    }
    dv.setUint32(p, s.data.length, true);
    p += 4;
    out.set(s.data, p);
    p += s.data.length;
  }
  if (p !== out.length) throw new CodecError(`internal: encoded ${p} bytes, sized ${out.length}`);
  return out;
}

/** A bounds-checked cursor over a byte range; every read throws CodecError past `end`. */
export class ByteReader {
  readonly view: DataView;
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new CodecError(`truncated ${what}: need ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A float64 that must be a non-negative safe integer. */
  f64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new CodecError(`${what}: not a non-negative integer`);
    return v;
  }

  /** `n` bytes as a zero-copy plain Uint8Array view. */
  bytesView(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = new Uint8Array(this.bytes.buffer, this.bytes.byteOffset + this.pos, n);
    this.pos += n;
    return v;
  }

  /** `n` bytes of strict utf-8. */
  utf8(n: number, what: string): string {
    this.need(n, what);
    const start = this.pos;
    this.pos += n;
    try {
      return utf8.decode(this.bytes.subarray(start, start + n));
    } catch {
      throw new CodecError(`${what}: invalid utf-8`);
    }
  }
}

/** Decodes one message occupying all of `buf`. Throws CodecError if malformed. */
export function decodeMessage(buf: Uint8Array): Message {
  return decodeMessageRange(buf, 0, buf.length);
}

/** Decodes one message occupying exactly buf[start, end). */
export function decodeMessageRange(buf: Uint8Array, start: number, end: number): Message {
  if (!(start >= 0 && end <= buf.length && start <= end)) throw new CodecError("bad message range");
  const r = new ByteReader(buf, start, end);
  const type = r.u8("message type");
  if (type > MAX_MESSAGE_TYPE) throw new CodecError(`unknown message type ${type}`);
  const flags = r.u8("message flags");
  if (flags & ~F_ALL) throw new CodecError(`unknown message flags 0x${flags.toString(16)}`);
  const present = r.u8("message field bitmap");
  const wide = r.u8("message width bitmap");
  if (present >> NUM_FIELDS || wide & ~present) throw new CodecError("bad message field bitmaps");
  const f = [0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < NUM_FIELDS; i++) {
    const bit = 1 << i;
    if (!(present & bit)) continue;
    f[i] = wide & bit ? r.f64(FIELD_NAMES[i]!) : r.u32(FIELD_NAMES[i]!);
  }
  let context = "";
  if (flags & F_CONTEXT) {
    const n = r.u32("context length");
    context = r.utf8(n, "context");
  }
  let entries: Entry[] = [];
  if (flags & F_ENTRIES) {
    const count = r.u32("entry count");
    if (count === 0 || count > r.remaining() / MIN_ENTRY_BYTES) {
      throw new CodecError(`bad entry count ${count} for ${r.remaining()} bytes`);
    }
    entries = new Array<Entry>(count);
    // The hot loop: inlined reads with one bounds check per fixed part.
    const bytes = r.bytes;
    const dv = r.view;
    const ab = bytes.buffer;
    const base = bytes.byteOffset;
    let p = r.pos;
    for (let i = 0; i < count; i++) {
      if (end - p < MIN_ENTRY_BYTES) throw new CodecError("truncated entry");
      const tag = bytes[p]!;
      const etype = tag & E_TYPE_MASK;
      if (etype > MAX_ENTRY_TYPE) throw new CodecError(`unknown entry type ${etype}`);
      const wt = (tag & E_WIDE_TERM) !== 0;
      const wi = (tag & E_WIDE_INDEX) !== 0;
      if (end - p < MIN_ENTRY_BYTES + (wt ? 4 : 0) + (wi ? 4 : 0)) throw new CodecError("truncated entry");
      p++;
      let term: number;
      if (wt) {
        term = dv.getFloat64(p, true);
        if (!(Number.isSafeInteger(term) && term >= 0)) throw new CodecError("entry term: not an integer");
        p += 8;
      } else {
        term = dv.getUint32(p, true);
        p += 4;
      }
      let index: number;
      if (wi) {
        index = dv.getFloat64(p, true);
        if (!(Number.isSafeInteger(index) && index >= 0)) throw new CodecError("entry index: not an integer");
        p += 8;
      } else {
        index = dv.getUint32(p, true);
        p += 4;
      }
      const crc = dv.getUint32(p, true);
      const len = dv.getUint32(p + 4, true);
      p += 8;
      if (len > end - p) throw new CodecError(`entry data of ${len} bytes overruns the message`);
      entries[i] = { term, index, type: etype as EntryType, data: new Uint8Array(ab, base + p, len), crc };
      p += len;
    }
    r.pos = p;
  }
  let snapshot: SnapshotChunk | undefined;
  if (flags & F_SNAPSHOT) {
    const sflags = r.u8("snapshot flags");
    if (sflags & ~(S_DONE | S_AUTO_LEAVE)) throw new CodecError("unknown snapshot flags");
    const index = r.f64("snapshot index");
    const term = r.f64("snapshot term");
    const offset = r.f64("snapshot offset");
    const totalBytes = r.f64("snapshot totalBytes");
    const ids = (what: string): number[] => {
      const n = r.u32(`${what} count`);
      if (n > r.remaining() / 8) throw new CodecError(`bad ${what} count ${n}`);
      const out = new Array<number>(n);
      for (let i = 0; i < n; i++) out[i] = r.f64(what);
      return out;
    };
    const voters = ids("conf.voters");
    const learners = ids("conf.learners");
    const votersOutgoing = ids("conf.votersOutgoing");
    const learnersNext = ids("conf.learnersNext");
    const dataLen = r.u32("snapshot data length");
    const data = r.bytesView(dataLen, "snapshot data");
    snapshot = {
      metadata: {
        index,
        term,
        conf: { voters, learners, votersOutgoing, learnersNext, autoLeave: (sflags & S_AUTO_LEAVE) !== 0 },
      },
      offset,
      totalBytes,
      data,
      done: (sflags & S_DONE) !== 0,
    };
  }
  if (r.pos !== end) throw new CodecError(`${end - r.pos} trailing bytes after message`);
  const m: Message = {
    type: type as MessageType,
    from: f[0]!,
    to: f[1]!,
    term: f[2]!,
    logTerm: f[3]!,
    index: f[4]!,
    entries,
    commit: f[5]!,
    reject: (flags & F_REJECT) !== 0,
    rejectHint: f[6]!,
    force: (flags & F_FORCE) !== 0,
    context,
  };
  if (snapshot) m.snapshot = snapshot;
  return m;
}
