// The HTTP API (fastify). This first cut serves health, readiness, cluster
// status and an internal ledger hook used to prove the node end to end; the
// broker's routes build on the same app.

import Fastify, { type FastifyInstance } from "fastify";
import type { LedgerStateMachine } from "../node/ledger.ts";
import { type Runtime, RuntimeError } from "../node/runtime.ts";
import { HttpError, sendError } from "./errors.ts";

export interface AppDeps {
  runtime: Runtime<number>;
  ledger: LedgerStateMachine;
  authToken?: string | undefined;
  logger?: boolean;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { runtime, ledger } = deps;
  const app = Fastify({ logger: deps.logger ?? false, bodyLimit: 8 * 1024 * 1024 });
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_req, body, done) =>
    done(null, body),
  );

  app.addHook("onRequest", async (req, reply) => {
    if (!deps.authToken || (!req.url.startsWith("/v1") && !req.url.startsWith("/internal"))) return;
    if (req.headers.authorization !== `Bearer ${deps.authToken}`) {
      return sendError(reply, "UNAUTHORIZED", "missing or wrong bearer token");
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof RuntimeError) return sendError(reply, err.code, err.message);
    if (err instanceof HttpError) return sendError(reply, err.code, err.message, err.extra);
    const e = err as { statusCode?: number; message: string };
    if (e.statusCode && e.statusCode < 500) return sendError(reply, "INVALID_REQUEST", e.message);
    return sendError(reply, "INTERNAL", e.message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, "NOT_FOUND", `no route ${req.method} ${req.url}`));

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const ready = runtime.isReady();
    return reply.status(ready ? 200 : 503).send({ ready, leaderId: runtime.leader || null });
  });

  app.get("/v1/cluster", async () => {
    const s = runtime.status();
    const book = runtime.memberAddresses();
    const match = new Map(s.progress.map((p) => [p.id, p.match]));
    const members = [
      ...s.config.voters.map((id) => ({ id, role: "voter" as const })),
      ...s.config.learners.map((id) => ({ id, role: "learner" as const })),
    ].map((m) => ({
      ...m,
      raft: book.get(m.id)?.raft ?? null,
      http: book.get(m.id)?.http || null,
      matchIndex: m.id === s.id ? s.lastIndex : (match.get(m.id) ?? null),
    }));
    return {
      nodeId: s.id,
      leaderId: s.leader || null,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: s.applied,
      members,
    };
  });

  // Internal: the runtime's view, for tests and operators.
  app.get("/internal/status", async () => {
    const s = runtime.status();
    return { ...s, runtime: runtime.stats };
  });

  // Internal hook: append opaque bytes to the replicated ledger, answer once applied.
  app.post("/internal/ledger", async (req) => {
    const body = req.body;
    const bytes = body instanceof Uint8Array ? body : new TextEncoder().encode(JSON.stringify(body ?? null));
    const seq = await runtime.propose(bytes);
    return { seq };
  });
  app.get<{ Querystring: { from?: string; limit?: string } }>("/internal/ledger", async (req) => {
    const from = Number(req.query.from ?? 0);
    const limit = Math.min(Number(req.query.limit ?? 1000), 10_000);
    if (!Number.isSafeInteger(from) || from < 0 || !Number.isSafeInteger(limit) || limit < 1) {
      throw new HttpError("INVALID_REQUEST", "from and limit must be non-negative integers");
    }
    const records = ledger.read(from, limit).map((r) => Buffer.from(r).toString("base64"));
    return { records, size: ledger.size(), appliedIndex: runtime.status().applied };
  });
  return app;
}
