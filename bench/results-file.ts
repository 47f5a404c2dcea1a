// Writes one benchmark's section of bench/RESULTS.md between its markers,
// leaving the other sections as they are. RAFTBUS_BENCH_RESULTS names another
// file instead (the quick CI run writes to a temporary file, never RESULTS.md).

import { readFileSync, writeFileSync } from "node:fs";

export function resultsPath(): string | URL {
  return process.env.RAFTBUS_BENCH_RESULTS || new URL("./RESULTS.md", import.meta.url);
}

export function writeResultsSection(begin: string, end: string, heading: string, body: string): void {
  const path = resultsPath();
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    text = "# Benchmark results\n";
  }
  const block = `${begin}\n${body}\n${end}`;
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  if (b >= 0 && e > b) text = text.slice(0, b) + block + text.slice(e + end.length);
  else text = `${text.trimEnd()}\n\n${heading}\n\n${block}\n`;
  writeFileSync(path, text);
}
