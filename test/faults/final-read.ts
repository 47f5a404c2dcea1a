// After the last fault heals: wait until every live member reports the same
// end offsets (bounded; a node that never catches up is reported, not hidden),
// then read every partition from every node, from offset 0.

import { sleep } from "./harness.ts";

export interface LogRecord {
  offset: number;
  value: string;
  timestamp: number;
}

/** node -> partition -> records from offset 0. */
export type FinalLogs = Map<number, Map<number, LogRecord[]>>;

type Url = (node: number, path: string) => string;

async function getJson<T>(url: string): Promise<{ status: number; body: T } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: (await res.json()) as T };
  } catch {
    return undefined;
  }
}

async function endOffsets(url: Url, node: number, topic: string): Promise<number[] | undefined> {
  const r = await getJson<{ partitions: { endOffset: number }[] }>(url(node, `/v1/topics/${topic}`));
  return r?.status === 200 ? r.body.partitions.map((p) => p.endOffset) : undefined;
}

/** Resolves with how long convergence took, or undefined if it did not happen within timeoutMs. */
export async function waitConverged(
  url: Url,
  nodes: number[],
  topic: string,
  timeoutMs: number,
): Promise<number | undefined> {
  const t0 = Date.now();
  let stableSince = 0;
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    const ends = await Promise.all(nodes.map((n) => endOffsets(url, n, topic)));
    const keys = new Set(ends.map((e) => JSON.stringify(e ?? null)));
    const k = [...keys][0]!;
    // Equal on every node, and unchanged for a moment (the producers have stopped).
    if (keys.size === 1 && ends[0] !== undefined) {
      if (k !== last) stableSince = Date.now();
      else if (Date.now() - stableSince >= 500) return Date.now() - t0;
    }
    last = keys.size === 1 ? k : "";
    await sleep(200);
  }
  return undefined;
}

export async function readPartition(url: Url, node: number, topic: string, p: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  let offset = 0;
  for (;;) {
    const r = await getJson<{
      records: { offset: number; value: unknown; timestamp: number }[];
      nextOffset: number;
      endOffset: number;
    }>(url(node, `/v1/topics/${topic}/partitions/${p}/records?offset=${offset}&limit=10000`));
    if (r?.status !== 200) throw new Error(`node ${node}: reading ${topic}/${p} at ${offset}: ${r?.status}`);
    for (const rec of r.body.records)
      out.push({
        offset: rec.offset,
        value: typeof rec.value === "string" ? rec.value : JSON.stringify(rec.value),
        timestamp: rec.timestamp,
      });
    offset = r.body.nextOffset;
    if (r.body.records.length === 0 || offset >= r.body.endOffset) return out;
  }
}

/** Reads every partition from every node; a node that cannot be read (3 tries) is listed, not hidden. */
export async function readAll(
  url: Url,
  nodes: number[],
  topic: string,
  partitions: number,
): Promise<{ logs: FinalLogs; unreadable: string[] }> {
  const logs: FinalLogs = new Map();
  const unreadable: string[] = [];
  for (const n of nodes) {
    for (let attempt = 1; ; attempt++) {
      try {
        const m = new Map<number, LogRecord[]>();
        for (let p = 0; p < partitions; p++) m.set(p, await readPartition(url, n, topic, p));
        logs.set(n, m);
        break;
      } catch (e) {
        if (attempt >= 3) {
          unreadable.push(`node ${n}: ${(e as Error).message}`);
          break;
        }
        await sleep(1000);
      }
    }
  }
  return { logs, unreadable };
}
