// The dashboards and alert rules against a real Prometheus scraping a real
// 3-node cluster: every PromQL expression in dashboards/raftbus.json and
// dashboards/alerts.yml must be valid, every panel must return data after a
// while of producing and consuming, the rules must load and evaluate without
// error, and raftbus_raft_is_leader must sum to 1.
//
// Needs the `prometheus` binary (Debian's package; `.ci/run` installs it). When
// it is missing the suite is skipped with a warning, unless
// RAFTBUS_REQUIRE_PROMETHEUS=1 (set by .ci/run), where that is a failure.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { parse as parseYaml } from "yaml";
import { freePort, ProcCluster } from "../node/proc-cluster.ts";

const DASHBOARD = new URL("../../dashboards/raftbus.json", import.meta.url);
const ALERTS = new URL("../../dashboards/alerts.yml", import.meta.url);

function prometheusBinary(): string | undefined {
  for (const p of [process.env.PROMETHEUS_BIN, "/usr/bin/prometheus", "/usr/local/bin/prometheus"]) {
    if (!p) continue;
    try {
      execFileSync(p, ["--version"], { stdio: "ignore" });
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

const BIN = prometheusBinary();
const REQUIRED = process.env.RAFTBUS_REQUIRE_PROMETHEUS === "1";
if (!BIN && !REQUIRED) {
  process.stderr.write(
    "prometheus is not installed: skipping the dashboard/alert e2e test (apt-get install prometheus, or run .ci/run)\n",
  );
}

interface Target {
  expr: string;
  instant?: boolean;
}
interface GrafanaPanel {
  type: string;
  title: string;
  targets?: Target[];
}
interface TemplateVar {
  name: string;
  type: string;
  definition?: string;
}

/** Grafana's variables as a Prometheus query would see them with "All" selected. */
export function substituteGrafanaVars(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "30s")
    .replaceAll("$__interval", "15s")
    .replaceAll("$job", ".*")
    .replaceAll("$instance", ".*");
}

/** Every alerting/recording rule of a Prometheus rule file, with its expression. */
export function ruleExpressions(text: string): { alert: string; expr: string }[] {
  const doc = parseYaml(text) as { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) =>
    g.rules.map((r) => ({ alert: r.alert ?? r.record ?? "", expr: String(r.expr) })),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!BIN && !REQUIRED)("dashboards and alerts against a real Prometheus", () => {
  let cluster: ProcCluster;
  let prom: ChildProcess | undefined;
  let promUrl = "";
  let promDir = "";
  let promLog = "";

  async function promQuery(
    expr: string,
  ): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  }

  beforeAll(async () => {
    if (!BIN)
      throw new Error("RAFTBUS_REQUIRE_PROMETHEUS=1 but no prometheus binary (apt-get install prometheus)");
    cluster = await ProcCluster.create({ size: 3 });
    cluster.startAll();
    await cluster.waitForLeader();

    promDir = mkdtempSync(join(tmpdir(), "raftbus-prom-"));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const targets = [...cluster.nodes.values()].map((n) => `"127.0.0.1:${n.http}"`).join(", ");
    writeFileSync(join(promDir, "alerts.yml"), readFileSync(ALERTS));
    writeFileSync(
      join(promDir, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        "  - alerts.yml",
        "scrape_configs:",
        "  - job_name: raftbus",
        `    static_configs: [{ targets: [${targets}] }]`,
        "",
      ].join("\n"),
    );
    prom = spawn(
      BIN,
      [
        `--config.file=${join(promDir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(promDir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--web.enable-lifecycle",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prom.stderr?.on("data", (d: Buffer) => {
      promLog = (promLog + d.toString()).slice(-20_000);
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        if ((await fetch(`${promUrl}/-/ready`)).ok) break;
      } catch {
        // not yet listening
      }
      if (Date.now() > deadline) throw new Error(`prometheus did not start:\n${promLog}`);
      await sleep(200);
    }
  }, 90_000);

  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once("exit", r));
      prom.kill("SIGTERM");
      await Promise.race([exited, sleep(5_000)]);
      if (prom.exitCode === null) prom.kill("SIGKILL");
    }
    await cluster?.destroy();
    if (promDir) rmSync(promDir, { recursive: true, force: true });
  });

  it("panels and rules have data after producing, consuming and a group commit", async () => {
    // Load for ~12 s through every node (so each node's produce metrics move),
    // with a subscriber open and a consumer group that commits part way.
    const ids = [...cluster.nodes.keys()];
    const created = await cluster.json(ids[0]!, "/v1/topics", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "orders", partitions: 3 }),
    });
    expect(created.status).toBe(201);
    const ws = new WebSocket(
      cluster.url(ids[1]!, "/v1/topics/orders/subscribe?from=earliest").replace("http", "ws"),
    );
    const until = Date.now() + 12_000;
    let n = 0;
    while (Date.now() < until) {
      const id = ids[n % ids.length]!;
      const res = await cluster.json(id, "/v1/topics/orders/records", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          records: Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: { n, i } })),
        }),
      });
      expect(res.status).toBe(200);
      n++;
      await sleep(20);
    }
    const commit = await cluster.json(ids[2]!, "/v1/groups/billing/offsets", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic: "orders", partition: 0, offset: 1 }),
    });
    expect(commit.status).toBe(200);
    // Let a few more scrapes see the commit and the subscriber.
    await sleep(4_000);

    // Leader: exactly one, as Prometheus sees it.
    const leaders = await promQuery('sum(raftbus_raft_is_leader{job="raftbus"})');
    expect(leaders.status).toBe("success");
    expect((leaders.data!.result[0] as { value: [number, string] }).value[1]).toBe("1");

    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
      panels: GrafanaPanel[];
      templating: { list: TemplateVar[] };
    };
    const panelExprs = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
    );
    expect(panelExprs.length).toBeGreaterThan(20);
    const noData: string[] = [];
    for (const { panel, expr } of panelExprs) {
      const r = await promQuery(substituteGrafanaVars(expr));
      expect(r.status, `${panel}: ${expr}: ${r.error}`).toBe("success");
      if ((r.data?.result.length ?? 0) === 0) noData.push(`${panel}: ${expr}`);
    }
    expect(noData, "panels without data").toEqual([]);

    // Template variables: label_values(metric, label) has values.
    for (const v of dashboard.templating.list.filter((t) => t.type === "query")) {
      const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition ?? "");
      expect(m, `variable ${v.name}: ${v.definition}`).not.toBeNull();
      const match = substituteGrafanaVars(m![1]!);
      const res = await fetch(`${promUrl}/api/v1/label/${m![2]}/values?match[]=${encodeURIComponent(match)}`);
      const body = (await res.json()) as { status: string; data: string[] };
      expect(body.status).toBe("success");
      expect(body.data.length, `variable ${v.name}`).toBeGreaterThan(0);
    }

    // Alert rules: each expression is valid PromQL (data is not expected:
    // a healthy cluster fires nothing), and Prometheus loaded and evaluated
    // every rule without error.
    const rules = ruleExpressions(readFileSync(ALERTS, "utf8"));
    expect(rules.length).toBeGreaterThanOrEqual(5);
    for (const { alert, expr } of rules) {
      const r = await promQuery(expr);
      expect(r.status, `${alert}: ${expr}: ${r.error}`).toBe("success");
    }
    const loaded = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string; state: string }[] }[] };
    };
    const all = loaded.data.groups.flatMap((g) => g.rules);
    expect(all.map((r) => r.name).sort()).toEqual(rules.map((r) => r.alert).sort());
    for (const r of all) expect(r.health, `${r.name}: ${r.lastError}`).toBe("ok");
    // The cluster is healthy: the no-leader and node-down alerts are quiet.
    const firing = all.filter((r) => r.state === "firing").map((r) => r.name);
    expect(firing).not.toContain("RaftbusNoLeader");
    expect(firing).not.toContain("RaftbusNodeDown");
    ws.close();
  }, 120_000);
});
