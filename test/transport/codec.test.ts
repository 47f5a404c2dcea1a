import { describe, expect, it } from "vitest";
import { makeEntry } from "../../src/raft/crc32c.ts";
import { EntryType, type Message, MessageType, newMessage } from "../../src/raft/types.ts";
import { Prng } from "../../src/sim/prng.ts";
import {
  CodecError,
  decodeMessage,
  encodedSize,
  encodeMessage,
  encodeMessageWithPrefix,
} from "../../src/transport/codec.ts";
import { decodeRaftBatch, FrameError, FrameKind, FrameReader } from "../../src/transport/frame.ts";
import { decodeHello, encodeHello, NONCE_BYTES } from "../../src/transport/handshake.ts";

/** A deterministic stream of floats in [0, 1) (the simulator's PRNG), so failures replay. */
function prng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.float();
}

function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** Compares messages with byte arrays as plain arrays (Buffer vs Uint8Array does not matter). */
function normalize(m: Message): unknown {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: Array.from(e.data) })),
    snapshot: m.snapshot ? { ...m.snapshot, data: Array.from(m.snapshot.data) } : undefined,
  };
}

function roundTrip(m: Message): Message {
  const buf = encodeMessage(m);
  expect(buf.length).toBe(encodedSize(m));
  const d = decodeMessage(buf);
  expect(normalize(d)).toEqual(normalize(m));
  return d;
}

function sampleMessages(): Message[] {
  const ents = [
    makeEntry(3, 10, bytes("hello")),
    makeEntry(3, 11, new Uint8Array(0)),
    makeEntry(4, 12, bytes("conf"), EntryType.ConfChange),
    makeEntry(2 ** 40, 2 ** 45 + 7, bytes("wide")),
  ];
  const out: Message[] = [];
  for (let t = 0; t <= MessageType.Unreachable; t++) {
    out.push(newMessage(t as MessageType, { from: 1, to: 2 }));
    out.push(
      newMessage(t as MessageType, {
        from: 7,
        to: 2 ** 33,
        term: 5,
        logTerm: 4,
        index: 2 ** 52,
        commit: 0xffffffff,
        reject: t % 2 === 0,
        rejectHint: 9,
        force: t % 3 === 0,
        context: t % 2 ? "read-ctx-é✓" : "",
        entries: t === MessageType.App || t === MessageType.Prop ? ents : [],
      }),
    );
  }
  out.push(
    newMessage(MessageType.Snap, {
      from: 1,
      to: 3,
      term: 8,
      snapshot: {
        metadata: {
          index: 1000,
          term: 7,
          conf: {
            voters: [1, 2, 3],
            learners: [4],
            votersOutgoing: [1, 2, 5],
            learnersNext: [5],
            autoLeave: true,
          },
        },
        offset: 4096,
        totalBytes: 10_000,
        data: Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff),
        done: false,
      },
    }),
    newMessage(MessageType.Snap, {
      from: 1,
      to: 3,
      term: 8,
      snapshot: {
        metadata: {
          index: 0,
          term: 0,
          conf: { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        },
        offset: 0,
        totalBytes: 0,
        data: new Uint8Array(0),
        done: true,
      },
    }),
  );
  return out;
}

describe("message codec", () => {
  it("round-trips every message type, with entries and snapshot chunks", () => {
    for (const m of sampleMessages()) roundTrip(m);
  });

  it("is compact: a heartbeat is a few bytes, an entry costs 17 bytes plus data", () => {
    const hb = newMessage(MessageType.Heartbeat, { from: 1, to: 2, term: 3, commit: 100 });
    expect(encodeMessage(hb).length).toBe(4 + 4 * 4);
    const one = newMessage(MessageType.App, {
      from: 1,
      to: 2,
      term: 3,
      entries: [makeEntry(3, 5, bytes("x"))],
    });
    const base = newMessage(MessageType.App, { from: 1, to: 2, term: 3 });
    expect(encodeMessage(one).length - encodeMessage(base).length).toBe(4 + 17 + 1);
  });

  it("decodes entry data as zero-copy plain Uint8Array views", () => {
    const m = newMessage(MessageType.App, { from: 1, to: 2, entries: [makeEntry(1, 1, bytes("abc"))] });
    const buf = encodeMessage(m);
    const d = decodeMessage(buf);
    const data = d.entries[0]!.data;
    expect(Object.getPrototypeOf(data)).toBe(Uint8Array.prototype);
    expect(data.buffer).toBe(buf.buffer);
  });

  it("prefixed encoding carries the length", () => {
    const m = sampleMessages()[5]!;
    const b = encodeMessageWithPrefix(m, 4);
    expect(b.readUInt32LE(0)).toBe(b.length - 4);
    expect(normalize(decodeMessage(b.subarray(4)))).toEqual(normalize(m));
  });

  it("refuses to encode what it could not decode", () => {
    const bad: Partial<Message>[] = [
      { term: -1 },
      { index: 1.5 },
      { commit: Number.NaN },
      { from: 2 ** 53 },
      { entries: [{ term: 1, index: 1, type: 9 as EntryType, data: new Uint8Array(0), crc: 0 }] },
      { entries: [{ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array(0), crc: -1 }] },
    ];
    for (const f of bad) expect(() => encodeMessage(newMessage(MessageType.App, f))).toThrow(CodecError);
    expect(() => encodeMessage(newMessage(99 as MessageType))).toThrow(CodecError);
  });

  it("throws CodecError on every strict prefix of a valid encoding and on trailing bytes", () => {
    for (const m of sampleMessages()) {
      const buf = encodeMessage(m);
      for (let n = 0; n < buf.length; n++)
        expect(() => decodeMessage(buf.subarray(0, n))).toThrow(CodecError);
      const longer = new Uint8Array(buf.length + 1);
      longer.set(buf);
      expect(() => decodeMessage(longer)).toThrow(CodecError);
    }
  });

  it("rejects invalid utf-8 context", () => {
    const m = newMessage(MessageType.ReadIndex, { from: 1, to: 2, context: "ab" });
    const buf = Uint8Array.from(encodeMessage(m));
    buf[buf.length - 1] = 0xff;
    expect(() => decodeMessage(buf)).toThrow(CodecError);
  });

  it("fuzz: random bytes decode or throw CodecError, never anything else", () => {
    const rnd = prng(12345);
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      const len = Math.floor(rnd() * 64);
      const buf = new Uint8Array(len);
      for (let j = 0; j < len; j++) buf[j] = Math.floor(rnd() * 256);
      // Bias the header toward valid values so the fuzzer reaches deeper.
      if (len > 0 && rnd() < 0.7) buf[0] = Math.floor(rnd() * 18);
      if (len > 1 && rnd() < 0.7) buf[1] = buf[1]! & 0x1f;
      if (len > 3 && rnd() < 0.7) buf[3] = buf[3]! & buf[2]! & 0x7f;
      if (len > 3 && rnd() < 0.2) {
        // A header-only message whose length matches its field bitmap exactly.
        buf[1] = buf[1]! & 3;
        buf[2] = buf[2]! & 0x7f;
        buf[3] = 0;
        let bits = 0;
        for (let b = buf[2]!; b; b >>= 1) bits += b & 1;
        const exact = 4 + 4 * bits;
        if (exact <= len) {
          try {
            decodeMessage(buf.subarray(0, exact));
            decoded++;
          } catch (err) {
            if (!(err instanceof CodecError)) throw err;
          }
        }
      }
      try {
        const m = decodeMessage(buf);
        decoded++;
        // Whatever decodes is well formed: it re-encodes and decodes to the same message.
        expect(normalize(decodeMessage(encodeMessage(m)))).toEqual(normalize(m));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });

  it("fuzz: mutated valid encodings decode or throw CodecError", () => {
    const rnd = prng(777);
    const samples = sampleMessages().map((m) => encodeMessage(m));
    for (let i = 0; i < 20_000; i++) {
      const src = samples[Math.floor(rnd() * samples.length)]!;
      const buf = Uint8Array.from(src);
      const flips = 1 + Math.floor(rnd() * 4);
      for (let k = 0; k < flips; k++) {
        const at = Math.floor(rnd() * buf.length);
        buf[at] = rnd() < 0.5 ? Math.floor(rnd() * 256) : buf[at]! ^ (1 << Math.floor(rnd() * 8));
      }
      const cut = rnd() < 0.2 ? Math.floor(rnd() * buf.length) : buf.length;
      try {
        decodeMessage(buf.subarray(0, cut));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
      }
    }
  });

  it("garbage counts never allocate more than the input (huge entry count)", () => {
    // App, flags=entries, no fields, count = 0xffffffff
    const buf = Uint8Array.from([3, 8, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    expect(() => decodeMessage(buf)).toThrow(CodecError);
  });
});

describe("frames", () => {
  it("reassembles frames from arbitrary chunking, including empty payloads", () => {
    const msgs = sampleMessages();
    const recs = msgs.map((m) => encodeMessageWithPrefix(m, 4));
    const payload = Buffer.concat(recs);
    const raft = Buffer.concat([Buffer.from([0, 0, 0, 0, FrameKind.Raft]), payload]);
    raft.writeUInt32LE(payload.length + 1, 0);
    const ping = Buffer.from([1, 0, 0, 0, FrameKind.Ping]);
    const stream = Buffer.concat([ping, raft, ping]);
    const rnd = prng(5);
    for (let round = 0; round < 50; round++) {
      const got: [FrameKind, Buffer][] = [];
      const r = new FrameReader(1 << 20, (k, p) => {
        got.push([k, p]);
        return true;
      });
      let p = 0;
      while (p < stream.length) {
        const n = 1 + Math.floor(rnd() * 40);
        r.push(stream.subarray(p, p + n));
        p += n;
      }
      expect(got.map((g) => g[0])).toEqual([FrameKind.Ping, FrameKind.Raft, FrameKind.Ping]);
      const decoded = decodeRaftBatch(got[1]![1]);
      expect(decoded.map(normalize)).toEqual(msgs.map(normalize));
      expect(r.midFrame).toBe(false);
    }
  });

  it("rejects oversized, zero-length and unknown-kind frames before allocating", () => {
    const mk = (len: number, kind: number) => {
      const b = Buffer.alloc(5);
      b.writeUInt32LE(len, 0);
      b[4] = kind;
      return b;
    };
    const r = () => new FrameReader(1000, () => true);
    expect(() => r().push(mk(0xffffffff, FrameKind.Raft))).toThrow(FrameError);
    expect(() => r().push(mk(1002, FrameKind.Raft))).toThrow(FrameError);
    expect(() => r().push(mk(0, FrameKind.Raft))).toThrow(FrameError);
    expect(() => r().push(mk(1, 0))).toThrow(FrameError);
    expect(() => r().push(mk(1, 200))).toThrow(FrameError);
    expect(() => r().push(mk(1001, FrameKind.Raft))).not.toThrow();
  });

  it("rejects malformed RAFT batches", () => {
    expect(() => decodeRaftBatch(new Uint8Array(0))).toThrow(CodecError);
    expect(() => decodeRaftBatch(Uint8Array.from([5, 0, 0]))).toThrow(CodecError);
    expect(() => decodeRaftBatch(Uint8Array.from([5, 0, 0, 0, 1]))).toThrow(CodecError);
  });

  it("HELLO round-trips and garbage HELLOs throw CodecError", () => {
    const h = {
      version: 1,
      nodeId: 3,
      peerId: 0,
      clusterId: "prod-α",
      auth: true,
      nonce: new Uint8Array(NONCE_BYTES).fill(7),
    };
    const buf = encodeHello(h);
    const d = decodeHello(buf);
    expect({ ...d, nonce: Array.from(d.nonce) }).toEqual({ ...h, nonce: Array.from(h.nonce) });
    const rnd = prng(99);
    for (let i = 0; i < 5000; i++) {
      const b = Uint8Array.from(buf);
      b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      try {
        decodeHello(b.subarray(0, Math.floor(rnd() * (b.length + 1))));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
      }
    }
  });
});
