// `raftbus node` processes configured only through RAFTBUS_* environment
// variables (as containers and systemd run them), stopped by PID.

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/raftbus.js", import.meta.url));

export interface EnvNode {
  env: Record<string, string>;
  proc: ChildProcess;
  log(): string;
}

export async function spawnNode(env: Record<string, string>, cwd: string): Promise<EnvNode> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RAFTBUS_")));
  const proc = spawn(process.execPath, [BIN, "node"], {
    cwd,
    env: { ...clean, RAFTBUS_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-10_000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  return { env, proc, log: () => `--- node ${env.RAFTBUS_ID}\n${out}` };
}

/** SIGTERM, then SIGKILL after 5 s, for every node still running. */
export async function stopNodes(nodes: EnvNode[]): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) return;
      const exited = new Promise((r) => n.proc.once("exit", r));
      n.proc.kill("SIGTERM");
      const t = setTimeout(() => n.proc.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(t);
    }),
  );
}
