// Scope membership over registry workloads (workloadInScope), the scope's kernel set as
// WorkloadScopes writes it (through a recording fake of the kernel maps), the docker/pod
// fields of process blocks (WorkloadIdentity), and GET /v1/workloads.
import { describe, expect, test } from "bun:test";
import { encodeEvent, encodeProcess, ProcessEventWriter } from "../../../src/events/tetragon.ts";
import { BootClock } from "../../../src/events/time.ts";
import { emptyCreds } from "../../../src/events/process-cache.ts";
import { describeScope, scopeOfPolicy, workloadInScope, type PolicyScope } from "../../../src/workloads/k8s/scope.ts";
import { WorkloadIdentity } from "../../../src/workloads/identity.ts";
import { WorkloadRegistry, type Workload } from "../../../src/workloads/registry.ts";
import { cgroupLevel, ScopeMapsError, type ScopeCgroup, type ScopeMaps } from "../../../src/workloads/scope-maps.ts";
import { ScopeError, WorkloadScopes } from "../../../src/workloads/scopes.ts";
import { AUTH, makeFixture } from "../lib/api-fixture.ts";

const ID = "6b742e38ee3a212239e6d48b2954435e1a9c4d2f7b8e0a1c3d5f7e9b0a2c4d6e";

function wl(over: Partial<Workload> = {}): Workload {
  return {
    key: ID, cgroupId: 4242n, cgroupPath: "/kubepods.slice/kubepods-pod1.slice/cri-containerd-x.scope", runtime: "containerd", containerId: ID,
    name: "web", image: "docker.io/library/nginx:1.27", annotations: { "io.kubernetes.container.name": "web" }, source: "oci-hook",
    pod: { namespace: "vendor-app", name: "web-1", uid: "uid-1", labels: { app: "web", tier: "front" }, container: "web" },
    ...over,
  };
}

/** Records the sets WorkloadScopes writes, like ScopeMaps would in the kernel. */
class FakeMaps {
  readonly sets = new Map<number, ScopeCgroup[]>();
  next = 1;
  allocate(): number {
    const id = this.next++;
    this.sets.set(id, []);
    return id;
  }
  release(id: number): void {
    this.sets.delete(id);
  }
  set(id: number, want: readonly ScopeCgroup[]): void {
    if (want.some((c) => c.level > 31)) throw new ScopeMapsError("too deep");
    this.sets.set(id, [...want]);
  }
}

describe("workloadInScope", () => {
  const ns: PolicyScope = { namespace: "vendor-app" };
  test("namespace, podSelector (with the implicit namespace label) and containerSelector AND together", () => {
    expect(workloadInScope(ns, wl())).toBe(true);
    expect(workloadInScope({ namespace: "other" }, wl())).toBe(false);
    expect(workloadInScope({ podSelector: { matchLabels: { app: "web" } } }, wl())).toBe(true);
    expect(workloadInScope({ podSelector: { matchLabels: { "k8s:io.kubernetes.pod.namespace": "vendor-app" } } }, wl())).toBe(true);
    expect(workloadInScope({ podSelector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["front"] }] } }, wl())).toBe(false);
    expect(workloadInScope({ namespace: "vendor-app", containerSelector: { matchLabels: { name: "web" } } }, wl())).toBe(true);
    expect(workloadInScope({ namespace: "vendor-app", containerSelector: { matchLabels: { name: "db" } } }, wl())).toBe(false);
    expect(workloadInScope({ containerSelector: { matchLabels: { repo: "docker.io/library/nginx" } } }, wl())).toBe(true);
  });

  test("without pod metadata only a containerSelector selects (by name, id or annotation)", () => {
    const bare = wl({ pod: undefined, source: "cgroup-scan", name: undefined, image: undefined, annotations: {} });
    expect(workloadInScope(ns, bare)).toBe(false);
    expect(workloadInScope({ podSelector: { matchLabels: { app: "web" } } }, bare)).toBe(false);
    expect(workloadInScope({ containerSelector: { matchLabels: { id: ID } } }, bare)).toBe(true);
    expect(workloadInScope({ containerSelector: { matchLabels: { name: "web" } } }, bare)).toBe(false);
    const annotated = wl({ pod: undefined, annotations: { "org.example/team": "payments" } });
    expect(workloadInScope({ containerSelector: { matchLabels: { "org.example/team": "payments" } } }, annotated)).toBe(true);
    expect(workloadInScope({ containerSelector: { matchLabels: { name: "web" } } }, annotated)).toBe(true);
  });

  test("scopeOfPolicy and describeScope", () => {
    const s = scopeOfPolicy({ kind: "TracingPolicyNamespaced", metadata: { name: "p", namespace: "vendor-app" }, spec: { podSelector: { matchLabels: { app: "web" } }, containerSelector: { matchExpressions: [{ key: "name", operator: "In", values: ["web", "api"] }] } } });
    expect(describeScope(s)).toBe("namespace vendor-app; podSelector app=web; containerSelector name In (web, api)");
    expect(describeScope({})).toBe("every process");
    expect(cgroupLevel("/")).toBe(0);
    expect(cgroupLevel("/a/b.slice/c.scope")).toBe(3);
  });
});

describe("WorkloadScopes", () => {
  test("a tracked scope's kernel set follows upserts and removes; untrack frees the id", async () => {
    const reg = new WorkloadRegistry();
    const maps = new FakeMaps();
    const scopes = new WorkloadScopes(reg, maps as unknown as ScopeMaps);
    await scopes.start();
    const id = scopes.track("p", { namespace: "vendor-app" });
    expect(maps.sets.get(id)).toEqual([]);
    expect(scopes.report("p")).toMatchObject({ scope: "namespace vendor-app", id, members: 0 });
    expect(scopes.report("p")?.note).toContain("enforces nothing");
    await reg.upsert(wl());
    expect(maps.sets.get(id)).toEqual([{ cgroupId: 4242n, level: 3 }]);
    expect(scopes.report("p")).toMatchObject({ members: 1, workloads: [ID] });
    expect(scopes.report("p")?.note).toBeUndefined();
    // moved to another namespace: out
    await reg.upsert(wl({ pod: { namespace: "other", name: "x", labels: {} } }));
    expect(maps.sets.get(id)).toEqual([]);
    await reg.upsert(wl());
    await reg.remove(ID);
    expect(maps.sets.get(id)).toEqual([]);
    scopes.untrack("p");
    expect(maps.sets.has(id)).toBe(false);
    expect(scopes.report("p")).toBeUndefined();
    scopes.close();
  });

  test("hostSelector is refused; unscoped is id 0; a kernel write failure rejects the upsert and status says why", async () => {
    const reg = new WorkloadRegistry();
    const scopes = new WorkloadScopes(reg, new FakeMaps() as unknown as ScopeMaps);
    await scopes.start();
    expect(() => scopes.track("h", { podSelector: { matchLabels: { app: "web" } }, hostSelector: {} })).toThrow(ScopeError);
    expect(scopes.track("u", {})).toBe(0);
    scopes.track("p", { namespace: "vendor-app" });
    const deep = wl({ cgroupPath: `/${Array.from({ length: 40 }, (_, i) => `d${i}`).join("/")}` });
    await expect(reg.upsert(deep)).rejects.toThrow(/too deep/);
    expect(scopes.report("p")?.note).toContain("kernel scope not updated");
    scopes.close();
  });
});

describe("WorkloadIdentity and the process block", () => {
  test("docker and pod in Tetragon's order (after auid), by cgroup id; a registry change is seen", async () => {
    const reg = new WorkloadRegistry();
    const ident = new WorkloadIdentity(reg);
    await ident.start();
    const proc = {
      execId: "eA==", pid: 7, tid: 7, ktime: 0n, binary: "/bin/cat", arguments: "", cwd: "/", flags: 0,
      creds: { ...emptyCreds(), cgroupId: 4242n }, parentExecId: "eQ==", ppid: 1,
    };
    const opts = { nodeName: "n", clock: new BootClock(), workloads: ident };
    expect(encodeProcess(proc, opts).docker).toBeUndefined();
    await reg.upsert(wl());
    const o = encodeProcess(proc, opts);
    expect(Object.keys(o)).toEqual(["exec_id", "pid", "uid", "cwd", "binary", "flags", "auid", "pod", "docker", "parent_exec_id", "tid"].filter((k) => k in o));
    expect(o.docker).toBe(ID.slice(0, 31));
    expect(o.pod).toEqual({
      namespace: "vendor-app", name: "web-1", uid: "uid-1",
      container: { id: `containerd://${ID}`, name: "web", image: { name: "docker.io/library/nginx:1.27" } },
      pod_labels: { app: "web", tier: "front" },
    });
    // The lean writer writes the same bytes as the object encoder.
    const ev = { type: "process_exec" as const, time: 1n, process: proc, parent: { ...proc, pid: 1, tid: 1 } };
    expect(JSON.parse(new ProcessEventWriter(opts).line(ev))).toEqual(encodeEvent(ev, opts));
    expect(new ProcessEventWriter(opts).line(ev)).toBe(JSON.stringify(encodeEvent(ev, opts)));
    await reg.remove(ID);
    expect(encodeProcess(proc, opts).docker).toBeUndefined();
    ident.close();
  });
});

describe("GET /v1/workloads", () => {
  test("lists the registry (cgroup ids as decimal strings) and gets one by key; 404 for an unknown key", async () => {
    const reg = new WorkloadRegistry();
    await reg.upsert(wl());
    const f = makeFixture({ workloads: reg });
    const r = await f.app.request("/v1/workloads", { headers: AUTH });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { workloads: Record<string, unknown>[] };
    expect(body.workloads).toEqual([expect.objectContaining({ key: ID, cgroup_id: "4242", runtime: "containerd", container_id: ID, source: "oci-hook" })]);
    expect((await f.app.request(`/v1/workloads/${ID}`, { headers: AUTH })).status).toBe(200);
    const miss = await f.app.request("/v1/workloads/nope", { headers: AUTH });
    expect(miss.status).toBe(404);
    expect(((await miss.json()) as { error: { code: string } }).error.code).toBe("workload_not_found");
    expect((await f.app.request("/v1/workloads")).status).toBe(401);
  });
});

describe("ward status text", () => {
  test("names each scoped policy's scope and members, and the workloads by source", async () => {
    const { formatStatus } = await import("../../../src/cli/commands/status.ts");
    const text = formatStatus({
      version: "0", node_name: "n", pid: 1, started_at: "", uptime_seconds: 1, ready: true, sensors: [],
      events: { total: 0, by_type: {}, lost: {}, subscribers: 0, sinks: [] },
      workloads: { total: 2, by_source: { "cgroup-scan": 1, "oci-hook": 1 } },
      policies: [{
        name: "p", kind: "TracingPolicyNamespaced", enabled: true, mode: "enforce", state: "enforcing (scope: namespace a; 0 workloads)", source: "api", added_at: "",
        scope: { scope: "namespace a", id: 1, members: 0, workloads: [], note: "no workload is in scope yet: the policy enforces nothing until one is" },
      }],
    });
    expect(text).toContain("workloads: 2 (cgroup-scan 1, oci-hook 1)");
    expect(text).toContain("    scope namespace a: 0 workloads (no workload is in scope yet: the policy enforces nothing until one is)");
  });
});
