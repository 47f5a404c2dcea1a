// `raftbus consume <topic>`, in the manner of kafka-console-consumer: follows a
// topic over WebSocket subscriptions (one per partition, API.md "Subscribe")
// and prints each record's value, one per line, until Ctrl-C, --max-messages
// or --timeout-ms without a record.
//
// Position: the CLI keeps, per partition, the next offset to print. Every
// subscription, the first and each one after a dropped connection (to the next
// server in --server), starts exactly there, so the output has no gaps and no
// repeats. `latest` and a group's committed offset are resolved to numbers
// before the first connection for the same reason.
//
// With --group, the next offset of each partition (only ever of records
// printed) is committed every --commit-interval-ms and on exit, with
// `{"type":"commit"}` frames (falling back to POST /v1/groups/:group/offsets),
// so a restarted consumer of the group resumes where this one stopped.

import type { Command } from "commander";
import type WebSocket from "ws";
import {
  ApiError,
  addClientOptions,
  backoffMs,
  CliError,
  type ClientFlags,
  clientOptionsFrom,
  type FetchedRecord,
  formatError,
  intArg,
  RaftbusClient,
  type Subscription,
  type TopicInfo,
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

interface PartitionState {
  partition: number;
  /** Next offset to print; "earliest" until the first record when started there. */
  next: number | "earliest";
  /** Whether `next` came from the user's explicit --from (an out-of-range one is then an error). */
  explicit: boolean;
  ws: WebSocket | undefined;
  /** Highest offset committed (acknowledged) and sent for commit. */
  committed: number;
  commitSent: number;
  attempt: number;
  /** Consecutive failures to reach any server. */
  failures: number;
}

const COMMIT_WAIT_MS = 5000;
const PING_MS = 10_000;

export async function runConsume(topic: string, f: ConsumeFlags): Promise<void> {
  const from = parseFrom(f.from);
  const client = new RaftbusClient(clientOptionsFrom(f));
  const info: TopicInfo = await client.getTopic(topic);
  const parts =
    f.partition === undefined ? info.partitions : info.partitions.filter((p) => p.partition === f.partition);
  if (parts.length === 0) {
    throw new ApiError(
      404,
      "PARTITION_NOT_FOUND",
      `topic "${topic}" has no partition ${f.partition} (it has ${info.partitions.length})`,
      false,
    );
  }

  // Where each partition starts, as a number where it can be.
  let committedByGroup = new Map<number, number>();
  if (from === undefined && f.group !== undefined) {
    const offsets = await client.groupOffsets(f.group);
    committedByGroup = new Map(offsets.filter((o) => o.topic === topic).map((o) => [o.partition, o.offset]));
  }
  const states: PartitionState[] = parts.map((p) => {
    let next: number | "earliest";
    if (from === "earliest") next = "earliest";
    else if (typeof from === "number") next = from;
    else if (from === "latest") next = p.endOffset;
    else next = committedByGroup.get(p.partition) ?? p.endOffset;
    const c = committedByGroup.get(p.partition) ?? -1;
    return {
      partition: p.partition,
      next,
      explicit: typeof from === "number",
      ws: undefined,
      committed: c,
      commitSent: c,
      attempt: 0,
      failures: 0,
    };
  });
  const backlog = parts.reduce((n, p, i) => {
    const s = states[i]!.next;
    const start = s === "earliest" ? p.startOffset : Math.max(s, p.startOffset);
    return n + Math.max(0, p.endOffset - start);
  }, 0);

  const stderrTty = process.stderr.isTTY === true;
  const stdoutTty = process.stdout.isTTY === true;
  const showProgress = !f.quiet && (f.progress === true || stderrTty) && backlog > 0;
  const progress = new Progress(process.stderr, stderrTty, stderrTty ? 250 : 1000);
  const note = (s: string) => {
    if (f.quiet) return;
    progress.clear();
    process.stderr.write(`${s}\n`);
  };

  let count = 0;
  let lastRecordAt = Date.now();
  let finished = false;
  let fatal: unknown;
  let paused = false;
  let finish!: () => void;
  const done = new Promise<void>((r) => {
    finish = r;
  });
  const stop = (e?: unknown) => {
    if (finished) return;
    if (e !== undefined) fatal = e;
    finished = true;
    // Read the sockets again (they may be paused for a stalled stdout): commit answers come on them.
    paused = false;
    for (const st of states) st.ws?.resume();
    finish();
  };

  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    // The reader went away (e.g. `| head`): stop, and still commit what was printed.
    if (e.code === "EPIPE") stop();
    else stop(e);
  });

  const onRecords = (st: PartitionState, records: FetchedRecord[]) => {
    if (finished) return;
    let out = "";
    for (const r of records) {
      if (typeof st.next === "number" && r.offset < st.next) continue; // never print one twice
      out += `${formatRecord(st.partition, r, f)}\n`;
      st.next = r.offset + 1;
      count++;
      if (f.maxMessages !== undefined && count >= f.maxMessages) break;
    }
    if (out) {
      lastRecordAt = Date.now();
      if (stdoutTty) progress.clear();
      if (!process.stdout.write(out) && !paused) {
        // A slow reader of our output: stop reading the sockets (the server then stops sending).
        paused = true;
        for (const s of states) s.ws?.pause();
        process.stdout.once("drain", () => {
          paused = false;
          for (const s of states) s.ws?.resume();
        });
      }
    }
    if (showProgress && count < backlog) {
      progress.update(
        () =>
          `consumed ${count} of a ${backlog}-record backlog (${rate(count, progress.elapsedMs)} records/s)`,
      );
    } else if (showProgress) {
      progress.clear();
    }
    if (f.maxMessages !== undefined && count >= f.maxMessages) stop();
  };

  // Commit waiters: resolved by "committed" frames.
  const commitWaiters = new Set<{ st: PartitionState; offset: number; resolve: () => void }>();
  const sendCommit = (st: PartitionState): boolean => {
    if (f.group === undefined || typeof st.next !== "number" || st.next <= st.commitSent) return false;
    if (!st.ws || st.ws.readyState !== st.ws.OPEN) return false;
    st.ws.send(JSON.stringify({ type: "commit", partition: st.partition, offset: st.next }));
    st.commitSent = st.next;
    return true;
  };

  const connect = async (st: PartitionState): Promise<void> => {
    while (!finished) {
      const server = client.server;
      let sub: Subscription;
      try {
        sub = await client.openSubscription(
          topic,
          { partition: st.partition, from: st.next, group: f.group },
          (text) => onFrame(st, text),
        );
      } catch (e) {
        if (finished) return;
        if (e instanceof ApiError && e.code === "OFFSET_OUT_OF_RANGE") {
          const start = Number(e.details.startOffset);
          const end = Number(e.details.endOffset);
          if (st.explicit && st.attempt === 0) {
            return stop(
              new CliError(
                `--from ${st.next} is out of range for partition ${st.partition}: it holds offsets ${start}..${end}`,
              ),
            );
          }
          if (typeof st.next === "number" && Number.isFinite(start) && st.next < start) {
            note(
              `partition ${st.partition}: records ${st.next}..${start - 1} were removed by retention before they were read; continuing at ${start}`,
            );
            st.next = start;
            continue;
          }
          if (typeof st.next === "number" && Number.isFinite(end) && st.next > end) {
            // The topic was deleted and created again under the name: it starts over.
            note(
              `partition ${st.partition}: offset ${st.next} is past the end ${end} (topic re-created?); continuing at ${end}`,
            );
            st.next = end;
            continue;
          }
        }
        if (e instanceof ApiError && !e.retriable) return stop(e);
        st.failures++;
        client.rotate(server);
        const wait = st.failures >= client.servers.length ? backoffMs(st.failures) : 0;
        if (st.failures === client.servers.length || st.failures % 20 === 0)
          note(`cannot subscribe (${formatError(e)}); retrying...`);
        if (wait) await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      const ws = sub.ws;
      if (finished) {
        ws.terminate();
        return;
      }
      if (st.attempt > 0 || st.failures > 0)
        note(`resumed partition ${st.partition} at offset ${st.next} via ${client.server}`);
      st.failures = 0;
      st.ws = ws;
      if (paused) ws.pause();
      const closed = await watch(st, sub);
      st.ws = undefined;
      if (finished) return;
      st.attempt++;
      if (closed.code === 4404) return stop(new CliError(`topic "${topic}" was deleted`));
      if (closed.code !== 4416) {
        // A node shutting down (1001) or a broken connection: on to the next server.
        client.rotate(server);
        note(
          `connection to ${server} closed (${closed.code}${closed.reason ? ` ${closed.reason}` : ""}); resuming partition ${st.partition} at offset ${st.next === "earliest" ? "earliest" : st.next} via ${client.server}`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(1000, backoffMs(st.attempt - 1) / 4)));
    }
  };

  const onFrame = (st: PartitionState, text: string) => {
    let msg: {
      type?: string;
      partition?: number;
      offset?: number;
      records?: FetchedRecord[];
      code?: string;
      message?: string;
    };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.type === "records" && Array.isArray(msg.records)) onRecords(st, msg.records);
    else if (msg.type === "committed" && typeof msg.offset === "number") {
      st.committed = Math.max(st.committed, msg.offset);
      for (const w of commitWaiters) if (w.st === st && st.committed >= w.offset) w.resolve();
    } else if (msg.type === "error") {
      note(`server: ${msg.code ?? "ERROR"}: ${msg.message ?? ""}`);
    }
  };

  /** Pings the socket (a silent node or network is cut off) and waits for its close. */
  const watch = async (st: PartitionState, sub: Subscription): Promise<{ code: number; reason: string }> => {
    const { ws } = sub;
    let alive = true;
    const mark = () => {
      alive = true;
    };
    ws.on("pong", mark);
    ws.on("message", mark);
    const ping = setInterval(() => {
      // While our stdout is stalled the socket is paused on purpose and reads no pongs.
      if (paused) {
        alive = true;
        return;
      }
      if (!alive) {
        ws.terminate(); // no answer within PING_MS
        return;
      }
      alive = false;
      ws.ping();
    }, PING_MS);
    const closed = await sub.closed;
    clearInterval(ping);
    // Commits sent on this socket and not acknowledged may be lost: send them again later.
    st.commitSent = st.committed;
    return closed;
  };

  const onSignal = () => {
    if (finished) process.exit(130);
    stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const commitTimer =
    f.group !== undefined
      ? setInterval(() => {
          for (const st of states) sendCommit(st);
        }, f.commitIntervalMs)
      : undefined;
  const idleTimer =
    f.timeoutMs !== undefined
      ? setInterval(
          () => {
            if (Date.now() - lastRecordAt >= f.timeoutMs!) stop();
          },
          Math.min(f.timeoutMs, 250),
        )
      : undefined;

  const readers = states.map((st) => connect(st).catch((e) => stop(e)));
  await done;
  clearInterval(commitTimer);
  clearInterval(idleTimer);
  progress.clear();

  const committedAll =
    f.group === undefined ||
    (await finalCommit(client, f.group, topic, states, commitWaiters, sendCommit, note));
  for (const st of states) {
    const ws = st.ws;
    if (!ws) continue;
    ws.close(1000);
    setTimeout(() => ws.terminate(), 1000).unref();
  }
  await Promise.race([Promise.all(readers), new Promise((r) => setTimeout(r, 2000).unref())]);
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  if (fatal !== undefined) throw fatal;
  if (!f.quiet) process.stderr.write(`Processed a total of ${count} message${count === 1 ? "" : "s"}\n`);
  if (!committedAll) throw new CliError(`could not commit the offsets of group "${f.group}"`);
}

/** Commits each partition's next offset: by frame where the socket is up, else over HTTP. */
async function finalCommit(
  client: RaftbusClient,
  group: string,
  topic: string,
  states: PartitionState[],
  waiters: Set<{ st: PartitionState; offset: number; resolve: () => void }>,
  sendCommit: (st: PartitionState) => boolean,
  note: (s: string) => void,
): Promise<boolean> {
  let ok = true;
  await Promise.all(
    states.map(async (st) => {
      if (typeof st.next !== "number" || st.next <= st.committed) return;
      const offset = st.next;
      sendCommit(st);
      if (st.commitSent >= offset && st.ws) {
        const acked = await new Promise<boolean>((resolve) => {
          const w = {
            st,
            offset,
            resolve: () => {
              waiters.delete(w);
              resolve(true);
            },
          };
          waiters.add(w);
          if (st.committed >= offset) resolve(true);
          st.ws?.once("close", () => resolve(false));
          setTimeout(() => resolve(false), COMMIT_WAIT_MS).unref();
        });
        if (acked) return;
      }
      try {
        await client.commitOffset(group, topic, st.partition, offset);
        st.committed = offset;
      } catch (e) {
        ok = false;
        note(`could not commit offset ${offset} of partition ${st.partition}: ${formatError(e)}`);
      }
    }),
  );
  return ok;
}
