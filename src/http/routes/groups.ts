// Consumer groups' committed offsets (API.md "Consumer groups").
//
// Group names follow the topic-name rule: ^[a-zA-Z0-9._-]{1,249}$ (anything
// else is 400). A committed offset is the group's next offset to read: any
// offset up to the partition's end may be committed (beyond it is 416
// OFFSET_OUT_OF_RANGE; below the start is allowed, as in Kafka, and counts the
// lag from the start). A group nobody committed for has no offsets: GET
// answers {"offsets": []}.

import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../deps.ts";
import { parseTimeout } from "./params.ts";
import { queryParam } from "./records.ts";

export const GROUP_NAME_PATTERN = "^[a-zA-Z0-9._-]{1,249}$";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
type Query = Record<string, string | string[] | undefined>;

const groupParams = {
  type: "object",
  required: ["group"],
  properties: { group: { type: "string", pattern: GROUP_NAME_PATTERN } },
} as const;

export async function groupRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const { broker } = deps;

  app.post<{
    Params: { group: string };
    Querystring: Query;
    Body: { topic: string; partition: number; offset: number };
  }>(
    "/v1/groups/:group/offsets",
    {
      schema: {
        params: groupParams,
        body: {
          type: "object",
          required: ["topic", "partition", "offset"],
          additionalProperties: false,
          properties: {
            topic: { type: "string", pattern: "^[a-zA-Z0-9._-]{1,249}$" },
            partition: { type: "integer", minimum: 0, maximum: MAX_SAFE },
            offset: { type: "integer", minimum: 0, maximum: MAX_SAFE },
          },
        },
      },
    },
    async (req) => {
      const { group } = req.params;
      const { topic, partition, offset } = req.body;
      await broker.commitOffset(
        group,
        topic,
        partition,
        offset,
        parseTimeout(queryParam(req.query, "timeoutMs")),
      );
      return { group, topic, partition, offset };
    },
  );

  app.get<{ Params: { group: string } }>(
    "/v1/groups/:group/offsets",
    { schema: { params: groupParams } },
    async (req) => ({ offsets: broker.groupOffsets(req.params.group) }),
  );
}
