// bench:metrics — what Prometheus metrics cost on the produce path: the same
// single-record produce load (64 connections, leader) on a 3-node cluster with
// metrics on (and /metrics scraped every second on every node, 10x a usual
// scrape interval) and with `--metrics off`, alternating, medians over rounds.
//
//   npm run bench:metrics [-- --rounds 3 --duration 8] [--quick] [--no-write]

import {
  commandLine,
  fmtInt,
  fmtMs,
  fmtPct,
  type LoadResult,
  machine,
  medianLoad,
  parseArgs,
  produceLoad,
  runMain,
  say,
  startRaftbus,
  table,
} from "./lib.ts";
import { writeResultsSection } from "./results-file.ts";

const args = parseArgs({ rounds: 3, duration: 8 });
const CONNECTIONS = Number(args.extra.get("connections") ?? 64);

async function round(metrics: boolean): Promise<{ load: LoadResult; scrapes: number; scrapeMs: number }> {
  const rb = await startRaftbus(metrics ? [] : ["--metrics", "off"]);
  try {
    await rb.createTopic("bench");
    const ids = [rb.leader, ...rb.followers];
    let scrapes = 0;
    let scrapeMs = 0;
    let scraping = metrics;
    const scraper = (async () => {
      while (scraping) {
        for (const id of ids) {
          const t0 = performance.now();
          const res = await fetch(rb.url(id, "/metrics"));
          await res.text();
          scrapeMs += performance.now() - t0;
          scrapes++;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    const load = await produceLoad({
      url: rb.url(rb.leader, "/v1/topics/bench/records"),
      connections: CONNECTIONS,
      duration: args.duration,
      perRequest: 1,
      label: `metrics ${metrics ? "on " : "off"}`,
    });
    scraping = false;
    await scraper;
    return { load, scrapes, scrapeMs: scrapes ? scrapeMs / scrapes : 0 };
  } finally {
    await rb.destroy();
  }
}

async function main() {
  say(`bench:metrics — ${args.rounds} rounds of ${args.duration} s, metrics on and off alternating`);
  const on: LoadResult[] = [];
  const off: LoadResult[] = [];
  const scrapeMs: number[] = [];
  for (let r = 1; r <= args.rounds; r++) {
    say(`round ${r}/${args.rounds}`);
    // Alternate which goes first, so drift on a shared machine hits both alike.
    const order = r % 2 === 1 ? [true, false] : [false, true];
    for (const m of order) {
      const res = await round(m);
      (m ? on : off).push(res.load);
      if (m) scrapeMs.push(res.scrapeMs);
    }
  }
  const a = medianLoad(on);
  const b = medianLoad(off);
  const errors = a.errors + b.errors;
  const ratio = a.recordsPerSec / b.recordsPerSec;
  const rows = [
    ["metrics on (scraped every 1 s)", fmtInt(a.recordsPerSec), fmtMs(a.p50), fmtMs(a.p99), String(a.errors)],
    ["metrics off (`--metrics off`)", fmtInt(b.recordsPerSec), fmtMs(b.p50), fmtMs(b.p99), String(b.errors)],
  ];
  const body = [
    `Command: ${commandLine("bench:metrics", args)}`,
    "",
    `Machine: ${machine()}`,
    "",
    `One 100-byte record per request, ${CONNECTIONS} connections, to the leader of a fresh 3-node cluster`,
    `per measurement; medians of ${args.rounds} alternating rounds of ${args.duration} s.`,
    "",
    table(["", "records/s", "p50 ms", "p99 ms", "errors"], rows),
    "",
    `Throughput with metrics is **${fmtPct(ratio)}** of without (${fmtPct(1 - ratio)} cost; within the`,
    `run-to-run noise of this shared machine when it is a few percent either way). A scrape of one`,
    `node's /metrics took ${fmtMs(scrapeMs.length ? scrapeMs.sort((x, y) => x - y)[Math.floor(scrapeMs.length / 2)]! : 0)} ms (median) under this load.`,
    "",
    `Errors: ${errors}.`,
  ].join("\n");
  say(`\n${body}`);
  if (errors > 0) throw new Error(`${errors} produce errors`);
  if (args.write) {
    writeResultsSection(
      "<!-- bench:metrics-cost -->",
      "<!-- /bench:metrics-cost -->",
      "## Metrics cost (bench:metrics)",
      body,
    );
  }
}

runMain(main);
