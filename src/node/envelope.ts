// Every proposal travels in an envelope naming the node and request that made
// it, so that the node can answer its client when the entry is applied — even
// when the proposal was forwarded to the leader — and so that the runtime can
// carry its own commands (membership addresses) beside the application's.

export enum EnvelopeKind {
  /** An application command. */
  App = 1,
  /** A runtime command: the address book of members (JSON). */
  Members = 2,
}

export interface Envelope {
  kind: EnvelopeKind;
  origin: number;
  requestId: number;
  body: Uint8Array;
}

const HEADER_BYTES = 1 + 4 + 8;

export function encodeEnvelope(
  kind: EnvelopeKind,
  origin: number,
  requestId: number,
  body: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, kind);
  dv.setUint32(1, origin);
  dv.setFloat64(5, requestId);
  out.set(body, HEADER_BYTES);
  return out;
}

/** Undefined for data that is not an envelope (e.g. a leader's empty entry). */
export function decodeEnvelope(data: Uint8Array): Envelope | undefined {
  if (data.length < HEADER_BYTES) return undefined;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const kind = dv.getUint8(0);
  if (kind !== EnvelopeKind.App && kind !== EnvelopeKind.Members) return undefined;
  return {
    kind,
    origin: dv.getUint32(1),
    requestId: dv.getFloat64(5),
    body: data.subarray(HEADER_BYTES),
  };
}
