// `ward oci-hook`: the OCI runtime hook (createRuntime to report a container, poststop to
// forget it; the stage is the state's status). The agent is found as every CLI command finds
// it: --server (else the state file), the token from --token-file, WARD_TOKEN_FILE, the state
// file's token file or the default one. See src/workloads/oci-hook.ts.
import { appendFileSync } from "node:fs";
import { parseArgs, UsageError } from "../args.ts";
import { resolveEndpoint } from "../client.ts";
import { runOciHook, type FailMode } from "../../workloads/oci-hook.ts";

const USAGE = `usage: ward [--server URL] oci-hook [--timeout DURATION] [--fail-mode open|closed] [--fail-allow-namespace NS]...
                                   [--token-file FILE] [--state-file FILE] [--log-file FILE]

Reads the OCI state on stdin (as a createRuntime or poststop hook). createRuntime: reports the
container's cgroup and Kubernetes annotations to the agent and waits until its policy scopes
hold in the kernel. poststop: tells the agent to forget the container.

  --timeout DURATION        bound on the whole hook (default 5s; "500ms", "5s", or seconds)
  --fail-mode open|closed   agent unreachable, slow or refusing: closed (default) exits 1 and
                            the runtime does not start the container; open logs and exits 0
  --fail-allow-namespace NS pods of namespace NS start even when failing closed (repeat; put
                            the agent's own namespace here, or a down agent cannot restart)
  --server URL              the agent's API (default: from the agent's state file)
  --token-file FILE         the API token (default: the state file's token file)
  --state-file FILE         the agent's state file (default /run/ward/agent.json)
  --log-file FILE           also append every outcome (successes too) to FILE: runtimes show
                            a hook's stderr only when it fails, so --fail-mode open is silent
`;

export const DEFAULT_TIMEOUT_MS = 5000;

/** "500ms", "5s", "1.5s", "2m" or a number of seconds -> ms. */
export function parseDuration(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new UsageError(`ward oci-hook: ${flag} must be a duration like 500ms, 5s or 2m, not ${JSON.stringify(v)}`);
  const n = Number(m[1]);
  const ms = m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
  if (ms <= 0 || ms > 10 * 60_000) throw new UsageError(`ward oci-hook: ${flag} must be above 0 and at most 10m, not ${JSON.stringify(v)}`);
  return Math.round(ms);
}

export interface OciHookArgs {
  help: boolean;
  failMode: FailMode;
  timeoutMs: number;
  failAllowNamespaces: string[];
  server?: string;
  tokenFile?: string;
  stateFile?: string;
  logFile?: string;
}

/** The flags, checked (exported for deploy/'s hook configs, which the unit tests parse with it). */
export function parseOciHookArgs(argv: string[]): OciHookArgs {
  const { flags, positionals } = parseArgs("oci-hook", argv, {
    timeout: { kind: "string" },
    "fail-mode": { kind: "string" },
    "fail-allow-namespace": { kind: "list" },
    server: { kind: "string" },
    "token-file": { kind: "string" },
    "state-file": { kind: "string" },
    "log-file": { kind: "string" },
    help: { kind: "bool", short: "h" },
  });
  if (positionals.length > 0) throw new UsageError(`ward oci-hook: unexpected argument "${positionals[0]}" (the OCI state comes on stdin)\n${USAGE}`);
  const failMode = (flags["fail-mode"] as string | undefined) ?? "closed";
  if (failMode !== "open" && failMode !== "closed") throw new UsageError(`ward oci-hook: --fail-mode must be open or closed, not ${JSON.stringify(failMode)}`);
  const out: OciHookArgs = {
    help: flags.help === true,
    failMode,
    timeoutMs: flags.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(flags.timeout as string, "--timeout"),
    failAllowNamespaces: (flags["fail-allow-namespace"] as string[] | undefined) ?? [],
  };
  for (const ns of out.failAllowNamespaces) {
    // A Kubernetes namespace name is a DNS label (RFC 1123).
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(ns)) throw new UsageError(`ward oci-hook: --fail-allow-namespace ${JSON.stringify(ns)} is not a Kubernetes namespace name`);
  }
  if (flags.server !== undefined) out.server = flags.server as string;
  if (flags["token-file"] !== undefined) out.tokenFile = flags["token-file"] as string;
  if (flags["state-file"] !== undefined) out.stateFile = flags["state-file"] as string;
  if (flags["log-file"] !== undefined) out.logFile = flags["log-file"] as string;
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseOciHookArgs(argv);
  if (a.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (a.server !== undefined) env.WARD_SERVER = a.server;
  if (a.tokenFile !== undefined) env.WARD_TOKEN_FILE = a.tokenFile;
  if (a.stateFile !== undefined) env.WARD_STATE_FILE = a.stateFile;
  const logFile = a.logFile;
  const toFile = (msg: string): void => {
    if (logFile === undefined) return;
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${msg}\n`);
    } catch (err) {
      process.stderr.write(`ward oci-hook: --log-file ${logFile}: ${(err as Error).message}\n`);
    }
  };
  return runOciHook(Bun.stdin.text(), {
    endpoint: () => resolveEndpoint(env),
    timeoutMs: a.timeoutMs,
    failMode: a.failMode,
    failAllowNamespaces: a.failAllowNamespaces,
    log: (msg) => {
      process.stderr.write(`${msg}\n`);
      toFile(msg);
    },
    info: toFile,
  });
}
