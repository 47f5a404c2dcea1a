// A seeded, reproducible fault schedule over a harness Cluster: messages are
// delivered one at a time, reordered, dropped and duplicated; links are cut and
// healed; nodes hold their Readies (asynchronous writes) and crash, losing what
// they had not persisted, and restart from storage. After every step it checks
// what B32 and B35 promise; at every delivery, what the sender promised by
// sending (a granted vote is durable and unique, an acknowledged entry is stored).

import {
  type Entry,
  type Message,
  MessageType,
  RaftError,
  type RaftNode,
  Role,
} from "../../src/raft/index.ts";
import { Prng } from "../../src/raft/prng.ts";
import { Cluster, type ConfigOverrides } from "./harness.ts";
import { persistHeldWithoutAdvance } from "./stepwise.ts";

export interface ChaosOptions {
  ids: number[];
  seed: number;
  steps: number;
  overrides?: ConfigOverrides;
  /** Nodes hold their Readies now and then (asynchronous writes). */
  hold?: boolean;
  /** Nodes crash now and then, losing held Readies, and restart from storage. */
  crash?: boolean;
  /** Applications snapshot their state and compact their logs now and then. */
  snapshots?: boolean;
}

interface Seen {
  commit: number;
  applied: number;
  applying: number;
}

export class Chaos {
  readonly c: Cluster;
  readonly violations: string[] = [];
  readonly stats = {
    writtenNotAdvanced: 0,
    delivered: 0,
    crashes: 0,
    lostReadies: 0,
    snapshots: 0,
    leaders: 0,
    committed: 0,
    proposals: 0,
  };
  private readonly prng: Prng;
  private readonly cut = new Set<string>();
  /** voter:term -> the candidate it granted its vote to. */
  private readonly votes = new Map<string, number>();
  private readonly leaderOfTerm = new Map<number, number>();
  /** index -> (term, crc) of every entry applied anywhere. */
  private readonly applied = new Map<number, { term: number; crc: number }>();
  /** How far each member's applied entries were checked (the harness replaces the list on a snapshot). */
  private readonly appliedChecked = new Map<
    number,
    { list: Entry[]; checked: number; last: number; jumped: boolean }
  >();
  private readonly seen = new WeakMap<RaftNode, Seen>();
  private proposalSeq = 0;

  constructor(private readonly opts: ChaosOptions) {
    this.prng = new Prng(opts.seed);
    this.c = new Cluster(opts.ids, opts.overrides ?? {});
  }

  private fail(what: string): void {
    if (this.violations.length < 20) this.violations.push(`seed ${this.opts.seed}: ${what}`);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.prng.intn(xs.length)]!;
  }

  private chance(p: number): boolean {
    return this.prng.intn(1_000_000) < p * 1_000_000;
  }

  run(): this {
    const ids = this.opts.ids;
    for (let s = 0; s < this.opts.steps && this.violations.length === 0; s++) {
      const r = this.prng.intn(100);
      const id = this.pick(ids);
      if (r < 45) this.deliverOne();
      else if (r < 70) this.c.tick(id);
      else if (r < 80) this.propose(id);
      else if (r < 86 && this.opts.hold) this.toggleHold(id);
      else if (r < 89 && this.opts.crash) this.crash(id);
      else if (r < 90 && this.opts.snapshots) this.snapshot(id);
      else if (r < 92) this.partition();
      else if (r < 95) this.cut.clear();
      else this.deliverAll();
      this.checkNodes();
    }
    return this;
  }

  /**
   * Heals everything, releases every held Ready and runs until a fresh proposal
   * is applied everywhere (B70). A proposal made to a leader that is deposed
   * before it commits may be lost, so a new one goes to every new leader.
   */
  settle(maxRounds = 400): boolean {
    this.cut.clear();
    for (const id of this.opts.ids) this.c.release(id);
    const markers: string[] = [];
    let proposedTo = "";
    for (let round = 0; round < maxRounds; round++) {
      this.deliverAll();
      this.checkNodes();
      const leaders = this.c.leaders();
      if (leaders.length === 1) {
        const l = leaders[0]!;
        const at = `${l}@${this.c.node(l).status().term}`;
        if (at !== proposedTo) {
          const marker = `settle-${this.opts.seed}-${markers.length}`;
          try {
            this.c.handle(l, this.c.node(l).propose(new TextEncoder().encode(marker)));
            markers.push(marker);
            proposedTo = at;
          } catch (e) {
            if (!(e instanceof RaftError)) throw e;
          }
        }
      }
      if (markers.some((mk) => this.opts.ids.every((id) => this.c.appliedData(id).includes(mk)))) {
        this.deliverAll();
        this.checkNodes();
        return true;
      }
      for (const id of this.opts.ids) this.c.tick(id);
    }
    return false;
  }

  private propose(id: number): void {
    const data = new TextEncoder().encode(`s${this.opts.seed}-p${this.proposalSeq++}`);
    try {
      this.c.handle(id, this.c.node(id).propose(data));
      this.stats.proposals++;
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
    }
  }

  private toggleHold(id: number): void {
    const m = this.c.get(id);
    if (m.hold) this.c.release(id);
    else m.hold = true;
  }

  /**
   * Crash (B35): whatever was held is lost, except that sometimes the oldest held
   * Readies were persisted, sent and applied but not yet advanced; restart from storage.
   */
  private crash(id: number): void {
    const old = this.c.get(id);
    if (old.held.length > 0 && this.chance(0.5)) {
      const n = 1 + this.prng.intn(old.held.length);
      persistHeldWithoutAdvance(this.c, id, n);
      this.stats.writtenNotAdvanced += n;
    }
    const appliedBefore = old.applied.length > 0 ? old.applied[old.applied.length - 1]!.index : 0;
    const durable = old.storage.initialState().hardState;
    this.stats.lostReadies += old.held.length;
    this.c.restart(id);
    this.stats.crashes++;
    const st = this.c.node(id).status();
    if (st.commit < appliedBefore) {
      this.fail(`node ${id} restarts with commit ${st.commit} below what it applied (${appliedBefore})`);
    }
    if (st.term !== durable.term || st.vote !== durable.vote) {
      this.fail(
        `node ${id} restarts at term ${st.term} vote ${st.vote}, storage has ${durable.term}/${durable.vote}`,
      );
    }
  }

  /** The application on `id` snapshots at its applied index and compacts there. */
  private snapshot(id: number): void {
    const m = this.c.get(id);
    const st = m.node.status();
    if (st.applied < m.storage.snapshot().metadata.index + 3) return;
    m.storage.createSnapshot(st.applied, st.config, new TextEncoder().encode(`state@${st.applied}`));
    m.storage.compact(st.applied);
    this.stats.snapshots++;
  }

  private partition(): void {
    const ids = this.opts.ids;
    const a = this.pick(ids);
    if (this.chance(0.5)) {
      for (const b of ids) if (b !== a) this.cutLink(a, b);
    } else {
      const b = this.pick(ids);
      if (a !== b) this.cutLink(a, b);
    }
  }

  private cutLink(a: number, b: number): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  deliverAll(max = 20_000): void {
    for (let n = 0; this.c.queue.length > 0; n++) {
      if (n >= max) throw new Error("chaos: message storm");
      this.deliver(this.c.queue.shift()!);
    }
  }

  private deliverOne(): void {
    const q = this.c.queue;
    if (q.length === 0) return;
    // Mild reordering: one of the first few messages.
    const i = this.prng.intn(Math.min(3, q.length));
    const [msg] = q.splice(i, 1);
    if (this.chance(0.05)) return; // lost
    if (this.chance(0.05)) q.push(msg!); // duplicated
    this.deliver(msg!);
  }

  private deliver(msg: Message): void {
    if (this.cut.has(`${msg.from}-${msg.to}`)) return;
    if (!this.c.members.has(msg.to)) return;
    this.checkSent(msg);
    this.stats.delivered++;
    this.c.step(msg.to, msg);
  }

  /** What a node promises by sending `msg` (B34, B35). */
  private checkSent(msg: Message): void {
    const sender = this.c.members.get(msg.from);
    if (!sender) return;
    const durable = sender.storage.initialState().hardState;
    const preVote = msg.type === MessageType.PreVote || msg.type === MessageType.PreVoteResp;
    if (msg.term > durable.term && !preVote) {
      this.fail(
        `${msg.from}->${msg.to} ${MessageType[msg.type]} at term ${msg.term}, durable term ${durable.term}`,
      );
    }
    if (msg.type === MessageType.VoteResp && !msg.reject) {
      const key = `${msg.from}:${msg.term}`;
      const prior = this.votes.get(key);
      if (prior !== undefined && prior !== msg.to) {
        this.fail(`node ${msg.from} voted for ${prior} and ${msg.to} in term ${msg.term}`);
      }
      this.votes.set(key, msg.to);
      if (durable.term === msg.term && durable.vote !== msg.to) {
        this.fail(`node ${msg.from} granted ${msg.to} in term ${msg.term}, durable vote ${durable.vote}`);
      }
    }
    if (msg.type === MessageType.AppResp && !msg.reject && durable.term === msg.term) {
      const last = sender.storage.lastIndex();
      if (last < msg.index) {
        this.fail(
          `node ${msg.from} acknowledged ${msg.index} in term ${msg.term} but stores only up to ${last}`,
        );
      }
    }
  }

  /** B32 on every node, B66 and the applied entries (B30, B69) after every step. */
  checkNodes(): void {
    for (const m of this.c.members.values()) {
      const st = m.node.status();
      if (st.commit > st.lastIndex) this.fail(`node ${m.id}: commit ${st.commit} > last ${st.lastIndex}`);
      if (st.applied > st.applying || st.applying > st.commit) {
        this.fail(
          `node ${m.id}: applied ${st.applied}, applying ${st.applying}, commit ${st.commit} out of order`,
        );
      }
      const prev = this.seen.get(m.node);
      if (prev) {
        if (st.commit < prev.commit)
          this.fail(`node ${m.id}: commit went back from ${prev.commit} to ${st.commit}`);
        if (st.applied < prev.applied)
          this.fail(`node ${m.id}: applied went back from ${prev.applied} to ${st.applied}`);
        if (st.applying < prev.applying) {
          this.fail(`node ${m.id}: applying went back from ${prev.applying} to ${st.applying}`);
        }
      }
      this.seen.set(m.node, { commit: st.commit, applied: st.applied, applying: st.applying });
      if (st.commit > this.stats.committed) this.stats.committed = st.commit;

      if (st.role === Role.Leader) {
        const other = this.leaderOfTerm.get(st.term);
        if (other === undefined) {
          this.leaderOfTerm.set(st.term, m.id);
          this.stats.leaders++;
        } else if (other !== m.id) this.fail(`two leaders in term ${st.term}: ${other} and ${m.id}`);
      }

      let cur = this.appliedChecked.get(m.id);
      if (!cur) cur = { list: m.applied, checked: 0, last: 0, jumped: false };
      // A snapshot was installed: the state machine jumped ahead; apply continues after it.
      if (cur.list !== m.applied) cur = { list: m.applied, checked: 0, last: cur.last, jumped: true };
      for (; cur.checked < m.applied.length; cur.checked++) {
        const e = m.applied[cur.checked]!;
        const ok = cur.jumped ? e.index > cur.last : e.index === cur.last + 1;
        if (!ok) this.fail(`node ${m.id} applied ${e.index} after ${cur.last}`);
        cur.last = e.index;
        cur.jumped = false;
        const known = this.applied.get(e.index);
        if (!known) this.applied.set(e.index, { term: e.term, crc: e.crc });
        else if (known.term !== e.term || known.crc !== e.crc) {
          this.fail(
            `node ${m.id} applied ${e.index}@${e.term}, another node applied ${e.index}@${known.term}`,
          );
        }
      }
      this.appliedChecked.set(m.id, cur);
    }
  }
}
