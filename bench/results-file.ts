// Writes one benchmark's section of bench/RESULTS.md between its markers,
// leaving the other sections as they are.

import { readFileSync, writeFileSync } from "node:fs";

export function writeResultsSection(begin: string, end: string, heading: string, body: string): void {
  const path = new URL("./RESULTS.md", import.meta.url);
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
