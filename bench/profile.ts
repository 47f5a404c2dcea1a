// Profiles a 3-node raftbus cluster under produce load: every node runs with
// `node --cpu-prof`, autocannon loads the leader (or all nodes), the nodes stop
// with SIGTERM (which writes the profiles), and the top self-time functions of
// the leader and of a follower are printed.
//
//   npx tsx bench/profile.ts [--per-request 1|100] [--duration 10] [--target leader|all] [--out /tmp/raftbus-prof]

import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ProcCluster } from "../test/node/proc-cluster.ts";
import { onCleanup, parseArgs, produceLoad, runMain, say, trackChild, trackDir } from "./lib.ts";

const args = parseArgs({ rounds: 1, duration: 10 });
const PER = Number(args.extra.get("per-request") ?? 1);
const OUT = args.extra.get("out") ?? "/tmp/raftbus-prof";
const TARGET = args.extra.get("target") ?? "leader";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}

export function topSelf(file: string, n = 25): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as { nodes: Node[]; samples: number[] };
  const total = p.samples.length;
  const byFn = new Map<string, number>();
  for (const node of p.nodes) {
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(node_modules|src)\//, "$1/")}:${f.lineNumber + 1}` : "";
    const k = `${f.functionName || "(anonymous)"} ${where}`;
    byFn.set(k, (byFn.get(k) ?? 0) + node.hitCount);
  }
  return [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
    .join("\n");
}

async function main() {
  rmSync(OUT, { recursive: true, force: true });
  const cluster = await ProcCluster.create({ size: 3 });
  trackDir(cluster.root);
  onCleanup(() => cluster.destroy());
  for (const id of cluster.nodes.keys()) mkdirSync(join(OUT, String(id)), { recursive: true });
  // As ProcCluster.start, with node's --cpu-prof (not allowed in NODE_OPTIONS).
  const bin = fileURLToPath(new URL("../bin/raftbus.js", import.meta.url));
  for (const n of cluster.nodes.values()) {
    const peers = [...cluster.nodes.values()]
      .filter((p) => p.id !== n.id)
      .map((p) => `${p.id}=127.0.0.1:${p.raft}`)
      .join(",");
    n.proc = spawn(
      process.execPath,
      [
        "--cpu-prof",
        `--cpu-prof-dir=${join(OUT, String(n.id))}`,
        bin,
        "node",
        "--id",
        String(n.id),
        "--data-dir",
        n.dataDir,
        "--http",
        `127.0.0.1:${n.http}`,
        "--raft",
        `127.0.0.1:${n.raft}`,
        "--peers",
        peers,
        "--tick-ms",
        "20",
        "--log-level",
        "warn",
      ],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
    trackChild(n.proc);
  }
  const leader = await cluster.waitForLeader();
  const r = await cluster.json(leader, "/v1/topics", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "bench", partitions: 1 }),
  });
  if (r.status !== 201) throw new Error("topic");
  await new Promise((res) => setTimeout(res, 300));
  const urls = [...cluster.nodes.keys()].map((id) => cluster.url(id, "/v1/topics/bench/records"));
  const res = await produceLoad({
    url: TARGET === "leader" ? cluster.url(leader, "/v1/topics/bench/records") : urls,
    connections: 64,
    duration: args.duration,
    perRequest: PER,
    label: `profile, ${PER}/request, ${TARGET}`,
  });
  say(`${Math.round(res.recordsPerSec)} records/s, p50 ${res.p50} ms, errors ${res.errors}`);
  for (const id of cluster.nodes.keys()) await cluster.terminate(id);
  for (const id of [leader, [...cluster.nodes.keys()].find((x) => x !== leader)!]) {
    const dir = join(OUT, String(id));
    const f = readdirSync(dir).find((x) => x.endsWith(".cpuprofile"));
    say(`\n--- node ${id}${id === leader ? " (leader)" : " (follower)"}: ${f ? join(dir, f) : "no profile"}`);
    if (f) say(topSelf(join(dir, f)));
  }
  await cluster.destroy();
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
