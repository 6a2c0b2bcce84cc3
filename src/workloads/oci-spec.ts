// What an OCI runtime hands a hook: the state on stdin (runtime-spec runtime.md, "State":
// ociVersion, id, status, pid, bundle, annotations) and the bundle's config.json (its
// annotations and linux.cgroupsPath). Pure parsing with errors that name the field; reading
// files and /proc is the hook's job (oci-hook.ts).
//
// Kubernetes identity comes from the annotations the CRI runtimes put in config.json, and the
// two big ones spell them differently:
//   containerd (CRI plugin)  io.kubernetes.cri.sandbox-namespace, -sandbox-name, -sandbox-uid,
//                            io.kubernetes.cri.container-name, -container-type, -image-name, -sandbox-id
//   CRI-O                    the kubelet's labels copied as annotations (io.kubernetes.pod.namespace,
//                            io.kubernetes.pod.name, io.kubernetes.pod.uid, io.kubernetes.container.name),
//                            io.kubernetes.cri-o.Namespace, -ContainerType, -ImageName, -SandboxID, and
//                            io.kubernetes.cri-o.Labels (the same labels as one JSON object)
// The first spelling present wins, in the order of KUBE_KEYS.

export class OciInputError extends Error {
  override name = "OciInputError";
  readonly code = "oci_input";
  /** Where: "state.pid", "config.json linux.cgroupsPath", ... */
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
  }
}

/** The OCI state as a hook receives it. */
export interface OciState {
  ociVersion: string;
  id: string;
  /** "creating" in createRuntime/createContainer/prestart, "stopped" in poststop. */
  status: string;
  /** The container's init process (host pid namespace for createRuntime); absent once stopped. */
  pid?: number;
  bundle: string;
  annotations: Record<string, string>;
}

/** The parts of config.json the hook reads. */
export interface OciConfig {
  annotations: Record<string, string>;
  cgroupsPath?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new OciInputError(what, `not valid JSON (${(err as Error).message.replace(/^JSON Parse error: /, "")})`);
  }
  if (!isRecord(v)) throw new OciInputError(what, "must be a JSON object");
  return v;
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw new OciInputError(where, "must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw new OciInputError(`${where}.${k}`, `must be a string, not ${JSON.stringify(x)}`);
    out[k] = x;
  }
  return out;
}

/** OCI container ids as runc accepts them (and what the agent's URL path takes). */
export const CONTAINER_ID = /^[\w+.-]{1,1024}$/;

export function parseOciState(text: string): OciState {
  const o = parseJsonObject(text, "state");
  const str = (k: string, required: boolean): string | undefined => {
    const v = o[k];
    if (v === undefined && !required) return undefined;
    if (typeof v !== "string" || v === "") throw new OciInputError(`state.${k}`, v === undefined ? "missing" : `must be a non-empty string, not ${JSON.stringify(v)}`);
    return v;
  };
  const id = str("id", true)!;
  if (!CONTAINER_ID.test(id)) throw new OciInputError("state.id", `${JSON.stringify(id)} is not a container id (letters, digits, _ + . -)`);
  const state: OciState = {
    ociVersion: str("ociVersion", false) ?? "",
    id,
    status: str("status", true)!,
    bundle: str("bundle", true)!,
    annotations: stringMap(o.annotations, "state.annotations"),
  };
  if (!state.bundle.startsWith("/")) throw new OciInputError("state.bundle", `must be an absolute path, not ${JSON.stringify(state.bundle)}`);
  if (o.pid !== undefined && o.pid !== 0) {
    if (typeof o.pid !== "number" || !Number.isSafeInteger(o.pid) || o.pid < 0) throw new OciInputError("state.pid", `must be a positive integer, not ${JSON.stringify(o.pid)}`);
    state.pid = o.pid;
  }
  return state;
}

export function parseOciConfig(text: string, file = "config.json"): OciConfig {
  const o = parseJsonObject(text, file);
  const out: OciConfig = { annotations: stringMap(o.annotations, `${file} annotations`) };
  if (o.linux !== undefined) {
    if (!isRecord(o.linux)) throw new OciInputError(`${file} linux`, "must be an object");
    const p = o.linux.cgroupsPath;
    if (p !== undefined) {
      if (typeof p !== "string") throw new OciInputError(`${file} linux.cgroupsPath`, `must be a string, not ${JSON.stringify(p)}`);
      if (p !== "") out.cgroupsPath = p;
    }
  }
  return out;
}

/** Expands a systemd slice name to its path: "kubepods-besteffort.slice" -> "/kubepods.slice/kubepods-besteffort.slice". */
export function slicePath(slice: string): string {
  if (slice === "" || slice === "-.slice") return "";
  if (!slice.endsWith(".slice")) throw new OciInputError("linux.cgroupsPath", `slice ${JSON.stringify(slice)} must end in .slice`);
  const base = slice.slice(0, -".slice".length);
  if (base.startsWith("-") || base.endsWith("-") || base.includes("--") || base.includes("/")) {
    throw new OciInputError("linux.cgroupsPath", `slice ${JSON.stringify(slice)} is not a valid systemd slice name`);
  }
  const parts = base.split("-");
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join("-")}.slice`).join("");
}

/**
 * The cgroup v2 path (relative to the v2 root) that linux.cgroupsPath names, or undefined
 * when the form does not say it without the runtime's own cgroup (a relative cgroupfs path,
 * which runtimes resolve against their own cgroup). Two forms:
 *   cgroupfs  "/kubepods/besteffort/pod<uid>/<id>"           -> itself
 *   systemd   "slice:prefix:name" ("kubepods-pod<u>.slice:cri-containerd:<id>")
 *             -> "/kubepods.slice/kubepods-pod<u>.slice/cri-containerd-<id>.scope";
 *             a name ending in .slice is that slice; an empty slice is system.slice (runc's default).
 */
export function cgroupsPathToV2(p: string): string | undefined {
  if (p.startsWith("/")) return p.replace(/\/+$/, "") || "/";
  const parts = p.split(":");
  if (parts.length !== 3) return undefined;
  const [slice, prefix, name] = parts as [string, string, string];
  if (name === "") throw new OciInputError("linux.cgroupsPath", `${JSON.stringify(p)}: the systemd form slice:prefix:name has an empty name`);
  const parent = slicePath(slice === "" ? "system.slice" : slice);
  if (name.endsWith(".slice")) return `${parent}/${name}`;
  return `${parent}/${prefix === "" ? "" : `${prefix}-`}${name}.scope`;
}

/** Kubernetes identity from the annotations. */
export interface KubeIdentity {
  namespace?: string;
  podName?: string;
  podUid?: string;
  containerName?: string;
  /** "sandbox" for the pod's pause container, "container" for the workload's. */
  containerType?: string;
  image?: string;
  sandboxId?: string;
}

/** Annotation keys per field, first present wins (containerd, then CRI-O). */
export const KUBE_KEYS: Readonly<Record<keyof KubeIdentity, readonly string[]>> = {
  namespace: ["io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace", "io.kubernetes.cri-o.Namespace"],
  podName: ["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"],
  podUid: ["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"],
  containerName: ["io.kubernetes.cri.container-name", "io.kubernetes.container.name"],
  containerType: ["io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"],
  image: ["io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"],
  sandboxId: ["io.kubernetes.cri.sandbox-id", "io.kubernetes.cri-o.SandboxID"],
};

/** The kubelet labels inside CRI-O's io.kubernetes.cri-o.Labels, for fields the flat keys lack. */
const CRIO_LABELS = "io.kubernetes.cri-o.Labels";
const LABEL_KEYS: Partial<Record<keyof KubeIdentity, string>> = {
  namespace: "io.kubernetes.pod.namespace",
  podName: "io.kubernetes.pod.name",
  podUid: "io.kubernetes.pod.uid",
  containerName: "io.kubernetes.container.name",
};

export function kubeIdentityOf(annotations: Readonly<Record<string, string>>): KubeIdentity {
  let labels: Record<string, unknown> = {};
  const raw = annotations[CRIO_LABELS];
  if (raw !== undefined) {
    try {
      const v: unknown = JSON.parse(raw);
      if (isRecord(v)) labels = v;
    } catch {
      throw new OciInputError(`annotations.${CRIO_LABELS}`, "is not a JSON object");
    }
  }
  const out: KubeIdentity = {};
  for (const field of Object.keys(KUBE_KEYS) as (keyof KubeIdentity)[]) {
    const key = KUBE_KEYS[field].find((k) => annotations[k] !== undefined && annotations[k] !== "");
    if (key !== undefined) {
      out[field] = annotations[key]!;
      continue;
    }
    const lk = LABEL_KEYS[field];
    const lv = lk === undefined ? undefined : labels[lk];
    if (typeof lv === "string" && lv !== "") out[field] = lv;
  }
  return out;
}
