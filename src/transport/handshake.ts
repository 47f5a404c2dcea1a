// The connection handshake.
//
// The dialer (always the lower node id) and the acceptor each send one HELLO:
//
//   u32 magic "RBUS" | u16 protocol version | u8 flags (1 = has a cluster secret)
//   f64 node id | f64 expected peer id (0 = any) | u8 cluster id length | cluster id utf-8
//   32 bytes nonce
//
// The nonce is the challenge: with a cluster secret each side then sends a
// PROOF frame, HMAC-SHA256(secret, context) where the context binds the
// direction, the cluster, both node ids and both nonces, so a proof can be
// neither replayed on another connection nor reflected back at its author.
// Authentication is mutual: the acceptor proves itself right after its HELLO,
// the dialer after checking that proof. No RAFT or APP frame is accepted on a
// connection before the peer's proof has been verified.
//
// The secret authenticates peers; it does not encrypt or sign the stream
// (run the transport over a private network, WireGuard or similar for that).

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { ByteReader, CodecError } from "./codec.ts";

export const PROTOCOL_VERSION = 1;
const MAGIC = 0x53554252; // "RBUS" read as a little-endian u32
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
export const MAX_CLUSTER_ID_BYTES = 255;
/** Frames before the handshake completes are tiny; anything larger is refused. */
export const HANDSHAKE_MAX_PAYLOAD = 1024;

const HELLO_FLAG_AUTH = 1;

export interface Hello {
  version: number;
  nodeId: number;
  /** The node id the sender expects to be talking to; 0 if it does not care. */
  peerId: number;
  clusterId: string;
  auth: boolean;
  nonce: Uint8Array;
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function encodeHello(h: Hello): Buffer {
  const cid = Buffer.from(h.clusterId, "utf8");
  if (cid.length === 0 || cid.length > MAX_CLUSTER_ID_BYTES) {
    throw new CodecError(`cluster id must be 1..${MAX_CLUSTER_ID_BYTES} bytes of utf-8`);
  }
  if (h.nonce.length !== NONCE_BYTES) throw new CodecError("bad nonce length");
  const out = Buffer.allocUnsafe(4 + 2 + 1 + 8 + 8 + 1 + cid.length + NONCE_BYTES);
  let p = out.writeUInt32LE(MAGIC, 0);
  p = out.writeUInt16LE(h.version, p);
  p = out.writeUInt8(h.auth ? HELLO_FLAG_AUTH : 0, p);
  p = out.writeDoubleLE(h.nodeId, p);
  p = out.writeDoubleLE(h.peerId, p);
  p = out.writeUInt8(cid.length, p);
  p += cid.copy(out, p);
  out.set(h.nonce, p);
  return out;
}

/** Decodes a HELLO payload; throws CodecError if it is not one. */
export function decodeHello(buf: Uint8Array): Hello {
  const r = new ByteReader(buf);
  if (r.u32("hello magic") !== MAGIC) throw new CodecError("not a raftbus HELLO (bad magic)");
  const version = r.u16("hello version");
  const flags = r.u8("hello flags");
  if (flags & ~HELLO_FLAG_AUTH) throw new CodecError("unknown hello flags");
  const nodeId = r.f64("hello node id");
  const peerId = r.f64("hello peer id");
  const cidLen = r.u8("hello cluster id length");
  const clusterId = r.utf8(cidLen, "hello cluster id");
  const nonce = Uint8Array.from(r.bytesView(NONCE_BYTES, "hello nonce"));
  if (r.remaining() !== 0) throw new CodecError("trailing bytes after HELLO");
  return { version, nodeId, peerId, clusterId, auth: (flags & HELLO_FLAG_AUTH) !== 0, nonce };
}

export type Role = "dialer" | "acceptor";

/**
 * The proof `prover` (in `role`) sends `verifier`: an HMAC over the role, the
 * cluster, both ids and both nonces (the verifier's nonce is the challenge).
 */
export function computeProof(
  secret: string,
  role: Role,
  clusterId: string,
  proverId: number,
  verifierId: number,
  proverNonce: Uint8Array,
  verifierNonce: Uint8Array,
): Buffer {
  const head = Buffer.allocUnsafe(16);
  head.writeDoubleLE(proverId, 0);
  head.writeDoubleLE(verifierId, 8);
  const cid = Buffer.from(clusterId, "utf8");
  const cidLen = Buffer.from([cid.length]);
  return createHmac("sha256", secret)
    .update(`raftbus/${PROTOCOL_VERSION} proof ${role}\n`)
    .update(cidLen)
    .update(cid)
    .update(head)
    .update(verifierNonce)
    .update(proverNonce)
    .digest();
}

export function proofMatches(expected: Uint8Array, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}
