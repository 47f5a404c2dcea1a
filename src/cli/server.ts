// Assembles one node: LMDB storage, the TCP transport, the Raft runtime, the
// broker and the HTTP API. Used by `raftbus node` and by in-process tests.

import { mkdirSync, readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import type { Logger as PinoLogger } from "pino";
import { Broker } from "../broker/broker.ts";
import { type ApplyResult, BrokerState } from "../broker/state.ts";
import { buildApp } from "../http/app.ts";
import { createMetrics } from "../metrics/registry.ts";
import { createRuntime } from "../node/create-runtime.ts";
import { type Logger, silentLogger } from "../node/ports.ts";
import type { Runtime } from "../node/runtime.ts";
import { LmdbStorage } from "../storage/lmdb-storage.ts";
import { TcpTransport } from "../transport/transport.ts";
import { type NodeOptions, parseHostPort } from "./options.ts";

export interface Server {
  app: FastifyInstance;
  runtime: Runtime<ApplyResult>;
  broker: Broker;
  state: BrokerState;
  transport: TcpTransport;
  /** The bound HTTP address (host:port), useful when --http used port 0. */
  httpAddress: string;
  raftAddress: string;
  /** Stops accepting requests, finishes in-flight ones, closes sockets, flushes. */
  stop(): Promise<void>;
}

/** `log` is pino (the HTTP layer needs its child loggers); without it the node is silent. */
export async function startServer(o: NodeOptions, log?: PinoLogger): Promise<Server> {
  const logger: Logger = log ?? silentLogger;
  mkdirSync(o.dataDir, { recursive: true });
  const storage = LmdbStorage.open(o.dataDir);
  const state = new BrokerState(storage.env);
  state.onWriteError = (e) => {
    // Fail loudly, as the runtime does for its own writes: a node whose
    // applied state did not reach the disk must not serve or acknowledge.
    logger.error({ err: { message: e.message, stack: e.stack } }, "storage write failed: stopping the node");
    process.exitCode = 70;
    setImmediate(() => {
      throw e;
    });
  };
  const transport = new TcpTransport({
    nodeId: o.id,
    clusterId: o.clusterId,
    listen: o.raft,
    peers: new Map(o.peers),
    logger,
    ...(o.clusterSecret ? { secret: o.clusterSecret } : {}),
  });
  await transport.start();
  const raftAddress = `${parseHostPort(o.raft, "--raft").host}:${transport.address().port}`;
  const http = parseHostPort(o.http, "--http");
  const runtime = createRuntime<ApplyResult>({
    id: o.id,
    peers: o.peers,
    // With port 0 the real HTTP port is known only after listen; announce it then.
    self: { raft: o.advertiseRaft ?? raftAddress, http: o.advertiseHttp ?? o.http },
    join: o.join,
    storage,
    stateMachine: state,
    transport,
    logger,
    tickMs: o.tickMs,
    snapshotEntries: o.snapshotEntries,
    ...(o.compactionMarginBytes !== undefined ? { compactionMarginBytes: o.compactionMarginBytes } : {}),
    ...(o.snapshotRateMib !== undefined
      ? { catchUp: { maxBytesPerSecond: o.snapshotRateMib * 1024 * 1024 } }
      : {}),
    raft: { electionTick: o.electionTicks, heartbeatTick: Math.max(1, Math.floor(o.electionTicks / 5)) },
  });
  const broker = new Broker(runtime, state);
  const metrics =
    o.metrics === false ? undefined : createMetrics({ runtime, broker, version: packageVersion() });
  const app = await buildApp({ runtime, broker, authToken: o.authToken, metrics, logger: log });
  await app.listen({ host: http.host, port: http.port });
  const addr = app.server.address();
  const httpAddress = typeof addr === "object" && addr ? `${http.host}:${addr.port}` : o.http;
  runtime.setSelfHttp(o.advertiseHttp ?? httpAddress);
  runtime.start();
  broker.start();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      broker.stop();
      // No new requests; in-flight ones finish; WebSockets close with 1001. A
      // connection that never sent a request would hold close() open: cut such
      // stragglers after a grace period so SIGTERM exits within its deadline.
      const grace = setTimeout(() => app.server.closeAllConnections(), 3_000);
      grace.unref();
      await app.close();
      clearTimeout(grace);
      await runtime.stop(); // waits for writes, flushes, closes transport and storage
      metrics?.close();
    })();
    return stopped;
  };
  return { app, runtime, broker, state, transport, httpAddress, raftAddress, stop };
}

let version: string | undefined;
/** package.json's version, for raftbus_build_info. */
function packageVersion(): string {
  version ??= (
    JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
  ).version;
  return version;
}
