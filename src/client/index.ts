// raftbus/client: a TypeScript client for raftbus that makes producing and
// consuming safe by default. Browser-compatible: fetch, WebSocket,
// AbortController, TextEncoder-free UTF-8 sizing, no Node built-ins.

export { type ClientOptions, RaftbusClient } from "./client.ts";
export {
  Consumer,
  type SubscribeOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./consumer.ts";
export {
  ClosedError,
  type ErrorDetails,
  errorFromAnswer,
  IdempotencyKeyReusedError,
  InvalidRequestError,
  OffsetOutOfRangeError,
  PartitionNotFoundError,
  RaftbusError,
  RecordTooLargeError,
  TopicDeletedError,
  TopicExistsError,
  TopicNotFoundError,
  UnauthorizedError,
  UnavailableError,
} from "./errors.ts";
export { Producer, type ProducerOptions, wireRecord } from "./producer.ts";
export {
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RETRY_TIMEOUT_MS,
  MAX_RETRY_TIMEOUT_MS,
  type RequestOptions,
  Transport,
  type TransportOptions,
} from "./transport.ts";
export type {
  ClusterInfo,
  ConsumedRecord,
  CreateTopicOptions,
  FetchedRecord,
  FetchResult,
  GroupOffset,
  MemberInfo,
  PartitionInfo,
  ProducerRecord,
  RecordMetadata,
  TopicInfo,
} from "./types.ts";
export { fromBase64, normalizeServer, toBase64 } from "./util.ts";
