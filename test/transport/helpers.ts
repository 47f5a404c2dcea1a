import net from "node:net";
import type { Message } from "../../src/raft/types.ts";
import type { Logger } from "../../src/transport/logger.ts";
import { TcpTransport, type TcpTransportOptions } from "../../src/transport/transport.ts";

export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg: string;
}

export function captureLogger(): { logger: Logger; lines: LogLine[]; text: () => string } {
  const lines: LogLine[] = [];
  const mk =
    (level: LogLine["level"]) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? "" });
    };
  return {
    logger: { debug: mk("debug"), info: mk("info"), warn: mk("warn"), error: mk("error") },
    lines,
    text: () => lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.obj)}`).join("\n"),
  };
}

export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Node {
  t: TcpTransport;
  id: number;
  addr: string;
  got: Message[];
  apps: { from: number; payload: Uint8Array }[];
  unreachable: number[];
  log: ReturnType<typeof captureLogger>;
}

/** Tracks everything a test opens so afterEach can close it even when the test fails. */
export class Harness {
  private readonly transports: TcpTransport[] = [];
  private readonly servers: net.Server[] = [];
  private readonly sockets: net.Socket[] = [];

  async node(
    id: number,
    opts: Partial<TcpTransportOptions> & { peers?: Map<number, string> } = {},
  ): Promise<Node> {
    const log = captureLogger();
    const t = new TcpTransport({
      nodeId: id,
      clusterId: "test-cluster",
      listen: "127.0.0.1:0",
      peers: new Map(),
      logger: log.logger,
      backoffMaxMs: 200,
      ...opts,
    });
    this.transports.push(t);
    const n: Node = { t, id, addr: "", got: [], apps: [], unreachable: [], log };
    t.onMessage((m) => n.got.push(m));
    t.onApp((from, payload) => n.apps.push({ from, payload }));
    t.onUnreachable((p) => n.unreachable.push(p));
    await t.start();
    n.addr = `127.0.0.1:${t.address().port}`;
    return n;
  }

  /** Nodes that all know each other. */
  async mesh(ids: number[], opts: Partial<TcpTransportOptions> = {}): Promise<Node[]> {
    const nodes: Node[] = [];
    for (const id of ids) nodes.push(await this.node(id, opts));
    for (const a of nodes) for (const b of nodes) if (a !== b) a.t.setPeer(b.id, b.addr);
    return nodes;
  }

  track(t: TcpTransport): TcpTransport {
    this.transports.push(t);
    return t;
  }

  async server(onConn: (s: net.Socket) => void, port = 0): Promise<net.Server> {
    const srv = net.createServer(onConn);
    this.servers.push(srv);
    await new Promise<void>((res, rej) => {
      srv.once("error", rej);
      srv.listen(port, "127.0.0.1", () => res());
    });
    return srv;
  }

  /** A TCP proxy to `target`; returns its address and a count of connections it carried. */
  async proxy(target: () => string): Promise<{ addr: string; connections: () => number }> {
    let n = 0;
    const srv = await this.server((client) => {
      n++;
      const [host, port] = target().split(":");
      const upstream = net.connect(Number(port), host);
      this.sockets.push(client, upstream);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const a = srv.address() as net.AddressInfo;
    return { addr: `127.0.0.1:${a.port}`, connections: () => n };
  }

  async rawConnect(addr: string): Promise<net.Socket> {
    const [host, port] = addr.split(":");
    const s = net.connect(Number(port), host);
    this.sockets.push(s);
    s.on("error", () => {});
    s.resume(); // keep reading, so the client notices when the transport closes it
    await new Promise<void>((res, rej) => {
      s.once("connect", () => res());
      s.once("error", rej);
    });
    return s;
  }

  /** A port nothing listens on (bound and released). */
  async deadPort(): Promise<number> {
    const srv = net.createServer();
    await new Promise<void>((res) => srv.listen(0, "127.0.0.1", () => res()));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((res) => srv.close(() => res()));
    return port;
  }

  async cleanup(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.transports.map((t) => t.close()));
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((res) => {
            if (!s.listening) return res();
            s.close(() => res());
          }),
      ),
    );
    this.transports.length = 0;
    this.servers.length = 0;
    this.sockets.length = 0;
  }
}

/** Resolves when the socket is closed (by the other side or an error). */
export function closed(s: net.Socket): Promise<void> {
  return new Promise((res) => {
    if (s.destroyed) return res();
    s.once("close", () => res());
  });
}
