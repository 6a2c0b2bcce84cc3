// AgentConfig: the agent's settings, from its command line. Parsing is pure (no files are
// touched) so every flag error is reported before anything starts.
import { hostname } from "node:os";
import { isIP } from "node:net";
import { parseArgs, UsageError, type FlagSpec } from "../cli/args.ts";
import { parseSinkFlags, SinkConfigError, type SinkSpec } from "../export/sink-spec.ts";
import { DEFAULT_STATE_FILE, DEFAULT_TOKEN_FILE } from "./state-file.ts";

/** Default API port. Same number as Tetragon's gRPC default; one of them must move if both run. */
export const DEFAULT_PORT = 54321;
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_BPF_DIR = "/sys/fs/bpf/ward";

export type OutputFormat = "json" | "compact";

export interface ListenAddress {
  host: string;
  port: number;
}

export interface AgentConfig {
  policyFiles: string[];
  policyDir?: string;
  listen: ListenAddress;
  tokenFile: string;
  stateFile: string;
  exportFile?: string;
  /** Print events to stdout; on by default when no --export-file or --sink is given. */
  exportStdout: boolean;
  /** --sink flags (src/export/sink-spec.ts), in order. */
  sinks: SinkSpec[];
  output: OutputFormat;
  bpfDir: string;
  keepSensorsOnExit: boolean;
  nodeName: string;
}

export const AGENT_FLAGS: Record<string, FlagSpec> = {
  policy: { kind: "list" },
  "policy-dir": { kind: "string" },
  listen: { kind: "string" },
  "token-file": { kind: "string" },
  "state-file": { kind: "string" },
  "export-file": { kind: "string" },
  "export-stdout": { kind: "bool" },
  sink: { kind: "list" },
  output: { kind: "string", short: "o" },
  "bpf-dir": { kind: "string" },
  "keep-sensors-on-exit": { kind: "bool" },
  "node-name": { kind: "string" },
  help: { kind: "bool", short: "h" },
};

export const AGENT_USAGE = `usage: ward agent [flags]

Runs the agent in the foreground. With no flags it runs the default set (process lifecycle
observability, no enforcement) and prints events as JSON lines to stdout.

  --policy FILE            load a TracingPolicy file at start (repeatable)
  --policy-dir DIR         load every *.yaml, *.yml and *.json file in DIR at start
  --listen HOST:PORT       API address (default ${DEFAULT_HOST}:${DEFAULT_PORT}; port 0 picks a free one)
  --token-file FILE        API bearer token, created 0600 when missing (default ${DEFAULT_TOKEN_FILE})
  --state-file FILE        where the CLI finds the agent (default ${DEFAULT_STATE_FILE}, or $WARD_STATE_FILE)
  --export-file FILE       write events as JSON lines to FILE (rotated) instead of stdout
  --export-stdout          print events to stdout as well as to --export-file or --sink
  --sink SPEC              also export to SPEC (repeatable): syslog://HOST:PORT?proto=tcp|udp,
                           syslog:///path/to/socket, loki=http://HOST:3100,
                           clickhouse=http://HOST:8123?table=ward_events, file=PATH, stdout
  -o, --output json|compact  stdout format (default json)
  --bpf-dir DIR            bpffs directory for pins (default ${DEFAULT_BPF_DIR})
  --keep-sensors-on-exit   leave pinned programs attached when the agent exits (not supported yet: refused)
  --node-name NAME         node_name in events (default $NODE_NAME, else the hostname)
`;

/** parseListen reads HOST:PORT ([v6]:PORT for IPv6); throws UsageError naming the flag. */
export function parseListen(value: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) throw new UsageError(`ward agent: --listen "${value}": want HOST:PORT (e.g. ${DEFAULT_HOST}:${DEFAULT_PORT}, [::1]:${DEFAULT_PORT})`);
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`ward agent: --listen "${value}": port ${port} is out of range`);
  if (m[1] !== undefined && isIP(host) !== 6) throw new UsageError(`ward agent: --listen "${value}": "${host}" is not an IPv6 address`);
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

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function nonEmpty(flag: string, v: string | undefined): string | undefined {
  if (v !== undefined && v.trim() === "") throw new UsageError(`ward agent: --${flag} needs a non-empty value`);
  return v;
}

/** parseAgentConfig returns the config, or "help"; throws UsageError for bad flags. */
export function parseAgentConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig | "help" {
  const { flags, positionals } = parseArgs("agent", argv, AGENT_FLAGS);
  if (flags.help) return "help";
  if (positionals.length > 0) throw new UsageError(`ward agent: unexpected argument "${positionals[0]}" (policies go after --policy)`);
  const output = str(flags.output) ?? "json";
  if (output !== "json" && output !== "compact") throw new UsageError(`ward agent: -o must be json or compact, not "${output}"`);
  const exportFile = nonEmpty("export-file", str(flags["export-file"]));
  const policyFiles = Array.isArray(flags.policy) ? flags.policy : [];
  let sinks: SinkSpec[];
  try {
    sinks = parseSinkFlags(Array.isArray(flags.sink) ? flags.sink : []);
  } catch (err) {
    if (err instanceof SinkConfigError) throw new UsageError(`ward agent: ${err.message}`);
    throw err;
  }
  for (const p of policyFiles) nonEmpty("policy", p);
  return {
    policyFiles,
    policyDir: nonEmpty("policy-dir", str(flags["policy-dir"])),
    listen: parseListen(str(flags.listen) ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`),
    tokenFile: nonEmpty("token-file", str(flags["token-file"])) ?? DEFAULT_TOKEN_FILE,
    stateFile: nonEmpty("state-file", str(flags["state-file"])) ?? (env.WARD_STATE_FILE || DEFAULT_STATE_FILE),
    exportFile,
    exportStdout: (exportFile === undefined && sinks.length === 0) || flags["export-stdout"] === true,
    sinks,
    output,
    bpfDir: nonEmpty("bpf-dir", str(flags["bpf-dir"])) ?? DEFAULT_BPF_DIR,
    keepSensorsOnExit: flags["keep-sensors-on-exit"] === true,
    nodeName: nonEmpty("node-name", str(flags["node-name"])) ?? (env.NODE_NAME || hostname()),
  };
}
