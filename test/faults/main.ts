// `npm run test:faults -- [--minutes N] [--seed N] [--nodes N] [--hold-ms N] [--json FILE]
//   [--node-args "--compaction-margin-bytes 4194304"]` (flags for every node)
// Without --minutes: the short schedule (each fault once, then a membership
// change). With it: the short schedule, then randomised fault mixes until the
// time is up. Exits 1 when the checker finds an anomaly.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { summarize } from "./report.ts";
import { formatStep, runFaults } from "./run.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "0" },
    seed: { type: "string" },
    nodes: { type: "string", default: "5" },
    "hold-ms": { type: "string", default: "5000" },
    json: { type: "string" },
    "node-args": { type: "string", default: "" },
  },
});

const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const started = Date.now();
const stamp = () => `[${((Date.now() - started) / 1000).toFixed(0).padStart(5)}s]`;
console.log(`${stamp()} seed ${seed} (replay the schedule with --seed ${seed})`);
const report = await runFaults({
  seed,
  nodes: Number(values.nodes),
  minutes: Number(values.minutes),
  holdMs: Number(values["hold-ms"]),
  nodeArgs: (values["node-args"] ?? "").split(/\s+/).filter((a) => a.length > 0),
  log: (l) => console.log(`${stamp()} ${l}`),
});
console.log(summarize(report));
if (values.json) {
  writeFileSync(values.json, JSON.stringify({ ...report, steps: report.steps.map(formatStep) }, null, 2));
}
process.exit(report.ok ? 0 : 1);
