// How to reach the Kubernetes API server: in-cluster (the service account's token and CA,
// KUBERNETES_SERVICE_HOST/PORT, as every pod gets them) or a kubeconfig file (its current
// context's cluster server and CA, and the user's token, token file or client certificate).
// Only what ward needs is read; exec/auth-provider plugins are refused with a clear error.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { isIP } from "node:net";
import { parse as parseYaml } from "yaml";

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface K8sConfig {
  /** Base URL, e.g. "https://10.96.0.1:443". */
  server: string;
  /** A bearer token given inline. */
  token?: string;
  /** A file the bearer token is re-read from (service account tokens are rotated). */
  tokenFile?: string;
  /** PEM CA bundle that signs the server's certificate. */
  ca?: string;
  /** PEM client certificate and key. */
  cert?: string;
  key?: string;
  insecureSkipTlsVerify?: boolean;
  /** The namespace of the context or the service account. */
  namespace?: string;
  /** Where this came from, for messages ("in-cluster", "kubeconfig /root/.kube/config context kind"). */
  source: string;
}

export class K8sConfigError extends Error {
  override name = "K8sConfigError";
  readonly code = "k8s_config";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type FileReader = (path: string) => string;
const readText: FileReader = (p) => readFileSync(p, "utf8");

function mustRead(read: FileReader, path: string, what: string): string {
  try {
    return read(path);
  } catch (err) {
    throw new K8sConfigError(`${what}: read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * inClusterConfig builds the config a pod has: KUBERNETES_SERVICE_HOST and _PORT, the
 * service account token (kept as a file, re-read per request) and ca.crt. Throws
 * K8sConfigError naming what is missing.
 */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR, read: FileReader = readText): K8sConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new K8sConfigError("in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod? give --k8s-kubeconfig-path)");
  const tokenFile = join(dir, "token");
  mustRead(read, tokenFile, "in-cluster config: service account token");
  const ca = mustRead(read, join(dir, "ca.crt"), "in-cluster config: service account CA");
  let namespace: string | undefined;
  try {
    namespace = read(join(dir, "namespace")).trim() || undefined;
  } catch {
    // optional
  }
  const h = isIP(host) === 6 ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, tokenFile, ca, ...(namespace ? { namespace } : {}), source: "in-cluster" };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function named(list: unknown, name: string, what: string, file: string): Record<string, unknown> {
  if (!Array.isArray(list)) throw new K8sConfigError(`${file}: no ${what}s list`);
  const e = list.find((x) => isRecord(x) && x.name === name);
  if (!isRecord(e)) throw new K8sConfigError(`${file}: ${what} "${name}" not found`);
  const inner = e[what];
  if (!isRecord(inner)) throw new K8sConfigError(`${file}: ${what} "${name}" has no ${what} mapping`);
  return inner;
}

/**
 * kubeconfigConfig reads a kubeconfig: the given context or current-context, its cluster's
 * server, certificate-authority(-data), insecure-skip-tls-verify, and its user's token,
 * tokenFile, client-certificate(-data) and client-key(-data). Relative file paths are
 * relative to the kubeconfig's directory, as kubectl resolves them. Throws K8sConfigError.
 */
export function kubeconfigConfig(file: string, opts: { context?: string; read?: FileReader } = {}): K8sConfig {
  const read = opts.read ?? readText;
  const text = mustRead(read, file, "kubeconfig");
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new K8sConfigError(`${file}: ${(err as Error).message}`, { cause: err });
  }
  if (!isRecord(doc)) throw new K8sConfigError(`${file}: not a kubeconfig (want a mapping)`);
  const ctxName = opts.context ?? (typeof doc["current-context"] === "string" ? doc["current-context"] : undefined);
  if (!ctxName) throw new K8sConfigError(`${file}: no current-context (and no context given)`);
  const ctx = named(doc.contexts, ctxName, "context", file);
  if (typeof ctx.cluster !== "string") throw new K8sConfigError(`${file}: context "${ctxName}" names no cluster`);
  const cluster = named(doc.clusters, ctx.cluster, "cluster", file);
  if (typeof cluster.server !== "string" || cluster.server === "") throw new K8sConfigError(`${file}: cluster "${ctx.cluster}" has no server`);
  const user = typeof ctx.user === "string" ? named(doc.users, ctx.user, "user", file) : {};
  const base = dirname(file);
  const path = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const dataOrFile = (obj: Record<string, unknown>, key: string, what: string): string | undefined => {
    const data = obj[`${key}-data`];
    if (typeof data === "string") return Buffer.from(data, "base64").toString("utf8");
    const f = obj[key];
    if (typeof f === "string") return mustRead(read, path(f), `kubeconfig ${what}`);
    return undefined;
  };
  if (user.exec !== undefined || user["auth-provider"] !== undefined) {
    throw new K8sConfigError(`${file}: user "${String(ctx.user)}" authenticates through an exec or auth-provider plugin, which ward does not run; use a token, a token file or a client certificate`);
  }
  const out: K8sConfig = { server: cluster.server.replace(/\/+$/, ""), source: `kubeconfig ${file} context ${ctxName}` };
  const ca = dataOrFile(cluster, "certificate-authority", "certificate-authority");
  if (ca !== undefined) out.ca = ca;
  if (cluster["insecure-skip-tls-verify"] === true) out.insecureSkipTlsVerify = true;
  if (typeof user.token === "string") out.token = user.token;
  else if (typeof user.tokenFile === "string") out.tokenFile = path(user.tokenFile);
  const cert = dataOrFile(user, "client-certificate", "client-certificate");
  const key = dataOrFile(user, "client-key", "client-key");
  if ((cert === undefined) !== (key === undefined)) throw new K8sConfigError(`${file}: user "${String(ctx.user)}" has a client certificate without its key (or a key without its certificate)`);
  if (cert !== undefined && key !== undefined) {
    out.cert = cert;
    out.key = key;
  }
  if (typeof ctx.namespace === "string") out.namespace = ctx.namespace;
  return out;
}

/**
 * loadK8sConfig: a kubeconfig when one is given (the flag, else $KUBECONFIG's first entry),
 * otherwise the in-cluster config.
 */
export function loadK8sConfig(opts: { kubeconfig?: string; context?: string; env?: NodeJS.ProcessEnv; read?: FileReader } = {}): K8sConfig {
  const env = opts.env ?? process.env;
  const kc = opts.kubeconfig ?? (env.KUBECONFIG ? env.KUBECONFIG.split(":")[0] : undefined);
  if (kc) return kubeconfigConfig(kc, { ...(opts.context ? { context: opts.context } : {}), ...(opts.read ? { read: opts.read } : {}) });
  return inClusterConfig(env, SERVICE_ACCOUNT_DIR, opts.read);
}
