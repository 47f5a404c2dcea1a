// Shapes of network partition, as sets of blocked directed links. Besides the
// clean split, the partial and asymmetric ones that trip up elections: a node
// cut off from the leader only (openraft#2080), one-way links, and a bridge node
// that alone sees both sides.

import type { NodeId } from "../raft/index.ts";
import type { Prng } from "./prng.ts";

export type PartitionKind = "split" | "isolate" | "link" | "oneway" | "bridge";

export interface Partition {
  kind: PartitionKind;
  /** Blocked directed links, as linkKey(from, to). */
  blocked: Set<number>;
  description: string;
}

export function linkKey(from: NodeId, to: NodeId): number {
  return from * 1024 + to;
}

function blockBoth(blocked: Set<number>, a: NodeId, b: NodeId): void {
  blocked.add(linkKey(a, b));
  blocked.add(linkKey(b, a));
}

/**
 * A random partition of `ids`. `leader`, if known, is favoured as one end of a
 * cut link, since cutting a follower from the leader is the interesting case.
 */
export function randomPartition(prng: Prng, ids: readonly NodeId[], leader: NodeId | undefined): Partition {
  const blocked = new Set<number>();
  const nodes = prng.shuffle([...ids]);
  const kind = prng.pick<PartitionKind>(["split", "isolate", "link", "oneway", "bridge"]);
  if (nodes.length < 2) return { kind, blocked, description: "none (one node)" };
  const end = leader !== undefined && ids.includes(leader) && prng.chance(0.6) ? leader : nodes[0]!;
  const others = nodes.filter((n) => n !== end);
  switch (kind) {
    case "split": {
      const cut = prng.int(1, nodes.length - 1);
      const a = nodes.slice(0, cut);
      const b = nodes.slice(cut);
      for (const x of a) for (const y of b) blockBoth(blocked, x, y);
      return { kind, blocked, description: `split [${a}] | [${b}]` };
    }
    case "isolate": {
      for (const y of others) blockBoth(blocked, end, y);
      return { kind, blocked, description: `isolate ${end}` };
    }
    case "link": {
      const y = prng.pick(others);
      blockBoth(blocked, end, y);
      return { kind, blocked, description: `cut link ${end}-${y}` };
    }
    case "oneway": {
      const parts: string[] = [];
      const n = prng.int(1, Math.max(1, others.length));
      for (const y of prng.shuffle([...others]).slice(0, n)) {
        if (prng.chance(0.5)) {
          blocked.add(linkKey(end, y));
          parts.push(`${end}->${y}`);
        } else {
          blocked.add(linkKey(y, end));
          parts.push(`${y}->${end}`);
        }
      }
      return { kind, blocked, description: `one-way cuts ${parts.join(" ")}` };
    }
    case "bridge": {
      // `end` talks to everyone; the rest are split into two sides that only reach it.
      if (others.length < 2) return { kind, blocked, description: "none (too few nodes to bridge)" };
      const cut = prng.int(1, others.length - 1);
      const a = others.slice(0, cut);
      const b = others.slice(cut);
      for (const x of a) for (const y of b) blockBoth(blocked, x, y);
      return { kind, blocked, description: `bridge ${end} between [${a}] and [${b}]` };
    }
  }
}
