// A stored record as the API shows it (fetch answers and WebSocket `records`
// frames): {"offset", "timestamp", "key", "value" | "valueBase64", "headers"}.
// A record produced as JSON (`json` set) comes back as `value`, the parsed
// JSON; any other record as `valueBase64`. `key` is null and `headers` {} when
// the record had none.

import type { StoredRecord } from "../broker/types.ts";

export interface RecordJson {
  offset: number;
  timestamp: number;
  key: string | null;
  value?: unknown;
  valueBase64?: string;
  headers: Record<string, string>;
}

const dec = new TextDecoder("utf-8", { fatal: true });

const base64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");

export function recordToJson(r: StoredRecord): RecordJson {
  const head = { offset: r.offset, timestamp: r.timestamp, key: r.key ?? null };
  const headers = r.headers ?? {};
  if (r.json) {
    try {
      return { ...head, value: JSON.parse(dec.decode(r.value)), headers };
    } catch {
      // Not valid JSON text after all (never written by this API): show the bytes.
    }
  }
  return { ...head, valueBase64: base64(r.value), headers };
}

/**
 * `JSON.stringify(recordToJson(r))`, built directly for records of bytes (no
 * object per record, no generic serialiser on the subscribe and fetch paths);
 * JSON records take the general path, which checks their text.
 */
export function recordJsonText(r: StoredRecord): string {
  if (r.json) return JSON.stringify(recordToJson(r));
  const key = r.key === null || r.key === undefined ? "null" : JSON.stringify(r.key);
  let headers = "{}";
  for (const _ in r.headers) {
    headers = JSON.stringify(r.headers);
    break;
  }
  return `{"offset":${r.offset},"timestamp":${r.timestamp},"key":${key},"valueBase64":"${base64(r.value)}","headers":${headers}}`;
}
