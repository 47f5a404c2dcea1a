// Formatting of what happens in a run, for `npm run sim -- --seed N --trace`.

import { type Message, MessageType, type Ready } from "../raft/index.ts";
import type { Cluster } from "./cluster.ts";

export function describeMessage(m: Message): string {
  let s = `${MessageType[m.type]} ${m.from}->${m.to} t${m.term}`;
  if (m.type === MessageType.App) s += ` prev=${m.index}@${m.logTerm} n=${m.entries.length} c=${m.commit}`;
  else if (m.type === MessageType.AppResp)
    s += ` idx=${m.index}${m.reject ? ` reject hint=${m.rejectHint}` : ""}`;
  else if (m.type === MessageType.Heartbeat) s += ` c=${m.commit}`;
  else if (m.type === MessageType.Snap && m.snapshot) {
    s += ` snap=${m.snapshot.metadata.index} off=${m.snapshot.offset}/${m.snapshot.totalBytes}`;
  } else if (m.reject) s += " reject";
  return s;
}

export function describeReady(id: number, r: Ready): string {
  const parts: string[] = [`ready ${id}:`];
  if (r.softState) parts.push(`soft=${r.softState.role}/${r.softState.leader}`);
  if (r.hardState) parts.push(`hs=${r.hardState.term}/${r.hardState.vote}/${r.hardState.commit}`);
  if (r.snapshot) parts.push(`snap=${r.snapshot.metadata.index}@${r.snapshot.metadata.term}`);
  if (r.entries.length > 0)
    parts.push(`ents=${r.entries[0]!.index}..${r.entries[r.entries.length - 1]!.index}`);
  if (r.committedEntries.length > 0) {
    parts.push(
      `commit=${r.committedEntries[0]!.index}..${r.committedEntries[r.committedEntries.length - 1]!.index}`,
    );
  }
  if (r.confState) parts.push(`conf=${JSON.stringify(r.confState)}`);
  if (r.readStates.length > 0) parts.push(`reads=${r.readStates.length}`);
  parts.push(`msgs=${r.messages.length}+${r.immediateMessages.length}`);
  if (!r.mustSync) parts.push("nosync");
  return parts.join(" ");
}

/** One line of every node's state (role, term, commit, last index, applied; a leader's view of each follower). */
export function describeCluster(c: Cluster): string {
  const parts: string[] = [];
  for (const n of c.nodes.values()) {
    if (n.runtime === undefined) {
      parts.push(`${n.id}:${n.retired ? "retired" : "down"}`);
      continue;
    }
    const st = c.status(n);
    let p = `${n.id}:${st.role[0]}${st.term} c${st.commit} l${st.lastIndex} a${n.disk.sm.applied}`;
    if (st.progress.length > 0) {
      p += ` [${st.progress.map((pr) => `${pr.id}=${pr.state[0]}${pr.match}/${pr.next}`).join(" ")}]`;
    }
    parts.push(p);
  }
  return `state ${parts.join(" | ")}`;
}
