// Parsing of the node's flags and their RAFTBUS_* environment equivalents.

import { DEFAULT_COMPACTION_MARGIN_BYTES } from "../node/create-runtime.ts";

export interface NodeOptions {
  id: number;
  dataDir: string;
  http: string;
  raft: string;
  /** What other nodes and clients use to reach this node (default: --http / --raft). */
  advertiseHttp?: string | undefined;
  advertiseRaft?: string | undefined;
  peers: Map<number, string>;
  join: boolean;
  clusterId: string;
  clusterSecret: string | undefined;
  authToken: string | undefined;
  tickMs: number;
  electionTicks: number;
  snapshotEntries: number;
  /** Raft log bytes kept behind the compaction point (default 256 MiB). */
  compactionMarginBytes?: number;
  /** Snapshot stream rate cap in MiB/s (0: none). */
  snapshotRateMib?: number;
  logLevel: string;
  /** Serve GET /metrics and count on the hot path (default on; off only to measure their cost). */
  metrics?: boolean;
}

export class OptionError extends Error {}

/** "host:port" with a numeric port; host may be a name, IPv4, or [IPv6]. */
export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new OptionError(`${what}: expected host:port, got "${s}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new OptionError(`${what}: port out of range in "${s}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/** "2=127.0.0.1:9092,3=127.0.0.1:9093" */
export function parsePeers(s: string, selfId: number): Map<number, string> {
  const peers = new Map<number, string>();
  for (const part of s
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new OptionError(`--peers: expected id=host:port, got "${part}"`);
    const id = Number(part.slice(0, eq));
    if (!Number.isSafeInteger(id) || id <= 0) throw new OptionError(`--peers: bad node id in "${part}"`);
    if (id === selfId) throw new OptionError(`--peers: lists this node's own id ${id}`);
    if (peers.has(id)) throw new OptionError(`--peers: node ${id} listed twice`);
    const addr = part.slice(eq + 1);
    parseHostPort(addr, "--peers");
    peers.set(id, addr);
  }
  return peers;
}

type Raw = Record<string, string | boolean | undefined>;

/** Every option of `raftbus node`, as commander names it (camelCase of the flag). */
export const NODE_FLAGS = [
  "id",
  "dataDir",
  "http",
  "raft",
  "advertiseHttp",
  "advertiseRaft",
  "peers",
  "join",
  "clusterId",
  "clusterSecret",
  "authToken",
  "tickMs",
  "electionTicks",
  "snapshotEntries",
  "compactionMarginBytes",
  "snapshotRateMib",
  "logLevel",
  "metrics",
] as const;
export type NodeFlag = (typeof NODE_FLAGS)[number];

/** dataDir → DATA_DIR: every flag's env var is RAFTBUS_ plus this. */
const envSuffix = (flag: NodeFlag) => flag.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
/** dataDir → --data-dir */
export const flagName = (flag: NodeFlag) => `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
/** dataDir → RAFTBUS_DATA_DIR */
export const envVarName = (flag: NodeFlag) => `RAFTBUS_${envSuffix(flag)}`;

const env = (name: string): string | undefined => {
  const v = process.env[`RAFTBUS_${name}`];
  return v === undefined || v === "" ? undefined : v;
};

function int(v: string | undefined, what: string, min: number, def?: number): number {
  if (v === undefined) {
    if (def === undefined) throw new OptionError(`${what} is required`);
    return def;
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min)
    throw new OptionError(`${what}: expected an integer >= ${min}, got "${v}"`);
  return n;
}

function onOff(v: string | undefined, what: string, def: boolean): boolean {
  if (v === undefined) return def;
  if (v === "on" || v === "true" || v === "1") return true;
  if (v === "off" || v === "false" || v === "0") return false;
  throw new OptionError(`${what}: expected on or off, got "${v}"`);
}

/** Flags win over environment variables, which win over defaults. */
export function resolveNodeOptions(raw: Raw): NodeOptions {
  const get = (flag: NodeFlag): string | undefined => {
    const v = raw[flag];
    return typeof v === "string" ? v : env(envSuffix(flag));
  };
  const id = int(get("id"), "--id", 1);
  const http = get("http") ?? `127.0.0.1:${8080 + id}`;
  const raft = get("raft") ?? `127.0.0.1:${9090 + id}`;
  parseHostPort(http, "--http");
  parseHostPort(raft, "--raft");
  const advertiseHttp = get("advertiseHttp");
  const advertiseRaft = get("advertiseRaft");
  if (advertiseHttp !== undefined) parseHostPort(advertiseHttp, "--advertise-http");
  if (advertiseRaft !== undefined) parseHostPort(advertiseRaft, "--advertise-raft");
  const joinRaw = raw.join === true ? "true" : env(envSuffix("join"));
  return {
    id,
    dataDir: get("dataDir") ?? `data/${id}`,
    http,
    raft,
    advertiseHttp,
    advertiseRaft,
    peers: parsePeers(get("peers") ?? "", id),
    join: joinRaw === "true" || joinRaw === "1",
    clusterId: get("clusterId") ?? "raftbus",
    clusterSecret: get("clusterSecret"),
    authToken: get("authToken"),
    tickMs: int(get("tickMs"), "--tick-ms", 1, 50),
    electionTicks: int(get("electionTicks"), "--election-ticks", 3, 10),
    snapshotEntries: int(get("snapshotEntries"), "--snapshot-entries", 10, 100_000),
    compactionMarginBytes: int(
      get("compactionMarginBytes"),
      "--compaction-margin-bytes",
      0,
      DEFAULT_COMPACTION_MARGIN_BYTES,
    ),
    snapshotRateMib: int(get("snapshotRateMib"), "--snapshot-rate-mib", 0, 64),
    logLevel: get("logLevel") ?? "info",
    metrics: onOff(get("metrics"), "--metrics", true),
  };
}
