import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open } from "lmdb";
import { afterAll, describe, expect, it } from "vitest";
import {
  type Entry,
  emptyConfState,
  isRaftError,
  makeEntry,
  type RaftErrorCode,
  type Storage,
} from "../../src/raft/index.ts";
import { LmdbStorage, type LmdbStorageOptions } from "../../src/storage/lmdb-storage.ts";
import { storageContract } from "../raft/storage-contract.ts";

const root = mkdtempSync(join(tmpdir(), "raftbus-lmdb-test-"));
let n = 0;
const opened: LmdbStorage[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
  rmSync(root, { recursive: true, force: true });
});

function newDir(): string {
  return join(root, `s${n++}`);
}

function openAt(dir: string, opts: LmdbStorageOptions = {}): LmdbStorage {
  const s = LmdbStorage.open(dir, opts);
  opened.push(s);
  return s;
}

function reopener(opts: LmdbStorageOptions = {}) {
  return async (s: Storage): Promise<Storage> => {
    const l = s as LmdbStorage;
    await l.flush();
    await l.close();
    return openAt(l.dir, opts);
  };
}

storageContract("LmdbStorage", (voters) => openAt(newDir(), { voters }), { reopen: reopener() });

// No cache beyond what is not yet durable: after a reopen every read goes to disk.
storageContract("LmdbStorage (cacheBytes 0)", (voters) => openAt(newDir(), { voters, cacheBytes: 0 }), {
  reopen: reopener({ cacheBytes: 0 }),
});

const ALL = Number.MAX_SAFE_INTEGER;

function payload(index: number, term: number, size = 100): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (index * 13 + term * 7 + i) & 0xff;
  return b;
}

function ents(lo: number, hi: number, term: number, size = 100): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) out.push(makeEntry(term, i, payload(i, term, size)));
  return out;
}

function expectCode(f: () => unknown, code: RaftErrorCode): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  if (!isRaftError(thrown, code)) throw new Error(`expected RaftError ${code}, got ${String(thrown)}`);
}

/** Entries as comparable plain values. */
function plain(es: Entry[]) {
  return es.map((e) => ({
    term: e.term,
    index: e.index,
    type: e.type,
    crc: e.crc,
    data: Array.from(e.data),
  }));
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe("LmdbStorage: group commit", () => {
  it("commits everything written in one event turn in one transaction with one sync", async () => {
    const s = openAt(newDir(), { voters: [1] });
    const app = s.env.openDB<number, string>("app", { encoding: "msgpack" });
    await s.flush();
    const before = s.stats();
    for (let i = 1; i <= 1000; i++) s.append(ents(i, i, 1));
    s.setHardState({ term: 1, vote: 1, commit: 1000 });
    s.setConfState({ ...emptyConfState(), voters: [1, 2] });
    void app.put("applied", 1000); // the application's own sub-db, same transaction
    await s.flush();
    await waitFor(() => s.stats().syncs > before.syncs, "the sync");
    await nextTurn();
    const after = s.stats();
    expect(after.syncs - before.syncs).toBe(1);
    expect(after.commits - before.commits).toBe(1);
    expect(after.entriesWritten - before.entriesWritten).toBe(1000);
    expect(after.bytesWritten - before.bytesWritten).toBeGreaterThanOrEqual(1000 * 114);
    expect(after.pendingWrites).toBe(0);
    expect(app.get("applied")).toBe(1000);
  });

  it("syncs once per event turn that writes", async () => {
    const synced: number[] = [];
    const s = openAt(newDir(), { voters: [1], onSync: (sec) => synced.push(sec) });
    await s.flush();
    const before = s.stats();
    for (let t = 0; t < 10; t++) {
      s.append(ents(t * 5 + 1, t * 5 + 5, 1));
      s.setHardState({ term: 1, vote: 1, commit: t * 5 });
      await s.flush();
      await waitFor(() => s.stats().syncs - before.syncs === t + 1, `sync ${t + 1}`);
    }
    const after = s.stats();
    expect(after.syncs - before.syncs).toBe(10);
    expect(after.commits - before.commits).toBe(10);
    expect(synced.length).toBe(10);
    for (const sec of synced) expect(sec).toBeGreaterThan(0);
    expect(after.lastSyncMs).toBeGreaterThan(0);
  });

  it("flush() with nothing pending resolves at once", async () => {
    const s = openAt(newDir(), { voters: [1] });
    await s.flush();
    await s.flush();
    expect(s.stats().pendingWrites).toBe(0);
  });

  it("works with noSync (commits, no fsync)", async () => {
    const dir = newDir();
    const s = openAt(dir, { voters: [1], noSync: true });
    s.append(ents(1, 50, 2));
    s.setHardState({ term: 2, vote: 1, commit: 50 });
    await s.flush();
    await s.close();
    const r = openAt(dir, { noSync: true });
    expect(r.lastIndex()).toBe(50);
    expect(r.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 50 });
  });
});

describe("LmdbStorage: durability", () => {
  it("keeps everything across reopen, reading back from disk with CRCs checked", async () => {
    const dir = newDir();
    const s = openAt(dir, { voters: [1, 2, 3], cacheBytes: 0 });
    const all: Entry[] = [];
    for (let t = 1; t <= 20; t++) {
      const es = ents(all.length + 1, all.length + 50, t, t * 10);
      s.append(es);
      all.push(...es);
      s.setHardState({ term: t, vote: 2, commit: all.length - 10 });
      if (t % 3 === 0) await s.flush();
      else await nextTurn();
    }
    // Overwrite a suffix, snapshot and compact.
    const repl = ents(991, 995, 21);
    s.append(repl);
    all.length = 990;
    all.push(...repl);
    s.createSnapshot(900, { ...emptyConfState(), voters: [1, 2, 3] }, new Uint8Array([9, 0, 0]));
    s.compact(850);
    await s.close();

    const r = openAt(dir, { cacheBytes: 0 });
    expect(r.firstIndex()).toBe(851);
    expect(r.lastIndex()).toBe(995);
    expect(r.term(850)).toBe(all[849]!.term);
    expectCode(() => r.term(849), "COMPACTED");
    expect(r.initialState().hardState).toEqual({ term: 20, vote: 2, commit: 990 });
    expect([...r.initialState().confState.voters].sort()).toEqual([1, 2, 3]);
    const before = r.stats().diskReads;
    expect(plain(r.entries(851, 996, ALL))).toEqual(plain(all.slice(850)));
    expect(r.stats().diskReads - before).toBe(145);
    for (let i = 851; i <= 995; i++) expect(r.term(i)).toBe(all[i - 1]!.term);
    const sn = r.snapshot();
    expect(sn.metadata.index).toBe(900);
    expect(sn.metadata.term).toBe(all[899]!.term);
    expect(Array.from(sn.data)).toEqual([9, 0, 0]);
  });

  it("serves a snapshot's data from memory until durable, then from disk", async () => {
    const dir = newDir();
    const s = openAt(dir, { voters: [1] });
    const data = new Uint8Array(100_000).map((_, i) => i & 0xff);
    s.applySnapshot({ metadata: { index: 10, term: 2, conf: { ...emptyConfState(), voters: [1] } }, data });
    data[0] = 99; // the caller's buffer is not kept
    expect(s.snapshot().data[0]).toBe(0);
    expect(s.snapshot().data.length).toBe(100_000);
    await s.flush();
    expect(s.snapshot().data[1]).toBe(1);
    expect(s.snapshot().data.length).toBe(100_000);
    await s.close();
    const r = openAt(dir);
    expect(r.snapshot().metadata.index).toBe(10);
    expect(r.snapshot().data[255]).toBe(255);
    expect(r.firstIndex()).toBe(11);
    expect(r.term(10)).toBe(2);
  });

  it("rejects writes after close", async () => {
    const s = openAt(newDir(), { voters: [1] });
    await s.close();
    await s.close();
    expect(() => s.append(ents(1, 1, 1))).toThrow(/closed/);
  });
});

describe("LmdbStorage: tail cache", () => {
  it("never evicts entries that are not durable, evicts durable ones to its budget", async () => {
    const dir = newDir();
    const cacheBytes = 4096; // ~23 entries of 100 bytes
    const s = openAt(dir, { voters: [1], cacheBytes });
    const all = ents(1, 500, 1);
    for (let i = 0; i < 500; i += 50) s.append(all.slice(i, i + 50));
    // Nothing is durable yet: everything stays cached and readable.
    expect(s.stats().cacheEntries).toBe(500);
    expect(plain(s.entries(1, 501, ALL))).toEqual(plain(all));
    await s.flush();
    expect(s.stats().cacheBytes).toBeLessThanOrEqual(cacheBytes);
    expect(s.stats().cacheEntries).toBeLessThan(30);
    const d0 = s.stats().diskReads;
    expect(plain(s.entries(1, 501, ALL))).toEqual(plain(all));
    expect(s.stats().diskReads - d0).toBeGreaterThan(450);
    for (let i = 1; i <= 500; i++) expect(s.term(i)).toBe(1);

    // A conflicting suffix starting below the cache (on disk only): reads are right
    // at once, before the write is durable, and after.
    const repl = ents(100, 120, 2);
    s.append(repl);
    expect(s.lastIndex()).toBe(120);
    expectCode(() => s.term(121), "UNAVAILABLE");
    const want = [...all.slice(0, 99), ...repl];
    expect(plain(s.entries(1, 121, ALL))).toEqual(plain(want));
    expect(plain(s.entries(95, 105, ALL))).toEqual(plain(want.slice(94, 104)));
    // maxBytes across the disk/cache boundary.
    expect(s.entries(95, 121, 124 * 7).map((e) => e.index)).toEqual([95, 96, 97, 98, 99, 100, 101]);
    await s.flush();
    expect(plain(s.entries(1, 121, ALL))).toEqual(plain(want));

    // Compaction into the cached range.
    s.compact(110);
    expect(s.firstIndex()).toBe(111);
    expect(plain(s.entries(111, 121, ALL))).toEqual(plain(want.slice(110)));
    await s.close();

    const r = openAt(dir, { cacheBytes });
    expect(r.lastIndex()).toBe(120);
    expect(r.firstIndex()).toBe(111);
    expect(r.term(110)).toBe(2);
    expect(plain(r.entries(111, 121, ALL))).toEqual(plain(want.slice(110)));
  });

  it("keeps reads right under a random mix of appends, truncations and compactions", async () => {
    const s = openAt(newDir(), { voters: [1], cacheBytes: 2000 });
    const model = new Map<number, Entry>();
    let first = 1;
    let last = 0;
    let term = 1;
    let x = 12345;
    const rnd = (k: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % k;
    };
    for (let step = 0; step < 300; step++) {
      const r = rnd(10);
      if (r < 2 && last >= first) {
        const at = first + rnd(last - first + 1);
        term++;
        const es = ents(at, at + rnd(10), term, rnd(200));
        s.append(es);
        for (let i = at; i <= last; i++) model.delete(i);
        for (const e of es) model.set(e.index, e);
        last = at + es.length - 1;
      } else if (r < 3 && last > first + 5) {
        const idx = first + rnd(last - first - 3);
        s.compact(idx);
        for (let i = first; i <= idx; i++) model.delete(i);
        first = idx + 1;
      } else {
        const es = ents(last + 1, last + 1 + rnd(20), term, rnd(200));
        s.append(es);
        for (const e of es) model.set(e.index, e);
        last += es.length;
      }
      expect(s.lastIndex()).toBe(last);
      expect(s.firstIndex()).toBe(first);
      if (last >= first) {
        const want = [];
        for (let i = first; i <= last; i++) want.push(model.get(i)!);
        expect(plain(s.entries(first, last + 1, ALL))).toEqual(plain(want));
      }
      if (rnd(3) === 0) await s.flush();
      else if (rnd(2) === 0) await nextTurn();
    }
  });
});

describe("LmdbStorage: corruption on disk", () => {
  /** A store with entries 1..10 of term 3, closed; returns its dir. */
  async function storeWith10(): Promise<string> {
    const dir = newDir();
    const s = openAt(dir, { voters: [1] });
    s.append(ents(1, 10, 3));
    s.createSnapshot(2, { ...emptyConfState(), voters: [1] }, new Uint8Array([1, 2, 3, 4]));
    await s.close();
    return dir;
  }

  /** Edits the raw `log` and `snap` databases of a closed store. */
  async function tamper(
    dir: string,
    f: (log: ReturnType<typeof rawDb>, snap: ReturnType<typeof rawDb>) => void,
  ): Promise<void> {
    const env = open(dir, { noSubdir: false, maxDbs: 32 });
    f(rawDb(env, "log"), rawDb(env, "snap"));
    await env.close();
  }

  function rawDb(env: ReturnType<typeof open>, name: string) {
    return env.openDB<Uint8Array, number | string>(name, { encoding: "binary" });
  }

  function flip(v: Uint8Array | undefined, at: number): Uint8Array {
    const b = Uint8Array.from(v!);
    b[at] = b[at]! ^ 0x01;
    return b;
  }

  it("throws CORRUPT_ENTRY for a flipped data bit, and serves the rest", async () => {
    const dir = await storeWith10();
    await tamper(dir, (log) => log.putSync(5, flip(log.get(5), 40)));
    const s = openAt(dir);
    expectCode(() => s.entries(1, 11, ALL), "CORRUPT_ENTRY");
    expectCode(() => s.entries(5, 6, ALL), "CORRUPT_ENTRY");
    expectCode(() => s.term(5), "CORRUPT_ENTRY");
    expect(s.entries(1, 5, ALL).map((e) => e.index)).toEqual([1, 2, 3, 4]);
    expect(s.entries(6, 11, ALL).map((e) => e.index)).toEqual([6, 7, 8, 9, 10]);
    // Stops at maxBytes before reaching the bad entry: no error.
    expect(s.entries(3, 11, 124 * 2).map((e) => e.index)).toEqual([3, 4]);
  });

  it("throws CORRUPT_ENTRY for a changed term, type or crc field", async () => {
    for (const at of [1, 2, 6]) {
      const dir = await storeWith10();
      await tamper(dir, (log) => log.putSync(7, flip(log.get(7), at)));
      const s = openAt(dir);
      expectCode(() => s.term(7), "CORRUPT_ENTRY");
      expectCode(() => s.entries(6, 9, ALL), "CORRUPT_ENTRY");
    }
  });

  it("throws CORRUPT_ENTRY for an entry stored under another index", async () => {
    const dir = await storeWith10();
    await tamper(dir, (log) => log.putSync(4, log.get(3)!));
    const s = openAt(dir);
    expectCode(() => s.term(4), "CORRUPT_ENTRY");
    expect(s.term(3)).toBe(3);
  });

  it("throws CORRUPT_ENTRY for a missing or truncated entry", async () => {
    const dir = await storeWith10();
    await tamper(dir, (log) => {
      log.removeSync(6);
      log.putSync(8, log.get(8)!.subarray(0, 5));
    });
    const s = openAt(dir);
    expectCode(() => s.entries(5, 8, ALL), "CORRUPT_ENTRY");
    expectCode(() => s.term(6), "CORRUPT_ENTRY");
    expectCode(() => s.term(8), "CORRUPT_ENTRY");
    expect(s.entries(9, 11, ALL).length).toBe(2);
  });

  it("throws CORRUPT_ENTRY for corrupted snapshot data", async () => {
    const dir = await storeWith10();
    await tamper(dir, (_log, snap) => snap.putSync("data", flip(snap.get("data"), 2)));
    const s = openAt(dir);
    expectCode(() => s.snapshot(), "CORRUPT_ENTRY");
  });
});

describe("LmdbStorage: runtime records (getMeta/putMeta)", () => {
  it("reads its writes at once and keeps them across reopen", async () => {
    const dir = newDir();
    const s = openAt(dir, { voters: [1] });
    expect(s.getMeta("members")).toBeUndefined();
    const v = new Uint8Array([1, 2, 3]);
    s.putMeta("members", v);
    v[0] = 9; // not kept by reference
    expect(Array.from(s.getMeta("members")!)).toEqual([1, 2, 3]);
    s.putMeta("other", new Uint8Array());
    await s.close();
    const r = openAt(dir);
    expect(Array.from(r.getMeta("members")!)).toEqual([1, 2, 3]);
    expect(r.getMeta("other")!.length).toBe(0);
    expect(r.getMeta("hs")).toBeUndefined(); // no clash with the storage's own keys
    r.putMeta("members", new Uint8Array([4]));
    expect(Array.from(r.getMeta("members")!)).toEqual([4]);
  });
});

describe("LmdbStorage: format", () => {
  it("refuses a raftbus 0.1 directory (format 1) with a message that says what to do", async () => {
    const dir = newDir();
    const env = open(dir, { maxDbs: 8 });
    await env.openDB("meta", { encoding: "msgpack" }).put("v", 1);
    await env.close();
    expect(() => LmdbStorage.open(dir)).toThrow(/raftbus 0\.1.*empty --data-dir/);
  });
});
