// The data the Raft core exchanges with the outside world: entries, messages,
// hard state, snapshots and the Ready it hands to the runtime. Plain objects
// only, so a transport can encode them and a simulator can copy them.

export type NodeId = number;

/** No node: used for "no vote" and "no leader". Node ids are positive. */
export const NONE: NodeId = 0;

export enum EntryType {
  /** Application data (an empty one is the no-op a new leader appends). */
  Normal = 0,
  /** A membership change; its data is an encoded ConfChange. */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
  /** CRC32C of (term, index, type, data), set when proposed, checked on receipt. */
  crc: number;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** A membership: voters (and, while joint, the outgoing voters) and learners. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  /** Non-empty only in a joint configuration: the old voter set. */
  votersOutgoing: NodeId[];
  /** Voters of the outgoing config that become learners when the joint config is left. */
  learnersNext: NodeId[];
  /** Leave the joint config automatically once it is applied. */
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  conf: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

export interface ConfChangeSingle {
  type: ConfChangeType;
  nodeId: NodeId;
}

/**
 * A membership change. One voter added or removed is applied directly; a change
 * of two or more voters goes through a joint configuration, which the leader
 * leaves automatically (autoLeave) unless `explicitLeave` is set. An empty
 * `changes` list leaves a joint configuration.
 */
export interface ConfChange {
  changes: ConfChangeSingle[];
  explicitLeave?: boolean;
  /** Opaque bytes for the application (e.g. the new member's addresses). */
  context?: Uint8Array;
  /**
   * The configuration the change applies to, stamped by the leader when it
   * appends the entry. A node that joined with no configuration adopts it, so a
   * joiner replaying the log learns the whole membership, not just the change.
   */
  base?: ConfState;
}

export enum MessageType {
  /** Local only: the election timer fired. */
  Hup = 0,
  /** Local only: the leader's heartbeat timer fired. */
  Beat = 1,
  /** A proposal; local, or forwarded from a follower to the leader. */
  Prop = 2,
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  PreVote = 7,
  PreVoteResp = 8,
  /** One chunk of a snapshot, leader to follower. */
  Snap = 9,
  /** Acknowledges a snapshot chunk; a failed install is an AppResp reject. */
  SnapResp = 10,
  Heartbeat = 11,
  HeartbeatResp = 12,
  TransferLeader = 13,
  TimeoutNow = 14,
  ReadIndex = 15,
  ReadIndexResp = 16,
  /** Local only: the runtime could not reach a peer. */
  Unreachable = 17,
}

/**
 * One message between nodes. Fields not used by a type keep their zero value.
 * `index`/`logTerm` are the entry before `entries` (App), the candidate's last
 * log position (Vote/PreVote), or the acknowledged index (AppResp).
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** On a rejected AppResp: the follower's hint of where logs may match. */
  rejectHint: number;
  /** On Vote: a transfer campaign that ignores leader leases (B18). */
  force: boolean;
  /** ReadIndex / heartbeat context. Empty when unused. */
  context: string;
  /** Snap only: metadata, the chunk and its place in the whole. */
  snapshot?: SnapshotChunk;
}

export interface SnapshotChunk {
  metadata: SnapshotMetadata;
  /** Byte offset of `data` in the whole snapshot. */
  offset: number;
  /** Size of the whole snapshot in bytes. */
  totalBytes: number;
  data: Uint8Array;
  done: boolean;
}

export enum Role {
  Follower = "follower",
  PreCandidate = "pre-candidate",
  Candidate = "candidate",
  Leader = "leader",
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/** A linearizable read point: reads at applied >= index are linearizable. */
export interface ReadState {
  index: number;
  context: string;
}

/**
 * What the runtime must do, in order: persist `snapshot`, `entries` and
 * `hardState` (durably if `mustSync`); send `messages`; apply
 * `committedEntries` (and persist `confState` with them); then call
 * `advance(ready)`. `immediateMessages` (a leader's appends and heartbeats)
 * may be sent at once, before or while persisting (Raft thesis 10.2.1).
 *
 * Readies may be pipelined: a runtime may take the next Ready before advancing
 * the previous one, as long as it persists, applies and advances them in the
 * order it received them.
 */
export interface Ready {
  /** Present when leader or role changed since the last Ready. */
  softState?: SoftState;
  /** Present when term, vote or commit changed since the last Ready. */
  hardState?: HardState;
  /** Log entries to append (they may overwrite a suffix of the stored log). */
  entries: Entry[];
  /** A snapshot to install (restores the state machine and the log base). */
  snapshot?: Snapshot;
  /** Entries to apply, in order; stable once this Ready's entries are. */
  committedEntries: Entry[];
  /** Membership after applying committedEntries; persist it with them. */
  confState?: ConfState;
  /** Send after this Ready's writes are durable. */
  messages: Message[];
  /** May be sent at once. */
  immediateMessages: Message[];
  readStates: ReadState[];
  /** False only when nothing in the Ready must be fsynced (B36). */
  mustSync: boolean;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function newMessage(type: MessageType, fields: Partial<Message> = {}): Message {
  return {
    type,
    from: NONE,
    to: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    force: false,
    context: "",
    ...fields,
  };
}

/** Bytes an entry is charged for in flow control and uncommitted accounting. */
export function entryPayloadSize(e: Entry): number {
  return e.data.length;
}

/** Bytes an entry is charged for in a message (payload plus fixed overhead). */
export function entryWireSize(e: Entry): number {
  return e.data.length + 24;
}
