// Every error answer under /v1 has one shape, mapped from error codes in one place.

import type { FastifyReply } from "fastify";

export const STATUS: Record<string, number> = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CHANGE_IN_PROGRESS: 409,
  BACKPRESSURE: 429,
  INTERNAL: 500,
  NO_LEADER: 503,
  STOPPED: 503,
  COMMIT_TIMEOUT: 504,
};

const RETRIABLE = new Set(["NO_LEADER", "BACKPRESSURE", "COMMIT_TIMEOUT"]);

export class HttpError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function sendError(
  reply: FastifyReply,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
) {
  const status = STATUS[code] ?? 500;
  // STOPPED is how a shutting-down node says "no leader here": retriable elsewhere.
  const wire = code === "STOPPED" ? "NO_LEADER" : code;
  if (wire === "NO_LEADER") reply.header("Retry-After", "1");
  return reply
    .status(status)
    .send({ error: { code: wire, message, retriable: RETRIABLE.has(wire), ...extra } });
}
