// Micro-benchmark of the transport's message codec (src/transport/codec.ts):
// encode and decode rates for a heartbeat, an append of 64 x 100-byte entries
// and a 1 MiB snapshot chunk.
//
//   npx tsx bench/codec.ts [--seconds 1]

import { makeEntry } from "../src/raft/crc32c.ts";
import { type Message, MessageType, newMessage } from "../src/raft/types.ts";
import { decodeMessage, encodeMessage } from "../src/transport/codec.ts";

const argIdx = process.argv.indexOf("--seconds");
const seconds = argIdx > 0 ? Number(process.argv[argIdx + 1]) : 1;

const payload = new Uint8Array(100).fill(7);
const cases: [string, Message][] = [
  [
    "heartbeat",
    newMessage(MessageType.Heartbeat, { from: 1, to: 2, term: 12, commit: 123_456, context: "" }),
  ],
  [
    "append 64x100B",
    newMessage(MessageType.App, {
      from: 1,
      to: 2,
      term: 12,
      logTerm: 12,
      index: 1_000_000,
      commit: 999_990,
      entries: Array.from({ length: 64 }, (_, i) => makeEntry(12, 1_000_001 + i, payload)),
    }),
  ],
  [
    "snapshot chunk 1MiB",
    newMessage(MessageType.Snap, {
      from: 1,
      to: 2,
      term: 12,
      snapshot: {
        metadata: {
          index: 5000,
          term: 11,
          conf: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
        },
        offset: 0,
        totalBytes: 4 << 20,
        data: new Uint8Array(1 << 20),
        done: false,
      },
    }),
  ],
];

function rate(fn: () => void): number {
  for (let i = 0; i < 1000; i++) fn(); // warm up
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = performance.now();
  }
  return (n / (now - start)) * 1000;
}

const fmt = (x: number): string => Math.round(x).toLocaleString("en-US").padStart(12);
console.log(
  `${"message".padEnd(22)}${"bytes".padStart(10)}${"encode msg/s".padStart(14)}${"decode msg/s".padStart(14)}`,
);
for (const [name, m] of cases) {
  const buf = encodeMessage(m);
  let sink = 0;
  const enc = rate(() => {
    sink += encodeMessage(m).length;
  });
  const dec = rate(() => {
    sink += decodeMessage(buf).entries.length;
  });
  if (sink < 0) console.log(sink);
  console.log(`${name.padEnd(22)}${String(buf.length).padStart(10)}  ${fmt(enc)}  ${fmt(dec)}`);
}
