// The child of the crash test (run with `node --import tsx`): opens the store in
// argv[2] and runs the workload of crash-model.ts with seed argv[3] until it is
// killed, reporting over IPC each turn count that is durable (after flush()).

import { setImmediate as nextTurn } from "node:timers/promises";
import { Prng } from "../../src/raft/prng.ts";
import { LmdbStorage } from "../../src/storage/lmdb-storage.ts";
import { type Io, readModel, turn } from "./crash-model.ts";

const [dir, seedArg] = process.argv.slice(2);
if (!dir || !seedArg || !process.send) throw new Error("usage: crash-child <dir> <seed> (forked with IPC)");
const seed = Number(seedArg);
const send = (msg: unknown) => process.send?.(msg);

const storage = LmdbStorage.open(dir, { voters: [1], cacheBytes: 64 * 1024 });
const io: Io = { storage, sm: storage.env.openDB("sm", { encoding: "msgpack" }) };
const model = readModel(io);
const rng = new Prng(seed);
// Scheduling (turns per flush) has its own PRNG: the parent replays only `rng`.
const sched = new Prng(seed ^ 0x5bd1e995);
send({ type: "ready" });

let turns = 0;
for (;;) {
  const n = 1 + sched.intn(3);
  for (let k = 0; k < n; k++) {
    turn(model, rng, io);
    turns++;
    await nextTurn();
  }
  await storage.flush();
  send({ type: "durable", turns });
}
