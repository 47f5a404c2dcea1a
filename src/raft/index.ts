// The Raft core's public surface. Nothing here imports from outside src/raft.

export { decodeConfChange, encodeConfChange } from "./confchange.ts";
export type { RaftConfig, ReadOnlyOption } from "./config.ts";
export { checksumOk, crc32c, entryChecksum, makeEntry } from "./crc32c.ts";
export { isRaftError, RaftError, type RaftErrorCode } from "./errors.ts";
export { type ProgressStatus, RaftNode, type Status } from "./node.ts";
export { ProgressState } from "./progress.ts";
export { cloneConfState, type InitialState, MemoryStorage, type Storage } from "./storage.ts";
export * from "./types.ts";
