// Setup shared by the route tests that drive one single node per file through
// app.inject() (groups, records).

import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll } from "vitest";
import { startTestNode, type TestNode } from "./fixture.ts";

/** The file's node, set by useTestNode's beforeAll (an ESM live binding). */
export let node: TestNode;
/** `node`'s HTTP app, set with it. */
export let app: FastifyInstance;

/** Starts one node before the file's tests (setting `node` and `app`) and stops it after them. */
export function useTestNode(): void {
  beforeAll(async () => {
    node = await startTestNode();
    app = node.server.app;
  });
  afterAll(async () => {
    await node?.stop();
  });
}
