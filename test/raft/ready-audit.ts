// Audits every Ready a RaftNode hands out, and every advance, against the Ready
// contract (docs/raft-core.md): what may be sent before the write is durable
// (B34), when a Ready must be synced (B36), and that committed entries are
// always ones the node has already handed out for writing (B33). It taps
// RaftNode.prototype so that it also sees the Readies returned by advance and
// the nodes a Cluster creates on restart; uninstall it after the test.

import {
  type Entry,
  type HardState,
  type Message,
  MessageType,
  NONE,
  RaftNode,
  type Ready,
  type Storage,
} from "../../src/raft/index.ts";

/** Message types a leader may send before its own write is durable (thesis 10.2.1). */
const STREAM_TYPES = new Set([
  MessageType.App,
  MessageType.Heartbeat,
  MessageType.Snap,
  MessageType.TimeoutNow,
  MessageType.ReadIndexResp,
]);

/** Vote messages carry the term they ask about, which may be ahead of the sender's. */
const PRE_VOTE_TYPES = new Set([MessageType.PreVote, MessageType.PreVoteResp]);

export interface TapHooks {
  /** A Ready was handed out (by any entry point, including advance). */
  onReady?(node: RaftNode, rd: Ready): void;
  /** advance(rd) is about to be called. */
  onAdvance?(node: RaftNode, rd: Ready): void;
}

/** Taps every RaftNode's ready() and advance(). Returns the function that removes the tap. */
export function tapRaftNodes(hooks: TapHooks): () => void {
  const proto = RaftNode.prototype;
  const origReady = proto.ready;
  const origAdvance = proto.advance;
  proto.ready = function (this: RaftNode): Ready | null {
    const rd = origReady.call(this);
    if (rd) hooks.onReady?.(this, rd);
    return rd;
  };
  proto.advance = function (this: RaftNode, rd: Ready): Ready | null {
    hooks.onAdvance?.(this, rd);
    return origAdvance.call(this, rd);
  };
  return () => {
    proto.ready = origReady;
    proto.advance = origAdvance;
  };
}

/** What the audit knows about one node (one incarnation: a restart makes a new RaftNode). */
interface NodeView {
  storage: Storage;
  /** The latest hard state handed out (in this or an earlier Ready). */
  taken: HardState;
  /** The latest hard state of an advanced Ready: durable. */
  durable: HardState;
  /** index -> term of the entries handed out by this incarnation (overrides storage). */
  handedOut: Map<number, number>;
  /** Last index of the log as handed out so far (storage's at start). */
  lastIndex: number;
  /** Index of the last committed entry handed out (or applied before this incarnation). */
  lastCommitted: number;
}

export class ReadyAudit {
  readonly violations: string[] = [];
  readies = 0;
  private readonly views = new WeakMap<RaftNode, NodeView>();
  private uninstall: (() => void) | undefined;

  /** `storageOf` finds the storage a node reads (e.g. its Cluster member's). */
  constructor(private readonly storageOf: (node: RaftNode) => Storage | undefined) {}

  install(): this {
    this.uninstall = tapRaftNodes({
      onReady: (node, rd) => this.check(node, rd),
      onAdvance: (node, rd) => this.advanced(node, rd),
    });
    return this;
  }

  remove(): void {
    this.uninstall?.();
    this.uninstall = undefined;
  }

  private view(node: RaftNode): NodeView | undefined {
    let v = this.views.get(node);
    if (v) return v;
    const storage = this.storageOf(node);
    if (!storage) return undefined;
    const hs = storage.initialState().hardState;
    v = {
      storage,
      taken: { ...hs },
      durable: { ...hs },
      handedOut: new Map(),
      lastIndex: storage.lastIndex(),
      // The first Ready of an incarnation is taken before any advance: status's
      // applied is still the configured one.
      lastCommitted: node.status().applied,
    };
    this.views.set(node, v);
    return v;
  }

  private fail(node: RaftNode, what: string): void {
    this.violations.push(`node ${node.id}: ${what}`);
  }

  private termOf(v: NodeView, index: number): number | undefined {
    const t = v.handedOut.get(index);
    if (t !== undefined) return t;
    if (index > v.lastIndex) return undefined;
    try {
      return v.storage.term(index);
    } catch {
      return undefined;
    }
  }

  /** Checks one Ready as it is handed out. Public so a test can feed it a broken Ready. */
  check(node: RaftNode, rd: Ready): void {
    const v = this.view(node);
    if (!v) return;
    this.readies++;
    const prev = v.taken;
    const hs = rd.hardState;

    // B36: must sync exactly when entries, a snapshot, or a term/vote change are in it.
    const termOrVote = hs !== undefined && (hs.term !== prev.term || hs.vote !== prev.vote);
    const wantSync = rd.entries.length > 0 || rd.snapshot !== undefined || termOrVote;
    if (rd.mustSync !== wantSync) {
      this.fail(
        node,
        `mustSync=${rd.mustSync} but entries=${rd.entries.length}, snapshot=${!!rd.snapshot}, term/vote change=${termOrVote}`,
      );
    }

    // B4/B32: the hard state only moves forward; one vote per term.
    if (hs) {
      if (hs.term < prev.term) this.fail(node, `hard state term went back from ${prev.term} to ${hs.term}`);
      if (hs.term === prev.term && prev.vote !== NONE && hs.vote !== prev.vote) {
        this.fail(node, `vote changed within term ${hs.term} from ${prev.vote} to ${hs.vote}`);
      }
      if (hs.commit < prev.commit)
        this.fail(node, `hard state commit went back from ${prev.commit} to ${hs.commit}`);
      v.taken = { ...hs };
    }

    // What this Ready hands out for writing.
    if (rd.snapshot) {
      const m = rd.snapshot.metadata;
      v.handedOut.clear();
      v.handedOut.set(m.index, m.term);
      v.lastIndex = m.index;
      v.lastCommitted = m.index;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first > v.lastIndex + 1)
        this.fail(node, `entries start at ${first}, leaving a gap after ${v.lastIndex}`);
      for (const i of [...v.handedOut.keys()]) if (i >= first) v.handedOut.delete(i);
      for (const e of rd.entries) v.handedOut.set(e.index, e.term);
      v.lastIndex = rd.entries[rd.entries.length - 1]!.index;
    }

    // B33: committed entries are entries already handed out for writing (in this
    // Ready or before), in order, without gaps.
    for (const e of rd.committedEntries) this.checkCommitted(node, v, e);

    // B34: messages sent after this Ready's write must not get ahead of it.
    for (const m of rd.messages) this.checkAfterWrite(node, v, m);
    // Immediate messages go out before this Ready's write: only the leader's
    // stream, and only in a term that is already durable.
    for (const m of rd.immediateMessages) {
      if (!STREAM_TYPES.has(m.type)) this.fail(node, `${MessageType[m.type]} sent as an immediate message`);
      if (m.term > v.durable.term) {
        this.fail(
          node,
          `immediate ${MessageType[m.type]} at term ${m.term} before term ${m.term} is durable (durable ${v.durable.term})`,
        );
      }
      this.checkCommitCarried(node, v, m);
    }
  }

  private checkCommitted(node: RaftNode, v: NodeView, e: Entry): void {
    const t = this.termOf(v, e.index);
    if (t !== e.term) {
      this.fail(
        node,
        `committed entry ${e.index}@${e.term} was never handed out for writing (log has ${t ?? "nothing"})`,
      );
    }
    if (e.index > v.taken.commit) {
      this.fail(node, `committed entry ${e.index} is beyond the hard state's commit ${v.taken.commit}`);
    }
    if (e.index !== v.lastCommitted + 1) {
      this.fail(node, `committed entry ${e.index} follows ${v.lastCommitted}`);
    }
    v.lastCommitted = e.index;
  }

  private checkAfterWrite(node: RaftNode, v: NodeView, m: Message): void {
    if (m.term > 0 && !PRE_VOTE_TYPES.has(m.type) && m.term > v.taken.term) {
      this.fail(
        node,
        `${MessageType[m.type]} at term ${m.term} but the hard state says term ${v.taken.term}`,
      );
    }
    if (m.type === MessageType.VoteResp && !m.reject) {
      if (v.taken.term !== m.term || v.taken.vote !== m.to) {
        this.fail(
          node,
          `grants a vote to ${m.to} in term ${m.term}, hard state is term ${v.taken.term} vote ${v.taken.vote}`,
        );
      }
    }
    if (m.type === MessageType.Vote) {
      if (v.taken.term !== m.term || v.taken.vote !== node.id) {
        this.fail(
          node,
          `asks for votes in term ${m.term}, hard state is term ${v.taken.term} vote ${v.taken.vote}`,
        );
      }
    }
    if (m.type === MessageType.AppResp && !m.reject && m.index > v.lastIndex) {
      this.fail(node, `acknowledges index ${m.index} but has handed out only up to ${v.lastIndex}`);
    }
    this.checkCommitCarried(node, v, m);
  }

  /** A commit index a message tells others about has been in a Ready's hard state. */
  private checkCommitCarried(node: RaftNode, v: NodeView, m: Message): void {
    if ((m.type === MessageType.App || m.type === MessageType.Heartbeat) && m.commit > v.taken.commit) {
      this.fail(
        node,
        `${MessageType[m.type]} carries commit ${m.commit} beyond the hard state's ${v.taken.commit}`,
      );
    }
  }

  private advanced(node: RaftNode, rd: Ready): void {
    const v = this.views.get(node);
    if (!v) return;
    if (rd.hardState) v.durable = { ...rd.hardState };
  }
}
