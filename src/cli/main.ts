// The raftbus command line.

import { Command, Option } from "commander";
import { registerClusterCommand } from "./cluster-command.ts";
import { registerConsumeCommand } from "./consume-command.ts";
import { runDev } from "./dev-command.ts";
import { ApiError, CliError, formatError } from "./http-client.ts";
import { runNode } from "./node-command.ts";
import { OptionError, resolveNodeOptions } from "./options.ts";
import { registerProduceCommand } from "./produce-command.ts";
import { registerTopicsCommand } from "./topics-command.ts";

const program = new Command();
program.name("raftbus").description("A replicated, append-only log and event bus.").version("0.1.0");

program
  .command("node")
  .description("run one cluster member (every flag also reads RAFTBUS_<FLAG> from the environment)")
  .addOption(new Option("--id <n>", "this node's id, a positive integer (RAFTBUS_ID)"))
  .addOption(new Option("--data-dir <dir>", "where the node persists everything (RAFTBUS_DATA_DIR)"))
  .addOption(new Option("--http <host:port>", "HTTP API address (RAFTBUS_HTTP)"))
  .addOption(new Option("--raft <host:port>", "peer listen address (RAFTBUS_RAFT)"))
  .addOption(
    new Option(
      "--advertise-http <host:port>",
      "HTTP address other nodes and clients use, when --http listens on 0.0.0.0 (RAFTBUS_ADVERTISE_HTTP)",
    ),
  )
  .addOption(
    new Option(
      "--advertise-raft <host:port>",
      "peer address other nodes use, when --raft listens on 0.0.0.0 (RAFTBUS_ADVERTISE_RAFT)",
    ),
  )
  .addOption(new Option("--peers <list>", "other initial voters: id=host:port,... (RAFTBUS_PEERS)"))
  .addOption(new Option("--join", "start empty and wait to be added to an existing cluster (RAFTBUS_JOIN)"))
  .addOption(new Option("--cluster-id <name>", "refuse peers of another cluster (RAFTBUS_CLUSTER_ID)"))
  .addOption(
    new Option("--cluster-secret <secret>", "peers must prove they know it (RAFTBUS_CLUSTER_SECRET)"),
  )
  .addOption(new Option("--auth-token <token>", "bearer token required on /v1 (RAFTBUS_AUTH_TOKEN)"))
  .addOption(new Option("--tick-ms <ms>", "Raft tick interval (RAFTBUS_TICK_MS, default 50)"))
  .addOption(
    new Option("--election-ticks <n>", "election timeout in ticks (RAFTBUS_ELECTION_TICKS, default 10)"),
  )
  .addOption(
    new Option(
      "--snapshot-entries <n>",
      "take a (metadata-only) snapshot every n applied entries (RAFTBUS_SNAPSHOT_ENTRIES, default 100000)",
    ),
  )
  .addOption(
    new Option(
      "--compaction-margin-bytes <n>",
      "Raft log bytes kept behind the compaction point, so a restarted follower catches up from the log " +
        "(RAFTBUS_COMPACTION_MARGIN_BYTES, default 268435456 = 256 MiB)",
    ),
  )
  .addOption(
    new Option(
      "--snapshot-rate-mib <n>",
      "snapshot streams to lagging followers send at most n MiB/s, 0 for no cap (RAFTBUS_SNAPSHOT_RATE_MIB, default 64)",
    ),
  )
  .addOption(new Option("--log-level <level>", "pino log level (RAFTBUS_LOG_LEVEL, default info)"))
  .addOption(new Option("--metrics <on|off>", "serve /metrics and count (RAFTBUS_METRICS, default on)"))
  .action(async (flags: Record<string, string | boolean | undefined>) => {
    await runNode(resolveNodeOptions(flags));
  });

program
  .command("dev")
  .description("run a local 3-node cluster (http 8081-8083, raft 9091-9093, data under ./data)")
  .option("--data <dir>", "data directory", "data")
  .option("--nodes <n>", "number of nodes", "3")
  .option("--log-level <level>", "node log level shown (pretty) in the terminal", "info")
  .action(async (flags: { data: string; nodes: string; logLevel: string }) => {
    await runDev({ dataDir: flags.data, nodes: Number(flags.nodes), logLevel: flags.logLevel });
  });

registerTopicsCommand(program);
registerProduceCommand(program);
registerConsumeCommand(program);
registerClusterCommand(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof OptionError) {
    process.stderr.write(`raftbus: ${e.message}\n`);
    process.exit(2);
  }
  // Client commands: the API's error (or ours) without a stack. exitCode, not exit(): let stdout drain.
  if (e instanceof ApiError || e instanceof CliError) {
    process.stderr.write(`raftbus: ${formatError(e)}\n`);
    process.exitCode = e instanceof CliError ? e.exitCode : 1;
    return;
  }
  process.stderr.write(`raftbus: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
