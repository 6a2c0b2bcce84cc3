// The pod watch feeding the workload registry (src/workloads/k8s/pod-feed.ts), against the
// local list/watch stand-in (test/lib/fake-kube-api.ts; no API server exists here) and a
// directory tree laid out as kubelet's systemd cgroup driver lays out the cgroup v2 tree
// (scanContainerCgroups reads names and inode numbers, which a plain tree has too; the
// kernel test with a real cgroup is in test/e2e/kubernetes.test.ts).
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { K8sClient } from "../../../src/workloads/k8s/client.ts";
import { PodCache, podBlock } from "../../../src/workloads/k8s/pods.ts";
import { cgroupTreeScan, PodWorkloadFeed } from "../../../src/workloads/k8s/pod-feed.ts";
import { WorkloadRegistry, type Workload, type WorkloadChange } from "../../../src/workloads/registry.ts";
import { podBlockOf } from "../../../src/workloads/identity.ts";
import { matchesLabels, parseLabelSelector } from "../../../src/workloads/label-selector.ts";
import { FakeKubeApi, podFixture } from "../../lib/fake-kube-api.ts";

const PODS = "/api/v1/pods";
const TOKEN = "pod-feed-token";
const NODE = "node-a";
const hex = (n: number) => n.toString(16).padStart(64, "0");
const FAST = { backoff: { initialMs: 10, maxMs: 50 } };

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

/** A cgroup-like tree: kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope. */
function tree() {
  const root = mkdtempSync(join(tmpdir(), "ward-podfeed-"));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const qos = "kubepods.slice/kubepods-besteffort.slice";
  return {
    root,
    /** Creates the container's directory; returns its relative path and inode (the cgroup id on cgroupfs). */
    container(id: string, podUid = "0b9e4c3a-5d2f-4e6b-8a1c-2f3e4d5c6b7a"): { path: string; ino: bigint } {
      const rel = `/${qos}/kubepods-besteffort-pod${podUid.replace(/-/g, "_")}.slice/cri-containerd-${id}.scope`;
      mkdirSync(join(root, rel), { recursive: true });
      return { path: rel, ino: statSync(join(root, rel), { bigint: true }).ino };
    },
  };
}

async function setup(opts: { retryMs?: number } = {}) {
  const api = new FakeKubeApi({ token: TOKEN, kinds: { [PODS]: "Pod" } });
  cleanups.push(() => api.stop());
  const t = tree();
  const registry = new WorkloadRegistry();
  const changes: WorkloadChange[] = [];
  await registry.subscribe((c) => {
    changes.push(c);
  });
  const cache = new PodCache(new K8sClient({ server: api.url, token: TOKEN, source: "test" }), { nodeName: NODE, ...FAST });
  const feed = new PodWorkloadFeed(cache, registry, { scan: cgroupTreeScan(t.root), retryMs: opts.retryMs ?? 20, maxRetryMs: 100 });
  const start = async () => {
    cache.start();
    await cache.synced;
    await feed.start();
  };
  cleanups.push(async () => {
    await feed.stop();
    await cache.stop();
  });
  return { api, t, registry, changes, cache, feed, start };
}

const kube = (r: WorkloadRegistry) => r.all().filter((w) => w.source === "kubernetes").sort((a, b) => a.key.localeCompare(b.key));

describe("pod watch -> workload registry", () => {
  test("each running container of this node's pods is a workload with its cgroup id and pod metadata; the pod block matches the pod cache's", async () => {
    const s = await setup();
    const web = s.t.container(hex(1));
    const side = s.t.container(hex(2));
    s.t.container(hex(3)); // a container of another node's pod: its cgroup exists here but the pod is not ours
    s.api.put(PODS, podFixture({ name: "web-7d9c5b4f6d-x2x9q", node: NODE, labels: { app: "web", "pod-template-hash": "7d9c5b4f6d" }, owner: { kind: "ReplicaSet", name: "web-7d9c5b4f6d" }, containers: [{ name: "nginx", id: hex(1), image: "docker.io/library/nginx:1.27" }, { name: "sidecar", id: hex(2) }] }));
    s.api.put(PODS, podFixture({ name: "elsewhere", node: "node-b", containers: [{ name: "c", id: hex(3) }] }));
    s.api.put(PODS, podFixture({ name: "job-1", node: NODE, containers: [{ name: "done", id: hex(4), state: "terminated" }] }));
    await s.start();
    const ws = kube(s.registry);
    expect(ws.map((w) => [w.key, w.cgroupId, w.cgroupPath, w.runtime, w.name])).toEqual([
      [hex(1), web.ino, web.path, "containerd", "nginx"],
      [hex(2), side.ino, side.path, "containerd", "sidecar"],
    ]);
    const uid = s.cache.pods().find((p) => p.name === "web-7d9c5b4f6d-x2x9q")!.uid;
    expect(ws[0]!.pod).toEqual({
      namespace: "default",
      name: "web-7d9c5b4f6d-x2x9q",
      uid,
      labels: { app: "web", "pod-template-hash": "7d9c5b4f6d" },
      container: "nginx",
      workload: "web",
      workloadKind: "Deployment",
      runtimeContainerId: `containerd://${hex(1)}`,
      imageId: "docker.io/library/busybox@sha256:c3839dd800b9eb7603340509769c43e146a74c63dca3045a8e7dc8ee07e53966",
      startedAt: "2026-12-03T16:00:00Z",
    });
    expect(ws[0]!.image).toBe("docker.io/library/nginx:1.27");
    // The event's pod block from the registry is the one the pod cache renders (the events'
    // block is per cgroup, so without container.pid).
    const hit = s.cache.byContainerId(hex(1))!;
    expect(podBlockOf(ws[0]!)).toEqual(podBlock(hit.pod, hex(1)));
    expect(podBlockOf(ws[0]!)).toMatchObject({ workload: "web", workload_kind: "Deployment", container: { id: `containerd://${hex(1)}`, start_time: "2026-12-03T16:00:00Z", image: { name: "docker.io/library/nginx:1.27" } } });
    expect(s.feed.stats).toMatchObject({ workloads: 2, pending: 0, errors: 0 });
  });

  test("a container whose cgroup does not exist yet waits, and is added when the cgroup appears (rescan) or another feeder reports it", async () => {
    const s = await setup({ retryMs: 20 });
    s.api.put(PODS, podFixture({ name: "early", node: NODE, labels: { app: "x" }, containers: [{ name: "a", id: hex(10) }, { name: "b", id: hex(11) }] }));
    await s.start();
    expect(kube(s.registry)).toEqual([]);
    expect(s.feed.pending().sort()).toEqual([`default/early/a (${hex(10).slice(0, 12)})`, `default/early/b (${hex(11).slice(0, 12)})`]);
    // The runtime creates the first container's cgroup: the rescan finds it.
    const a = s.t.container(hex(10));
    await until("a resolved by rescan", () => s.registry.get(hex(10))?.source === "kubernetes");
    expect(s.registry.get(hex(10))!.cgroupId).toBe(a.ino);
    // The second one is reported by another feeder (the cgroup scan or the OCI hook) at
    // a cgroup id the tree does not have: the pod feed takes that id at once and adds the pod.
    const scanned: Workload = { key: hex(11), cgroupId: 424242n, cgroupPath: "/x/cri-containerd-b.scope", runtime: "containerd", containerId: hex(11), annotations: { "io.kubernetes.container.name": "b" }, source: "cgroup-scan" };
    await s.registry.upsert(scanned);
    await until("b upgraded to kubernetes", () => s.registry.get(hex(11))?.source === "kubernetes");
    const b = s.registry.get(hex(11))!;
    expect([b.cgroupId, b.cgroupPath, b.pod?.name, b.pod?.labels, b.annotations]).toEqual([424242n, "/x/cri-containerd-b.scope", "early", { app: "x" }, { "io.kubernetes.container.name": "b" }]);
    expect(s.feed.pending()).toEqual([]);
    // An OCI hook reporting the container again (its pod without labels) does not take the
    // labels away: the pod watch's metadata is merged over it, the hook's annotations kept.
    await s.registry.upsert({ ...scanned, source: "oci-hook", annotations: { "io.kubernetes.cri.container-name": "b" }, pod: { namespace: "default", name: "early", labels: {} } });
    await until("merged again", () => s.registry.get(hex(11))?.source === "kubernetes");
    await s.feed.settled();
    expect([s.registry.get(hex(11))!.pod?.labels, s.registry.get(hex(11))!.annotations]).toEqual([{ app: "x" }, { "io.kubernetes.cri.container-name": "b" }]);
  });

  test("relabel: the workload is replaced with the new labels (a podSelector stops selecting it); container stopped or pod deleted: removed", async () => {
    const s = await setup();
    const c = s.t.container(hex(20));
    s.t.container(hex(21));
    s.api.put(PODS, podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx" }, containers: [{ name: "nginx", id: hex(20) }, { name: "sidecar", id: hex(21) }] }));
    await s.start();
    const sel = parseLabelSelector({ matchLabels: { app: "nginx" } }, "spec.podSelector");
    const selected = () => kube(s.registry).filter((w) => w.pod !== undefined && matchesLabels(sel, w.pod.labels)).map((w) => w.key);
    expect(selected()).toEqual([hex(20), hex(21)]);
    const before = s.changes.length;
    s.api.put(PODS, podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx-canary" }, containers: [{ name: "nginx", id: hex(20) }, { name: "sidecar", id: hex(21) }] }));
    await until("relabeled", () => selected().length === 0);
    await s.feed.settled();
    // Each container's workload replaced (removed old, added new) at the same cgroup.
    const relabel = s.changes.slice(before);
    expect(relabel.map((ch) => [ch.removed.map((w) => w.pod?.labels.app), ch.added.map((w) => w.pod?.labels.app)])).toEqual([
      [["nginx"], ["nginx-canary"]],
      [["nginx"], ["nginx-canary"]],
    ]);
    expect(s.registry.get(hex(20))!.cgroupId).toBe(c.ino);
    // A status update that changes nothing the registry holds is not an upsert.
    const n = s.changes.length;
    s.api.put(PODS, { ...podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx-canary" }, containers: [{ name: "nginx", id: hex(20) }, { name: "sidecar", id: hex(21) }] }), metadata: { name: "nginx-1", namespace: "default", labels: { app: "nginx-canary" }, annotations: { touched: "1" } } });
    await until("cache updated", () => s.cache.pods()[0]?.annotations.touched === "1");
    await s.feed.settled();
    expect(s.changes.length).toBe(n);
    // The sidecar exits: its workload goes, the other stays.
    s.api.put(PODS, podFixture({ name: "nginx-1", node: NODE, labels: { app: "nginx-canary" }, containers: [{ name: "nginx", id: hex(20) }, { name: "sidecar", id: hex(21), state: "terminated" }] }));
    await until("sidecar removed", () => s.registry.get(hex(21)) === undefined);
    expect(s.registry.get(hex(20))?.source).toBe("kubernetes");
    s.api.remove(PODS, "nginx-1", "default");
    await until("pod deleted", () => kube(s.registry).length === 0);
  });

  test("a watch ending in 410 Gone re-lists: changes made in the gap arrive, no pod that still exists leaves the registry", async () => {
    const s = await setup();
    for (const i of [30, 31, 32]) s.t.container(hex(i));
    s.api.put(PODS, podFixture({ name: "stays", node: NODE, labels: { app: "a" }, containers: [{ name: "c", id: hex(30) }] }));
    s.api.put(PODS, podFixture({ name: "relabeled", node: NODE, labels: { app: "a" }, containers: [{ name: "c", id: hex(31) }] }));
    s.api.put(PODS, podFixture({ name: "deleted", node: NODE, labels: { app: "a" }, containers: [{ name: "c", id: hex(32) }] }));
    await s.start();
    await until("watching", () => s.api.watching(PODS) === 1);
    const removedKeys = () => s.changes.flatMap((c) => c.removed.map((w) => w.key));
    const removedBefore = removedKeys().length;
    // During a gap (no watcher told): one pod relabeled, one deleted; then history is
    // compacted and the open watch ends with a 410 ERROR event.
    s.api.putSilently(PODS, podFixture({ name: "relabeled", node: NODE, labels: { app: "b" }, containers: [{ name: "c", id: hex(31) }] }));
    s.api.removeSilently(PODS, "deleted", "default");
    s.api.compact(true);
    await until("re-listed", () => s.cache.watch.stats.gone === 1 && s.cache.watch.stats.lists === 2);
    await until("gap applied", () => s.registry.get(hex(32)) === undefined && s.registry.get(hex(31))?.pod?.labels.app === "b");
    await s.feed.settled();
    expect(kube(s.registry).map((w) => w.pod?.name)).toEqual(["stays", "relabeled"]);
    // "stays" was never removed, not even for a moment.
    expect(removedKeys().slice(removedBefore).sort()).toEqual([hex(31), hex(32)]);
    // And the watch goes on from the re-list's resourceVersion.
    s.api.put(PODS, podFixture({ name: "stays", node: NODE, labels: { app: "c" }, containers: [{ name: "c", id: hex(30) }] }));
    await until("live again", () => s.registry.get(hex(30))?.pod?.labels.app === "c");
  });
});
