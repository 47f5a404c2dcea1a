// Typed errors of the Raft core. The runtime maps these to its own answers
// (e.g. NO_LEADER -> HTTP 503, PROPOSAL_DROPPED on a full window -> 429).

export type RaftErrorCode =
  /** The requested index is before the first index kept in storage. */
  | "COMPACTED"
  /** The requested index is after the last index in storage. */
  | "UNAVAILABLE"
  /** A snapshot older than the one already held. */
  | "SNAPSHOT_OUT_OF_DATE"
  /** No leader is known, so a proposal cannot be placed. */
  | "NO_LEADER"
  /** A proposal was refused: forwarding disabled, transfer in progress, not a member. */
  | "PROPOSAL_DROPPED"
  /** The leader's uncommitted tail is at maxUncommittedBytes (B40). */
  | "UNCOMMITTED_LIMIT"
  /** A membership change is already pending (B51). */
  | "CHANGE_IN_PROGRESS"
  /** A membership change that is not allowed (e.g. would leave no voters). */
  | "INVALID_CONF_CHANGE"
  /** A configuration error. */
  | "INVALID_CONFIG"
  /** An entry's checksum does not match its content. */
  | "CORRUPT_ENTRY";

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.name = "RaftError";
    this.code = code;
  }
}

export function isRaftError(e: unknown, code?: RaftErrorCode): e is RaftError {
  return e instanceof RaftError && (code === undefined || e.code === code);
}
