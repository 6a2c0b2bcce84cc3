// The Kubernetes client against a local API stand-in (test/lib/fake-kube-api.ts, Bun.serve on
// loopback) speaking list/watch as the API reference describes it: paged lists, chunked
// newline-delimited watch events, resourceVersion, bookmarks, 410 Gone (as an ERROR event
// and as HTTP 410). No real API server exists here; this is what is tested.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inClusterConfig, K8sConfigError, kubeconfigConfig, loadK8sConfig } from "../../../src/workloads/k8s/config.ts";
import { K8sClient, ListWatch, type K8sObject } from "../../../src/workloads/k8s/client.ts";
import { PodCache, podBlock, podInfoOf } from "../../../src/workloads/k8s/pods.ts";
import { TracingPolicyWatcher, type PolicyRef, type PolicySink } from "../../../src/workloads/k8s/policies.ts";
import { includesHost, isScoped, ScopeResolver, scopeOfPolicy, type ScopeChange } from "../../../src/workloads/k8s/scope.ts";
import { policyStoreSink } from "../../../src/workloads/k8s/store-sink.ts";
import { PolicyStore } from "../../../src/agent/policy-store.ts";
import { parsePolicies } from "../../../src/agent/policy-parser.ts";
import { FakeKubeApi, podFixture } from "../../lib/fake-kube-api.ts";
import { secureOpenPolicy } from "../../lib/talk-policies.ts";

const PODS = "/api/v1/pods";
const TP = "/apis/cilium.io/v1alpha1/tracingpolicies";
const TPN = "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced";
const KINDS = { [PODS]: "Pod", [TP]: "TracingPolicy", [TPN]: "TracingPolicyNamespaced" };
const TOKEN = "test-token-0123456789";
const NODE = "node-a";
const hex = (n: number) => n.toString(16).padStart(64, "0");
const FAST = { backoff: { initialMs: 10, maxMs: 50 } };

let api: FakeKubeApi | undefined;
const stops: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  api?.stop();
  api = undefined;
});

function serve(): { api: FakeKubeApi; client: K8sClient } {
  api = new FakeKubeApi({ token: TOKEN, kinds: KINDS });
  return { api, client: new K8sClient({ server: api.url, token: TOKEN, source: "test" }) };
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(5);
  }
}

describe("config", () => {
  const dir = mkdtempSync(join(tmpdir(), "ward-k8s-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("in-cluster: service host and port, token file, CA, namespace; IPv6 host in brackets", () => {
    writeFileSync(join(dir, "token"), "sa-token\n");
    writeFileSync(join(dir, "ca.crt"), "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
    writeFileSync(join(dir, "namespace"), "kube-system");
    const c = inClusterConfig({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, dir);
    expect(c).toMatchObject({ server: "https://10.96.0.1:443", tokenFile: join(dir, "token"), namespace: "kube-system", source: "in-cluster" });
    expect(c.ca).toContain("BEGIN CERTIFICATE");
    expect(inClusterConfig({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, dir).server).toBe("https://[fd00::1]:443");
    expect(() => inClusterConfig({}, dir)).toThrow(/KUBERNETES_SERVICE_HOST/);
    expect(() => inClusterConfig({ KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "1" }, join(dir, "none"))).toThrow(K8sConfigError);
  });

  test("kubeconfig: current-context, server, CA data, client cert files relative to the file, token", () => {
    writeFileSync(join(dir, "client.crt"), "CERT");
    writeFileSync(join(dir, "client.key"), "KEY");
    const kc = join(dir, "config");
    writeFileSync(
      kc,
      `apiVersion: v1
kind: Config
current-context: kind
contexts:
- name: kind
  context: {cluster: kind-c, user: kind-u, namespace: apps}
- name: other
  context: {cluster: other-c, user: other-u}
clusters:
- name: kind-c
  cluster: {server: "https://127.0.0.1:6443/", certificate-authority-data: ${Buffer.from("CA-PEM").toString("base64")}}
- name: other-c
  cluster: {server: "https://other:6443", insecure-skip-tls-verify: true}
users:
- name: kind-u
  user: {client-certificate: client.crt, client-key: client.key}
- name: other-u
  user: {token: abc}
`,
    );
    expect(kubeconfigConfig(kc)).toEqual({ server: "https://127.0.0.1:6443", ca: "CA-PEM", cert: "CERT", key: "KEY", namespace: "apps", source: `kubeconfig ${kc} context kind` });
    expect(kubeconfigConfig(kc, { context: "other" })).toMatchObject({ server: "https://other:6443", token: "abc", insecureSkipTlsVerify: true });
    expect(loadK8sConfig({ env: { KUBECONFIG: `${kc}:/nope` } }).server).toBe("https://127.0.0.1:6443");
    expect(() => kubeconfigConfig(kc, { context: "missing" })).toThrow(/context "missing" not found/);
    const execKc = join(dir, "exec");
    writeFileSync(execKc, "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: https://x}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n");
    expect(() => kubeconfigConfig(execKc)).toThrow(/exec or auth-provider plugin/);
  });
});

describe("ListWatch", () => {
  test("lists in pages, then watches: ADDED/MODIFIED/DELETED in order; the token is sent", async () => {
    const { api, client } = serve();
    for (const n of ["a", "b", "c"]) api.put(PODS, podFixture({ name: n, node: NODE }));
    const seen: string[] = [];
    const lw = new ListWatch<K8sObject>(client, { path: PODS, limit: 2, ...FAST }, {
      added: (o) => seen.push(`+${o.metadata?.name}`),
      modified: (o) => seen.push(`~${o.metadata?.name}`),
      deleted: (o) => seen.push(`-${o.metadata?.name}`),
    });
    lw.start();
    stops.push(() => lw.stop());
    await lw.synced;
    expect(seen).toEqual(["+a", "+b", "+c"]);
    expect(api.requests.filter((r) => r.startsWith(PODS) && !r.includes("watch=1"))).toHaveLength(2); // two pages
    await until("watch open", () => api.watching(PODS) === 1);
    expect(api.requests.at(-1)).toContain(`resourceVersion=${api.resourceVersion}`);
    expect(api.requests.at(-1)).toContain("allowWatchBookmarks=true");
    api.put(PODS, podFixture({ name: "d", node: NODE }));
    api.put(PODS, podFixture({ name: "a", node: NODE, labels: { x: "1" } }));
    api.remove(PODS, "b", "default");
    await until("3 events", () => seen.length === 6);
    expect(seen.slice(3)).toEqual(["+d", "~a", "-b"]);
    expect([...lw.items.keys()].sort()).toEqual(["default/a", "default/c", "default/d"]);
    expect(lw.resourceVersion).toBe(api.resourceVersion);
  });

  test("chunked watch stream cut anywhere: mid-event, mid-character, several events in one chunk", async () => {
    const { api, client } = serve();
    const seen: string[] = [];
    const lw = new ListWatch<K8sObject>(client, { path: PODS, ...FAST }, {
      added: (o) => seen.push(`+${o.metadata?.name}:${o.metadata?.labels?.team ?? ""}`),
      modified: (o) => seen.push(`~${o.metadata?.name}:${o.metadata?.labels?.team ?? ""}`),
    });
    lw.start();
    stops.push(() => lw.stop());
    await lw.synced;
    await until("watch open", () => api.watching(PODS) === 1);
    // Three events as one byte stream, cut in the middle of the first object, inside the
    // two bytes of "é" (a label value), and so that the second event's end and the whole
    // third share a chunk.
    const objs = [podFixture({ name: "a", node: NODE, labels: { team: "caf\u00e9" } }), podFixture({ name: "b", node: NODE }), podFixture({ name: "a", node: NODE, labels: { team: "t2" } })];
    let split = -1;
    await api.putChunked(PODS, objs, (bytes) => {
      split = bytes.findIndex((b, i) => b === 0xc3 && bytes[i + 1] === 0xa9) + 1; // between the two bytes of é
      const firstEnd = bytes.indexOf(0x0a);
      return [40, split, firstEnd + 200];
    });
    expect(split).toBeGreaterThan(40);
    await until("three events", () => seen.length === 3);
    expect(seen).toEqual(["+a:caf\u00e9", "+b:", "~a:t2"]);
    expect(lw.resourceVersion).toBe(api.resourceVersion);
    expect(lw.stats.errors).toBe(0);
  });

  test("a bookmark advances resourceVersion; the next watch starts from it", async () => {
    const { api, client } = serve();
    api.put(PODS, podFixture({ name: "a", node: NODE }));
    const lw = new ListWatch<K8sObject>(client, { path: PODS, ...FAST }, {});
    lw.start();
    stops.push(() => lw.stop());
    await lw.synced;
    await until("watch open", () => api.watching(PODS) === 1);
    const before = lw.resourceVersion;
    api.bump(40); // other collections moved the revision on
    api.bookmark(PODS);
    await until("bookmark seen", () => lw.stats.bookmarks === 1);
    expect(Number(lw.resourceVersion)).toBe(Number(before) + 40);
    api.endWatches(); // a server-side timeout
    await until("re-watch", () => lw.stats.watches === 2);
    const watches = api.requests.filter((r) => r.includes("watch=1"));
    expect(watches.at(-1)).toContain(`resourceVersion=${Number(before) + 40}`);
    expect(lw.stats.lists).toBe(1); // renewed without a re-list
  });

  for (const how of ["an ERROR event with code 410", "HTTP 410"] as const) {
    test(`a watch ending in 410 Gone (${how}) re-lists without losing a pod; the gap's changes are reported`, async () => {
      const { api, client } = serve();
      api.put(PODS, podFixture({ name: "keep", node: NODE }));
      api.put(PODS, podFixture({ name: "gone", node: NODE }));
      const seen: string[] = [];
      const lw = new ListWatch<K8sObject>(client, { path: PODS, ...FAST }, {
        added: (o) => seen.push(`+${o.metadata?.name}`),
        modified: (o) => seen.push(`~${o.metadata?.name}`),
        deleted: (o) => seen.push(`-${o.metadata?.name}`),
      });
      lw.start();
      stops.push(() => lw.stop());
      await lw.synced;
      await until("watch open", () => api.watching(PODS) === 1);
      // While the watch is down: one pod deleted, one created, one relabeled; history compacted.
      api.httpGoneOnWatch = how === "HTTP 410";
      api.removeSilently(PODS, "gone", "default");
      api.putSilently(PODS, podFixture({ name: "new", node: NODE }));
      api.putSilently(PODS, podFixture({ name: "keep", node: NODE, labels: { v: "2" } }));
      api.compact(false);
      api.endWatches();
      await until("re-list", () => lw.stats.lists === 2);
      expect(lw.stats.gone).toBe(1);
      // The list is sorted by name (gone, keep); then the re-list: gone deleted, keep changed, new added.
      expect(seen).toEqual(["+gone", "+keep", "-gone", "~keep", "+new"]);
      expect(seen.filter((s) => s === "-keep")).toEqual([]);
      expect([...lw.items.keys()].sort()).toEqual(["default/keep", "default/new"]);
      expect(lw.items.get("default/keep")?.metadata?.labels).toEqual({ v: "2" });
      // And it watches again, from the new list's resourceVersion.
      await until("watch open again", () => api.watching(PODS) === 1);
      api.put(PODS, podFixture({ name: "after", node: NODE }));
      await until("event after re-list", () => seen.includes("+after"));
    });
  }

  test("a 410 ERROR on an open watch (the server dropped its cache) re-lists", async () => {
    const { api, client } = serve();
    api.put(PODS, podFixture({ name: "a", node: NODE }));
    const lw = new ListWatch<K8sObject>(client, { path: PODS, ...FAST }, {});
    lw.start();
    stops.push(() => lw.stop());
    await lw.synced;
    await until("watch open", () => api.watching(PODS) === 1);
    api.compact(true);
    await until("re-list", () => lw.stats.lists === 2);
    expect([...lw.items.keys()]).toEqual(["default/a"]);
  });

  test("server errors: reported, retried with backoff, then synced", async () => {
    const { api, client } = serve();
    api.put(PODS, podFixture({ name: "a", node: NODE }));
    api.failNext = 3;
    const errors: string[] = [];
    const lw = new ListWatch<K8sObject>(client, { path: PODS, ...FAST }, { error: (e) => errors.push(e.message) });
    lw.start();
    stops.push(() => lw.stop());
    await lw.synced;
    expect(errors).toHaveLength(3);
    expect(errors[0]).toContain("HTTP 500: etcdserver: leader changed");
    expect(lw.items.size).toBe(1);
  });

  test("a wrong token: 401 reported, nothing listed", async () => {
    const { api } = serve();
    const errors: string[] = [];
    const lw = new ListWatch<K8sObject>(new K8sClient({ server: api.url, token: "wrong", source: "test" }), { path: PODS, ...FAST }, { error: (e) => errors.push(e.message) });
    lw.start();
    stops.push(() => lw.stop());
    await until("401", () => errors.length > 0);
    expect(errors[0]).toContain("HTTP 401: Unauthorized");
    expect(lw.items.size).toBe(0);
  });
});

describe("pod cache and scope resolver", () => {
  test("only this node's pods; by uid and container id; Tetragon's pod block", async () => {
    const { api, client } = serve();
    api.put(PODS, podFixture({ name: "web-7d9c5b4f6d-x2x9q", node: NODE, labels: { app: "web", "pod-template-hash": "7d9c5b4f6d" }, containers: [{ name: "nginx", id: hex(1), image: "docker.io/library/nginx:1.27" }], owner: { kind: "ReplicaSet", name: "web-7d9c5b4f6d" } }));
    api.put(PODS, podFixture({ name: "elsewhere", node: "node-b", containers: [{ name: "c", id: hex(2) }] }));
    const cache = new PodCache(client, { nodeName: NODE, ...FAST });
    cache.start();
    stops.push(() => cache.stop());
    await cache.synced;
    expect(api.requests[0]).toContain("fieldSelector=spec.nodeName%3Dnode-a");
    expect(cache.pods().map((p) => p.name)).toEqual(["web-7d9c5b4f6d-x2x9q"]);
    const hit = cache.byContainerId(`containerd://${hex(1)}`);
    expect(hit?.container.name).toBe("nginx");
    expect(cache.byContainerId(hex(2))).toBeUndefined();
    expect(podBlock(hit!.pod, hex(1), 12)).toEqual({
      namespace: "default",
      name: "web-7d9c5b4f6d-x2x9q",
      uid: hit!.pod.uid,
      container: {
        id: `containerd://${hex(1)}`,
        name: "nginx",
        image: { id: "docker.io/library/busybox@sha256:c3839dd800b9eb7603340509769c43e146a74c63dca3045a8e7dc8ee07e53966", name: "docker.io/library/nginx:1.27" },
        start_time: "2026-12-03T16:00:00Z",
        pid: 12,
      },
      pod_labels: { app: "web", "pod-template-hash": "7d9c5b4f6d" },
      workload: "web",
      workload_kind: "Deployment",
    });
    expect(podInfoOf({ metadata: { name: "x" } })).toBeUndefined();
  });

  test("a pod relabeled out of the selector leaves the resolved set; back in, it returns; deleted, it leaves", async () => {
    const { api, client } = serve();
    api.put(PODS, podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx" }, containers: [{ name: "nginx", id: hex(10) }, { name: "sidecar", id: hex(11) }] }));
    api.put(PODS, podFixture({ name: "redis-1", node: NODE, labels: { app: "redis" }, containers: [{ name: "redis", id: hex(12) }] }));
    api.put(PODS, podFixture({ name: "nginx-vendor", namespace: "vendor", node: NODE, labels: { app: "nginx" }, containers: [{ name: "nginx", id: hex(13) }] }));
    const cache = new PodCache(client, { nodeName: NODE, ...FAST });
    cache.start();
    stops.push(() => cache.stop());
    await cache.synced;
    const cgroups = new Map([[hex(10), 1000n], [hex(11), 1001n], [hex(12), 1002n], [hex(13), 1003n]]);
    const resolver = new ScopeResolver(cache, (id) => cgroups.get(id));
    stops.push(() => resolver.close());
    const changes: ScopeChange[] = [];
    const scope = scopeOfPolicy({ kind: "TracingPolicyNamespaced", metadata: { name: "p", namespace: "default" }, spec: { podSelector: { matchLabels: { app: "nginx" } } } });
    expect(isScoped(scope)).toBe(true);
    expect(includesHost(scope)).toBe(false);
    resolver.track("p", scope, (c) => changes.push(c));
    const ids = () => new Set(resolver.members("p").map((m) => m.cgroupId));
    // The namespaced policy sees default/nginx-1's two containers, not vendor's nginx.
    expect(ids()).toEqual(new Set([1000n, 1001n]));
    expect(changes).toHaveLength(1);
    api.put(PODS, podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx-canary" }, containers: [{ name: "nginx", id: hex(10) }, { name: "sidecar", id: hex(11) }] }));
    await until("relabeled out", () => resolver.members("p").length === 0);
    expect(changes.at(-1)?.removed.map((m) => m.cgroupId).sort()).toEqual([1000n, 1001n]);
    expect(changes.at(-1)?.added).toEqual([]);
    api.put(PODS, podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx" }, containers: [{ name: "nginx", id: hex(10) }, { name: "sidecar", id: hex(11) }] }));
    await until("back in", () => resolver.members("p").length === 2);
    // A label change elsewhere changes nothing: no listener call.
    const n = changes.length;
    api.put(PODS, podFixture({ name: "redis-1", node: NODE, labels: { app: "redis", v: "2" }, containers: [{ name: "redis", id: hex(12) }] }));
    await until("redis updated", () => cache.pods().find((p) => p.name === "redis-1")?.labels.v === "2");
    expect(changes.length).toBe(n);
    api.remove(PODS, "nginx-1", "default");
    await until("deleted", () => resolver.members("p").length === 0);
  });

  test("containerSelector, implicit namespace label, matchExpressions, cgroup ids filled in on refresh", async () => {
    const { api, client } = serve();
    api.put(PODS, podFixture({ name: "a", node: NODE, labels: { tier: "web" }, containers: [{ name: "nginx", id: hex(20) }, { name: "sidecar", id: hex(21) }] }));
    api.put(PODS, podFixture({ name: "b", namespace: "kube-system", node: NODE, labels: { tier: "web" }, containers: [{ name: "nginx", id: hex(22) }] }));
    const cache = new PodCache(client, { nodeName: NODE, ...FAST });
    cache.start();
    stops.push(() => cache.stop());
    await cache.synced;
    const cgroups = new Map<string, bigint>();
    const resolver = new ScopeResolver(cache, (id) => cgroups.get(id));
    stops.push(() => resolver.close());
    const scope = scopeOfPolicy({
      kind: "TracingPolicy",
      metadata: { name: "q" },
      spec: {
        podSelector: { matchExpressions: [{ key: "k8s:io.kubernetes.pod.namespace", operator: "NotIn", values: ["kube-system"] }, { key: "tier", operator: "Exists" }] },
        containerSelector: { matchLabels: { name: "nginx" } },
      },
    });
    const changes: ScopeChange[] = [];
    resolver.track("q", scope, (c) => changes.push(c));
    expect(resolver.members("q").map((m) => [m.pod, m.container, m.cgroupId])).toEqual([["a", "nginx", undefined]]);
    cgroups.set(hex(20), 42n);
    resolver.refresh();
    expect(resolver.members("q")[0]?.cgroupId).toBe(42n);
    expect(changes.at(-1)?.added[0]?.cgroupId).toBe(42n);
    expect(changes.at(-1)?.removed[0]?.cgroupId).toBeUndefined();
    expect(() => scopeOfPolicy({ spec: { podSelector: { matchExpressions: [{ key: "a", operator: "Equal" }] } } })).toThrow(/spec.podSelector.matchExpressions\[0\].operator/);
    expect(isScoped(scopeOfPolicy({ kind: "TracingPolicy", spec: {} }))).toBe(false);
    expect(includesHost(scopeOfPolicy({ spec: { podSelector: {}, hostSelector: {} } }))).toBe(true);
  });
});

describe("TracingPolicy custom resources", () => {
  const crd = (name: string, call: string, namespace?: string) => ({
    apiVersion: "cilium.io/v1alpha1",
    kind: namespace ? "TracingPolicyNamespaced" : "TracingPolicy",
    metadata: { name, ...(namespace ? { namespace } : {}), managedFields: [{ manager: "kubectl" }] },
    spec: { kprobes: [{ call, syscall: false }] },
  });

  test("added, modified and deleted CRs of both kinds reach the sink; metadata-only changes do not; a refusal does not stop the watch", async () => {
    const { api, client } = serve();
    api.put(TP, crd("files", "security_file_open"));
    const calls: string[] = [];
    const docs: K8sObject[] = [];
    const errors: string[] = [];
    const sink: PolicySink = {
      async apply(doc, ref: PolicyRef, source) {
        if (ref.name === "bad") throw new Error("spec.kprobes[0].call: unknown function");
        docs.push(doc);
        calls.push(`apply ${source} ${JSON.stringify((doc.spec as { kprobes: { call: string }[] }).kprobes[0]!.call)}`);
      },
      async remove(ref, source) {
        calls.push(`remove ${source} ${ref.kind}`);
      },
    };
    const w = new TracingPolicyWatcher(client, sink, { ...FAST, onError: (e, ref) => errors.push(`${ref?.name}: ${e.message}`) });
    w.start();
    stops.push(() => w.stop());
    await w.synced();
    expect(calls).toEqual(['apply k8s:TracingPolicy/files "security_file_open"']);
    // The document handed over is a clean policy: no server fields.
    expect(docs[0]).toEqual({ apiVersion: "cilium.io/v1alpha1", kind: "TracingPolicy", metadata: { name: "files" }, spec: { kprobes: [{ call: "security_file_open", syscall: false }] } });
    await until("both watches open", () => api.watching(TP) === 1 && api.watching(TPN) === 1);

    api.put(TPN, crd("shells", "sys_execve", "vendor-app"));
    await until("namespaced applied", () => calls.length === 2);
    expect(calls[1]).toBe('apply k8s:TracingPolicyNamespaced/vendor-app/shells "sys_execve"');
    expect(docs[1]?.metadata).toEqual({ name: "shells", namespace: "vendor-app" });

    api.put(TP, crd("files", "security_file_permission"));
    await until("modified applied", () => calls.length === 3);
    expect(calls[2]).toBe('apply k8s:TracingPolicy/files "security_file_permission"');

    // Labels only: same generation, not applied again.
    api.put(TP, { ...crd("files", "security_file_permission"), metadata: { name: "files", labels: { team: "sec" } } });
    api.put(TP, crd("bad", "nope"));
    await until("refusal reported", () => errors.length === 1);
    expect(errors[0]).toBe("bad: spec.kprobes[0].call: unknown function");

    api.remove(TP, "files");
    api.remove(TPN, "shells", "vendor-app");
    await until("removed", () => calls.length === 5);
    await w.idle();
    expect(calls.slice(3)).toEqual(["remove k8s:TracingPolicy/files TracingPolicy", "remove k8s:TracingPolicyNamespaced/vendor-app/shells TracingPolicyNamespaced"]);
  });

  test("a CR deleted while the watch was gone is removed on re-list", async () => {
    const { api, client } = serve();
    api.put(TP, crd("a", "security_file_open"));
    api.put(TP, crd("b", "security_file_open"));
    const calls: string[] = [];
    const w = new TracingPolicyWatcher(client, { apply: async (_d, r) => void calls.push(`+${r.name}`), remove: async (r) => void calls.push(`-${r.name}`) }, FAST);
    w.start();
    stops.push(() => w.stop());
    await w.synced();
    await until("watches open", () => api.watching(TP) === 1);
    api.removeSilently(TP, "a");
    api.compact(false);
    api.endWatches();
    await until("re-listed", () => calls.includes("-a"));
    expect(calls).toEqual(["+a", "+b", "-a"]);
  });
});

describe("CRs into the agent's policy store (policyStoreSink, real parser)", () => {
  const policy = (name: string, file: string, namespace?: string) => ({
    apiVersion: "cilium.io/v1alpha1",
    kind: namespace ? "TracingPolicyNamespaced" : "TracingPolicy",
    metadata: { name, ...(namespace ? { namespace } : {}) },
    spec: {
      kprobes: [{ call: "security_file_open", syscall: false, args: [{ index: 0, type: "file" }], selectors: [{ matchArgs: [{ index: 0, operator: "Equal", values: [file] }], matchActions: [{ action: "Sigkill" }] }] }],
    },
  });

  test("added, changed, refused (old version kept), name conflicts refused, deleted", async () => {
    const { api, client } = serve();
    const store = new PolicyStore(parsePolicies);
    store.add(secureOpenPolicy({ name: "from-file", file: "/etc/shadow", allowed: "/usr/bin/passwd" }), { source: "file:/etc/ward/p.yaml", file: "/etc/ward/p.yaml" });
    const errors: string[] = [];
    const w = new TracingPolicyWatcher(client, policyStoreSink(store), { ...FAST, onError: (e) => errors.push(e.message) });
    api.put(TP, policy("files", "/etc/passwd"));
    api.put(TPN, policy("shells", "/bin/sh", "vendor-app"));
    w.start();
    stops.push(() => w.stop());
    await w.synced();
    expect(store.list().map((p) => [p.name, p.kind, p.source])).toEqual([
      ["files", "TracingPolicy", "k8s:TracingPolicy/files"],
      ["from-file", "TracingPolicy", "file:/etc/ward/p.yaml"],
      ["shells", "TracingPolicyNamespaced", "k8s:TracingPolicyNamespaced/vendor-app/shells"],
    ]);
    await until("watches open", () => api.watching(TP) === 1 && api.watching(TPN) === 1);

    api.put(TP, policy("files", "/etc/group"));
    await until("replaced", () => store.get("files")?.text.includes("/etc/group"));
    // An invalid edit: refused, the previous version stays.
    api.put(TP, { ...policy("files", "/etc/group"), spec: { kprobes: [{ call: "security_file_open", selectors: [{ matchActions: [{ action: "Explode" }] }] }] } });
    await until("refused", () => errors.length === 1);
    expect(errors[0]).toContain("k8s:TracingPolicy/files");
    expect(errors[0]).toContain("Explode");
    await w.idle();
    expect(store.get("files")?.text).toContain("/etc/group");
    // A CR whose name a file policy holds.
    api.put(TP, policy("from-file", "/etc/hosts"));
    await until("conflict", () => errors.length === 2);
    expect(errors[1]).toBe('policy "from-file" from k8s:TracingPolicy/from-file is not applied: the name is taken by file:/etc/ward/p.yaml; rename one');
    expect(store.get("from-file")?.source).toBe("file:/etc/ward/p.yaml");

    api.remove(TP, "files");
    api.remove(TP, "from-file"); // not ours: the file policy stays
    api.remove(TPN, "shells", "vendor-app");
    await until("deleted", () => store.get("files") === undefined && store.get("shells") === undefined);
    await w.idle();
    expect(store.list().map((p) => p.name)).toEqual(["from-file"]);
  });
});
