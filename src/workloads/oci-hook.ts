// `ward oci-hook`: run by an OCI runtime as a createRuntime hook (and poststop). At
// createRuntime the container's init process exists in its cgroup but has not run the
// container's first instruction yet; the runtime waits for the hook. The hook finds the
// container's cgroup v2 directory and id, reads its Kubernetes identity from the
// annotations, and reports it to the agent (PUT /v1/workloads/:id), which answers once every
// matching scope holds it in the kernel. Only then does the hook exit 0 and the container run.
// At poststop it tells the agent to forget the container.
//
// Anything that keeps the hook from confirming (agent unreachable, slow, refusing, the
// container's cgroup not found) follows the fail mode: closed exits 1 so the runtime refuses
// to start the container; open says so on stderr and exits 0.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupIdOf, cgroupV2Mount, parseCgroupPath, parseProcCgroup, type Runtime } from "./cgroup-identity.ts";
import { cgroupsPathToV2, kubeIdentityOf, OciInputError, parseOciConfig, parseOciState, type OciState } from "./oci-spec.ts";
import type { WorkloadReport } from "./report.ts";

export type FailMode = "open" | "closed";

export interface HookEndpoint {
  url: string;
  token: string;
}

export interface OciHookOptions {
  /** Finds the agent (state file, --server, --token-file); throws when there is none. */
  endpoint(): HookEndpoint;
  /** The whole hook is bounded by this, from reading the input to the agent's answer. */
  timeoutMs: number;
  failMode: FailMode;
  /**
   * Pods in these namespaces start even when the hook fails closed: the agent's own pods (a
   * DaemonSet in namespace ward) must start while the agent is down, or it never comes back.
   */
  failAllowNamespaces?: readonly string[];
  /** For tests: where /proc and the cgroup v2 root are. */
  procRoot?: string;
  v2Root?: string;
  /** Failures: stderr (the runtime shows it when the hook fails) and the log file. */
  log(msg: string): void;
  /** Successes, for the log file only: a runtime may treat a hook's chatter as noise. */
  info?(msg: string): void;
}

/** A failure to confirm the container's scopes; `where` says which step. */
export class OciHookError extends Error {
  override name = "OciHookError";
  constructor(
    readonly step: "input" | "cgroup" | "agent" | "timeout",
    message: string,
  ) {
    super(message);
  }
}

/** The v2 cgroup path of a process from /proc/PID/cgroup ("0::/path"), or undefined. */
function v2PathOf(procRoot: string, pid: number | "self"): string | undefined {
  const file = join(procRoot, String(pid), "cgroup");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new OciHookError("cgroup", `read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (the container's init process is gone?)`);
  }
  return parseProcCgroup(text).find((l) => l.hierarchy === 0 && l.controllers.length === 0)?.path;
}

export interface ContainerCgroup {
  path: string;
  id: bigint;
  /** How the path was found. */
  from: "proc" | "config";
}

/**
 * The container's cgroup v2 directory: from /proc/<state.pid>/cgroup (where the runtime
 * really put the process), else from config.json's linux.cgroupsPath. A process whose v2
 * cgroup is the hook's own (the runtime placed the container only in v1 hierarchies) or the
 * root has no cgroup of its own to scope: refused, since scoping it would scope its parent.
 */
export function containerCgroup(state: OciState, cgroupsPath: string | undefined, opts: { procRoot?: string; v2Root?: string } = {}): ContainerCgroup {
  const procRoot = opts.procRoot ?? "/proc";
  const root = opts.v2Root ?? cgroupV2Mount();
  if (root === undefined) throw new OciHookError("cgroup", "no cgroup v2 hierarchy is mounted (/proc/self/mountinfo has no cgroup2 mount of /); scopes filter on cgroup v2 ids");
  let path: string | undefined;
  let from: ContainerCgroup["from"] = "proc";
  if (state.pid !== undefined) {
    path = v2PathOf(procRoot, state.pid);
    if (path === undefined) throw new OciHookError("cgroup", `${procRoot}/${state.pid}/cgroup has no cgroup v2 line (0::)`);
    const own = v2PathOf(procRoot, "self");
    if (path === "/" || path === own) {
      throw new OciHookError("cgroup", `container init (pid ${state.pid}) is in cgroup v2 ${path}, the runtime's own or the root: the runtime gave it no v2 cgroup of its own (hybrid host with a v1-only runtime?), so no scope can tell it apart`);
    }
  } else if (cgroupsPath !== undefined) {
    from = "config";
    path = cgroupsPathToV2(cgroupsPath);
    if (path === undefined) throw new OciHookError("cgroup", `state has no pid and config.json linux.cgroupsPath ${JSON.stringify(cgroupsPath)} is relative (resolved against the runtime's own cgroup): cannot tell the container's cgroup`);
  } else {
    throw new OciHookError("cgroup", "state has no pid and config.json has no linux.cgroupsPath: cannot tell the container's cgroup");
  }
  const dir = join(root, path);
  try {
    return { path, id: cgroupIdOf(dir), from };
  } catch (err) {
    throw new OciHookError("cgroup", `stat ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The report for the agent: cgroup, runtime, name, image, annotations, pod. */
export function reportOf(state: OciState, config: { annotations: Record<string, string> }, cg: ContainerCgroup): WorkloadReport {
  // The state's annotations are the config's (runtime-spec); a runtime that adds its own wins.
  const annotations = { ...config.annotations, ...state.annotations };
  const kube = kubeIdentityOf(annotations);
  const parsed = parseCgroupPath(cg.path).runtime;
  // The path may not name the runtime (runc with a plain cgroupsPath): still an OCI container.
  const runtime: Runtime = parsed === "none" || parsed === "systemd-scope" ? "unknown" : parsed;
  const out: WorkloadReport = { cgroup_path: cg.path, cgroup_id: String(cg.id), runtime, annotations };
  if (kube.containerName !== undefined) out.name = kube.containerName;
  if (kube.image !== undefined) out.image = kube.image;
  if (kube.namespace !== undefined && kube.podName !== undefined) {
    out.pod = { namespace: kube.namespace, name: kube.podName, ...(kube.podUid ? { uid: kube.podUid } : {}), ...(kube.containerName ? { container: kube.containerName } : {}) };
  }
  if (state.pid !== undefined) out.pid = state.pid;
  return out;
}

async function call(ep: HookEndpoint, method: "PUT" | "DELETE", id: string, body: string | undefined, signal: AbortSignal): Promise<Response> {
  const url = `${ep.url}/v1/workloads/${encodeURIComponent(id)}`;
  try {
    return await fetch(url, {
      method,
      headers: { Authorization: `Bearer ${ep.token}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
      body,
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw new OciHookError("timeout", `${method} ${url}: no answer in time`);
    throw new OciHookError("agent", `${method} ${url}: cannot reach the agent (${(err as Error).message})`);
  }
}

async function agentError(res: Response, what: string): Promise<OciHookError> {
  const text = await res.text().catch(() => "");
  let message = text.trim() || res.statusText;
  try {
    const m = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
    if (typeof m === "string") message = m;
  } catch {
    // not JSON: the raw text
  }
  return new OciHookError("agent", `${what}: agent answered ${res.status}: ${message}`);
}

/**
 * Runs the hook on the OCI state text; returns the exit code. Every failure is one line on
 * stderr saying what failed and where.
 */
export async function runOciHook(stdin: string | Promise<string>, opts: OciHookOptions): Promise<number> {
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  let state: OciState;
  try {
    // A runtime that never closes stdin must not hold the container past the bound either.
    const text = await Promise.race([
      stdin,
      new Promise<never>((_, reject) => deadline.addEventListener("abort", () => reject(new OciHookError("timeout", "stdin was not closed in time")), { once: true })),
    ]);
    state = parseOciState(text);
  } catch (err) {
    const e = err instanceof OciHookError ? err : new OciHookError("input", `OCI state on stdin: ${(err as Error).message}`);
    return failed(opts, "container ?", e, deadline.aborted ? ` (--timeout ${opts.timeoutMs} ms)` : "");
  }
  const who = `container ${state.id}`;
  if (state.status === "stopped") return forget(state, opts, deadline);
  // For --fail-allow-namespace: the state carries the config's annotations (runtime-spec), so
  // this holds even when config.json cannot be read.
  let namespace: string | undefined;
  try {
    namespace = kubeIdentityOf(state.annotations).namespace;
  } catch {
    namespace = undefined;
  }
  try {
    const configFile = join(state.bundle, "config.json");
    let configText: string;
    try {
      configText = readFileSync(configFile, "utf8");
    } catch (err) {
      throw new OciHookError("input", `read ${configFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let report: WorkloadReport;
    try {
      const config = parseOciConfig(configText, configFile);
      report = reportOf(state, config, containerCgroup(state, config.cgroupsPath, opts));
    } catch (err) {
      if (err instanceof OciInputError) throw new OciHookError("input", err.message);
      throw err;
    }
    let ep: HookEndpoint;
    try {
      ep = opts.endpoint();
    } catch (err) {
      throw new OciHookError("agent", (err as Error).message);
    }
    const t0 = performance.now();
    const res = await call(ep, "PUT", state.id, JSON.stringify(report), deadline);
    if (!res.ok) throw await agentError(res, `PUT /v1/workloads/${state.id}`);
    await res.body?.cancel();
    opts.info?.(`ward oci-hook: ${who}: reported cgroup ${report.cgroup_path} (id ${report.cgroup_id}${report.pod ? `, pod ${report.pod.namespace}/${report.pod.name}` : ""}${report.name ? `, container ${report.name}` : ""}) to ${ep.url}; scopes applied in ${(performance.now() - t0).toFixed(1)} ms`);
    return 0;
  } catch (err) {
    if (!(err instanceof OciHookError)) throw err;
    if (err.step === "timeout" && opts.failMode === "closed" && !(namespace !== undefined && opts.failAllowNamespaces?.includes(namespace))) {
      // The container will not start; do not leave the agent holding a workload that never ran.
      await withdraw(opts, state.id);
    }
    return failed(opts, who, err, deadline.aborted ? ` (--timeout ${opts.timeoutMs} ms)` : "", namespace);
  }
}

function failed(opts: OciHookOptions, who: string, err: OciHookError, extra = "", namespace?: string): number {
  if (opts.failMode === "closed" && namespace !== undefined && opts.failAllowNamespaces?.includes(namespace)) {
    opts.log(`ward oci-hook: ${who}: ${err.message}${extra}; namespace ${namespace} is in --fail-allow-namespace: letting it start without confirmed policy scopes`);
    return 0;
  }
  if (opts.failMode === "open") {
    opts.log(`ward oci-hook: ${who}: ${err.message}${extra}; --fail-mode open: letting it start without confirmed policy scopes`);
    return 0;
  }
  opts.log(`ward oci-hook: ${who}: ${err.message}${extra}; --fail-mode closed: refusing to start it`);
  return 1;
}

/** Best effort: the agent may still be applying the PUT; this arrives after it. */
async function withdraw(opts: OciHookOptions, id: string): Promise<void> {
  try {
    const res = await call(opts.endpoint(), "DELETE", id, undefined, AbortSignal.timeout(1000));
    await res.body?.cancel();
  } catch {
    // Nothing to add: the failure that matters is already reported.
  }
}

/** poststop: the runtime ignores a poststop hook's failure, so this always exits 0 (and says what went wrong). */
async function forget(state: OciState, opts: OciHookOptions, deadline: AbortSignal): Promise<number> {
  try {
    let ep: HookEndpoint;
    try {
      ep = opts.endpoint();
    } catch (err) {
      throw new OciHookError("agent", (err as Error).message);
    }
    const res = await call(ep, "DELETE", state.id, undefined, deadline);
    if (!res.ok && res.status !== 404) throw await agentError(res, `DELETE /v1/workloads/${state.id}`);
    await res.body?.cancel();
    opts.info?.(`ward oci-hook: container ${state.id} (poststop): ${res.status === 404 ? "the agent did not know it" : "forgotten by the agent"}`);
  } catch (err) {
    if (!(err instanceof OciHookError)) throw err;
    opts.log(`ward oci-hook: container ${state.id} (poststop): ${err.message}; the agent keeps the workload until it restarts`);
  }
  return 0;
}
