// Typed errors of the client: one class per API error code a caller may want
// to handle (API.md "HTTP"), all subclasses of RaftbusError, which carries the
// code, the HTTP status and whether an earlier attempt may have taken effect.

/** The API's retriable codes: the same request may succeed later. */
const RETRIABLE_CODES = new Set(["NO_LEADER", "BACKPRESSURE", "COMMIT_TIMEOUT"]);

/** Fields of the API's error object beyond code, message and retriable (e.g. `startOffset` of a 416). */
export type ErrorDetails = Record<string, unknown>;

/**
 * An error answer of the API, or a failure to get any answer (status 0, code
 * `UNAVAILABLE`). `code` is the API's error code (`TOPIC_NOT_FOUND`, ...).
 */
export class RaftbusError extends Error {
  /** HTTP status of the answer; 0 when no server answered. */
  readonly status: number;
  /** The API's error code, `UNAVAILABLE` when no server answered, `HTTP_<status>` for a non-API answer. */
  readonly code: string;
  /** Whether the same request may succeed later (the client has already retried it for a while). */
  readonly retriable: boolean;
  /** Further fields of the API's error object. */
  readonly details: ErrorDetails;
  /**
   * Whether an earlier attempt of this request may have taken effect (a 504
   * or a broken connection came before this error). For a produce, the
   * records may or may not have been appended.
   */
  readonly maybeApplied: boolean;

  /** @param o what the server answered, and whether an earlier attempt may have taken effect. */
  constructor(o: {
    status: number;
    code: string;
    message: string;
    retriable?: boolean;
    details?: ErrorDetails;
    maybeApplied?: boolean;
  }) {
    super(o.message);
    this.name = new.target.name;
    this.status = o.status;
    this.code = o.code;
    this.retriable = o.retriable ?? RETRIABLE_CODES.has(o.code);
    this.details = o.details ?? {};
    this.maybeApplied = o.maybeApplied ?? false;
  }
}

/** 404 `TOPIC_NOT_FOUND`: no topic of that name. */
export class TopicNotFoundError extends RaftbusError {}
/** 404 `PARTITION_NOT_FOUND`: the topic has no such partition. */
export class PartitionNotFoundError extends RaftbusError {}
/** 409 `TOPIC_EXISTS`: a topic of that name exists already. */
export class TopicExistsError extends RaftbusError {}
/** 413 `RECORD_TOO_LARGE`: a record (or the request) is over the server's size limit. */
export class RecordTooLargeError extends RaftbusError {}
/** 416 `OFFSET_OUT_OF_RANGE`: `details.startOffset` / `details.endOffset` say what the partition holds. */
export class OffsetOutOfRangeError extends RaftbusError {}
/** 400 `INVALID_REQUEST`: the request is malformed (a bad name, partition count, record, ...). */
export class InvalidRequestError extends RaftbusError {}
/** 401 `UNAUTHORIZED`: the token is missing or wrong. */
export class UnauthorizedError extends RaftbusError {}
/** 422 `IDEMPOTENCY_KEY_REUSED`: an Idempotency-Key came back with a different body. */
export class IdempotencyKeyReusedError extends RaftbusError {}
/**
 * No server could be reached, or retriable failures (`NO_LEADER`,
 * `BACKPRESSURE`, `COMMIT_TIMEOUT`, connection errors) went on past the
 * client's retry timeout. `code` is the last failure's.
 */
export class UnavailableError extends RaftbusError {}
/** A subscription ended because its topic was deleted (close code 4404). */
export class TopicDeletedError extends RaftbusError {}
/** The client, producer or consumer was closed while the call was pending. */
export class ClosedError extends RaftbusError {}

const BY_CODE: Record<string, new (o: ConstructorParameters<typeof RaftbusError>[0]) => RaftbusError> = {
  TOPIC_NOT_FOUND: TopicNotFoundError,
  PARTITION_NOT_FOUND: PartitionNotFoundError,
  TOPIC_EXISTS: TopicExistsError,
  RECORD_TOO_LARGE: RecordTooLargeError,
  OFFSET_OUT_OF_RANGE: OffsetOutOfRangeError,
  INVALID_REQUEST: InvalidRequestError,
  UNAUTHORIZED: UnauthorizedError,
  IDEMPOTENCY_KEY_REUSED: IdempotencyKeyReusedError,
};

/** The typed error for an answer with `status` and body `text` (the API's error shape, or anything else). */
export function errorFromAnswer(status: number, text: string, maybeApplied = false): RaftbusError {
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string; retriable?: boolean; [k: string]: unknown };
    };
    if (body?.error?.code) {
      const { code, message, retriable, ...details } = body.error;
      const Cls = BY_CODE[code] ?? RaftbusError;
      return new Cls({
        status,
        code,
        message: message ?? code,
        ...(retriable === undefined ? {} : { retriable }),
        details,
        maybeApplied,
      });
    }
  } catch {
    // not JSON: a proxy or a node in trouble
  }
  const snippet = text.trim().slice(0, 200);
  return new RaftbusError({
    status,
    code: `HTTP_${status}`,
    message: `HTTP ${status}${snippet ? `: ${snippet}` : ""}`,
    // A gateway's 502/503/504 is worth another try; other non-API answers are not.
    retriable: status === 502 || status === 503 || status === 504,
    maybeApplied,
  });
}
