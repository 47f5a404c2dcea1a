// The CLI's side of the client: `--server`/`--token` flags and their env
// vars, made into a RaftbusClient (src/client, which does all the HTTP and
// WebSocket work: failover, retries, idempotency keys), plus the error
// printing and table layout the client commands share.

import { type Command, InvalidArgumentError, Option } from "commander";
import WebSocket from "ws";
import { type ClientOptions, normalizeServer, RaftbusClient, RaftbusError } from "../client/index.ts";
import { DEFAULT_RETRY_TIMEOUT_MS } from "../client/transport.ts";

export type {
  ClusterInfo,
  ConsumedRecord,
  FetchedRecord,
  ProducerRecord,
  RecordMetadata,
  TopicInfo,
} from "../client/index.ts";
export { RaftbusClient } from "../client/index.ts";

/** The API's errors as the CLI reports them: the client's RaftbusError. */
export const ApiError = RaftbusError;
export type ApiError = RaftbusError;

export const DEFAULT_SERVERS = "http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083";

/** A usage or input error of the CLI itself: printed without a stack, exit code `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Raw client flags as commander gives them. */
export interface ClientFlags {
  server?: string;
  token?: string;
  retryTimeoutMs?: number;
  verbose?: boolean;
}

/** "a:1,http://b:2/" -> ["http://a:1", "http://b:2"]. */
export function parseServers(s: string): string[] {
  const out: string[] = [];
  for (const raw of s
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    try {
      out.push(normalizeServer(raw));
    } catch (e) {
      const why =
        e instanceof TypeError && /http/.test(e.message)
          ? "expected http:// or https://"
          : "not a URL or host:port";
      throw new CliError(`--server: ${why}, got "${raw}"`, 2);
    }
  }
  if (out.length === 0) throw new CliError("--server: no server given", 2);
  return out;
}

/** Flags win over RAFTBUS_SERVER / RAFTBUS_AUTH_TOKEN, which win over the local dev cluster. */
export function clientOptionsFrom(flags: ClientFlags): ClientOptions {
  const env = (n: string) => {
    const v = process.env[n];
    return v === undefined || v === "" ? undefined : v;
  };
  return {
    servers: parseServers(flags.server ?? env("RAFTBUS_SERVER") ?? DEFAULT_SERVERS),
    token: flags.token ?? env("RAFTBUS_AUTH_TOKEN"),
    // Node 20 has no global WebSocket: ws's has the browser API the client uses.
    WebSocket,
    ...(flags.retryTimeoutMs !== undefined ? { retryTimeoutMs: flags.retryTimeoutMs } : {}),
    ...(flags.verbose ? { onRetry: (note: string) => process.stderr.write(`raftbus: ${note}\n`) } : {}),
  };
}

/** The client for a command's flags. */
export function clientFrom(flags: ClientFlags): RaftbusClient {
  return new RaftbusClient(clientOptionsFrom(flags));
}

/** "CODE: message" for printing. */
export function formatError(e: unknown): string {
  if (e instanceof RaftbusError) return e.status === 0 ? e.message : `${e.code}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

// ---- command-line plumbing shared by the client commands ---------------------------

/** Adds --server, --token, --retry-timeout-ms and --verbose to a client command. */
export function addClientOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "-s, --server <urls>",
        "comma-separated server URLs, tried in turn (RAFTBUS_SERVER; default: the local dev cluster)",
      ),
    )
    .addOption(new Option("--token <token>", "bearer token for the API (RAFTBUS_AUTH_TOKEN)"))
    .addOption(
      new Option(
        "--retry-timeout-ms <ms>",
        `keep retrying retriable failures this long (default ${DEFAULT_RETRY_TIMEOUT_MS})`,
      ).argParser(intArg(1)),
    )
    .addOption(new Option("-v, --verbose", "report retries and failovers on stderr"));
}

/** A commander argument parser for an integer >= min. */
export function intArg(min: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`expected an integer >= ${min}, got "${v}"`);
    return n;
  };
}

/** Left-aligned columns with a header row, two spaces apart. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
