// Produce and fetch (API.md "Produce" and "Fetch").
//
// Produce: POST /v1/topics/:topic/records with a JSON body
// {"records": [{key?, value? | valueBase64?, headers?, partition?}]}, or with
// Content-Type application/octet-stream: the raw body is one record's value,
// `?key=` and `?partition=` in the query. Choices where API.md is silent:
//   - a JSON record carries exactly one of `value` and `valueBase64`; a record
//     with neither, or both, is 400 (a JSON `null` value is `"value": null`);
//   - `valueBase64` is strict RFC 4648 base64 (standard alphabet, padded,
//     canonical: it must re-encode to itself), anything else is 400;
//   - unknown fields in the body or in a record are 400 (typos never vanish);
//   - `?key=`/`?partition=` with a JSON body are 400 (they apply only to raw bodies);
//   - an octet-stream `?key=` that is present but empty is the key "".
// The record size limit counts the UTF-8 bytes of the key, the value bytes
// (JSON text for `value`) and the UTF-8 bytes of every header name and value.
//
// Idempotency: the body hash is sha256 of a canonical form: for JSON, the
// body with object keys sorted recursively (so JSON-equal bodies hash alike);
// for octet-stream, the key/partition query and the raw bytes.
//
// Fetch: GET /v1/topics/:topic/partitions/:partition/records. Without
// `offset`, reading starts at the partition's start offset (earliest).

import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { LIMITS, type RecordIn } from "../../broker/types.ts";
import type { HttpDeps } from "../deps.ts";
import { HttpError } from "../errors.ts";
import { recordJsonText } from "../record-json.ts";
import { intParam, parseTimeout } from "./params.ts";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const MAX_FETCH_LIMIT = 10_000;
export const DEFAULT_FETCH_LIMIT = 100;
export const MAX_WAIT_MS = 30_000;

/** Idempotency-Key: 1–128 printable ASCII characters. */
export const IDEMPOTENCY_KEY = /^[\x20-\x7E]{1,128}$/;

/** Strict base64: standard alphabet, padded to a multiple of 4. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

type Query = Record<string, string | string[] | undefined>;

/** A query parameter given at most once (a repeated one is 400). */
export function queryParam(q: Query | undefined, name: string): string | undefined {
  const v = q?.[name];
  if (v === undefined || typeof v === "string") return v;
  throw new HttpError("INVALID_REQUEST", `query parameter ${name} may be given only once`);
}

interface JsonRecord {
  key?: string | null;
  value?: unknown;
  valueBase64?: string;
  headers?: Record<string, string>;
  partition?: number;
}

const produceBodySchema = {
  type: "object",
  required: ["records"],
  additionalProperties: false,
  properties: {
    records: {
      type: "array",
      minItems: 1,
      maxItems: LIMITS.maxRecordsPerRequest,
      items: {
        type: "object",
        additionalProperties: false,
        properties: {
          key: { anyOf: [{ type: "string" }, { type: "null" }] },
          value: {},
          valueBase64: { type: "string" },
          headers: { type: "object", additionalProperties: { type: "string" } },
          partition: { type: "integer", minimum: 0, maximum: MAX_SAFE },
        },
      },
    },
  },
} as const;

/** Bytes of base64 text, or undefined when it is not strict, canonical base64. */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (s.length % 4 !== 0 || !BASE64.test(s)) return undefined;
  const b = Buffer.from(s, "base64");
  // Non-zero padding bits ("QR==") decode, but are not the canonical encoding.
  return b.toString("base64") === s ? b : undefined;
}

/** JSON text with object keys sorted recursively: equal for JSON-equal values. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8");

function recordBytes(key: string | null, value: Uint8Array, headers: Record<string, string>): number {
  let n = (key === null ? 0 : utf8Bytes(key)) + value.length;
  for (const [k, v] of Object.entries(headers)) n += utf8Bytes(k) + utf8Bytes(v);
  return n;
}

export async function recordRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { broker } = deps;
  const maxRecordBytes = deps.maxRecordBytes ?? LIMITS.maxRecordBytes;

  const checkSize = (i: number, key: string | null, value: Uint8Array, headers: Record<string, string>) => {
    const n = recordBytes(key, value, headers);
    if (n > maxRecordBytes) {
      throw new HttpError(
        "RECORD_TOO_LARGE",
        `record ${i} is ${n} bytes (key, value and headers); the limit is ${maxRecordBytes}`,
      );
    }
  };

  // ---- produce ------------------------------------------------------------------

  app.post<{ Params: { topic: string }; Querystring: Query; Body: unknown }>(
    "/v1/topics/:topic/records",
    { schema: { body: { content: { "application/json": { schema: produceBodySchema } } } } },
    async (req, reply) => {
      const { topic } = req.params;
      const timeoutMs = parseTimeout(queryParam(req.query, "timeoutMs"));
      const rawIdem = req.headers["idempotency-key"];
      if (rawIdem !== undefined && (typeof rawIdem !== "string" || !IDEMPOTENCY_KEY.test(rawIdem))) {
        throw new HttpError("INVALID_REQUEST", "Idempotency-Key must be 1 to 128 printable ASCII characters");
      }
      const qKey = queryParam(req.query, "key");
      const qPartition = queryParam(req.query, "partition");

      // The body's hash matters only to an idempotent request: computed only then.
      const hash = rawIdem === undefined ? undefined : createHash("sha256");
      let records: RecordIn[];
      if (Buffer.isBuffer(req.body)) {
        // application/octet-stream: one record, the raw bytes.
        const value = req.body;
        const key = qKey ?? null;
        const partition =
          qPartition === undefined ? undefined : intParam(qPartition, "partition", 0, MAX_SAFE);
        checkSize(0, key, value, {});
        const r: RecordIn = { key, value, json: false, headers: {} };
        if (partition !== undefined) r.partition = partition;
        records = [r];
        hash?.update(`octet-stream\n${JSON.stringify({ key, partition: partition ?? null })}\n`);
        hash?.update(value);
      } else {
        const body = req.body as { records?: JsonRecord[] } | undefined;
        if (!body || !Array.isArray(body.records)) {
          throw new HttpError(
            "INVALID_REQUEST",
            'the body must be JSON {"records": [...]} or application/octet-stream bytes',
          );
        }
        if (qKey !== undefined || qPartition !== undefined) {
          throw new HttpError(
            "INVALID_REQUEST",
            "the key and partition query parameters apply only to application/octet-stream bodies",
          );
        }
        records = body.records.map((jr, i) => {
          const hasValue = Object.hasOwn(jr, "value");
          const hasB64 = jr.valueBase64 !== undefined;
          if (hasValue === hasB64) {
            throw new HttpError(
              "INVALID_REQUEST",
              `record ${i} must have exactly one of "value" (JSON) and "valueBase64" (bytes)`,
            );
          }
          let value: Uint8Array;
          if (hasB64) {
            const b = decodeBase64Strict(jr.valueBase64!);
            if (!b) throw new HttpError("INVALID_REQUEST", `record ${i}: valueBase64 is not valid base64`);
            value = b;
          } else {
            value = Buffer.from(JSON.stringify(jr.value), "utf8");
          }
          const key = jr.key ?? null;
          const headers = jr.headers ?? {};
          checkSize(i, key, value, headers);
          const r: RecordIn = { key, value, json: hasValue, headers };
          if (jr.partition !== undefined) r.partition = jr.partition;
          return r;
        });
        hash?.update(`json\n${canonicalJson(body)}`);
      }

      const opts: { idempotencyKey?: string; bodyHash?: string; timeoutMs: number } = { timeoutMs };
      if (rawIdem !== undefined && hash) {
        opts.idempotencyKey = rawIdem;
        opts.bodyHash = hash.digest("hex");
      }
      const positions = await broker.produce(topic, records, opts);
      if (deps.metrics) {
        let bytes = 0;
        for (const r of records) bytes += r.value.length;
        deps.metrics.observeProduce(topic, records.length, bytes, reply.elapsedTime / 1000);
      }
      return { records: positions };
    },
  );

  // ---- fetch --------------------------------------------------------------------

  // Long polls in flight: answered at once (with what there is) when the server closes.
  const polls = new Set<AbortController>();
  app.addHook("preClose", async () => {
    for (const ac of polls) ac.abort();
  });

  app.get<{ Params: { topic: string; partition: string }; Querystring: Query }>(
    "/v1/topics/:topic/partitions/:partition/records",
    async (req, reply) => {
      const { topic } = req.params;
      const partition = intParam(req.params.partition, "partition", 0, MAX_SAFE);
      const rawOffset = queryParam(req.query, "offset");
      const offsetParam = rawOffset === undefined ? undefined : intParam(rawOffset, "offset", 0, MAX_SAFE);
      const limit = intParam(
        queryParam(req.query, "limit"),
        "limit",
        1,
        MAX_FETCH_LIMIT,
        DEFAULT_FETCH_LIMIT,
      );
      const maxWaitMs = intParam(queryParam(req.query, "maxWaitMs"), "maxWaitMs", 0, MAX_WAIT_MS, 0);

      const offset = offsetParam ?? broker.requirePartition(topic, partition).start;
      let res = broker.fetch(topic, partition, offset, limit);
      if (offset === res.endOffset && maxWaitMs > 0) {
        const ac = new AbortController();
        const onClose = () => ac.abort(); // the client went away: stop waiting
        req.raw.on("close", onClose);
        polls.add(ac);
        try {
          await broker.waitForRecords(topic, partition, offset, maxWaitMs, ac.signal);
        } finally {
          req.raw.off("close", onClose);
          polls.delete(ac);
        }
        res = broker.fetch(topic, partition, offset, limit);
      }
      // Serialised here, record by record, rather than by fastify from objects.
      const records = res.records.map(recordJsonText).join(",");
      return reply
        .type("application/json; charset=utf-8")
        .send(`{"records":[${records}],"nextOffset":${res.nextOffset},"endOffset":${res.endOffset}}`);
    },
  );

  // ---- offset for a timestamp -----------------------------------------------------

  app.get<{ Params: { topic: string; partition: string }; Querystring: Query }>(
    "/v1/topics/:topic/partitions/:partition/offsets",
    async (req) => {
      const partition = intParam(req.params.partition, "partition", 0, MAX_SAFE);
      const ts = intParam(queryParam(req.query, "timestamp"), "timestamp", 0, MAX_SAFE);
      return { offset: broker.offsetForTimestamp(req.params.topic, partition, ts) };
    },
  );

  // ---- a partition's digest (replicas that agree are equal) -------------------------

  app.get<{ Params: { topic: string; partition: string } }>(
    "/v1/topics/:topic/partitions/:partition/digest",
    async (req) => {
      const partition = intParam(req.params.partition, "partition", 0, MAX_SAFE);
      return broker.partitionDigest(req.params.topic, partition);
    },
  );
}
