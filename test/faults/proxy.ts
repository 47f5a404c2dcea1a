// TCP proxies between raftbus nodes, one per directed link, with a fault policy
// per direction of traffic.
//
// The transport keeps ONE connection per pair of nodes (the lower id dials)
// and carries both directions of traffic on it. So a proxy cannot cut "A to B"
// by refusing A's dial alone: it must act on the bytes of each direction of a
// connection separately. It does so frame by frame (the transport's framing is
// `u32 length | u8 kind | payload`), never in the middle of a frame: a dropped
// direction loses whole frames, exactly like messages lost on the wire, and the
// other direction keeps flowing until the transport's own idle timeout notices
// the silence and reconnects (over TCP, one-way loss cannot last long unnoticed
// either). The source node of a connection is taken from its HELLO frame, so a
// proxy in front of a joining node (dialled by everyone at one address) applies
// the right per-link policy too.

import net from "node:net";

export type LinkMode =
  /** Forward every frame. */
  | { kind: "pass" }
  /** Discard every frame in this direction; the connection stays open. */
  | { kind: "drop" }
  /** Forward after a fixed delay, in order. */
  | { kind: "delay"; ms: number }
  /** Reset connections carrying this direction and refuse new ones (TCP RST). */
  | { kind: "refuse" };

export const PASS: LinkMode = { kind: "pass" };

const HEADER = 5;
/** Where a HELLO payload keeps the sender's node id (after magic u32, version u16, flags u8). */
const HELLO_NODE_ID_AT = 7;
const FRAME_HELLO = 1;

/** The policy of every directed link `from -> to`, shared by all proxies. */
export class Network {
  private readonly modes = new Map<string, LinkMode>();
  private readonly listeners = new Set<() => void>();
  readonly stats = { framesForwarded: 0, framesDropped: 0, framesDelayed: 0, connsRefused: 0 };

  mode(from: number, to: number): LinkMode {
    return this.modes.get(`${from}>${to}`) ?? PASS;
  }

  set(from: number, to: number, mode: LinkMode): void {
    if (mode.kind === "pass") this.modes.delete(`${from}>${to}`);
    else this.modes.set(`${from}>${to}`, mode);
    for (const l of this.listeners) l();
  }

  /** Both directions between a and b. */
  setBoth(a: number, b: number, mode: LinkMode): void {
    this.set(a, b, mode);
    this.set(b, a, mode);
  }

  /** Cuts every link between the two groups, both ways. */
  split(left: number[], right: number[], mode: LinkMode = { kind: "drop" }): void {
    for (const a of left) for (const b of right) this.setBoth(a, b, mode);
  }

  healAll(): void {
    this.modes.clear();
    for (const l of this.listeners) l();
  }

  /** The links not passing, for reports: "1>2 drop", ... */
  describe(): string[] {
    return [...this.modes].map(([k, m]) => `${k} ${m.kind}${m.kind === "delay" ? `(${m.ms}ms)` : ""}`);
  }

  onChange(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** Splits one direction of a byte stream into whole frames. */
class FrameSplitter {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (frame: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < HEADER) return;
      const total = 4 + this.buf.readUInt32LE(0);
      if (this.buf.length < total) return;
      const frame = this.buf.subarray(0, total);
      this.buf = this.buf.subarray(total);
      this.onFrame(frame);
    }
  }
}

/** One direction of a connection: where it writes and until when delayed frames are pending. */
interface Lane {
  dst: net.Socket;
  busyUntil: number;
}

interface Pair {
  client: net.Socket;
  server: net.Socket;
  /** The dialing node, known from the link or from its HELLO. */
  from: number | undefined;
  closed: boolean;
}

/**
 * Listens on a free port and forwards to `targetPort` (node `to`'s raft
 * listener). `from` is the node expected to dial through it (undefined: learn
 * it from the HELLO).
 */
export class LinkProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private readonly unlisten: () => void;
  port = 0;

  constructor(
    private readonly net_: Network,
    readonly from: number | undefined,
    readonly to: number,
    private readonly targetPort: number,
  ) {
    // A new "refuse" resets the live connections it covers.
    this.unlisten = net_.onChange(() => {
      for (const p of this.pairs) if (p.from !== undefined && this.refused(p.from)) this.destroy(p);
    });
  }

  private refused(from: number): boolean {
    return this.net_.mode(from, this.to).kind === "refuse" || this.net_.mode(this.to, from).kind === "refuse";
  }

  async listen(): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  private accept(client: net.Socket): void {
    if (this.from !== undefined && this.refused(this.from)) {
      this.net_.stats.connsRefused++;
      client.resetAndDestroy();
      return;
    }
    const server = net.connect(this.targetPort, "127.0.0.1");
    const pair: Pair = { client, server, from: this.from, closed: false };
    this.pairs.add(pair);
    client.setNoDelay(true);
    server.setNoDelay(true);
    const upLane: Lane = { dst: server, busyUntil: 0 };
    const downLane: Lane = { dst: client, busyUntil: 0 };
    const up = new FrameSplitter((f) => {
      if (pair.from === undefined && f[4] === FRAME_HELLO && f.length >= HEADER + HELLO_NODE_ID_AT + 8) {
        pair.from = f.readDoubleLE(HEADER + HELLO_NODE_ID_AT);
        if (this.refused(pair.from)) {
          this.net_.stats.connsRefused++;
          this.destroy(pair);
          return;
        }
      }
      this.forward(pair, pair.from, this.to, upLane, f);
    });
    const down = new FrameSplitter((f) => this.forward(pair, this.to, pair.from, downLane, f));
    client.on("data", (c: Buffer) => up.push(c));
    server.on("data", (c: Buffer) => down.push(c));
    for (const s of [client, server]) {
      s.on("error", () => this.destroy(pair));
      s.on("close", () => this.destroy(pair));
    }
  }

  private forward(pair: Pair, from: number | undefined, to: number | undefined, lane: Lane, f: Buffer) {
    if (pair.closed) return;
    // Before the HELLO names the source (cannot happen for the first frame), pass.
    const mode = from === undefined || to === undefined ? PASS : this.net_.mode(from, to);
    const st = this.net_.stats;
    if (mode.kind === "drop") {
      st.framesDropped++;
      return;
    }
    if (mode.kind === "refuse") {
      this.destroy(pair);
      return;
    }
    const now = Date.now();
    // Frames leave in order: a frame never overtakes one still delayed.
    const at = Math.max(now + (mode.kind === "delay" ? mode.ms : 0), lane.busyUntil);
    if (at <= now) {
      st.framesForwarded++;
      lane.dst.write(f);
      return;
    }
    st.framesDelayed++;
    lane.busyUntil = at;
    const t = setTimeout(() => {
      if (!pair.closed) lane.dst.write(f);
    }, at - now);
    t.unref();
  }

  private destroy(p: Pair): void {
    if (p.closed) return;
    p.closed = true;
    this.pairs.delete(p);
    p.client.resetAndDestroy();
    p.server.resetAndDestroy();
  }

  async close(): Promise<void> {
    this.unlisten();
    for (const p of [...this.pairs]) this.destroy(p);
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
