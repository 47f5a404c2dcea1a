// An error with a machine-readable code (the codes of API.md) and optional
// details, which can cross the peer transport when a follower's forwarded
// request is refused by the leader.

export class CodedError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "CodedError";
  }

  get retriable(): boolean {
    return this.code === "NO_LEADER" || this.code === "BACKPRESSURE" || this.code === "COMMIT_TIMEOUT";
  }
}

export function toCodedError(e: unknown): CodedError {
  if (e instanceof CodedError) return e;
  return new CodedError("INTERNAL", e instanceof Error ? e.message : String(e));
}
