// Membership: changing it (ConfChange proposals carrying the member's
// addresses), the address book (where to reach each member: raft for peers,
// http for clients), and announcements (a member proposes its own addresses
// once it knows a leader, so every member learns them through the log).
//
// The address book is replicated through the log (ConfChange contexts and
// Members envelopes), persisted beside the Raft state (members.ts), carried in
// snapshots, and kept in step with the transport's dial addresses. Bound: one
// entry per member.

import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  decodeConfChange,
  type Entry,
  isRaftError,
  type NodeId,
  Role,
} from "../raft/index.ts";
import { CodedError } from "./coded-error.ts";
import type { Core } from "./core.ts";
import { EnvelopeKind } from "./envelope.ts";
import { type AddressBook, loadAddressBook, type MemberAddress, saveAddressBook } from "./members.ts";
import type { DurableStorage, PeerTransport } from "./ports.ts";
import { RuntimeError } from "./runtime-error.ts";

export interface MembershipOptions {
  /** Initial voters other than this node, with the address to dial each at. */
  peers: Map<NodeId, string>;
  /** This node's own addresses, announced to the cluster. */
  self: { raft: string; http: string };
  /** Started with --join: the book starts empty. */
  join: boolean;
  tickMs: number;
  defaultTimeoutMs: number;
}

export interface MembershipDeps {
  core: Pick<Core, "id" | "log" | "leaderId" | "role" | "isStopped" | "status" | "act">;
  storage: Pick<DurableStorage, "getMeta" | "putMeta">;
  transport: Pick<PeerTransport, "setPeer">;
  /** Proposes one of the runtime's own commands (late-bound: proposals are built after us). */
  proposeEnvelope(kind: EnvelopeKind, body: Uint8Array): Promise<unknown>;
}

export interface MembershipChange {
  type: "add-voter" | "add-learner" | "remove";
  id: NodeId;
  raft?: string;
  http?: string;
}

export class Membership {
  /** The address book: every member's raft and http address. */
  private members: AddressBook = new Map();
  private removedSelf = false;
  private announced = false;
  private self: { raft: string; http: string };

  constructor(
    private readonly d: MembershipDeps,
    private readonly o: MembershipOptions,
  ) {
    this.self = o.self;
  }

  /** Loads the book and points the transport at every member. `hasState`: the node has a log or a config. */
  start(hasState: boolean): void {
    const { transport } = this.d;
    this.members = loadAddressBook(this.d.storage);
    // Our own record enters the book only through the log (announceSelf), so
    // every member learns it; peers' dial addresses come from --peers.
    if (!hasState && !this.o.join) {
      for (const [id, raft] of this.o.peers) this.members.set(id, { raft, http: "" });
    }
    // Initial voters are dialled at --peers addresses; later members at their record's.
    for (const [id, m] of this.members) if (id !== this.d.core.id && m.raft) transport.setPeer(id, m.raft);
    for (const [id, addr] of this.o.peers) transport.setPeer(id, addr);
  }

  /** A copy of the address book. */
  addresses(): AddressBook {
    return new Map(this.members);
  }

  /** Whether the applied configuration no longer includes this node. */
  removed(): boolean {
    return this.removedSelf;
  }

  /** Sets the HTTP address this node announces (known only after the server listens). */
  setSelfHttp(http: string): void {
    this.self = { ...this.self, http };
  }

  /** Adds, promotes or removes a member; resolves once the change is applied here. */
  async change(change: MembershipChange): Promise<void> {
    const { core } = this.d;
    if (core.leaderId() === 0) throw new RuntimeError("NO_LEADER", "no leader is known");
    const type =
      change.type === "add-voter"
        ? ConfChangeType.AddVoter
        : change.type === "add-learner"
          ? ConfChangeType.AddLearner
          : ConfChangeType.RemoveNode;
    const context = new TextEncoder().encode(
      JSON.stringify({ id: change.id, raft: change.raft ?? "", http: change.http ?? "" }),
    );
    const cc: ConfChange = { changes: [{ type, nodeId: change.id }], context };
    const target = core.status().commit;
    try {
      core.act((node) => node.proposeConfChange(cc));
    } catch (e) {
      if (isRaftError(e, "CHANGE_IN_PROGRESS")) throw new RuntimeError("CHANGE_IN_PROGRESS", e.message);
      if (isRaftError(e, "INVALID_CONF_CHANGE")) throw new CodedError("INVALID_REQUEST", e.message);
      if (isRaftError(e)) throw new RuntimeError("NO_LEADER", e.message);
      throw e;
    }
    // Wait until the configuration reflects the change (or time out).
    const deadline = Date.now() + this.o.defaultTimeoutMs;
    while (Date.now() < deadline) {
      const s = core.status();
      const cs = s.config;
      const has = cs.voters.includes(change.id) || cs.learners.includes(change.id);
      const done =
        change.type === "remove"
          ? !has
          : change.type === "add-voter"
            ? cs.voters.includes(change.id)
            : cs.learners.includes(change.id);
      if (done && s.applied > target && cs.votersOutgoing.length === 0) return;
      await new Promise((r) => setTimeout(r, this.o.tickMs));
    }
    throw new RuntimeError("COMMIT_TIMEOUT", "membership change not applied in time");
  }

  // ---- driven by the Ready loop ---------------------------------------------------

  /** A ConfChange entry was applied: record the member's addresses from its context. */
  applyConfChange(e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      this.d.core.log.warn({ index: e.index }, "undecodable membership change: addresses not recorded");
      return;
    }
    const changes = cc.changes.map((c) => `${ConfChangeType[c.type] ?? c.type} ${c.nodeId}`);
    this.d.core.log.info(
      { index: e.index, term: e.term, changes: changes.length ? changes : ["leave joint"] },
      "membership change applied",
    );
    if (!cc.context || cc.context.length === 0) return;
    let info: { id: number; raft: string; http: string };
    try {
      info = JSON.parse(new TextDecoder().decode(cc.context)) as typeof info;
    } catch {
      this.d.core.log.debug({ index: e.index }, "membership change context is not ours: ignored");
      return;
    }
    const removed = cc.changes.some((c) => c.type === ConfChangeType.RemoveNode && c.nodeId === info.id);
    if (removed) this.members.delete(info.id);
    else {
      const prev = this.members.get(info.id);
      this.members.set(info.id, {
        raft: info.raft || prev?.raft || "",
        http: info.http || prev?.http || "",
      });
    }
    this.save();
  }

  /** A Members envelope (a member announcing its addresses) was applied. */
  applyAnnouncement(body: Uint8Array): void {
    let a: { id: number } & MemberAddress;
    try {
      a = JSON.parse(new TextDecoder().decode(body)) as typeof a;
    } catch {
      this.d.core.log.debug({}, "malformed member announcement: ignored");
      return;
    }
    // A member announces its listen address, which need not be where peers can
    // reach it (a proxy, NAT, 0.0.0.0): a raft address already on record (the
    // one it was added with, API.md) stays the dial address.
    const prev = this.members.get(a.id);
    this.members.set(a.id, { raft: prev?.raft || a.raft, http: a.http });
    this.save();
  }

  /** The membership after applied entries: notices this node's removal (or return). */
  onConfState(cs: ConfState): void {
    const id = this.d.core.id;
    const member = cs.voters.includes(id) || cs.learners.includes(id) || cs.votersOutgoing.includes(id);
    if (!member && (cs.voters.length > 0 || this.removedSelf)) {
      if (!this.removedSelf) this.d.core.log.warn({ id }, "this node was removed from the cluster");
      this.removedSelf = true;
    } else if (member) this.removedSelf = false;
  }

  /** A snapshot was installed: its book replaces ours. */
  install(book: AddressBook): void {
    this.members = new Map(book);
    this.save();
  }

  /** Role changed: a new leader (re)announces itself. */
  onRole(role: Role): void {
    if (role === Role.Leader) setImmediate(() => this.announceSelf());
  }

  /** After each applied batch: a follower announces itself once it knows a leader. */
  afterApply(): void {
    const { core } = this.d;
    if (!this.announced && core.leaderId() !== 0 && core.role() !== Role.Leader) {
      this.announced = true;
      setImmediate(() => this.announceIfNeeded());
    }
  }

  // ---- internals ------------------------------------------------------------------

  private save(): void {
    saveAddressBook(this.d.storage, this.members);
    this.syncTransportPeers();
  }

  private syncTransportPeers(): void {
    for (const [id, m] of this.members) {
      // Initial voters keep the dial address this node was started with.
      if (id === this.d.core.id || this.o.peers.has(id) || !m.raft) continue;
      this.d.transport.setPeer(id, m.raft);
    }
  }

  /** Whether our record is missing or stale (a raft address on record is kept: see applyAnnouncement). */
  private needsAnnouncement(): boolean {
    const mine = this.members.get(this.d.core.id);
    return !(mine?.raft && mine.http === this.self.http);
  }

  /** The leader (re)announces its own addresses when its record is missing or stale. */
  private announceSelf(): void {
    const { core } = this.d;
    if (core.isStopped() || core.role() !== Role.Leader || !this.needsAnnouncement()) return;
    this.announce();
  }

  /** Followers announce themselves through the leader once one is known. */
  private announceIfNeeded(): void {
    if (this.d.core.leaderId() === 0 || !this.needsAnnouncement()) return;
    this.announce();
  }

  private announce(): void {
    const body = new TextEncoder().encode(JSON.stringify({ id: this.d.core.id, ...this.self }));
    this.d.proposeEnvelope(EnvelopeKind.Members, body).catch((e: Error) => {
      this.d.core.log.debug({ err: e.message }, "member announcement failed");
    });
  }
}
