// The agent's Kubernetes side (src/agent/kubernetes.ts) against the local list/watch
// stand-in (test/lib/fake-kube-api.ts; no API server exists here): start-up errors as the
// agent reports them (no kubeconfig, unreachable server, wrong token, CRDs missing, retries),
// the CRs' outcomes and the watch state in status. The real agent with a kubeconfig is
// test/e2e/kubernetes.test.ts.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubernetesStartError, KubernetesWatch, loadKubernetesConfig, type KubernetesOptions } from "../../../src/agent/kubernetes.ts";
import { PolicyStore } from "../../../src/agent/policy-store.ts";
import { parsePolicies } from "../../../src/agent/policy-parser.ts";
import { WorkloadRegistry } from "../../../src/workloads/registry.ts";
import { FakeKubeApi, nodeFixture, podFixture } from "../../lib/fake-kube-api.ts";
import { formatStatus } from "../../../src/cli/commands/status.ts";
import type { AgentStatus } from "../../../src/api/deps.ts";

const PODS = "/api/v1/pods";
const TP = "/apis/cilium.io/v1alpha1/tracingpolicies";
const TPN = "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced";
const NODES = "/api/v1/nodes";
const KINDS = { [PODS]: "Pod", [TP]: "TracingPolicy", [TPN]: "TracingPolicyNamespaced", [NODES]: "Node" };
const TOKEN = "agent-k8s-token";
const NODE = "node-a";
const hex = (n: number) => n.toString(16).padStart(64, "0");

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until<T>(what: string, fn: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(5);
  }
}

const policy = (name: string, file: string, namespace?: string) => ({
  apiVersion: "cilium.io/v1alpha1",
  kind: namespace ? "TracingPolicyNamespaced" : "TracingPolicy",
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec: {
    kprobes: [{ call: "security_file_open", syscall: false, args: [{ index: 0, type: "file" }], selectors: [{ matchArgs: [{ index: 0, operator: "Equal", values: [file] }], matchActions: [{ action: "Sigkill" }] }] }],
  },
});

function watchOf(server: string, extra: Partial<KubernetesOptions> = {}, token = TOKEN) {
  const logs: string[] = [];
  const store = new PolicyStore(parsePolicies);
  const registry = new WorkloadRegistry();
  const k = new KubernetesWatch(
    { server, token, source: "test kubeconfig" },
    { nodeName: NODE, policies: true, attempts: 1, registry, store, log: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`), retryDelayMs: 10, backoff: { initialMs: 10, maxMs: 50 }, scan: () => new Map([[hex(1), { cgroupId: 777n, path: `/kubepods/cri-containerd-${hex(1)}.scope`, runtime: "containerd" as const }]]), ...extra },
  );
  cleanups.push(() => k.stop());
  return { k, logs, store, registry };
}

function serve(kinds: Record<string, string> = KINDS): FakeKubeApi {
  const api = new FakeKubeApi({ token: TOKEN, kinds });
  cleanups.push(() => api.stop());
  return api;
}

describe("start-up errors: what, where, and what to do", () => {
  test("a kubeconfig that is missing or not a kubeconfig names the flag and the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-k8s-agent-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    expect(() => loadKubernetesConfig(join(dir, "nope"))).toThrow(new KubernetesStartError(`--k8s-kubeconfig-path kubeconfig: read ${join(dir, "nope")}: ENOENT: no such file or directory, open '${join(dir, "nope")}'`));
    writeFileSync(join(dir, "bad"), "apiVersion: v1\nkind: Config\n");
    expect(() => loadKubernetesConfig(join(dir, "bad"))).toThrow(`--k8s-kubeconfig-path ${join(dir, "bad")}: no current-context (and no context given)`);
  });

  test("unreachable API server: refused after the attempts given, each failure logged", async () => {
    const api = serve();
    const url = api.url;
    api.stop(); // nothing listens there any more
    const { k, logs } = watchOf(url, { attempts: 3 });
    const err = await k.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubernetesStartError);
    expect((err as Error).message).toStartWith(`kubernetes (test kubeconfig): cannot reach the API server ${url}: GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=1: `);
    expect((err as Error).message).toEndWith("(3 attempts; --k8s-controlplane-retry N tries longer, -1 until it answers)");
    expect(logs.filter((l) => l.startsWith("WARN kubernetes: attempt"))).toHaveLength(2);
    expect(logs[0]).toMatch(/^WARN kubernetes: attempt 1 of 3: cannot reach the API server .*; retrying in 0\.0 s$/);
    // Status says the agent is still connecting, and why not yet.
    expect(k.status()).toMatchObject({ state: "connecting", connect_attempts: 3 });
    expect(k.status().connect_error).toStartWith(`cannot reach the API server ${url}`);
  });

  test("a server that fails twice and then answers: connected on the third attempt", async () => {
    const api = serve();
    api.failNext = 2;
    const { k, logs } = watchOf(api.url, { attempts: 3 });
    await k.connect();
    expect(logs.at(-1)).toBe(`kubernetes: API server ${api.url} (test kubeconfig) answers; watching pods of node node-a and TracingPolicy resources`);
    expect(k.status()).toMatchObject({ state: "connected", connect_attempts: 3 });
    expect(k.status().connect_error).toBeUndefined();
  });

  test("wrong token: 401 says the credentials were refused", async () => {
    const api = serve();
    const { k } = watchOf(api.url, {}, "wrong");
    await expect(k.connect()).rejects.toThrow(`kubernetes (test kubeconfig): the API server ${api.url} refused the credentials (401): GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=1: HTTP 401: Unauthorized (1 attempt;`);
  });

  test("CRDs not installed: the 404 says to install them or to turn the CR watch off; with it off, pods alone connect", async () => {
    const api = serve({ [PODS]: "Pod" });
    const { k } = watchOf(api.url);
    await expect(k.connect()).rejects.toThrow("tracingpolicies.cilium.io not found (404): the TracingPolicy CRDs are not installed (kubectl apply -f deploy/crds.yaml), or run with --enable-tracing-policy-crd=false");
    const { k: podsOnly, logs } = watchOf(api.url, { policies: false });
    await podsOnly.connect();
    expect(logs.at(-1)).toBe(`kubernetes: API server ${api.url} (test kubeconfig) answers; watching pods of node node-a`);
    expect(podsOnly.status().policies).toBeUndefined();
  });
});

describe("running: pods in the registry, CRs through the store, watch state in status", () => {
  test("pods and CRs picked up; a refused CR is logged and in status with its error; fixed, applied; deleted, gone", async () => {
    const api = serve();
    api.put(PODS, podFixture({ name: "web-1", node: NODE, labels: { app: "web" }, containers: [{ name: "nginx", id: hex(1) }] }));
    api.put(TP, policy("files", "/etc/passwd"));
    api.put(TPN, policy("shells", "/bin/sh", "vendor-app"));
    api.put(TP, { ...policy("bad", "/x"), spec: { kprobes: [{ call: "security_file_open", selectors: [{ matchActions: [{ action: "Explode" }] }] }] } });
    const { k, logs, store, registry } = watchOf(api.url);
    await k.connect();
    await k.startPods();
    expect(registry.get(hex(1))).toMatchObject({ cgroupId: 777n, source: "kubernetes", pod: { name: "web-1", labels: { app: "web" } } });
    await k.startPolicies();
    expect(store.list().map((p) => [p.name, p.source])).toEqual([
      ["files", "k8s:TracingPolicy/files"],
      ["shells", "k8s:TracingPolicyNamespaced/vendor-app/shells"],
    ]);
    const st = k.status();
    expect(st.policies?.map((p) => [p.kind, p.namespace, p.name, p.state])).toEqual([
      ["TracingPolicy", undefined, "bad", "error"],
      ["TracingPolicy", undefined, "files", "applied"],
      ["TracingPolicyNamespaced", "vendor-app", "shells", "applied"],
    ]);
    // The reason in the CR's terms: field path and message, no positions in generated text.
    expect(st.policies?.[0]?.error).toStartWith('spec.kprobes[0].selectors[0].matchActions[0].action: "Explode" is not allowed here; allowed: Post, Sigkill, Override');
    expect(st.policies?.[0]?.error).not.toContain("\n");
    expect(logs.some((l) => l.startsWith("WARN kubernetes: TracingPolicy bad: not applied: ") && l.includes("Explode"))).toBe(true);
    expect(logs).toContain("kubernetes: 2 TracingPolicy resource(s) applied, 1 refused (see ward status)");
    expect(st).toMatchObject({ config: "test kubeconfig", server: api.url, node: NODE, pods: 1, containers: 1, pending_containers: [] });

    await until("watches open", () => api.watching(TP) === 1 && api.watching(PODS) === 1);
    // The refused CR fixed: applied, and its error gone from status.
    api.put(TP, policy("bad", "/etc/hosts"));
    await until("fixed", () => store.get("bad") !== undefined);
    await k.policies!.idle();
    expect(k.status().policies?.find((p) => p.name === "bad")).toEqual({ kind: "TracingPolicy", name: "bad", state: "applied" });
    // A change refused while an earlier version is applied: status says the old one stays.
    api.put(TP, { ...policy("files", "/x"), spec: { kprobes: [{ call: "security_file_open", selectors: [{ matchActions: [{ action: "Explode" }] }] }] } });
    await until("refused edit", () => k.status().policies?.find((p) => p.name === "files")?.state === "error");
    expect(k.status().policies?.find((p) => p.name === "files")?.error).toEndWith("(the previous version stays applied)");
    expect(store.get("files")?.text).toContain("/etc/passwd");
    api.remove(TP, "files");
    api.remove(TPN, "shells", "vendor-app");
    await until("removed", () => store.list().length === 1);
    await k.policies!.idle();
    expect(k.status().policies?.map((p) => p.name)).toEqual(["bad"]);
    expect(logs).toContain("kubernetes: TracingPolicyNamespaced vendor-app/shells removed");
  });

  test("status: synced, resourceVersion, bookmarks, re-lists after 410, the last error", async () => {
    const api = serve();
    api.put(PODS, podFixture({ name: "web-1", node: NODE, containers: [{ name: "nginx", id: hex(1) }] }));
    const { k, logs } = watchOf(api.url, { policies: false });
    await k.connect();
    await k.startPods();
    await until("watching", () => api.watching(PODS) === 1 && k.status().watches[0]!.watching);
    api.bump(5);
    api.bookmark(PODS);
    await until("bookmark", () => k.status().watches[0]!.bookmarks === 1);
    expect(k.status().watches[0]).toMatchObject({ resource: "pods", path: PODS, synced: true, watching: true, resource_version: api.resourceVersion, lists: 1, relists: 0, errors: 0 });
    api.compact(true);
    await until("re-listed", () => k.status().watches[0]!.relists === 1 && k.status().watches[0]!.lists === 2);
    // The server errs once: counted, kept as the last error, and the watch recovers.
    api.failNext = 1;
    api.endWatches();
    await until("error", () => k.status().watches[0]!.errors === 1);
    await until("watching again", () => k.status().watches[0]!.watching);
    const w = k.status().watches[0]!;
    expect(w.last_error).toContain("HTTP 500: etcdserver: leader changed");
    expect(Date.parse(w.last_error_at!)).toBeGreaterThan(Date.now() - 60_000);
    expect(k.status().pods).toBe(1);
    // A server failing the same way again and again: every failure counted, logged once.
    api.failNext = 5;
    api.endWatches();
    await until("5 more errors", () => k.status().watches[0]!.errors === 6);
    expect(logs.filter((l) => l.startsWith("WARN kubernetes: pods: ") && l.includes("leader changed"))).toHaveLength(1);
  });
});

describe("spec.nodeSelector: which nodes apply a CR (Tetragon: non-matching is skipped; unknown labels fail open)", () => {
  const withSelector = (name: string, file: string, zone: string) => ({ ...policy(name, file), spec: { ...policy(name, file).spec, nodeSelector: { matchLabels: { "topology.kubernetes.io/zone": zone } } } });

  test("applied where the node's labels match, skipped elsewhere; a node relabel moves them; others are not re-applied", async () => {
    const api = serve();
    api.put(NODES, nodeFixture(NODE, { "topology.kubernetes.io/zone": "a" }));
    api.put(NODES, nodeFixture("node-b", { "topology.kubernetes.io/zone": "b" }));
    api.put(TP, withSelector("zone-a", "/etc/a", "a"));
    api.put(TP, withSelector("zone-b", "/etc/b", "b"));
    api.put(TP, policy("plain", "/etc/plain"));
    const { k, logs, store } = watchOf(api.url);
    await k.connect();
    await k.startPods();
    await k.startPolicies();
    expect(store.list().map((p) => p.name)).toEqual(["plain", "zone-a"]);
    const st = k.status();
    expect(st.policies?.find((p) => p.name === "zone-b")).toEqual({ kind: "TracingPolicy", name: "zone-b", state: "skipped", reason: `spec.nodeSelector does not select node ${NODE}` });
    expect(st.node_labels).toMatchObject({ "topology.kubernetes.io/zone": "a", "kubernetes.io/hostname": NODE });
    expect(st.watches.map((w) => w.resource)).toEqual(["pods", "tracingpolicies.cilium.io", "tracingpoliciesnamespaced.cilium.io", "nodes"]);
    // Only this node was listed.
    expect(api.requests.some((r) => r.startsWith(`${NODES}?fieldSelector=metadata.name%3D${NODE}`))).toBe(true);
    expect(logs).toContain("kubernetes: TracingPolicy zone-b skipped: spec.nodeSelector does not select node node-a");
    const plainAdded = store.get("plain")!.addedAt;

    await until("node watched", () => api.watching(NODES) === 1 && api.watching(TP) === 1);
    api.put(NODES, nodeFixture(NODE, { "topology.kubernetes.io/zone": "b" }));
    await until("moved", () => store.get("zone-b") !== undefined && store.get("zone-a") === undefined);
    await k.policies!.idle();
    expect(k.status().policies?.map((p) => [p.name, p.state])).toEqual([
      ["plain", "applied"],
      ["zone-a", "skipped"],
      ["zone-b", "applied"],
    ]);
    // The CR without a selector was not removed and added again.
    expect(store.get("plain")!.addedAt).toBe(plainAdded);
    expect(logs.filter((l) => l === "kubernetes: TracingPolicy plain applied")).toHaveLength(1);
    // The skipped CR deleted: gone from status, nothing to remove from the store.
    api.remove(TP, "zone-a");
    await until("deleted", () => k.status().policies?.length === 2);
  });

  test("node labels unreadable (no nodes collection / RBAC): the CR is applied, warned once", async () => {
    const api = serve({ [PODS]: "Pod", [TP]: "TracingPolicy", [TPN]: "TracingPolicyNamespaced" });
    api.put(TP, withSelector("zone-b", "/etc/b", "b"));
    const { k, logs, store } = watchOf(api.url);
    await k.connect();
    await k.startPods();
    await k.startPolicies();
    expect(store.list().map((p) => p.name)).toEqual(["zone-b"]);
    expect(k.status().node_labels).toBeUndefined();
    await until("node retried", () => k.status().watches.find((w) => w.resource === "nodes")!.errors >= 3);
    const warned = logs.filter((l) => l.startsWith(`WARN kubernetes: node ${NODE}: its labels are unknown, so CRs with a spec.nodeSelector are applied here (fails open, as in Tetragon): `));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain("HTTP 404");
  });
});

describe("ward status: the kubernetes section", () => {
  test("connecting with the last failure; each watch; containers waiting for a cgroup; each CR's outcome", () => {
    const base = { version: "t", node_name: "n", pid: 1, started_at: "", uptime_seconds: 5, ready: false, sensors: [], events: { total: 0, by_type: {}, lost: {}, subscribers: 0, sinks: [] }, policies: [] };
    const w = { resource: "pods", path: PODS, synced: false, watching: false, resource_version: "", lists: 0, relists: 0, watches: 0, bookmarks: 0, errors: 2, last_error: "GET /api/v1/pods: HTTP 500: boom", last_error_at: "2026-12-03T19:00:00.000Z" };
    const text = formatStatus({
      ...base,
      kubernetes: { config: "in-cluster", server: "https://10.96.0.1:443", node: "n", state: "connecting", connect_attempts: 4, connect_error: "cannot reach the API server https://10.96.0.1:443: ECONNREFUSED", watches: [w], pods: 0, containers: 0, pending_containers: ["default/web/nginx (0123456789ab)"], policies: [{ kind: "TracingPolicyNamespaced", namespace: "apps", name: "no-shell", state: "error", error: "spec.kprobes[0].call: unknown" }] },
    } as AgentStatus);
    expect(text.split("\n").slice(text.split("\n").findIndex((l) => l.startsWith("kubernetes:")), -1)).toEqual([
      "kubernetes: https://10.96.0.1:443 (in-cluster), node n",
      "  connecting (attempt 4): cannot reach the API server https://10.96.0.1:443: ECONNREFUSED",
      "  pods                                 not synced, not watching; resourceVersion -, lists 0 (re-lists after 410 0), watches 0, bookmarks 0, errors 2",
      "    last error 2026-12-03T19:00:00.000Z: GET /api/v1/pods: HTTP 500: boom",
      "  pods: 0; containers in the workload registry: 0; waiting for their cgroup: default/web/nginx (0123456789ab)",
      "  TracingPolicyNamespaced apps/no-shell: error: spec.kprobes[0].call: unknown",
    ]);
    expect(formatStatus(base as AgentStatus)).not.toContain("kubernetes");
  });
});
