// The segment store on real LMDB files: batches as the unit of storage,
// offsets inside batches, determinism across replicas, the snapshot stream
// (only what is missing, staged and swapped), retention and the sweeper.

import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { open, type RootDatabase } from "lmdb";
import { afterAll, describe, expect, it } from "vitest";
import { encodePayload, verifyBatch } from "../../src/broker/batch.ts";
import { encodeRequest, prepareCommand, type Request } from "../../src/broker/commands.ts";
import { type ApplyResult, BrokerState } from "../../src/broker/state.ts";
import { Sweeper } from "../../src/broker/sweeper.ts";
import type { RecordIn, SectionPosition } from "../../src/broker/types.ts";

const root = mkdtempSync(join(tmpdir(), "raftbus-segments-"));
const envs: RootDatabase[] = [];
let dirs = 0;
afterAll(async () => {
  for (const e of envs) await e.close();
  rmSync(root, { recursive: true, force: true });
});

function openEnv(dir = join(root, `n${dirs++}`)): { env: RootDatabase; dir: string } {
  const env = open(dir, { maxDbs: 16 });
  envs.push(env);
  return { env, dir };
}

function newState(): { state: BrokerState; env: RootDatabase; dir: string } {
  const { env, dir } = openEnv();
  return { state: new BrokerState(env), env, dir };
}

const T0 = 1_700_000_000_000;

/** A replica's log: commands with their index and leader timestamp. */
class Log {
  index = 0;
  readonly entries: Uint8Array[] = [];
  cmd(r: Request, ts = T0 + this.index): Uint8Array {
    const c = prepareCommand(encodeRequest(r), ts);
    this.entries.push(c);
    return c;
  }
}

function apply(state: BrokerState, log: Log, r: Request, ts?: number): ApplyResult {
  const c = log.cmd(r, ts);
  log.index++;
  return state.apply(state.appliedIndex() + 1, c);
}

function rec(value: string, extra: Partial<RecordIn> = {}): RecordIn {
  return { key: null, value: new TextEncoder().encode(value), json: false, headers: {}, ...extra };
}

function produceReq(topic: string, partition: number, values: string[], topicId = 0): Request {
  return {
    t: "produce",
    topic,
    topicId,
    sections: [{ partition, records: values.map((v) => rec(v)) }],
  };
}

function create(state: BrokerState, log: Log, name: string, partitions = 1): void {
  const r = apply(state, log, { t: "create", name, partitions, retentionMs: null, retentionBytes: null });
  expect(r.ok).toBe(true);
}

function produce(state: BrokerState, log: Log, topic: string, p: number, values: string[], ts?: number) {
  const r = apply(state, log, produceReq(topic, p, values), ts);
  if (!r.ok) throw new Error(r.message);
  return r.value as SectionPosition[];
}

const text = (v: Uint8Array) => new TextDecoder().decode(v);

/** Every stored batch, in key order, as hex key -> sha256 of the value. */
async function batchDigest(state: BrokerState): Promise<string[]> {
  await state.env.flushed;
  const out: string[] = [];
  for (const { key, value } of state.batches.getRange()) {
    out.push(
      `${(key as Buffer).toString("hex")}=${createHash("sha256").update(value).digest("hex").slice(0, 16)}`,
    );
  }
  return out;
}

async function settle(state: BrokerState): Promise<void> {
  // One more write so that every earlier one has committed.
  await state.env.put("__settle", Date.now());
}

describe("batches: one value per produce request and partition", () => {
  it("stores one batch per section, each record at its own offset", async () => {
    const { state } = newState();
    const log = new Log();
    create(state, log, "t", 2);
    const res = apply(state, log, {
      t: "produce",
      topic: "t",
      topicId: 0,
      sections: [
        { partition: 0, records: ["a", "b", "c"].map((v) => rec(v)) },
        { partition: 1, records: [rec("z", { key: "k", headers: { h: "v", "h-2": "é" } })] },
      ],
    });
    expect(res.ok).toBe(true);
    expect(res.ok && res.value).toEqual([
      { partition: 0, baseOffset: 0, count: 3, timestamp: expect.any(Number) },
      { partition: 1, baseOffset: 0, count: 1, timestamp: expect.any(Number) },
    ]);
    // Readable before the write commits (the overlay) and after.
    expect(state.read("t", 0, 0, 10).map((r) => text(r.value))).toEqual(["a", "b", "c"]);
    await settle(state);
    expect(state.read("t", 0, 0, 10).map((r) => text(r.value))).toEqual(["a", "b", "c"]);
    expect(state.read("t", 1, 0, 10)[0]).toMatchObject({ key: "k", headers: { h: "v", "h-2": "é" } });
    expect([...state.batches.getKeys()].length).toBe(2);
    for (const { key, value } of state.batches.getRange()) {
      expect(verifyBatch(value, (key as Buffer).readUInt32BE(12))).toBeUndefined();
    }
  });

  it("a produce is all or nothing: a bad partition or a malformed batch appends nothing", () => {
    const { state } = newState();
    const log = new Log();
    create(state, log, "t", 1);
    const good = encodePayload([rec("a")]);
    const bad = apply(state, log, {
      t: "produce",
      topic: "t",
      topicId: 0,
      sections: [
        { partition: 0, count: 1, payload: good },
        { partition: 5, count: 1, payload: good },
      ],
    });
    expect(bad).toMatchObject({ ok: false, code: "PARTITION_NOT_FOUND" });
    const torn = apply(state, log, {
      t: "produce",
      topic: "t",
      topicId: 0,
      sections: [{ partition: 0, count: 2, payload: good }],
    });
    expect(torn).toMatchObject({ ok: false, code: "INVALID_REQUEST" });
    expect(state.bounds("t", 0)).toMatchObject({ start: 0, end: 0 });
  });

  it("a produce for a re-created topic's old id is TOPIC_NOT_FOUND", () => {
    const { state } = newState();
    const log = new Log();
    create(state, log, "t");
    const oldId = state.topicId("t")!;
    apply(state, log, { t: "delete", name: "t" });
    create(state, log, "t");
    expect(apply(state, log, produceReq("t", 0, ["x"], oldId))).toMatchObject({
      ok: false,
      code: "TOPIC_NOT_FOUND",
    });
    expect(apply(state, log, produceReq("t", 0, ["x"], state.topicId("t")!)).ok).toBe(true);
  });
});

describe("offsets inside batches", () => {
  async function threeBatches() {
    const { state } = newState();
    const log = new Log();
    create(state, log, "t");
    produce(state, log, "t", 0, ["0", "1", "2", "3"], T0 + 1000); // offsets 0-3
    produce(state, log, "t", 0, ["4", "5", "6"], T0 + 2000); // 4-6
    produce(state, log, "t", 0, ["7", "8", "9", "10", "11"], T0 + 3000); // 7-11
    await settle(state);
    return { state, log };
  }

  it("fetch at the first, a middle and the last record of a batch, and at the end", async () => {
    const { state } = await threeBatches();
    const vals = (o: number, limit = 100) => state.read("t", 0, o, limit).map((r) => text(r.value));
    expect(vals(4, 1)).toEqual(["4"]); // first of batch 2
    expect(vals(5)).toEqual(["5", "6", "7", "8", "9", "10", "11"]); // middle, across batches
    expect(vals(6, 2)).toEqual(["6", "7"]); // last of batch 2, into batch 3
    expect(vals(11)).toEqual(["11"]); // last record
    expect(vals(12)).toEqual([]); // the end
    expect(state.read("t", 0, 5, 100).map((r) => r.offset)).toEqual([5, 6, 7, 8, 9, 10, 11]);
    // maxBytes stops inside a batch, and the next read goes on from there.
    expect(state.read("t", 0, 0, 100, 2).map((r) => r.offset)).toEqual([0, 1]);
  });

  it("offset by timestamp at batch edges", async () => {
    const { state } = await threeBatches();
    expect(state.offsetForTimestamp("t", 0, 0)).toBe(0);
    expect(state.offsetForTimestamp("t", 0, T0 + 1000)).toBe(0);
    expect(state.offsetForTimestamp("t", 0, T0 + 1001)).toBe(4);
    expect(state.offsetForTimestamp("t", 0, T0 + 2000)).toBe(4);
    expect(state.offsetForTimestamp("t", 0, T0 + 3000)).toBe(7);
    expect(state.offsetForTimestamp("t", 0, T0 + 3001)).toBe(12);
    expect(state.timestampAt("t", 0, 6)).toBe(T0 + 2000);
    expect(state.timestampAt("t", 0, 7)).toBe(T0 + 3000);
  });

  it("a retention start in the middle of a batch hides the records before it", async () => {
    const { state, log } = await threeBatches();
    const r = apply(state, log, { t: "trim", topic: "t", partition: 0, from: 0, before: 5, bytes: 0 });
    expect(r).toEqual({ ok: true, value: 5 });
    expect(state.read("t", 0, 0, 3).map((x) => x.offset)).toEqual([5, 6, 7]);
    expect(state.offsetForTimestamp("t", 0, 0)).toBe(5);
    // A stale trim (its `from` is no longer the start) does nothing.
    expect(apply(state, log, { t: "trim", topic: "t", partition: 0, from: 0, before: 9, bytes: 0 })).toEqual({
      ok: true,
      value: 5,
    });
  });
});

describe("determinism", () => {
  it("two fresh replicas fed the same log hold byte-identical batches", async () => {
    const a = newState();
    const b = newState();
    const log = new Log();
    create(a.state, log, "x", 3);
    create(a.state, log, "y", 1);
    for (let i = 0; i < 50; i++) {
      const values = Array.from({ length: 1 + (i % 7) }, (_, j) => `v${i}-${j}`);
      produce(a.state, log, i % 2 ? "x" : "y", i % 2 ? i % 3 : 0, values);
    }
    apply(a.state, log, { t: "trim", topic: "y", partition: 0, from: 0, before: 10, bytes: 0 });
    for (let i = 0; i < log.entries.length; i++) b.state.apply(i + 1, log.entries[i]!);
    const da = await batchDigest(a.state);
    const db = await batchDigest(b.state);
    expect(da.length).toBe(50);
    expect(db).toEqual(da);
    expect(b.state.describe("x")).toEqual(a.state.describe("x"));
  });
});

/** Runs a whole stream from `leader` into `follower` and restores it. */
async function stream(leader: BrokerState, follower: BrokerState, chunkBytes = 64 * 1024) {
  await leader.env.flushed;
  await settle(leader);
  const src = leader.openSnapshotSource(follower.haveVector());
  const inst = follower.openInstaller();
  let chunks = 0;
  for (let c = src.next(chunkBytes); c; c = src.next(chunkBytes)) {
    inst.write(c);
    chunks++;
  }
  src.close();
  const token = inst.finish();
  follower.restore(token, src.index);
  await settle(follower);
  return { stats: src.stats, chunks };
}

async function expectSameData(a: BrokerState, b: BrokerState, topics: string[]) {
  for (const t of topics) {
    expect(b.describe(t)).toEqual(a.describe(t));
    const info = a.describe(t)!;
    for (const p of info.partitions) {
      const ra = a
        .read(t, p.partition, p.startOffset, 100_000)
        .map((r) => [r.offset, r.timestamp, text(r.value)]);
      const rb = b
        .read(t, p.partition, p.startOffset, 100_000)
        .map((r) => [r.offset, r.timestamp, text(r.value)]);
      expect(rb).toEqual(ra);
    }
  }
}

describe("snapshot stream", () => {
  function leaderWithData() {
    const { state } = newState();
    const log = new Log();
    create(state, log, "a", 2);
    create(state, log, "b", 1);
    for (let i = 0; i < 40; i++) {
      const b = i % 3 === 2;
      produce(state, log, b ? "b" : "a", b ? 0 : i % 2, [`r${i}`, `s${i}`, `t${i}`]);
    }
    apply(state, log, { t: "commit", group: "g", topic: "a", partition: 0, offset: 5 });
    return { state, log };
  }

  it("an empty follower receives the state and every batch, and then applies the log from there", async () => {
    const leader = leaderWithData();
    const f = newState();
    const { stats } = await stream(leader.state, f.state);
    expect(f.state.appliedIndex()).toBe(leader.state.appliedIndex());
    await expectSameData(leader.state, f.state, ["a", "b"]);
    expect(f.state.groupOffset("g", "a", 0)).toBe(5);
    expect(stats.batches).toBe(40);
    expect(await batchDigest(f.state)).toEqual(await batchDigest(leader.state));
    // The follower continues with the log's next entries.
    produce(leader.state, leader.log, "a", 0, ["next"]);
    f.state.apply(leader.state.appliedIndex(), leader.log.entries.at(-1)!);
    expect(await batchDigest(f.state)).toEqual(await batchDigest(leader.state));
  });

  it("a follower that has a prefix receives only the batches it lacks", async () => {
    const leader = leaderWithData();
    const f = newState();
    // The follower applied the first 20 entries of the same log.
    for (let i = 0; i < 20; i++) f.state.apply(i + 1, leader.log.entries[i]!);
    const lacking = (await batchDigest(leader.state)).length - (await batchDigest(f.state)).length;
    const { stats } = await stream(leader.state, f.state);
    expect(stats.batches).toBe(lacking);
    await expectSameData(leader.state, f.state, ["a", "b"]);
  });

  it("an install cut short (kill -9) leaves the old state, and the retry resumes from the staged batches", async () => {
    const leader = leaderWithData();
    const f = newState();
    for (let i = 0; i < 5; i++) f.state.apply(i + 1, leader.log.entries[i]!);
    await settle(leader.state);
    const before = f.state.describe("a");
    const src = leader.state.openSnapshotSource(f.state.haveVector());
    const inst = f.state.openInstaller();
    let sent = 0;
    for (let c = src.next(2048); c && sent < 6; c = src.next(2048)) {
      inst.write(c);
      sent++;
    }
    src.close();
    await settle(f.state);
    // "Crash": reopen the follower's files.
    await f.env.close();
    const reopened = openEnv(f.dir);
    const f2 = new BrokerState(reopened.env);
    expect(f2.appliedIndex()).toBe(5);
    expect(f2.describe("a")).toEqual(before);
    const full = (await batchDigest(leader.state)).length - 5;
    const { stats } = await stream(leader.state, f2);
    expect(stats.batches).toBeLessThan(full);
    await expectSameData(leader.state, f2, ["a", "b"]);
    expect(await batchDigest(f2)).toEqual(await batchDigest(leader.state));
  });

  it("a restore survives a restart: the flipped generation is the live one", async () => {
    const leader = leaderWithData();
    const f = newState();
    await stream(leader.state, f.state);
    await f.env.close();
    const f2 = new BrokerState(openEnv(f.dir).env);
    expect(f2.appliedIndex()).toBe(leader.state.appliedIndex());
    await expectSameData(leader.state, f2, ["a", "b"]);
  });

  it("a corrupt batch in a chunk is refused, never staged", async () => {
    const leader = leaderWithData();
    const f = newState();
    await settle(leader.state);
    const src = leader.state.openSnapshotSource(f.state.haveVector());
    const inst = f.state.openInstaller();
    let refused = false;
    for (let c = src.next(4096); c; c = src.next(4096)) {
      if (c[0] === 2) {
        const bad = Uint8Array.from(c);
        bad[bad.length - 3]! ^= 0x10;
        expect(() => inst.write(bad)).toThrow(/checksum/);
        refused = true;
        break;
      }
      inst.write(c);
    }
    src.close();
    expect(refused).toBe(true);
    expect(() => inst.finish()).toThrow();
  });
});

describe("retention and the sweeper", () => {
  it("trims move the start in O(1); the sweeper deletes the batches below it, and a deleted topic's", async () => {
    const { state, log } = (() => {
      const s = newState();
      return { ...s, log: new Log() };
    })();
    create(state, log, "t");
    create(state, log, "gone");
    for (let i = 0; i < 30; i++) produce(state, log, "t", 0, [`a${i}`, `b${i}`]);
    for (let i = 0; i < 10; i++) produce(state, log, "gone", 0, [`g${i}`]);
    await settle(state);
    const point = state.retentionPoint("t", 0, null, state.bounds("t", 0)!.bytes / 3)!;
    expect(point.before % 2).toBe(0); // whole batches
    apply(state, log, { t: "trim", topic: "t", partition: 0, ...point });
    apply(state, log, { t: "delete", name: "gone" });
    expect(state.bounds("t", 0)!.start).toBe(point.before);
    const sweeper = new Sweeper(state, { maxKeysPerTurn: 7 });
    const keysBefore = [...state.batches.getKeys()].length;
    let removed = 0;
    for (let turn = 0; turn < 20; turn++) {
      removed += sweeper.turn();
      await settle(state);
    }
    expect(removed).toBe(point.before / 2 + 10);
    expect([...state.batches.getKeys()].length).toBe(keysBefore - removed);
    expect(state.read("t", 0, point.before, 1000).length).toBe(60 - point.before);
    expect(sweeper.busy()).toBe(false);
  });

  it("the sweeper waits while a snapshot source is open", async () => {
    const { state } = newState();
    const log = new Log();
    create(state, log, "t");
    for (let i = 0; i < 5; i++) produce(state, log, "t", 0, [`a${i}`]);
    await settle(state);
    const src = state.openSnapshotSource(new Uint8Array());
    apply(state, log, { t: "trim", topic: "t", partition: 0, from: 0, before: 3, bytes: 0 });
    const sweeper = new Sweeper(state);
    expect(sweeper.turn()).toBe(0);
    src.close();
    expect(sweeper.turn()).toBe(3);
  });

  it("retention by time trims the records older than the cutoff", async () => {
    const { state } = newState();
    const log = new Log();
    create(state, log, "t");
    produce(state, log, "t", 0, ["old1", "old2"], T0);
    produce(state, log, "t", 0, ["new"], T0 + 10_000);
    await settle(state);
    expect(state.retentionPoint("t", 0, T0 + 5_000, null)).toMatchObject({ from: 0, before: 2 });
    expect(state.retentionPoint("t", 0, T0 - 1, null)).toBeUndefined();
  });
});

describe("format", () => {
  it("refuses a store of another format with a message that says so", async () => {
    const { env, dir } = openEnv();
    new BrokerState(env);
    await env.openDB("broker.meta", { encoding: "msgpack" }).put("format", 1);
    await env.close();
    const again = openEnv(dir);
    expect(() => new BrokerState(again.env)).toThrow(/format 1/);
  });
});
