// What the HTTP layer is given: the broker service and the runtime (cluster
// status and membership). HTTP never touches storage directly.

import type { FastifyBaseLogger } from "fastify";
import type { Broker } from "../broker/broker.ts";
import type { ApplyResult } from "../broker/state.ts";
import type { Metrics } from "../metrics/registry.ts";
import type { Runtime } from "../node/runtime.ts";

export interface HttpDeps {
  runtime: Runtime<ApplyResult>;
  broker: Broker;
  /** When set, every /v1 request needs `Authorization: Bearer <token>`. */
  authToken?: string | undefined;
  /** Limits (API.md defaults). */
  maxRecordBytes?: number;
  maxBodyBytes?: number;
  /** This node's Prometheus metrics; without it there is no GET /metrics. */
  metrics?: Metrics | undefined;
  /** Request logs: client errors at debug, server errors at error (each with its reqId). */
  logger?: FastifyBaseLogger | undefined;
}
