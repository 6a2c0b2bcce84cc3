// AgentConfig: the agent's settings, from four sources in increasing precedence:
//   defaults < config file (--config FILE, YAML) < environment (WARD_<KEY>, and Tetragon's
//   TETRAGON_<FLAG> for the settings that mean the same) < command-line flags.
// Every setting is one row of SETTINGS: its key (the config-file key and the flag name,
// kebab-case; Tetragon's flag name where Tetragon has the setting), its type, its environment
// names and its help. Parsing is pure apart from reading the config file through the reader
// it is given, so every error is reported before anything starts. Errors name where the
// value came from (file:line:col, the variable, or the flag), the key and the value.
import { hostname } from "node:os";
import { isIP } from "node:net";
import { readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, stringify, type Node as YamlNode } from "yaml";
import { parseArgs, UsageError, type FlagSpec } from "../cli/args.ts";
import { FilterError, FilterLineError, parseFilterLines, parseFilterObject, type TetragonFilter } from "../events/filter.ts";
import { parseFieldFilterLines, parseFieldFilterObject, type FieldFilterSpec } from "../events/field-filter.ts";
import { formatSinkSpec, parseSinkConfig, parseSinkFlags, SinkConfigError, type SinkSpec } from "../export/sink-spec.ts";
import { DEFAULT_STATE_FILE, DEFAULT_TOKEN_FILE } from "./state-file.ts";

/** Default API port. Same number as Tetragon's gRPC default; one of them must move if both run. */
export const DEFAULT_PORT = 54321;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_BPF_DIR = "/sys/fs/bpf/ward";
/** The policy store directory the deployments use (not a default: see AgentConfig.policyStoreDir). */
export const DEFAULT_POLICY_STORE_DIR = "/var/lib/ward/policies";
/** Where a relative --bpf-dir goes (Tetragon's --bpf-dir is a name under the BPF root). */
export const BPF_ROOT = "/sys/fs/bpf";

export type OutputFormat = "json" | "compact";
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AgentConfig {
  /** The config file read, if any. */
  configFile?: string;
  /** --print-config: print the effective configuration and exit. */
  printConfig: boolean;
  logLevel: LogLevel;
  policyFiles: string[];
  policyDir?: string;
  /**
   * Where policies added through the API are kept across restarts (off when unset). Off by
   * default so an ad-hoc run (npm start, tests, a one-off agent) never resurrects policies
   * from an earlier run; the shipped deployments (deploy/, the systemd unit) set it to
   * DEFAULT_POLICY_STORE_DIR.
   */
  policyStoreDir?: string;
  listen: ListenAddress;
  tokenFile: string;
  stateFile: string;
  exportFile?: string;
  /** Rotate the export file at this size (Tetragon's --export-file-max-size-mb). */
  exportFileMaxSizeMb: number;
  /** Rotated export files kept (Tetragon's --export-file-max-backups). */
  exportFileMaxBackups: number;
  /** Print events to stdout; on by default when no export file is given. */
  exportStdout: boolean;
  output: OutputFormat;
  /** Tetragon Filter lines; an event is exported when it matches one (or there are none)... */
  exportAllowlist: TetragonFilter[];
  /** ...and matches none of these. */
  exportDenylist: TetragonFilter[];
  /** Events per minute to the sinks; -1 no limit, 0 none. */
  exportRateLimit: number;
  fieldFilters: FieldFilterSpec[];
  enablePidSetFilter: boolean;
  bpfDir: string;
  keepSensorsOnExit: boolean;
  nodeName: string;
  /** --enable-k8s-api: the pod watch and (unless enableTracingPolicyCrd is off) the CR watch. */
  enableK8sApi: boolean;
  /** A kubeconfig file; unset means the in-cluster config (as Tetragon: $KUBECONFIG is not read). */
  k8sKubeconfigPath?: string;
  /** Attempts to reach the API server at start; -1 without end. */
  k8sControlplaneRetry: number;
  enableTracingPolicyCrd: boolean;
  /** Export sinks (src/export/sink-spec.ts) from --sink flags, else the config file's `sinks:`. */
  sinks: SinkSpec[];
}

// ---------------------------------------------------------------------------------------
// The settings table.

type Kind = "string" | "bool" | "int" | "list" | "enum" | "filters" | "field-filters" | "opaque-list";

interface Setting {
  /** Config-file key and flag name (kebab-case). */
  key: string;
  kind: Kind;
  help: string;
  /** Flag value placeholder in the help text. */
  arg?: string;
  short?: string;
  /** Other flag names accepted for it (older ward spellings). */
  aliases?: string[];
  /** Environment variables, highest precedence first. */
  env?: string[];
  /** No flag (config file only, e.g. sinks). */
  fileOnly?: boolean;
  values?: readonly string[];
  min?: number;
  /** Shown in --help and --print-config when unset. */
  defaultText?: string;
  /**
   * Validates and converts the value after its kind's check (for opaque-list: the whole list).
   * Throws ConfigValueError (with a path into the value for a precise position).
   */
  parse?: (value: unknown) => unknown;
}

const envOf = (key: string, tetragon = false): string[] => {
  const up = key.toUpperCase().replace(/-/g, "_");
  return tetragon ? [`WARD_${up}`, `TETRAGON_${up}`] : [`WARD_${up}`];
};

/**
 * SETTINGS lists every key. To add one: add a row here (kind, env names, help), a field to
 * AgentConfig and a line to buildConfig(). Keys that Tetragon also has use its flag name and
 * accept its TETRAGON_* variable.
 */
export const SETTINGS: Setting[] = [
  { key: "log-level", kind: "enum", values: LOG_LEVELS, env: envOf("log-level", true), arg: "LEVEL", help: "the agent's own diagnostics on stderr: debug, info, warn or error", defaultText: "info" },
  { key: "policy", kind: "list", env: ["WARD_POLICY", "TETRAGON_TRACING_POLICY"], arg: "FILE", help: "load a TracingPolicy file at start (repeatable; comma-separated in the environment)" },
  { key: "policy-dir", kind: "string", env: ["WARD_POLICY_DIR", "TETRAGON_TRACING_POLICY_DIR"], arg: "DIR", help: "load every *.yaml, *.yml and *.json file in DIR at start" },
  { key: "policy-store-dir", kind: "string", env: envOf("policy-store-dir"), arg: "DIR", help: `keep policies added through the API (with their enabled flag and mode) in DIR and apply them again at start; off when unset (deployments use ${DEFAULT_POLICY_STORE_DIR})` },
  { key: "listen", kind: "string", env: envOf("listen"), arg: "HOST:PORT", help: "API address (port 0 picks a free one)", defaultText: `${DEFAULT_HOST}:${DEFAULT_PORT}` },
  { key: "token-file", kind: "string", env: envOf("token-file"), arg: "FILE", help: "API bearer token, created 0600 when missing", defaultText: DEFAULT_TOKEN_FILE },
  { key: "state-file", kind: "string", env: envOf("state-file"), arg: "FILE", help: "where the CLI finds the agent", defaultText: DEFAULT_STATE_FILE },
  { key: "export-filename", kind: "string", aliases: ["export-file"], env: envOf("export-filename", true), arg: "FILE", help: "write events as JSON lines to FILE (rotated) instead of stdout" },
  { key: "export-file-max-size-mb", kind: "int", min: 1, env: envOf("export-file-max-size-mb", true), arg: "N", help: "rotate the export file at N MiB", defaultText: "10" },
  { key: "export-file-max-backups", kind: "int", min: 0, env: envOf("export-file-max-backups", true), arg: "N", help: "rotated export files kept", defaultText: "5" },
  { key: "export-stdout", kind: "bool", env: envOf("export-stdout"), help: "print events to stdout as well as to the export file" },
  { key: "output", kind: "enum", short: "o", values: ["json", "compact"], env: envOf("output"), arg: "json|compact", help: "stdout format", defaultText: "json" },
  { key: "export-allowlist", kind: "filters", env: envOf("export-allowlist", true), arg: "JSON", help: "export only events matching one of these Filter lines (newline-separated JSON)" },
  { key: "export-denylist", kind: "filters", env: envOf("export-denylist", true), arg: "JSON", help: "never export events matching one of these Filter lines" },
  { key: "export-rate-limit", kind: "int", min: -1, env: envOf("export-rate-limit", true), arg: "N", help: "export at most N events a minute (-1 no limit, 0 none); drops are reported by rate_limit_info events", defaultText: "-1" },
  { key: "field-filters", kind: "field-filters", env: envOf("field-filters", true), arg: "JSON", help: "FieldFilter lines applied to exported events (include/exclude fields)" },
  { key: "enable-pid-set-filter", kind: "bool", env: envOf("enable-pid-set-filter", true), help: "allow pid_set in export filters (testing: its descendant cache only grows)" },
  { key: "bpf-dir", kind: "string", env: envOf("bpf-dir", true), arg: "DIR", help: `bpffs directory for pins (a relative name is under ${BPF_ROOT}, as in Tetragon)`, defaultText: DEFAULT_BPF_DIR },
  { key: "keep-sensors-on-exit", kind: "bool", env: envOf("keep-sensors-on-exit", true), help: "pin every applied policy's programs, maps and links under --bpf-dir so they keep enforcing after the agent exits (SIGKILL included); the next agent adopts them; needs --policy-store-dir" },
  { key: "node-name", kind: "string", env: ["WARD_NODE_NAME", "HUBBLE_NODE_NAME", "NODE_NAME"], arg: "NAME", help: "node_name in events, and the node whose pods the Kubernetes pod watch lists", defaultText: "$HUBBLE_NODE_NAME, $NODE_NAME, else the hostname" },
  { key: "enable-k8s-api", kind: "bool", env: envOf("enable-k8s-api", true), help: "watch this node's pods (pod metadata in events, podSelector and namespace scopes) and the TracingPolicy CRs through the Kubernetes API" },
  { key: "k8s-kubeconfig-path", kind: "string", env: envOf("k8s-kubeconfig-path", true), arg: "FILE", help: "reach the API server through this kubeconfig (its current context) instead of the in-cluster service account", defaultText: "in-cluster config" },
  {
    key: "k8s-controlplane-retry",
    kind: "int",
    min: -1,
    env: envOf("k8s-controlplane-retry", true),
    arg: "N",
    help: "attempts to reach the API server at start before the agent refuses to start (-1: retry until it answers)",
    defaultText: "1",
    parse: (v) => {
      if (v === 0) throw new ConfigValueError("0 attempts would never connect; give 1 or more, or -1 to retry until the API server answers");
      return v;
    },
  },
  { key: "enable-tracing-policy-crd", kind: "bool", env: envOf("enable-tracing-policy-crd", true), help: "with --enable-k8s-api, apply the cluster's TracingPolicy and TracingPolicyNamespaced resources (=false: pods only)", defaultText: "true" },
  { key: "sink", kind: "list", env: envOf("sink"), arg: "SPEC", help: "export to SPEC too (repeatable): syslog://HOST:PORT?proto=tcp|udp, syslog:///socket, loki=http://HOST:3100, clickhouse=http://HOST:8123?table=ward_events, file=PATH, stdout", parse: (v) => sinkValue(() => parseSinkFlags(v as string[])) },
  { key: "sinks", kind: "opaque-list", fileOnly: true, help: "export sinks (config file only; the same forms as --sink, or mappings)", parse: (v) => sinkValue(() => parseSinkConfig(v as unknown[], (i) => `sinks[${i}]`)) },
];

const BY_KEY = new Map(SETTINGS.map((s) => [s.key, s]));

/** Flags that are not settings. */
const COMMAND_FLAGS: Record<string, FlagSpec> = {
  config: { kind: "string" },
  "print-config": { kind: "bool" },
  help: { kind: "bool", short: "h" },
};

function flagKind(s: Setting): FlagSpec["kind"] {
  return s.kind === "bool" ? "bool" : s.kind === "list" ? "list" : "string";
}

export const AGENT_FLAGS: Record<string, FlagSpec> = (() => {
  const out: Record<string, FlagSpec> = { ...COMMAND_FLAGS };
  for (const s of SETTINGS) {
    if (s.fileOnly) continue;
    out[s.key] = { kind: flagKind(s), ...(s.short ? { short: s.short } : {}) };
    for (const a of s.aliases ?? []) out[a] = { kind: flagKind(s) };
  }
  return out;
})();

function usageLine(s: Setting): string {
  const name = `${s.short ? `-${s.short}, ` : ""}--${s.key}${s.arg ? ` ${s.arg}` : ""}`;
  const extra = [s.defaultText ? `default ${s.defaultText}` : "", s.env?.length ? `env ${s.env.join(", ")}` : ""].filter(Boolean).join("; ");
  return `  ${name.padEnd(34)} ${s.help}${extra ? ` (${extra})` : ""}`;
}

export const AGENT_USAGE = `usage: ward agent [--config FILE] [--print-config] [flags]

Runs the agent in the foreground. With no flags it runs the default set (process lifecycle
observability, no enforcement) and prints events as JSON lines to stdout.

Settings come from the flags, then the environment, then the config file, then the defaults
(the first that sets a key wins). The config file is YAML; its keys are the flag names.

  --config FILE                      read settings from a YAML file (env WARD_CONFIG)
  --print-config                     print the effective configuration as YAML and exit
${SETTINGS.filter((s) => !s.fileOnly).map(usageLine).join("\n")}
  --export-file FILE                 same as --export-filename
`;

// ---------------------------------------------------------------------------------------
// Values and where they came from.

/** Where a raw value came from, for error messages. */
type Origin = { kind: "flag"; flag: string } | { kind: "env"; name: string } | { kind: "file"; file: string; line: number; col: number };

interface Raw {
  value: unknown;
  origin: Origin;
  /** Position of a node inside the value (config file only), for errors deep in a section. */
  locate?: (path: readonly (string | number)[]) => Origin | undefined;
}

/**
 * ConfigValueError: what a setting's `parse` hook throws for a bad value. `path` points inside
 * the value (e.g. [0, "address"] in a list of sinks) so a config-file error gets that node's
 * line and column.
 */
/** A sink spec error as a ConfigValueError, so it points at the flag or the YAML node. */
function sinkValue<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof SinkConfigError) throw new ConfigValueError(err.detail, err.path);
    throw err;
  }
}

export class ConfigValueError extends Error {
  override name = "ConfigValueError";
  constructor(
    message: string,
    readonly path: readonly (string | number)[] = [],
  ) {
    super(message);
  }
}

/** ConfigError: one or more bad settings, each `where: key: message`. A UsageError (exit 2). */
export class ConfigError extends UsageError {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

function where(o: Origin): string {
  if (o.kind === "flag") return `ward agent: --${o.flag}`;
  if (o.kind === "env") return `ward agent: $${o.name}`;
  return `${o.file}:${o.line}:${o.col}`;
}

class Problems {
  readonly #items: { text: string; line: number; col: number }[] = [];
  add(o: Origin, key: string, msg: string): void {
    // Flags and variables already name the key; the file position needs it spelled out.
    this.#items.push(o.kind === "file" ? { text: `${where(o)}: ${key}: ${msg}`, line: o.line, col: o.col } : { text: `${where(o)}: ${msg}`, line: Infinity, col: 0 });
  }
  raw(text: string, line = Infinity, col = 0): void {
    this.#items.push({ text, line, col });
  }
  /** In file order first (as a reader goes through the file), then the rest as found. */
  get list(): string[] {
    return [...this.#items].sort((a, b) => a.line - b.line || a.col - b.col).map((i) => i.text);
  }
}

const show = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

/** decode turns one raw value into its typed form, or adds a problem and returns undefined. */
function decode(s: Setting, raw: Raw, p: Problems, ctx: { pidSet: boolean }): unknown {
  const { value: v, origin } = raw;
  const bad = (msg: string) => {
    p.add(origin, s.key, msg);
    return undefined;
  };
  const fromText = origin.kind !== "file";
  switch (s.kind) {
    case "string": {
      if (typeof v !== "string") return bad(`${show(v)} is not a string`);
      if (v.trim() === "") return bad("needs a non-empty value");
      return v;
    }
    case "bool": {
      if (typeof v === "boolean") return v;
      if (typeof v === "string" && /^(true|1)$/i.test(v)) return true;
      if (typeof v === "string" && /^(false|0)$/i.test(v)) return false;
      return bad(`${show(v)} is not true or false`);
    }
    case "int": {
      const n = typeof v === "number" ? v : typeof v === "string" && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n)) return bad(`${show(v)} is not an integer`);
      if (s.min !== undefined && n < s.min) return bad(`${show(v)} is below the minimum ${s.min}`);
      return n;
    }
    case "enum": {
      if (typeof v !== "string" || !s.values!.includes(v)) return bad(`must be ${s.values!.slice(0, -1).join(", ")} or ${s.values!.at(-1)}, not ${show(v)}`);
      return v;
    }
    case "list": {
      let items: unknown[];
      if (Array.isArray(v)) items = v;
      else if (typeof v === "string" && fromText) items = v.split(",");
      else if (typeof v === "string") items = [v];
      else return bad(`${show(v)} is not a list of strings`);
      const out: string[] = [];
      for (const x of items) {
        if (typeof x !== "string" || x.trim() === "") return bad(`${show(x)} is not a non-empty string`);
        out.push(fromText ? x.trim() : x);
      }
      return out;
    }
    case "filters":
    case "field-filters": {
      const parseObj = s.kind === "filters" ? (o: unknown) => parseFilterObject(o, { pidSet: ctx.pidSet }) : parseFieldFilterObject;
      const parseLines = s.kind === "filters" ? (t: string) => parseFilterLines(t, { pidSet: ctx.pidSet }) : parseFieldFilterLines;
      // Tetragon's form is one string of JSON lines; a config file may also give a YAML list.
      try {
        if (typeof v === "string") return parseLines(v);
        if (Array.isArray(v)) {
          return v.map((o, i) => {
            try {
              return parseObj(o);
            } catch (err) {
              if (err instanceof FilterError) throw new FilterLineError(i + 1, err.field, err.message);
              throw err;
            }
          });
        }
      } catch (err) {
        if (err instanceof FilterLineError) {
          const item = typeof v === "string" ? `line ${err.line}` : `item ${err.line}`;
          return bad(`${item}${err.field ? `, field ${err.field}` : ""}: ${err.message}`);
        }
        throw err;
      }
      return bad(`${show(v)} is not JSON filter lines`);
    }
    case "opaque-list":
      if (!Array.isArray(v)) return bad(`${show(v)} is not a list`);
      return v;
  }
}

/** decodeSetting runs the kind's check, then the setting's own parse hook. */
function decodeSetting(s: Setting, raw: Raw, p: Problems, ctx: { pidSet: boolean }): unknown {
  const v = decode(s, raw, p, ctx);
  if (v === undefined || s.parse === undefined) return v;
  try {
    return s.parse(v);
  } catch (err) {
    if (!(err instanceof ConfigValueError)) throw err;
    const at = (err.path.length > 0 ? raw.locate?.(err.path) : undefined) ?? raw.origin;
    const inner = err.path.length > 0 ? `${err.path.map((x) => (typeof x === "number" ? `[${x}]` : `.${x}`)).join("").replace(/^\./, "")}: ` : "";
    p.add(at, s.key, `${inner}${err.message}`);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Sources.

/** Reads the config file's text; parseAgentConfig is given one so tests stay in memory. */
export type ConfigReader = (path: string) => string;

const defaultReader: ConfigReader = (path) => readFileSync(path, "utf8");

/** A YAML node's toJS value with the position of its start. */
function fileRaws(file: string, text: string, p: Problems): Map<string, Raw> {
  const out = new Map<string, Raw>();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const pos = (offset: number): Origin => {
    const { line, col } = lc.linePos(offset);
    return { kind: "file", file, line, col };
  };
  const fileProblem = (offset: number, msg: string) => {
    const o = pos(offset) as Extract<Origin, { kind: "file" }>;
    p.raw(`${where(o)}: ${msg}`, o.line, o.col);
  };
  for (const e of doc.errors) fileProblem(e.pos[0], e.message.split("\n")[0]!);
  if (doc.errors.length > 0) return out;
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ""))) return out;
  if (!isMap(root)) {
    fileProblem((root as YamlNode).range?.[0] ?? 0, "the config file must be a mapping of keys to values");
    return out;
  }
  for (const item of root.items) {
    const keyNode = item.key as YamlNode | null;
    const at = keyNode?.range?.[0] ?? 0;
    if (!isScalar(keyNode) || typeof keyNode.value !== "string") {
      fileProblem(at, "keys must be strings");
      continue;
    }
    const key = keyNode.value;
    const setting = BY_KEY.get(key);
    if (setting === undefined) {
      const alias = SETTINGS.find((s) => s.aliases?.includes(key));
      fileProblem(at, alias ? `unknown key "${key}" (use "${alias.key}")` : `unknown key "${key}" (known: ${SETTINGS.map((s) => s.key).join(", ")})`);
      continue;
    }
    const valueNode = item.value as YamlNode | null;
    const value = valueNode === null ? null : isScalar(valueNode) || isSeq(valueNode) || isMap(valueNode) ? valueNode.toJS(doc) : null;
    out.set(key, {
      value,
      origin: pos(valueNode?.range?.[0] ?? at),
      locate: (path) => {
        const n = isMap(valueNode) || isSeq(valueNode) ? (valueNode.getIn(path, true) as YamlNode | undefined) : undefined;
        return n?.range ? pos(n.range[0]) : undefined;
      },
    });
  }
  return out;
}

function envRaws(env: NodeJS.ProcessEnv): Map<string, Raw> {
  const out = new Map<string, Raw>();
  for (const s of SETTINGS) {
    for (const name of s.env ?? []) {
      const v = env[name];
      // An empty variable is "not set" (so `NODE_NAME= ward agent` falls through).
      if (v === undefined || v === "") continue;
      out.set(s.key, { value: v, origin: { kind: "env", name } });
      break;
    }
  }
  return out;
}

function flagRaws(flags: Record<string, string | boolean | string[] | undefined>, p: Problems): Map<string, Raw> {
  const out = new Map<string, Raw>();
  for (const s of SETTINGS) {
    const given = [s.key, ...(s.aliases ?? [])].filter((n) => flags[n] !== undefined);
    if (given.length > 1) p.raw(`ward agent: --${given[0]} and --${given[1]} set the same thing; give one`);
    const name = given[0];
    if (name === undefined) continue;
    out.set(s.key, { value: flags[name], origin: { kind: "flag", flag: name } });
  }
  return out;
}

/** parseListen reads HOST:PORT ([v6]:PORT for IPv6); throws UsageError naming the flag. */
export function parseListen(value: string): ListenAddress {
  const r = listenOrError(value);
  if (typeof r === "string") throw new UsageError(`ward agent: --listen "${value}": ${r}`);
  return r;
}

function listenOrError(value: string): ListenAddress | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return `want HOST:PORT (e.g. ${DEFAULT_HOST}:${DEFAULT_PORT}, [::1]:${DEFAULT_PORT})`;
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range`;
  if (m[1] !== undefined && isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  return { host, port };
}

/** isLoopback: only these hosts keep the API off the network. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The base URL a client uses for an address (wildcards are reached through loopback). */
export function listenUrl(addr: ListenAddress): string {
  let host = addr.host;
  if (host === "0.0.0.0") host = "127.0.0.1";
  if (host === "::") host = "::1";
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${addr.port}`;
}

/**
 * parseAgentConfig returns the config, or "help"; throws UsageError for bad flags and
 * ConfigError (a UsageError) listing every bad setting. It reads nothing but the config
 * file, through `read`.
 */
export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, read: ConfigReader = defaultReader): AgentConfig | "help" {
  const { flags, positionals } = parseArgs("agent", argv, AGENT_FLAGS);
  if (flags.help) return "help";
  if (positionals.length > 0) throw new UsageError(`ward agent: unexpected argument "${positionals[0]}" (policies go after --policy)`);
  const p = new Problems();

  const configFile = typeof flags.config === "string" ? flags.config : env.WARD_CONFIG || undefined;
  if (configFile !== undefined && configFile.trim() === "") throw new UsageError("ward agent: --config needs a non-empty value");
  let fromFile = new Map<string, Raw>();
  if (configFile !== undefined) {
    let text: string;
    try {
      text = read(configFile);
    } catch (err) {
      throw new ConfigError([`ward agent: --config ${configFile}: ${(err as Error).message}`]);
    }
    fromFile = fileRaws(configFile, text, p);
  }
  const fromEnv = envRaws(env);
  const fromFlags = flagRaws(flags, p);

  // enable-pid-set-filter decides whether filters may use pid_set, so it is resolved first.
  const pick = (key: string): Raw | undefined => fromFlags.get(key) ?? fromEnv.get(key) ?? fromFile.get(key);
  const values = new Map<string, unknown>();
  const origins = new Map<string, Origin>();
  const pidRaw = pick("enable-pid-set-filter");
  const pidSet = pidRaw ? decodeSetting(BY_KEY.get("enable-pid-set-filter")!, pidRaw, p, { pidSet: false }) === true : false;

  if (pidRaw) {
    values.set("enable-pid-set-filter", pidSet);
    origins.set("enable-pid-set-filter", pidRaw.origin);
  }
  for (const s of SETTINGS) {
    const raw = pick(s.key);
    if (raw === undefined || s.key === "enable-pid-set-filter") continue;
    const v = decodeSetting(s, raw, p, { pidSet });
    if (v !== undefined) {
      values.set(s.key, v);
      origins.set(s.key, raw.origin);
    }
  }
  const config = buildConfig(values, origins, p, { configFile, printConfig: flags["print-config"] === true });
  if (p.list.length > 0) throw new ConfigError(p.list);
  return config;
}

function buildConfig(
  values: Map<string, unknown>,
  origins: Map<string, Origin>,
  p: Problems,
  extra: { configFile?: string; printConfig: boolean },
): AgentConfig {
  const get = <T>(key: string): T | undefined => values.get(key) as T | undefined;
  let listen: ListenAddress = { host: DEFAULT_HOST, port: DEFAULT_PORT };
  const listenText = get<string>("listen");
  if (listenText !== undefined) {
    const r = listenOrError(listenText);
    if (typeof r === "string") p.add(origins.get("listen")!, "listen", `${show(listenText)}: ${r}`);
    else listen = r;
  }
  const exportFile = get<string>("export-filename");
  // --sink flags replace the config file's list, as every flag overrides its file setting.
  const sinks = get<SinkSpec[]>("sink") ?? get<SinkSpec[]>("sinks") ?? [];
  let bpfDir = get<string>("bpf-dir") ?? DEFAULT_BPF_DIR;
  // The Kubernetes settings only mean something with the API enabled; one given without it
  // is a mistake (the agent would run without the pod watch the user thinks it has).
  const enableK8sApi = get<boolean>("enable-k8s-api") ?? false;
  const k8sKubeconfigPath = get<string>("k8s-kubeconfig-path");
  if (!enableK8sApi) {
    for (const key of ["k8s-kubeconfig-path", "k8s-controlplane-retry"]) {
      const o = origins.get(key);
      if (o !== undefined) p.add(o, key, "has no effect without enable-k8s-api; enable the Kubernetes API or drop it");
    }
  }
  // TracingPolicy CRs are applied from the API server, not the policy store, so a restarted
  // agent could not tell a pinned CR policy that is still wanted from one deleted while it was
  // down (it would adopt and enforce a deleted policy, or drop a wanted one).
  if (get<boolean>("keep-sensors-on-exit") === true && enableK8sApi && (get<boolean>("enable-tracing-policy-crd") ?? true)) {
    p.add(
      origins.get("keep-sensors-on-exit")!,
      "keep-sensors-on-exit",
      "cannot be used with enable-k8s-api while TracingPolicy CRs are applied: CR policies are not in the policy store, so a restarted agent could not tell which pinned ones are still wanted; set enable-tracing-policy-crd=false (pods only) or drop one of the two",
    );
  }
  if (!isAbsolute(bpfDir)) bpfDir = join(BPF_ROOT, bpfDir);
  return {
    ...(extra.configFile !== undefined ? { configFile: extra.configFile } : {}),
    printConfig: extra.printConfig,
    logLevel: get<LogLevel>("log-level") ?? "info",
    policyFiles: get<string[]>("policy") ?? [],
    policyDir: get<string>("policy-dir"),
    policyStoreDir: get<string>("policy-store-dir"),
    listen,
    tokenFile: get<string>("token-file") ?? DEFAULT_TOKEN_FILE,
    stateFile: get<string>("state-file") ?? DEFAULT_STATE_FILE,
    exportFile,
    exportFileMaxSizeMb: get<number>("export-file-max-size-mb") ?? 10,
    exportFileMaxBackups: get<number>("export-file-max-backups") ?? 5,
    exportStdout: (exportFile === undefined && sinks.length === 0) || get<boolean>("export-stdout") === true,
    output: get<OutputFormat>("output") ?? "json",
    exportAllowlist: get<TetragonFilter[]>("export-allowlist") ?? [],
    exportDenylist: get<TetragonFilter[]>("export-denylist") ?? [],
    exportRateLimit: get<number>("export-rate-limit") ?? -1,
    fieldFilters: get<FieldFilterSpec[]>("field-filters") ?? [],
    enablePidSetFilter: get<boolean>("enable-pid-set-filter") ?? false,
    bpfDir,
    keepSensorsOnExit: get<boolean>("keep-sensors-on-exit") ?? false,
    nodeName: get<string>("node-name") ?? hostname(),
    enableK8sApi,
    ...(k8sKubeconfigPath !== undefined ? { k8sKubeconfigPath } : {}),
    k8sControlplaneRetry: get<number>("k8s-controlplane-retry") ?? 1,
    enableTracingPolicyCrd: get<boolean>("enable-tracing-policy-crd") ?? true,
    sinks,
  };
}

/**
 * formatConfig renders the effective configuration as YAML in the config file's own keys, so
 * `ward agent --print-config > ward.yaml` gives a file the agent reads back to the same result.
 */
export function formatConfig(c: AgentConfig): string {
  const o: Record<string, unknown> = {
    "log-level": c.logLevel,
    policy: c.policyFiles,
    ...(c.policyDir !== undefined ? { "policy-dir": c.policyDir } : {}),
    ...(c.policyStoreDir !== undefined ? { "policy-store-dir": c.policyStoreDir } : {}),
    listen: c.listen.host.includes(":") ? `[${c.listen.host}]:${c.listen.port}` : `${c.listen.host}:${c.listen.port}`,
    "token-file": c.tokenFile,
    "state-file": c.stateFile,
    ...(c.exportFile !== undefined ? { "export-filename": c.exportFile } : {}),
    "export-file-max-size-mb": c.exportFileMaxSizeMb,
    "export-file-max-backups": c.exportFileMaxBackups,
    "export-stdout": c.exportStdout,
    output: c.output,
    "export-allowlist": c.exportAllowlist,
    "export-denylist": c.exportDenylist,
    "export-rate-limit": c.exportRateLimit,
    "field-filters": c.fieldFilters,
    "enable-pid-set-filter": c.enablePidSetFilter,
    "bpf-dir": c.bpfDir,
    "keep-sensors-on-exit": c.keepSensorsOnExit,
    "node-name": c.nodeName,
    "enable-k8s-api": c.enableK8sApi,
    // The other Kubernetes keys are errors without it (so the printed file reads back).
    ...(c.enableK8sApi
      ? {
          ...(c.k8sKubeconfigPath !== undefined ? { "k8s-kubeconfig-path": c.k8sKubeconfigPath } : {}),
          "k8s-controlplane-retry": c.k8sControlplaneRetry,
          "enable-tracing-policy-crd": c.enableTracingPolicyCrd,
        }
      : {}),
    sinks: c.sinks.map(formatSinkSpec),
  };
  const head = c.configFile !== undefined ? `# effective configuration (config file ${c.configFile}, then environment, then flags)\n` : "# effective configuration (defaults, environment, flags)\n";
  return head + stringify(o, { lineWidth: 0 });
}
