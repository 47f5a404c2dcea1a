// `raftbus consume <topic>`, in the manner of kafka-console-consumer: follows a
// topic with the client's Consumer (src/client) and prints each record's
// value, one per line, until Ctrl-C, --max-messages or --timeout-ms without
// a record.
//
// The Consumer does the hard parts: a WebSocket per partition, failover to
// the next server resuming exactly after the last record (no gap, no
// repeat), credit so the server stops sending while stdout is stalled. With
// --group, printed records are committed every --commit-interval-ms and on
// exit, so a restarted consumer of the group resumes where this one stopped.

import { once } from "node:events";
import type { Command } from "commander";
import {
  type ConsumedRecord,
  type Consumer,
  OffsetOutOfRangeError,
  TopicDeletedError,
} from "../client/index.ts";
import {
  addClientOptions,
  CliError,
  type ClientFlags,
  clientFrom,
  type FetchedRecord,
  formatError,
  intArg,
  type RaftbusClient,
} from "./http-client.ts";
import { Progress, rate } from "./produce-command.ts";

export interface ConsumeFlags extends ClientFlags {
  partition?: number;
  from?: string;
  group?: string;
  maxMessages?: number;
  timeoutMs?: number;
  printOffset?: boolean;
  printKey?: boolean;
  printTimestamp?: boolean;
  json?: boolean;
  commitIntervalMs: number;
  progress?: boolean;
  quiet?: boolean;
}

export function registerConsumeCommand(program: Command): void {
  addClientOptions(
    program
      .command("consume <topic>")
      .description("print a topic's records, one per line, and follow it live")
      .option("-p, --partition <n>", "only this partition (default: all of them)", intArg(0))
      .option(
        "-f, --from <where>",
        "earliest, latest or an offset (default: the group's committed offset, else latest)",
      )
      .option("-g, --group <name>", "consumer group: resume from, and commit, its offsets")
      .option("-n, --max-messages <n>", "exit after printing this many records", intArg(1))
      .option("--timeout-ms <ms>", "exit when no record arrives for this long", intArg(1))
      .option("--print-offset", "prefix each record with Partition:<p> and Offset:<o>")
      .option("--print-key", "prefix each record with its key")
      .option("--print-timestamp", "prefix each record with its timestamp (ms)")
      .option(
        "--json",
        "print each record as a JSON object (partition, offset, timestamp, key, value, headers)",
      )
      .option("--commit-interval-ms <ms>", "with --group, commit this often", intArg(100), 1000)
      .option("--progress", "show progress on stderr while reading a backlog, even when it is not a terminal")
      .option("-q, --quiet", "print nothing but records and errors")
      .addHelpText(
        "after",
        "\nValues print as they were produced: strings as text, other JSON values as JSON, bytes as base64.\n\nExamples:\n  raftbus consume demo --from earliest\n  raftbus consume demo --group billing --print-offset --print-key\n  raftbus consume demo --from earliest --max-messages 10 --json",
      ),
  ).action(async (topic: string, f: ConsumeFlags) => {
    await runConsume(topic, f);
  });
}

type From = "earliest" | "latest" | number | undefined;

export function parseFrom(s: string | undefined): From {
  if (s === undefined) return undefined;
  if (s === "earliest" || s === "beginning") return "earliest";
  if (s === "latest" || s === "end") return "latest";
  if (/^\d+$/.test(s) && Number.isSafeInteger(Number(s))) return Number(s);
  throw new CliError(`--from: expected earliest, latest or an offset, got "${s}"`, 2);
}

/** The text a record's value prints as: strings as they are (unless they span lines), JSON as JSON, bytes as base64. */
export function valueText(r: FetchedRecord): string {
  if (r.valueBase64 !== undefined) return r.valueBase64;
  const v = r.value;
  if (typeof v === "string" && !/[\r\n]/.test(v)) return v;
  return JSON.stringify(v === undefined ? null : v);
}

export function formatRecord(partition: number, r: FetchedRecord, f: ConsumeFlags): string {
  if (f.json) {
    const { offset, timestamp, key, headers, ...rest } = r;
    return JSON.stringify({ partition, offset, timestamp, key, ...rest, headers });
  }
  let s = "";
  if (f.printTimestamp) s += `CreateTime:${r.timestamp}\t`;
  if (f.printOffset) s += `Partition:${partition}\tOffset:${r.offset}\t`;
  if (f.printKey) s += `${r.key ?? "null"}\t`;
  return s + valueText(r);
}

/** Records to read before the consumer is caught up (for the progress line). */
async function backlogOf(client: RaftbusClient, topic: string, from: From, f: ConsumeFlags): Promise<number> {
  if (from === "latest") return 0;
  const info = await client.describeTopic(topic);
  const parts = info.partitions.filter((p) => f.partition === undefined || p.partition === f.partition);
  const committed = new Map<number, number>();
  if (from === undefined && f.group !== undefined) {
    for (const o of await client.groupOffsets(f.group))
      if (o.topic === topic) committed.set(o.partition, o.offset);
  }
  let n = 0;
  for (const p of parts) {
    const start =
      from === "earliest"
        ? p.startOffset
        : typeof from === "number"
          ? from
          : (committed.get(p.partition) ?? p.endOffset);
    n += Math.max(0, p.endOffset - Math.max(start, p.startOffset));
  }
  return n;
}

export async function runConsume(topic: string, f: ConsumeFlags): Promise<void> {
  const from = parseFrom(f.from);
  const client = clientFrom(f);
  const stderrTty = process.stderr.isTTY === true;
  const stdoutTty = process.stdout.isTTY === true;
  const progress = new Progress(process.stderr, stderrTty, stderrTty ? 250 : 1000);
  const note = (s: string) => {
    if (f.quiet) return;
    progress.clear();
    process.stderr.write(`${s}\n`);
  };
  const consumer: Consumer = client.subscribe(topic, {
    ...(from === undefined ? {} : { from }),
    ...(f.partition === undefined ? {} : { partition: f.partition }),
    ...(f.group === undefined ? {} : { group: f.group }),
    autoCommitIntervalMs: f.commitIntervalMs,
    onEvent: note,
  });
  const wantProgress = !f.quiet && (f.progress === true || stderrTty);
  const backlog = wantProgress ? await backlogOf(client, topic, from, f).catch(() => 0) : 0;
  const showProgress = wantProgress && backlog > 0;

  // Ctrl-C, SIGTERM, a closed stdout or --timeout-ms end the loop through `stopped`.
  let stop!: () => void;
  const stopped = new Promise<"stop">((r) => {
    stop = () => r("stop");
  });
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let outputError: unknown;
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    // The reader went away (e.g. `| head`): stop, and still commit what was printed.
    if (e.code !== "EPIPE") outputError = e;
    stop();
  };
  process.stdout.on("error", onStdoutError);
  let lastRecordAt = Date.now();
  const idleTimer =
    f.timeoutMs !== undefined
      ? setInterval(
          () => {
            if (Date.now() - lastRecordAt >= f.timeoutMs!) stop();
          },
          Math.min(f.timeoutMs, 250),
        )
      : undefined;

  let count = 0;
  let fatal: unknown;
  try {
    while (f.maxMessages === undefined || count < f.maxMessages) {
      const r = await Promise.race([consumer.next(), stopped]);
      if (r === "stop" || r.done) break;
      const rec: ConsumedRecord = r.value;
      count++;
      lastRecordAt = Date.now();
      if (stdoutTty) progress.clear();
      // A slow reader of our output: stop pulling records (the consumer then stops granting credit).
      if (!process.stdout.write(`${formatRecord(rec.partition, rec, f)}\n`)) {
        await Promise.race([once(process.stdout, "drain"), stopped]);
      }
      if (showProgress && count < backlog) {
        progress.update(
          () =>
            `consumed ${count} of a ${backlog}-record backlog (${rate(count, progress.elapsedMs)} records/s)`,
        );
      } else if (showProgress) progress.clear();
    }
  } catch (e) {
    fatal = e;
  } finally {
    clearInterval(idleTimer);
    progress.clear();
  }

  // Everything printed counts as processed: commit it all, then close.
  let committed = true;
  if (f.group !== undefined) {
    await consumer.commit().catch((e: unknown) => {
      committed = false;
      note(`could not commit the offsets of group "${f.group}": ${formatError(e)}`);
    });
  }
  await consumer.close().catch(() => {});
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  process.stdout.off("error", onStdoutError);
  if (fatal instanceof OffsetOutOfRangeError) {
    const { startOffset, endOffset, partition } = fatal.details;
    throw new CliError(
      `--from ${f.from} is out of range for partition ${partition}: it holds offsets ${startOffset}..${endOffset}`,
    );
  }
  if (fatal instanceof TopicDeletedError) throw new CliError(`topic "${topic}" was deleted`);
  if (fatal !== undefined) throw fatal;
  if (outputError !== undefined) throw outputError;
  if (!f.quiet) process.stderr.write(`Processed a total of ${count} message${count === 1 ? "" : "s"}\n`);
  if (!committed) throw new CliError(`could not commit the offsets of group "${f.group}"`);
}
