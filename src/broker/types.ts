// The broker's data model: topics of partitions, each a dense sequence of
// records from offset 0, and consumer groups' committed offsets.

import { CodedError } from "../node/coded-error.ts";

export const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
export const MAX_PARTITIONS = 1024;

export interface TopicConfig {
  name: string;
  partitions: number;
  retentionMs: number | null;
  retentionBytes: number | null;
}

export interface PartitionInfo {
  partition: number;
  startOffset: number;
  endOffset: number;
}

export interface TopicInfo {
  name: string;
  partitions: PartitionInfo[];
  retentionMs: number | null;
  retentionBytes: number | null;
}

/** A record as a producer sends it. `json` says whether value holds JSON text. */
export interface RecordIn {
  key: string | null;
  value: Uint8Array;
  json: boolean;
  headers: Record<string, string>;
  partition?: number;
}

export interface StoredRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  value: Uint8Array;
  json: boolean;
  headers: Record<string, string>;
}

export interface RecordPosition {
  partition: number;
  offset: number;
  timestamp: number;
}

/** Where one partition's records of a produce request went: one batch. */
export interface SectionPosition {
  partition: number;
  baseOffset: number;
  count: number;
  timestamp: number;
}

export interface GroupOffset {
  topic: string;
  partition: number;
  offset: number;
  lag: number;
}

export type BrokerErrorCode =
  | "INVALID_REQUEST"
  | "TOPIC_NOT_FOUND"
  | "TOPIC_EXISTS"
  | "PARTITION_NOT_FOUND"
  | "OFFSET_OUT_OF_RANGE"
  | "RECORD_TOO_LARGE"
  | "IDEMPOTENCY_KEY_REUSED";

export class BrokerError extends CodedError {
  constructor(code: BrokerErrorCode, message: string, extra: Record<string, unknown> = {}) {
    super(code, message, extra);
    this.name = "BrokerError";
  }
}

/** Limits (API.md defaults). */
export const LIMITS = {
  maxRecordBytes: 1024 * 1024,
  maxRequestBytes: 8 * 1024 * 1024,
  maxRecordsPerRequest: 100_000,
  idempotencyWindowMs: 10 * 60 * 1000,
  /** Idempotency records kept at most (oldest forgotten first beyond it). */
  maxIdempotencyKeys: 1_000_000,
  maxFetchRecords: 10_000,
};
