// Builds dashboards/raftbus.json, the Grafana dashboard, from the panel list
// below: one place for every PromQL expression, so the e2e test can run each
// of them against a real Prometheus. Run `npm run dashboards` after editing;
// test/ops/deploy-files.test.ts fails when the committed JSON is stale.
//
// Variables: $datasource (any Prometheus), $job, $instance (multi, All).

import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const SEL = 'job=~"$job", instance=~"$instance"';
const RATE = "$__rate_interval";

type Unit = "short" | "s" | "bytes" | "Bps" | "ops" | "percentunit" | "none";

interface Target {
  expr: string;
  legend?: string;
  /** Shown as a table row per series instead of a time series. */
  instant?: boolean;
}

interface Panel {
  title: string;
  description: string;
  type: "timeseries" | "stat" | "table";
  unit: Unit;
  targets: Target[];
  /** Grid width (of 24); height is 8 for graphs, 4 for stats. */
  w: number;
  /** Stat thresholds: [value, colour] from low to high after the base colour. */
  thresholds?: [number, string][];
  baseColor?: string;
}

interface Row {
  title: string;
  panels: Panel[];
}

const ts = (title: string, description: string, unit: Unit, targets: Target[], w = 12): Panel => ({
  title,
  description,
  type: "timeseries",
  unit,
  targets,
  w,
});
const stat = (title: string, description: string, expr: string, extra: Partial<Panel> = {}): Panel => ({
  title,
  description,
  type: "stat",
  unit: "none",
  targets: [{ expr, legend: title }],
  w: 4,
  ...extra,
});
const q = (p: number, metric: string, by: string) =>
  `histogram_quantile(${p}, sum by (${by}) (rate(${metric}_bucket{${SEL}}[${RATE}])))`;

export const ROWS: Row[] = [
  {
    title: "Cluster overview",
    panels: [
      stat(
        "Leader",
        "Node id of the leader, as the nodes see it (0: none).",
        `max(raftbus_raft_leader_id{${SEL}})`,
        {
          thresholds: [[1, "green"]],
          baseColor: "red",
        },
      ),
      stat("Leaders", "Nodes that think they lead: 1 is healthy.", `sum(raftbus_raft_is_leader{${SEL}})`, {
        thresholds: [
          [1, "green"],
          [2, "red"],
        ],
        baseColor: "red",
      }),
      stat("Term", "Highest Raft term: it grows with each election.", `max(raftbus_raft_term{${SEL}})`),
      stat("Members up", "Scrape targets up.", `sum(up{${SEL}})`),
      stat("Members down", "Scrape targets down.", `count(up{${SEL}} == 0) or vector(0)`, {
        thresholds: [[1, "red"]],
        baseColor: "green",
      }),
      stat("Version", "raftbus version of the nodes.", `count by (version) (raftbus_build_info{${SEL}})`, {
        targets: [{ expr: `count by (version) (raftbus_build_info{${SEL}})`, legend: "{{version}}" }],
      }),
    ],
  },
  {
    title: "Replication",
    panels: [
      ts("Commit index per node", "Highest committed log index on each node.", "short", [
        { expr: `raftbus_raft_commit_index{${SEL}}`, legend: "{{instance}}" },
      ]),
      ts(
        "Commit and apply lag",
        "Entries appended but not committed, and committed but not applied.",
        "short",
        [
          { expr: `raftbus_raft_commit_lag{${SEL}}`, legend: "commit lag {{instance}}" },
          { expr: `raftbus_raft_apply_lag{${SEL}}`, legend: "apply lag {{instance}}" },
        ],
      ),
      ts("Follower lag (on the leader)", "Entries each follower's log is behind the leader's.", "short", [
        { expr: `max by (peer) (raftbus_raft_follower_lag{${SEL}})`, legend: "node {{peer}}" },
      ]),
      ts("Elections and leader changes", "Elections started and new leaders seen, per interval.", "short", [
        {
          expr: `sum by (instance) (increase(raftbus_raft_elections_total{${SEL}}[${RATE}]))`,
          legend: "elections {{instance}}",
        },
        {
          expr: `sum by (instance) (increase(raftbus_raft_leader_changes_total{${SEL}}[${RATE}]))`,
          legend: "leader changes {{instance}}",
        },
      ]),
      ts("Term", "Raft term on each node.", "short", [
        { expr: `raftbus_raft_term{${SEL}}`, legend: "{{instance}}" },
      ]),
      ts("Log length", "Last log index on each node (drops after compaction do not show here).", "short", [
        { expr: `raftbus_raft_last_index{${SEL}}`, legend: "{{instance}}" },
      ]),
    ],
  },
  {
    title: "Throughput",
    panels: [
      ts("Records produced / s by topic", "Counted on the node that answered the client.", "ops", [
        {
          expr: `sum by (topic) (rate(raftbus_produce_records_total{${SEL}}[${RATE}]))`,
          legend: "{{topic}}",
        },
      ]),
      ts("Bytes produced / s by topic", "Value bytes of produced records.", "Bps", [
        { expr: `sum by (topic) (rate(raftbus_produce_bytes_total{${SEL}}[${RATE}]))`, legend: "{{topic}}" },
      ]),
      ts("Produce requests / s by node", "Produce requests answered 200, by the node that answered.", "ops", [
        {
          expr: `sum by (instance) (rate(raftbus_produce_latency_seconds_count{${SEL}}[${RATE}]))`,
          legend: "{{instance}}",
        },
      ]),
      ts("Subscribers by topic", "Open WebSocket subscriptions, summed over nodes.", "short", [
        { expr: `sum by (topic) (raftbus_subscribers{${SEL}})`, legend: "{{topic}}" },
      ]),
      {
        title: "Partition end offsets",
        description: "Next offset of each partition (highest over nodes).",
        type: "table",
        unit: "short",
        targets: [{ expr: `max by (topic, partition) (raftbus_topic_end_offset{${SEL}})`, instant: true }],
        w: 24,
      },
    ],
  },
  {
    title: "Latency",
    panels: [
      ts("Produce latency (request to commit)", "Quantiles over every node's produce requests.", "s", [
        { expr: q(0.5, "raftbus_produce_latency_seconds", "le"), legend: "p50" },
        { expr: q(0.99, "raftbus_produce_latency_seconds", "le"), legend: "p99" },
      ]),
      ts("Storage sync p99 by node", "Duration of each group-commit fsync.", "s", [
        { expr: q(0.99, "raftbus_storage_sync_seconds", "instance, le"), legend: "p99 {{instance}}" },
        { expr: q(0.5, "raftbus_storage_sync_seconds", "instance, le"), legend: "p50 {{instance}}" },
      ]),
      ts(
        "Storage syncs / s by node",
        "Group commits per second: each covers every write of one turn.",
        "ops",
        [{ expr: `rate(raftbus_storage_sync_seconds_count{${SEL}}[${RATE}])`, legend: "{{instance}}" }],
      ),
    ],
  },
  {
    title: "Consumer groups",
    panels: [
      ts("Consumer group lag (records)", "Records after each group's committed offset.", "short", [
        {
          expr: `max by (group, topic, partition) (raftbus_consumer_group_lag{${SEL}})`,
          legend: "{{group}} {{topic}}/{{partition}}",
        },
      ]),
      ts("Consumer group lag (age)", "Age of each group's oldest unconsumed record.", "s", [
        {
          expr: `max by (group, topic, partition) (raftbus_consumer_group_lag_seconds{${SEL}})`,
          legend: "{{group}} {{topic}}/{{partition}}",
        },
      ]),
    ],
  },
  {
    title: "Process",
    panels: [
      ts("CPU", "CPU time per second (1 = one core).", "percentunit", [
        { expr: `rate(process_cpu_seconds_total{${SEL}}[${RATE}])`, legend: "{{instance}}" },
      ]),
      ts("Memory", "Resident set and V8 heap used.", "bytes", [
        { expr: `process_resident_memory_bytes{${SEL}}`, legend: "rss {{instance}}" },
        { expr: `nodejs_heap_size_used_bytes{${SEL}}`, legend: "heap {{instance}}" },
      ]),
      ts("Event loop lag p99", "How late timers fire: the node's responsiveness.", "s", [
        { expr: `nodejs_eventloop_lag_p99_seconds{${SEL}}`, legend: "{{instance}}" },
      ]),
      ts("Open file descriptors", "Sockets and files held.", "short", [
        { expr: `process_open_fds{${SEL}}`, legend: "{{instance}}" },
      ]),
    ],
  },
];

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template.
const DS = { type: "prometheus", uid: "${datasource}" };

function grafanaPanel(p: Panel, id: number, x: number, y: number, h: number): Record<string, unknown> {
  const steps = [
    { color: p.baseColor ?? "green", value: null },
    ...(p.thresholds ?? []).map(([value, color]) => ({ color, value })),
  ];
  return {
    id,
    type: p.type,
    title: p.title,
    description: p.description,
    datasource: DS,
    gridPos: { h, w: p.w, x, y },
    fieldConfig: {
      defaults: { unit: p.unit, thresholds: { mode: "absolute", steps } },
      overrides: [],
    },
    options:
      p.type === "stat"
        ? {
            reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
            colorMode: "background",
            textMode: "auto",
          }
        : p.type === "table"
          ? { showHeader: true }
          : {
              legend: { displayMode: "list", placement: "bottom", showLegend: true },
              tooltip: { mode: "multi" },
            },
    ...(p.type === "table" ? { transformations: [{ id: "labelsToFields", options: {} }] } : {}),
    targets: p.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DS,
      expr: t.expr,
      legendFormat: t.legend ?? "",
      range: !t.instant,
      instant: t.instant === true,
      ...(t.instant ? { format: "table" } : {}),
    })),
  };
}

/** The Grafana dashboard model (JSON-serialisable). */
export function buildDashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({
      id: id++,
      type: "row",
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
      panels: [],
    });
    y += 1;
    let x = 0;
    let rowH = 0;
    for (const p of row.panels) {
      const h = p.type === "stat" ? 4 : 8;
      if (x + p.w > 24) {
        x = 0;
        y += rowH;
        rowH = 0;
      }
      panels.push(grafanaPanel(p, id++, x, y, h));
      x += p.w;
      rowH = Math.max(rowH, h);
    }
    y += rowH;
  }
  const queryVar = (name: string, label: string, query: string) => ({
    name,
    label,
    type: "query",
    datasource: DS,
    query: { query, refId: `${name}-var` },
    definition: query,
    refresh: 2,
    multi: true,
    includeAll: true,
    allValue: ".*",
    current: { selected: true, text: ["All"], value: ["$__all"] },
    sort: 1,
  });
  return {
    uid: "raftbus-overview",
    title: "raftbus",
    description: "raftbus cluster: leader, replication, throughput, latency, consumer lag, processes.",
    tags: ["raftbus"],
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: "10s",
    time: { from: "now-30m", to: "now" },
    timezone: "",
    annotations: { list: [] },
    templating: {
      list: [
        {
          name: "datasource",
          label: "Data source",
          type: "datasource",
          query: "prometheus",
          current: {},
          hide: 0,
        },
        queryVar("job", "Job", "label_values(raftbus_build_info, job)"),
        queryVar("instance", "Node", 'label_values(raftbus_build_info{job=~"$job"}, instance)'),
      ],
    },
    panels,
  };
}

/** Every PromQL expression of the dashboard, with the panel it belongs to. */
export function dashboardExpressions(): { panel: string; expr: string }[] {
  return ROWS.flatMap((r) =>
    r.panels.flatMap((p) => p.targets.map((t) => ({ panel: `${r.title} / ${p.title}`, expr: t.expr }))),
  );
}

export const DASHBOARD_PATH = fileURLToPath(new URL("./raftbus.json", import.meta.url));

/** The file's exact text: what `npm run dashboards` writes. */
export function dashboardText(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(DASHBOARD_PATH, dashboardText());
  process.stdout.write(`wrote ${DASHBOARD_PATH}\n`);
}
