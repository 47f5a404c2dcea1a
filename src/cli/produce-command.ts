// `raftbus produce <topic> [values...]`, in the manner of
// kafka-console-producer: each argument, or else each line of stdin, is one
// record. Records go in batches (up to --batch-records / --batch-bytes per
// request) with a bounded number of requests in flight; each batch carries an
// Idempotency-Key so that retries (other server, NO_LEADER, COMMIT_TIMEOUT)
// append it exactly once. A progress line goes to stderr for large inputs.

import type { Command } from "commander";
import {
  addClientOptions,
  CliError,
  type ClientFlags,
  clientFrom,
  formatError,
  intArg,
  type ProducerRecord,
  type RaftbusClient,
  type RecordMetadata,
} from "./http-client.ts";

export interface ProduceFlags extends ClientFlags {
  key?: string;
  partition?: number;
  keySeparator?: string;
  json?: boolean;
  header: string[];
  batchRecords: number;
  batchBytes: number;
  concurrency: number;
  lingerMs: number;
  progress?: boolean;
  quiet?: boolean;
}

export function registerProduceCommand(program: Command): void {
  addClientOptions(
    program
      .command("produce <topic> [values...]")
      .description("append records: each value given, else each line of stdin, is one record")
      .option("-k, --key <key>", "the key of every record (records with one key go to one partition)")
      .option("-p, --partition <n>", "append to this partition (default: by key, else any)", intArg(0))
      .option(
        "--key-separator <sep>",
        "each line is <key><sep><value> (like Kafka's parse.key); a line without <sep> is an error",
      )
      .option("--json", "values are JSON (default: each value is sent as a JSON string)")
      .option("-H, --header <k=v>", "a header of every record (repeatable)", collect, [])
      .option("--batch-records <n>", "at most this many records per request", intArg(1), 500)
      .option("--batch-bytes <n>", "at most about this many bytes per request", intArg(1024), 1024 * 1024)
      .option(
        "--concurrency <n>",
        "requests in flight; above 1, batches may be appended out of order",
        intArg(1),
        1,
      )
      .option("--linger-ms <ms>", "send a partial batch once input pauses this long", intArg(0), 20)
      .option("--progress", "always show progress on stderr")
      .option("--no-progress", "never show progress on stderr")
      .option("-q, --quiet", "print nothing but errors")
      .addHelpText(
        "after",
        "\nExamples:\n  raftbus produce demo hello world\n  seq 1 100000 | raftbus produce demo\n  printf 'user-1:{\"n\":1}\\n' | raftbus produce demo --key-separator : --json",
      ),
  ).action(async (topic: string, values: string[], f: ProduceFlags) => {
    await runProduce(topic, values, f);
  });
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function parseHeaders(hs: string[]): Record<string, string> | undefined {
  if (hs.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const h of hs) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new CliError(`--header: expected key=value, got "${h}"`, 2);
    out[h.slice(0, eq)] = h.slice(eq + 1);
  }
  return out;
}

export interface RecordOptions {
  key?: string | undefined;
  partition?: number | undefined;
  keySeparator?: string | undefined;
  json?: boolean | undefined;
  headers?: Record<string, string> | undefined;
}

/** One input line (or argument) as a record; `where` names it in errors ("line 7"). */
export function toRecord(line: string, where: string, o: RecordOptions): ProducerRecord {
  const r: ProducerRecord = {};
  let text = line;
  if (o.keySeparator !== undefined) {
    const i = line.indexOf(o.keySeparator);
    if (i < 0) throw new CliError(`${where}: no key separator "${o.keySeparator}" in "${clip(line)}"`);
    r.key = line.slice(0, i);
    text = line.slice(i + o.keySeparator.length);
  } else if (o.key !== undefined) {
    r.key = o.key;
  }
  if (o.json) {
    try {
      r.value = JSON.parse(text);
    } catch (e) {
      throw new CliError(`${where}: not valid JSON (${(e as Error).message}): "${clip(text)}"`);
    }
  } else {
    r.value = text;
  }
  if (o.headers) r.headers = o.headers;
  if (o.partition !== undefined) r.partition = o.partition;
  return r;
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Limits the requests in flight; waiters are served first come, first served. */
class Slots {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async acquire(): Promise<void> {
    if (this.active < this.max && this.waiters.length === 0) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }
}

export interface BatcherOptions {
  maxRecords: number;
  maxBytes: number;
  concurrency: number;
  lingerMs: number;
}

/**
 * Collects records into batches and sends them, at most `concurrency` at a
 * time, in the order they were added (with concurrency 1 the records are
 * appended in input order). The first permanent failure stops it.
 */
export class Batcher {
  private batch: ProducerRecord[] = [];
  private bytes = 0;
  private readonly slots: Slots;
  private readonly inflight = new Set<Promise<void>>();
  private linger: NodeJS.Timeout | undefined;
  failure: unknown;
  /** Records the cluster has acknowledged. */
  acked = 0;
  /** Offsets appended, per partition: [first, last]. */
  readonly ranges = new Map<number, [number, number]>();

  constructor(
    private readonly client: RaftbusClient,
    private readonly topic: string,
    private readonly o: BatcherOptions,
  ) {
    this.slots = new Slots(o.concurrency);
  }

  /** Adds a record; waits while the batch is full and no request slot is free. */
  async add(r: ProducerRecord): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const size = Buffer.byteLength(JSON.stringify(r)) + 1;
    if (
      this.batch.length > 0 &&
      (this.batch.length >= this.o.maxRecords || this.bytes + size > this.o.maxBytes)
    )
      await this.flush();
    this.batch.push(r);
    this.bytes += size;
    if (this.batch.length >= this.o.maxRecords) await this.flush();
    else if (!this.linger) this.linger = setTimeout(() => void this.flush().catch(() => {}), this.o.lingerMs);
  }

  /**
   * Queues the current batch for sending and waits until it has a request
   * slot (so a caller adding records is held back while all slots are busy).
   * Batches take slots in the order they were flushed.
   */
  async flush(): Promise<void> {
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.bytes = 0;
    let acquired!: () => void;
    const slot = new Promise<void>((r) => {
      acquired = r;
    });
    const p = (async () => {
      await this.slots.acquire();
      acquired();
      try {
        if (this.failure === undefined) await this.send(batch);
      } finally {
        this.slots.release();
      }
    })();
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
    await slot;
    if (this.failure !== undefined) throw this.failure;
  }

  private async send(batch: ProducerRecord[]): Promise<void> {
    try {
      const positions = await this.client.produce(this.topic, batch);
      this.note(positions);
      this.acked += batch.length;
    } catch (e) {
      this.failure ??= e;
    }
  }

  private note(positions: RecordMetadata[]): void {
    for (const p of positions) {
      const r = this.ranges.get(p.partition);
      if (!r) this.ranges.set(p.partition, [p.offset, p.offset]);
      else {
        r[0] = Math.min(r[0], p.offset);
        r[1] = Math.max(r[1], p.offset);
      }
    }
  }

  /** Sends what is left and waits for every request; throws the first failure. */
  async close(): Promise<void> {
    await this.flush().catch(() => {});
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
    if (this.failure !== undefined) throw this.failure;
  }
}

/** A status line on stderr: rewritten in place on a terminal, else a line now and then. */
export class Progress {
  private last = 0;
  private shown = false;
  private readonly t0 = Date.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty: boolean,
    /** Minimum time between updates (and before the first). */
    private readonly intervalMs: number,
  ) {}

  get elapsedMs(): number {
    return Date.now() - this.t0;
  }

  /** Shows `text()` if it is time to (the text is only built then). */
  update(text: () => string): void {
    const now = Date.now();
    if (now - this.t0 < this.intervalMs || now - this.last < this.intervalMs) return;
    this.last = now;
    if (this.tty) {
      this.out.write(`\r\x1b[K${text()}`);
      this.shown = true;
    } else {
      this.out.write(`${text()}\n`);
    }
  }

  /** Removes the line from a terminal (before other output or the summary). */
  clear(): void {
    if (this.shown) this.out.write("\r\x1b[K");
    this.shown = false;
  }
}

export function rate(n: number, ms: number): string {
  const r = ms > 0 ? (n * 1000) / ms : 0;
  return r >= 100 ? String(Math.round(r)) : r.toFixed(1);
}

export async function runProduce(topic: string, values: string[], f: ProduceFlags): Promise<void> {
  if (f.key !== undefined && f.keySeparator !== undefined)
    throw new CliError("--key and --key-separator exclude each other", 2);
  if (f.keySeparator === "") throw new CliError("--key-separator must not be empty", 2);
  const client = clientFrom(f);
  const ro: RecordOptions = {
    key: f.key,
    partition: f.partition,
    keySeparator: f.keySeparator,
    json: f.json,
    headers: parseHeaders(f.header),
  };
  const batcher = new Batcher(client, topic, {
    maxRecords: f.batchRecords,
    maxBytes: f.batchBytes,
    concurrency: f.concurrency,
    lingerMs: f.lingerMs,
  });
  const fromArgs = values.length > 0;
  const stdinTty = !fromArgs && process.stdin.isTTY === true;
  const stderrTty = process.stderr.isTTY === true;
  // Progress for piped input: live on a terminal, a line every 5 s in a log; never while typing.
  const wantProgress = f.quiet ? false : (f.progress ?? (!fromArgs && !stdinTty));
  const progress = new Progress(process.stderr, stderrTty, stderrTty ? 250 : f.progress ? 1000 : 5000);
  let read = 0;
  const tick = () => {
    if (!wantProgress) return;
    progress.update(
      () =>
        `produced ${batcher.acked} records (${rate(batcher.acked, progress.elapsedMs)} records/s), ${read} read`,
    );
  };

  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    if (!fromArgs) process.stdin.destroy();
  };
  process.on("SIGINT", onSigint);
  const timer = setInterval(tick, 250);
  let error: unknown;
  try {
    if (fromArgs) {
      // Check every value before sending any.
      const records = values.map((v, i) => toRecord(v, `value ${i + 1}`, ro));
      for (const r of records) {
        if (interrupted) break;
        read++;
        await batcher.add(r);
      }
    } else {
      if (stdinTty && stderrTty && !f.quiet)
        process.stderr.write("type one record per line; Ctrl-D sends what is left and ends\n");
      await readLines(
        process.stdin,
        async (line) => {
          read++;
          // With --json a blank line carries no value: skip it rather than fail.
          if (ro.json && line.trim() === "") return;
          await batcher.add(toRecord(line, `line ${read}`, ro));
          tick();
        },
        () => interrupted,
      );
    }
    await batcher.close();
  } catch (e) {
    error = e;
    await batcher.close().catch(() => {});
  } finally {
    clearInterval(timer);
    process.off("SIGINT", onSigint);
  }
  progress.clear();
  const ms = progress.elapsedMs;
  if (!f.quiet && (error === undefined || batcher.acked > 0)) {
    const ranges = [...batcher.ranges.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([p, [lo, hi]]) => (lo === hi ? `${p}@${lo}` : `${p}@${lo}..${hi}`));
    const where = ranges.length ? ` (partition@offsets: ${clipList(ranges)})` : "";
    process.stderr.write(
      `produced ${batcher.acked} record${batcher.acked === 1 ? "" : "s"} to ${topic} in ${(ms / 1000).toFixed(2)} s` +
        `${ms >= 500 ? `, ${rate(batcher.acked, ms)} records/s` : ""}${where}${interrupted ? " (interrupted)" : ""}\n`,
    );
  }
  if (error !== undefined) {
    const what = error instanceof CliError ? error.message : formatError(error);
    throw new CliError(
      `produce failed${batcher.acked > 0 ? ` after ${batcher.acked} record${batcher.acked === 1 ? " was" : "s were"} appended` : ""}: ${what}`,
    );
  }
  if (interrupted) process.exitCode = 130;
}

function clipList(xs: string[]): string {
  return xs.length > 8 ? `${xs.slice(0, 8).join(", ")}, ... ${xs.length - 8} more` : xs.join(", ");
}

/**
 * Calls `onLine` for each line of `input` (LF or CRLF; a last line without a
 * newline counts), waiting for it before reading on: a slow cluster slows the
 * reading down instead of filling memory.
 */
export async function readLines(
  input: NodeJS.ReadableStream,
  onLine: (line: string) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  input.setEncoding("utf8");
  let rest = "";
  try {
    for await (const chunk of input as AsyncIterable<string>) {
      rest += chunk;
      let nl = rest.indexOf("\n");
      let start = 0;
      while (nl >= 0) {
        let line = rest.slice(start, nl);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        await onLine(line);
        if (stop()) return;
        start = nl + 1;
        nl = rest.indexOf("\n", start);
      }
      rest = rest.slice(start);
      if (stop()) return;
    }
  } catch (e) {
    // stdin destroyed on Ctrl-C ends the input; anything else is a real error.
    if (!stop()) throw e;
    return;
  }
  if (rest.length > 0 && !stop()) await onLine(rest.endsWith("\r") ? rest.slice(0, -1) : rest);
}
