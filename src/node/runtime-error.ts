// The errors the runtime refuses a request with (their codes are API.md's).

import { CodedError } from "./coded-error.ts";

export type RuntimeErrorCode =
  | "NO_LEADER"
  | "BACKPRESSURE"
  | "COMMIT_TIMEOUT"
  | "CHANGE_IN_PROGRESS"
  | "STOPPED";

export class RuntimeError extends CodedError {
  constructor(code: RuntimeErrorCode, message: string) {
    super(code, message);
    this.name = "RuntimeError";
  }
}
