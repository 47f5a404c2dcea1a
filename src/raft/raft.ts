// The Raft state machine: roles, elections (with PreVote and CheckQuorum),
// replication with flow control, commit, snapshots, membership, ReadIndex and
// leadership transfer. Pure: input is ticks and messages, output is the
// outboxes and the log's unstable tail, which RaftNode turns into a Ready.
// Section numbers refer to the Raft paper (Ongaro & Ousterhout, 2014) and, as
// "thesis", Ongaro's dissertation.

import { applyConfChange, decodeConfChange, encodeConfChange } from "./confchange.ts";
import type { ResolvedConfig } from "./config.ts";
import { checksumOk, entryChecksum } from "./crc32c.ts";
import { RaftError } from "./errors.ts";
import { RaftLog } from "./log.ts";
import { Prng } from "./prng.ts";
import { Progress, ProgressState } from "./progress.ts";
import { ReadOnly } from "./readonly.ts";
import { configFromConfState, ProgressTracker, type TrackerConfig } from "./tracker.ts";
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  entryPayloadSize,
  type HardState,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  newMessage,
  type ReadState,
  Role,
  type Snapshot,
} from "./types.ts";

/** Bound on ReadIndex requests queued until a new leader commits in its term. */
const MAX_PENDING_READ_INDEX_MESSAGES = 4096;

type CampaignType = "pre-election" | "election" | "transfer";

/** Messages a leader may send before its own write is durable (thesis 10.2.1). */
function isLeaderStreamMessage(t: MessageType): boolean {
  return (
    t === MessageType.App ||
    t === MessageType.Heartbeat ||
    t === MessageType.Snap ||
    t === MessageType.TimeoutNow ||
    t === MessageType.ReadIndexResp
  );
}

/** The follower's side of a snapshot transfer in progress. */
interface SnapshotReceive {
  from: NodeId;
  term: number;
  index: number;
  snapTerm: number;
  totalBytes: number;
  chunks: Uint8Array[];
  received: number;
}

export class Raft {
  readonly id: NodeId;
  readonly cfg: ResolvedConfig;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = Role.Follower;
  readonly log: RaftLog;
  trk: ProgressTracker;
  readonly readOnly = new ReadOnly();
  readStates: ReadState[] = [];
  /** Sent after the next Ready's writes are durable. */
  msgs: Message[] = [];
  /** A leader's stream: may be sent at once. */
  msgsImmediate: Message[] = [];
  /** The term last handed out in a Ready's hard state and acknowledged (durable). */
  durableTerm = 0;

  /** Ticks since this node started: the leader's clock for read leases. */
  tickCount = 0;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  leadTransferee: NodeId = NONE;
  /** Index of the last membership change in the log; no new one until it is applied (B51). */
  pendingConfIndex = 0;
  /** Payload bytes of the leader's uncommitted tail (B40). */
  uncommittedSize = 0;
  pendingReadIndexMessages: Message[] = [];
  /** Whether the membership changed and must be persisted with the next Ready. */
  confChanged = false;
  snapshotReceive: SnapshotReceive | undefined;
  /** Counts of notable events, for the runtime's metrics. */
  readonly counters = { elections: 0, droppedCorruptAppends: 0 };

  private readonly prng: Prng;

  constructor(cfg: ResolvedConfig) {
    this.id = cfg.id;
    this.cfg = cfg;
    this.prng = new Prng(cfg.seed);
    this.log = new RaftLog(cfg.storage, cfg.applied);
    const { hardState, confState } = cfg.storage.initialState();
    let cs = confState;
    if (cs.voters.length === 0 && cs.learners.length === 0 && cfg.peers.length > 0) {
      // A new cluster: the initial membership comes from the config; persist it.
      cs = {
        voters: [...cfg.peers],
        learners: [...cfg.learners],
        votersOutgoing: [],
        learnersNext: [],
        autoLeave: false,
      };
      this.confChanged = true;
    }
    this.trk = new ProgressTracker(
      configFromConfState(cs),
      new Map(),
      cfg.maxInflightMsgs,
      cfg.maxInflightBytes,
    );
    this.switchToConfig(configFromConfState(cs), this.buildProgress(configFromConfState(cs)));
    if (hardState.term > 0 || hardState.vote !== NONE) {
      this.term = hardState.term;
      this.vote = hardState.vote;
      this.durableTerm = hardState.term;
    }
    this.becomeFollower(this.term, NONE);
  }

  private buildProgress(c: TrackerConfig): Map<NodeId, Progress> {
    const m = new Map<NodeId, Progress>();
    const next = this.log.lastIndex() + 1;
    for (const id of [...c.voters, ...c.votersOutgoing, ...c.learners, ...c.learnersNext]) {
      if (!m.has(id))
        m.set(id, new Progress(next, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes, false));
    }
    return m;
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** A voter of the current config that is not a learner: may campaign. */
  promotable(): boolean {
    return this.trk.isVoter(this.id) && this.log.unstable.snapshot === undefined;
  }

  // ---- sending -------------------------------------------------------------

  private send(m: Message): void {
    // A forwarded TransferLeader keeps its `from`: the transferee.
    if (m.from === NONE) m.from = this.id;
    if (
      m.type === MessageType.Vote ||
      m.type === MessageType.VoteResp ||
      m.type === MessageType.PreVote ||
      m.type === MessageType.PreVoteResp
    ) {
      if (m.term === 0) throw new Error(`raft: ${MessageType[m.type]} must carry a term`);
    } else if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex) {
      // Proposals and read requests forwarded to the leader are "local" (term 0).
      m.term = this.term;
    }
    if (this.role === Role.Leader && this.durableTerm === this.term && isLeaderStreamMessage(m.type)) {
      this.msgsImmediate.push(m);
    } else {
      this.msgs.push(m);
    }
  }

  /** Sends an append (or a snapshot) to `to`. Returns whether a message went out. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) return this.maybeSendSnapshot(to, pr);
    let ents: Entry[] = [];
    if (pr.next <= this.log.lastIndex()) {
      try {
        ents = this.log.entries(pr.next, this.cfg.maxSizePerMsg);
      } catch (e) {
        if (e instanceof RaftError && e.code === "COMPACTED") return this.maybeSendSnapshot(to, pr);
        throw e;
      }
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of ents) bytes += entryPayloadSize(e);
    const last = ents.length > 0 ? ents[ents.length - 1]!.index : prevIndex;
    this.send(
      newMessage(MessageType.App, {
        to,
        index: prevIndex,
        logTerm: prevTerm,
        entries: ents,
        commit: this.log.committed,
      }),
    );
    pr.sentEntries(ents.length, bytes, last);
    return true;
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Starts a snapshot transfer to a follower whose next entry is compacted (B45, B50). */
  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false;
    const snap = this.log.unstable.snapshot ?? this.log.storage.snapshot();
    if (snap.metadata.index === 0) throw new Error(`raft: ${to} needs a snapshot but there is none`);
    pr.becomeSnapshot({ index: snap.metadata.index, term: snap.metadata.term, data: snap.data, offset: 0 });
    this.snapshotChunks.set(to, snap);
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  /** The snapshot being sent to each follower in Snapshot state (for its metadata). */
  private readonly snapshotChunks = new Map<NodeId, Snapshot>();

  private sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const s = pr.snapshotSend;
    const snap = this.snapshotChunks.get(to);
    if (!s || !snap || snap.metadata.index !== s.index) return;
    const end = Math.min(s.data.length, s.offset + this.cfg.maxSnapshotChunkBytes);
    this.send(
      newMessage(MessageType.Snap, {
        to,
        snapshot: {
          metadata: snap.metadata,
          offset: s.offset,
          totalBytes: s.data.length,
          data: s.data.subarray(s.offset, end),
          done: end >= s.data.length,
        },
      }),
    );
  }

  private bcastAppend(): void {
    for (const id of this.trk.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(context = this.readOnly.lastPendingContext()): void {
    for (const [id, pr] of this.trk.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold (B43).
      const commit = Math.min(pr.match, this.log.committed);
      // `index` carries our clock; the echo tells when a quorum last confirmed us (lease reads).
      this.send(newMessage(MessageType.Heartbeat, { to: id, commit, context, index: this.tickCount }));
    }
  }

  // ---- role changes ----------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTick + this.prng.intn(this.cfg.electionTick);
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.log.lastIndex();
    for (const [id, pr] of this.trk.progress) {
      const fresh = new Progress(last + 1, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes, pr.isLearner);
      if (id === this.id) fresh.match = this.log.stableIndex();
      this.trk.progress.set(id, fresh);
    }
    this.snapshotChunks.clear();
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
  }

  private becomePreCandidate(): void {
    if (this.role === Role.Leader) throw new Error("raft: leader cannot become pre-candidate");
    // PreVote changes neither term nor vote (B14).
    this.trk.resetVotes();
    this.lead = NONE;
    this.role = Role.PreCandidate;
  }

  private becomeCandidate(): void {
    if (this.role === Role.Leader) throw new Error("raft: leader cannot become candidate");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    if (this.role === Role.Follower) throw new Error("raft: follower cannot become leader");
    this.reset(this.term);
    this.lead = this.id;
    this.role = Role.Leader;
    const self = this.trk.progress.get(this.id);
    if (self) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // No membership change until everything up to here is applied: this is
    // what makes one-at-a-time changes safe across leader changes.
    this.pendingConfIndex = this.log.lastIndex();
    // An empty entry of the new term lets earlier entries commit (B13, §5.4.2).
    this.appendEntries([{ type: EntryType.Normal, data: new Uint8Array() }], true);
  }

  // ---- elections ---------------------------------------------------------------

  private hup(t: CampaignType): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) return;
    if (this.hasUnappliedConfChanges()) return; // B52
    this.campaign(t);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.applying >= this.log.committed) return false;
    let lo = this.log.applying + 1;
    const hi = this.log.committed + 1;
    while (lo < hi) {
      const ents = this.log.slice(lo, hi, 1024 * 1024);
      for (const e of ents) if (e.type === EntryType.ConfChange) return true;
      lo += ents.length;
    }
    return false;
  }

  campaign(t: CampaignType): void {
    let voteType: MessageType;
    let term: number;
    if (t === "pre-election") {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      term = this.term + 1; // what we would campaign with; our term stays put
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
      this.counters.elections++;
    }
    if (this.poll(this.id, true) === "won") {
      // A single-voter cluster wins at once (B8).
      if (t === "pre-election") this.campaign("election");
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.trk.voterIds()) {
      if (id === this.id) continue;
      this.send(
        newMessage(voteType, { to: id, term, index: lastIndex, logTerm: lastTerm, force: t === "transfer" }),
      );
    }
  }

  private poll(id: NodeId, granted: boolean): "won" | "lost" | "pending" {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // ---- ticks -------------------------------------------------------------------

  tick(): void {
    this.tickCount++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.cfg.preVote ? "pre-election" : "election");
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTick) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        // B17: a leader that has not heard from a quorum in an election timeout steps down.
        if (!this.trk.quorumActive(this.id)) {
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
      }
      // B64: a transfer that has not finished in an election timeout is abandoned.
      if (this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
      // Snapshot chunks lost in the network are resent at heartbeat pace.
      for (const [id, pr] of this.trk.progress) {
        if (id !== this.id && pr.state === ProgressState.Snapshot) this.sendSnapshotChunk(id, pr);
      }
    }
  }

  // ---- step --------------------------------------------------------------------

  /**
   * Handles one message. Local proposals that cannot be placed throw a RaftError;
   * the same failures for messages from peers drop the message.
   */
  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const inLease =
          this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.cfg.electionTick;
        // B18: within the lease of a live leader, ignore votes unless the campaign is a transfer.
        if (!m.force && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term (B2, B14).
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote carries the term we would campaign with.
      } else if (
        m.type === MessageType.App ||
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snap
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if (
        (this.cfg.checkQuorum || this.cfg.preVote) &&
        (m.type === MessageType.App || m.type === MessageType.Heartbeat)
      ) {
        // A leader of an older term (e.g. one we left behind in a partition) learns
        // of our term and steps down; otherwise it could keep us from ever
        // electing anyone under PreVote/CheckQuorum (B19).
        this.send(newMessage(MessageType.AppResp, { to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        this.send(newMessage(MessageType.PreVoteResp, { to: m.from, term: this.term, reject: true }));
      }
      return; // B3
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.cfg.preVote ? "pre-election" : "election");
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      case MessageType.VoteResp:
      case MessageType.PreVoteResp:
        if (m.reject) this.learnCommitFromVoteResp(m);
        break;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      case Role.Follower:
        this.stepFollower(m);
        return;
    }
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    // One vote per term (B9): we can vote for whom we voted already, or if we have
    // not voted and know no leader, or in a pre-vote for a later term.
    const canVote =
      this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (pre && m.term > this.term);
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send(newMessage(respType, { to: m.from, term: m.term }));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      // A refusal tells the candidate what we know is committed (see learnCommitFromVoteResp).
      const commit = this.log.committed;
      const logTerm = this.log.term(commit) ?? 0;
      this.send(newMessage(respType, { to: m.from, term: this.term, reject: true, commit, logTerm }));
    }
  }

  /**
   * A refused vote carries the voter's commit index and the term there. If our
   * log has that entry, everything up to it is committed for us too (Log
   * Matching). This frees a cluster where the only voter left has not learned
   * that the change removing the others committed: its config still needs a
   * removed node's vote, which that node refuses because its log is longer.
   */
  private learnCommitFromVoteResp(m: Message): void {
    if (m.commit > this.log.committed && this.log.matchTerm(m.commit, m.logTerm)) this.log.commitTo(m.commit);
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.Prop: {
        const err = this.leaderPropose(m.entries);
        if (err && m.from === NONE) throw err;
        return;
      }
      case MessageType.ReadIndex:
        this.leaderReadIndex(m);
        return;
      case MessageType.TransferLeader:
        this.leaderTransfer(m.from);
        return;
    }
    const pr = this.trk.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.SnapResp:
        pr.recentActive = true;
        if (pr.state === ProgressState.Snapshot && pr.snapshotSend && m.index === pr.snapshotSend.index) {
          if (m.rejectHint > pr.snapshotSend.offset || m.reject) {
            pr.snapshotSend.offset = Math.min(m.rejectHint, pr.snapshotSend.data.length);
            if (pr.snapshotSend.offset < pr.snapshotSend.data.length || m.reject)
              this.sendSnapshotChunk(m.from, pr);
          }
        }
        return;
      case MessageType.Unreachable:
        // B42: stop streaming to a peer we cannot reach; probe it instead.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject && pr.state === ProgressState.Snapshot) {
      // B46: the follower could not install the snapshot: probe from its match,
      // after the next heartbeat (a pause instead of retrying at once).
      pr.pendingSnapshot = 0;
      pr.becomeProbe();
      pr.msgAppFlowPaused = true;
      this.snapshotChunks.delete(m.from);
      return;
    }
    if (m.reject) {
      // Fast back-off (B24): jump to where the logs may match by term.
      let next = m.rejectHint;
      if (m.logTerm > 0) next = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, next)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    if (pr.state === ProgressState.Snapshot) {
      // B46: the follower says where its log ends after the transfer. At or past
      // the snapshot: it was installed (or not needed). Short of it: the install
      // failed, so probe from its match. Either way appends resume, and if the
      // log was compacted past it meanwhile, the next append starts a newer
      // snapshot instead of stalling.
      pr.maybeUpdate(m.index);
      if (m.index < pr.pendingSnapshot) pr.pendingSnapshot = 0;
      pr.becomeProbe();
      this.snapshotChunks.delete(m.from);
      if (pr.match + 1 >= this.log.firstIndex()) pr.becomeReplicate();
      if (this.maybeCommit()) {
        this.releasePendingReadIndexMessages();
        this.bcastAppend();
      } else this.sendAppend(m.from);
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === ProgressState.Probe)) {
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      else pr.inflights.freeLE(m.index);

      if (this.maybeCommit()) {
        this.releasePendingReadIndexMessages();
        this.bcastAppend();
      } else if (wasPaused) {
        this.sendAppend(m.from);
      }
      // Keep the pipeline full while the window allows.
      while (this.maybeSendAppend(m.from, false)) {
        /* sent one */
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.sendTimeoutNow(m.from);
      }
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.index <= this.tickCount && m.index > pr.heartbeatAckTick) pr.heartbeatAckTick = m.index;
    pr.msgAppFlowPaused = false;
    // B38: if every append in the window was lost, the window stays full and no
    // append would go out again; free one slot so the follower is probed.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (
      pr.state !== ProgressState.Snapshot &&
      (pr.match < this.log.lastIndex() || pr.state === ProgressState.Probe)
    ) {
      this.sendAppend(m.from);
    }
    if (this.cfg.readOnlyOption !== "safe" || m.context === "") return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (!acks) return;
    const votes = new Map<NodeId, boolean>();
    for (const id of acks) votes.set(id, true);
    votes.set(this.id, true);
    if (this.trkVote(votes) !== "won") return;
    for (const r of this.readOnly.advance(m.context)) this.respondRead(r.from, r.index, r.context);
  }

  private trkVote(votes: Map<NodeId, boolean>): "won" | "lost" | "pending" {
    const saved = this.trk.votes;
    this.trk.votes = votes;
    const r = this.trk.tallyVotes().result;
    this.trk.votes = saved;
    return r;
  }

  private stepCandidate(m: Message): void {
    const myResp = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        if (m.from === NONE) throw new RaftError("NO_LEADER", "no leader: an election is in progress");
        return;
      case MessageType.App:
        this.becomeFollower(m.term, m.from); // B11
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myResp: {
        const result = this.poll(m.from, !m.reject);
        if (result === "won" && !this.promotable()) {
          // Our membership changed under the campaign (e.g. a commit learned from a
          // refused vote applied our removal): a non-voter must not lead.
          this.becomeFollower(this.term, NONE);
        } else if (result === "won") {
          if (this.role === Role.PreCandidate) this.campaign("election");
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === "lost") {
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) {
          if (m.from === NONE) throw new RaftError("NO_LEADER", "no leader to forward the proposal to");
          return;
        }
        if (this.cfg.disableProposalForwarding) {
          if (m.from === NONE) throw new RaftError("PROPOSAL_DROPPED", "proposal forwarding is disabled");
          return;
        }
        this.send({ ...m, to: this.lead, from: NONE }); // B27
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead !== NONE) this.send({ ...m, to: this.lead });
        return;
      case MessageType.TimeoutNow:
        // B62: campaign at once, skipping PreVote and leases. B57: only a voter.
        this.hup("transfer");
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) {
          if (m.from === NONE) throw new RaftError("NO_LEADER", "no leader to confirm a read with");
          return;
        }
        this.send({ ...m, to: this.lead }); // B59
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        return;
    }
  }

  // ---- the follower's handlers -------------------------------------------------

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(newMessage(MessageType.AppResp, { to: m.from, index: this.log.committed }));
      return;
    }
    for (const e of m.entries) {
      if (!checksumOk(e)) {
        // A corrupted message: drop it whole; the leader will resend.
        this.counters.droppedCorruptAppends++;
        return;
      }
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(newMessage(MessageType.AppResp, { to: m.from, index: lastNew }));
      return;
    }
    // B21: reject with a hint of the last index at which our log may match.
    const hintIndex = Math.min(m.index, this.log.lastIndex());
    const hint = this.log.findConflictByTerm(hintIndex, m.logTerm);
    this.send(
      newMessage(MessageType.AppResp, {
        to: m.from,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send(newMessage(MessageType.HeartbeatResp, { to: m.from, context: m.context, index: m.index }));
  }

  private handleSnapshot(m: Message): void {
    const c = m.snapshot;
    if (!c) return;
    const meta = c.metadata;
    if (meta.index <= this.log.committed) {
      // B47: older than what we have committed: tell the leader where we are.
      this.snapshotReceive = undefined;
      this.send(newMessage(MessageType.AppResp, { to: m.from, index: this.log.committed }));
      return;
    }
    let r = this.snapshotReceive;
    if (c.offset === 0) {
      r = {
        from: m.from,
        term: m.term,
        index: meta.index,
        snapTerm: meta.term,
        totalBytes: c.totalBytes,
        chunks: [],
        received: 0,
      };
      this.snapshotReceive = r;
    }
    if (
      !r ||
      r.index !== meta.index ||
      r.snapTerm !== meta.term ||
      r.term !== m.term ||
      c.offset !== r.received
    ) {
      // Out of order or from another transfer: ask for the bytes we need.
      const need =
        r && r.index === meta.index && r.snapTerm === meta.term && r.term === m.term ? r.received : 0;
      this.send(
        newMessage(MessageType.SnapResp, { to: m.from, index: meta.index, rejectHint: need, reject: true }),
      );
      return;
    }
    if (r.received + c.data.length > r.totalBytes) {
      this.snapshotReceive = undefined;
      this.send(
        newMessage(MessageType.SnapResp, { to: m.from, index: meta.index, rejectHint: 0, reject: true }),
      );
      return;
    }
    r.chunks.push(c.data.slice());
    r.received += c.data.length;
    if (!c.done) {
      this.send(newMessage(MessageType.SnapResp, { to: m.from, index: meta.index, rejectHint: r.received }));
      return;
    }
    this.snapshotReceive = undefined;
    const data = new Uint8Array(r.received);
    let o = 0;
    for (const ch of r.chunks) {
      data.set(ch, o);
      o += ch.length;
    }
    const snap: Snapshot = { metadata: meta, data };
    if (this.restore(snap)) {
      this.send(newMessage(MessageType.AppResp, { to: m.from, index: this.log.lastIndex() }));
    } else {
      this.send(newMessage(MessageType.AppResp, { to: m.from, index: this.log.committed }));
    }
  }

  /** Installs a snapshot on a follower. Returns false if it was not needed. */
  restore(snap: Snapshot): boolean {
    const meta = snap.metadata;
    if (meta.index <= this.log.committed) return false;
    if (this.role !== Role.Follower) {
      // Only a follower installs a snapshot; anything else is a bug upstream.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    // The snapshot's membership may not include us yet: a node added after the
    // snapshot was taken installs it and then learns of its own addition from
    // the entries that follow (etcd refuses here, which can wedge such a joiner).
    const cs = meta.conf;
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already have the entries: just fast-forward the commit (B47).
      this.log.commitTo(meta.index);
      return false;
    }
    this.log.restore(snap);
    const config = configFromConfState(cs);
    this.switchToConfig(config, this.buildProgress(config)); // B48
    this.confChanged = false; // the snapshot carries the membership
    return true;
  }

  // ---- the leader's handlers ------------------------------------------------------

  /** Appends proposals on the leader. Returns the refusal, if any. */
  private leaderPropose(entries: Entry[]): RaftError | undefined {
    if (entries.length === 0) return new RaftError("PROPOSAL_DROPPED", "empty proposal");
    if (!this.trk.progress.has(this.id)) {
      return new RaftError("PROPOSAL_DROPPED", "this leader was removed from the cluster");
    }
    if (this.leadTransferee !== NONE) {
      return new RaftError("PROPOSAL_DROPPED", `leadership is being transferred to ${this.leadTransferee}`); // B64
    }
    let toAppend = entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.type !== EntryType.ConfChange) continue;
      let cc: ConfChange;
      try {
        cc = decodeConfChange(e.data);
      } catch (err) {
        return err as RaftError;
      }
      if (this.pendingConfIndex > this.log.applying) {
        return new RaftError(
          "CHANGE_IN_PROGRESS",
          `a membership change at ${this.pendingConfIndex} is not yet applied (applied ${this.log.applying})`,
        );
      }
      try {
        applyConfChange(this.changerContext(), cc); // validate against the current config
      } catch (err) {
        return err as RaftError;
      }
      this.pendingConfIndex = this.log.lastIndex() + i + 1;
      // Stamp the configuration the change applies to (see ConfChange.base).
      if (toAppend === entries) toAppend = entries.slice();
      toAppend[i] = { ...e, data: encodeConfChange({ ...cc, base: this.trk.confState() }) };
    }
    const err = this.appendEntries(toAppend, false);
    if (err) return err;
    this.bcastAppend();
    return undefined;
  }

  /**
   * Gives entries the next indexes and the current term, checks the uncommitted
   * budget (B40) and appends them to the leader's log.
   */
  appendEntries(ents: { type: EntryType; data: Uint8Array }[], force: boolean): RaftError | undefined {
    let size = 0;
    for (const e of ents) size += e.data.length;
    const max = this.cfg.maxUncommittedBytes;
    // An entry always fits when nothing is uncommitted, so progress is never blocked.
    if (!force && max > 0 && this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > max) {
      return new RaftError(
        "UNCOMMITTED_LIMIT",
        `uncommitted bytes ${this.uncommittedSize} + ${size} > ${max}`,
      );
    }
    this.uncommittedSize += size;
    let li = this.log.lastIndex();
    const out: Entry[] = new Array(ents.length);
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      li++;
      out[i] = {
        term: this.term,
        index: li,
        type: e.type,
        data: e.data,
        crc: entryChecksum(e.type, this.term, li, e.data),
      };
    }
    this.log.append(out);
    return undefined;
  }

  private leaderReadIndex(m: Message): void {
    if (this.trk.isSingleton()) {
      this.respondRead(m.from, this.log.committed, m.context);
      return;
    }
    // B58: a new leader does not know the commit index until an entry of its term commits.
    if (this.log.term(this.log.committed) !== this.term) {
      if (this.pendingReadIndexMessages.length < MAX_PENDING_READ_INDEX_MESSAGES)
        this.pendingReadIndexMessages.push(m);
      return;
    }
    this.serveReadIndex(m);
  }

  /**
   * Whether this leader's lease still holds: a quorum acknowledged a heartbeat
   * sent less than electionTick - 2 ticks ago, so no voter of that quorum can
   * have voted for anyone else yet (a voter ignores votes for electionTick ticks
   * after hearing from its leader, B18; the 2 ticks cover tick phase offsets).
   * A transfer voids it: TimeoutNow campaigns ignore leases. Assumes tick rates
   * that do not drift apart by more than that margin.
   */
  leaseValid(): boolean {
    if (this.leadTransferee !== NONE) return false;
    const confirmed = this.trk.committedBy((id) =>
      id === this.id ? this.tickCount : (this.trk.progress.get(id)?.heartbeatAckTick ?? 0),
    );
    return this.tickCount - confirmed < this.cfg.electionTick - 2;
  }

  private serveReadIndex(m: Message): void {
    if (this.cfg.readOnlyOption === "lease" && this.leaseValid()) {
      this.respondRead(m.from, this.log.committed, m.context);
      return;
    }
    if (!this.readOnly.add(this.log.committed, m.from, m.context)) return;
    this.bcastHeartbeat(m.context);
  }

  private respondRead(from: NodeId, index: number, context: string): void {
    if (from === NONE || from === this.id) this.readStates.push({ index, context });
    else this.send(newMessage(MessageType.ReadIndexResp, { to: from, index, context }));
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (this.log.term(this.log.committed) !== this.term) return;
    const ms = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of ms) this.serveReadIndex(m);
  }

  private leaderTransfer(transferee: NodeId): void {
    const pr = this.trk.progress.get(transferee);
    // B65: to self or to a non-member (or a learner) is a no-op.
    if (transferee === this.id || !pr || !this.trk.isVoter(transferee)) return;
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return; // B65: does not extend the timer
      this.abortLeaderTransfer();
    }
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee); // B63: catch it up first
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(newMessage(MessageType.TimeoutNow, { to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** Moves commit to what the quorum has durably stored. Returns whether it moved. */
  maybeCommit(): boolean {
    return this.log.maybeCommit(this.trk.committed(), this.term);
  }

  /** The leader's own write of entries through `index` is durable (B28). */
  selfStable(index: number): void {
    const pr = this.trk.progress.get(this.id);
    if (!pr) return;
    if (this.role === Role.Leader) {
      if (pr.maybeUpdate(index) && this.maybeCommit()) {
        this.releasePendingReadIndexMessages();
        this.bcastAppend();
      }
    } else {
      pr.maybeUpdate(index);
    }
  }

  // ---- membership ---------------------------------------------------------------

  changerContext() {
    return {
      config: this.trk.config,
      progress: this.trk.progress,
      lastIndex: this.log.lastIndex(),
      maxInflight: this.cfg.maxInflightMsgs,
      maxInflightBytes: this.cfg.maxInflightBytes,
    };
  }

  /** Applies a committed membership change (as it is handed out for apply). */
  applyConfChangeEntry(e: Entry): ConfState {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
      const c = this.trk.config;
      if (cc.base && c.voters.size === 0 && c.votersOutgoing.size === 0) {
        // A node that joined with no configuration learns it from the leader's stamp.
        const base = configFromConfState(cc.base);
        this.switchToConfig(base, this.buildProgress(base));
      }
      const r = applyConfChange(this.changerContext(), cc);
      this.switchToConfig(r.config, r.progress);
    } catch (err) {
      // A change that was valid when proposed can be invalid now only if a
      // competing change got in first (under another leader); it is a no-op.
      if (!(err instanceof RaftError)) throw err;
    }
    this.confChanged = true;
    return this.trk.confState();
  }

  private switchToConfig(config: TrackerConfig, progress: Map<NodeId, Progress>): void {
    this.trk.config = config;
    this.trk.progress = progress;
    for (const [id, pr] of progress) pr.isLearner = config.learners.has(id);
    const isVoter = this.trk.isVoter(this.id);
    if (this.role !== Role.Follower && !isVoter) {
      // B56: a leader removed (or demoted) steps down and will not campaign; a
      // (pre-)candidate that learns of its removal abandons its campaign.
      this.becomeFollower(this.term, this.role === Role.Leader ? NONE : this.lead);
      return;
    }
    if (this.role !== Role.Leader || this.trk.voterIds().length === 0) return;
    if (this.maybeCommit()) {
      // B53: a removal can shrink the quorum and so commit pending entries.
      this.bcastAppend();
    } else {
      for (const id of this.trk.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
  }

  /** After entries through `applying` are handed out: leave a joint config automatically once. */
  maybeAutoLeave(): void {
    if (
      this.role === Role.Leader &&
      this.trk.config.autoLeave &&
      this.trk.isJoint() &&
      this.log.applying >= this.pendingConfIndex
    ) {
      const data = encodeConfChange({ changes: [], base: this.trk.confState() });
      this.pendingConfIndex = this.log.lastIndex() + 1;
      this.appendEntries([{ type: EntryType.ConfChange, data }], true);
      this.bcastAppend();
    }
  }

  reduceUncommittedSize(ents: Entry[]): void {
    if (this.role !== Role.Leader || this.uncommittedSize === 0) return;
    let s = 0;
    for (const e of ents) s += e.data.length;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - s);
  }
}
