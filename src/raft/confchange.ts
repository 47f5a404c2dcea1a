// Applying a ConfChange to a configuration, producing a new configuration and
// progress map (the tracker is switched only once the result is valid; existing
// Progress objects are shared, never mutated here).
// One voter added or removed at a time is applied directly; changing two or
// more voters enters a joint configuration (both majorities needed) that is
// left by an empty ConfChange (B55). Modelled on etcd's confchange.Changer.

import { RaftError } from "./errors.ts";
import { Progress } from "./progress.ts";
import { cloneTrackerConfig, type TrackerConfig } from "./tracker.ts";
import { type ConfChange, type ConfChangeSingle, ConfChangeType, type NodeId } from "./types.ts";

export interface ChangeResult {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
}

export interface ChangerContext {
  config: TrackerConfig;
  progress: Map<NodeId, Progress>;
  /** Next index for the progress of a new member. */
  lastIndex: number;
  maxInflight: number;
  maxInflightBytes: number;
}

const invalid = (m: string) => new RaftError("INVALID_CONF_CHANGE", m);

/** Number of voters that change between two voter sets. */
function symDiff(a: Set<NodeId>, b: Set<NodeId>): number {
  let n = 0;
  for (const x of a) if (!b.has(x)) n++;
  for (const x of b) if (!a.has(x)) n++;
  return n;
}

/** Whether a change touches the voter set (and so needs joint consensus when it touches two). */
export function votersChangedBy(config: TrackerConfig, changes: ConfChangeSingle[]): number {
  const after = new Set(config.voters);
  for (const c of changes) {
    if (c.type === ConfChangeType.AddVoter) after.add(c.nodeId);
    else after.delete(c.nodeId);
  }
  return symDiff(config.voters, after);
}

export function applyConfChange(ctx: ChangerContext, cc: ConfChange): ChangeResult {
  const joint = ctx.config.votersOutgoing.size > 0;
  if (cc.changes.length === 0) {
    if (!joint) throw invalid("cannot leave a joint config: not in one");
    return leaveJoint(ctx);
  }
  if (joint) throw invalid("config is joint: leave it before another change");
  if (votersChangedBy(ctx.config, cc.changes) <= 1 && !cc.explicitLeave) return simple(ctx, cc.changes);
  return enterJoint(ctx, cc.changes, !cc.explicitLeave);
}

function copy(ctx: ChangerContext): ChangeResult {
  const progress = new Map<NodeId, Progress>();
  for (const [id, pr] of ctx.progress) progress.set(id, pr);
  return { config: cloneTrackerConfig(ctx.config), progress };
}

function simple(ctx: ChangerContext, changes: ConfChangeSingle[]): ChangeResult {
  const r = copy(ctx);
  applyChanges(ctx, r, changes);
  if (symDiff(ctx.config.voters, r.config.voters) > 1) {
    throw invalid("more than one voter changed without entering a joint config");
  }
  check(r.config);
  return r;
}

function enterJoint(ctx: ChangerContext, changes: ConfChangeSingle[], autoLeave: boolean): ChangeResult {
  if (ctx.config.voters.size === 0) throw invalid("cannot enter a joint config from an empty voter set");
  const r = copy(ctx);
  r.config.votersOutgoing = new Set(ctx.config.voters);
  applyChanges(ctx, r, changes);
  r.config.autoLeave = autoLeave;
  check(r.config);
  return r;
}

function leaveJoint(ctx: ChangerContext): ChangeResult {
  const r = copy(ctx);
  for (const id of r.config.learnersNext) {
    r.config.learners.add(id);
  }
  r.config.learnersNext = new Set();
  for (const id of r.config.votersOutgoing) {
    if (!r.config.voters.has(id) && !r.config.learners.has(id)) r.progress.delete(id);
  }
  r.config.votersOutgoing = new Set();
  r.config.autoLeave = false;
  check(r.config);
  return r;
}

function applyChanges(ctx: ChangerContext, r: ChangeResult, changes: ConfChangeSingle[]): void {
  for (const c of changes) {
    if (!Number.isSafeInteger(c.nodeId) || c.nodeId <= 0)
      throw invalid(`node id must be positive, got ${c.nodeId}`);
    switch (c.type) {
      case ConfChangeType.AddVoter:
        makeVoter(ctx, r, c.nodeId);
        break;
      case ConfChangeType.AddLearner:
        makeLearner(ctx, r, c.nodeId);
        break;
      case ConfChangeType.RemoveNode:
        remove(r, c.nodeId);
        break;
      default:
        throw invalid(`unknown change type ${String(c.type)}`);
    }
  }
  if (r.config.voters.size === 0) throw invalid("removed all voters");
}

function ensureProgress(ctx: ChangerContext, r: ChangeResult, id: NodeId, isLearner: boolean): Progress {
  let pr = r.progress.get(id);
  if (!pr) {
    pr = new Progress(ctx.lastIndex + 1, ctx.maxInflight, ctx.maxInflightBytes, isLearner);
    // A new member counts as active so that CheckQuorum does not step the leader
    // down before it has had a chance to hear from it.
    pr.recentActive = true;
    r.progress.set(id, pr);
  }
  return pr;
}

function makeVoter(ctx: ChangerContext, r: ChangeResult, id: NodeId): void {
  ensureProgress(ctx, r, id, false);
  r.config.learners.delete(id);
  r.config.learnersNext.delete(id);
  r.config.voters.add(id);
}

function makeLearner(ctx: ChangerContext, r: ChangeResult, id: NodeId): void {
  if (r.config.learners.has(id)) return;
  r.config.voters.delete(id);
  r.config.learners.delete(id);
  r.config.learnersNext.delete(id);
  ensureProgress(ctx, r, id, true);
  // A voter of the outgoing config cannot be a learner until the joint config
  // is left: it becomes one then.
  if (r.config.votersOutgoing.has(id)) r.config.learnersNext.add(id);
  else r.config.learners.add(id);
}

function remove(r: ChangeResult, id: NodeId): void {
  r.config.voters.delete(id);
  r.config.learners.delete(id);
  r.config.learnersNext.delete(id);
  if (!r.config.votersOutgoing.has(id)) r.progress.delete(id);
}

function check(c: TrackerConfig): void {
  for (const id of c.learners) {
    if (c.voters.has(id) || c.votersOutgoing.has(id)) throw invalid(`${id} is both voter and learner`);
  }
  for (const id of c.learnersNext) {
    if (!c.votersOutgoing.has(id)) throw invalid(`${id} in learnersNext but not an outgoing voter`);
  }
  if (c.votersOutgoing.size === 0 && c.autoLeave) throw invalid("autoLeave set outside a joint config");
}

/** Binary form of a ConfChange, the data of an EntryType.ConfChange entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const ctx = cc.context ?? new Uint8Array();
  const b = cc.base;
  const baseBytes = b
    ? 1 + 4 * 4 + 8 * (b.voters.length + b.learners.length + b.votersOutgoing.length + b.learnersNext.length)
    : 0;
  const buf = new Uint8Array(1 + 1 + 4 + cc.changes.length * 9 + 4 + ctx.length + baseBytes);
  const dv = new DataView(buf.buffer);
  let o = 0;
  dv.setUint8(o++, 1); // version
  dv.setUint8(o++, cc.explicitLeave ? 1 : 0);
  dv.setUint32(o, cc.changes.length);
  o += 4;
  for (const c of cc.changes) {
    dv.setUint8(o++, c.type);
    dv.setFloat64(o, c.nodeId);
    o += 8;
  }
  dv.setUint32(o, ctx.length);
  o += 4;
  buf.set(ctx, o);
  o += ctx.length;
  if (b) {
    dv.setUint8(o++, b.autoLeave ? 1 : 0);
    for (const ids of [b.voters, b.learners, b.votersOutgoing, b.learnersNext]) {
      dv.setUint32(o, ids.length);
      o += 4;
      for (const id of ids) {
        dv.setFloat64(o, id);
        o += 8;
      }
    }
  }
  return buf;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bad = () => invalid("malformed ConfChange entry");
  if (data.length < 10 || dv.getUint8(0) !== 1) throw bad();
  let o = 1;
  const explicitLeave = dv.getUint8(o++) === 1;
  const n = dv.getUint32(o);
  o += 4;
  if (data.length < o + n * 9 + 4) throw bad();
  const changes: ConfChangeSingle[] = [];
  for (let i = 0; i < n; i++) {
    const type = dv.getUint8(o++) as ConfChangeType;
    const nodeId = dv.getFloat64(o);
    o += 8;
    changes.push({ type, nodeId });
  }
  const len = dv.getUint32(o);
  o += 4;
  if (data.length < o + len) throw bad();
  const cc: ConfChange = { changes, context: data.slice(o, o + len) };
  o += len;
  if (explicitLeave) cc.explicitLeave = true;
  if (o < data.length) {
    const autoLeave = dv.getUint8(o++) === 1;
    const lists: number[][] = [];
    for (let k = 0; k < 4; k++) {
      if (data.length < o + 4) throw bad();
      const count = dv.getUint32(o);
      o += 4;
      if (data.length < o + count * 8) throw bad();
      const ids: number[] = [];
      for (let i = 0; i < count; i++, o += 8) ids.push(dv.getFloat64(o));
      lists.push(ids);
    }
    if (o !== data.length) throw bad();
    cc.base = {
      voters: lists[0]!,
      learners: lists[1]!,
      votersOutgoing: lists[2]!,
      learnersNext: lists[3]!,
      autoLeave,
    };
  }
  return cc;
}
