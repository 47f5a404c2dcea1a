// The client runs in browsers: nothing under src/client may import a Node
// built-in (or anything outside src/client). Checked twice: by walking the
// import graph of the sources, and by bundling src/client/index.ts for the
// browser with esbuild (which fails on Node built-ins there).

import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

const DIR = fileURLToPath(new URL("../../src/client/", import.meta.url));
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Every module specifier a TypeScript file imports or re-exports (static and dynamic). */
function specifiers(source: string): string[] {
  const out: string[] = [];
  // Comments may show imports (TSDoc examples); they are not code.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const re =
    /(?:import|export)\s+(?:type\s+)?(?:[^"'`;]*?\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
  for (const m of code.matchAll(re)) out.push((m[1] ?? m[2])!);
  return out;
}

describe("raftbus/client in a browser", () => {
  it("imports nothing but its own files: no Node built-ins, no packages", () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith(".ts"));
    expect(files).toContain("index.ts");
    const bad: string[] = [];
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const s of specifiers(readFileSync(file, "utf8"))) {
        if (BUILTINS.has(s) || s.startsWith("node:")) bad.push(`${file}: ${s} (Node built-in)`);
        else if (!s.startsWith(".")) bad.push(`${file}: ${s} (package)`);
        else {
          const target = resolve(dirname(file), s);
          if (!target.startsWith(DIR)) bad.push(`${file}: ${s} (outside src/client)`);
          else visit(target);
        }
      }
    };
    for (const f of files) visit(join(DIR, f));
    expect(bad).toEqual([]);
    expect(seen.size).toBe(files.length);
  });

  it("bundles for the browser platform with esbuild, from src/client alone", async () => {
    const res = await build({
      entryPoints: [join(DIR, "index.ts")],
      bundle: true,
      platform: "browser",
      format: "esm",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    expect(res.errors).toEqual([]);
    const inputs = Object.keys(res.metafile.inputs);
    expect(inputs.every((i) => i.startsWith("src/client/"))).toBe(true);
    const code = res.outputFiles[0]!.text;
    expect(code).not.toMatch(/\brequire\(|from\s*["']node:/);
    expect(code).toMatch(/RaftbusClient = class/);
  });
});
