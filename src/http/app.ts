// The HTTP API (fastify): every route of API.md. Routes declare JSON schemas;
// errors of every kind leave in one shape, mapped in one place (errors.ts).
// Build it with buildApp() and test it with app.inject(), no port needed.

import websocket from "@fastify/websocket";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { CodedError } from "../node/coded-error.ts";
import type { HttpDeps } from "./deps.ts";
import { sendCoded, sendError } from "./errors.ts";
import { clusterRoutes } from "./routes/cluster.ts";
import { groupRoutes } from "./routes/groups.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { recordRoutes } from "./routes/records.ts";
import { subscribeRoutes } from "./routes/subscribe.ts";
import { topicRoutes } from "./routes/topics.ts";

export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

export async function buildApp(deps: HttpDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // One child logger per request (with its reqId) only when a logger is given;
    // the per-request "incoming/completed" lines are off: they would cost more
    // than the request on the hot path. Errors are logged in sendError.
    ...(deps.logger ? { loggerInstance: deps.logger.child({ component: "http" }) } : { logger: false }),
    disableRequestLogging: true,
    // While closing, requests on kept-alive connections get our own error
    // shape (the hook below), not fastify's bare 503 body.
    return503OnClosing: false,
    bodyLimit: deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    // Topic and group names have up to 249 characters (the router's default cap is
    // 100, answered with a 414 outside the error shape); Node caps the request line
    // at 16 KiB anyway, so longer ones reach the routes and get their 400/404.
    routerOptions: { maxParamLength: 16 * 1024 },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  // Raw bodies: a produce with Content-Type application/octet-stream is one record's bytes.
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_req, body, done) =>
    done(null, body),
  );

  // Method/path patterns of every route, to tell 405 from 404.
  const patterns: { method: string; re: RegExp }[] = [];
  app.addHook("onRoute", (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    const re = new RegExp(`^${r.url.replace(/:[^/]+/g, "[^/]+")}/?$`);
    for (const m of methods) patterns.push({ method: m, re });
  });

  // Registered before the auth hook, so a refused upgrade's socket is still
  // cleaned up by the plugin (otherwise it leaks and blocks app.close()).
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });

  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onRequest", async (req, reply) => {
    if (closing && req.url.startsWith("/v1")) return sendError(reply, "NO_LEADER", "node is shutting down");
  });

  app.addHook("onRequest", async (req, reply) => {
    if (!deps.authToken || !req.url.startsWith("/v1")) return;
    const header = req.headers.authorization;
    const query = new URL(req.url, "http://x").searchParams.get("token");
    if (header === `Bearer ${deps.authToken}` || query === deps.authToken) return;
    return sendError(reply, "UNAUTHORIZED", "missing or wrong bearer token");
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof CodedError) return sendCoded(reply, err);
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return sendError(
        reply,
        "RECORD_TOO_LARGE",
        `request body is larger than ${deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES} bytes`,
      );
    }
    if (err.validation || (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)) {
      return sendError(reply, "INVALID_REQUEST", err.message);
    }
    return sendError(reply, "INTERNAL", err.message);
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0] ?? "";
    const allowed = [...new Set(patterns.filter((p) => p.re.test(path)).map((p) => p.method))];
    if (allowed.length > 0) {
      reply.header("Allow", allowed.join(", "));
      return sendError(reply, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${path}`);
    }
    return sendError(reply, "NOT_FOUND", `no route ${req.method} ${path}`);
  });

  await app.register(clusterRoutes, deps);
  await app.register(topicRoutes, deps);
  await app.register(recordRoutes, deps);
  await app.register(groupRoutes, deps);
  await app.register(subscribeRoutes, deps);
  await app.register(metricsRoutes, deps);
  return app;
}
