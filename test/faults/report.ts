// Human-readable summary of a run (also what docs/faults.md quotes).

import type { RunReport } from "./run.ts";

export function summarize(r: RunReport): string {
  const i = r.check.info;
  const lines: string[] = [];
  lines.push(
    `raftbus fault run: seed ${r.seed}, ${r.nodes} nodes, ${r.mode}, ${(r.durationMs / 1000).toFixed(0)} s — ${r.ok ? "PASS" : "FAIL"}`,
  );
  lines.push(
    `schedule: ${r.steps.length} steps; faults injected: ${Object.entries(r.faultsInjected)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  lines.push(
    `requests: ${i.requests} (${i.attempts} attempts): ${i.acknowledgedRequests} acknowledged (${i.acknowledgedRecords} records), ` +
      `${i.failedAttempts} attempts refused, ${i.indeterminateAttempts} indeterminate`,
  );
  lines.push(
    `log: ${i.recordsInLog} records; indeterminate-only values present ${i.indeterminatePresent}, absent ${i.indeterminateAbsent}; ` +
      `allowed duplicates (keyless retries) ${i.allowedDuplicates}`,
  );
  lines.push(`answers: ${JSON.stringify(i.statuses)}`);
  if (Object.keys(i.clientErrors).length > 0) lines.push(`4xx answers: ${JSON.stringify(i.clientErrors)}`);
  lines.push(
    `subscribers: ${i.subscriberRecords} distinct offsets seen; converged after heal in ${
      r.convergedMs === undefined ? "(not within 90 s)" : `${(r.convergedMs / 1000).toFixed(1)} s`
    }`,
  );
  if (i.laggingNodes.length > 0)
    lines.push(`lagging nodes (prefix, not divergent): ${i.laggingNodes.join("; ")}`);
  if (i.subscribersBehind.length > 0)
    lines.push(`subscribers behind at the end: ${i.subscribersBehind.join("; ")}`);
  lines.push("anomalies (all must be 0):");
  for (const [k, c] of Object.entries(r.check.anomalies)) {
    lines.push(`  ${k}: ${c.count}`);
    for (const e of c.examples) lines.push(`    e.g. ${e}`);
  }
  lines.push(`  processFailures: ${r.processFailures.length}`);
  for (const e of r.processFailures.slice(0, 5)) lines.push(`    e.g. ${e}`);
  if (r.warnings.length > 0) lines.push(`warnings (liveness, not failures): ${r.warnings.join(" | ")}`);
  const elect = r.steps.map((s) => s.newLeaderMs).filter((v): v is number => v !== undefined);
  if (elect.length > 0) {
    elect.sort((a, b) => a - b);
    lines.push(
      `time to a new leader after a fault (${elect.length} steps): median ${elect[elect.length >> 1]} ms, max ${elect.at(-1)} ms`,
    );
  }
  const heal = r.steps.map((s) => s.firstOkAfterHealMs).filter((v): v is number => v !== undefined);
  if (heal.length > 0) {
    heal.sort((a, b) => a - b);
    lines.push(
      `first acknowledged write after heal: median ${heal[heal.length >> 1]} ms, max ${heal.at(-1)} ms`,
    );
  }
  return lines.join("\n");
}
