// Frames of the catch-up protocol (catchup.ts), carried as transport APP
// payloads beside the forwarding frames of forward.ts. The first byte is the
// kind: forwarding uses 1 and 2, catch-up 16 and up, so one APP handler tells
// them apart by that byte alone (isCatchUpFrame). Every frame then carries the
// session id (f64, a safe integer chosen by the leader):
//
//   OFFER    [16][sid][f64 term]                         leader -> follower
//   ACCEPT   [17][sid][have...]                          follower -> leader
//   BEGIN    [18][sid][f64 index][f64 term][json {conf, members}]
//   DATA     [19][sid][u32 seq][u32 crc32 of chunk][chunk...]
//   ACK      [20][sid][u32 next]        every frame < next is written
//   NACK     [21][sid][u32 next][u8 needBegin]   resend from `next`
//   END      [22][sid][u32 frames][u32 crc of crcs][f64 bytes]
//   END_ACK  [23][sid][u8 installed]
//   ABORT    [24][sid][reason, utf-8]                    either way

import { crc32 } from "node:zlib";
import type { ConfState, NodeId } from "../raft/index.ts";
import type { AddressBook, MemberAddress } from "./members.ts";

export enum CatchUpKind {
  Offer = 16,
  Accept = 17,
  Begin = 18,
  Data = 19,
  Ack = 20,
  Nack = 21,
  End = 22,
  EndAck = 23,
  Abort = 24,
}

export const FIRST_CATCHUP_KIND = CatchUpKind.Offer;
const LAST_CATCHUP_KIND = CatchUpKind.Abort;
/** kind + session id. */
const HEADER_BYTES = 9;
/** An ABORT's reason is cut to this many bytes. */
const MAX_REASON_BYTES = 200;

export type CatchUpFrame =
  | { kind: CatchUpKind.Offer; sessionId: number; term: number }
  | { kind: CatchUpKind.Accept; sessionId: number; have: Uint8Array }
  | {
      kind: CatchUpKind.Begin;
      sessionId: number;
      index: number;
      term: number;
      conf: ConfState;
      members: AddressBook;
    }
  | { kind: CatchUpKind.Data; sessionId: number; seq: number; crc: number; chunk: Uint8Array }
  | { kind: CatchUpKind.Ack; sessionId: number; next: number }
  | { kind: CatchUpKind.Nack; sessionId: number; next: number; needBegin: boolean }
  | { kind: CatchUpKind.End; sessionId: number; frames: number; crcOfCrcs: number; bytes: number }
  | { kind: CatchUpKind.EndAck; sessionId: number; installed: boolean }
  | { kind: CatchUpKind.Abort; sessionId: number; reason: string };

/** Whether an APP payload belongs to the catch-up protocol (and not to forwarding). */
export function isCatchUpFrame(payload: Uint8Array): boolean {
  return payload.length > 0 && payload[0]! >= FIRST_CATCHUP_KIND;
}

export class CatchUpFrameError extends Error {}

function frame(kind: CatchUpKind, sessionId: number, bodyBytes: number): { out: Uint8Array; dv: DataView } {
  const out = new Uint8Array(HEADER_BYTES + bodyBytes);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, kind);
  dv.setFloat64(1, sessionId);
  return { out, dv };
}

export function encodeCatchUp(f: CatchUpFrame): Uint8Array {
  const h = HEADER_BYTES;
  switch (f.kind) {
    case CatchUpKind.Offer: {
      const { out, dv } = frame(f.kind, f.sessionId, 8);
      dv.setFloat64(h, f.term);
      return out;
    }
    case CatchUpKind.Accept: {
      const { out } = frame(f.kind, f.sessionId, f.have.length);
      out.set(f.have, h);
      return out;
    }
    case CatchUpKind.Begin: {
      const json = new TextEncoder().encode(JSON.stringify({ conf: f.conf, members: [...f.members] }));
      const { out, dv } = frame(f.kind, f.sessionId, 16 + json.length);
      dv.setFloat64(h, f.index);
      dv.setFloat64(h + 8, f.term);
      out.set(json, h + 16);
      return out;
    }
    case CatchUpKind.Data: {
      const { out, dv } = frame(f.kind, f.sessionId, 8 + f.chunk.length);
      dv.setUint32(h, f.seq);
      dv.setUint32(h + 4, f.crc);
      out.set(f.chunk, h + 8);
      return out;
    }
    case CatchUpKind.Ack: {
      const { out, dv } = frame(f.kind, f.sessionId, 4);
      dv.setUint32(h, f.next);
      return out;
    }
    case CatchUpKind.Nack: {
      const { out, dv } = frame(f.kind, f.sessionId, 5);
      dv.setUint32(h, f.next);
      dv.setUint8(h + 4, f.needBegin ? 1 : 0);
      return out;
    }
    case CatchUpKind.End: {
      const { out, dv } = frame(f.kind, f.sessionId, 16);
      dv.setUint32(h, f.frames);
      dv.setUint32(h + 4, f.crcOfCrcs);
      dv.setFloat64(h + 8, f.bytes);
      return out;
    }
    case CatchUpKind.EndAck: {
      const { out, dv } = frame(f.kind, f.sessionId, 1);
      dv.setUint8(h, f.installed ? 1 : 0);
      return out;
    }
    case CatchUpKind.Abort: {
      const reason = new TextEncoder().encode(f.reason).subarray(0, MAX_REASON_BYTES);
      const { out } = frame(f.kind, f.sessionId, reason.length);
      out.set(reason, h);
      return out;
    }
  }
}

function need(data: Uint8Array, bytes: number, what: string): void {
  if (data.length < bytes) throw new CatchUpFrameError(`${what} frame too short (${data.length} bytes)`);
}

function safeIndex(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new CatchUpFrameError(`bad ${what} ${n}`);
  return n;
}

/** Decodes a catch-up frame; throws CatchUpFrameError on anything malformed. */
export function decodeCatchUp(data: Uint8Array): CatchUpFrame {
  need(data, HEADER_BYTES, "catch-up");
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const kind = dv.getUint8(0);
  if (kind < FIRST_CATCHUP_KIND || kind > LAST_CATCHUP_KIND)
    throw new CatchUpFrameError(`unknown kind ${kind}`);
  const sessionId = safeIndex(dv.getFloat64(1), "session id");
  const h = HEADER_BYTES;
  switch (kind as CatchUpKind) {
    case CatchUpKind.Offer:
      need(data, h + 8, "OFFER");
      return { kind: CatchUpKind.Offer, sessionId, term: safeIndex(dv.getFloat64(h), "term") };
    case CatchUpKind.Accept:
      return { kind: CatchUpKind.Accept, sessionId, have: data.subarray(h) };
    case CatchUpKind.Begin: {
      need(data, h + 16, "BEGIN");
      const index = safeIndex(dv.getFloat64(h), "index");
      const term = safeIndex(dv.getFloat64(h + 8), "term");
      let body: { conf: ConfState; members: [NodeId, MemberAddress][] };
      try {
        body = JSON.parse(new TextDecoder().decode(data.subarray(h + 16)));
      } catch (e) {
        throw new CatchUpFrameError(`BEGIN: ${(e as Error).message}`);
      }
      if (!body || !Array.isArray(body.conf?.voters) || !Array.isArray(body.members))
        throw new CatchUpFrameError("BEGIN: conf or members missing");
      return {
        kind: CatchUpKind.Begin,
        sessionId,
        index,
        term,
        conf: body.conf,
        members: new Map(body.members),
      };
    }
    case CatchUpKind.Data:
      need(data, h + 8, "DATA");
      return {
        kind: CatchUpKind.Data,
        sessionId,
        seq: dv.getUint32(h),
        crc: dv.getUint32(h + 4),
        chunk: data.subarray(h + 8),
      };
    case CatchUpKind.Ack:
      need(data, h + 4, "ACK");
      return { kind: CatchUpKind.Ack, sessionId, next: dv.getUint32(h) };
    case CatchUpKind.Nack:
      need(data, h + 5, "NACK");
      return {
        kind: CatchUpKind.Nack,
        sessionId,
        next: dv.getUint32(h),
        needBegin: dv.getUint8(h + 4) === 1,
      };
    case CatchUpKind.End:
      need(data, h + 16, "END");
      return {
        kind: CatchUpKind.End,
        sessionId,
        frames: dv.getUint32(h),
        crcOfCrcs: dv.getUint32(h + 4),
        bytes: safeIndex(dv.getFloat64(h + 8), "byte count"),
      };
    case CatchUpKind.EndAck:
      need(data, h + 1, "END_ACK");
      return { kind: CatchUpKind.EndAck, sessionId, installed: dv.getUint8(h) === 1 };
    case CatchUpKind.Abort:
      return { kind: CatchUpKind.Abort, sessionId, reason: new TextDecoder().decode(data.subarray(h)) };
  }
}

/** The checksum DATA frames carry: CRC-32 (zlib's) of the chunk. */
export function chunkCrc(chunk: Uint8Array): number {
  return crc32(chunk);
}

const crcWord = new Uint8Array(4);
const crcWordView = new DataView(crcWord.buffer);

/** Folds one frame's CRC into END's crc of crcs: CRC-32 over the frames' CRCs, big-endian, in order. */
export function foldCrc(acc: number, frameCrc: number): number {
  crcWordView.setUint32(0, frameCrc);
  return crc32(crcWord, acc);
}
