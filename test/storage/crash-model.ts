// The workload of the crash test, shared by the child that runs it against an
// LmdbStorage and the parent that replays it on a model. `turn(model, rng, io)`
// decides one event turn's writes from the model and the PRNG only, updates the
// model and, given `io`, issues the same writes: so the parent can replay exactly
// what the child wrote, turn by turn, and compare a recovered store with the
// state after each turn.

import type { Database } from "lmdb";
import { type Entry, makeEntry } from "../../src/raft/index.ts";
import type { Prng } from "../../src/raft/prng.ts";
import type { LmdbStorage } from "../../src/storage/lmdb-storage.ts";

export interface Model {
  /** firstIndex; the entry before it is the compaction point, of term dummyTerm. */
  first: number;
  dummyTerm: number;
  /** Entries first..last: term and crc. */
  log: { term: number; crc: number }[];
  term: number;
  vote: number;
  commit: number;
  voters: number[];
  snapIndex: number;
  snapTerm: number;
  snapVoters: number[];
  /** The snapshot's data bytes (empty for the initial, empty snapshot). */
  snapData: number[];
  /** The state machine: the index applied last and a running value over applied entries. */
  applied: number;
  value: number;
}

export interface Io {
  storage: LmdbStorage;
  sm: Database<{ applied: number; value: number }, string>;
}

export const SM_KEY = "state";
const ALL = Number.MAX_SAFE_INTEGER;

export function initialModel(): Model {
  return {
    first: 1,
    dummyTerm: 0,
    log: [],
    term: 0,
    vote: 0,
    commit: 0,
    voters: [1],
    snapIndex: 0,
    snapTerm: 0,
    snapVoters: [1],
    snapData: [],
    applied: 0,
    value: 0,
  };
}

export function lastOf(m: Model): number {
  return m.first - 1 + m.log.length;
}

export function cloneModel(m: Model): Model {
  return {
    ...m,
    log: m.log.map((e) => ({ ...e })),
    voters: [...m.voters],
    snapVoters: [...m.snapVoters],
    snapData: [...m.snapData],
  };
}

function mix(value: number, crc: number): number {
  return (Math.imul(value, 0x01000193) ^ crc) >>> 0;
}

function snapBytes(index: number, value: number): number[] {
  return [index & 0xff, (index >>> 8) & 0xff, (index >>> 16) & 0xff, value & 0xff, (value >>> 8) & 0xff];
}

function randomVoters(rng: Prng): number[] {
  const out: number[] = [];
  for (let id = 1; id <= 5; id++) if (rng.intn(2) === 1) out.push(id);
  return out.length > 0 ? out : [1];
}

function randomData(rng: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.intn(256);
  return b;
}

/** Runs one event turn of the workload (synchronously: all its writes go in one transaction). */
export function turn(m: Model, rng: Prng, io?: Io): void {
  const s = io?.storage;
  const last = lastOf(m);
  if (m.term === 0) m.term = 1;

  // 1. Either install a snapshot from "the leader", or append entries.
  if (rng.intn(100) < 2) {
    const index = last + 1 + rng.intn(50);
    if (rng.intn(2) === 1) m.term++;
    const term = m.term;
    const voters = randomVoters(rng);
    const value = rng.nextU32();
    const data = snapBytes(index, value);
    s?.applySnapshot({
      metadata: {
        index,
        term,
        conf: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      },
      data: new Uint8Array(data),
    });
    m.first = index + 1;
    m.dummyTerm = term;
    m.log = [];
    m.voters = [...voters];
    m.snapIndex = index;
    m.snapTerm = term;
    m.snapVoters = [...voters];
    m.snapData = data;
    m.applied = index;
    m.value = value;
    io?.sm.put(SM_KEY, { applied: index, value });
    if (m.commit < index) m.commit = index;
    s?.setHardState({ term: m.term, vote: m.vote, commit: m.commit });
    return;
  }

  let at = last + 1;
  let count: number;
  if (last > m.commit && rng.intn(100) < 15) {
    // A new leader overwrites an uncommitted suffix.
    at = m.commit + 1 + rng.intn(last - m.commit);
    m.term++;
    m.vote = 1 + rng.intn(5);
    count = 1 + rng.intn(8);
  } else {
    if (rng.intn(100) < 4) {
      m.term++;
      m.vote = 1 + rng.intn(5);
    }
    count = rng.intn(100) < 10 ? 50 + rng.intn(200) : rng.intn(6);
  }
  if (count > 0) {
    const es: Entry[] = [];
    for (let k = 0; k < count; k++) {
      es.push(makeEntry(m.term, at + k, randomData(rng, rng.intn(300))));
    }
    s?.append(es);
    m.log.length = at - m.first;
    for (const e of es) m.log.push({ term: e.term, crc: e.crc });
  }

  // 2. Commit moves forward (never past the log).
  if (rng.intn(100) < 70) {
    m.commit = Math.max(m.commit, Math.min(lastOf(m), m.commit + rng.intn(20)));
  }
  s?.setHardState({ term: m.term, vote: m.vote, commit: m.commit });

  // 3. Apply committed entries; the applied index moves with the state, in this turn.
  const to = Math.min(m.commit, m.applied + rng.intn(30));
  if (to > m.applied) {
    if (s) {
      const es = s.entries(m.applied + 1, to + 1, ALL);
      if (es.length !== to - m.applied) throw new Error(`apply: got ${es.length} entries`);
      for (const e of es) {
        const want = m.log[e.index - m.first]!;
        if (e.term !== want.term || e.crc !== want.crc) {
          throw new Error(`apply: entry ${e.index} is ${e.term}/${e.crc}, model ${want.term}/${want.crc}`);
        }
      }
    }
    for (let i = m.applied + 1; i <= to; i++) m.value = mix(m.value, m.log[i - m.first]!.crc);
    m.applied = to;
    io?.sm.put(SM_KEY, { applied: m.applied, value: m.value });
  }

  // 4. Membership changes now and then.
  if (rng.intn(100) < 3) {
    m.voters = randomVoters(rng);
    s?.setConfState({
      voters: [...m.voters],
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    });
  }

  // 5. Snapshot at the applied index and/or compact the log.
  if (rng.intn(100) < 6 && m.applied >= m.first) {
    if (m.applied > m.snapIndex && rng.intn(2) === 1) {
      const data = snapBytes(m.applied, m.value);
      s?.createSnapshot(
        m.applied,
        { voters: [...m.voters], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        new Uint8Array(data),
      );
      m.snapIndex = m.applied;
      m.snapTerm = m.log[m.applied - m.first]!.term;
      m.snapVoters = [...m.voters];
      m.snapData = data;
    }
    const idx = m.first + rng.intn(m.applied - m.first + 1);
    s?.compact(idx);
    m.dummyTerm = m.log[idx - m.first]!.term;
    m.log = m.log.slice(idx + 1 - m.first);
    m.first = idx + 1;
  }
}

/** Reads the model's view of a store (reading every entry checks its CRC). */
export function readModel(io: Io): Model {
  const s = io.storage;
  const first = s.firstIndex();
  const last = s.lastIndex();
  const st = s.initialState();
  const snap = s.snapshot();
  const smv = io.sm.get(SM_KEY) ?? { applied: 0, value: 0 };
  const log: Model["log"] = [];
  for (let i = first; i <= last; ) {
    const es = s.entries(i, last + 1, 1 << 20);
    for (const e of es) log.push({ term: e.term, crc: e.crc });
    i += es.length;
  }
  return {
    first,
    dummyTerm: s.term(first - 1),
    log,
    term: st.hardState.term,
    vote: st.hardState.vote,
    commit: st.hardState.commit,
    voters: [...st.confState.voters].sort(),
    snapIndex: snap.metadata.index,
    snapTerm: snap.metadata.term,
    snapVoters: [...snap.metadata.conf.voters].sort(),
    snapData: Array.from(snap.data),
    applied: smv.applied,
    value: smv.value,
  };
}

/** The first difference between two models, or null if they are equal. */
export function diffModels(a: Model, b: Model): string | null {
  const scalars = [
    "first",
    "dummyTerm",
    "term",
    "vote",
    "commit",
    "snapIndex",
    "snapTerm",
    "applied",
    "value",
  ] as const;
  for (const k of scalars) if (a[k] !== b[k]) return `${k}: ${a[k]} vs ${b[k]}`;
  if (a.log.length !== b.log.length) {
    return `last: ${lastOf(a)} vs ${lastOf(b)}`;
  }
  for (const k of ["voters", "snapVoters", "snapData"] as const) {
    const x = [...a[k]].sort().join(",");
    const y = [...b[k]].sort().join(",");
    if (k === "snapData" ? a[k].join(",") !== b[k].join(",") : x !== y) return `${k}: [${x}] vs [${y}]`;
  }
  for (let i = 0; i < a.log.length; i++) {
    const x = a.log[i]!;
    const y = b.log[i]!;
    if (x.term !== y.term || x.crc !== y.crc) {
      return `entry ${a.first + i}: ${x.term}/${x.crc} vs ${y.term}/${y.crc}`;
    }
  }
  return null;
}
