// The HTTP ceiling of bench:limits: a fastify server with raftbus's produce
// route shape and nothing behind it. POST /v1/topics/:topic/records takes the
// same bodies (application/octet-stream: one record; JSON: {"records": [...]},
// parsed) and answers at once with a position per record, as raftbus does after
// commit. Run as its own process (like a raftbus node):
//   node --import tsx bench/echo-server.ts <port>

import Fastify from "fastify";

const port = Number(process.argv[2] ?? 0);
const app = Fastify({ logger: false, disableRequestLogging: true, bodyLimit: 8 * 1024 * 1024 });
app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_req, body, done) =>
  done(null, body),
);
let offset = 0;
app.post<{ Params: { topic: string }; Body: Buffer | { records: unknown[] } }>(
  "/v1/topics/:topic/records",
  async (req) => {
    const n = Buffer.isBuffer(req.body) ? 1 : req.body.records.length;
    const timestamp = Date.now();
    const records = new Array(n);
    for (let i = 0; i < n; i++) records[i] = { partition: 0, offset: offset++, timestamp };
    return { records };
  },
);
await app.listen({ host: "127.0.0.1", port });
const addr = app.server.address();
process.stdout.write(`listening ${typeof addr === "object" && addr ? addr.port : port}\n`);
