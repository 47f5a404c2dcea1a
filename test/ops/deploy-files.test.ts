// The deployment files are right even though docker and Kubernetes cannot run
// here: they are parsed, and their commands, ports, env vars, probes and paths
// are checked against what `raftbus node` really accepts and serves. Then a
// 3-node cluster is started from nothing but the compose file's environment
// (host names mapped to loopback) and must elect a leader and advertise the
// addresses it was given.

import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { buildDashboard } from "../../dashboards/generate.ts";
import {
  envVarName,
  flagName,
  NODE_FLAGS,
  parseHostPort,
  resolveNodeOptions,
} from "../../src/cli/options.ts";
import { startTestNode } from "../http/fixture.ts";
import { freePort } from "../node/proc-cluster.ts";
import { spawnNode, stopNodes } from "./spawn-env.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const KNOWN_ENV = new Set(NODE_FLAGS.map(envVarName));

/** Compose's `${VAR:-default}` / `${VAR}` interpolation, against `vars`. */
function interpolate(v: string, vars: Record<string, string | undefined> = {}): string {
  return v.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, name: string, def?: string) => vars[name] || def || "");
}

/** Runs resolveNodeOptions with exactly `env` as the RAFTBUS_* environment. */
function resolveWithEnv(env: Record<string, string>) {
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith("RAFTBUS_")) delete process.env[k];
  Object.assign(process.env, env);
  try {
    return resolveNodeOptions({});
  } finally {
    for (const k of Object.keys(process.env)) if (k.startsWith("RAFTBUS_")) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

function expectOnlyKnownEnv(env: Record<string, string>, where: string) {
  for (const k of Object.keys(env)) {
    if (k.startsWith("RAFTBUS_"))
      expect(KNOWN_ENV.has(k), `${where}: ${k} is not a raftbus node option`).toBe(true);
  }
}

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  hostname?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  command?: string[];
}
const compose = parseYaml(read("deploy/docker-compose.yml"), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const nodeServices = Object.entries(compose.services).filter(([name]) => name.startsWith("raftbus-"));
const composeEnv = (s: ComposeService) =>
  Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));

describe("deployment files match what raftbus node accepts", () => {
  it("every node flag has its env var and appears in `raftbus node --help`", () => {
    const help = execFileSync(process.execPath, [join(ROOT, "bin/raftbus.js"), "node", "--help"], {
      encoding: "utf8",
    });
    for (const f of NODE_FLAGS) {
      expect(help, flagName(f)).toContain(flagName(f));
      expect(help, envVarName(f)).toContain(envVarName(f));
    }
  });

  it("the committed dashboard is what dashboards/generate.ts builds", () => {
    expect(JSON.parse(read("dashboards/raftbus.json"))).toEqual(buildDashboard());
  });

  it("Dockerfile: non-root, multi-stage, data volume, ports and healthcheck agree with the env", () => {
    const df = read("deploy/Dockerfile");
    expect(df.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(df).toMatch(/^USER node$/m);
    const env = Object.fromEntries([...df.matchAll(/(RAFTBUS_\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    expectOnlyKnownEnv(env, "Dockerfile");
    const o = resolveWithEnv({ ...env, RAFTBUS_ID: "1" });
    expect(df).toContain(`VOLUME ["${o.dataDir}"]`);
    const exposed = /^EXPOSE (.+)$/m.exec(df)![1]!.split(/\s+/).map(Number);
    expect(exposed.sort()).toEqual(
      [parseHostPort(o.http, "http").port, parseHostPort(o.raft, "raft").port].sort(),
    );
    expect(df).toMatch(/HEALTHCHECK[\s\S]*\/healthz/);
    expect(df).toContain('ENTRYPOINT ["node", "bin/raftbus.js"]');
    expect(df).toContain('CMD ["node"]');
    // Everything copied into the image exists.
    for (const m of df.matchAll(/^COPY (?:--\S+ )*(\S+) /gm)) {
      if (m[0].includes("--from=")) continue;
      expect(existsSync(join(ROOT, m[1]!)), m[1]).toBe(true);
    }
  });

  it("docker-compose: three nodes whose env, ports, volumes and peers agree; Prometheus scrapes them", () => {
    expect(nodeServices.map(([n]) => n).sort()).toEqual(["raftbus-1", "raftbus-2", "raftbus-3"]);
    const ids = new Set<number>();
    for (const [name, s] of nodeServices) {
      const env = composeEnv(s);
      expectOnlyKnownEnv(env, name);
      const o = resolveWithEnv(env);
      ids.add(o.id);
      expect(s.hostname).toBe(name);
      expect(s.build?.dockerfile).toBe("deploy/Dockerfile");
      expect(existsSync(join(ROOT, "deploy", s.build!.context, s.build!.dockerfile))).toBe(true);
      // Published port targets the node's HTTP port; the volume is its data dir.
      const httpPort = parseHostPort(o.http, "http").port;
      expect(
        s.ports?.some((p) => p.endsWith(`:${httpPort}`)),
        `${name} ports`,
      ).toBe(true);
      expect(
        s.volumes?.some((v) => v.endsWith(`:${o.dataDir}`)),
        `${name} volume`,
      ).toBe(true);
      // It advertises its own service name; its peers are the other services at their raft ports.
      expect(o.advertiseHttp).toBe(`${name}:${httpPort}`);
      expect(o.advertiseRaft).toBe(`${name}:${parseHostPort(o.raft, "raft").port}`);
      for (const [peerId, addr] of o.peers) {
        const peer = nodeServices.find(([n]) => n === addr.split(":")[0]);
        expect(peer, `${name}: peer ${addr}`).toBeDefined();
        const po = resolveWithEnv(composeEnv(peer![1]));
        expect(po.id).toBe(peerId);
        expect(addr).toBe(po.advertiseRaft);
      }
      expect(o.peers.size).toBe(2);
      expect(o.clusterSecret).toBeTruthy();
    }
    expect([...ids].sort()).toEqual([1, 2, 3]);

    const prom = parseYaml(read("deploy/prometheus.yml")) as {
      rule_files: string[];
      scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    const job = prom.scrape_configs.find((j) => j.job_name === "raftbus")!;
    expect(job.metrics_path ?? "/metrics").toBe("/metrics");
    const wanted = nodeServices.map(([, s]) => resolveWithEnv(composeEnv(s)).advertiseHttp).sort();
    expect(job.static_configs.flatMap((c) => c.targets).sort()).toEqual(wanted);
    // The alert rules and the dashboard are mounted where Prometheus and Grafana look.
    const promSvc = compose.services.prometheus!;
    expect(promSvc.volumes).toContain("../dashboards/alerts.yml:/etc/prometheus/alerts.yml:ro");
    expect(prom.rule_files).toEqual(["alerts.yml"]);
    const grafana = compose.services.grafana!;
    const dashMount = grafana.volumes!.find((v) => v.includes("raftbus.json"))!;
    expect(existsSync(join(ROOT, "deploy", dashMount.split(":")[0]!))).toBe(true);
    const provider = parseYaml(read("deploy/grafana/provisioning/dashboards/raftbus.yml")) as {
      providers: { options: { path: string } }[];
    };
    expect(dashMount.split(":")[1]!.startsWith(provider.providers[0]!.options.path)).toBe(true);
    const ds = parseYaml(read("deploy/grafana/provisioning/datasources/prometheus.yml")) as {
      datasources: { type: string; url: string }[];
    };
    expect(ds.datasources[0]!.type).toBe("prometheus");
    expect(ds.datasources[0]!.url).toBe("http://prometheus:9090");
  });

  it("promtool accepts the scrape config with the alert rules", () => {
    let promtool: string | undefined;
    try {
      execFileSync("promtool", ["--version"], { stdio: "ignore" });
      promtool = "promtool";
    } catch {
      if (process.env.RAFTBUS_REQUIRE_PROMETHEUS === "1") throw new Error("promtool is missing");
      return; // prometheus.test.ts has warned already
    }
    const dir = mkdtempSync(join(tmpdir(), "raftbus-promtool-"));
    try {
      copyFileSync(join(ROOT, "deploy/prometheus.yml"), join(dir, "prometheus.yml"));
      copyFileSync(join(ROOT, "dashboards/alerts.yml"), join(dir, "alerts.yml"));
      const out = execFileSync(promtool, ["check", "config", join(dir, "prometheus.yml")], {
        encoding: "utf8",
      });
      expect(out).toContain("SUCCESS");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Kubernetes: StatefulSet, headless Service, PVCs, probes, PDB; the pod env derives valid node options", () => {
    const docs = parseAllDocuments(read("deploy/k8s/raftbus.yaml")).map((d) => d.toJS()) as {
      kind: string;
      metadata: { name: string };
      spec: Record<string, unknown>;
    }[];
    const kind = (k: string) => docs.filter((d) => d.kind === k);
    const sts = kind("StatefulSet")[0]! as unknown as {
      spec: {
        serviceName: string;
        replicas: number;
        podManagementPolicy: string;
        template: {
          spec: {
            securityContext: { runAsNonRoot: boolean };
            containers: {
              command: string[];
              env: { name: string; value?: string; valueFrom?: unknown }[];
              ports: { name: string; containerPort: number }[];
              readinessProbe: { httpGet: { path: string; port: string } };
              livenessProbe: { httpGet: { path: string; port: string } };
              volumeMounts: { name: string; mountPath: string }[];
            }[];
          };
        };
        volumeClaimTemplates: { metadata: { name: string } }[];
      };
      metadata: { name: string };
    };
    const headless = kind("Service").find((s) => s.metadata.name === sts.spec.serviceName)!;
    expect(headless.spec.clusterIP).toBe("None");
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    expect(sts.spec.podManagementPolicy).toBe("Parallel");
    expect(kind("PodDisruptionBudget")[0]!.spec.maxUnavailable).toBe(1);
    const pod = sts.spec.template.spec;
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    const c = pod.containers[0]!;
    expect(c.readinessProbe.httpGet.path).toBe("/readyz");
    expect(c.livenessProbe.httpGet.path).toBe("/healthz");
    const portByName = new Map(c.ports.map((p) => [p.name, p.containerPort]));
    expect(portByName.has(c.readinessProbe.httpGet.port)).toBe(true);
    expect(sts.spec.volumeClaimTemplates.map((v) => v.metadata.name)).toContain(c.volumeMounts[0]!.name);
    // The command is our entrypoint script (copied into the image at /app/deploy) then `raftbus node`.
    expect(c.command[0]).toBe("/app/deploy/statefulset-env.sh");
    expect(read("deploy/Dockerfile")).toContain(
      "COPY deploy/statefulset-env.sh /app/deploy/statefulset-env.sh",
    );
    expect(c.command.slice(1)).toEqual(["node", "bin/raftbus.js", "node"]);

    // Run the script as each pod would (with `env` in place of the node) and
    // resolve the options it produces.
    const plainEnv = Object.fromEntries(
      c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]),
    );
    expectOnlyKnownEnv(plainEnv, "StatefulSet");
    for (const e of c.env.filter((e) => e.valueFrom && e.name.startsWith("RAFTBUS_"))) {
      expect(KNOWN_ENV.has(e.name), e.name).toBe(true);
    }
    const svc = plainEnv.PEER_SERVICE;
    expect(svc).toBe(sts.spec.serviceName);
    const dns = (i: number) => `${sts.metadata.name}-${i}.${svc}.prod.svc.cluster.local`;
    for (let ordinal = 0; ordinal < sts.spec.replicas + 1; ordinal++) {
      const out = execFileSync(join(ROOT, c.command[0]!.replace("/app/", "")), ["env"], {
        env: {
          PATH: process.env.PATH,
          ...plainEnv,
          HOSTNAME: `${sts.metadata.name}-${ordinal}`,
          POD_NAMESPACE: "prod",
        },
        encoding: "utf8",
      });
      const env = Object.fromEntries(
        out
          .split("\n")
          .filter((l) => l.startsWith("RAFTBUS_"))
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      expectOnlyKnownEnv(env, `pod ${ordinal}`);
      const o = resolveWithEnv(env);
      expect(o.id).toBe(ordinal + 1);
      expect(o.dataDir).toBe(c.volumeMounts[0]!.mountPath);
      expect(parseHostPort(o.http, "http").port).toBe(portByName.get("http"));
      expect(parseHostPort(o.raft, "raft").port).toBe(portByName.get("raft"));
      expect(o.advertiseHttp).toBe(`${dns(ordinal)}:${portByName.get("http")}`);
      expect(o.advertiseRaft).toBe(`${dns(ordinal)}:${portByName.get("raft")}`);
      const expectedPeers = [...Array(sts.spec.replicas).keys()]
        .filter((i) => i !== ordinal)
        .map((i) => [i + 1, `${dns(i)}:${portByName.get("raft")}`]);
      expect([...o.peers]).toEqual(expectedPeers);
      // Pods past the initial voters wait to be added.
      expect(o.join).toBe(ordinal >= sts.spec.replicas);
    }
    // A pod name without an ordinal is refused loudly.
    expect(() =>
      execFileSync(join(ROOT, "deploy/statefulset-env.sh"), ["env"], {
        env: { PATH: process.env.PATH, ...plainEnv, HOSTNAME: "raftbus" },
        stdio: "pipe",
      }),
    ).toThrow();
  });

  it("systemd unit: runs `raftbus node` with the example env file, writes only the data dir", () => {
    const unit = read("deploy/raftbus.service");
    const get = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(unit)?.[1];
    expect(get("ExecStart")).toMatch(/bin\/raftbus\.js node$/);
    expect(get("KillSignal")).toBe("SIGTERM");
    expect(Number(get("TimeoutStopSec"))).toBeGreaterThan(10);
    const env = Object.fromEntries(
      read("deploy/raftbus.env")
        .split("\n")
        .filter((l) => /^RAFTBUS_\w+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    expectOnlyKnownEnv(env, "raftbus.env");
    const o = resolveWithEnv(env);
    expect(get("ReadWritePaths")).toBe(o.dataDir);
    expect(o.peers.size).toBe(2);
  });
});

describe("a cluster configured only by the compose file's environment", () => {
  const started: Awaited<ReturnType<typeof spawnNode>>[] = [];
  afterAll(async () => {
    await stopNodes(started);
  });

  it("elects a leader and advertises the given addresses in /v1/cluster", async () => {
    // Each compose host name gets its own loopback ports; everything else is the file's.
    const ports = new Map<string, { http: number; raft: number }>();
    for (const [name] of nodeServices) ports.set(name, { http: await freePort(), raft: await freePort() });
    const local = (addr: string, kind: "http" | "raft") => {
      const host = addr.split(":")[0]!;
      return `127.0.0.1:${ports.get(host)![kind]}`;
    };
    const root = mkdtempSync(join(tmpdir(), "raftbus-compose-"));
    for (const [name, s] of nodeServices) {
      const env = composeEnv(s);
      const o = resolveWithEnv(env);
      env.RAFTBUS_DATA_DIR = join(root, name);
      env.RAFTBUS_HTTP = local(o.advertiseHttp!, "http");
      env.RAFTBUS_RAFT = local(o.advertiseRaft!, "raft");
      env.RAFTBUS_ADVERTISE_HTTP = env.RAFTBUS_HTTP;
      env.RAFTBUS_ADVERTISE_RAFT = env.RAFTBUS_RAFT;
      env.RAFTBUS_PEERS = [...o.peers].map(([id, a]) => `${id}=${local(a, "raft")}`).join(",");
      started.push(await spawnNode(env, root));
    }
    const url = `http://${started[0]!.env.RAFTBUS_HTTP}`;
    const deadline = Date.now() + 30_000;
    let cluster: { leaderId: number | null; members: { id: number; http: string }[] } | undefined;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${url}/v1/cluster`);
        cluster = (await res.json()) as typeof cluster;
        if (cluster?.leaderId && cluster.members.every((m) => m.http)) break;
      } catch {
        // starting
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(cluster?.leaderId, started.map((n) => n.log()).join("\n")).toBeTruthy();
    const byId = new Map(cluster!.members.map((m) => [m.id, m.http]));
    for (const n of started) expect(byId.get(Number(n.env.RAFTBUS_ID))).toBe(n.env.RAFTBUS_ADVERTISE_HTTP);
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it("a node listening on 0.0.0.0 advertises --advertise-http, not the wildcard", async () => {
    const port = await freePort();
    const node = await startTestNode({ http: `0.0.0.0:${port}`, advertiseHttp: `localhost:${port}` });
    try {
      const deadline = Date.now() + 10_000;
      let http = "";
      while (Date.now() < deadline) {
        const res = await fetch(`http://127.0.0.1:${port}/v1/cluster`);
        const body = (await res.json()) as { members: { id: number; http: string }[] };
        http = body.members.find((m) => m.id === 1)?.http ?? "";
        if (http) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(http).toBe(`localhost:${port}`);
    } finally {
      await node.stop();
    }
  });
});
