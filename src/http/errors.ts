// Every error answer under /v1 has one shape, mapped from codes in one place:
// {"error": {"code", "message", "retriable", ...details}}.

import type { FastifyReply } from "fastify";
import { CodedError } from "../node/coded-error.ts";

export const STATUS: Record<string, number> = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  TOPIC_NOT_FOUND: 404,
  PARTITION_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  TOPIC_EXISTS: 409,
  CHANGE_IN_PROGRESS: 409,
  RECORD_TOO_LARGE: 413,
  OFFSET_OUT_OF_RANGE: 416,
  IDEMPOTENCY_KEY_REUSED: 422,
  BACKPRESSURE: 429,
  INTERNAL: 500,
  NO_LEADER: 503,
  COMMIT_TIMEOUT: 504,
};

const RETRIABLE = new Set(["NO_LEADER", "BACKPRESSURE", "COMMIT_TIMEOUT"]);

/** An error with an API code, thrown by routes; mapped by the app's error handler. */
export class HttpError extends CodedError {}

export function errorBody(code: string, message: string, extra: Record<string, unknown> = {}) {
  return { error: { code, message, retriable: RETRIABLE.has(code), ...extra } };
}

export function sendError(
  reply: FastifyReply,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
) {
  // A node that is shutting down is, to a client, a node without a leader: retry elsewhere.
  const wire = code === "STOPPED" ? "NO_LEADER" : code;
  const status = STATUS[wire] ?? 500;
  const req = reply.request;
  // Client errors are normal traffic (debug); a 500 is ours to look at (error).
  if (req?.log) {
    // The path only: a WebSocket upgrade may carry ?token= in its query.
    const path = req.url.split("?", 1)[0];
    const fields = { code: wire, status, method: req.method, path, msg: message };
    if (status >= 500 && wire === "INTERNAL") req.log.error(fields, "request failed");
    else req.log.debug(fields, "request refused");
  }
  if (wire === "NO_LEADER") reply.header("Retry-After", "1");
  return reply.status(status).send(errorBody(wire, message, extra));
}

export function sendCoded(reply: FastifyReply, e: unknown) {
  if (e instanceof CodedError) return sendError(reply, e.code, e.message, e.extra);
  return sendError(reply, "INTERNAL", e instanceof Error ? e.message : String(e));
}
