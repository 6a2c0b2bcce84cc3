// QueuedSink (src/export/queued.ts) over fake transports, and the sink specifications
// (src/export/sink-spec.ts): the queue is bounded and drops the oldest, write() never waits
// for the transport, failures are retried with backoff within the budget, then dropped and
// counted; sent + dropped + queued = written at every step. Plus the pure formatters of the
// syslog, Loki and ClickHouse sinks and the ward_sink_* metrics.
import { describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAgentConfig, type AgentConfig } from "../../src/agent/config.ts";
import { stdoutSink } from "../../src/agent/sinks.ts";
import { UsageError } from "../../src/cli/args.ts";
import { renderMetrics } from "../../src/api/metrics.ts";
import { StdoutSink } from "../../src/export/stdout.ts";
import type { AgentStatus } from "../../src/api/deps.ts";
import { QueuedSink } from "../../src/export/queued.ts";
import { lineText, SendError, type Batch, type SinkStats, type Transport } from "../../src/export/sink.ts";
import { formatSinkSpec, parseSinkConfig, parseSinkFlags, SinkConfigError } from "../../src/export/sink-spec.ts";
import { clickhouseRow, clickhouseSchema } from "../../src/export/sinks/clickhouse.ts";
import { eventTimeNs, lokiLabels, LokiSink, LokiTransport } from "../../src/export/sinks/loki.ts";
import { freePort, LokiServer } from "../lib/servers.ts";
import { SyslogFormatter, SyslogSink, syslogTimestamp } from "../../src/export/sinks/syslog.ts";

/** A transport that fails while `down` is true (retryably, or for good when `reject`), and records what it got. */
class Fake implements Transport {
  readonly kind = "fake";
  down = false;
  reject = false;
  got: string[] = [];
  batches: number[] = [];
  attempts = 0;
  hold: Promise<void> | undefined;
  async send(batch: Batch): Promise<void> {
    this.attempts++;
    if (this.hold) await this.hold;
    if (this.reject) throw new SendError("refused", false);
    if (this.down) throw new SendError("down", true);
    this.batches.push(batch.length);
    for (const l of batch) this.got.push(lineText(l));
  }
}

function invariant(s: SinkStats): void {
  const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
  expect(s.sent + dropped + s.queued).toBe(s.written);
}

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(5);
  }
}

describe("QueuedSink", () => {
  test("batches in order, at most maxBatch per send", async () => {
    const t = new Fake();
    const s = new QueuedSink("q", t, { maxBatch: 10, lingerMs: 5 });
    for (let i = 0; i < 95; i++) s.write(`l${i}`);
    await s.flush();
    expect(t.got).toEqual(Array.from({ length: 95 }, (_, i) => `l${i}`));
    expect(Math.max(...t.batches)).toBeLessThanOrEqual(10);
    expect(s.stats().sent).toBe(95);
    invariant(s.stats());
    await s.close();
  });

  test("write() returns at once while the transport hangs; the queue is bounded and drops the oldest", async () => {
    const t = new Fake();
    let release!: () => void;
    t.hold = new Promise((r) => (release = r));
    const s = new QueuedSink("q", t, { maxQueue: 100, maxBatch: 10, lingerMs: 1 });
    s.write("first");
    await until("first batch in flight", () => t.attempts === 1);
    const start = performance.now();
    for (let i = 0; i < 10_000; i++) s.write(`x${i}`);
    expect(performance.now() - start).toBeLessThan(200); // no I/O in write
    const st = s.stats();
    expect(st.queued).toBe(101); // 100 queued + the one in flight
    expect(st.dropped.queue_full).toBe(10_000 - 100);
    invariant(st);
    release();
    await s.flush();
    // The newest 100 survive, in order.
    expect(t.got).toEqual(["first", ...Array.from({ length: 100 }, (_, i) => `x${9900 + i}`)]);
    invariant(s.stats());
    await s.close();
  });

  test("byte bound: maxQueueBytes drops the oldest too", () => {
    const s = new QueuedSink("q", new Fake(), { maxQueueBytes: 1000, lingerMs: 10_000 });
    for (let i = 0; i < 50; i++) s.write("y".repeat(100));
    expect(s.stats().queued).toBe(10);
    expect(s.stats().dropped.queue_full).toBe(40);
    void s.close();
  });

  test("a failing batch is retried with backoff and delivered when the server is back; nothing lost", async () => {
    const t = new Fake();
    t.down = true;
    const s = new QueuedSink("q", t, { lingerMs: 1, backoffMs: 10, maxBackoffMs: 40, retryBudgetMs: 5000 });
    for (let i = 0; i < 5; i++) s.write(`a${i}`);
    await until("three attempts", () => t.attempts >= 3);
    expect(s.stats().up).toBe(false);
    expect(s.stats().retried).toBeGreaterThanOrEqual(10);
    for (let i = 0; i < 5; i++) s.write(`b${i}`);
    t.down = false;
    await until("all delivered", () => t.got.length === 10);
    expect(t.got).toEqual(["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4"]);
    expect(s.stats().up).toBe(true);
    expect(Object.values(s.stats().dropped).every((n) => n === 0)).toBe(true);
    invariant(s.stats());
    await s.close();
  });

  test("past the retry budget the batch is dropped (retry_budget) and the next one goes", async () => {
    const t = new Fake();
    t.down = true;
    const s = new QueuedSink("q", t, { lingerMs: 1, backoffMs: 10, maxBackoffMs: 20, retryBudgetMs: 100 });
    for (let i = 0; i < 7; i++) s.write(`a${i}`);
    await until("dropped", () => s.stats().dropped.retry_budget === 7);
    t.down = false;
    s.write("b");
    await s.flush();
    expect(t.got).toEqual(["b"]);
    invariant(s.stats());
    await s.close();
  });

  test("a rejected batch is dropped at once (rejected), not retried", async () => {
    const t = new Fake();
    t.reject = true;
    const s = new QueuedSink("q", t, { lingerMs: 1 });
    s.write("bad");
    await until("rejected", () => s.stats().dropped.rejected === 1);
    expect(s.stats().retried).toBe(0);
    expect(t.attempts).toBe(1);
    await s.close();
  });

  test("close() gives up after flush_timeout on a dead server and counts what was left (shutdown); later writes too", async () => {
    const t = new Fake();
    t.down = true;
    const s = new QueuedSink("q", t, { lingerMs: 1, backoffMs: 10, maxBackoffMs: 20, retryBudgetMs: 60_000, flushTimeoutMs: 100, maxBatch: 2 });
    for (let i = 0; i < 5; i++) s.write(`a${i}`);
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    s.write("late");
    const st = s.stats();
    expect(st.dropped.shutdown).toBe(6);
    expect(st.queued).toBe(0);
    invariant(st);
  });
});

describe("sink specs", () => {
  test("ward agent --sink: parsed in order, stdout off unless asked for, errors are UsageErrors naming the flag", () => {
    const c = parseAgentConfig(["--sink", "loki=http://127.0.0.1:3100", "--sink=syslog://127.0.0.1:514?proto=udp"]) as AgentConfig;
    expect(c.sinks.map((s) => s.kind)).toEqual(["loki", "syslog"]);
    expect(c.exportStdout).toBe(false);
    expect((parseAgentConfig(["--sink", "stdout?format=compact", "--export-stdout"]) as AgentConfig).exportStdout).toBe(true);
    expect(() => parseAgentConfig(["--sink", "loki"])).toThrow(UsageError);
    expect(() => parseAgentConfig(["--sink", "loki"])).toThrow(/^ward agent: --sink.*: loki needs a URL/);
  });

  test("flags: every kind, settings from the query, unique default names", () => {
    const specs = parseSinkFlags([
      "syslog://127.0.0.1:5514?proto=tcp&retry_budget=2m&batch=50",
      "syslog://127.0.0.1:5514?proto=udp&facility=auth&severity=notice",
      "syslog:///run/ward/syslog.sock",
      "loki=http://127.0.0.1:3100?tenant=t1&linger=250ms",
      "clickhouse=http://u:p@127.0.0.1:8123?table=ward_events&database=sec",
      "file=/var/log/ward/e.log?max_backups=3",
      "stdout?format=compact",
    ]);
    expect(specs.map((s) => s.name)).toEqual(["syslog", "syslog-2", "syslog-3", "loki", "clickhouse", "file", "stdout"]);
    expect(specs[0]).toMatchObject({ kind: "syslog", proto: "tcp", host: "127.0.0.1", port: 5514, queue: { retryBudgetMs: 120_000, maxBatch: 50 } });
    expect(specs[1]).toMatchObject({ proto: "udp", facility: "auth", severity: "notice" });
    expect(specs[2]).toMatchObject({ proto: "unix", path: "/run/ward/syslog.sock" });
    expect(specs[3]).toMatchObject({ kind: "loki", url: "http://127.0.0.1:3100/", tenant: "t1", queue: { lingerMs: 250 } });
    expect(specs[4]).toMatchObject({ kind: "clickhouse", url: "http://u:p@127.0.0.1:8123/", table: "ward_events", database: "sec" });
    expect(specs[5]).toMatchObject({ kind: "file", path: "/var/log/ward/e.log", maxBackups: 3 });
    expect(specs[6]).toMatchObject({ kind: "stdout", format: "compact" });
  });

  test("flag errors say which flag and what", () => {
    const bad: Array<[string, RegExp]> = [
      ["kafka=http://x", /--sink "kafka=http:\/\/x": unknown sink "kafka"/],
      ["loki=ftp://x", /loki wants an http/],
      ["syslog://h:1?proto=sctp", /proto "sctp": want tcp or udp/],
      ["syslog://h:99999", /port 99999 is out of range/],
      ["loki=http://h?retry_budget=30", /retry_budget "30": want a duration with a unit/],
      ["loki=http://h?batch=0", /batch 0: want at least 1/],
      ["loki=http://h?colour=red", /unknown setting "colour" for a loki sink/],
      ["clickhouse=http://h?table=a;drop", /table "a;drop": want a plain identifier/],
      ["syslog://h:1?facility=nope", /facility "nope"/],
    ];
    for (const [v, re] of bad) expect(() => parseSinkFlags([v])).toThrow(re);
    expect(() => parseSinkFlags(["loki=http://a?name=x", "loki=http://b?name=x"])).toThrow(/name "x" is already used by sink 1/);
    expect(() => parseSinkFlags(["stdout=foo"])).toThrow(SinkConfigError);
  });

  test("config entries: strings and mappings; errors carry where()", () => {
    const where = (i: number) => `ward.yaml:${10 + i}:3: sinks[${i}]`;
    const specs = parseSinkConfig(
      [
        { type: "syslog", url: "syslog://127.0.0.1:514?proto=udp", facility: "local3" },
        { type: "loki", url: "http://loki:3100", retry_budget: "30s", batch: 200, name: "grafana" },
        "clickhouse=http://127.0.0.1:8123",
        { type: "file", path: "/tmp/e.log", max_bytes: 2048 },
      ],
      where,
    );
    expect(specs[0]).toMatchObject({ kind: "syslog", proto: "udp", facility: "local3", name: "syslog" });
    expect(specs[1]).toMatchObject({ kind: "loki", name: "grafana", queue: { retryBudgetMs: 30_000, maxBatch: 200 } });
    expect(specs[2]).toMatchObject({ kind: "clickhouse", table: "ward_events", database: "default" });
    expect(specs[3]).toMatchObject({ kind: "file", path: "/tmp/e.log", maxBytes: 2048 });
    expect(() => parseSinkConfig([{ url: "http://x" }], where)).toThrow("ward.yaml:10:3: sinks[0]: type: want one of stdout, file, syslog, loki, clickhouse (missing)");
    expect(() => parseSinkConfig([{}, { type: "loki" }], (i) => `sinks[${i}]`)).toThrow(/^sinks\[0\]/);
    expect(() => parseSinkConfig([{ type: "loki" }], where)).toThrow("ward.yaml:10:3: sinks[0]: loki needs url: http://HOST:PORT");
    expect(() => parseSinkConfig([{ type: "loki", url: "http://x", retry_budget: 30 }], where)).toThrow(/retry_budget: 30 has no unit/);
    expect(() => parseSinkConfig([{ type: "loki", url: "http://x", labels: { a: 1 } }], where)).toThrow(/labels: want a string or number, not object/);
    expect(() => parseSinkConfig([42], where)).toThrow(/a sink is a string .* not number/);
    expect(() => parseSinkConfig([{ type: "syslog", url: "syslog://h:1?proto=tcp", proto: "udp" }], where)).toThrow(/setting "proto" given twice/);
  });
});

const EXEC = `{"process_exec":{"process":{"exec_id":"abc","pid":42,"uid":0,"binary":"/usr/bin/true","arguments":"x y","pod":{"namespace":"prod","name":"web-1"}},"parent":{"binary":"/bin/sh"}},"node_name":"n 1","time":"2026-12-03T15:53:00.123456789Z"}`;
const KPROBE = `{"process_kprobe":{"process":{"pid":7,"binary":"/usr/bin/cat"},"function_name":"security_file_open","policy_name":"secure","action":"KPROBE_ACTION_SIGKILL"},"node_name":"n1","time":"2026-12-03T15:53:01Z"}`;

describe("sink spec errors and round trip", () => {
  const pathOf = (f: () => unknown): { detail: string; path: readonly (string | number)[] } => {
    try {
      f();
    } catch (e) {
      if (e instanceof SinkConfigError) return { detail: e.detail, path: e.path };
      throw e;
    }
    throw new Error("no error");
  };

  test("errors carry a path into the list: the entry, and the key to blame when it is one", () => {
    const w = (i: number) => `sinks[${i}]`;
    expect(pathOf(() => parseSinkConfig([{ type: "loki", url: "http://x" }, { type: "syslog", url: "syslog://h:1", facility: "nope" }], w))).toEqual({ detail: expect.stringContaining('facility "nope"'), path: [1, "facility"] });
    // A setting from the url's query points at url.
    expect(pathOf(() => parseSinkConfig([{ type: "syslog", url: "syslog://h:1?proto=sctp" }], w)).path).toEqual([0, "url"]);
    expect(pathOf(() => parseSinkConfig(["loki=http://x?batch=0"], w)).path).toEqual([0]);
    expect(pathOf(() => parseSinkConfig([{ type: "kafka" }], w)).path).toEqual([0, "type"]);
    expect(pathOf(() => parseSinkConfig([{ type: "loki", url: "http://a", name: "x" }, { type: "loki", url: "http://b", name: "x" }], w)).path).toEqual([1, "name"]);
    expect(pathOf(() => parseSinkFlags(["stdout", "loki=http://x?linger=5"])).path).toEqual([1]);
  });

  test("formatSinkSpec reads back to the same spec", () => {
    const specs = parseSinkConfig(
      [
        "syslog://127.0.0.1:5514?proto=tcp&retry_budget=2m&batch=50",
        { type: "syslog", url: "syslog:///run/ward.sock", facility: "auth", app_name: "w" },
        "syslog://[::1]:514?proto=udp",
        { type: "loki", url: "http://u:p@loki:3100/loki/api/v1/push", tenant: "t", linger: "250ms", name: "grafana" },
        "clickhouse=http://127.0.0.1:8123?table=ev&database=sec&flush_timeout=1s",
        { type: "file", path: "/var/log/ward/e.log", max_bytes: 4096, max_backups: 0 },
        "stdout?format=compact",
      ],
      (i) => `sinks[${i}]`,
    );
    const again = parseSinkConfig(specs.map(formatSinkSpec), (i) => `again[${i}]`);
    expect(again).toEqual(specs);
  });
});

describe("stdout sink", () => {
  test("maps lines in the send loop (the compact form) and skips what the map drops", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-stdout-"));
    try {
      const path = join(dir, "out");
      const fd = openSync(path, "w");
      const s = new StdoutSink(fd, { map: (l) => (l.startsWith("skip") ? undefined : l.toUpperCase()) });
      for (const l of ["a", "skip me", "b"]) s.write(l);
      await s.close();
      closeSync(fd);
      expect(readFileSync(path, "utf8")).toBe("A\nB\n");
      expect(s.stats()).toMatchObject({ written: 3, sent: 3 });
      expect(stdoutSink("compact").name).toBe("stdout");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("syslog over TCP", () => {
  test("octet-counted frames survive the server dropping the connection: the sink reconnects and loses nothing it was not told about", async () => {
    // A receiver that parses "LEN SP MSG" frames per connection and hangs up after the first batch.
    const got: string[] = [];
    let conns = 0;
    const bufs = new Map<object, string>();
    const srv = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(sock) {
          conns++;
          bufs.set(sock, "");
        },
        data(sock, chunk) {
          let b = bufs.get(sock)! + chunk.toString("utf8");
          for (;;) {
            const sp = b.indexOf(" ");
            if (sp < 0) break;
            const len = Number(b.slice(0, sp));
            if (Buffer.byteLength(b.slice(sp + 1)) < len) break;
            const rest = Buffer.from(b.slice(sp + 1));
            got.push(rest.subarray(0, len).toString("utf8"));
            b = rest.subarray(len).toString("utf8");
          }
          bufs.set(sock, b);
          if (conns === 1 && got.length >= 3) sock.end();
        },
      },
    });
    const sink = new SyslogSink({ proto: "tcp", host: "127.0.0.1", port: srv.port, hostname: "n1", lingerMs: 1, backoffMs: 10, maxBackoffMs: 20 });
    const line = (i: number) => `{"process_exec":{"process":{"arguments":"é ${i}\nnext"}},"node_name":"n1","time":"2026-12-03T15:53:00Z"}`;
    for (let i = 0; i < 3; i++) sink.write(line(i));
    await until("first three", () => got.length === 3);
    await Bun.sleep(50); // the server's FIN reaches the sink
    for (let i = 3; i < 6; i++) sink.write(line(i));
    await sink.close();
    await until("all six at the server", () => got.length === 6);
    srv.stop(true);
    expect(got.map((m) => m.slice(m.indexOf(" - ") + 3))).toEqual([0, 1, 2, 3, 4, 5].map(line));
    expect(got[0]!.startsWith(`<134>1 2026-12-03T15:53:00Z n1 ward ${process.pid} process_exec - `)).toBe(true);
    expect(conns).toBe(2);
    expect(sink.stats()).toMatchObject({ written: 6, sent: 6 });
  });
});

describe("formats", () => {
  test("syslog: RFC 5424 header, 6 fraction digits, event type as MSGID", () => {
    const f = new SyslogFormatter({ facility: "local0", severity: "info", hostname: "n 1" });
    expect(f.format(EXEC)).toBe(`<134>1 2026-12-03T15:53:00.123456Z n_1 ward ${process.pid} process_exec - ${EXEC}`);
    expect(syslogTimestamp('{"x":{},"time":"2026-12-03T15:53:01+02:00"}')).toBe("2026-12-03T15:53:01+02:00");
    expect(syslogTimestamp('{"x":{}}', () => new Date(0))).toBe("1970-01-01T00:00:00.000Z");
  });

  test("loki: labels node/type/policy/namespace, time in ns", () => {
    expect(lokiLabels(EXEC)).toEqual({ labels: { type: "process_exec", node: "n 1", namespace: "prod" }, ns: 1796313180123456789n });
    expect(lokiLabels(KPROBE).labels).toEqual({ type: "process_kprobe", node: "n1", policy: "secure" });
    expect(eventTimeNs("2026-12-03T15:53:01Z")).toBe(1796313181000000000n);
    expect(eventTimeNs("yesterday")).toBeUndefined();
  });

  test("loki: timestamps strictly increase per stream, across batches; a retried batch keeps its timestamps", () => {
    const t = new LokiTransport({ url: "http://127.0.0.1:1" });
    const at = (time: string, pid: number) => `{"process_exec":{"process":{"pid":${pid}}},"node_name":"n1","time":"${time}"}`;
    const b1 = [at("2026-12-03T15:53:00.000000002Z", 1), at("2026-12-03T15:53:00.000000001Z", 2), at("2026-12-03T15:53:00.000000002Z", 3)];
    const body = JSON.parse(t.body(b1)) as { streams: { stream: Record<string, string>; values: [string, string][] }[] };
    expect(body.streams).toHaveLength(1);
    expect(body.streams[0]!.stream).toEqual({ node: "n1", type: "process_exec" });
    expect(body.streams[0]!.values.map((v) => v[0])).toEqual(["1796313180000000002", "1796313180000000003", "1796313180000000004"]);
    // Not acknowledged yet: building it again gives the same timestamps.
    expect(t.body(b1)).toBe(JSON.stringify(body));
  });

  test("loki: across batches an event older than the stream's last is moved after it, so Loki takes every push", async () => {
    const srv = new LokiServer(await freePort());
    srv.start();
    try {
      const sink = new LokiSink({ url: srv.url, lingerMs: 1 });
      const at = (time: string) => `{"process_exec":{"process":{}},"node_name":"n1","time":"${time}"}`;
      sink.write(at("2026-12-03T15:53:05Z"));
      await sink.flush();
      sink.write(at("2026-12-03T15:53:01Z")); // older than what Loki has for the stream
      await sink.close();
      expect(sink.stats()).toMatchObject({ sent: 2, dropped: { rejected: 0 } });
      const [st] = [...srv.streams.values()];
      expect(st!.entries.map((e) => e.ns)).toEqual([1796313185000000000n, 1796313185000000001n]);
    } finally {
      await srv.stop();
    }
  });

  test("clickhouse: a row per event with the full line in `event`", () => {
    const row = JSON.parse(clickhouseRow(EXEC)) as Record<string, unknown>;
    expect(row).toMatchObject({ time: 1796313180, time_ns: "1796313180123456789", type: "process_exec", node_name: "n 1", binary: "/usr/bin/true", arguments: "x y", pid: 42, namespace: "prod", pod: "web-1", exec_id: "abc", event: EXEC });
    expect(JSON.parse(clickhouseRow(KPROBE))).toMatchObject({ policy_name: "secure", function_name: "security_file_open", action: "KPROBE_ACTION_SIGKILL" });
    expect(clickhouseSchema("default", "ward_events")).toContain("ENGINE = MergeTree() PARTITION BY toYYYYMM(time) ORDER BY (type, time)");
  });

  test("metrics: ward_sink_* per sink and drop reason", () => {
    const st: SinkStats = { name: "loki", kind: "loki", sent: 5, retried: 2, dropped: { queue_full: 1, retry_budget: 3, rejected: 0, shutdown: 0 }, written: 9, queued: 0, up: false };
    const status = { version: "t", node_name: "n", pid: 1, started_at: "", uptime_seconds: 0, ready: true, sensors: [], events: { total: 0, by_type: {}, lost: {}, subscribers: 0, sinks: ["loki"] }, policies: [], sink_stats: [st] } as AgentStatus;
    const text = renderMetrics(status);
    expect(text).toContain('ward_sink_events_sent_total{sink="loki",kind="loki"} 5');
    expect(text).toContain('ward_sink_events_retried_total{sink="loki",kind="loki"} 2');
    expect(text).toContain('ward_sink_events_dropped_total{sink="loki",kind="loki",reason="retry_budget"} 3');
    expect(text).toContain('ward_sink_up{sink="loki",kind="loki"} 0');
    expect(text).toContain("# TYPE ward_sink_events_sent_total counter");
    expect(text).not.toContain("ward_k8s_");
  });

  test("metrics: ward_k8s_* per watch, pods, containers, CRs by state (with --enable-k8s-api)", () => {
    const watch = (resource: string, synced: boolean, relists: number, errors: number) => ({ resource, path: "", synced, watching: synced, resource_version: "7", lists: 1 + relists, relists, watches: 2, bookmarks: 0, errors });
    const status = {
      version: "t", node_name: "n", pid: 1, started_at: "", uptime_seconds: 0, ready: true, sensors: [], events: { total: 0, by_type: {}, lost: {}, subscribers: 0, sinks: [] }, policies: [],
      kubernetes: {
        config: "in-cluster", server: "https://10.96.0.1:443", node: "n", state: "connected", connect_attempts: 1,
        watches: [watch("pods", true, 2, 1), watch("tracingpolicies.cilium.io", false, 0, 4)],
        pods: 3, containers: 4, pending_containers: ["default/a/c (0123456789ab)"],
        policies: [{ kind: "TracingPolicy", name: "a", state: "applied" }, { kind: "TracingPolicy", name: "b", state: "error", error: "x" }, { kind: "TracingPolicy", name: "c", state: "applied" }],
      },
    } as AgentStatus;
    const text = renderMetrics(status);
    expect(text).toContain("ward_k8s_connected 1");
    expect(text).toContain('ward_k8s_watch_synced{resource="pods"} 1');
    expect(text).toContain('ward_k8s_watch_synced{resource="tracingpolicies.cilium.io"} 0');
    expect(text).toContain('ward_k8s_watch_relists_total{resource="pods"} 2');
    expect(text).toContain('ward_k8s_watch_errors_total{resource="tracingpolicies.cilium.io"} 4');
    expect(text).toContain("ward_k8s_pods 3");
    expect(text).toContain('ward_k8s_containers{cgroup="pending"} 1');
    expect(text).toContain('ward_k8s_tracingpolicies{state="applied"} 2');
    expect(text).toContain('ward_k8s_tracingpolicies{state="error"} 1');
    expect(text).toContain("# TYPE ward_k8s_watch_relists_total counter");
  });
});
