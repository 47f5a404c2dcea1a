// Crash consistency with real processes: a child runs a seeded workload on an
// LmdbStorage (appends, conflicting-suffix truncations, hard state, applying to a
// state machine sub-db in the same turn, snapshots, compactions) and reports each
// durable point; the parent kill -9s it at a random moment, reopens the store and
// checks it is exactly the state after some turn at or after the last durable
// point (each turn is one transaction), by replaying the workload on a model.
// Several lives per directory: each child continues from the recovered state.
//
// CRASH_SEED=<n> reruns a given seed (kill timing still varies); CRASH_VERBOSE=1
// prints, per life, the durable turn count and how many turns past it the store
// was recovered at.

import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Prng } from "../../src/raft/prng.ts";
import { LmdbStorage } from "../../src/storage/lmdb-storage.ts";
import {
  cloneModel,
  diffModels,
  type Io,
  initialModel,
  lastOf,
  type Model,
  readModel,
  turn,
} from "./crash-model.ts";

const CHILD = fileURLToPath(new URL("./crash-child.ts", import.meta.url));
const DIRS = 12;
const LIVES = 3;
const PARALLEL = 2;
/** How many turns past the last durable report the child may have written. */
const MAX_EXTRA_TURNS = 20_000;

const baseSeed = process.env.CRASH_SEED ? Number(process.env.CRASH_SEED) : (Date.now() % 1_000_000_000) + 1;
const root = mkdtempSync(join(tmpdir(), "raftbus-crash-"));
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Life {
  /** Turns the child reported durable (a lower bound of what must survive). */
  durable: number;
  /** The turn the recovered store was found to be at. */
  matchedTurn?: number;
  stderr: string;
}

/** Runs the child on `dir` and kills it `killAfterMs` after it is ready. */
function runChild(dir: string, seed: number, killAfterMs: number): Promise<Life> {
  return new Promise((resolve, reject) => {
    const child = fork(CHILD, [dir, String(seed)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    children.add(child);
    const life: Life = { durable: 0, stderr: "" };
    let killed = false;
    child.stderr?.on("data", (d: Buffer) => {
      life.stderr += d.toString();
    });
    child.on("message", (m: { type: string; turns?: number }) => {
      if (m.type === "ready") {
        setTimeout(() => {
          killed = true;
          child.kill("SIGKILL");
        }, killAfterMs);
      } else if (m.type === "durable" && m.turns !== undefined) {
        life.durable = m.turns;
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      children.delete(child);
      if (killed && signal === "SIGKILL") resolve(life);
      else reject(new Error(`child exited by itself (code ${code}, signal ${signal}):\n${life.stderr}`));
    });
  });
}

async function readStore(dir: string): Promise<Model> {
  const storage = LmdbStorage.open(dir, { voters: [1] });
  try {
    const io: Io = { storage, sm: storage.env.openDB("sm", { encoding: "msgpack" }) };
    return readModel(io);
  } finally {
    await storage.close();
  }
}

/**
 * Checks the recovered store against the workload replayed from `start`: returns
 * the model of the matching turn (the next life starts from it).
 */
function check(start: Model, seed: number, life: Life, got: Model, where: string): Model {
  const m = cloneModel(start);
  const rng = new Prng(seed);
  for (let t = 0; t < life.durable; t++) turn(m, rng);
  const durable = cloneModel(m);

  // Direct checks against the last durable point, for readable failures.
  expect(got.term, `${where}: term went back from ${durable.term}`).toBeGreaterThanOrEqual(durable.term);
  expect(got.commit, `${where}: commit went back`).toBeGreaterThanOrEqual(durable.commit);
  expect(got.applied, `${where}: applied went back`).toBeGreaterThanOrEqual(durable.applied);
  for (let i = Math.max(got.first, durable.first); i <= Math.min(durable.commit, lastOf(durable)); i++) {
    const want = durable.log[i - durable.first]!;
    const have = got.log[i - got.first];
    expect(have, `${where}: durable committed entry ${i} missing`).toBeDefined();
    expect(have, `${where}: durable committed entry ${i} changed`).toEqual(want);
  }

  // Exact check: the store is the state after some turn >= durable.
  for (let t = life.durable; t <= life.durable + MAX_EXTRA_TURNS; t++) {
    if (diffModels(m, got) === null) {
      life.matchedTurn = t;
      return m;
    }
    turn(m, rng);
  }
  throw new Error(
    `${where}: recovered store matches no turn >= ${life.durable}; vs durable: ${diffModels(durable, got)}`,
  );
}

describe("crash consistency (kill -9)", () => {
  it(`survives ${DIRS * LIVES} kills at random moments (base seed ${baseSeed})`, async () => {
    const rng = new Prng(baseSeed);
    const jobs = Array.from({ length: DIRS }, (_, d) => ({
      d,
      seeds: Array.from({ length: LIVES }, () => rng.nextU32()),
      delays: Array.from({ length: LIVES }, () => 5 + rng.intn(rng.intn(4) === 0 ? 600 : 150)),
    }));
    const stats: string[] = [];
    const runDir = async (job: (typeof jobs)[number]) => {
      const dir = join(root, `d${job.d}`);
      let model = initialModel();
      for (let l = 0; l < LIVES; l++) {
        const seed = job.seeds[l]!;
        const where = `base seed ${baseSeed}, dir ${job.d}, life ${l} (seed ${seed}, kill after ${job.delays[l]} ms)`;
        const life = await runChild(dir, seed, job.delays[l]!).catch((e: Error) => {
          throw new Error(`${where}: ${e.message}`);
        });
        const got = await readStore(dir);
        model = check(model, seed, life, got, where);
        stats.push(
          `${job.d}/${l}: durable ${life.durable} turns, recovered at +${life.matchedTurn! - life.durable}, last ${lastOf(got)}, applied ${got.applied}`,
        );
      }
    };
    const queue = [...jobs];
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        for (let job = queue.shift(); job; job = queue.shift()) await runDir(job);
      }),
    );
    if (process.env.CRASH_VERBOSE) console.log(stats.join("\n"));
    expect(stats.length).toBe(DIRS * LIVES);
    // Most lives got somewhere (a kill before the first durable point proves little).
    const progressed = stats.filter((s) => !s.includes("durable 0 turns")).length;
    expect(progressed, stats.join("\n")).toBeGreaterThan((DIRS * LIVES) / 2);
  }, 120_000);
});
