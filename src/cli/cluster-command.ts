// `raftbus cluster status`: the members as one node sees them (id, role, the
// leader, addresses, how far each has replicated), the term and the
// commit/applied indexes, plus whether each member's HTTP API answers /readyz.

import type { Command } from "commander";
import {
  addClientOptions,
  type ClientFlags,
  type ClusterInfo,
  clientFrom,
  type RaftbusClient,
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
    const client = clientFrom(f);
    // Only the leader knows how far each member has replicated: ask it when it is another node.
    const { via, ...c } = await client.clusterStatus({ fromLeader: true });
    if (f.json) {
      process.stdout.write(`${JSON.stringify(c)}\n`);
      return;
    }
    const scheme = via.startsWith("https:") ? "https" : "http";
    const ready = f.probe ? await probeAll(client, c, scheme) : new Map<number, string>();
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
async function probeAll(client: RaftbusClient, c: ClusterInfo, scheme: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  await Promise.all(
    c.members.map(async (m) => {
      if (m.http) out.set(m.id, await client.probe(`${scheme}://${m.http}`));
    }),
  );
  return out;
}
