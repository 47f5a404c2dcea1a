// Framing of the node-to-node byte stream.
//
//   frame = u32 length (little-endian) | u8 kind | payload
//
// `length` counts the kind byte and the payload, so it is at least 1. A reader
// rejects a length above its current limit before allocating anything (the
// transport uses a small limit until the handshake is done, then
// maxFrameBytes). Each frame's payload gets its own buffer, so decoded
// messages may keep zero-copy views into it.
//
// A RAFT frame's payload is one or more `u32 length | encoded message`
// records (see codec.ts); an APP frame's payload is opaque application bytes;
// HELLO/PROOF/REJECT are the handshake (handshake.ts); PING is empty.

import type { Message } from "../raft/types.ts";
import { CodecError, decodeMessageRange } from "./codec.ts";

export enum FrameKind {
  /** Handshake: protocol version, node id, cluster id, auth flag and nonce (the challenge). */
  Hello = 1,
  /** HMAC-SHA256 proof that the sender knows the cluster secret, over the peer's nonce. */
  Proof = 2,
  /** One or more Raft messages. */
  Raft = 3,
  /** Opaque application payload (e.g. a client request forwarded to the leader). */
  App = 4,
  /** Keep-alive; empty payload. */
  Ping = 5,
  /** The sender refuses the connection; payload is a short utf-8 reason. Then it closes. */
  Reject = 6,
}

const MAX_KIND = FrameKind.Reject;
export const FRAME_HEADER_BYTES = 5;

/** A frame length, kind or payload that violates the protocol. */
export class FrameError extends CodecError {}

/** One whole frame (header and a copy of the payload) in one buffer. */
export function encodeFrame(kind: FrameKind, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length + 1, 0);
  out[4] = kind;
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Incremental frame parser. Feed it socket chunks of any size; it calls
 * `onFrame` for each complete frame and throws FrameError on a bad header.
 * `onFrame` returns false to stop parsing (e.g. the connection was closed).
 */
export class FrameReader {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private kind = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;

  /** Frames whose payload exceeds this many bytes are rejected. Adjustable. */
  maxPayloadBytes: number;

  constructor(
    maxPayloadBytes: number,
    private readonly onFrame: (kind: FrameKind, payload: Buffer) => boolean,
  ) {
    this.maxPayloadBytes = maxPayloadBytes;
  }

  /** True while a frame has been started but not completed. */
  get midFrame(): boolean {
    return this.headerFill > 0 || this.body !== null;
  }

  push(chunk: Uint8Array): void {
    let p = 0;
    const n = chunk.length;
    while (p < n) {
      if (this.body === null) {
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, n - p);
        this.header.set(chunk.subarray(p, p + take), this.headerFill);
        this.headerFill += take;
        p += take;
        if (this.headerFill < FRAME_HEADER_BYTES) return;
        this.headerFill = 0;
        const len = this.header.readUInt32LE(0);
        const kind = this.header[4]!;
        if (len < 1) throw new FrameError("frame length 0");
        if (len - 1 > this.maxPayloadBytes) {
          throw new FrameError(`frame of ${len - 1} bytes exceeds the limit of ${this.maxPayloadBytes}`);
        }
        if (kind < 1 || kind > MAX_KIND) throw new FrameError(`unknown frame kind ${kind}`);
        this.kind = kind;
        this.body = Buffer.allocUnsafe(len - 1);
        this.bodyFill = 0;
      }
      const body = this.body;
      const take = Math.min(body.length - this.bodyFill, n - p);
      if (take > 0) {
        body.set(chunk.subarray(p, p + take), this.bodyFill);
        this.bodyFill += take;
        p += take;
      }
      if (this.bodyFill === body.length) {
        this.body = null;
        if (!this.onFrame(this.kind as FrameKind, body)) return;
      }
    }
  }
}

/** Decodes a RAFT frame payload: one or more `u32 length | message` records. */
export function decodeRaftBatch(payload: Uint8Array): Message[] {
  const out: Message[] = [];
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let p = 0;
  if (payload.length === 0) throw new FrameError("empty RAFT frame");
  while (p < payload.length) {
    if (payload.length - p < 4) throw new FrameError("truncated message length in RAFT frame");
    const len = dv.getUint32(p, true);
    p += 4;
    if (len > payload.length - p) throw new FrameError(`message of ${len} bytes overruns its RAFT frame`);
    out.push(decodeMessageRange(payload, p, p + len));
    p += len;
  }
  return out;
}
