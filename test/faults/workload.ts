// Concurrent producers: each picks a random node for every request, sends 1-3
// records with values never sent before (to random partitions, so one request
// may span partitions), and records every attempt as ok (with its offsets),
// fail (an answer that by API.md appended nothing) or info (indeterminate: a
// 504, a 5xx, a timeout or a broken connection).
//
// Half the requests carry an Idempotency-Key and are retried with the same key
// and body until they get a definite answer (or give up): those must never be
// duplicated. Some indeterminate requests without a key are retried naively
// (the same values again, no key): duplicates of those are allowed, and the
// checker counts them to show why keys matter.

import type { Prng } from "../../src/sim/prng.ts";
import { sleep } from "./harness.ts";

export type Outcome = "ok" | "fail" | "info";

export interface Attempt {
  /** Request id, unique in the run. */
  id: number;
  producer: number;
  node: number;
  key: string | undefined;
  /** The values sent, in request order, with the partition each was sent to. */
  records: { value: string; partition: number }[];
  t0: number;
  t1: number;
  outcome: Outcome;
  status: number;
  code: string | undefined;
  /** For ok: the acknowledged partition/offset of each record, in request order. */
  offsets: { partition: number; offset: number }[] | undefined;
}

export interface ProducerOptions {
  topic: string;
  partitions: number;
  producers: number;
  /** Nodes a producer may send to (read on every request: membership changes). */
  nodes: () => number[];
  url: (node: number, path: string) => string;
  rng: Prng;
  /** Server-side commit timeout (?timeoutMs=) and the client's own abort. */
  serverTimeoutMs?: number;
  clientTimeoutMs?: number;
  /** Fraction of requests with an Idempotency-Key. */
  idempotentShare?: number;
  /** Fraction of indeterminate keyless requests retried without a key. */
  naiveRetryShare?: number;
}

export class Producers {
  readonly attempts: Attempt[] = [];
  /** Values of requests with an Idempotency-Key (zero duplicates allowed). */
  readonly idempotentValues = new Set<string>();
  private running = false;
  private loops: Promise<void>[] = [];
  private nextId = 1;

  constructor(private readonly o: ProducerOptions) {}

  start(): void {
    this.running = true;
    for (let p = 0; p < this.o.producers; p++) this.loops.push(this.loop(p, this.o.rng.fork()));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  private async loop(producer: number, rng: Prng): Promise<void> {
    let seq = 0;
    while (this.running) {
      const n = rng.int(1, 3);
      const records = Array.from({ length: n }, (_, i) => ({
        value: `p${producer}-${seq}-${i}`,
        partition: rng.int(0, this.o.partitions - 1),
      }));
      seq++;
      const idem = rng.chance(this.o.idempotentShare ?? 0.5);
      const key = idem ? `k-p${producer}-${seq}` : undefined;
      if (key) for (const r of records) this.idempotentValues.add(r.value);
      // Retry until a definite answer; keyless requests stop at an indeterminate one.
      for (let attempt = 0; attempt < 6 && this.running; attempt++) {
        const a = await this.send(producer, rng, records, key);
        if (a.outcome === "ok") break;
        if (a.outcome === "info" && !key && !rng.chance(this.o.naiveRetryShare ?? 0.3)) break;
        if (a.outcome === "fail" && ![0, 503, 429].includes(a.status)) break;
        await sleep(rng.int(20, 200));
      }
    }
  }

  private async send(
    producer: number,
    rng: Prng,
    records: { value: string; partition: number }[],
    key: string | undefined,
  ): Promise<Attempt> {
    const nodes = this.o.nodes();
    const node = rng.pick(nodes);
    const a: Attempt = {
      id: this.nextId++,
      producer,
      node,
      key,
      records,
      t0: Date.now(),
      t1: 0,
      outcome: "info",
      status: 0,
      code: undefined,
      offsets: undefined,
    };
    const body = JSON.stringify({
      records: records.map((r) => ({ value: r.value, partition: r.partition })),
    });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (key) headers["idempotency-key"] = key;
    const path = `/v1/topics/${this.o.topic}/records?timeoutMs=${this.o.serverTimeoutMs ?? 3000}`;
    try {
      const res = await fetch(this.o.url(node, path), {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(this.o.clientTimeoutMs ?? 6000),
      });
      const text = await res.text();
      a.status = res.status;
      const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      if (res.status === 200) {
        a.outcome = "ok";
        a.offsets = (parsed.records as { partition: number; offset: number }[]).map((r) => ({
          partition: r.partition,
          offset: r.offset,
        }));
      } else {
        a.code = (parsed.error as { code?: string } | undefined)?.code;
        // API.md: every answer but 200 and 504 means nothing was appended. A 5xx
        // the contract does not name is treated as indeterminate (and reported).
        a.outcome = res.status === 504 || (res.status >= 500 && res.status !== 503) ? "info" : "fail";
      }
    } catch (e) {
      // A refused connection sent nothing: a definite failure. Anything else
      // (a timeout, a reset mid-request) may have reached the node.
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      a.outcome = cause === "ECONNREFUSED" ? "fail" : "info";
      a.code = cause ?? (e instanceof Error ? e.name : "error");
    }
    a.t1 = Date.now();
    this.attempts.push(a);
    return a;
  }
}
