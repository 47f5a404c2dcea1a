// Real `raftbus node` processes on loopback for multi-process tests: free ports,
// spawn, kill -9, restart from the same data dir, and cleanup that always runs.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/raftbus.js", import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface ProcNode {
  id: number;
  http: number;
  raft: number;
  dataDir: string;
  proc: ChildProcess | undefined;
  log: string[];
}

export interface ProcClusterOptions {
  size: number;
  extraArgs?: string[];
  env?: Record<string, string>;
}

export class ProcCluster {
  readonly nodes = new Map<number, ProcNode>();
  readonly root: string;

  private constructor(
    readonly opts: ProcClusterOptions,
    root: string,
  ) {
    this.root = root;
  }

  static async create(opts: ProcClusterOptions): Promise<ProcCluster> {
    const c = new ProcCluster(opts, mkdtempSync(join(tmpdir(), "raftbus-test-")));
    for (let id = 1; id <= opts.size; id++) {
      c.nodes.set(id, {
        id,
        http: await freePort(),
        raft: await freePort(),
        dataDir: join(c.root, String(id)),
        proc: undefined,
        log: [],
      });
    }
    return c;
  }

  /** Allocates ports and a data dir for a node outside the initial voters (to start with --join). */
  async addNode(id: number): Promise<ProcNode> {
    const n: ProcNode = {
      id,
      http: await freePort(),
      raft: await freePort(),
      dataDir: join(this.root, String(id)),
      proc: undefined,
      log: [],
    };
    this.nodes.set(id, n);
    return n;
  }

  url(id: number, path: string): string {
    return `http://127.0.0.1:${this.get(id).http}${path}`;
  }

  get(id: number): ProcNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Starts a node; `env` adds variables for this start only. */
  start(id: number, extra: string[] = [], env: Record<string, string> = {}): void {
    const n = this.get(id);
    if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null)
      throw new Error(`node ${id} already running`);
    const peers = [...this.nodes.values()]
      .filter((p) => p.id !== id && p.id <= this.opts.size)
      .map((p) => `${p.id}=127.0.0.1:${p.raft}`)
      .join(",");
    const args = [BIN, "node", "--id", String(id), "--data-dir", n.dataDir];
    args.push("--http", `127.0.0.1:${n.http}`, "--raft", `127.0.0.1:${n.raft}`, "--peers", peers);
    args.push("--tick-ms", "20", "--log-level", "warn", ...(this.opts.extraArgs ?? []), ...extra);
    const proc = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...this.opts.env, ...env },
    });
    const keep = (b: Buffer) => {
      n.log.push(b.toString());
      if (n.log.length > 200) n.log.shift();
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    n.proc = proc;
  }

  startAll(): void {
    for (const id of this.nodes.keys()) this.start(id);
  }

  /** kill -9, and wait for the process to be gone. */
  async kill(id: number): Promise<void> {
    const n = this.get(id);
    const p = n.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGKILL");
    await gone;
  }

  /** SIGTERM; resolves with the exit code and how long it took. */
  async terminate(id: number): Promise<{ code: number | null; ms: number }> {
    const p = this.get(id).proc;
    if (!p || p.exitCode !== null) return { code: p?.exitCode ?? null, ms: 0 };
    const t0 = Date.now();
    const gone = new Promise<number | null>((r) => p.once("exit", (code) => r(code)));
    p.kill("SIGTERM");
    const code = await gone;
    return { code, ms: Date.now() - t0 };
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.kill(id)));
  }

  /** Kills every process and deletes the data. Safe to call twice. */
  async destroy(): Promise<void> {
    await this.killAll();
    rmSync(this.root, { recursive: true, force: true });
  }

  async json<T>(id: number, path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
    const res = await fetch(this.url(id, path), { ...init, signal: AbortSignal.timeout(15_000) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async tryJson<T>(
    id: number,
    path: string,
    init?: RequestInit,
  ): Promise<{ status: number; body: T } | undefined> {
    try {
      return await this.json<T>(id, path, init);
    } catch {
      return undefined;
    }
  }

  /** Waits until every running node in `ids` is ready and they agree on a leader. */
  async waitForLeader(ids: number[] = [...this.nodes.keys()], timeoutMs = 20_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const rs = await Promise.all(
        ids.map((id) => this.tryJson<{ ready: boolean; leaderId: number | null }>(id, "/readyz")),
      );
      const leaders = new Set(rs.map((r) => r?.body.leaderId ?? null));
      if (rs.every((r) => r?.status === 200) && leaders.size === 1) {
        const l = [...leaders][0];
        if (typeof l === "number" && ids.includes(l)) return l;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no agreed leader among ${ids.join(",")} within ${timeoutMs} ms\n${this.logs()}`);
  }

  logs(): string {
    return [...this.nodes.values()].map((n) => `--- node ${n.id}\n${n.log.join("").slice(-3000)}`).join("\n");
  }
}
