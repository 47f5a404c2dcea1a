// Parsing of numeric query and path parameters, with the API's 400 on anything
// that is not a non-negative integer in range.

import { HttpError } from "../errors.ts";

export const DEFAULT_TIMEOUT_MS = 10_000;
export const MAX_TIMEOUT_MS = 120_000;

/** A non-negative integer from a string parameter, within [min, max]; `def` when absent. */
export function intParam(
  raw: string | undefined,
  name: string,
  min: number,
  max: number,
  def?: number,
): number {
  if (raw === undefined || raw === "") {
    if (def === undefined) throw new HttpError("INVALID_REQUEST", `${name} is required`);
    return def;
  }
  if (!/^\d+$/.test(raw))
    throw new HttpError("INVALID_REQUEST", `${name} must be a non-negative integer, got "${raw}"`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new HttpError("INVALID_REQUEST", `${name} must be in ${min}..${max}, got ${raw}`);
  }
  return n;
}

export function parseTimeout(raw: string | undefined): number {
  return intParam(raw, "timeoutMs", 1, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS);
}
