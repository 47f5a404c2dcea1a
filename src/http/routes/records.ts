// Placeholder until the routes land (being written now).
import type { FastifyInstance } from "fastify";
import type { HttpDeps } from "../deps.ts";

export async function recordRoutes(_app: FastifyInstance, _deps: HttpDeps): Promise<void> {}
