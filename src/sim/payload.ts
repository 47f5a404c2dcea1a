// Client payloads: a 4-byte id (unique within a run) followed by a few random bytes.

import type { Prng } from "./prng.ts";

export const MAX_PAYLOAD_EXTRA_BYTES = 24;

export function makePayload(id: number, prng: Prng): Uint8Array {
  const out = new Uint8Array(4 + prng.int(0, MAX_PAYLOAD_EXTRA_BYTES));
  new DataView(out.buffer).setUint32(0, id >>> 0, true);
  for (let i = 4; i < out.length; i++) out[i] = prng.int(0, 255);
  return out;
}

/** The id of a client payload, or undefined for other entries (e.g. a leader's empty entry). */
export function payloadId(data: Uint8Array): number | undefined {
  if (data.length < 4) return undefined;
  return new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
}
