// `ward oci-hook`: the OCI runtime hook (createRuntime to report a container, poststop to
// forget it; the stage is the state's status). The agent is found as every CLI command finds
// it: --server (else the state file), the token from --token-file, WARD_TOKEN_FILE, the state
// file's token file or the default one. See src/workloads/oci-hook.ts.
import { appendFileSync } from "node:fs";
import { parseArgs, UsageError } from "../args.ts";
import { resolveEndpoint } from "../client.ts";
import { runOciHook, type FailMode } from "../../workloads/oci-hook.ts";

const USAGE = `usage: ward [--server URL] oci-hook [--timeout DURATION] [--fail-mode open|closed] [--token-file FILE] [--state-file FILE]

Reads the OCI state on stdin (as a createRuntime or poststop hook). createRuntime: reports the
container's cgroup and Kubernetes annotations to the agent and waits until its policy scopes
hold in the kernel. poststop: tells the agent to forget the container.

  --timeout DURATION        bound on the whole hook (default 5s; "500ms", "5s", or seconds)
  --fail-mode open|closed   agent unreachable, slow or refusing: closed (default) exits 1 and
                            the runtime does not start the container; open logs and exits 0
  --server URL              the agent's API (default: from the agent's state file)
  --token-file FILE         the API token (default: the state file's token file)
  --state-file FILE         the agent's state file (default /run/ward/state.json)
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

export async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("oci-hook", argv, {
    timeout: { kind: "string" },
    "fail-mode": { kind: "string" },
    server: { kind: "string" },
    "token-file": { kind: "string" },
    "state-file": { kind: "string" },
    "log-file": { kind: "string" },
    help: { kind: "bool", short: "h" },
  });
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`ward oci-hook: unexpected argument "${positionals[0]}" (the OCI state comes on stdin)\n${USAGE}`);
  const failMode = (flags["fail-mode"] as string | undefined) ?? "closed";
  if (failMode !== "open" && failMode !== "closed") throw new UsageError(`ward oci-hook: --fail-mode must be open or closed, not ${JSON.stringify(failMode)}`);
  const timeoutMs = flags.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(flags.timeout as string, "--timeout");
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (flags.server !== undefined) env.WARD_SERVER = flags.server as string;
  if (flags["token-file"] !== undefined) env.WARD_TOKEN_FILE = flags["token-file"] as string;
  if (flags["state-file"] !== undefined) env.WARD_STATE_FILE = flags["state-file"] as string;
  const logFile = flags["log-file"] as string | undefined;
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
    timeoutMs,
    failMode: failMode as FailMode,
    log: (msg) => {
      process.stderr.write(`${msg}\n`);
      toFile(msg);
    },
    info: toFile,
  });
}
