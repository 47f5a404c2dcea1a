// `raftbus topics create|list|describe|delete`: topic administration, in the
// manner of kafka-topics. Human-readable output by default, `--json` for the
// API's answer as it is.

import type { Command } from "commander";
import {
  ApiError,
  addClientOptions,
  type ClientFlags,
  clientFrom,
  intArg,
  type TopicInfo,
  table,
} from "./http-client.ts";

interface JsonFlag {
  json?: boolean;
}

export function registerTopicsCommand(program: Command): void {
  const topics = program
    .command("topics")
    .description("create, list, describe and delete topics")
    .addHelpText(
      "after",
      "\nExamples:\n  raftbus topics create orders --partitions 3 --retention-ms 86400000\n  raftbus topics list\n  raftbus topics describe orders --json\n  raftbus topics delete orders",
    );

  addClientOptions(
    topics
      .command("create <name>")
      .description("create a topic")
      .option("-p, --partitions <n>", "number of partitions (1..1024)", intArg(1), 1)
      .option("--retention-ms <ms>", "delete records older than this (default: keep forever)", intArg(0))
      .option("--retention-bytes <n>", "keep at most about this many bytes per partition", intArg(0))
      .option("--if-not-exists", "succeed quietly when the topic exists already")
      .option("--json", "print the API's JSON answer"),
  ).action(
    async (
      name: string,
      f: ClientFlags &
        JsonFlag & {
          partitions: number;
          retentionMs?: number;
          retentionBytes?: number;
          ifNotExists?: boolean;
        },
    ) => {
      const client = clientFrom(f);
      let topic: TopicInfo;
      try {
        topic = await client.createTopic({
          name,
          partitions: f.partitions,
          retentionMs: f.retentionMs ?? null,
          retentionBytes: f.retentionBytes ?? null,
        });
      } catch (e) {
        // TOPIC_EXISTS after an attempt whose outcome was unknown is most likely our own creation.
        const exists = e instanceof ApiError && e.code === "TOPIC_EXISTS";
        if (exists && (f.ifNotExists || e.maybeApplied)) {
          topic = await client.describeTopic(name);
          if (f.json) print(JSON.stringify(topic));
          else if (e.maybeApplied) print(`created topic "${name}": ${summary(topic)}`);
          else print(`topic "${name}" exists already: ${summary(topic)}`);
          return;
        }
        throw e;
      }
      print(f.json ? JSON.stringify(topic) : `created topic "${name}": ${summary(topic)}`);
    },
  );

  addClientOptions(
    topics
      .command("list")
      .alias("ls")
      .description("list the topics")
      .option("--json", "print the API's JSON answer"),
  ).action(async (f: ClientFlags & JsonFlag) => {
    const client = clientFrom(f);
    const topics = await client.listTopics();
    if (f.json) return print(JSON.stringify({ topics }));
    if (topics.length === 0) return print("no topics");
    const rows = [...topics]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((t) => [t.name, t.partitions.length, records(t), retention(t)]);
    print(table(["NAME", "PARTITIONS", "RECORDS", "RETENTION"], rows));
  });

  addClientOptions(
    topics
      .command("describe <name>")
      .description("show a topic's partitions, offsets and retention")
      .option("--json", "print the API's JSON answer"),
  ).action(async (name: string, f: ClientFlags & JsonFlag) => {
    const client = clientFrom(f);
    const t = await client.describeTopic(name);
    if (f.json) return print(JSON.stringify(t));
    print(
      `topic:      ${t.name}\npartitions: ${t.partitions.length}\nrecords:    ${records(t)}\nretention:  ${retention(t)}\n`,
    );
    print(
      table(
        ["PARTITION", "START", "END", "RECORDS"],
        t.partitions.map((p) => [p.partition, p.startOffset, p.endOffset, p.endOffset - p.startOffset]),
      ),
    );
  });

  addClientOptions(
    topics
      .command("delete <name>")
      .alias("rm")
      .description("delete a topic and its records")
      .option("--if-exists", "succeed quietly when there is no such topic")
      .option("--json", "print a JSON answer"),
  ).action(async (name: string, f: ClientFlags & JsonFlag & { ifExists?: boolean }) => {
    const client = clientFrom(f);
    try {
      await client.deleteTopic(name);
    } catch (e) {
      const missing = e instanceof ApiError && e.code === "TOPIC_NOT_FOUND";
      // After an attempt whose outcome was unknown, "not found" is most likely our own deletion.
      if (!(missing && (f.ifExists || e.maybeApplied))) throw e;
      if (!e.maybeApplied) {
        print(f.json ? JSON.stringify({ deleted: false, name }) : `no topic "${name}"`);
        return;
      }
    }
    print(f.json ? JSON.stringify({ deleted: true, name }) : `deleted topic "${name}"`);
  });
}

function print(s: string): void {
  process.stdout.write(`${s}\n`);
}

function records(t: TopicInfo): number {
  return t.partitions.reduce((n, p) => n + (p.endOffset - p.startOffset), 0);
}

function summary(t: TopicInfo): string {
  const n = t.partitions.length;
  return `${n} partition${n === 1 ? "" : "s"}, retention ${retention(t)}`;
}

export function retention(t: Pick<TopicInfo, "retentionMs" | "retentionBytes">): string {
  const parts: string[] = [];
  if (t.retentionMs !== null) parts.push(humanMs(t.retentionMs));
  if (t.retentionBytes !== null) parts.push(humanBytes(t.retentionBytes));
  return parts.length ? parts.join(", ") : "forever";
}

/** 86400000 -> "1d", 5400000 -> "90m", 1500 -> "1500ms". */
export function humanMs(ms: number): string {
  const units: [string, number][] = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ];
  for (const [u, n] of units) if (ms >= n && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

/** 1073741824 -> "1 GiB", 1500 -> "1500 B". */
export function humanBytes(b: number): string {
  const units: [string, number][] = [
    ["TiB", 2 ** 40],
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ];
  for (const [u, n] of units) if (b >= n && b % n === 0) return `${b / n} ${u}`;
  return `${b} B`;
}
