// The checker: a pure function of what the clients saw (every produce attempt,
// every subscriber's view) and the final logs of every node. It never looks at
// timings except the clients' own wall clock for the real-time order check
// (a request sent after another was answered must get higher offsets), which
// is a correctness property, not a performance one.

import type { FinalLogs, LogRecord } from "./final-read.ts";
import type { StreamAnomaly } from "./subscribers.ts";
import type { Attempt } from "./workload.ts";

export interface Category {
  count: number;
  examples: string[];
}

/** Each of these must be zero. */
export interface Anomalies {
  /** An acknowledged record missing from the final log. */
  lost: Category;
  /** An acknowledged record found, but not at the partition/offset it was acknowledged with. */
  misplaced: Category;
  /** Two nodes hold different records at one offset, or a node's log has a hole. */
  divergent: Category;
  /** A value sent with an Idempotency-Key appears more than once. */
  duplicates: Category;
  /** A value appears more often than it was sent in attempts that may have appended. */
  excessCopies: Category;
  /** A record whose value no producer ever sent. */
  phantom: Category;
  /** A value whose every attempt was definitely refused (non-200, non-504) is in the log. */
  failedButPresent: Category;
  /** The records of one request are not all there the same number of times, or not contiguous. */
  torn: Category;
  /** A request answered before another was sent got higher offsets than it. */
  realtimeOrder: Category;
  /** A record's timestamp is lower than the previous one's in its partition. */
  timestamps: Category;
  /** A gap, repeat or reordering within one subscriber connection, or an offset whose value changed. */
  streamOrder: Category;
  /** A subscriber saw, at some offset, a value other than the final log's. */
  subscriberDisagrees: Category;
}

export interface SubscriberView {
  node: number;
  partition: number;
  view: Map<number, string>;
  anomalies: StreamAnomaly[];
  next: number;
}

export interface CheckResult {
  ok: boolean;
  anomalies: Anomalies;
  info: {
    requests: number;
    attempts: number;
    acknowledgedRequests: number;
    acknowledgedRecords: number;
    failedAttempts: number;
    indeterminateAttempts: number;
    /** Keyless values retried after an indeterminate answer that appear more than once (allowed). */
    allowedDuplicates: number;
    /** Indeterminate-only values: how many made it into the log and how many did not. */
    indeterminatePresent: number;
    indeterminateAbsent: number;
    recordsInLog: number;
    /** Nodes whose log is a strict prefix of the longest one (lagging, not divergent). */
    laggingNodes: string[];
    subscriberRecords: number;
    /** Subscribers that had not read to the end of the final log when stopped. */
    subscribersBehind: string[];
    /** Answers seen (status and error code; 0 is no answer), with counts. */
    statuses: Record<string, number>;
    /** 4xx answers by node: the workload sends only valid requests, so these are worth a look. */
    clientErrors: Record<string, number>;
  };
}

const MAX_EXAMPLES = 5;

function cat(): Category {
  return { count: 0, examples: [] };
}

function add(c: Category, example: string): void {
  c.count++;
  if (c.examples.length < MAX_EXAMPLES) c.examples.push(example);
}

export interface CheckInput {
  attempts: Attempt[];
  idempotentValues: Set<string>;
  logs: FinalLogs;
  partitions: number;
  subscribers: SubscriberView[];
}

export function check(input: CheckInput): CheckResult {
  const a: Anomalies = {
    lost: cat(),
    misplaced: cat(),
    divergent: cat(),
    duplicates: cat(),
    excessCopies: cat(),
    phantom: cat(),
    failedButPresent: cat(),
    torn: cat(),
    realtimeOrder: cat(),
    timestamps: cat(),
    streamOrder: cat(),
    subscriberDisagrees: cat(),
  };
  const info: CheckResult["info"] = {
    requests: 0,
    attempts: input.attempts.length,
    acknowledgedRequests: 0,
    acknowledgedRecords: 0,
    failedAttempts: 0,
    indeterminateAttempts: 0,
    allowedDuplicates: 0,
    indeterminatePresent: 0,
    indeterminateAbsent: 0,
    recordsInLog: 0,
    laggingNodes: [],
    subscriberRecords: 0,
    subscribersBehind: [],
    statuses: {},
    clientErrors: {},
  };

  const reference = referenceLogs(input, a, info);
  checkTimestamps(reference, a);

  // Where each value is in the reference log.
  const where = new Map<string, { partition: number; offset: number }[]>();
  for (const [p, recs] of reference)
    for (const r of recs) {
      const list = where.get(r.value) ?? [];
      list.push({ partition: p, offset: r.offset });
      where.set(r.value, list);
      info.recordsInLog++;
    }

  // Attempts grouped per value; a "request" is the first attempt's value list.
  const byValue = new Map<string, Attempt[]>();
  const requests = new Map<string, string[]>();
  for (const at of input.attempts) {
    const st = `${at.status}${at.code ? ` ${at.code}` : ""}`;
    info.statuses[st] = (info.statuses[st] ?? 0) + 1;
    if (at.status >= 400 && at.status < 500) {
      const k = `${st} from node ${at.node}`;
      info.clientErrors[k] = (info.clientErrors[k] ?? 0) + 1;
    }
    if (at.outcome === "fail") info.failedAttempts++;
    if (at.outcome === "info") info.indeterminateAttempts++;
    const first = at.records[0]!.value;
    if (!requests.has(first))
      requests.set(
        first,
        at.records.map((r) => r.value),
      );
    for (const r of at.records) {
      const list = byValue.get(r.value) ?? [];
      list.push(at);
      byValue.set(r.value, list);
    }
  }
  info.requests = requests.size;

  for (const v of where.keys()) if (!byValue.has(v)) add(a.phantom, `${v} at ${fmt(where.get(v)!)}`);

  for (const [v, ats] of byValue) {
    const found = where.get(v) ?? [];
    const ok = ats.filter((t) => t.outcome === "ok");
    const mayAppend = ats.filter((t) => t.outcome !== "fail").length;
    const sentTo = ats[0]!.records.find((r) => r.value === v)!.partition;
    if (ok.length > 0) {
      info.acknowledgedRecords++;
      if (found.length === 0) add(a.lost, `${v} acknowledged at ${fmtAck(ok[0]!, v)}, not in the log`);
      for (const t of ok) {
        const ack = t.offsets![t.records.findIndex((r) => r.value === v)]!;
        if (!found.some((f) => f.partition === ack.partition && f.offset === ack.offset) && found.length > 0)
          add(
            a.misplaced,
            `${v} acknowledged at ${ack.partition}/${ack.offset} (request ${t.id}), found at ${fmt(found)}`,
          );
        if (ack.partition !== sentTo)
          add(a.misplaced, `${v} sent to partition ${sentTo}, acknowledged in ${ack.partition}`);
      }
    } else if (mayAppend > 0) {
      if (found.length > 0) info.indeterminatePresent++;
      else info.indeterminateAbsent++;
    }
    for (const f of found)
      if (f.partition !== sentTo) add(a.misplaced, `${v} sent to partition ${sentTo}, found at ${fmt([f])}`);
    if (found.length > 0 && mayAppend === 0)
      add(a.failedButPresent, `${v}: every attempt refused (${statuses(ats)}), found at ${fmt(found)}`);
    if (input.idempotentValues.has(v)) {
      if (found.length > 1) add(a.duplicates, `${v} (Idempotency-Key ${ats[0]!.key}) at ${fmt(found)}`);
    } else if (found.length > Math.max(1, mayAppend)) {
      add(
        a.excessCopies,
        `${v} sent ${mayAppend} time(s) that may append, found ${found.length}: ${fmt(found)}`,
      );
    } else if (found.length > 1) {
      info.allowedDuplicates++;
    }
  }

  checkRequests(input.attempts, requests, where, a, info);
  checkRealtimeOrder(input.attempts, a);
  checkSubscribers(input.subscribers, reference, a, info);

  const ok = Object.values(a).every((c: Category) => c.count === 0);
  return { ok, anomalies: a, info };
}

/** The longest log per partition; every other node's log must be a prefix of it. */
function referenceLogs(input: CheckInput, a: Anomalies, info: CheckResult["info"]): Map<number, LogRecord[]> {
  const ref = new Map<number, LogRecord[]>();
  for (let p = 0; p < input.partitions; p++) {
    let best: LogRecord[] = [];
    for (const logs of input.logs.values()) {
      const l = logs.get(p) ?? [];
      if (l.length > best.length) best = l;
    }
    ref.set(p, best);
    for (const [node, logs] of input.logs) {
      const l = logs.get(p) ?? [];
      for (let i = 0; i < l.length; i++) {
        const r = l[i]!;
        if (r.offset !== i) {
          add(a.divergent, `node ${node} partition ${p}: offset ${r.offset} at position ${i} (a hole)`);
          break;
        }
        if (best[i]?.value !== r.value) {
          add(
            a.divergent,
            `node ${node} partition ${p} offset ${i}: ${r.value}, another node has ${best[i]?.value}`,
          );
          break;
        }
      }
      if (l.length < best.length) info.laggingNodes.push(`node ${node} p${p}: ${l.length}/${best.length}`);
    }
  }
  return ref;
}

function checkTimestamps(ref: Map<number, LogRecord[]>, a: Anomalies): void {
  for (const [p, recs] of ref)
    for (let i = 1; i < recs.length; i++)
      if (recs[i]!.timestamp < recs[i - 1]!.timestamp)
        add(a.timestamps, `partition ${p} offset ${i}: ${recs[i]!.timestamp} < ${recs[i - 1]!.timestamp}`);
}

/** Atomic and contiguous per partition: every value of a request appears equally often; acks are dense. */
function checkRequests(
  attempts: Attempt[],
  requests: Map<string, string[]>,
  where: Map<string, { partition: number; offset: number }[]>,
  a: Anomalies,
  info: CheckResult["info"],
): void {
  for (const values of requests.values()) {
    const counts = values.map((v) => where.get(v)?.length ?? 0);
    if (new Set(counts).size > 1)
      add(a.torn, `request [${values.join(", ")}] found ${counts.join("/")} times`);
  }
  for (const t of attempts) {
    if (t.outcome !== "ok") continue;
    info.acknowledgedRequests++;
    const last = new Map<number, number>();
    for (const o of t.offsets!) {
      const prev = last.get(o.partition);
      if (prev !== undefined && o.offset !== prev + 1)
        add(a.torn, `request ${t.id}: partition ${o.partition} offsets ${prev} then ${o.offset}`);
      last.set(o.partition, o.offset);
    }
  }
}

/**
 * If A was answered before B was sent, B's offsets in a shared partition are
 * above A's. B "was sent" at its request's first attempt: a retry with an
 * Idempotency-Key answers with the offsets of an earlier attempt.
 */
function checkRealtimeOrder(attempts: Attempt[], a: Anomalies): void {
  const firstSent = new Map<string, number>();
  for (const t of attempts) if (t.key) firstSent.set(t.key, Math.min(firstSent.get(t.key) ?? t.t0, t.t0));
  const start = (t: Attempt) => (t.key ? firstSent.get(t.key)! : t.t0);
  const ok = attempts.filter((t) => t.outcome === "ok");
  const byEnd = [...ok].sort((x, y) => x.t1 - y.t1);
  const byStart = [...ok].sort((x, y) => start(x) - start(y));
  // partition -> the highest offset acknowledged so far, and by which request.
  const high = new Map<number, { offset: number; id: number }>();
  let e = 0;
  for (const b of byStart) {
    while (e < byEnd.length && byEnd[e]!.t1 < start(b)) {
      const done = byEnd[e++]!;
      for (const o of done.offsets!) {
        const h = high.get(o.partition);
        if (!h || o.offset > h.offset) high.set(o.partition, { offset: o.offset, id: done.id });
      }
    }
    for (const o of b.offsets!) {
      const h = high.get(o.partition);
      if (h && o.offset <= h.offset)
        add(
          a.realtimeOrder,
          `request ${b.id} (sent after request ${h.id} was answered) got ${o.partition}/${o.offset} <= ${h.offset}`,
        );
    }
  }
}

function checkSubscribers(
  subs: SubscriberView[],
  ref: Map<number, LogRecord[]>,
  a: Anomalies,
  info: CheckResult["info"],
): void {
  for (const s of subs) {
    for (const x of s.anomalies)
      add(
        a.streamOrder,
        `node ${x.node} partition ${x.partition} connection ${x.conn}: ${x.kind}, ${x.detail}`,
      );
    const log = ref.get(s.partition) ?? [];
    for (const [offset, v] of s.view) {
      info.subscriberRecords++;
      if (log[offset]?.value !== v)
        add(
          a.subscriberDisagrees,
          `node ${s.node} partition ${s.partition} offset ${offset}: saw ${v}, final log has ${log[offset]?.value ?? "nothing"}`,
        );
    }
    if (s.next < log.length)
      info.subscribersBehind.push(`node ${s.node} p${s.partition}: ${s.next}/${log.length}`);
  }
}

function fmt(list: { partition: number; offset: number }[]): string {
  return list.map((f) => `${f.partition}/${f.offset}`).join(", ");
}

function fmtAck(t: Attempt, v: string): string {
  const o = t.offsets![t.records.findIndex((r) => r.value === v)]!;
  return `${o.partition}/${o.offset} (request ${t.id} via node ${t.node})`;
}

function statuses(ats: Attempt[]): string {
  return ats.map((t) => t.status || t.code).join(",");
}
