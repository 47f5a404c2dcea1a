import type net from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { makeEntry } from "../../src/raft/crc32c.ts";
import { type Message, MessageType, newMessage } from "../../src/raft/types.ts";
import { encodeMessageWithPrefix } from "../../src/transport/codec.ts";
import { decodeRaftBatch, encodeFrame, FrameKind, FrameReader } from "../../src/transport/frame.ts";
import { encodeHello, NONCE_BYTES, PROTOCOL_VERSION } from "../../src/transport/handshake.ts";
import type { Logger } from "../../src/transport/logger.ts";
import { TcpTransport } from "../../src/transport/transport.ts";
import { closed, Harness, type Node, sleep, waitFor } from "./helpers.ts";

const h = new Harness();
afterEach(() => h.cleanup());

function hb(from: number, to: number, commit = 0): Message {
  return newMessage(MessageType.Heartbeat, { from, to, term: 1, commit });
}

function app(from: number, to: number, index: number, size = 100): Message {
  const data = new Uint8Array(size).fill(index & 0xff);
  return newMessage(MessageType.App, { from, to, term: 2, index, entries: [makeEntry(2, index + 1, data)] });
}

async function connected(a: Node, b: Node): Promise<void> {
  await waitFor(() => a.t.isConnected(b.id) && b.t.isConnected(a.id), 5000, `${a.id}<->${b.id} connected`);
}

function helloFrame(
  nodeId: number,
  opts: { clusterId?: string; auth?: boolean; peerId?: number } = {},
): Buffer {
  return encodeFrame(
    FrameKind.Hello,
    encodeHello({
      version: PROTOCOL_VERSION,
      nodeId,
      peerId: opts.peerId ?? 0,
      clusterId: opts.clusterId ?? "test-cluster",
      auth: opts.auth ?? false,
      nonce: new Uint8Array(NONCE_BYTES).fill(1),
    }),
  );
}

function raftFrame(msgs: Message[]): Buffer {
  return encodeFrame(FrameKind.Raft, Buffer.concat(msgs.map((m) => encodeMessageWithPrefix(m, 4))));
}

/** Frames a raw client receives. */
function frames(s: net.Socket): { kind: FrameKind; payload: Buffer }[] {
  const out: { kind: FrameKind; payload: Buffer }[] = [];
  const r = new FrameReader(1 << 20, (kind, payload) => {
    out.push({ kind, payload });
    return true;
  });
  s.on("data", (d: Buffer) => r.push(d));
  return out;
}

describe("TcpTransport", () => {
  it("two nodes exchange Raft messages and app payloads both ways over one connection", async () => {
    const [a, b] = await h.mesh([1, 2]);
    await connected(a!, b!);
    for (let i = 0; i < 100; i++) {
      expect(a!.t.send(app(1, 2, i))).toBe(true);
      expect(b!.t.send(hb(2, 1, i))).toBe(true);
    }
    expect(a!.t.sendApp(2, new TextEncoder().encode("to-leader"))).toBe(true);
    expect(b!.t.sendApp(1, Uint8Array.from([1, 2, 3]))).toBe(true);
    await waitFor(
      () => b!.got.length === 100 && a!.got.length === 100 && a!.apps.length === 1 && b!.apps.length === 1,
    );
    expect(b!.got.map((m) => m.index)).toEqual([...Array(100).keys()]);
    expect(a!.got.map((m) => m.commit)).toEqual([...Array(100).keys()]);
    const m = b!.got[7]!;
    expect(m.type).toBe(MessageType.App);
    expect(m.from).toBe(1);
    expect(m.to).toBe(2);
    expect(Array.from(m.entries[0]!.data)).toEqual(Array(100).fill(7));
    expect(new TextDecoder().decode(b!.apps[0]!.payload)).toBe("to-leader");
    expect(b!.apps[0]!.from).toBe(1);
    expect(Array.from(a!.apps[0]!.payload)).toEqual([1, 2, 3]);

    const sa = a!.t.stats().peers[0]!;
    const sb = b!.t.stats().peers[0]!;
    expect(sa).toMatchObject({
      id: 2,
      direction: "dial",
      connected: true,
      messagesSent: 100,
      messagesReceived: 100,
    });
    expect(sb).toMatchObject({
      id: 1,
      direction: "accept",
      connected: true,
      messagesSent: 100,
      messagesReceived: 100,
    });
    expect(sa.connects).toBe(1);
    expect(sb.connects).toBe(1);
    expect(sa.bytesSent).toBeGreaterThan(100 * 100);
    expect(sb.bytesReceived).toBe(sa.bytesSent);
  });

  it("three nodes: every pair talks, with batching, large messages and backpressure", async () => {
    const nodes = await h.mesh([1, 2, 3]);
    for (const a of nodes) for (const b of nodes) if (a !== b) await connected(a, b);
    const N = 2000;
    for (let i = 0; i < N; i++) {
      for (const a of nodes)
        for (const b of nodes) if (a !== b) expect(a.t.send(app(a.id, b.id, i, 1000))).toBe(true);
    }
    // A 5 MiB snapshot chunk (larger than one batch).
    const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);
    const snap = newMessage(MessageType.Snap, {
      from: 3,
      to: 1,
      term: 2,
      snapshot: {
        metadata: {
          index: 9,
          term: 2,
          conf: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        },
        offset: 0,
        totalBytes: big.length,
        data: big,
        done: true,
      },
    });
    expect(nodes[2]!.t.send(snap)).toBe(true);
    await waitFor(
      () => nodes.every((n) => n.got.length >= 2 * N + (n.id === 1 ? 1 : 0)),
      20_000,
      "all messages",
    );
    for (const n of nodes) {
      for (const from of nodes) {
        if (from === n) continue;
        const idx = n.got.filter((m) => m.from === from.id && m.type === MessageType.App).map((m) => m.index);
        expect(idx).toEqual([...Array(N).keys()]);
      }
    }
    const s = nodes[0]!.got.find((m) => m.type === MessageType.Snap)!;
    expect(s.snapshot!.data.length).toBe(big.length);
    expect(Buffer.compare(Buffer.from(s.snapshot!.data), Buffer.from(big))).toBe(0);
  });

  it("the higher id queues until the lower id dials it", async () => {
    const b = await h.node(2);
    const port = await h.deadPort();
    b.t.setPeer(1, `127.0.0.1:${port}`); // never dialed: 2 > 1
    expect(b.t.send(hb(2, 1, 42))).toBe(true);
    expect(b.t.stats().peers[0]!.queuedItems).toBe(1);
    const a = await h.node(1, { peers: new Map([[2, b.addr]]) });
    await waitFor(() => a.got.length === 1);
    expect(a.got[0]!.commit).toBe(42);
  });

  it("reconnects after the accepting peer closes and restarts on the same port", async () => {
    const [a, b] = await h.mesh([1, 2]);
    await connected(a!, b!);
    const port = b!.t.address().port;
    await b!.t.close();
    await waitFor(() => !a!.t.isConnected(2));
    expect(a!.t.send(hb(1, 2, 1))).toBe(true); // queued while down
    const b2 = await h.node(2, { listen: `127.0.0.1:${port}`, peers: new Map([[1, a!.addr]]) });
    await connected(a!, b2);
    await waitFor(() => b2.got.length === 1);
    expect(b2.t.send(hb(2, 1, 5))).toBe(true);
    await waitFor(() => a!.got.some((m) => m.commit === 5));
    expect(a!.unreachable).toContain(2);
    expect(a!.t.stats().peers[0]!.connects).toBe(2);
  });

  it("the accepting peer takes the new connection when the dialing peer restarts", async () => {
    const [a, b] = await h.mesh([1, 2]);
    await connected(a!, b!);
    const port = a!.t.address().port;
    await a!.t.close();
    const a2 = await h.node(1, { listen: `127.0.0.1:${port}`, peers: new Map([[2, b!.addr]]) });
    await connected(a2, b!);
    expect(b!.t.send(hb(2, 1, 9))).toBe(true);
    await waitFor(() => a2.got.length === 1);
    expect(a2.t.send(hb(1, 2, 10))).toBe(true);
    await waitFor(() => b!.got.some((m) => m.commit === 10));
  });

  it("dials a peer through a TCP proxy (dial address != listen address)", async () => {
    const b = await h.node(2);
    const proxy = await h.proxy(() => b.addr);
    const a = await h.node(1, { peers: new Map([[2, proxy.addr]]) });
    // B never dials A (2 > 1), so its address for A may be anything.
    b.t.setPeer(1, "unreachable.invalid:1");
    await connected(a, b);
    expect(proxy.connections()).toBe(1);
    a.t.send(hb(1, 2, 1));
    b.t.send(hb(2, 1, 2));
    await waitFor(() => a.got.length === 1 && b.got.length === 1);
    expect(a.got[0]!.commit).toBe(2);
    expect(b.got[0]!.commit).toBe(1);
  });

  it("rejects a peer with a different cluster id", async () => {
    const b = await h.node(2, { clusterId: "cluster-b" });
    const a = await h.node(1, { clusterId: "cluster-a", peers: new Map([[2, b.addr]]) });
    b.t.setPeer(1, a.addr);
    await waitFor(() => b.t.stats().handshakeFailures >= 2 && a.t.stats().handshakeFailures >= 2);
    expect(a.t.send(hb(1, 2))).toBe(true);
    expect(b.t.send(hb(2, 1))).toBe(true);
    await sleep(200);
    expect(a.got).toEqual([]);
    expect(b.got).toEqual([]);
    expect(a.t.isConnected(2)).toBe(false);
    expect(b.log.text()).toContain("cluster id mismatch");
    expect(a.log.text()).toContain("refused by peer: cluster id mismatch");
    // Repeated refusals are not logged at warn every time.
    expect(a.log.lines.filter((l) => l.level === "warn").length).toBeLessThan(a.t.stats().handshakeFailures);
  });

  it("rejects unknown and duplicate node ids and wrong-direction dials", async () => {
    const n = await h.node(5, { peers: new Map([[9, "127.0.0.1:1"]]) });
    for (const [id, reason] of [
      [7, "unknown node id 7"],
      [5, "duplicate node id"],
      [9, "the lower id dials"],
    ] as const) {
      const s = await h.rawConnect(n.addr);
      const got = frames(s);
      s.write(helloFrame(id));
      await closed(s);
      expect(got.map((f) => f.kind)).toEqual([FrameKind.Reject]);
      expect(got[0]!.payload.toString()).toContain(reason);
    }
    expect(n.t.stats().handshakeFailures).toBe(3);
  });

  describe("with a cluster secret", () => {
    it("peers with the same secret authenticate mutually and talk", async () => {
      const [a, b] = await h.mesh([1, 2], { secret: "s3cret" });
      await connected(a!, b!);
      a!.t.send(hb(1, 2, 1));
      b!.t.send(hb(2, 1, 2));
      await waitFor(() => a!.got.length === 1 && b!.got.length === 1);
      expect(a!.log.text()).toContain('"auth":true');
    });

    it("a wrong secret gets no message through, in either direction", async () => {
      const b = await h.node(2, { secret: "right" });
      const a = await h.node(1, { secret: "wrong", peers: new Map([[2, b.addr]]) });
      b.t.setPeer(1, a.addr);
      await waitFor(() => b.t.stats().handshakeFailures >= 2 && a.t.stats().handshakeFailures >= 2);
      a.t.send(hb(1, 2));
      b.t.send(hb(2, 1));
      await sleep(200);
      expect(a.got).toEqual([]);
      expect(b.got).toEqual([]);
      expect(a.t.isConnected(2) || b.t.isConnected(1)).toBe(false);
      // The dialer checks the acceptor's proof first, so it is the one that notices.
      expect(a.log.text()).toContain("failed authentication");
    });

    it("a node without the secret is refused", async () => {
      const b = await h.node(2, { secret: "right" });
      const a = await h.node(1, { peers: new Map([[2, b.addr]]) });
      b.t.setPeer(1, a.addr);
      await waitFor(() => b.t.stats().handshakeFailures >= 1);
      a.t.send(hb(1, 2));
      await sleep(100);
      expect(b.got).toEqual([]);
      expect(b.log.text()).toContain("has no cluster secret");
    });

    it("a raw client that skips the proof cannot deliver a Raft message", async () => {
      const n = await h.node(5, { secret: "right", peers: new Map([[1, "127.0.0.1:1"]]) });
      const s = await h.rawConnect(n.addr);
      const got = frames(s);
      s.write(Buffer.concat([helloFrame(1, { auth: true, peerId: 5 }), raftFrame([hb(1, 5, 77)])]));
      await closed(s);
      expect(n.got).toEqual([]);
      expect(got.map((f) => f.kind)).toEqual([FrameKind.Hello, FrameKind.Proof, FrameKind.Reject]);
      // A forged proof fails too.
      const s2 = await h.rawConnect(n.addr);
      s2.write(
        Buffer.concat([
          helloFrame(1, { auth: true }),
          encodeFrame(FrameKind.Proof, Buffer.alloc(32, 9)),
          raftFrame([hb(1, 5, 78)]),
        ]),
      );
      await closed(s2);
      expect(n.got).toEqual([]);
      expect(n.log.text()).toContain("failed authentication");
    });
  });

  describe("hostile input", () => {
    it("garbage bytes close the connection; the transport keeps working", async () => {
      const [a, b] = await h.mesh([1, 2]);
      await connected(a!, b!);
      const s = await h.rawConnect(b!.addr);
      s.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      await closed(s);
      const s2 = await h.rawConnect(b!.addr);
      s2.write(Buffer.from([3, 0, 0, 0, 99, 1, 2]));
      await closed(s2);
      expect(b!.log.text()).toMatch(/frame/);
      a!.t.send(hb(1, 2, 3));
      await waitFor(() => b!.got.length === 1);
      expect(b!.t.isConnected(1)).toBe(true);
    });

    it("an oversized frame closes the connection, before and after the handshake", async () => {
      const n = await h.node(5, { peers: new Map([[1, "127.0.0.1:1"]]), maxFrameBytes: 1 << 20 });
      const s = await h.rawConnect(n.addr);
      s.write(Buffer.from([0xff, 0xff, 0xff, 0xff, FrameKind.Hello]));
      await closed(s);
      // Authenticated (no secret), then a 2 MiB frame header.
      const s2 = await h.rawConnect(n.addr);
      const hdr = Buffer.alloc(5);
      hdr.writeUInt32LE(2 << 20, 0);
      hdr[4] = FrameKind.Raft;
      s2.write(Buffer.concat([helloFrame(1), raftFrame([hb(1, 5, 1)]), hdr]));
      await closed(s2);
      expect(n.got.length).toBe(1);
      expect(n.t.stats().protocolErrors).toBe(1);
      expect(n.log.text()).toContain("exceeds the limit");
    });

    it("an undecodable or misaddressed Raft message closes the connection", async () => {
      const n = await h.node(5, { peers: new Map([[1, "127.0.0.1:1"]]) });
      const s = await h.rawConnect(n.addr);
      s.write(
        Buffer.concat([helloFrame(1), encodeFrame(FrameKind.Raft, Buffer.from([4, 0, 0, 0, 99, 0, 0, 0]))]),
      );
      await closed(s);
      const s2 = await h.rawConnect(n.addr);
      s2.write(Buffer.concat([helloFrame(1), raftFrame([hb(1, 6)])]));
      await closed(s2);
      const s3 = await h.rawConnect(n.addr);
      s3.write(Buffer.concat([helloFrame(1), raftFrame([newMessage(MessageType.Hup, { from: 1, to: 5 })])]));
      await closed(s3);
      expect(n.got).toEqual([]);
      expect(n.t.stats().protocolErrors).toBe(3);
    });

    it("a peer closing mid-frame or never finishing its handshake does no harm", async () => {
      const n = await h.node(5, { peers: new Map([[1, "127.0.0.1:1"]]), handshakeTimeoutMs: 100 });
      const s = await h.rawConnect(n.addr);
      s.write(Buffer.concat([helloFrame(1), raftFrame([hb(1, 5, 1)]).subarray(0, 9)]));
      await sleep(50);
      s.destroy();
      const s2 = await h.rawConnect(n.addr);
      await closed(s2); // silent client: handshake timeout
      expect(n.log.text()).toContain("no handshake within 100 ms");
      const s3 = await h.rawConnect(n.addr);
      s3.write(Buffer.concat([helloFrame(1), raftFrame([hb(1, 5, 2)])]));
      await waitFor(() => n.got.length === 1);
      expect(n.got[0]!.commit).toBe(2);
    });

    it("handler exceptions are logged, not thrown", async () => {
      const [a, b] = await h.mesh([1, 2]);
      b!.t.onMessage(() => {
        throw new Error("boom");
      });
      await connected(a!, b!);
      a!.t.send(hb(1, 2));
      await waitFor(() => b!.log.text().includes("onMessage handler threw"));
      expect(b!.t.isConnected(1)).toBe(true);
    });
  });

  describe("bounded queues", () => {
    it("drop new messages when the peer is down, count them and report the peer unreachable", async () => {
      const port = await h.deadPort();
      const a = await h.node(1, { peers: new Map([[2, `127.0.0.1:${port}`]]), maxQueueBytes: 64 * 1024 });
      let accepted = 0;
      let refused = 0;
      for (let i = 0; i < 200; i++) {
        if (a.t.send(app(1, 2, i, 1000))) accepted++;
        else refused++;
      }
      expect(accepted).toBeGreaterThan(10);
      expect(refused).toBeGreaterThan(100);
      const st = a.t.stats().peers[0]!;
      expect(st.messagesDropped).toBe(refused);
      expect(st.queuedItems).toBe(accepted);
      expect(st.queuedBytes).toBeLessThanOrEqual(64 * 1024);
      expect(st.connected).toBe(false);
      await waitFor(() => a.unreachable.includes(2));
      expect(a.t.send(newMessage(MessageType.Heartbeat, { from: 1, to: 99 }))).toBe(false);
      expect(a.t.sendApp(99, new Uint8Array(1))).toBe(false);
    });

    it("drop queued messages that are too old", async () => {
      const port = await h.deadPort();
      const a = await h.node(1, { peers: new Map([[2, `127.0.0.1:${port}`]]), maxQueueAgeMs: 50 });
      expect(a.t.send(hb(1, 2))).toBe(true);
      await waitFor(() => a.t.stats().peers[0]!.queuedItems === 0);
      expect(a.t.stats().peers[0]!.messagesDropped).toBe(1);
    });

    it("reports unreachable on dial failures, rate-limited, and logs the failure once", async () => {
      const port = await h.deadPort();
      const a = await h.node(1, {
        peers: new Map([[2, `127.0.0.1:${port}`]]),
        backoffBaseMs: 5,
        backoffMaxMs: 20,
        unreachableIntervalMs: 100,
      });
      await sleep(350);
      expect(a.unreachable.length).toBeGreaterThanOrEqual(2);
      expect(a.unreachable.length).toBeLessThanOrEqual(5);
      const warns = a.log.lines.filter((l) => l.msg.includes("cannot connect") && l.level === "warn");
      expect(warns.length).toBe(1);
    });
  });

  it("respects socket backpressure: a peer that stops reading fills the bounded queue, not memory", async () => {
    let peerSocket: net.Socket | null = null;
    const received: Message[] = [];
    const srv = await h.server((s) => {
      peerSocket = s;
      const r = new FrameReader(64 << 20, (kind, payload) => {
        if (kind === FrameKind.Hello) {
          s.write(helloFrame(2, { peerId: 1 }));
          s.pause(); // a stalled peer: stop reading after the handshake
        } else if (kind === FrameKind.Raft) {
          received.push(...decodeRaftBatch(payload));
        }
        return true;
      });
      s.on("data", (d: Buffer) => r.push(d));
      s.on("error", () => {});
    });
    const port = (srv.address() as net.AddressInfo).port;
    const maxQueueBytes = 4 << 20;
    const a = await h.node(1, {
      peers: new Map([[2, `127.0.0.1:${port}`]]),
      maxQueueBytes,
      idleTimeoutMs: 60_000,
    });
    await waitFor(() => a.t.isConnected(2));
    let accepted = 0;
    let refused = 0;
    // 64 MiB offered in 16 KiB messages, yielding so the socket can flush what it can.
    for (let round = 0; round < 64; round++) {
      for (let i = 0; i < 64; i++) {
        if (a.t.send(app(1, 2, accepted, 16 * 1024))) accepted++;
        else refused++;
      }
      await sleep(2);
    }
    const st = a.t.stats().peers[0]!;
    expect(refused).toBeGreaterThan(0);
    expect(st.messagesDropped).toBe(refused);
    expect(st.queuedBytes).toBeLessThanOrEqual(maxQueueBytes);
    // What left the queue sits in kernel buffers plus at most one batch in userland.
    expect(st.bytesSent).toBeLessThan(40 << 20);
    // The peer resumes: everything accepted arrives, in order.
    peerSocket!.resume();
    await waitFor(() => received.length === accepted, 20_000, "queued messages to drain");
    expect(received.map((m) => m.index)).toEqual([...Array(accepted).keys()]);
  });

  it("pings keep an idle connection up; a silent peer is dropped after idleTimeoutMs", async () => {
    const opts = { pingIntervalMs: 50, idleTimeoutMs: 500 };
    const [a, b] = await h.mesh([1, 2], opts);
    await connected(a!, b!);
    await sleep(1200);
    expect(a!.t.stats().peers[0]!.connects).toBe(1);
    expect(b!.t.stats().peers[0]!.connects).toBe(1);
    // A raw peer that completes the handshake and then says nothing.
    const n = await h.node(5, { ...opts, peers: new Map([[1, "127.0.0.1:1"]]) });
    const s = await h.rawConnect(n.addr);
    s.write(helloFrame(1));
    await waitFor(() => n.t.isConnected(1));
    await closed(s);
    expect(n.log.text()).toContain("peer silent");
  });

  it("setPeer moves a peer to a new address; removePeer forgets it", async () => {
    const [a, b] = await h.mesh([1, 2]);
    await connected(a!, b!);
    const proxy = await h.proxy(() => b!.addr);
    a!.t.setPeer(2, proxy.addr);
    await waitFor(() => proxy.connections() === 1 && a!.t.isConnected(2));
    a!.t.send(hb(1, 2, 4));
    await waitFor(() => b!.got.length === 1);
    b!.t.removePeer(1);
    await waitFor(() => !a!.t.isConnected(2));
    expect(b!.t.send(hb(2, 1))).toBe(false);
    await waitFor(() => a!.t.stats().handshakeFailures > 0);
    expect(b!.log.text()).toContain("unknown node id 1");
  });

  it("close() releases every socket and timer so the process can exit", async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap").length;
    const port = await h.deadPort();
    const [a, b] = await h.mesh([1, 2]);
    a!.t.setPeer(3, `127.0.0.1:${port}`); // keeps redialing
    await connected(a!, b!);
    await Promise.all([a!.t.close(), b!.t.close()]);
    await sleep(20);
    const after = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap").length;
    expect(after).toBeLessThanOrEqual(before);
    expect(a!.t.send(hb(1, 2))).toBe(false);
  });

  it("accepts a pino logger", async () => {
    const logger: Logger = pino({ level: "silent" });
    const t = h.track(
      new TcpTransport({ nodeId: 1, clusterId: "c", listen: "127.0.0.1:0", peers: new Map(), logger }),
    );
    await t.start();
    expect(t.stats().listening).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("start() rejects when the port is taken, and close() still resolves", async () => {
    const a = await h.node(1);
    const t = h.track(
      new TcpTransport({ nodeId: 2, clusterId: "c", listen: a.addr, peers: new Map([[1, a.addr]]) }),
    );
    await expect(t.start()).rejects.toThrow(/EADDRINUSE/);
    await t.close();
  });

  it("validates its options", () => {
    const base = { nodeId: 1, clusterId: "c", listen: "127.0.0.1:0", peers: new Map<number, string>() };
    expect(() => new TcpTransport({ ...base, nodeId: 0 })).toThrow();
    expect(() => new TcpTransport({ ...base, clusterId: "" })).toThrow();
    expect(() => new TcpTransport({ ...base, listen: "nope" })).toThrow();
    expect(() => new TcpTransport({ ...base, peers: new Map([[1, "127.0.0.1:2"]]) })).toThrow();
    expect(() => new TcpTransport({ ...base, peers: new Map([[2, "127.0.0.1"]]) })).toThrow();
    expect(() => new TcpTransport({ ...base, secret: "" })).toThrow();
  });
});
