// The API's data shapes (API.md), as the client sends and receives them.

/** A partition's bounds: `endOffset` is the offset the next record will get. */
export interface PartitionInfo {
  partition: number;
  startOffset: number;
  endOffset: number;
}

/** A topic as `GET /v1/topics/:topic` answers it. */
export interface TopicInfo {
  name: string;
  partitions: PartitionInfo[];
  retentionMs: number | null;
  retentionBytes: number | null;
}

/** What `createTopic` takes: only `name` is required (1 partition, kept forever). */
export interface CreateTopicOptions {
  name: string;
  partitions?: number;
  retentionMs?: number | null;
  retentionBytes?: number | null;
}

/**
 * A record to produce. Give the value as `value` (any JSON value), `bytes`
 * or `valueBase64`. Without `partition`, a record with a key goes to
 * `hash(key) mod partitions`, one without to any partition.
 */
export interface ProducerRecord {
  key?: string | null;
  value?: unknown;
  /** The value as bytes (sent as `valueBase64`). */
  bytes?: Uint8Array;
  valueBase64?: string;
  headers?: Record<string, string>;
  partition?: number;
}

/** Where a produced record was appended. */
export interface RecordMetadata {
  partition: number;
  offset: number;
  timestamp: number;
}

/** A record as fetch and subscribe answer it: `value` for JSON values, `valueBase64` for bytes. */
export interface FetchedRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  value?: unknown;
  valueBase64?: string;
  headers: Record<string, string>;
}

/** A record a consumer delivers: a fetched record and its partition. */
export interface ConsumedRecord extends FetchedRecord {
  partition: number;
}

/** `GET .../records`: the records, the offset to ask for next, and the partition's end. */
export interface FetchResult {
  records: FetchedRecord[];
  nextOffset: number;
  endOffset: number;
}

/** A consumer group's committed offset of one partition, with the lag behind its end. */
export interface GroupOffset {
  topic: string;
  partition: number;
  offset: number;
  lag: number;
}

/** A cluster member; `http` is the `host:port` of its HTTP API when known. */
export interface MemberInfo {
  id: number;
  role: "voter" | "learner";
  raft: string | null;
  http: string | null;
  matchIndex: number | null;
}

/** `GET /v1/cluster`: the cluster as the answering node sees it. */
export interface ClusterInfo {
  nodeId: number;
  leaderId: number | null;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  members: MemberInfo[];
}
