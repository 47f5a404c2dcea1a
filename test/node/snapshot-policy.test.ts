// The snapshot policy (src/node/snapshot-policy.ts) and the appended-bytes
// counter behind its byte margin (src/node/appended-bytes.ts), on the core's
// MemoryStorage: metadata-only snapshots every n applied entries; compaction
// bounded by the snapshot, the entries margin, the bytes margin and the
// catch-up floor, in slices.

import { describe, expect, it } from "vitest";
import { AppendedBytes, MAX_CHECKPOINTS } from "../../src/node/appended-bytes.ts";
import { newRuntimeStats } from "../../src/node/core.ts";
import { type AddressBook, decodeSnapshot } from "../../src/node/members.ts";
import { silentLogger } from "../../src/node/ports.ts";
import {
  MAX_COMPACT_ENTRIES_PER_TURN,
  SnapshotPolicy,
  type SnapshotPolicyOptions,
} from "../../src/node/snapshot-policy.ts";
import { type Entry, entryWireSize, MemoryStorage, makeEntry } from "../../src/raft/index.ts";

const BOOK: AddressBook = new Map([[1, { raft: "h1:9091", http: "h1:8081" }]]);

function entries(from: number, to: number, bytes = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(makeEntry(1, i, new Uint8Array(bytes)));
  return out;
}

/** MemoryStorage with the runtime's small records (getMeta/putMeta). */
class MetaStorage extends MemoryStorage {
  readonly meta = new Map<string, Uint8Array>();
  getMeta(key: string): Uint8Array | undefined {
    return this.meta.get(key);
  }
  putMeta(key: string, value: Uint8Array): void {
    this.meta.set(key, value.slice());
  }
}

/** A storage holding `before` entries written before the policy started, and the policy. */
function setup(o: Partial<SnapshotPolicyOptions>, before = 0, storage = new MetaStorage([1])) {
  if (before > 0) storage.append(entries(1, before));
  const state = { applied: 0, floor: Number.POSITIVE_INFINITY };
  const stats = newRuntimeStats();
  const policy = new SnapshotPolicy(
    {
      core: { log: silentLogger, stats },
      storage,
      appliedIndex: () => state.applied,
      members: () => BOOK,
      compactionFloor: () => state.floor,
    },
    { snapshotEntries: 100, marginEntries: 0, marginBytes: 0, ...o },
  );
  /** Appends as the runtime does: to storage, and counted by the policy. */
  const append = (es: Entry[]) => {
    storage.append(es);
    policy.noteAppend(es);
  };
  return { storage, state, stats, policy, append };
}

/** Runs drain boundaries until the policy has no compaction left; returns how many ran. */
function boundariesUntilIdle(policy: SnapshotPolicy): number {
  let n = 0;
  do {
    policy.atBoundary();
    n++;
  } while (policy.hasWork() && n < 1000);
  return n;
}

describe("snapshot policy", () => {
  it("takes a metadata-only snapshot every snapshotEntries applied entries", () => {
    const { storage, state, stats, policy, append } = setup({ snapshotEntries: 100 });
    append(entries(1, 400));
    state.applied = 99;
    policy.atBoundary();
    expect(stats.snapshotsTaken).toBe(0);
    state.applied = 250;
    policy.atBoundary();
    expect(storage.snapshot().metadata.index).toBe(250);
    expect(storage.snapshot().metadata.conf.voters).toEqual([1]);
    const { members, state: data } = decodeSnapshot(storage.snapshot().data);
    expect(members).toEqual(BOOK);
    expect(data.length).toBe(0); // no application data: it is durable in LMDB already
    state.applied = 349;
    policy.atBoundary();
    expect(stats.snapshotsTaken).toBe(1);
    state.applied = 350;
    policy.atBoundary();
    expect(stats.snapshotsTaken).toBe(2);
    expect(storage.snapshot().metadata.index).toBe(350);
  });

  it(`compacts in slices of at most ${MAX_COMPACT_ENTRIES_PER_TURN} entries per drain turn, up to the snapshot`, () => {
    const { storage, state, stats, policy, append } = setup({ snapshotEntries: 10_000 });
    append(entries(1, 12_500));
    state.applied = 12_000;
    policy.atBoundary();
    expect(storage.snapshot().metadata.index).toBe(12_000);
    expect(storage.firstIndex()).toBe(MAX_COMPACT_ENTRIES_PER_TURN + 1);
    expect(policy.hasWork()).toBe(true);
    policy.atBoundary();
    expect(storage.firstIndex()).toBe(2 * MAX_COMPACT_ENTRIES_PER_TURN + 1);
    policy.atBoundary();
    expect(storage.firstIndex()).toBe(12_001);
    expect(policy.hasWork()).toBe(false);
    expect(storage.term(12_000)).toBe(1);
    expect(stats.compactedEntries).toBe(12_000);
  });

  it("keeps compactionMarginEntries entries before the applied index", () => {
    const { storage, state, policy, append } = setup({ snapshotEntries: 100, marginEntries: 30 });
    append(entries(1, 300));
    state.applied = 300;
    boundariesUntilIdle(policy);
    expect(storage.firstIndex()).toBe(271);
  });

  it("keeps at least compactionMarginBytes of log after the compaction point", () => {
    const entryBytes = 64 * 1024;
    const margin = 2 * 1024 * 1024;
    const { storage, state, policy, append } = setup({ snapshotEntries: 10, marginBytes: margin });
    append(entries(1, 200, entryBytes)); // ~12.5 MiB
    state.applied = 200;
    boundariesUntilIdle(policy);
    const c = storage.firstIndex() - 1;
    const after = (200 - c) * entryWireSize(makeEntry(1, 1, new Uint8Array(entryBytes)));
    expect(after).toBeGreaterThanOrEqual(margin);
    // Checkpoints are about 1 MiB apart: it keeps the margin plus at most about one more MiB.
    expect(after).toBeLessThan(margin + 1024 * 1024 + 2 * entryBytes);
  });

  it("takes a snapshot when the byte margin lets compaction pass the last one, however few the entries", () => {
    // Large batched entries: 100 entries of 1 MiB pass a 16 MiB margin long before 100 000 entries.
    const entryBytes = 1024 * 1024;
    const { storage, state, stats, policy, append } = setup({
      snapshotEntries: 100_000,
      marginBytes: 16 * 1024 * 1024,
    });
    append(entries(1, 100, entryBytes));
    state.applied = 100;
    boundariesUntilIdle(policy);
    expect(stats.snapshotsTaken).toBe(1);
    expect(storage.snapshot().metadata.index).toBe(100);
    const kept = (100 - (storage.firstIndex() - 1)) * entryBytes;
    expect(kept).toBeGreaterThanOrEqual(16 * 1024 * 1024);
    expect(storage.firstIndex()).toBeGreaterThan(70);
  });

  it("after a restart, knows the bytes of the log saved with its snapshots (an old log is compacted without waiting for a new margin)", () => {
    const margin = 2 * 1024 * 1024;
    const first = setup({ snapshotEntries: 10, marginBytes: margin });
    first.append(entries(1, 30, 100 * 1024)); // ~3 MiB
    first.state.applied = 30;
    boundariesUntilIdle(first.policy);
    const compactedBefore = first.storage.firstIndex();
    // A restart: a new policy on the same storage, entries 31-40 written after the last save.
    first.storage.append(entries(31, 40, 100 * 1024));
    const again = setup({ snapshotEntries: 10, marginBytes: margin }, 0, first.storage);
    again.append(entries(41, 45, 100 * 1024)); // ~0.5 MiB since the restart: not a margin alone
    again.state.applied = 45;
    boundariesUntilIdle(again.policy);
    expect(again.storage.firstIndex()).toBeGreaterThan(compactedBefore);
    // Entries written after the save count as nothing: the margin holds by what is known.
    const known = (30 - (again.storage.firstIndex() - 1) + 5) * 100 * 1024;
    expect(known).toBeGreaterThanOrEqual(margin);
  });

  it("counts only the bytes appended since it started when nothing was saved: history before is unknown", () => {
    const margin = 2 * 1024 * 1024;
    const { storage, state, policy, append } = setup({ snapshotEntries: 10, marginBytes: margin }, 1_000);
    append(entries(1_001, 1_010, 100 * 1024)); // ~1 MiB since the start: not enough
    state.applied = 1_010;
    boundariesUntilIdle(policy);
    expect(storage.firstIndex()).toBe(1);
    append(entries(1_011, 1_030, 100 * 1024)); // ~3 MiB since the start
    state.applied = 1_030;
    boundariesUntilIdle(policy);
    // Everything before the restart may go now (at least the margin was appended after it).
    expect(storage.firstIndex()).toBeGreaterThan(1_000);
    const after = (1_030 - (storage.firstIndex() - 1)) * (100 * 1024);
    expect(after).toBeGreaterThanOrEqual(margin);
  });

  it("never compacts past the index of a snapshot stream in flight", () => {
    const { storage, state, policy, append } = setup({ snapshotEntries: 100 });
    append(entries(1, 1_000));
    state.applied = 1_000;
    state.floor = 420;
    boundariesUntilIdle(policy);
    expect(storage.firstIndex()).toBe(421);
    state.floor = Number.POSITIVE_INFINITY;
    boundariesUntilIdle(policy);
    expect(storage.firstIndex()).toBe(1_001);
  });

  it("restarts its counting after a snapshot is installed", () => {
    const { storage, state, policy } = setup({ snapshotEntries: 100, marginBytes: 1 });
    storage.applySnapshot({
      metadata: { index: 5_000, term: 2, conf: storage.initialState().confState },
      data: new Uint8Array(),
    });
    policy.noteInstalled(5_000);
    state.applied = 5_000;
    boundariesUntilIdle(policy);
    expect(storage.firstIndex()).toBe(5_001);
  });
});

describe("appended bytes", () => {
  it("answers conservatively and keeps its checkpoints within their bound", () => {
    const a = new AppendedBytes(0, 100);
    const size = entryWireSize(makeEntry(1, 1, new Uint8Array(76))); // 100 bytes a entry
    let index = 0;
    for (let round = 0; round < 50; round++) {
      const es = entries(index + 1, index + 1_000, 76);
      index += 1_000;
      a.note(es);
      expect(a.checkpoints).toBeLessThanOrEqual(MAX_CHECKPOINTS);
    }
    for (const margin of [1, 100, 10_000, 1_000_000, 4_000_000]) {
      const c = a.lastIndexWithBytesAfter(margin);
      expect((index - c) * size).toBeGreaterThanOrEqual(margin);
    }
    expect(a.lastIndexWithBytesAfter(index * size + 1)).toBe(-1);
  });

  it("forgets the checkpoints of a replaced suffix", () => {
    const a = new AppendedBytes(0, 1);
    a.note(entries(1, 100));
    a.note(entries(50, 55)); // a new leader's entries replace 50..100
    const size = entryWireSize(makeEntry(1, 1, new Uint8Array(8)));
    // Only what is in the log now counts: the replaced 50..100 are not bytes after 49.
    expect(a.lastIndexWithBytesAfter(6 * size)).toBe(49);
    expect(a.lastIndexWithBytesAfter(7 * size)).toBe(48);
    expect(a.lastIndexWithBytesAfter(size)).toBe(54);
  });
});
