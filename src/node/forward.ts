// Frames a follower and the leader exchange (as transport APP payloads) to
// forward client requests: [u8 kind][f64 requestId][payload]. A Request's
// payload is the raw client request; a Refusal's is the error as JSON. A
// request that the leader proposes needs no answer frame: the follower sees
// the entry applied with its own id and request id in the envelope.

import { CodedError } from "./coded-error.ts";

export enum ForwardKind {
  Request = 1,
  Refusal = 2,
}

export type Forward =
  | { kind: ForwardKind.Request; requestId: number; request: Uint8Array }
  | { kind: ForwardKind.Refusal; requestId: number; error: CodedError };

const HEADER = 9;

export function encodeForward(f: Forward): Uint8Array {
  const payload =
    f.kind === ForwardKind.Request
      ? f.request
      : new TextEncoder().encode(
          JSON.stringify({ code: f.error.code, message: f.error.message, extra: f.error.extra }),
        );
  const out = new Uint8Array(HEADER + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, f.kind);
  dv.setFloat64(1, f.requestId);
  out.set(payload, HEADER);
  return out;
}

export function decodeForward(data: Uint8Array): Forward {
  if (data.length < HEADER) throw new Error("forward frame too short");
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const kind = dv.getUint8(0);
  const requestId = dv.getFloat64(1);
  if (!Number.isSafeInteger(requestId) || requestId < 0) throw new Error("bad request id");
  const payload = data.subarray(HEADER);
  if (kind === ForwardKind.Request) return { kind, requestId, request: payload };
  if (kind === ForwardKind.Refusal) {
    const e = JSON.parse(new TextDecoder().decode(payload)) as {
      code?: unknown;
      message?: unknown;
      extra?: unknown;
    };
    const extra = typeof e.extra === "object" && e.extra !== null ? (e.extra as Record<string, unknown>) : {};
    return {
      kind,
      requestId,
      error: new CodedError(String(e.code ?? "INTERNAL"), String(e.message ?? ""), extra),
    };
  }
  throw new Error(`unknown forward kind ${kind}`);
}
