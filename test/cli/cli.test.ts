// The CLI end to end: `node bin/raftbus.js topics|produce|consume|cluster`
// against a real 3-node cluster of `raftbus node` processes.

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort, ProcCluster } from "../node/proc-cluster.ts";

const BIN = fileURLToPath(new URL("../../bin/raftbus.js", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let cluster: ProcCluster;
let SERVERS: string;
const live = new Set<ChildProcess>();

beforeAll(async () => {
  cluster = await ProcCluster.create({ size: 3 });
  cluster.startAll();
  await cluster.waitForLeader();
  SERVERS = [1, 2, 3].map((id) => cluster.url(id, "")).join(",");
}, 60_000);

afterEach(async () => {
  // No CLI process outlives its test.
  await Promise.all(
    [...live].map((p) => {
      if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
      const gone = new Promise<void>((r) => p.once("exit", () => r()));
      p.kill("SIGKILL");
      return gone;
    }),
  );
  live.clear();
});

afterAll(async () => {
  await cluster?.destroy();
});

/** Starts the CLI; `done` resolves when it exits (or kills it after timeoutMs). */
function start(args: string[], o: { input?: string; timeoutMs?: number; server?: string } = {}) {
  const withServer = ["--server", o.server ?? SERVERS];
  const proc = spawn(process.execPath, [BIN, ...args, ...withServer], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, RAFTBUS_SERVER: "", RAFTBUS_AUTH_TOKEN: "" },
  });
  live.add(proc);
  const out = { stdout: "", stderr: "" };
  proc.stdout.on("data", (b: Buffer) => {
    out.stdout += b.toString();
  });
  proc.stderr.on("data", (b: Buffer) => {
    out.stderr += b.toString();
  });
  proc.stdin.on("error", () => {});
  if (o.input !== undefined) proc.stdin.end(o.input);
  else proc.stdin.end();
  const timer = setTimeout(() => proc.kill("SIGKILL"), o.timeoutMs ?? 20_000);
  const done = new Promise<Run>((resolve) =>
    proc.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    }),
  );
  return { proc, out, done };
}

const cli = (args: string[], o: { input?: string; timeoutMs?: number; server?: string } = {}) =>
  start(args, o).done;

const lines = (s: string) => s.split("\n").filter((l) => l !== "");

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type FetchBody = { records: { offset: number; key: string | null; value: unknown }[]; endOffset: number };

async function fetchAll(topic: string, partition = 0): Promise<FetchBody["records"]> {
  const out: FetchBody["records"] = [];
  for (;;) {
    const r = await cluster.json<FetchBody>(
      2,
      `/v1/topics/${topic}/partitions/${partition}/records?offset=${out.length}&limit=10000`,
    );
    expect(r.status).toBe(200);
    out.push(...r.body.records);
    if (r.body.records.length === 0 || out.length >= r.body.endOffset) return out;
  }
}

async function createTopic(name: string, partitions = 1): Promise<void> {
  const r = await cli(["topics", "create", name, "--partitions", String(partitions)]);
  expect(r.code, r.stderr).toBe(0);
}

describe("raftbus CLI against a 3-node cluster", () => {
  it("cluster status shows the three members and the leader", async () => {
    const r = await cli(["cluster", "status"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 members \(3 voters\)/);
    const rows = lines(r.stdout).filter((l) => /^\d+\s+voter/.test(l));
    expect(rows).toHaveLength(3);
    expect(rows.filter((l) => /^\d+\s+voter\s+\*/.test(l))).toHaveLength(1);
    for (const id of [1, 2, 3]) expect(r.stdout).toContain(`127.0.0.1:${cluster.get(id).http}`);
    expect(rows.every((l) => l.endsWith("ready"))).toBe(true);

    const j = await cli(["cluster", "status", "--json"]);
    const body = JSON.parse(j.stdout) as { members: { id: number }[]; leaderId: number; term: number };
    expect(body.members.map((m) => m.id).sort()).toEqual([1, 2, 3]);
    expect(body.leaderId).toBeGreaterThan(0);
  });

  it("topics create, list, describe and delete", async () => {
    const c = await cli(["topics", "create", "orders", "--partitions", "3", "--retention-ms", "86400000"]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain('created topic "orders": 3 partitions, retention 1d');

    const dup = await cli(["topics", "create", "orders"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain("TOPIC_EXISTS");
    const quiet = await cli(["topics", "create", "orders", "--if-not-exists"]);
    expect(quiet.code, quiet.stderr).toBe(0);

    const list = await cli(["topics", "list"]);
    expect(list.code, list.stderr).toBe(0);
    expect(lines(list.stdout)[0]).toMatch(/^NAME\s+PARTITIONS\s+RECORDS\s+RETENTION$/);
    expect(list.stdout).toMatch(/^orders\s+3\s+0\s+1d$/m);
    const listJson = JSON.parse((await cli(["topics", "list", "--json"])).stdout) as {
      topics: { name: string }[];
    };
    expect(listJson.topics.map((t) => t.name)).toContain("orders");

    const d = await cli(["topics", "describe", "orders"]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/partitions: 3/);
    expect(d.stdout).toMatch(/^2\s+0\s+0\s+0$/m);
    const dj = JSON.parse((await cli(["topics", "describe", "orders", "--json"])).stdout);
    expect(dj).toEqual({
      name: "orders",
      partitions: [0, 1, 2].map((p) => ({ partition: p, startOffset: 0, endOffset: 0 })),
      retentionMs: 86400000,
      retentionBytes: null,
    });

    const del = await cli(["topics", "delete", "orders"]);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toContain('deleted topic "orders"');
    const gone = await cli(["topics", "describe", "orders"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("TOPIC_NOT_FOUND");
    expect((await cli(["topics", "delete", "orders"])).code).toBe(1);
    expect((await cli(["topics", "delete", "orders", "--if-exists"])).code).toBe(0);
  });

  it("produces from arguments and consume --from earliest --max-messages prints them", async () => {
    await createTopic("args");
    const p = await cli(["produce", "args", "hello", "world"]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toContain("produced 2 records to args");
    const pj = await cli(["produce", "args", "--json", "--key", "k1", '{"n":1}', "[1,2]"]);
    expect(pj.code, pj.stderr).toBe(0);

    expect((await fetchAll("args")).map((r) => [r.key, r.value])).toEqual([
      [null, "hello"],
      [null, "world"],
      ["k1", { n: 1 }],
      ["k1", [1, 2]],
    ]);

    const c = await cli(["consume", "args", "--from", "earliest", "--max-messages", "4"]);
    expect(c.code, c.stderr).toBe(0);
    expect(lines(c.stdout)).toEqual(["hello", "world", '{"n":1}', "[1,2]"]);

    const c2 = await cli([
      "consume",
      "args",
      "--from",
      "2",
      "--max-messages",
      "2",
      "--print-offset",
      "--print-key",
    ]);
    expect(c2.code, c2.stderr).toBe(0);
    expect(lines(c2.stdout)).toEqual([
      'Partition:0\tOffset:2\tk1\t{"n":1}',
      "Partition:0\tOffset:3\tk1\t[1,2]",
    ]);
  });

  it("produces 5,000 lines from stdin in order, and consume prints them all", async () => {
    await createTopic("bulk");
    const input = Array.from({ length: 5000 }, (_, i) => `line-${i}`);
    const p = await cli(["produce", "bulk"], { input: `${input.join("\n")}\n` });
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/produced 5000 records to bulk in [\d.]+ s/);

    const stored = await fetchAll("bulk");
    expect(stored.map((r) => r.offset)).toEqual(input.map((_, i) => i));
    expect(stored.map((r) => r.value)).toEqual(input);

    const c = await cli(["consume", "bulk", "--from", "earliest", "--max-messages", "5000"]);
    expect(c.code, c.stderr).toBe(0);
    expect(lines(c.stdout)).toEqual(input);
  });

  it("routes keyed lines (--key-separator) by key and consumes every partition", async () => {
    await createTopic("keyed", 3);
    const input = Array.from({ length: 60 }, (_, i) => `user-${i % 6}\t${i}`).join("\n");
    const p = await cli(["produce", "keyed", "--key-separator", "\t", "--json"], { input });
    expect(p.code, p.stderr).toBe(0);
    const c = await cli(["consume", "keyed", "--from", "earliest", "--max-messages", "60", "--print-key"]);
    expect(c.code, c.stderr).toBe(0);
    const got = lines(c.stdout).map((l) => l.split("\t") as [string, string]);
    expect(got).toHaveLength(60);
    expect(got.map(([, v]) => Number(v)).sort((a, b) => a - b)).toEqual([...Array(60).keys()]);
    // One key, one partition, and within it the input order.
    for (let u = 0; u < 6; u++) {
      const values = got.filter(([k]) => k === `user-${u}`).map(([, v]) => Number(v));
      expect(values).toEqual(Array.from({ length: 10 }, (_, j) => u + 6 * j));
    }
    const parts = await Promise.all([0, 1, 2].map((pt) => fetchAll("keyed", pt)));
    for (const recs of parts) {
      for (const k of new Set(recs.map((r) => r.key)))
        for (const other of parts) if (other !== recs) expect(other.some((r) => r.key === k)).toBe(false);
    }
  });

  it("consume --group resumes where the last consumer of the group stopped", async () => {
    await createTopic("grouped");
    const values = Array.from({ length: 10 }, (_, i) => `v${i}`);
    expect((await cli(["produce", "grouped", ...values])).code).toBe(0);

    const a = await cli(["consume", "grouped", "--group", "g1", "--from", "earliest", "--max-messages", "4"]);
    expect(a.code, a.stderr).toBe(0);
    expect(lines(a.stdout)).toEqual(values.slice(0, 4));

    const b = await cli(["consume", "grouped", "--group", "g1", "--max-messages", "3"]);
    expect(b.code, b.stderr).toBe(0);
    expect(lines(b.stdout)).toEqual(values.slice(4, 7));

    const offsets = await cluster.json<{ offsets: { topic: string; partition: number; offset: number }[] }>(
      3,
      "/v1/groups/g1/offsets",
    );
    expect(offsets.body.offsets).toContainEqual(
      expect.objectContaining({ topic: "grouped", partition: 0, offset: 7 }),
    );

    // A follower stopped with Ctrl-C commits what it printed, and the next one goes on from there.
    const c = start(["consume", "grouped", "--group", "g1"]);
    await waitFor("3 records", () => lines(c.out.stdout).length >= 3);
    expect((await cli(["produce", "grouped", "v10", "v11"])).code).toBe(0);
    await waitFor("5 records", () => lines(c.out.stdout).length >= 5);
    c.proc.kill("SIGINT");
    const cr = await c.done;
    expect(cr.code, cr.stderr).toBe(0);
    expect(lines(cr.stdout)).toEqual([...values.slice(7), "v10", "v11"]);
    expect(cr.stderr).toContain("Processed a total of 5 messages");

    expect((await cli(["produce", "grouped", "v12"])).code).toBe(0);
    const d = await cli(["consume", "grouped", "--group", "g1", "--timeout-ms", "1500"]);
    expect(d.code, d.stderr).toBe(0);
    expect(lines(d.stdout)).toEqual(["v12"]);
  });

  it("reports permanent errors with the API's message and a non-zero exit code", async () => {
    const p = await cli(["produce", "no-such-topic", "x"]);
    expect(p.code).toBe(1);
    expect(p.stderr).toMatch(/produce failed: TOPIC_NOT_FOUND: .*no-such-topic/);

    await createTopic("small");
    expect((await cli(["produce", "small", "a"])).code).toBe(0);
    const c = await cli(["consume", "small", "--from", "5", "--max-messages", "1"]);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/out of range.*0\.\.1/);

    const bad = await cli(["produce", "small", "--json"], { input: '{"ok":1}\n{broken\n' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/line 2: not valid JSON/);
    expect(bad.stderr).toMatch(/after 1 record was appended/);
    const stored = await fetchAll("small");
    expect(stored.map((r) => r.value)).toEqual(["a", { ok: 1 }]);

    const usage = await cli(["produce", "small", "--partition", "x", "v"]);
    expect(usage.code).not.toBe(0);
  });

  it("fails over: a dead first server, then the node a consumer follows is killed", async () => {
    await createTopic("failover");
    const dead = `http://127.0.0.1:${await freePort()}`;
    const p = await cli(["produce", "failover", "a0", "a1"], { server: `${dead},${SERVERS}` });
    expect(p.code, p.stderr).toBe(0);

    // The consumer follows through node 1 (first in its list); kill -9 node 1 mid-stream.
    const c = start(["consume", "failover", "--from", "earliest", "--max-messages", "600"]);
    await waitFor("the first records", () => lines(c.out.stdout).length >= 2);
    const first = Array.from({ length: 300 }, (_, i) => `b${i}`);
    const via23 = [2, 3].map((id) => cluster.url(id, "")).join(",");
    expect((await cli(["produce", "failover"], { input: first.join("\n"), server: via23 })).code).toBe(0);
    await waitFor("300 records", () => lines(c.out.stdout).length >= 300);
    await cluster.kill(1);
    const second = Array.from({ length: 298 }, (_, i) => `c${i}`);
    const p2 = await cli(["produce", "failover"], {
      input: second.join("\n"),
      server: via23,
      timeoutMs: 30_000,
    });
    expect(p2.code, p2.stderr).toBe(0);
    const r = await c.done;
    expect(r.code, r.stderr).toBe(0);
    // Every record once, in order: no gap and no repeat across the reconnect.
    expect(lines(r.stdout)).toEqual(["a0", "a1", ...first, ...second]);
    expect(r.stderr).toMatch(/resum/);
  });
});
