// Real servers for the sink suites and bench/sinks.ts, each installed from Debian's packages
// on first use (build/system.ts: quiet, logged to a file) and started by the caller as its
// own process, with its own config in a temp dir, on loopback ports; never the system
// service. Grafana Loki is not packaged by Debian (Debian's `loki` is unrelated genetics
// software), so LokiServer is a small HTTP server written from Loki's API documentation: it
// stores pushes (rejecting out-of-order entries per stream, as Loki does by default before
// 2.4 and outside its window after) and answers /loki/api/v1/query_range with a stream
// selector, which is what the Loki sink is tested against.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { freePort, ServerProcess, waitFor } from "./sink-harness.ts";

export const RSYSLOGD = "/usr/sbin/rsyslogd";
export const CLICKHOUSE = "/usr/sbin/clickhouse-server";
export const PROMETHEUS = "/usr/bin/prometheus";

export function ensureServers(which: Array<"rsyslog" | "clickhouse-server" | "prometheus">): void {
  const probes: Record<string, string> = { rsyslog: RSYSLOGD, "clickhouse-server": CLICKHOUSE, prometheus: PROMETHEUS };
  ensureSystemPackages(which.map((p) => [probes[p]!, p]));
}

/** rsyslogd -n with TCP (imtcp, octet-counted), UDP and a unix stream socket (imptcp), each into its own file. */
export class Rsyslog extends ServerProcess {
  readonly tcpFile: string;
  readonly udpFile: string;
  readonly unixFile: string;
  readonly socket: string;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, "rsyslog.conf");
    super("rsyslogd", [RSYSLOGD, "-n", "-f", conf, "-i", join(dir, "rsyslogd.pid")]);
    this.tcpFile = join(dir, "tcp.log");
    this.udpFile = join(dir, "udp.log");
    this.unixFile = join(dir, "unix.log");
    this.socket = join(dir, "syslog.sock");
    // %msg% is the RFC 5424 MSG (the event's JSON line); the header fields are kept in front to
    // check them. maxMessageSize: events are a few KiB, rsyslog's default cuts at 8 KiB.
    writeFileSync(
      conf,
      `global(workDirectory="${dir}" maxMessageSize="256k")
module(load="imtcp")
module(load="imudp")
module(load="imptcp")
template(name="ward" type="string" string="%pri% %msgid% %app-name% %hostname% %procid% %timereported:::date-rfc3339% %msg%\\n")
input(type="imtcp" port="${port}" address="127.0.0.1" ruleset="tcp")
input(type="imudp" port="${port}" address="127.0.0.1" ruleset="udp")
input(type="imptcp" path="${this.socket}" unlink="on" ruleset="unix")
ruleset(name="tcp") { action(type="omfile" file="${this.tcpFile}" template="ward") }
ruleset(name="udp") { action(type="omfile" file="${this.udpFile}" template="ward") }
ruleset(name="unix") { action(type="omfile" file="${this.unixFile}" template="ward") }
`,
    );
  }

  async ready(): Promise<void> {
    await waitFor(
      "rsyslogd listening",
      async () => {
        try {
          const s = await Bun.connect({ hostname: "127.0.0.1", port: this.port, socket: { data() {} } });
          s.end();
          return true;
        } catch {
          return undefined;
        }
      },
      20_000,
      () => this.dead(),
    );
  }
}

/** clickhouse-server with a config dir of its own: HTTP and native ports on 127.0.0.1, data in dir. */
export class ClickHouse extends ServerProcess {
  readonly url: string;
  /** Basic auth for query(), when the server was made with a user. */
  readonly #auth: Record<string, string> = {};
  /**
   * `user`: an account with a password (the sink's basic auth); the default user then gets a
   * random password too, so a request without the user's credentials is refused.
   */
  constructor(
    readonly dir: string,
    readonly httpPort: number,
    tcpPort: number,
    user?: { name: string; password: string },
  ) {
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, "config.xml");
    super("clickhouse-server", [CLICKHOUSE, `--config-file=${conf}`], { cwd: dir });
    this.url = `http://127.0.0.1:${httpPort}`;
    if (user) this.#auth = { authorization: `Basic ${Buffer.from(`${user.name}:${user.password}`).toString("base64")}` };
    const defaultPassword = user ? crypto.randomUUID() : "";
    writeFileSync(
      conf,
      `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/server.log</log><errorlog>${dir}/server.err.log</errorlog><console>0</console></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
  <timezone>UTC</timezone>
</yandex>
`,
    );
    writeFileSync(
      join(dir, "users.xml"),
      `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password>${defaultPassword}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>${
    user ? `<${user.name}><password>${user.password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></${user.name}>` : ""
  }</users>
  <quotas><default></default></quotas>
</yandex>
`,
    );
  }

  async ready(): Promise<void> {
    await waitFor("clickhouse /ping", async () => ((await fetch(`${this.url}/ping`).catch(() => undefined))?.ok ? true : undefined), 30_000, () => this.dead());
  }

  async query(sql: string): Promise<string> {
    const r = await fetch(`${this.url}/`, { method: "POST", body: sql, headers: this.#auth });
    const t = await r.text();
    if (!r.ok) throw new Error(`clickhouse ${r.status}: ${t}`);
    return t;
  }
}

/** prometheus scraping `target` (HOST:PORT) every second, storage in dir. */
export class Prometheus extends ServerProcess {
  readonly url: string;
  constructor(
    readonly dir: string,
    readonly port: number,
    target: string,
  ) {
    mkdirSync(join(dir, "data"), { recursive: true });
    const conf = join(dir, "prometheus.yml");
    writeFileSync(
      conf,
      `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ward
    scrape_interval: 1s
    scrape_timeout: 900ms
    metrics_path: /metrics
    static_configs:
      - targets: ["${target}"]
`,
    );
    super("prometheus", [PROMETHEUS, `--config.file=${conf}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"]);
    this.url = `http://127.0.0.1:${port}`;
  }

  async ready(): Promise<void> {
    await waitFor("prometheus /-/ready", async () => ((await fetch(`${this.url}/-/ready`).catch(() => undefined))?.ok ? true : undefined), 30_000, () => this.dead());
  }

  /** An instant query; the samples' labels and values. */
  async query(q: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
    const r = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(q)}`);
    const j = (await r.json()) as { status: string; data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }; error?: string };
    if (j.status !== "success") throw new Error(`prometheus query ${q}: ${j.error ?? r.status}`);
    return j.data!.result.map((x) => ({ metric: x.metric, value: Number(x.value[1]) }));
  }
}

export interface LokiEntry {
  ns: bigint;
  line: string;
}

/**
 * The subset of Loki's HTTP API the sink uses, from grafana.com/docs/loki/latest/reference/loki-http-api:
 * POST /loki/api/v1/push (JSON: streams[].stream labels, values [ns-string, line]), 204 on
 * success, 400 for a malformed body or an entry older than its stream's newest; GET
 * /loki/api/v1/query_range?query={k="v",...}&limit=N&direction=forward, answering
 * {"status":"success","data":{"resultType":"streams","result":[{stream, values}]}}; GET /ready.
 * Exact duplicates of stored entries are ignored (Loki deduplicates them); an entry older
 * than its stream's newest is refused (Loki without unordered writes, and outside the window with).
 * It can be stopped (connections refused) and started again on the same port, keeping what it stored.
 */
export class LokiServer {
  readonly streams = new Map<string, { labels: Record<string, string>; entries: LokiEntry[]; byNs: Map<bigint, string> }>();
  pushes = 0;
  #server: ReturnType<typeof Bun.serve> | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get entries(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.entries.length;
    return n;
  }

  start(): void {
    this.#server = Bun.serve({ hostname: "127.0.0.1", port: this.port, fetch: (req) => this.#handle(req) });
  }

  async stop(): Promise<void> {
    await this.#server?.stop(true);
    this.#server = undefined;
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname === "/ready") return new Response("ready\n");
    if (url.pathname === "/loki/api/v1/push" && req.method === "POST") return this.#push(req);
    if (url.pathname === "/loki/api/v1/query_range" && req.method === "GET") return this.#query(url);
    return new Response("404 page not found\n", { status: 404 });
  }

  async #push(req: Request): Promise<Response> {
    if (!(req.headers.get("content-type") ?? "").startsWith("application/json")) return new Response("unsupported content type\n", { status: 415 });
    let body: { streams?: Array<{ stream?: Record<string, unknown>; values?: unknown[] }> };
    try {
      body = (await req.json()) as typeof body;
    } catch (e) {
      return new Response(`error parsing push body: ${(e as Error).message}\n`, { status: 400 });
    }
    if (!Array.isArray(body.streams)) return new Response("streams missing\n", { status: 400 });
    // Validate everything first: Loki accepts or refuses a push as a whole here.
    const staged: Array<{ key: string; labels: Record<string, string>; entries: LokiEntry[] }> = [];
    for (const s of body.streams) {
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.stream ?? {})) {
        if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k) || typeof v !== "string" || v === "") return new Response(`invalid label ${k}\n`, { status: 400 });
        labels[k] = v;
      }
      if (Object.keys(labels).length === 0) return new Response("error at least one label pair is required per stream\n", { status: 400 });
      const key = JSON.stringify(Object.entries(labels).sort());
      const entries: LokiEntry[] = [];
      const known = this.streams.get(key);
      let last = known?.entries.at(-1)?.ns ?? -1n;
      for (const v of s.values ?? []) {
        if (!Array.isArray(v) || typeof v[0] !== "string" || !/^\d+$/.test(v[0]) || typeof v[1] !== "string") return new Response("invalid entry\n", { status: 400 });
        const ns = BigInt(v[0]);
        if (ns <= last) {
          // An exact duplicate (same timestamp, same line) of a stored entry is ignored, as
          // Loki does: a push retried after its answer was lost is not an error.
          if (known?.byNs.get(ns) === v[1] || entries.some((e) => e.ns === ns && e.line === v[1])) continue;
          return new Response(`entry out of order for stream ${key}\n`, { status: 400 });
        }
        last = ns;
        entries.push({ ns, line: v[1] });
      }
      staged.push({ key, labels, entries });
    }
    for (const s of staged) {
      let st = this.streams.get(s.key);
      if (!st) this.streams.set(s.key, (st = { labels: s.labels, entries: [], byNs: new Map() }));
      st.entries.push(...s.entries);
      for (const e of s.entries) st.byNs.set(e.ns, e.line);
    }
    this.pushes++;
    return new Response(null, { status: 204 });
  }

  #query(url: URL): Response {
    const q = url.searchParams.get("query") ?? "";
    const m = /^\{(.*)\}$/.exec(q.trim());
    if (!m) return Response.json({ status: "error", error: `parse error: ${q}` }, { status: 400 });
    const matchers = [...m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!] as const);
    const limit = Number(url.searchParams.get("limit") ?? "100");
    const result: Array<{ stream: Record<string, string>; values: [string, string][] }> = [];
    let n = 0;
    for (const s of this.streams.values()) {
      if (!matchers.every(([k, v]) => s.labels[k] === v)) continue;
      const values: [string, string][] = [];
      for (const e of s.entries) {
        if (n >= limit) break;
        values.push([e.ns.toString(), e.line]);
        n++;
      }
      if (values.length > 0) result.push({ stream: s.labels, values });
    }
    return Response.json({ status: "success", data: { resultType: "streams", result } });
  }
}

export { freePort };
