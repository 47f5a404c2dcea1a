// `raftbus dev`'s terminal view of node logs: pino JSON lines become one short
// line each; levels below the chosen one are dropped; non-JSON passes through.

import { describe, expect, it } from "vitest";
import { levelNumber, lineSplitter, prettyLine } from "../../src/cli/pretty-log.ts";

const plain = { color: false, minLevel: 30 };

describe("pretty node logs in raftbus dev", () => {
  it("formats time, node, level, message and the other fields", () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.UTC(2026, 10, 27, 7, 1, 2, 345),
      pid: 1,
      hostname: "h",
      node: 2,
      role: "leader",
      term: 3,
      msg: "became leader",
    });
    expect(prettyLine(line, 2, plain)).toBe("07:01:02.345 node 2 INFO  became leader  role=leader term=3");
  });

  it("drops lines below the level and keeps warnings", () => {
    expect(prettyLine(JSON.stringify({ level: 20, msg: "x" }), 1, plain)).toBeNull();
    expect(
      prettyLine(JSON.stringify({ level: 40, msg: "slow storage sync", seconds: 0.2 }), 1, plain),
    ).toMatch(/WARN {2}slow storage sync {2}seconds=0.2$/);
  });

  it("shows an error's message and quotes strings with spaces", () => {
    const line = JSON.stringify({
      level: 50,
      msg: "failed",
      err: { type: "Error", message: "disk full", stack: "…" },
      why: "a b",
    });
    expect(prettyLine(line, 3, plain)).toMatch(/ERROR failed {2}err="disk full" why="a b"$/);
  });

  it("passes a line that is not JSON through, marked with the node", () => {
    expect(prettyLine("    at foo (bar.ts:1)", 1, plain)).toBe("node 1 | at foo (bar.ts:1)");
    expect(prettyLine("  ", 1, plain)).toBeNull();
  });

  it("colours the level only when asked", () => {
    expect(prettyLine(JSON.stringify({ level: 40, msg: "m" }), 1, { color: true, minLevel: 30 })).toContain(
      "\x1b[33m",
    );
  });

  it("maps level names and splits chunks into whole lines", () => {
    expect(levelNumber("debug")).toBe(20);
    expect(levelNumber("warn")).toBe(40);
    expect(levelNumber("nonsense")).toBe(30);
    const lines: string[] = [];
    const feed = lineSplitter((l) => lines.push(l));
    feed("a\nb");
    feed(Buffer.from("c\nd\n"));
    expect(lines).toEqual(["a", "bc", "d"]);
  });
});
