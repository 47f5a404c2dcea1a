// Reproduces a liveness bug found by the 30-minute fault run (seed 7): a node
// started with --join whose --peers does not name the members that dial it
// refuses their connections ("unknown node id"), so it never catches up, while
// POST /v1/cluster/members answers 200 (and promoting it to voter too, which
// lowers the cluster's fault tolerance; two such voters lost quorum in the run).
// Run: npx tsx test/faults/repro-join-unknown-peer.ts
// Expected with the bug: node 4 stays at term 0 with no members, and its log
// shows "handshake failed ... unknown node id".

import { ProcCluster } from "../node/proc-cluster.ts";
import { sleep } from "./harness.ts";

const c = await ProcCluster.create({ size: 3 });
const j = { "content-type": "application/json" };
try {
  c.startAll();
  const l = await c.waitForLeader();
  const other = [1, 2, 3].find((x) => x !== l)!;
  await c.json(l, "/v1/topics", { method: "POST", headers: j, body: JSON.stringify({ name: "t" }) });
  for (let i = 0; i < 20; i++)
    await c.json(l, "/v1/topics/t/records", {
      method: "POST",
      headers: j,
      body: JSON.stringify({ records: [{ value: i }] }),
    });
  const n4 = await c.addNode(4);
  // The joiner's --peers names one member, not the leader.
  c.start(4, ["--join", "--peers", `${other}=127.0.0.1:${c.get(other).raft}`]);
  await sleep(1000);
  const add = await c.json(l, "/v1/cluster/members", {
    method: "POST",
    headers: j,
    body: JSON.stringify({
      id: 4,
      raft: `127.0.0.1:${n4.raft}`,
      http: `127.0.0.1:${n4.http}`,
      role: "learner",
    }),
  });
  console.log("leader", l, "joiner knows", other, "add:", add.status);
  await sleep(5000);
  console.log("node 4:", JSON.stringify((await c.tryJson(4, "/v1/cluster"))?.body).slice(0, 160));
  console.log(
    c
      .get(4)
      .log.join("")
      .split("\n")
      .filter((x) => /refus|unknown|reject/i.test(x))
      .slice(0, 3)
      .join("\n")
      .slice(0, 600),
  );
} finally {
  await c.destroy();
}
