// GET /metrics: this node's Prometheus metrics in the text format (API.md
// "Metrics"). Outside /v1, so it stays open when an auth token is set.

import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../deps.ts";

export async function metricsRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { metrics } = deps;
  if (!metrics) return;
  app.get("/metrics", async (_req, reply) => {
    const body = await metrics.registry.metrics();
    return reply.header("content-type", metrics.registry.contentType).send(body);
  });
}
