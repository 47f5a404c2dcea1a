// Human-readable log lines for `raftbus dev`: each node writes pino JSON lines
// (kept verbatim in data/node-<id>.log); the terminal gets one short line per
// event: time, node, level, message, then the remaining fields as key=value.

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};
const COLORS: Record<number, string> = {
  20: "\x1b[90m",
  30: "\x1b[36m",
  40: "\x1b[33m",
  50: "\x1b[31m",
  60: "\x1b[35m",
};
const RESET = "\x1b[0m";
/** pino's own fields, printed in the line's fixed part or not at all. */
const SKIP = new Set(["level", "time", "pid", "hostname", "msg", "node", "v"]);

export interface PrettyOptions {
  /** ANSI colours (when the terminal is a TTY). */
  color: boolean;
  /** Lines below this pino level number are dropped (30 = info). */
  minLevel: number;
}

function fieldText(v: unknown): string {
  if (typeof v === "string") return /[\s="]/.test(v) ? JSON.stringify(v) : v;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    // pino serialises errors as {type, message, stack}: the message is what a human wants.
    if (typeof o.message === "string") return JSON.stringify(o.message);
    return JSON.stringify(v);
  }
  return String(v);
}

/**
 * One pino JSON line as text, or null when it is below the level. A line that
 * is not JSON (a crash's stack trace) is shown as it is, marked with the node.
 */
export function prettyLine(line: string, nodeId: number, o: PrettyOptions): string | null {
  const trimmed = line.trim();
  if (trimmed === "") return null;
  let rec: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(trimmed);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
      throw new Error("not a record");
    rec = parsed as Record<string, unknown>;
  } catch {
    return `node ${nodeId} | ${trimmed}`;
  }
  const level = typeof rec.level === "number" ? rec.level : 30;
  if (level < o.minLevel) return null;
  const time = typeof rec.time === "number" ? new Date(rec.time).toISOString().slice(11, 23) : "";
  const name = (LEVELS[level] ?? String(level)).padEnd(5);
  const fields = Object.entries(rec)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${fieldText(v)}`)
    .join(" ");
  const lvl = o.color ? `${COLORS[level] ?? ""}${name}${RESET}` : name;
  const msg = typeof rec.msg === "string" ? rec.msg : "";
  return `${time} node ${nodeId} ${lvl} ${msg}${fields ? `  ${fields}` : ""}`;
}

/** pino level number of a level name ("info" → 30); unknown names are info. */
export function levelNumber(name: string): number {
  const found = Object.entries(LEVELS).find(([, n]) => n === name.toUpperCase());
  return found ? Number(found[0]) : 30;
}

/** Splits a byte stream into lines, calling `onLine` for each complete one (bounded: a line over 64 KiB is cut). */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer | string) => void {
  let rest = "";
  return (chunk) => {
    rest += typeof chunk === "string" ? chunk : chunk.toString("utf8");
    let nl = rest.indexOf("\n");
    while (nl >= 0) {
      onLine(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
      nl = rest.indexOf("\n");
    }
    if (rest.length > 64 * 1024) {
      onLine(rest);
      rest = "";
    }
  };
}
