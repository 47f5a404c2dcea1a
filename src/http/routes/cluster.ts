// Health, readiness, cluster status and membership. Membership changes and
// leadership transfer are decided by the leader: a follower passes the request
// on to the leader's HTTP address (from the replicated address book).

import type { FastifyInstance, FastifyReply } from "fastify";
import { Role } from "../../raft/index.ts";
import type { HttpDeps } from "../deps.ts";
import { HttpError, sendError } from "../errors.ts";

interface MemberView {
  id: number;
  role: "voter" | "learner";
  raft: string | null;
  http: string | null;
  matchIndex: number | null;
}

export async function clusterRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { runtime } = deps;

  const members = (): MemberView[] => {
    const s = runtime.status();
    const book = runtime.memberAddresses();
    const match = new Map(s.progress.map((p) => [p.id, p.match]));
    return [
      ...s.config.voters.map((id) => ({ id, role: "voter" as const })),
      ...s.config.learners.map((id) => ({ id, role: "learner" as const })),
    ].map((m) => ({
      ...m,
      raft: book.get(m.id)?.raft || null,
      http: book.get(m.id)?.http || null,
      matchIndex: m.id === s.id ? s.lastIndex : (match.get(m.id) ?? null),
    }));
  };

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_req, reply) => {
    const ready = runtime.isReady();
    return reply.status(ready ? 200 : 503).send({ ready, leaderId: runtime.leader || null });
  });

  app.get("/v1/cluster", async () => {
    const s = runtime.status();
    return {
      nodeId: s.id,
      leaderId: s.leader || null,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: s.applied,
      members: members(),
    };
  });

  app.get("/internal/status", async () => ({ ...runtime.status(), runtime: runtime.stats }));

  /** Passes a request on to the leader; answers NO_LEADER when there is none we can reach. */
  const viaLeader = async (reply: FastifyReply, method: string, path: string, body?: unknown) => {
    const leader = runtime.leader;
    const http = leader ? runtime.memberAddresses().get(leader)?.http : undefined;
    if (!http) return sendError(reply, "NO_LEADER", "no leader is known");
    try {
      const res = await fetch(`http://${http}${path}`, {
        method,
        headers: {
          "content-type": "application/json",
          ...(deps.authToken ? { authorization: `Bearer ${deps.authToken}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      return reply.status(res.status).header("content-type", "application/json").send(text);
    } catch (e) {
      return sendError(reply, "NO_LEADER", `cannot reach the leader: ${(e as Error).message}`);
    }
  };
  const isLeader = () => runtime.role === Role.Leader;

  app.post<{ Body: { id: number; raft: string; http?: string; role?: "voter" | "learner" } }>(
    "/v1/cluster/members",
    {
      schema: {
        body: {
          type: "object",
          required: ["id", "raft"],
          additionalProperties: false,
          properties: {
            id: { type: "integer", minimum: 1 },
            raft: { type: "string", minLength: 3, maxLength: 255 },
            http: { type: "string", maxLength: 255 },
            role: { type: "string", enum: ["voter", "learner"] },
          },
        },
      },
    },
    async (req, reply) => {
      if (!isLeader()) return viaLeader(reply, "POST", "/v1/cluster/members", req.body);
      const { id, raft, http, role } = req.body;
      await runtime.changeMembership({
        type: role === "learner" ? "add-learner" : "add-voter",
        id,
        raft,
        ...(http ? { http } : {}),
      });
      return { members: members() };
    },
  );

  app.delete<{ Params: { id: string } }>("/v1/cluster/members/:id", async (req, reply) => {
    const id = Number(req.params.id);
    if (!Number.isSafeInteger(id) || id <= 0)
      throw new HttpError("INVALID_REQUEST", "member id must be a positive integer");
    if (!isLeader()) return viaLeader(reply, "DELETE", `/v1/cluster/members/${id}`);
    const s = runtime.status();
    if (!s.config.voters.includes(id) && !s.config.learners.includes(id)) {
      throw new HttpError("NOT_FOUND", `node ${id} is not a member`);
    }
    await runtime.changeMembership({ type: "remove", id });
    return { members: members() };
  });

  app.post<{ Body: { id: number } }>(
    "/v1/cluster/leader",
    {
      schema: {
        body: {
          type: "object",
          required: ["id"],
          additionalProperties: false,
          properties: { id: { type: "integer", minimum: 1 } },
        },
      },
    },
    async (req, reply) => {
      if (!isLeader()) return viaLeader(reply, "POST", "/v1/cluster/leader", req.body);
      const { id } = req.body;
      if (!runtime.status().config.voters.includes(id))
        throw new HttpError("INVALID_REQUEST", `node ${id} is not a voter`);
      await runtime.transferLeadershipAndWait(id);
      return { members: members() };
    },
  );
}
