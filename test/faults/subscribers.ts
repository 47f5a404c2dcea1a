// WebSocket subscribers that survive faults: one per (node, partition), each
// reconnecting (to the same node) from the offset after the last record it
// got. Within one connection the contract is strict (no gap, no repeat, offset
// order), so each connection is checked on its own; across connections the
// subscriber keeps a view offset -> value, and any record whose value differs
// from what an earlier connection saw at that offset is recorded too. The
// checker compares every view with the final log.

import WebSocket from "ws";
import { sleep } from "./harness.ts";

export interface StreamAnomaly {
  node: number;
  partition: number;
  conn: number;
  kind: "gap" | "repeat" | "reorder" | "changed";
  detail: string;
}

interface WireRecord {
  offset: number;
  value?: unknown;
}

export class Subscriber {
  /** offset -> value as first seen. */
  readonly view = new Map<number, string>();
  readonly anomalies: StreamAnomaly[] = [];
  connections = 0;
  records = 0;
  /** The offset to resume from (the next one not yet seen). */
  next = 0;
  private ws: WebSocket | undefined;
  private running = false;
  private loopDone: Promise<void> | undefined;

  constructor(
    readonly node: number,
    readonly partition: number,
    private readonly wsUrl: (from: number) => string,
  ) {}

  start(): void {
    this.running = true;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.ws?.terminate();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      await this.connectOnce();
      if (this.running) await sleep(300);
    }
  }

  /** One connection, until it closes or errs (or a paused node leaves it silent: see below). */
  private connectOnce(): Promise<void> {
    const conn = ++this.connections;
    let expect = this.next;
    return new Promise<void>((resolve) => {
      const ws = new WebSocket(this.wsUrl(this.next), { handshakeTimeout: 3000 });
      this.ws = ws;
      const done = () => {
        clearInterval(watchdog);
        resolve();
      };
      // A stopped (SIGSTOP) node keeps sockets open but silent. A subscriber
      // cannot tell that from a quiet topic, so the reconnect is left to the
      // fault's end: stop() and node restarts close the socket.
      const watchdog = setInterval(() => {
        if (!this.running) ws.terminate();
      }, 500);
      ws.on("message", (data) => {
        const f = JSON.parse(String(data)) as { type: string; partition?: number; records?: WireRecord[] };
        if (f.type !== "records" || f.partition !== this.partition) return;
        for (const r of f.records ?? []) {
          if (r.offset !== expect) {
            const kind = r.offset > expect ? "gap" : r.offset === expect - 1 ? "repeat" : "reorder";
            this.anomalies.push({
              node: this.node,
              partition: this.partition,
              conn,
              kind,
              detail: `expected offset ${expect}, got ${r.offset}`,
            });
          }
          expect = Math.max(expect, r.offset + 1);
          const v = typeof r.value === "string" ? r.value : JSON.stringify(r.value);
          const prev = this.view.get(r.offset);
          if (prev === undefined) this.view.set(r.offset, v);
          else if (prev !== v)
            this.anomalies.push({
              node: this.node,
              partition: this.partition,
              conn,
              kind: "changed",
              detail: `offset ${r.offset} was ${prev}, now ${v}`,
            });
          this.records++;
        }
        this.next = Math.max(this.next, expect);
      });
      ws.on("error", () => {});
      ws.on("unexpected-response", () => {
        ws.terminate();
        done();
      });
      ws.on("close", done);
    });
  }

  /** Cuts the current connection (it reconnects): used after a node is resumed. */
  reconnect(): void {
    this.ws?.terminate();
  }
}
