// A membership change under load: a new node starts with --join, is added as
// a learner, promoted to voter, and then a random old voter (the leader too,
// sometimes) is removed. Each change is retried until /v1/cluster shows it
// done: a request that timed out may still have been applied, so the check
// comes first, never a blind re-post.

import type { FaultContext } from "./faults.ts";
import { type ClusterInfo, sleep } from "./harness.ts";

async function members(ctx: FaultContext): Promise<ClusterInfo["members"] | undefined> {
  const l = await ctx.c.leader();
  return l === undefined ? undefined : (await ctx.c.cluster(l))?.members;
}

async function until(
  ctx: FaultContext,
  what: string,
  done: (m: ClusterInfo["members"]) => boolean,
  act: () => Promise<string>,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const m = await members(ctx);
    if (m && done(m)) return;
    last = await act().catch((e: Error) => `${e.name}: ${e.message}`);
    await sleep(500);
  }
  const m = await members(ctx);
  throw new Error(
    `membership: ${what} not done within ${timeoutMs} ms (last answer: ${last}; members: ${JSON.stringify(m)})`,
  );
}

/** Sends the change through a random running member; returns its answer, for diagnostics. */
async function post(ctx: FaultContext, path: string, init: RequestInit): Promise<string> {
  const via = ctx.rng.pick([...ctx.c.members].filter((id) => ctx.c.running(id)));
  const res = await fetch(ctx.c.url(via, path), { ...init, signal: AbortSignal.timeout(10_000) });
  return `node ${via}: ${res.status} ${(await res.text()).slice(0, 200)}`;
}

/** Adds node `id` (learner, then voter) and removes one old voter; returns a description. */
export async function changeMembership(ctx: FaultContext, id: number): Promise<string> {
  const { c } = ctx;
  const raft = await c.addJoiner(id);
  // API.md: a --join node's --peers lists the nodes it may contact. It must name
  // the current members: a joiner refuses connections from ids it does not know
  // (see docs/faults.md, "a joiner that does not know the leader").
  c.start(id, ["--join", "--peers", c.peersVia(id, [...c.members])]);
  const json = { "content-type": "application/json" };
  const body = (role: string) => JSON.stringify({ id, raft, http: c.httpAddr(id), role });
  const t0 = Date.now();
  await until(
    ctx,
    `add ${id} as learner`,
    (m) => m.some((x) => x.id === id),
    () => post(ctx, "/v1/cluster/members", { method: "POST", headers: json, body: body("learner") }),
  );
  c.members.add(id);
  const added = Date.now() - t0;
  await until(
    ctx,
    `promote ${id}`,
    (m) => m.some((x) => x.id === id && x.role === "voter"),
    () => post(ctx, "/v1/cluster/members", { method: "POST", headers: json, body: body("voter") }),
  );
  const promoted = Date.now() - t0;
  const victim = ctx.rng.pick([...c.members].filter((x) => x !== id));
  await until(
    ctx,
    `remove ${victim}`,
    (m) => !m.some((x) => x.id === victim),
    () => post(ctx, `/v1/cluster/members/${victim}`, { method: "DELETE" }),
  );
  c.members.delete(victim);
  // API.md: members added later are dialled at the raft address of their member
  // record. If that record drifted to another address, peers would bypass the
  // address the operator registered (here: the proxy, so faults would miss it).
  const rec = (await members(ctx))?.find((x) => x.id === id);
  if (rec && rec.raft !== raft)
    ctx.processFailure(`member ${id} was registered with raft ${raft}, its record now says ${rec.raft}`);
  // A removed node stops serving; end it so it cannot interfere with later steps.
  await c.terminate(victim);
  return `added ${id} as learner (${added} ms), promoted (${promoted} ms), removed ${victim} (${Date.now() - t0} ms)`;
}
