// Agent settings (flags, environment, config file, --print-config), log levels and the token file.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../../src/cli/args.ts";
import { AGENT_FLAGS, AGENT_USAGE, ConfigError, ConfigValueError, DEFAULT_PORT, formatConfig, isLoopback, listenUrl, parseAgentConfig, parseListen, SETTINGS, type AgentConfig } from "../../../src/agent/config.ts";
import { createLogger } from "../../../src/agent/log.ts";
import { clickhouseSchema } from "../../../src/export/sinks/clickhouse.ts";
import { loadOrCreateToken, TokenFileError, tokensEqual } from "../../../src/agent/token.ts";

describe("parseAgentConfig", () => {
  test("defaults: loopback, /run/ward files, stdout JSON, hostname-or-NODE_NAME", () => {
    const c = parseAgentConfig([], { NODE_NAME: "n7" }) as AgentConfig;
    expect(c).toMatchObject({
      listen: { host: "127.0.0.1", port: DEFAULT_PORT },
      tokenFile: "/run/ward/token",
      stateFile: "/run/ward/agent.json",
      exportStdout: true,
      output: "json",
      keepSensorsOnExit: false,
      nodeName: "n7",
      policyFiles: [],
    });
  });

  test("--export-file turns stdout off unless --export-stdout", () => {
    expect((parseAgentConfig(["--export-file", "/x"]) as AgentConfig).exportStdout).toBe(false);
    expect((parseAgentConfig(["--export-file", "/x", "--export-stdout"]) as AgentConfig).exportStdout).toBe(true);
  });

  test("--policy repeats", () => {
    expect((parseAgentConfig(["--policy", "a.yaml", "--policy=b.yaml"]) as AgentConfig).policyFiles).toEqual(["a.yaml", "b.yaml"]);
  });

  test("bad values are UsageErrors", () => {
    for (const argv of [["--listen", "x"], ["--listen", "[zz]:1"], ["--listen", "h:99999"], ["-o", "text"], ["--node-name", ""], ["extra"]]) {
      expect(() => parseAgentConfig(argv)).toThrow(UsageError);
    }
  });
});

describe("listen addresses", () => {
  test("parse v4, names and bracketed v6", () => {
    expect(parseListen("0.0.0.0:1")).toEqual({ host: "0.0.0.0", port: 1 });
    expect(parseListen("localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(parseListen("[::1]:54321")).toEqual({ host: "::1", port: 54321 });
  });
  test("loopback detection and client URLs", () => {
    expect(["127.0.0.1", "127.1.2.3", "::1", "localhost"].every(isLoopback)).toBe(true);
    expect(["0.0.0.0", "::", "10.0.0.1", "example.com"].some(isLoopback)).toBe(false);
    expect(listenUrl({ host: "0.0.0.0", port: 5 })).toBe("http://127.0.0.1:5");
    expect(listenUrl({ host: "::1", port: 5 })).toBe("http://[::1]:5");
  });
});

describe("token file", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("created 0600 with 64 hex chars when missing, then reused", () => {
    dir = mkdtempSync(join(tmpdir(), "ward-token-"));
    const p = join(dir, "sub", "token");
    const a = loadOrCreateToken(p);
    expect(a.created).toBe(true);
    expect(a.token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "sub")).mode & 0o777).toBe(0o700);
    const b = loadOrCreateToken(p);
    expect(b).toEqual({ token: a.token, created: false });
  });

  test("a group/world-readable file is tightened; short tokens are refused", () => {
    dir = mkdtempSync(join(tmpdir(), "ward-token-"));
    const p = join(dir, "token");
    writeFileSync(p, "0123456789abcdef0123\n");
    chmodSync(p, 0o644);
    expect(loadOrCreateToken(p).token).toBe("0123456789abcdef0123");
    expect(statSync(p).mode & 0o777).toBe(0o600);
    writeFileSync(p, "short\n");
    expect(() => loadOrCreateToken(p)).toThrow(TokenFileError);
    expect(readFileSync(p, "utf8")).toBe("short\n");
  });

  test("tokensEqual", () => {
    expect(tokensEqual("abc", "abc")).toBe(true);
    expect(tokensEqual("abd", "abc")).toBe(false);
    expect(tokensEqual("ab", "abc")).toBe(false);
    expect(tokensEqual("abcd", "abc")).toBe(false);
    expect(tokensEqual("", "abc")).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// Config file, environment and precedence (flags > env > file > defaults).

describe("Kubernetes settings (Tetragon's names)", () => {
  test("off by default; --enable-k8s-api with a kubeconfig, retry and the CR watch on", () => {
    expect(parseAgentConfig([], {}) as AgentConfig).toMatchObject({ enableK8sApi: false, k8sControlplaneRetry: 1, enableTracingPolicyCrd: true });
    const c = parseAgentConfig(["--enable-k8s-api", "--k8s-kubeconfig-path", "/etc/kube/config", "--k8s-controlplane-retry=-1"], { NODE_NAME: "node-1" }) as AgentConfig;
    expect(c).toMatchObject({ enableK8sApi: true, k8sKubeconfigPath: "/etc/kube/config", k8sControlplaneRetry: -1, enableTracingPolicyCrd: true, nodeName: "node-1" });
  });

  test("--enable-tracing-policy-crd=false turns the CR watch off; the environment as Tetragon's", () => {
    expect((parseAgentConfig(["--enable-k8s-api", "--enable-tracing-policy-crd=false"], {}) as AgentConfig).enableTracingPolicyCrd).toBe(false);
    const c = parseAgentConfig([], { TETRAGON_ENABLE_K8S_API: "true", TETRAGON_K8S_KUBECONFIG_PATH: "/k", TETRAGON_K8S_CONTROLPLANE_RETRY: "5", TETRAGON_ENABLE_TRACING_POLICY_CRD: "false" }) as AgentConfig;
    expect(c).toMatchObject({ enableK8sApi: true, k8sKubeconfigPath: "/k", k8sControlplaneRetry: 5, enableTracingPolicyCrd: false });
    expect(() => parseAgentConfig(["--enable-k8s-api=maybe"], {})).toThrow('flag --enable-k8s-api takes no value, or =true or =false (not "maybe")');
  });

  test("0 attempts, and a Kubernetes setting without --enable-k8s-api, are errors naming the flag", () => {
    expect(problemsOf(() => parseAgentConfig(["--enable-k8s-api", "--k8s-controlplane-retry", "0"], {}))).toEqual([
      "ward agent: --k8s-controlplane-retry: 0 attempts would never connect; give 1 or more, or -1 to retry until the API server answers",
    ]);
    expect(problemsOf(() => parseAgentConfig(["--k8s-kubeconfig-path", "/k"], {}))).toEqual(["ward agent: --k8s-kubeconfig-path: has no effect without enable-k8s-api; enable the Kubernetes API or drop it"]);
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "k8s-controlplane-retry: 3\n" }))).toEqual(["/w.yaml:1:25: k8s-controlplane-retry: has no effect without enable-k8s-api; enable the Kubernetes API or drop it"]);
  });

  test("--keep-sensors-on-exit with the CR watch is refused (CR policies are not in the policy store); with pods only it is not", () => {
    const msg = "cannot be used with enable-k8s-api while TracingPolicy CRs are applied: CR policies are not in the policy store, so a restarted agent could not tell which pinned ones are still wanted; set enable-tracing-policy-crd=false (pods only) or drop one of the two";
    expect(problemsOf(() => parseAgentConfig(["--enable-k8s-api", "--keep-sensors-on-exit"], {}))).toEqual([`ward agent: --keep-sensors-on-exit: ${msg}`]);
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "enable-k8s-api: true\nkeep-sensors-on-exit: true\n" }))).toEqual([`/w.yaml:2:23: keep-sensors-on-exit: ${msg}`]);
    const podsOnly = parseAgentConfig(["--enable-k8s-api", "--enable-tracing-policy-crd=false", "--keep-sensors-on-exit"], {}) as AgentConfig;
    expect(podsOnly).toMatchObject({ enableK8sApi: true, enableTracingPolicyCrd: false, keepSensorsOnExit: true });
    expect((parseAgentConfig(["--keep-sensors-on-exit"], {}) as AgentConfig).keepSensorsOnExit).toBe(true);
  });

  test("--print-config of a Kubernetes configuration reads back the same", () => {
    const c = parseAgentConfig(["--enable-k8s-api", "--k8s-kubeconfig-path", "/k", "--k8s-controlplane-retry", "3", "--enable-tracing-policy-crd=false"], { NODE_NAME: "n" }) as AgentConfig;
    const back = parseWith(["--config", "/p.yaml"], {}, { "/p.yaml": formatConfig(c) });
    expect({ ...back, configFile: undefined }).toEqual({ ...c, configFile: undefined });
  });
});

const files = (m: Record<string, string>) => (p: string) => {
  const t = m[p];
  if (t === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
  return t;
};

function parseWith(argv: string[], env: Record<string, string>, m: Record<string, string>): AgentConfig {
  const c = parseAgentConfig(argv, env, files(m));
  if (c === "help") throw new Error("help");
  return c;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("no error");
}

const EXAMPLE = `# ward agent configuration
log-level: debug
listen: 127.0.0.1:7000
policy:
  - /etc/ward/a.yaml
  - /etc/ward/b.yaml
export-filename: /var/log/ward/events.log
export-file-max-backups: 2
export-rate-limit: 600
export-allowlist: |
  {"event_set":["PROCESS_EXEC","PROCESS_EXIT"]}
  {"binary_regex":["^/usr/bin/curl$"],"event_set":["PROCESS_KPROBE"]}
export-denylist:
  - {"namespace": ["kube-system"]}
field-filters: '{"fields":"process.exec_id,process.parent_exec_id","event_set":["PROCESS_EXEC"],"invert_event_set":true,"action":"EXCLUDE"}'
bpf-dir: ward-test
node-name: n1
sinks:
  - type: syslog
    url: syslog://127.0.0.1:514?proto=udp
`;

describe("config file", () => {
  test("a YAML file sets every kind of value", () => {
    const c = parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": EXAMPLE });
    expect(c).toMatchObject({
      configFile: "/w.yaml",
      logLevel: "debug",
      listen: { host: "127.0.0.1", port: 7000 },
      policyFiles: ["/etc/ward/a.yaml", "/etc/ward/b.yaml"],
      exportFile: "/var/log/ward/events.log",
      exportStdout: false,
      exportFileMaxBackups: 2,
      exportFileMaxSizeMb: 10,
      exportRateLimit: 600,
      exportAllowlist: [{ event_set: ["process_exec", "process_exit"] }, { binary_regex: ["^/usr/bin/curl$"], event_set: ["process_kprobe"] }],
      exportDenylist: [{ namespace: ["kube-system"] }],
      fieldFilters: [{ fields: ["process.exec_id", "process.parent_exec_id"], event_set: ["process_exec"], invert_event_set: true, action: "EXCLUDE" }],
      // A relative bpf-dir is a name under /sys/fs/bpf, as Tetragon's --bpf-dir.
      bpfDir: "/sys/fs/bpf/ward-test",
      nodeName: "n1",
      sinks: [{ kind: "syslog", name: "syslog", proto: "udp", host: "127.0.0.1", port: 514 }],
    });
  });

  test("a flag overrides the environment, which overrides the file", () => {
    const m = { "/w.yaml": "export-rate-limit: 10\nnode-name: from-file\nlog-level: warn\n" };
    expect(parseWith(["--config", "/w.yaml"], {}, m)).toMatchObject({ exportRateLimit: 10, nodeName: "from-file", logLevel: "warn" });
    expect(parseWith(["--config", "/w.yaml"], { WARD_EXPORT_RATE_LIMIT: "20", NODE_NAME: "from-env" }, m)).toMatchObject({ exportRateLimit: 20, nodeName: "from-env", logLevel: "warn" });
    expect(parseWith(["--config", "/w.yaml", "--export-rate-limit", "30", "--node-name", "from-flag"], { WARD_EXPORT_RATE_LIMIT: "20", NODE_NAME: "from-env" }, m)).toMatchObject({
      exportRateLimit: 30,
      nodeName: "from-flag",
    });
  });

  test("WARD_CONFIG names the file when --config is not given", () => {
    expect(parseWith([], { WARD_CONFIG: "/w.yaml" }, { "/w.yaml": "output: compact\n" }).output).toBe("compact");
  });

  test("Tetragon's variable names work for the settings that map; WARD_ wins over TETRAGON_", () => {
    const c = parseWith([], { TETRAGON_EXPORT_FILENAME: "/t.log", TETRAGON_EXPORT_RATE_LIMIT: "5", TETRAGON_LOG_LEVEL: "error", TETRAGON_EXPORT_DENYLIST: '{"pid":[1]}', TETRAGON_TRACING_POLICY: "/p.yaml" }, {});
    expect(c).toMatchObject({ exportFile: "/t.log", exportRateLimit: 5, logLevel: "error", exportDenylist: [{ pid: [1] }], policyFiles: ["/p.yaml"] });
    expect(parseWith([], { TETRAGON_EXPORT_RATE_LIMIT: "5", WARD_EXPORT_RATE_LIMIT: "7" }, {}).exportRateLimit).toBe(7);
    // Tetragon's node name order: HUBBLE_NODE_NAME before NODE_NAME.
    expect(parseWith([], { HUBBLE_NODE_NAME: "h", NODE_NAME: "n" }, {}).nodeName).toBe("h");
  });

  test("--export-file is an alias of --export-filename; giving both is an error", () => {
    expect(parseWith(["--export-file", "/a"], {}, {}).exportFile).toBe("/a");
    expect(parseWith(["--export-filename", "/a"], {}, {}).exportFile).toBe("/a");
    expect(() => parseWith(["--export-file", "/a", "--export-filename", "/b"], {}, {})).toThrow("set the same thing");
  });

  test("an unknown key is an error with file, line and column", () => {
    const p = problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "log-level: info\nlisten: 127.0.0.1:1\n  \nexprot-filename: /x\n" }));
    expect(p).toHaveLength(1);
    expect(p[0]).toStartWith('/w.yaml:4:1: unknown key "exprot-filename" (known: log-level,');
    // An old ward spelling gets the right name.
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "export-file: /x\n" }))[0]).toBe('/w.yaml:1:1: unknown key "export-file" (use "export-filename")');
  });

  test("bad values are errors naming the position, the key and the value; all are reported", () => {
    const p = problemsOf(() =>
      parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "export-rate-limit: lots\nlog-level: loud\nlisten: nohost\nexport-stdout: maybe\nexport-file-max-size-mb: 0\npolicy: 7\n" }),
    );
    expect(p).toEqual([
      '/w.yaml:1:20: export-rate-limit: "lots" is not an integer',
      '/w.yaml:2:12: log-level: must be debug, info, warn or error, not "loud"',
      '/w.yaml:3:9: listen: "nohost": want HOST:PORT (e.g. 127.0.0.1:54321, [::1]:54321)',
      '/w.yaml:4:16: export-stdout: "maybe" is not true or false',
      '/w.yaml:5:26: export-file-max-size-mb: 0 is below the minimum 1',
      "/w.yaml:6:9: policy: 7 is not a list of strings",
    ]);
  });

  test("environment and flag errors name the variable or flag and the value", () => {
    expect(problemsOf(() => parseWith([], { WARD_EXPORT_RATE_LIMIT: "x" }, {}))).toEqual(['ward agent: $WARD_EXPORT_RATE_LIMIT: "x" is not an integer']);
    expect(problemsOf(() => parseWith(["--log-level", "trace"], {}, {}))).toEqual(['ward agent: --log-level: must be debug, info, warn or error, not "trace"']);
  });

  test("filter errors name the line and the field", () => {
    const bad = (v: string) => problemsOf(() => parseWith(["--export-allowlist", v], {}, {}))[0];
    expect(bad('{"event_set":["PROCESS_EXEC"]}\n{"binary_regx":["a"]}')).toBe('ward agent: --export-allowlist: line 2, field binary_regx: unknown filter field "binary_regx" (known: binary_regex, parent_binary_regex, health_check, namespace, pid, pid_set, event_set, arguments_regex, pod_regex, policy_names)');
    expect(bad('\n\n{"binary_regex":["(unclosed"]}')).toStartWith("ward agent: --export-allowlist: line 3, field binary_regex: bad regex for binary_regex:");
    expect(bad('{"pid":["one"]}')).toContain("line 1, field pid: pid must be a list of process ids");
    expect(bad('{"event_set":["PROCESS_EXECC"]}')).toContain('line 1, field event_set: unknown event type "PROCESS_EXECC"');
    expect(bad("{} x")).toContain("line 1: expected a JSON object");
    // pid_set needs enable-pid-set-filter, like Tetragon's --enable-pid-set-filter.
    expect(bad('{"pid_set":[1]}')).toContain("field pid_set:");
    expect(parseWith(["--export-allowlist", '{"pid_set":[1]}', "--enable-pid-set-filter"], {}, {}).exportAllowlist).toEqual([{ pid_set: [1] }]);
    // In a config file list, items are counted instead of lines, after the value's position.
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "export-denylist:\n  - {pid: [1]}\n  - {pod: x}\n" }))[0]).toStartWith(
      '/w.yaml:2:3: export-denylist: item 2, field pod: unknown filter field "pod"',
    );
    expect(problemsOf(() => parseWith(["--field-filters", '{"fields":"process.binary","action":"DROP"}'], {}, {}))[0]).toBe(
      'ward agent: --field-filters: line 1, field action: action must be "INCLUDE" or "EXCLUDE", not "DROP"',
    );
  });

  test("YAML syntax errors and a missing file are reported with where", () => {
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "listen: [\n" }))[0]).toMatch(/^\/w\.yaml:\d+:\d+: /);
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "listen: a\nlisten: b\n" }))[0]).toMatch(/^\/w\.yaml:2:1: .*[Uu]nique/);
    expect(problemsOf(() => parseWith(["--config", "/nope.yaml"], {}, {}))[0]).toStartWith("ward agent: --config /nope.yaml: ENOENT");
    expect(problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "- a\n" }))[0]).toBe("/w.yaml:1:1: the config file must be a mapping of keys to values");
  });

  test("an empty file is all defaults", () => {
    expect(parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "# nothing\n" })).toMatchObject({ exportRateLimit: -1, logLevel: "info", sinks: [] });
  });

  test("--print-config prints YAML that reads back to the same configuration", () => {
    const c = parseWith(["--config", "/w.yaml", "--print-config", "--log-level", "error"], {}, { "/w.yaml": EXAMPLE });
    expect(c.printConfig).toBe(true);
    const text = formatConfig(c);
    expect(text).toContain("\nlog-level: error\n");
    expect(text).toContain("\nexport-rate-limit: 600\n");
    expect(text).toMatch(/\nsinks:\n  - syslog:\/\/127\.0\.0\.1:514\?\S*proto=udp/);
    const again = parseWith(["--config", "/printed.yaml"], {}, { "/printed.yaml": text });
    const strip = ({ configFile: _a, printConfig: _b, ...rest }: AgentConfig) => rest;
    expect(strip(again)).toEqual(strip(c));
  });

  test("the --help text lists every flag the parser accepts", () => {
    for (const name of Object.keys(AGENT_FLAGS).filter((n) => n !== "help")) expect(AGENT_USAGE).toContain(`--${name}`);
    for (const s of SETTINGS.filter((s) => !s.fileOnly)) for (const e of s.env ?? []) expect(AGENT_USAGE).toContain(e);
  });
});

describe("a section with its own validation (the sinks section)", () => {
  test("a bad sink entry is reported at its own node's line and column", () => {
    const good = parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "sinks:\n  - type: loki\n    url: http://127.0.0.1:3100\n" });
    expect(good.sinks).toMatchObject([{ kind: "loki", name: "loki", url: "http://127.0.0.1:3100/" }]);
    const p = problemsOf(() => parseWith(["--config", "/w.yaml"], {}, { "/w.yaml": "sinks:\n  - type: loki\n    url: http://127.0.0.1:3100\n  - type: lokki\n    url: http://h:1\n" }));
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^\/w\.yaml:4:11: sinks: .*type: want one of stdout, file, syslog, loki, clickhouse, not "lokki"/);
  });

  test("--sink flags replace the file's sinks", () => {
    const c = parseWith(["--config", "/w.yaml", "--sink", "clickhouse=http://127.0.0.1:8123?table=t1"], {}, { "/w.yaml": EXAMPLE });
    expect(c.sinks).toMatchObject([{ kind: "clickhouse", table: "t1" }]);
  });

  test("a bad boolean for enable-pid-set-filter is reported once", () => {
    expect(problemsOf(() => parseWith([], { WARD_ENABLE_PID_SET_FILTER: "x" }, {}))).toEqual(['ward agent: $WARD_ENABLE_PID_SET_FILTER: "x" is not true or false']);
  });
});

describe("log levels", () => {
  test("lines below the level are dropped", () => {
    const out: string[] = [];
    const log = createLogger("warn", (l) => out.push(l));
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(out).toEqual(["ward agent: warn: w\n", "ward agent: error: e\n"]);
    const all: string[] = [];
    const dbg = createLogger("debug", (l) => all.push(l));
    dbg.debug("d");
    dbg.info("i");
    expect(all).toEqual(["ward agent: debug: d\n", "ward agent: i\n"]);
  });
});

describe("README", () => {
  const readme = readFileSync(join(import.meta.dir, "..", "..", "..", "README.md"), "utf8");

  test("the ward agent command line lists every flag the parser accepts", () => {
    const block = /```\n(ward agent [\s\S]*?)\nward policy/.exec(readme)![1]!;
    for (const name of Object.keys(AGENT_FLAGS).filter((n) => n !== "help" && n !== "export-file")) expect({ name, listed: block.includes(`--${name}`) }).toEqual({ name, listed: true });
  });

  // "## Export sinks": one paragraph per sink, each with a copy-paste configuration; each must
  // be what the agent actually accepts.
  const sinksSection = readme.slice(readme.indexOf("## Export sinks"), readme.indexOf("\n## ", readme.indexOf("## Export sinks") + 5));
  const blocks = [...sinksSection.matchAll(/```\n([\s\S]*?)```/g)].map((m) => m[1]!);

  test("every `ward agent --sink` command in the sinks section parses to the sink it names", () => {
    const commands = blocks.flatMap((b) => b.split("\n")).filter((l) => l.startsWith("ward agent --sink"));
    const kinds = commands.map((l) => {
      const spec = /--sink '([^']+)'/.exec(l)![1]!;
      const c = parseWith(["--sink", spec], {}, {});
      expect(c.sinks).toHaveLength(1);
      return c.sinks[0]!.kind;
    });
    expect(kinds.sort()).toEqual(["clickhouse", "file", "loki", "syslog"]);
    // The alternatives named in the syslog line's comment parse too.
    for (const spec of ["syslog://127.0.0.1:514?proto=udp", "syslog:///run/ward-syslog.sock"]) expect(parseWith(["--sink", spec], {}, {}).sinks[0]!.kind).toBe("syslog");
  });

  test("the sinks section's config-file block parses through --config", () => {
    const yaml = blocks.find((b) => b.startsWith("sinks:"))!;
    const c = parseWith(["--config", "/etc/ward/ward.yaml"], {}, { "/etc/ward/ward.yaml": yaml });
    expect(c.sinks.map((x) => x.kind)).toEqual(["syslog", "loki", "clickhouse"]);
    expect(c.sinks[0]).toMatchObject({ kind: "syslog", proto: "tcp", host: "127.0.0.1", port: 514, facility: "local0" });
    expect(c.sinks[2]).toMatchObject({ kind: "clickhouse", table: "ward_events" });
  });

  test("the ClickHouse schema in the README is the one the sink creates", () => {
    const ddl = blocks.find((b) => b.startsWith("CREATE TABLE"))!;
    const norm = (t: string): string => t.replace(/\s+/g, " ").replace(/\( /g, "(").replace(/ \)/g, ")").trim();
    expect(norm(ddl)).toBe(norm(clickhouseSchema("default", "ward_events")));
  });

  test("the Prometheus scrape configuration is YAML with a ward job", () => {
    const y = Bun.YAML.parse(blocks.find((b) => b.startsWith("scrape_configs:"))!) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    expect(y.scrape_configs[0]!.job_name).toBe("ward");
    expect(y.scrape_configs[0]!.static_configs[0]!.targets[0]).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test("the example configuration file parses", () => {
    const yaml = /```yaml\n# \/etc\/ward\/ward\.yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const c = parseWith(["--config", "/etc/ward/ward.yaml"], {}, { "/etc/ward/ward.yaml": yaml });
    expect(c.exportDenylist).toHaveLength(3);
    expect(c.fieldFilters[0]!.invert_event_set).toBe(true);
    expect(c.exportRateLimit).toBe(6000);
  });
});
