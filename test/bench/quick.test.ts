// The benchmarks' --quick mode, as CI runs it: every script of `npm run bench`
// (produce, e2e, consume, peer against NATS JetStream, limits) runs for seconds
// against real clusters and must finish with 0 errors. Results go to a temporary
// file, never bench/RESULTS.md. No timing is asserted: this checks the scripts.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NATS = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";
const dir = mkdtempSync(join(tmpdir(), "raftbus-bench-quick-"));
const results = join(dir, "RESULTS.md");

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", "bench/all.ts", "--quick", ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RAFTBUS_BENCH_RESULTS: results },
    });
    let out = "";
    p.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    p.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    p.once("exit", (code) => resolve({ code, out }));
  });
}

describe("npm run bench -- --quick", () => {
  it("runs every benchmark script to the end with 0 errors, writing only the given results file", async () => {
    const before = readFileSync(join(ROOT, "bench/RESULTS.md"), "utf8");
    // Without nats-server (`apt-get install -y nats-server`) the peer benchmark cannot run.
    const only = existsSync(NATS) ? [] : ["--only", "produce,e2e,consume,limits,metrics-cost"];
    const { code, out } = await run(only);
    // On failure, show every error line of every script (a long run's tail hides an early one).
    const errorLines = out
      .split("\n")
      .filter((l) => /error|failed|never|cannot|timed out/i.test(l) && !/^\|/.test(l))
      .join("\n");
    expect(code, `${errorLines}\n---\n${out.slice(-2000)}`).toBe(0);
    const text = readFileSync(results, "utf8");
    for (const name of [
      "produce",
      "e2e",
      "consume",
      "limits",
      "metrics-cost",
      ...(only.length ? [] : ["peer"]),
    ]) {
      expect(text).toContain(`<!-- bench:${name} -->`);
    }
    expect(text).toContain("<!-- bench:targets -->");
    for (const m of text.matchAll(/^Errors[^:]*: (\d+)\.$/gm)) expect(Number(m[1]), m[0]).toBe(0);
    expect(text.match(/^Errors[^:]*: \d+\.$/gm)?.length).toBeGreaterThanOrEqual(4);
    expect(readFileSync(join(ROOT, "bench/RESULTS.md"), "utf8")).toBe(before);
  }, 180_000);
});
