// Shared by the client's cluster tests: a 3-node cluster of real processes,
// a client on it (ws's WebSocket, as in Node), and reading a whole partition.

import WebSocket from "ws";
import { type ClientOptions, RaftbusClient, type WebSocketConstructor } from "../../src/client/index.ts";
import type { ProcCluster } from "../node/proc-cluster.ts";

export const NodeWebSocket: WebSocketConstructor = WebSocket;

/** A client whose seeds are the given nodes, in that order. */
export function clientOn(cluster: ProcCluster, ids: number[], o: Partial<ClientOptions> = {}): RaftbusClient {
  return new RaftbusClient({
    servers: ids.map((id) => cluster.url(id, "")),
    WebSocket: NodeWebSocket,
    ...o,
  });
}

/** The id of the node a server URL points at. */
export function nodeOf(cluster: ProcCluster, server: string): number {
  const port = Number(new URL(server).port);
  for (const n of cluster.nodes.values()) if (n.http === port) return n.id;
  throw new Error(`no node at ${server}`);
}

export interface LogRecord {
  offset: number;
  key: string | null;
  value: unknown;
}

/** Every record of a partition, read from node `id`. */
export async function readPartition(
  cluster: ProcCluster,
  id: number,
  topic: string,
  partition: number,
): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (;;) {
    const r = await cluster.json<{ records: LogRecord[]; endOffset: number }>(
      id,
      `/v1/topics/${topic}/partitions/${partition}/records?offset=${out.length}&limit=10000`,
    );
    if (r.status !== 200) throw new Error(`fetch ${topic}/${partition}@${out.length}: ${r.status}`);
    out.push(...r.body.records);
    if (r.body.records.length === 0 || out.length >= r.body.endOffset) return out;
  }
}

/** Waits until `cond` holds, polling. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
