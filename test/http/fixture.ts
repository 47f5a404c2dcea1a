// A real single-node raftbus in this process: LMDB in a temp dir, the TCP
// transport on port 0, the runtime, the broker and the HTTP app. For route
// tests with app.inject() and for WebSocket tests against the real port.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NodeOptions } from "../../src/cli/options.ts";
import { type Server, startServer } from "../../src/cli/server.ts";

export interface TestNode {
  server: Server;
  /** http://127.0.0.1:<port> */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startTestNode(extra: Partial<NodeOptions> = {}): Promise<TestNode> {
  const dataDir = mkdtempSync(join(tmpdir(), "raftbus-http-"));
  const server = await startServer({
    id: 1,
    dataDir,
    http: "127.0.0.1:0",
    raft: "127.0.0.1:0",
    peers: new Map(),
    join: false,
    clusterId: "test",
    clusterSecret: undefined,
    authToken: undefined,
    tickMs: 10,
    electionTicks: 5,
    snapshotEntries: 100_000,
    logLevel: "silent",
    ...extra,
  });
  const deadline = Date.now() + 10_000;
  while (!server.runtime.isReady()) {
    if (Date.now() > deadline) throw new Error("single node did not become ready");
    await new Promise((r) => setTimeout(r, 10));
  }
  let stopped = false;
  return {
    server,
    url: `http://${server.httpAddress}`,
    dataDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
