// `raftbus dev` (what `npm start` runs): a local cluster in one command. Starts
// one `raftbus node` process per member, waits until they agree on a leader
// (showing progress), prints the URLs and examples, and stops them all cleanly
// on Ctrl-C.

import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { levelNumber, lineSplitter, prettyLine } from "./pretty-log.ts";

const BIN = fileURLToPath(new URL("../../bin/raftbus.js", import.meta.url));
const READY_TIMEOUT_MS = 60_000;

export interface DevOptions {
  dataDir: string;
  nodes: number;
  /** Passed to every node; the terminal shows their lines at this level and above. */
  logLevel?: string;
}

export async function runDev(o: DevOptions): Promise<void> {
  if (!Number.isSafeInteger(o.nodes) || o.nodes < 1 || o.nodes > 9) throw new Error("--nodes must be 1..9");
  const dataDir = resolve(o.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const ids = Array.from({ length: o.nodes }, (_, i) => i + 1);
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  // Node logs go to the terminal, pretty, once the cluster is up (before that
  // the progress line owns it); the files keep every JSON line.
  let showLogs = false;
  const logLevel = o.logLevel ?? "info";
  const pretty = { color: process.stdout.isTTY === true, minLevel: levelNumber(logLevel) };

  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write("\nstopping the cluster...\n");
    const exits = [...children.values()].map(
      (c) => new Promise<void>((r) => (c.exitCode !== null ? r() : c.once("exit", () => r()))),
    );
    for (const c of children.values()) c.kill("SIGTERM");
    const deadline = setTimeout(() => {
      for (const c of children.values()) if (c.exitCode === null) c.kill("SIGKILL");
    }, 12_000);
    await Promise.all(exits);
    clearTimeout(deadline);
    process.stdout.write("stopped.\n");
    process.exit(code);
  };
  process.on("SIGINT", () => void stopAll(0));
  process.on("SIGTERM", () => void stopAll(0));

  for (const id of ids) {
    const peers = ids
      .filter((p) => p !== id)
      .map((p) => `${p}=127.0.0.1:${9090 + p}`)
      .join(",");
    const args = [BIN, "node", "--id", String(id), "--data-dir", join(dataDir, String(id))];
    args.push("--log-level", logLevel);
    args.push("--http", `127.0.0.1:${8080 + id}`, "--raft", `127.0.0.1:${9090 + id}`);
    if (peers) args.push("--peers", peers);
    const logPath = join(dataDir, `node-${id}.log`);
    const logFile = createWriteStream(logPath, { flags: "a" });
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], env: process.env });
    // Decoded as UTF-8 streams, so a character split across chunks stays whole.
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.pipe(logFile);
    child.stderr?.pipe(logFile);
    const toTerminal = lineSplitter((line) => {
      if (!showLogs) return;
      const text = prettyLine(line, id, pretty);
      if (text !== null) process.stdout.write(`${text}\n`);
    });
    child.stdout?.on("data", toTerminal);
    child.stderr?.on("data", toTerminal);
    child.on("exit", (code, signal) => {
      if (!stopping) {
        process.stderr.write(`node ${id} exited (${signal ?? code}); see ${logPath}\n`);
        void stopAll(1);
      }
    });
    children.set(id, child);
  }

  process.stdout.write(`starting ${o.nodes} nodes (data and logs under ${dataDir})\n`);
  const t0 = Date.now();
  let leader: number | null = null;
  let readyCount = 0;
  while (!stopping && Date.now() - t0 < READY_TIMEOUT_MS) {
    const states = await Promise.all(ids.map((id) => probe(8080 + id)));
    const ready = states.filter((s) => s.ready).length;
    readyCount = ready;
    leader = states.find((s) => s.leaderId)?.leaderId ?? null;
    process.stdout.write(`\r  ${ready}/${o.nodes} ready, leader: ${leader ?? "electing..."}   `);
    if (ready === o.nodes) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (stopping) return;
  if (leader === null) {
    process.stderr.write(`\ncluster did not become ready in ${READY_TIMEOUT_MS / 1000} s; see the logs\n`);
    await stopAll(1);
    return;
  }
  if (readyCount < o.nodes) {
    process.stderr.write(
      `\nonly ${readyCount}/${o.nodes} nodes are ready after ${READY_TIMEOUT_MS / 1000} s; ` +
        `the cluster serves while a majority is up; see ${dataDir}/node-<id>.log\n`,
    );
  }
  process.stdout.write(`\n\n${devBanner(o.nodes, leader, (Date.now() - t0) / 1000)}`);
  process.stdout.write(`\nnode logs (${logLevel} and above; JSON in ${dataDir}/node-<id>.log):\n`);
  showLogs = true;
}

/** What `raftbus dev` prints once the cluster is up: the URLs and how to try it. */
export function devBanner(nodes: number, leader: number, seconds: number): string {
  const ids = Array.from({ length: nodes }, (_, i) => i + 1);
  const urls = ids
    .map((id) => `  node ${id}: http://127.0.0.1:${8080 + id}  (raft 127.0.0.1:${9090 + id})`)
    .join("\n");
  // Examples go through different nodes: any node serves everything (followers forward writes).
  const a = "localhost:8081";
  const b = nodes >= 2 ? "localhost:8082" : a;
  const c = nodes >= 3 ? "localhost:8083" : a;
  const json = "-H 'content-type: application/json'";
  return (
    `raftbus dev cluster is up in ${seconds.toFixed(1)} s, leader is node ${leader}\n${urls}\n\n` +
    "Try it with curl:\n" +
    `  curl -XPOST ${a}/v1/topics -d '{"name":"demo"}' ${json}\n` +
    `  curl -XPOST ${b}/v1/topics/demo/records -d '{"records":[{"value":"hello"},{"key":"k1","value":{"n":1}}]}' ${json}\n` +
    `  curl '${c}/v1/topics/demo/partitions/0/records?offset=0'\n` +
    `  curl ${a}/v1/cluster\n\n` +
    "with the CLI (in another terminal; it finds this cluster by default):\n" +
    "  npx raftbus produce demo hello world\n" +
    "  seq 1 100000 | npx raftbus produce demo\n" +
    "  npx raftbus consume demo --from earliest\n" +
    "  npx raftbus topics list; npx raftbus cluster status\n\n" +
    "or over a WebSocket:\n" +
    `  npx wscat -c 'ws://${a}/v1/topics/demo/subscribe?from=earliest'\n\n` +
    "Ctrl-C stops all nodes.\n"
  );
}

async function probe(port: number): Promise<{ ready: boolean; leaderId: number | null }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { ready?: boolean; leaderId?: number | null };
    return { ready: res.status === 200, leaderId: body.leaderId ?? null };
  } catch {
    return { ready: false, leaderId: null };
  }
}
