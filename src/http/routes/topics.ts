// Topics: create, list, describe, delete.

import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../deps.ts";
import { parseTimeout } from "./params.ts";

const topicName = { type: "string", pattern: "^[a-zA-Z0-9._-]{1,249}$" } as const;
const nullableNonNegative = { anyOf: [{ type: "integer", minimum: 0 }, { type: "null" }] } as const;

export async function topicRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { broker } = deps;

  app.post<{
    Body: { name: string; partitions?: number; retentionMs?: number | null; retentionBytes?: number | null };
    Querystring: { timeoutMs?: string };
  }>(
    "/v1/topics",
    {
      schema: {
        body: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: topicName,
            partitions: { type: "integer", minimum: 1, maximum: 1024 },
            retentionMs: nullableNonNegative,
            retentionBytes: nullableNonNegative,
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const topic = await broker.createTopic(
        {
          name: b.name,
          partitions: b.partitions ?? 1,
          retentionMs: b.retentionMs ?? null,
          retentionBytes: b.retentionBytes ?? null,
        },
        parseTimeout(req.query.timeoutMs),
      );
      return reply.status(201).send(topic);
    },
  );

  app.get("/v1/topics", async () => ({ topics: broker.listTopics() }));

  app.get<{ Params: { topic: string } }>("/v1/topics/:topic", async (req) =>
    broker.getTopic(req.params.topic),
  );

  app.delete<{ Params: { topic: string }; Querystring: { timeoutMs?: string } }>(
    "/v1/topics/:topic",
    async (req, reply) => {
      await broker.deleteTopic(req.params.topic, parseTimeout(req.query.timeoutMs));
      return reply.status(204).send();
    },
  );
}
