// `raftbus cluster status`: the members as one node sees them (id, role, the
// leader, addresses, how far each has replicated), the term and the
// commit/applied indexes, plus whether each member's HTTP API answers /readyz.

import type { Command } from "commander";
import {
  addClientOptions,
  type ClientFlags,
  type ClusterInfo,
  clientOptionsFrom,
  RaftbusClient,
  table,
} from "./http-client.ts";

export function registerClusterCommand(program: Command): void {
  const cluster = program.command("cluster").description("inspect the cluster");

  addClientOptions(
    cluster
      .command("status")
      .description("show the members, the leader, the term and the commit/applied indexes")
      .option("--json", "print the API's JSON answer (GET /v1/cluster)")
      .option("--no-probe", "do not ask each member's HTTP API whether it is ready"),
  ).action(async (f: ClientFlags & { json?: boolean; probe: boolean }) => {
    const client = new RaftbusClient(clientOptionsFrom(f));
    let c = await client.cluster();
    const scheme = client.server.startsWith("https:") ? "https" : "http";
    let via = client.server;
    // Only the leader knows how far each member has replicated: ask it when it is another node.
    const leaderHttp = c.members.find((m) => m.id === c.leaderId)?.http;
    if (c.leaderId !== null && c.leaderId !== c.nodeId && leaderHttp) {
      try {
        const res = await fetch(`${scheme}://${leaderHttp}/v1/cluster`, {
          headers: client.authHeaders(),
          signal: AbortSignal.timeout(3000),
        });
        if (res.ok) {
          c = (await res.json()) as ClusterInfo;
          via = `${scheme}://${leaderHttp}`;
        }
      } catch {
        // the view of the node that answered will do
      }
    }
    if (f.json) {
      process.stdout.write(`${JSON.stringify(c)}\n`);
      return;
    }
    const ready = f.probe ? await probeAll(c, scheme, client.authHeaders()) : new Map<number, string>();
    process.stdout.write(`${formatStatus(c, ready, via)}\n`);
  });
}

export function formatStatus(c: ClusterInfo, ready: Map<number, string>, via: string): string {
  const leader = c.leaderId === null ? "none (election in progress?)" : `node ${c.leaderId}`;
  const head =
    `cluster (as seen by node ${c.nodeId} at ${via})\n` +
    `  leader: ${leader}   term: ${c.term}   commit: ${c.commitIndex}   applied: ${c.appliedIndex}\n`;
  const members = [...c.members].sort((a, b) => a.id - b.id);
  const header = ["ID", "ROLE", "LEADER", "RAFT", "HTTP", "MATCH"];
  if (ready.size > 0) header.push("STATUS");
  const rows = members.map((m) => {
    const row: (string | number)[] = [
      m.id,
      m.role,
      m.id === c.leaderId ? "*" : "",
      m.raft ?? "-",
      m.http ?? "-",
      m.matchIndex ?? "-",
    ];
    if (ready.size > 0) row.push(ready.get(m.id) ?? "-");
    return row;
  });
  const voters = members.filter((m) => m.role === "voter").length;
  const learners = members.length - voters;
  const count = `${members.length} member${members.length === 1 ? "" : "s"} (${voters} voter${voters === 1 ? "" : "s"}${learners ? `, ${learners} learner${learners === 1 ? "" : "s"}` : ""})`;
  return `${head}  ${count}\n\n${table(header, rows)}`;
}

/** Each member's /readyz: "ready", "not ready" or "unreachable". */
async function probeAll(
  c: ClusterInfo,
  scheme: string,
  headers: Record<string, string>,
): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  await Promise.all(
    c.members.map(async (m) => {
      if (!m.http) return;
      try {
        const res = await fetch(`${scheme}://${m.http}/readyz`, {
          headers,
          signal: AbortSignal.timeout(1500),
        });
        await res.arrayBuffer();
        out.set(m.id, res.status === 200 ? "ready" : "not ready");
      } catch {
        out.set(m.id, "unreachable");
      }
    }),
  );
  return out;
}
