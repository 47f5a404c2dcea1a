// TcpTransport: node-to-node Raft (and application) traffic over TCP.
//
// Design decisions:
//
// - One connection per peer pair, with a fixed direction: the node with the
//   lower id dials (eagerly at start, when a peer is added, and again after
//   every loss, with exponential backoff 50 ms doubling to 2 s, equal jitter,
//   reset once a connection has stayed up for backoffMaxMs); the higher id only
//   accepts. Both directions of traffic share that connection. A node with
//   something to send and no connection queues it (bounded) until the dial
//   arrives. Connections are identified by the HELLO's node id, never by the
//   remote address, so the dial address may be a proxy, a NAT or a load
//   balancer. Both nodes must know each other (constructor `peers` or
//   `setPeer`): a connection from an unknown id is refused.
// - Handshake (handshake.ts): HELLO both ways with protocol version, node id,
//   the id the dialer expects to reach, cluster id and a nonce. With a cluster
//   secret, mutual HMAC-SHA256 proofs over the peer's nonce (the challenge
//   rides in HELLO instead of a separate CHALLENGE frame: it saves a round
//   trip). A wrong cluster id, an unknown or duplicate node id, a dial in the
//   wrong direction, a secret mismatch or a bad proof gets a REJECT frame with
//   the reason, a log line, and the connection closed. Until the handshake is
//   done, frames are limited to 1 KiB and only HELLO/PROOF/REJECT are allowed.
// - Frames (frame.ts): u32 length | u8 kind | payload. RAFT frames batch every
//   message queued for the peer when the socket is writable (up to
//   maxBatchBytes); APP frames carry opaque bytes (requests forwarded to the
//   leader); PING keeps an idle connection observably alive. A garbage or
//   oversized frame, an undecodable message, or a message not addressed to
//   this node closes that connection (with a log line); nothing throws out of
//   a socket callback.
// - Bounded queues: each peer has one FIFO (Raft and APP items in order),
//   counted in encoded bytes. When full, the new message is dropped (send
//   returns false, stats count it, onUnreachable fires): Raft retransmits. Items
//   older than maxQueueAgeMs are dropped too, so a long outage does not end in
//   a burst of stale messages. Messages are encoded when queued, so the queue
//   holds bytes and the caller's objects are not retained. Socket backpressure
//   is respected: when write() returns false nothing more is written until
//   'drain', so the userland socket buffer holds at most one batch.
// - Liveness: each side sends a PING when it has sent nothing for
//   pingIntervalMs and drops a connection that has received nothing for
//   idleTimeoutMs (half-open connections, dead machines); handshakes must
//   finish within handshakeTimeoutMs. One unref'd sweep timer drives all of
//   that; dial timers are unref'd too, and close() clears everything.
// - Callbacks: onMessage/onApp run synchronously as frames arrive, one handler
//   each (a later call replaces it); handler exceptions are logged, not
//   propagated. onUnreachable is deferred to a microtask so that it never runs
//   inside send(), and is rate-limited per peer (unreachableIntervalMs). It
//   fires when a send is dropped, a dial or handshake fails, or a connection
//   is lost.
// - Received messages keep zero-copy views into their frame's buffer (each
//   frame has its own), and `to` must be this node; `from` is not checked
//   against the connection's peer because Raft forwards ReadIndex and
//   TransferLeader with the originator's `from`.

import net from "node:net";
import { performance } from "node:perf_hooks";
import { type Message, MessageType } from "../raft/types.ts";
import { formatHostPort, type HostPort, parseHostPort } from "./addr.ts";
import { encodeMessageWithPrefix } from "./codec.ts";
import { decodeRaftBatch, encodeFrame, FRAME_HEADER_BYTES, FrameKind, FrameReader } from "./frame.ts";
import {
  computeProof,
  decodeHello,
  encodeHello,
  HANDSHAKE_MAX_PAYLOAD,
  MAX_CLUSTER_ID_BYTES,
  newNonce,
  PROOF_BYTES,
  PROTOCOL_VERSION,
  proofMatches,
} from "./handshake.ts";
import { type Logger, silentLogger } from "./logger.ts";

export interface TcpTransportOptions {
  /** This node's id (a positive integer). */
  nodeId: number;
  /** Peers must present the same cluster id (1..255 bytes of utf-8). */
  clusterId: string;
  /** Where to listen for peers, "host:port" (port 0: any free port, see address()). */
  listen: string;
  /** Peer id -> the address to dial it at (may be a proxy). Copied. */
  peers: Map<number, string>;
  /** Cluster secret: peers must prove they know it (mutual HMAC challenge). */
  secret?: string;
  logger?: Logger;
  /** Per-peer send queue bound, in encoded bytes. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Largest frame sent or accepted, header included. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Most message bytes batched in one RAFT frame. Default 1 MiB. */
  maxBatchBytes?: number;
  /** Queued items older than this are dropped. Default 10 s. */
  maxQueueAgeMs?: number;
  /** First reconnect delay. Default 50 ms. */
  backoffBaseMs?: number;
  /** Largest reconnect delay. Default 2 s. */
  backoffMaxMs?: number;
  /** A connection must finish its handshake within this. Default 5 s. */
  handshakeTimeoutMs?: number;
  /** Send a PING after this long without sending. Default 1 s. */
  pingIntervalMs?: number;
  /** Close a connection after this long without receiving. Default 5 s. */
  idleTimeoutMs?: number;
  /** At most one onUnreachable per peer per this interval. Default 200 ms. */
  unreachableIntervalMs?: number;
  /** Inbound connections still in their handshake beyond this are refused. Default 64. */
  maxPendingConnections?: number;
}

export interface PeerStats {
  id: number;
  /** The address this node dials the peer at (unused when the peer dials us). */
  address: string;
  /** "dial": this node (the lower id) dials the peer; "accept": the peer dials this node. */
  direction: "dial" | "accept";
  connected: boolean;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  messagesDropped: number;
  appSent: number;
  appReceived: number;
  appDropped: number;
  queuedBytes: number;
  queuedItems: number;
  /** Connections established (handshake completed) so far. */
  connects: number;
}

export interface TransportStats {
  nodeId: number;
  /** The bound listen address, or null before start()/after close(). */
  listening: string | null;
  peers: PeerStats[];
  /** Connections refused or failed during the handshake (either direction). */
  handshakeFailures: number;
  /** Established connections closed for a protocol violation (bad frame, bad message, ...). */
  protocolErrors: number;
}

const MiB = 1024 * 1024;
/** Batches up to this size are copied into one buffer; larger ones are written with writev. */
const COPY_BATCH_BYTES = 64 * 1024;
/** A connection we have ended is destroyed if it has not closed after this long. */
const LINGER_MS = 1000;
const LOCAL_ONLY = new Set<MessageType>([MessageType.Hup, MessageType.Beat, MessageType.Unreachable]);

type ConnState = "handshake" | "ready" | "closed";

interface QueueItem {
  /** RAFT: `u32 length | message`, batched into a RAFT frame. APP: a whole APP frame. */
  raft: boolean;
  buf: Buffer;
  at: number;
}

/** FIFO of encoded items with a byte count; O(1) shift. */
class SendQueue {
  private items: QueueItem[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(it: QueueItem): void {
    this.items.push(it);
    this.bytes += it.buf.length;
  }

  peek(i = 0): QueueItem | undefined {
    return this.items[this.head + i];
  }

  shift(): QueueItem | undefined {
    const it = this.items[this.head];
    if (!it) return undefined;
    this.items[this.head] = undefined as unknown as QueueItem;
    this.head++;
    this.bytes -= it.buf.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return it;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
  }
}

interface PeerState {
  id: number;
  addr: string;
  hp: HostPort;
  /** This node dials the peer (it has the lower id). */
  dials: boolean;
  removed: boolean;
  /** The established connection, if any. */
  conn: Conn | null;
  /** An outbound connection still in its handshake. */
  dialing: Conn | null;
  dialTimer: NodeJS.Timeout | null;
  backoffMs: number;
  /** Dial failures since the last success are logged at warn once, then at debug. */
  failing: boolean;
  dropLogged: boolean;
  queue: SendQueue;
  flushScheduled: boolean;
  stats: Omit<PeerStats, "id" | "address" | "direction" | "connected" | "queuedBytes" | "queuedItems">;
}

let connSeq = 0;

class Conn {
  readonly seq = ++connSeq;
  state: ConnState = "handshake";
  /** Expected (dialer) or announced (acceptor) peer id; 0 until known. */
  peerId: number;
  /** Set at creation for a dial, when established for an accept. */
  peer: PeerState | null;
  readonly myNonce = newNonce();
  peerNonce: Uint8Array | null = null;
  readonly createdAt: number;
  readyAt = 0;
  closedAt = 0;
  lastRecv: number;
  lastSend: number;
  blocked = false;
  lastError: Error | null = null;
  /** Bytes in and out on this connection (added to the peer's stats once it is known). */
  bytesIn = 0;
  bytesOut = 0;
  /** Why we are closing it (for the close log line). */
  closeReason = "";
  readonly reader: FrameReader;

  constructor(
    readonly socket: net.Socket,
    readonly role: "dialer" | "acceptor",
    peer: PeerState | null,
    onFrame: (c: Conn, kind: FrameKind, payload: Buffer) => boolean,
  ) {
    this.peer = peer;
    this.peerId = peer?.id ?? 0;
    this.createdAt = this.lastRecv = this.lastSend = performance.now();
    this.reader = new FrameReader(HANDSHAKE_MAX_PAYLOAD, (k, p) => onFrame(this, k, p));
  }

  get remote(): string {
    const s = this.socket;
    return s.remoteAddress ? formatHostPort(s.remoteAddress, s.remotePort ?? 0) : "?";
  }
}

/** Thrown by the handshake steps; the connection is refused with this reason. */
class HandshakeError extends Error {
  constructor(
    message: string,
    readonly level: "warn" | "error" = "warn",
  ) {
    super(message);
  }
}

function positiveInt(v: number): boolean {
  return Number.isSafeInteger(v) && v > 0;
}

function errInfo(err: unknown): Error | string {
  return err instanceof Error ? err : String(err);
}

export class TcpTransport {
  readonly nodeId: number;
  readonly clusterId: string;
  private readonly listenAddr: HostPort;
  private readonly secret: string | undefined;
  private readonly log: Logger;
  private readonly maxQueueBytes: number;
  private readonly maxFrameBytes: number;
  private readonly maxBatchBytes: number;
  private readonly maxQueueAgeMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly idleTimeoutMs: number;
  private readonly unreachableIntervalMs: number;
  private readonly maxPendingConnections: number;

  private readonly peers = new Map<number, PeerState>();
  private readonly conns = new Set<Conn>();
  private readonly lastUnreachable = new Map<number, number>();
  private readonly logTimes = new Map<string, number>();
  private server: net.Server | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private started = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private starting: Promise<void> | null = null;
  private handshakeFailures = 0;
  private protocolErrors = 0;

  private messageHandler: ((m: Message) => void) | null = null;
  private appHandler: ((from: number, payload: Uint8Array) => void) | null = null;
  private unreachableHandler: ((peer: number) => void) | null = null;

  constructor(opts: TcpTransportOptions) {
    if (!positiveInt(opts.nodeId)) throw new Error(`transport: nodeId must be a positive integer`);
    const cidBytes = Buffer.byteLength(opts.clusterId ?? "", "utf8");
    if (cidBytes < 1 || cidBytes > MAX_CLUSTER_ID_BYTES) {
      throw new Error(`transport: clusterId must be 1..${MAX_CLUSTER_ID_BYTES} bytes`);
    }
    if (opts.secret !== undefined && opts.secret.length === 0) {
      throw new Error("transport: secret must not be empty");
    }
    this.nodeId = opts.nodeId;
    this.clusterId = opts.clusterId;
    this.listenAddr = parseHostPort(opts.listen);
    this.secret = opts.secret;
    this.log = opts.logger ?? silentLogger;
    this.maxFrameBytes = opts.maxFrameBytes ?? 64 * MiB;
    if (!(this.maxFrameBytes >= 64 * 1024 && this.maxFrameBytes <= 0xffffffff)) {
      throw new Error("transport: maxFrameBytes must be between 64 KiB and 4 GiB");
    }
    this.maxQueueBytes = opts.maxQueueBytes ?? 64 * MiB;
    this.maxBatchBytes = Math.min(opts.maxBatchBytes ?? MiB, this.maxFrameBytes - FRAME_HEADER_BYTES);
    this.maxQueueAgeMs = opts.maxQueueAgeMs ?? 10_000;
    this.backoffBaseMs = opts.backoffBaseMs ?? 50;
    this.backoffMaxMs = Math.max(opts.backoffMaxMs ?? 2000, this.backoffBaseMs);
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.pingIntervalMs = opts.pingIntervalMs ?? 1000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 5000;
    this.unreachableIntervalMs = opts.unreachableIntervalMs ?? 200;
    this.maxPendingConnections = opts.maxPendingConnections ?? 64;
    for (const [id, addr] of opts.peers) this.setPeer(id, addr);
  }

  // ---- lifecycle ---------------------------------------------------------------

  /** Listens for peers (resolves once bound) and starts dialing the peers this node dials. */
  start(): Promise<void> {
    if (this.started || this.closed) {
      return Promise.reject(new Error("transport: start() called twice or after close()"));
    }
    this.started = true;
    this.starting = this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const server = net.createServer((s) => this.onInbound(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once("error", onError);
      server.listen({ host: this.listenAddr.host || undefined, port: this.listenAddr.port }, () => {
        server.off("error", onError);
        resolve();
      });
    }).catch((err: unknown) => {
      this.server = null;
      this.closed = true;
      throw err;
    });
    if (this.closed) return; // close() was called while binding; it closes the server
    server.on("error", (err) => this.log.error({ err }, "transport: listener error"));
    this.log.info({ node: this.nodeId, listen: this.listening() }, "transport: listening");
    const tick = Math.max(10, Math.min(250, this.pingIntervalMs, this.handshakeTimeoutMs));
    this.sweepTimer = setInterval(() => this.sweep(), tick);
    this.sweepTimer.unref();
    for (const p of this.peers.values()) if (p.dials) this.dial(p);
  }

  /** The bound listen address (after start()). */
  address(): net.AddressInfo {
    const a = this.server?.address();
    if (!a || typeof a === "string") throw new Error("transport: not listening");
    return a;
  }

  /** Closes the listener and every connection, drops every queue and clears every timer. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    for (const p of this.peers.values()) {
      if (p.dialTimer) clearTimeout(p.dialTimer);
      p.dialTimer = null;
      p.queue.clear();
    }
    for (const c of this.conns) {
      c.state = "closed";
      c.socket.destroy();
    }
    this.closing = (async () => {
      await this.starting?.catch(() => {});
      const server = this.server;
      this.server = null;
      if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    })();
    return this.closing;
  }

  // ---- handlers ------------------------------------------------------------------

  onMessage(handler: (m: Message) => void): void {
    this.messageHandler = handler;
  }

  onApp(handler: (from: number, payload: Uint8Array) => void): void {
    this.appHandler = handler;
  }

  onUnreachable(handler: (peer: number) => void): void {
    this.unreachableHandler = handler;
  }

  // ---- membership -----------------------------------------------------------------

  /** Adds a peer or changes the address this node dials it at. */
  setPeer(id: number, addr: string): void {
    if (!positiveInt(id)) throw new Error(`transport: peer id must be a positive integer, got ${id}`);
    if (id === this.nodeId) throw new Error(`transport: peer id ${id} is this node`);
    const hp = parseHostPort(addr);
    if (!hp.host || hp.port === 0)
      throw new Error(`transport: peer ${id} needs a host and a port: "${addr}"`);
    const existing = this.peers.get(id);
    if (existing) {
      if (existing.addr === addr) return;
      this.log.info({ peer: id, from: existing.addr, to: addr }, "transport: peer address changed");
      existing.addr = addr;
      existing.hp = hp;
      if (!existing.dials) return;
      existing.backoffMs = this.backoffBaseMs;
      if (existing.dialTimer) clearTimeout(existing.dialTimer);
      existing.dialTimer = null;
      // Reconnect at the new address; the close handlers redial.
      const old = existing.conn ?? existing.dialing;
      if (old) this.closeConn(old, "peer address changed");
      else if (this.started && !this.closed) this.dial(existing);
      return;
    }
    const p: PeerState = {
      id,
      addr,
      hp,
      dials: this.nodeId < id,
      removed: false,
      conn: null,
      dialing: null,
      dialTimer: null,
      backoffMs: this.backoffBaseMs,
      failing: false,
      dropLogged: false,
      queue: new SendQueue(),
      flushScheduled: false,
      stats: {
        bytesSent: 0,
        bytesReceived: 0,
        messagesSent: 0,
        messagesReceived: 0,
        messagesDropped: 0,
        appSent: 0,
        appReceived: 0,
        appDropped: 0,
        connects: 0,
      },
    };
    this.peers.set(id, p);
    if (p.dials && this.started && !this.closed) this.dial(p);
  }

  /** Forgets a peer: closes its connection, drops its queue, refuses it from now on. */
  removePeer(id: number): void {
    const p = this.peers.get(id);
    if (!p) return;
    this.peers.delete(id);
    this.lastUnreachable.delete(id);
    p.removed = true;
    if (p.dialTimer) clearTimeout(p.dialTimer);
    p.dialTimer = null;
    p.queue.clear();
    if (p.conn) this.closeConn(p.conn, "peer removed");
    if (p.dialing) this.closeConn(p.dialing, "peer removed");
  }

  isConnected(id: number): boolean {
    return this.peers.get(id)?.conn?.state === "ready";
  }

  stats(): TransportStats {
    const peers: PeerStats[] = [];
    for (const p of this.peers.values()) {
      peers.push({
        id: p.id,
        address: p.addr,
        direction: p.dials ? "dial" : "accept",
        connected: p.conn?.state === "ready",
        ...p.stats,
        queuedBytes: p.queue.bytes,
        queuedItems: p.queue.length,
      });
    }
    peers.sort((a, b) => a.id - b.id);
    return {
      nodeId: this.nodeId,
      listening: this.listening(),
      peers,
      handshakeFailures: this.handshakeFailures,
      protocolErrors: this.protocolErrors,
    };
  }

  // ---- sending ---------------------------------------------------------------------

  /** Queues `m` for `m.to`. False: dropped (unknown peer, queue full, unencodable, closed). */
  send(m: Message): boolean {
    if (this.closed) return false;
    const p = this.peers.get(m.to);
    if (!p) {
      this.reportUnreachable(m.to);
      return false;
    }
    if (LOCAL_ONLY.has(m.type)) {
      p.stats.messagesDropped++;
      this.log.warn(
        { peer: p.id, type: MessageType[m.type] },
        "transport: refusing to send a local-only message",
      );
      return false;
    }
    const now = performance.now();
    if (!this.makeRoom(p, 1, now)) return this.dropped(p, true, "send queue full");
    let buf: Buffer;
    try {
      buf = encodeMessageWithPrefix(m, 4);
    } catch (err) {
      p.stats.messagesDropped++;
      this.log.error({ peer: p.id, err: errInfo(err) }, "transport: cannot encode message");
      return false;
    }
    if (buf.length + FRAME_HEADER_BYTES > this.maxFrameBytes) {
      return this.dropped(p, true, `message of ${buf.length} bytes exceeds maxFrameBytes`);
    }
    if (!this.makeRoom(p, buf.length, now)) return this.dropped(p, true, "send queue full");
    p.queue.push({ raft: true, buf, at: now });
    this.scheduleFlush(p);
    return true;
  }

  /** Queues opaque bytes for peer `to` (copied). False: dropped. */
  sendApp(to: number, payload: Uint8Array): boolean {
    if (this.closed) return false;
    const p = this.peers.get(to);
    if (!p) {
      this.reportUnreachable(to);
      return false;
    }
    const size = FRAME_HEADER_BYTES + payload.length;
    if (size > this.maxFrameBytes) return this.dropped(p, false, "app payload exceeds maxFrameBytes");
    const now = performance.now();
    if (!this.makeRoom(p, size, now)) return this.dropped(p, false, "send queue full");
    p.queue.push({ raft: false, buf: encodeFrame(FrameKind.App, payload), at: now });
    this.scheduleFlush(p);
    return true;
  }

  private dropped(p: PeerState, raft: boolean, why: string): false {
    if (raft) p.stats.messagesDropped++;
    else p.stats.appDropped++;
    if (!p.dropLogged) {
      p.dropLogged = true;
      this.log.warn(
        { peer: p.id, why, queuedBytes: p.queue.bytes, connected: p.conn !== null },
        "transport: dropping messages to peer",
      );
    }
    this.reportUnreachable(p.id);
    return false;
  }

  /** Drops stale items at the head, then says whether `bytes` more fit. */
  private makeRoom(p: PeerState, bytes: number, now: number): boolean {
    this.evictStale(p, now);
    return p.queue.bytes + bytes <= this.maxQueueBytes;
  }

  private evictStale(p: PeerState, now: number): void {
    let n = 0;
    for (let it = p.queue.peek(); it && now - it.at > this.maxQueueAgeMs; it = p.queue.peek()) {
      p.queue.shift();
      if (it.raft) p.stats.messagesDropped++;
      else p.stats.appDropped++;
      n++;
    }
    if (n > 0) {
      this.log.debug({ peer: p.id, dropped: n }, "transport: dropped stale queued messages");
      this.reportUnreachable(p.id);
    }
  }

  private scheduleFlush(p: PeerState): void {
    if (p.flushScheduled || !p.conn || p.conn.blocked) return;
    p.flushScheduled = true;
    queueMicrotask(() => this.flush(p));
  }

  /** Writes queued items until the queue is empty or the socket pushes back. */
  private flush(p: PeerState): void {
    p.flushScheduled = false;
    const c = p.conn;
    if (c?.state !== "ready" || c.blocked || this.closed) return;
    const q = p.queue;
    const now = performance.now();
    this.evictStale(p, now);
    let ok = true;
    while (ok && q.length > 0) {
      const first = q.peek()!;
      if (!first.raft) {
        q.shift();
        ok = c.socket.write(first.buf);
        p.stats.appSent++;
        p.stats.bytesSent += first.buf.length;
      } else {
        let count = 0;
        let bytes = 0;
        for (let it = q.peek(0); it?.raft; it = q.peek(count)) {
          if (count > 0 && bytes + it.buf.length > this.maxBatchBytes) break;
          bytes += it.buf.length;
          count++;
        }
        const total = FRAME_HEADER_BYTES + bytes;
        if (bytes <= COPY_BATCH_BYTES) {
          const out = Buffer.allocUnsafe(total);
          out.writeUInt32LE(bytes + 1, 0);
          out[4] = FrameKind.Raft;
          let off = FRAME_HEADER_BYTES;
          for (let i = 0; i < count; i++) {
            const it = q.shift()!;
            out.set(it.buf, off);
            off += it.buf.length;
          }
          ok = c.socket.write(out);
        } else {
          const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
          h.writeUInt32LE(bytes + 1, 0);
          h[4] = FrameKind.Raft;
          c.socket.cork();
          c.socket.write(h);
          for (let i = 0; i < count; i++) ok = c.socket.write(q.shift()!.buf);
          c.socket.uncork();
        }
        p.stats.messagesSent += count;
        p.stats.bytesSent += total;
      }
      c.lastSend = now;
    }
    p.dropLogged = false;
    if (!ok) c.blocked = true;
  }

  private reportUnreachable(id: number): void {
    const h = this.unreachableHandler;
    if (!h || this.closed) return;
    const now = performance.now();
    const last = this.lastUnreachable.get(id);
    if (last !== undefined && now - last < this.unreachableIntervalMs) return;
    this.lastUnreachable.set(id, now);
    queueMicrotask(() => {
      if (this.closed) return;
      try {
        h(id);
      } catch (err) {
        this.log.error({ peer: id, err: errInfo(err) }, "transport: onUnreachable handler threw");
      }
    });
  }

  // ---- connections -----------------------------------------------------------------

  private dial(p: PeerState): void {
    if (this.closed || p.removed || p.conn || p.dialing) return;
    const socket = net.connect({ host: p.hp.host, port: p.hp.port });
    const c = new Conn(socket, "dialer", p, (cc, k, pl) => this.onFrame(cc, k, pl));
    p.dialing = c;
    this.attachSocket(c);
    socket.once("connect", () => {
      if (c.state !== "handshake") return;
      this.log.debug({ peer: p.id, addr: p.addr }, "transport: connected, sending hello");
      this.sendHello(c);
    });
  }

  private scheduleDial(p: PeerState): void {
    if (this.closed || p.removed || !p.dials || p.conn || p.dialing || p.dialTimer) return;
    const b = p.backoffMs;
    p.backoffMs = Math.min(b * 2, this.backoffMaxMs);
    const delay = b / 2 + (Math.random() * b) / 2;
    p.dialTimer = setTimeout(() => {
      p.dialTimer = null;
      this.dial(p);
    }, delay);
    p.dialTimer.unref();
  }

  private onInbound(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    let pending = 0;
    for (const c of this.conns) if (c.role === "acceptor" && c.state === "handshake") pending++;
    if (pending >= this.maxPendingConnections) {
      this.handshakeFailures++;
      this.log.warn(
        { remote: socket.remoteAddress, pending },
        "transport: too many connections in handshake, refusing one",
      );
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    const c = new Conn(socket, "acceptor", null, (cc, k, pl) => this.onFrame(cc, k, pl));
    this.attachSocket(c);
    this.log.debug({ remote: c.remote }, "transport: inbound connection");
  }

  private attachSocket(c: Conn): void {
    const s = c.socket;
    this.conns.add(c);
    s.setNoDelay(true);
    s.on("data", (chunk: Buffer) => this.onData(c, chunk));
    s.on("error", (err) => {
      c.lastError = err;
    });
    s.on("drain", () => {
      c.blocked = false;
      if (c.peer && c.peer.conn === c) this.flush(c.peer);
    });
    s.on("close", () => this.onClose(c));
  }

  private onData(c: Conn, chunk: Buffer): void {
    if (c.state === "closed") return;
    c.lastRecv = performance.now();
    c.bytesIn += chunk.length;
    if (c.peer) c.peer.stats.bytesReceived += chunk.length;
    try {
      c.reader.push(chunk);
    } catch (err) {
      this.protocolError(c, `bad frame: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private onFrame(c: Conn, kind: FrameKind, payload: Buffer): boolean {
    if (c.state === "closed") return false;
    try {
      if (kind === FrameKind.Reject) {
        const reason = `refused by peer: ${payload.toString("utf8", 0, Math.min(payload.length, 256))}`;
        if (c.state === "handshake") this.handshakeFailed(c, reason, "warn", false);
        else this.protocolError(c, reason, false);
      } else if (c.state === "handshake") {
        if (kind === FrameKind.Hello) this.onHello(c, payload);
        else if (kind === FrameKind.Proof) this.onProof(c, payload);
        else this.handshakeFailed(c, `${FrameKind[kind]} frame before the handshake completed`);
      } else if (kind === FrameKind.Raft) {
        this.onRaft(c, payload);
      } else if (kind === FrameKind.App) {
        const p = c.peer!;
        p.stats.appReceived++;
        if (this.appHandler) {
          try {
            this.appHandler(p.id, new Uint8Array(payload.buffer, payload.byteOffset, payload.length));
          } catch (err) {
            this.log.error({ peer: p.id, err: errInfo(err) }, "transport: onApp handler threw");
          }
        }
      } else if (kind !== FrameKind.Ping) {
        this.protocolError(c, `unexpected ${FrameKind[kind]} frame after the handshake`);
      }
    } catch (err) {
      if (err instanceof HandshakeError) {
        this.handshakeFailed(c, err.message, err.level);
        return false;
      }
      // Handshake decoding errors and anything unforeseen: never out of a socket callback.
      const msg = `bad ${FrameKind[kind]} frame: ${err instanceof Error ? err.message : String(err)}`;
      if (c.state === "handshake") this.handshakeFailed(c, msg);
      else this.protocolError(c, msg);
    }
    return (c.state as ConnState) !== "closed";
  }

  private onRaft(c: Conn, payload: Buffer): void {
    const p = c.peer!;
    let msgs: Message[];
    try {
      msgs = decodeRaftBatch(payload);
    } catch (err) {
      this.protocolError(c, `undecodable RAFT frame: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    for (const m of msgs) {
      if (m.to !== this.nodeId || LOCAL_ONLY.has(m.type)) {
        this.protocolError(c, `bad ${MessageType[m.type]} message to ${m.to} on the wire`);
        return;
      }
    }
    p.stats.messagesReceived += msgs.length;
    const h = this.messageHandler;
    if (!h) return;
    for (const m of msgs) {
      try {
        h(m);
      } catch (err) {
        this.log.error({ peer: p.id, err: errInfo(err) }, "transport: onMessage handler threw");
      }
      if (this.closed) return;
    }
  }

  private sendHello(c: Conn): void {
    const hello = encodeHello({
      version: PROTOCOL_VERSION,
      nodeId: this.nodeId,
      peerId: c.peerId,
      clusterId: this.clusterId,
      auth: this.secret !== undefined,
      nonce: c.myNonce,
    });
    this.writeRaw(c, encodeFrame(FrameKind.Hello, hello));
  }

  private onHello(c: Conn, payload: Buffer): void {
    if (c.peerNonce) throw new HandshakeError("second HELLO");
    const h = decodeHello(payload);
    if (h.version !== PROTOCOL_VERSION) {
      throw new HandshakeError(
        `unsupported protocol version ${h.version} (this node speaks ${PROTOCOL_VERSION})`,
      );
    }
    if (h.clusterId !== this.clusterId) {
      throw new HandshakeError(
        `cluster id mismatch: peer has "${h.clusterId}", this node "${this.clusterId}"`,
      );
    }
    if (!positiveInt(h.nodeId)) throw new HandshakeError(`invalid node id ${h.nodeId}`);
    if (this.secret !== undefined && !h.auth) {
      throw new HandshakeError(`node ${h.nodeId} has no cluster secret; this node requires one`);
    }
    if (this.secret === undefined && h.auth) {
      throw new HandshakeError(`node ${h.nodeId} requires a cluster secret; this node has none`);
    }
    if (c.role === "dialer") {
      if (h.nodeId !== c.peerId) {
        throw new HandshakeError(
          `dialed node ${c.peerId} at ${c.peer!.addr} but node ${h.nodeId} answered (wrong address?)`,
          "error",
        );
      }
      if (h.peerId !== this.nodeId) {
        throw new HandshakeError(
          `node ${h.nodeId} answered for node ${h.peerId}, this is node ${this.nodeId}`,
        );
      }
      c.peerNonce = h.nonce;
      // With a secret, wait for the acceptor's PROOF (it follows its HELLO).
      if (this.secret === undefined) this.established(c, c.peer!);
      return;
    }
    // Acceptor.
    if (h.nodeId === this.nodeId) {
      throw new HandshakeError(`duplicate node id: a peer claims to be node ${h.nodeId}, this node`, "error");
    }
    const p = this.peers.get(h.nodeId);
    if (!p) throw new HandshakeError(`unknown node id ${h.nodeId}`);
    if (p.dials) {
      throw new HandshakeError(`node ${h.nodeId} dialed node ${this.nodeId}, but the lower id dials`);
    }
    if (h.peerId !== 0 && h.peerId !== this.nodeId) {
      throw new HandshakeError(
        `node ${h.nodeId} dialed node ${h.peerId} but reached node ${this.nodeId} (wrong address?)`,
        "error",
      );
    }
    c.peerId = h.nodeId;
    c.peerNonce = h.nonce;
    this.sendHello(c);
    if (this.secret === undefined) {
      this.established(c, p);
      return;
    }
    const proof = computeProof(
      this.secret,
      "acceptor",
      this.clusterId,
      this.nodeId,
      c.peerId,
      c.myNonce,
      h.nonce,
    );
    this.writeRaw(c, encodeFrame(FrameKind.Proof, proof));
  }

  private onProof(c: Conn, payload: Buffer): void {
    if (this.secret === undefined || !c.peerNonce) throw new HandshakeError("unexpected PROOF");
    if (payload.length !== PROOF_BYTES) throw new HandshakeError("malformed PROOF");
    const peerRole = c.role === "dialer" ? "acceptor" : "dialer";
    const expected = computeProof(
      this.secret,
      peerRole,
      this.clusterId,
      c.peerId,
      this.nodeId,
      c.peerNonce,
      c.myNonce,
    );
    if (!proofMatches(expected, payload)) {
      throw new HandshakeError(`node ${c.peerId} failed authentication (wrong cluster secret?)`);
    }
    if (c.role === "dialer") {
      const proof = computeProof(
        this.secret,
        "dialer",
        this.clusterId,
        this.nodeId,
        c.peerId,
        c.myNonce,
        c.peerNonce,
      );
      this.writeRaw(c, encodeFrame(FrameKind.Proof, proof));
      this.established(c, c.peer!);
      return;
    }
    const p = this.peers.get(c.peerId);
    if (!p) throw new HandshakeError(`unknown node id ${c.peerId}`);
    this.established(c, p);
  }

  private established(c: Conn, p: PeerState): void {
    const now = performance.now();
    c.state = "ready";
    c.readyAt = now;
    if (!c.peer) {
      // An accepted connection: count what crossed it before we knew whose it was.
      p.stats.bytesReceived += c.bytesIn;
      p.stats.bytesSent += c.bytesOut;
    }
    c.peer = p;
    c.reader.maxPayloadBytes = this.maxFrameBytes - FRAME_HEADER_BYTES;
    if (p.dialing === c) p.dialing = null;
    const old = p.conn;
    p.conn = c;
    if (old && old !== c) {
      // Normal after a peer restart (its old connection is half-open); suspicious if the old
      // connection was still alive: two processes may be running with the same node id.
      const alive = now - old.lastRecv < 2 * this.pingIntervalMs;
      this.log[alive ? "warn" : "info"](
        { peer: p.id, remote: c.remote, oldRemote: old.remote },
        alive
          ? "transport: peer connected again while its previous connection was alive (restart, or two nodes with the same id?)"
          : "transport: peer reconnected, replacing its old connection",
      );
      this.closeConn(old, "replaced by a new connection");
    }
    p.stats.connects++;
    this.log.info(
      {
        peer: p.id,
        remote: c.remote,
        role: c.role,
        auth: this.secret !== undefined,
        recovered: p.failing || undefined,
      },
      "transport: peer connected",
    );
    p.failing = false;
    this.scheduleFlush(p);
  }

  private handshakeFailed(c: Conn, reason: string, level: "warn" | "error" = "warn", tellPeer = true): void {
    if (c.state === "closed") return;
    this.handshakeFailures++;
    const p = c.peer;
    // Repeated dial failures to the same peer are logged once at warn, then at debug
    // until a connection succeeds; the same refusal of inbound connections at most every 10 s.
    let quiet: boolean;
    if (c.role === "dialer" && p) {
      quiet = p.failing;
      p.failing = true;
    } else {
      quiet = !this.logAllowed(reason);
    }
    this.log[quiet ? "debug" : level](
      { peer: c.peerId || undefined, remote: c.remote, reason },
      "transport: handshake failed, closing connection",
    );
    this.closeConn(c, reason, tellPeer);
  }

  private protocolError(c: Conn, reason: string, tellPeer = true): void {
    if (c.state === "closed") return;
    if (c.state === "handshake") {
      this.handshakeFailed(c, reason, "warn", tellPeer);
      return;
    }
    this.protocolErrors++;
    this.log.warn(
      { peer: c.peerId, remote: c.remote, reason },
      "transport: protocol error, closing connection",
    );
    this.closeConn(c, reason, tellPeer);
  }

  /** Rate limit for log lines an outsider can trigger at will: one per key per 10 s. */
  private logAllowed(key: string): boolean {
    const now = performance.now();
    const last = this.logTimes.get(key);
    if (last !== undefined && now - last < 10_000) return false;
    if (this.logTimes.size >= 1000) this.logTimes.clear();
    this.logTimes.set(key, now);
    return true;
  }

  /** Closes a connection: optionally tells the peer why first (REJECT), then ends it. */
  private closeConn(c: Conn, reason: string, tellPeer = false): void {
    if (c.state === "closed") return;
    c.state = "closed";
    c.closedAt = performance.now();
    c.closeReason = reason;
    this.detach(c);
    const s = c.socket;
    if (tellPeer && !s.destroyed && s.writable) {
      s.end(encodeFrame(FrameKind.Reject, Buffer.from(reason.slice(0, 200), "utf8")));
    } else {
      s.destroy();
    }
  }

  /** Unhooks a closing connection from its peer; redials if this node dials. */
  private detach(c: Conn): void {
    const p = c.peer;
    if (!p) return;
    const wasReady = p.conn === c;
    if (wasReady) p.conn = null;
    else if (p.dialing === c) p.dialing = null;
    else return;
    if (wasReady) {
      // A connection that stayed up a while resets the backoff; a flapping one keeps doubling.
      if (performance.now() - c.readyAt >= this.backoffMaxMs) p.backoffMs = this.backoffBaseMs;
      if (!this.closed && !p.removed) {
        this.log.info({ peer: p.id, reason: c.closeReason || undefined }, "transport: peer disconnected");
      }
    }
    if (!this.closed && !p.removed) {
      this.reportUnreachable(p.id);
      this.scheduleDial(p);
    }
  }

  private onClose(c: Conn): void {
    this.conns.delete(c);
    if (c.state !== "closed") {
      // Closed by the peer or by a socket error.
      c.state = "closed";
      c.closedAt = performance.now();
      const p = c.peer;
      if (c.role === "dialer" && p && p.dialing === c && !this.closed) {
        const quiet = p.failing;
        p.failing = true;
        this.log[quiet ? "debug" : "warn"](
          { peer: p.id, addr: p.addr, err: c.lastError ? c.lastError.message : "closed during handshake" },
          "transport: cannot connect to peer (retrying with backoff)",
        );
      } else if (c.reader.midFrame) {
        this.log.debug({ peer: c.peerId || undefined, remote: c.remote }, "transport: peer closed mid-frame");
      }
      c.closeReason ||= c.lastError ? c.lastError.message : "closed by peer";
      this.detach(c);
    }
  }

  private writeRaw(c: Conn, buf: Buffer): void {
    if (c.state === "closed" || c.socket.destroyed) return;
    c.socket.write(buf);
    c.lastSend = performance.now();
    c.bytesOut += buf.length;
    if (c.peer) c.peer.stats.bytesSent += buf.length;
  }

  /** Timeouts and keep-alives for every connection; stale-queue eviction for every peer. */
  private sweep(): void {
    if (this.closed) return;
    const now = performance.now();
    for (const c of this.conns) {
      if (c.state === "closed") {
        if (now - c.closedAt > LINGER_MS) c.socket.destroy();
      } else if (c.state === "handshake") {
        if (now - c.createdAt > this.handshakeTimeoutMs) {
          this.handshakeFailed(c, `no handshake within ${this.handshakeTimeoutMs} ms`);
        }
      } else if (now - c.lastRecv > this.idleTimeoutMs) {
        this.log.warn(
          { peer: c.peerId, idleMs: Math.round(now - c.lastRecv) },
          "transport: peer silent, closing",
        );
        this.closeConn(c, "idle timeout");
      } else if (now - c.lastSend >= this.pingIntervalMs && !c.blocked) {
        this.writeRaw(c, encodeFrame(FrameKind.Ping));
      }
    }
    for (const p of this.peers.values()) if (p.queue.length > 0) this.evictStale(p, now);
  }

  private listening(): string | null {
    const a = this.server?.address();
    if (!a || typeof a === "string") return null;
    return formatHostPort(a.address, a.port);
  }
}
