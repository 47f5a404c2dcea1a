// A cluster of real `raftbus node` processes whose every peer link goes
// through a LinkProxy, plus the process faults: kill -9, SIGSTOP/SIGCONT,
// graceful restart, power cycle of all nodes, and a full disk (RLIMIT_FSIZE
// lowered on the live process with prlimit, so LMDB's next file extension
// fails with an I/O error).
//
// Composition over ProcCluster: it owns ports, data dirs, spawning and the
// HTTP helpers; this adds the proxies (each node's --peers points at proxies,
// the last --peers flag wins) and the signals. `bin/raftbus.js` registers tsx
// in-process, so the PID ProcCluster spawns IS the node: signals reach it.

import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";
import { ProcCluster } from "../node/proc-cluster.ts";
import { LinkProxy, Network } from "./proxy.ts";

export interface ClusterInfo {
  nodeId: number;
  leaderId: number | null;
  term: number;
  commitIndex: number;
  members: { id: number; role: "voter" | "learner"; raft: string | null; http: string | null }[];
}

/** Every PID this process started, killed on exit even if a test throws or is interrupted. */
const livePids = new Set<number>();
let exitHookInstalled = false;
function killAllStarted(): void {
  for (const pid of livePids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", killAllStarted);
  // A runner stopped by Ctrl-C or SIGTERM (a CI timeout, vitest ending a worker)
  // must not leave nodes behind. (SIGKILL of the runner cannot be caught.)
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.once(sig, () => {
      killAllStarted();
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
}

export class FaultCluster {
  readonly net = new Network();
  /** Proxies by "from>to" (from "*" for a joined node's inbound proxy). */
  private readonly proxies = new Map<string, LinkProxy>();
  /** Nodes currently stopped with SIGSTOP. */
  readonly paused = new Set<number>();
  /** Ids of the current members (voters and learners), as the harness believes. */
  readonly members: Set<number>;
  /** Process exits seen, for reports and the disk-full check. */
  readonly exits: { id: number; code: number | null; signal: string | null; at: number }[] = [];

  private constructor(readonly procs: ProcCluster) {
    this.members = new Set(procs.nodes.keys());
  }

  static async create(size: number, extraArgs: string[] = []): Promise<FaultCluster> {
    installExitHook();
    const procs = await ProcCluster.create({ size, extraArgs });
    const c = new FaultCluster(procs);
    try {
      for (const a of procs.nodes.keys())
        for (const b of procs.nodes.keys()) if (a !== b) await c.proxy(a, b, procs.get(b).raft);
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  private async proxy(from: number | undefined, to: number, port: number): Promise<LinkProxy> {
    const p = new LinkProxy(this.net, from, to, port);
    this.proxies.set(`${from ?? "*"}>${to}`, p);
    await p.listen();
    return p;
  }

  get ids(): number[] {
    return [...this.procs.nodes.keys()];
  }

  url(id: number, path: string): string {
    return this.procs.url(id, path);
  }

  pid(id: number): number | undefined {
    const p = this.procs.get(id).proc;
    return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
  }

  running(id: number): boolean {
    return this.pid(id) !== undefined;
  }

  /** The --peers list of node `id`: every initial voter, each at the proxy for `id -> peer`. */
  private peersArg(id: number): string {
    return this.peersVia(
      id,
      this.ids.filter((peer) => peer <= this.procs.opts.size),
    );
  }

  /** `peers` as a --peers value for node `id`, each at the proxy for `id -> peer`. */
  peersVia(id: number, peers: number[]): string {
    const out: string[] = [];
    for (const peer of peers) {
      const p = peer === id ? undefined : this.proxies.get(`${id}>${peer}`);
      if (p) out.push(`${peer}=127.0.0.1:${p.port}`);
    }
    return out.join(",");
  }

  /** Extra flags each node was first started with (a --join node restarts with --join). */
  private readonly flags = new Map<number, string[]>();

  start(id: number, extra?: string[]): void {
    if (extra) this.flags.set(id, extra);
    this.procs.start(id, ["--peers", this.peersArg(id), ...(this.flags.get(id) ?? [])]);
    const proc = this.procs.get(id).proc!;
    const pid = proc.pid!;
    livePids.add(pid);
    proc.once("exit", (code, signal) => {
      livePids.delete(pid);
      this.paused.delete(id);
      this.exits.push({ id, code, signal, at: Date.now() });
    });
  }

  startAll(): void {
    for (const id of this.ids) if (id <= this.procs.opts.size) this.start(id);
  }

  /** Starts every member that is not running (with its first flags). */
  startStopped(): void {
    for (const id of this.members) if (!this.running(id)) this.start(id);
  }

  /**
   * A node outside the initial voters, to start with --join: its inbound proxy
   * is shared by every dialer (it learns the source from the HELLO); its own
   * --peers go through per-link proxies. Returns the raft address to register.
   */
  async addJoiner(id: number): Promise<string> {
    const n = await this.procs.addNode(id);
    for (const peer of this.ids) if (peer !== id) await this.proxy(id, peer, this.procs.get(peer).raft);
    const inbound = await this.proxy(undefined, id, n.raft);
    return `127.0.0.1:${inbound.port}`;
  }

  httpAddr(id: number): string {
    return `127.0.0.1:${this.procs.get(id).http}`;
  }

  async kill9(id: number): Promise<void> {
    await this.procs.kill(id);
  }

  pause(id: number): void {
    const pid = this.pid(id);
    if (pid === undefined) return;
    process.kill(pid, "SIGSTOP");
    this.paused.add(id);
  }

  resume(id: number): void {
    const pid = this.pid(id);
    this.paused.delete(id);
    if (pid !== undefined) process.kill(pid, "SIGCONT");
  }

  /** Resolves once the node answers /healthz (its SIGTERM handler is installed by then). */
  async waitServing(id: number, timeoutMs = 20_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.running(id)) {
      if ((await this.procs.tryJson(id, "/healthz"))?.status === 200) return true;
      await sleep(100);
    }
    return false;
  }

  /** SIGTERM; a paused node is continued first so it can shut down. */
  async terminate(id: number): Promise<{ code: number | null; ms: number }> {
    if (this.paused.has(id)) this.resume(id);
    return this.procs.terminate(id);
  }

  /** kill -9 of every running node at once. */
  async powerOff(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.procs.kill(id)));
  }

  /**
   * The disk is full from now on: RLIMIT_FSIZE of the live process becomes the
   * current size of its largest LMDB file, so writes within the file still
   * work and the next extension fails (EFBIG/EIO inside lmdb's commit).
   */
  fillDisk(id: number): number {
    const pid = this.pid(id);
    if (pid === undefined) throw new Error(`node ${id} is not running`);
    const size = statSync(join(this.procs.get(id).dataDir, "data.mdb")).size;
    execFileSync("prlimit", ["--pid", String(pid), `--fsize=${size}:${size}`]);
    return size;
  }

  /** The node's recent output (ProcCluster keeps the last chunks). */
  log(id: number): string {
    return this.procs.get(id).log.join("");
  }

  async cluster(id: number, timeoutMs = 1000): Promise<ClusterInfo | undefined> {
    try {
      const res = await fetch(this.url(id, "/v1/cluster"), { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status !== 200) return undefined;
      return (await res.json()) as ClusterInfo;
    } catch {
      return undefined;
    }
  }

  /** The leader as a running, unpaused member sees itself, or undefined. */
  async leader(): Promise<number | undefined> {
    return (await this.leaderTerm())?.id;
  }

  /** The leader (highest term wins) and its term, as live members report themselves. */
  async leaderTerm(): Promise<{ id: number; term: number } | undefined> {
    const live = [...this.members].filter((id) => this.running(id) && !this.paused.has(id));
    const infos = await Promise.all(live.map((id) => this.cluster(id)));
    let best: ClusterInfo | undefined;
    for (const i of infos) if (i && i.leaderId === i.nodeId && (!best || i.term > best.term)) best = i;
    return best ? { id: best.nodeId, term: best.term } : undefined;
  }

  /** Waits (up to timeoutMs) for a leader; undefined if none appeared. */
  async waitLeader(timeoutMs = 30_000): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const l = await this.leader();
      if (l !== undefined) return l;
      await sleep(100);
    }
    return undefined;
  }

  /** Kills every process by PID, closes the proxies and deletes the data. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const id of this.paused) this.resume(id);
    await this.procs.destroy();
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    this.proxies.clear();
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
