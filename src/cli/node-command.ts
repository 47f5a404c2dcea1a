// `raftbus node`: one cluster member, with a clean shutdown on SIGTERM/SIGINT.

import pino from "pino";
import type { NodeOptions } from "./options.ts";
import { startServer } from "./server.ts";

/** Bound on a clean shutdown; past it the process exits anyway (API: within 10 s). */
const SHUTDOWN_DEADLINE_MS = 9_000;

export async function runNode(o: NodeOptions): Promise<void> {
  const logger = pino({ level: o.logLevel, base: { node: o.id } });
  // A signal during start-up is remembered and honoured once the server is up
  // (a clean stop, exit 0), instead of killing the process half-started.
  let early: string | undefined;
  const onEarly = (signal: string) => () => {
    early ??= signal;
  };
  const earlyTerm = onEarly("SIGTERM");
  const earlyInt = onEarly("SIGINT");
  process.on("SIGTERM", earlyTerm);
  process.on("SIGINT", earlyInt);
  const server = await startServer(o, logger);
  process.off("SIGTERM", earlyTerm);
  process.off("SIGINT", earlyInt);
  logger.info(
    {
      http: server.httpAddress,
      raft: server.raftAddress,
      dataDir: o.dataDir,
      peers: Object.fromEntries(o.peers),
    },
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
      await server.stop();
      logger.info({}, "stopped cleanly");
      process.exit(0);
    } catch (e) {
      logger.error({ err: e }, "unclean shutdown");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  if (early) void shutdown(early);
}
