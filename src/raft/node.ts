// RaftNode: the public API of the core. Every input returns what the runtime
// must now do as a Ready (or null), and advance(ready) tells the core that a
// Ready was persisted and applied. See docs/raft-core.md for the contract.

import { encodeConfChange } from "./confchange.ts";
import { type RaftConfig, resolveConfig } from "./config.ts";
import { RaftError } from "./errors.ts";
import type { ProgressState } from "./progress.ts";
import { Raft } from "./raft.ts";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  newMessage,
  type Ready,
  Role,
  type SoftState,
} from "./types.ts";

export interface ProgressStatus {
  id: NodeId;
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  isLearner: boolean;
  inflightMsgs: number;
  inflightBytes: number;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  role: Role;
  leader: NodeId;
  commit: number;
  /** Acknowledged as applied by advance. */
  applied: number;
  /** Handed out for apply (>= applied). */
  applying: number;
  firstIndex: number;
  lastIndex: number;
  leadTransferee: NodeId;
  config: ConfState;
  /** The leader's view of each member's log; empty on other roles. */
  progress: ProgressStatus[];
  uncommittedBytes: number;
  elections: number;
}

const LOCAL_ONLY = new Set([MessageType.Hup, MessageType.Beat, MessageType.Unreachable]);

function toEntries(datas: Uint8Array[], type: EntryType): Entry[] {
  const out: Entry[] = new Array(datas.length);
  for (let i = 0; i < datas.length; i++) out[i] = { term: 0, index: 0, type, data: datas[i]!, crc: 0 };
  return out;
}

export class RaftNode {
  private readonly raft: Raft;
  private prevHard: HardState;
  private prevSoft: SoftState;
  /** Readies handed out and not yet advanced, oldest first. */
  private readonly outstanding: Ready[] = [];

  constructor(config: RaftConfig) {
    const cfg = resolveConfig(config);
    this.raft = new Raft(cfg);
    this.prevHard = cfg.storage.initialState().hardState;
    this.prevSoft = { leader: NONE, role: Role.Follower };
  }

  get id(): NodeId {
    return this.raft.id;
  }

  tick(): Ready | null {
    this.raft.tick();
    return this.ready();
  }

  /** A message from a peer. Messages to another node and local-only types are ignored. */
  step(m: Message): Ready | null {
    if (LOCAL_ONLY.has(m.type) || (m.to !== NONE && m.to !== this.raft.id)) return this.ready();
    if (m.type === MessageType.Prop && m.from === NONE) return this.ready();
    this.raft.step(m);
    return this.ready();
  }

  /** Proposes one command. Throws RaftError when it cannot be placed (see docs). */
  propose(data: Uint8Array): Ready | null {
    return this.proposeBatch([data]);
  }

  /** Proposes many commands as one message: one append and one broadcast for all. */
  proposeBatch(datas: Uint8Array[]): Ready | null {
    this.raft.step(newMessage(MessageType.Prop, { entries: toEntries(datas, EntryType.Normal) }));
    return this.ready();
  }

  /** Proposes a membership change; it takes effect when applied (see ConfChange). */
  proposeConfChange(cc: ConfChange): Ready | null {
    const entries = toEntries([encodeConfChange(cc)], EntryType.ConfChange);
    this.raft.step(newMessage(MessageType.Prop, { entries }));
    return this.ready();
  }

  /** Asks for a linearizable read point; a ReadState with `context` follows in a later Ready. */
  readIndex(context: string): Ready | null {
    if (context === "") throw new RaftError("PROPOSAL_DROPPED", "a read needs a non-empty context");
    this.raft.step(newMessage(MessageType.ReadIndex, { context }));
    return this.ready();
  }

  /** Asks the leader (through this node) to hand leadership to `to`. */
  transferLeader(to: NodeId): Ready | null {
    this.raft.step(newMessage(MessageType.TransferLeader, { from: to }));
    return this.ready();
  }

  /** Starts an election now (subject to PreVote). */
  campaign(): Ready | null {
    this.raft.step(newMessage(MessageType.Hup));
    return this.ready();
  }

  /** The runtime could not deliver to `id`: stop streaming to it (B42). */
  reportUnreachable(id: NodeId): Ready | null {
    this.raft.step(newMessage(MessageType.Unreachable, { from: id }));
    return this.ready();
  }

  hasReady(): boolean {
    const r = this.raft;
    const u = r.log.unstable;
    if (r.msgs.length > 0 || r.msgsImmediate.length > 0 || r.readStates.length > 0 || r.confChanged)
      return true;
    if (u.offsetInProgress < u.offset + u.entries.length || u.nextSnapshot()) return true;
    const h = this.prevHard;
    if (h.term !== r.term || h.vote !== r.vote || h.commit !== r.log.committed) return true;
    if (this.prevSoft.leader !== r.lead || this.prevSoft.role !== r.role) return true;
    return r.log.hasNextCommittedEnts();
  }

  /** Everything pending, or null. Each Ready must be advanced, in order. */
  ready(): Ready | null {
    if (!this.hasReady()) return null;
    const r = this.raft;
    const log = r.log;

    // Committed entries first: applying a membership change can append (the
    // automatic leave of a joint config) and send, which this Ready then carries.
    const committedEntries = log.nextCommittedEnts(r.cfg.maxCommittedBytesPerReady);
    if (committedEntries.length > 0) {
      log.applying = committedEntries[committedEntries.length - 1]!.index;
      for (const e of committedEntries) if (e.type === EntryType.ConfChange) r.applyConfChangeEntry(e);
      r.reduceUncommittedSize(committedEntries);
      r.maybeAutoLeave();
    }

    const snapshot = log.unstable.nextSnapshot();
    const entries = log.unstable.nextEntries();
    log.unstable.acceptInProgress();
    if (snapshot && snapshot.metadata.index > log.applying) log.applying = snapshot.metadata.index;

    const rd: Ready = {
      entries,
      committedEntries,
      messages: r.msgs,
      immediateMessages: r.msgsImmediate,
      readStates: r.readStates,
      mustSync: false,
    };
    r.msgs = [];
    r.msgsImmediate = [];
    r.readStates = [];
    if (snapshot) rd.snapshot = snapshot;

    const hs = r.hardState();
    const h = this.prevHard;
    if (hs.term !== h.term || hs.vote !== h.vote || hs.commit !== h.commit) {
      rd.hardState = hs;
      // B36: only a commit-only change may skip the sync.
      if (hs.term !== h.term || hs.vote !== h.vote) rd.mustSync = true;
      this.prevHard = hs;
    }
    if (entries.length > 0 || snapshot) rd.mustSync = true;
    if (this.prevSoft.leader !== r.lead || this.prevSoft.role !== r.role) {
      this.prevSoft = { leader: r.lead, role: r.role };
      rd.softState = { ...this.prevSoft };
    }
    if (r.confChanged) {
      rd.confState = r.trk.confState();
      r.confChanged = false;
    }
    this.outstanding.push(rd);
    return rd;
  }

  /** The runtime has persisted, sent and applied `rd`. Returns the next Ready, if any. */
  advance(rd: Ready): Ready | null {
    const first = this.outstanding[0];
    if (first !== rd) throw new Error("raft: advance() must be called for each Ready, in the order received");
    this.outstanding.shift();
    const r = this.raft;
    const log = r.log;
    if (rd.snapshot) {
      log.unstable.stableSnapTo(rd.snapshot.metadata.index);
      log.appliedTo(Math.min(rd.snapshot.metadata.index, log.committed));
    }
    if (rd.hardState) r.durableTerm = rd.hardState.term;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      // B37: if the entries were replaced meanwhile, this acknowledgement is void.
      if (log.stableTo(last.index, last.term)) r.selfStable(last.index);
    }
    if (rd.committedEntries.length > 0) {
      log.appliedTo(rd.committedEntries[rd.committedEntries.length - 1]!.index);
    }
    return this.ready();
  }

  status(): Status {
    const r = this.raft;
    const progress: ProgressStatus[] = [];
    if (r.role === Role.Leader) {
      for (const [id, pr] of r.trk.progress) {
        progress.push({
          id,
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
          inflightMsgs: pr.inflights.count,
          inflightBytes: pr.inflights.bytes,
        });
      }
      progress.sort((a, b) => a.id - b.id);
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      role: r.role,
      leader: r.lead,
      commit: r.log.committed,
      applied: r.log.applied,
      applying: r.log.applying,
      firstIndex: r.log.firstIndex(),
      lastIndex: r.log.lastIndex(),
      leadTransferee: r.leadTransferee,
      config: r.trk.confState(),
      progress,
      uncommittedBytes: r.uncommittedSize,
      elections: r.counters.elections,
    };
  }
}
