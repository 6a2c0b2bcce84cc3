// The wire form of a workload report: the body of PUT /v1/workloads/:id (what the OCI hook
// sends). Validation collects every bad field with its path, so a
// 400 names all of them at once. cgroup_id is a decimal string: a u64 does not fit a JSON
// number exactly.
import type { Runtime } from "./cgroup-identity.ts";
import type { Workload, WorkloadPod, WorkloadSource } from "./registry.ts";

export const RUNTIMES: readonly Runtime[] = ["docker", "containerd", "cri-o", "podman", "unknown", "systemd-scope", "none"];

export interface WorkloadReportPod {
  namespace: string;
  name: string;
  uid?: string;
  container?: string;
  labels?: Record<string, string>;
}

/** PUT /v1/workloads/:id body. */
export interface WorkloadReport {
  /** Relative to the cgroup v2 root, starting with "/". */
  cgroup_path: string;
  /** The cgroup directory's inode, decimal. */
  cgroup_id: string;
  runtime?: Runtime;
  name?: string;
  image?: string;
  annotations?: Record<string, string>;
  pod?: WorkloadReportPod;
  /** The container's init pid as the reporter saw it (informational). */
  pid?: number;
}

export interface FieldError {
  path: string;
  message: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const REPORT_KEYS = ["cgroup_path", "cgroup_id", "runtime", "name", "image", "annotations", "pod", "pid"];
const POD_KEYS = ["namespace", "name", "uid", "container", "labels"];

function unknownKeys(o: Record<string, unknown>, allowed: readonly string[], at: string, errors: FieldError[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) errors.push({ path: `${at}.${k}`, message: `unknown field (allowed: ${allowed.join(", ")})` });
}

function optString(o: Record<string, unknown>, k: string, at: string, errors: FieldError[], required = false): string | undefined {
  const v = o[k];
  if (v === undefined) {
    if (required) errors.push({ path: `${at}.${k}`, message: "is required" });
    return undefined;
  }
  if (typeof v !== "string" || v === "") {
    errors.push({ path: `${at}.${k}`, message: `must be a non-empty string, not ${JSON.stringify(v)}` });
    return undefined;
  }
  return v;
}

function stringMap(v: unknown, at: string, errors: FieldError[]): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v)) {
    errors.push({ path: at, message: "must be an object of strings" });
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") errors.push({ path: `${at}.${k}`, message: `must be a string, not ${JSON.stringify(x)}` });
    else out[k] = x;
  }
  return out;
}

/** Checks a parsed body; returns the report or every field error (paths start at "body"). */
export function validateReport(v: unknown): { report: WorkloadReport } | { errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!isRecord(v)) return { errors: [{ path: "body", message: "must be a JSON object" }] };
  unknownKeys(v, REPORT_KEYS, "body", errors);
  const cgroupPath = optString(v, "cgroup_path", "body", errors, true);
  if (cgroupPath !== undefined && (!cgroupPath.startsWith("/") || cgroupPath.split("/").some((s) => s === "." || s === ".."))) {
    errors.push({ path: "body.cgroup_path", message: `must be an absolute path below the cgroup v2 root without . or .., not ${JSON.stringify(cgroupPath)}` });
  }
  const cgroupId = optString(v, "cgroup_id", "body", errors, true);
  if (cgroupId !== undefined && (!/^[1-9][0-9]{0,19}$/.test(cgroupId) || BigInt(cgroupId) > 0xffff_ffff_ffff_ffffn)) {
    errors.push({ path: "body.cgroup_id", message: `must be a decimal u64 above 0, as a string, not ${JSON.stringify(cgroupId)}` });
  }
  const runtime = optString(v, "runtime", "body", errors);
  if (runtime !== undefined && !(RUNTIMES as readonly string[]).includes(runtime)) {
    errors.push({ path: "body.runtime", message: `must be one of ${RUNTIMES.join(", ")}, not ${JSON.stringify(runtime)}` });
  }
  const name = optString(v, "name", "body", errors);
  const image = optString(v, "image", "body", errors);
  const annotations = stringMap(v.annotations, "body.annotations", errors);
  let pod: WorkloadReportPod | undefined;
  if (v.pod !== undefined) {
    if (!isRecord(v.pod)) errors.push({ path: "body.pod", message: "must be an object" });
    else {
      unknownKeys(v.pod, POD_KEYS, "body.pod", errors);
      const ns = optString(v.pod, "namespace", "body.pod", errors, true);
      const pn = optString(v.pod, "name", "body.pod", errors, true);
      const uid = optString(v.pod, "uid", "body.pod", errors);
      const container = optString(v.pod, "container", "body.pod", errors);
      const labels = stringMap(v.pod.labels, "body.pod.labels", errors);
      if (ns !== undefined && pn !== undefined) pod = { namespace: ns, name: pn, ...(uid ? { uid } : {}), ...(container ? { container } : {}), ...(labels ? { labels } : {}) };
    }
  }
  if (v.pid !== undefined && (typeof v.pid !== "number" || !Number.isSafeInteger(v.pid) || v.pid <= 0)) {
    errors.push({ path: "body.pid", message: `must be a positive integer, not ${JSON.stringify(v.pid)}` });
  }
  if (errors.length > 0) return { errors };
  return {
    report: {
      cgroup_path: cgroupPath!,
      cgroup_id: cgroupId!,
      ...(runtime ? { runtime: runtime as Runtime } : {}),
      ...(name ? { name } : {}),
      ...(image ? { image } : {}),
      ...(annotations ? { annotations } : {}),
      ...(pod ? { pod } : {}),
      ...(typeof v.pid === "number" ? { pid: v.pid } : {}),
    },
  };
}

/** The registry entry for a report about container `id`. */
export function workloadOfReport(id: string, r: WorkloadReport, source: WorkloadSource = "oci-hook"): Workload {
  const pod: WorkloadPod | undefined = r.pod && {
    namespace: r.pod.namespace,
    name: r.pod.name,
    labels: r.pod.labels ?? {},
    ...(r.pod.uid ? { uid: r.pod.uid } : {}),
    ...(r.pod.container ? { container: r.pod.container } : {}),
  };
  return {
    key: id,
    cgroupId: BigInt(r.cgroup_id),
    cgroupPath: r.cgroup_path,
    runtime: r.runtime ?? "unknown",
    containerId: id,
    annotations: r.annotations ?? {},
    source,
    ...(r.name ? { name: r.name } : {}),
    ...(r.image ? { image: r.image } : {}),
    ...(pod ? { pod } : {}),
  };
}
