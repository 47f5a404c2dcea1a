// `raftbus node`: one cluster member — LMDB storage, the TCP peer transport,
// the Raft runtime and the HTTP API — with a clean shutdown on SIGTERM/SIGINT.

import { mkdirSync } from "node:fs";
import pino from "pino";
import { buildApp } from "../http/app.ts";
import { LedgerStateMachine } from "../node/ledger.ts";
import { Runtime } from "../node/runtime.ts";
import { LmdbStorage } from "../storage/lmdb-storage.ts";
import { TcpTransport } from "../transport/transport.ts";
import { type NodeOptions, parseHostPort } from "./options.ts";

/** Bound on a clean shutdown; past it the process exits anyway (API: within 10 s). */
const SHUTDOWN_DEADLINE_MS = 9_000;

export async function runNode(o: NodeOptions): Promise<void> {
  const logger = pino({ level: o.logLevel, base: { node: o.id } });
  mkdirSync(o.dataDir, { recursive: true });
  const storage = LmdbStorage.open(o.dataDir);
  const ledger = new LedgerStateMachine(storage.env);
  const transport = new TcpTransport({
    nodeId: o.id,
    clusterId: o.clusterId,
    listen: o.raft,
    peers: new Map(o.peers),
    secret: o.clusterSecret,
    logger,
  });
  await transport.start();
  const runtime = new Runtime<number>({
    id: o.id,
    peers: o.peers,
    self: { raft: o.raft, http: o.http },
    join: o.join,
    storage,
    stateMachine: ledger,
    transport,
    logger,
    tickMs: o.tickMs,
    snapshotEntries: o.snapshotEntries,
    raft: { electionTick: o.electionTicks, heartbeatTick: Math.max(1, Math.floor(o.electionTicks / 5)) },
  });
  runtime.start();
  const app = buildApp({ runtime, ledger, authToken: o.authToken });
  const { host, port } = parseHostPort(o.http, "--http");
  await app.listen({ host, port });
  logger.info(
    { http: o.http, raft: o.raft, dataDir: o.dataDir, peers: Object.fromEntries(o.peers) },
    "node serving",
  );

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      logger.error({}, "shutdown deadline passed: exiting");
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    force.unref();
    try {
      await app.close(); // stops accepting, waits for in-flight requests
      await runtime.stop(); // waits for writes, flushes, closes transport and storage
      logger.info({}, "stopped cleanly");
      process.exit(0);
    } catch (e) {
      logger.error({ err: e }, "unclean shutdown");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}
