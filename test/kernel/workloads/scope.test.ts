// Workload scopes in the kernel: policies scoped to a namespace or a containerSelector hold
// only for processes in the scope's cgroups (and their sub-cgroups), through every
// mechanism: the generic sensor (a syscall Sigkill), the file guard (Sigkill on the
// protected file at open), fanotify (Override on the protected file), and the cgroup
// sock_addr programs (a connect Override). Real cgroups under the v2 root, real processes
// moved between them by writing cgroup.procs; the registry is driven directly. Membership
// changes never reload or re-attach a program: the link ids stay the same.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { basename, join } from "node:path";
import { BootClock } from "../../../src/events/time.ts";
import { validatePolicyText } from "../../../src/policy/validate.ts";
import type { TracingPolicy } from "../../../src/policy/types.ts";
import { FileGuard } from "../../../src/sensors/guard.ts";
import { GenericBackend } from "../../../src/sensors/generic-backend.ts";
import { GenericSensor } from "../../../src/sensors/generic.ts";
import { PolicyManager } from "../../../src/sensors/manager.ts";
import { hostHookFeatures } from "../../../src/sensors/resolve.ts";
import { SockBackend } from "../../../src/sensors/sock-backend.ts";
import { SockSensor } from "../../../src/sensors/sock.ts";
import { cgroupIdOf, cgroupV2Mount } from "../../../src/workloads/cgroup-identity.ts";
import { WorkloadRegistry, type Workload } from "../../../src/workloads/registry.ts";
import { ScopeMaps } from "../../../src/workloads/scope-maps.ts";
import { WorkloadScopes } from "../../../src/workloads/scopes.ts";
import { linkIdsOf } from "../../lib/bpf-links.ts";
import { TestCgroup } from "../../lib/cgroup.ts";
import { expectKilled, withDriver } from "../../lib/cgroup-shell.ts";
import { kernelTest, kernelUnavailable } from "../../lib/host.ts";
import { buildSockHelpers } from "../../lib/sock-helper.ts";
import { secureOpenPolicy } from "../../lib/talk-policies.ts";

const SECRET = "I love pizza!\n";
const T = 60_000;
const CONTAINER_ID = "5c0bd6e7a1f24b9e8d3c2a1b0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f10";
let dir = "";
let secret = "";
let helper = "";
let helperOther = "";
let registry: WorkloadRegistry | undefined;
let maps: ScopeMaps | undefined;
let scopes: WorkloadScopes | undefined;
let manager: PolicyManager | undefined;
let generic: GenericBackend | undefined;
let sock: SockBackend | undefined;
let cgIn: TestCgroup | undefined;
let cgOut: TestCgroup | undefined;
let server: Server | undefined;
let port = 0;
const logs: string[] = [];

const must = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`${what} not set up`);
  return v;
};

function policy(yaml: string): TracingPolicy {
  const r = validatePolicyText(yaml, "scope-test.yaml");
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || r.policies[0] === undefined) throw new Error(`bad test policy: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  return r.policies[0].policy;
}

/** The workload of a test cgroup, as the OCI hook would report a pod's container. */
function workloadOf(cg: TestCgroup, pod: Workload["pod"]): Workload {
  return {
    key: CONTAINER_ID,
    cgroupId: cgroupIdOf(cg.path),
    cgroupPath: `/${basename(cg.path)}`,
    runtime: "containerd",
    containerId: CONTAINER_ID,
    name: "web",
    image: "docker.io/library/nginx:1.27",
    annotations: { "io.kubernetes.container.name": "web" },
    ...(pod !== undefined ? { pod } : {}),
    source: "oci-hook",
  };
}

const POD = { namespace: "vendor-app", name: "web-1", uid: "0b8a6e3c-1d2f-4a5b-8c9d-0e1f2a3b4c5d", labels: { app: "web" }, container: "web" };

describe("workload scopes in the kernel (cgroup v2 ids, live membership)", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-scope-");
    mkdirSync(join(dir, "secret"));
    secret = join(dir, "secret/file");
    writeFileSync(secret, SECRET);
    helper = join(dir, "sock-helper");
    helperOther = join(dir, "sock-helper-other");
    buildSockHelpers(helper, helperOther);
    cgIn = new TestCgroup("scope-in");
    cgOut = new TestCgroup("scope-out");
    server = createServer((c) => c.end());
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
    registry = new WorkloadRegistry();
    maps = ScopeMaps.create();
    scopes = new WorkloadScopes(registry, maps);
    await scopes.start();
    const m = maps;
    generic = new GenericBackend(() => new GenericSensor({ scopeMaps: m }));
    sock = new SockBackend(() => new SockSensor({ scopeMaps: m }));
    manager = new PolicyManager({
      features: hostHookFeatures(), encode: { nodeName: "test", clock: new BootClock() },
      publish: () => {}, log: (s) => logs.push(s), generic, sock, scopes,
    });
  });

  afterAll(async () => {
    manager?.close();
    generic?.close();
    sock?.close();
    scopes?.close();
    maps?.close();
    server?.close();
    cgIn?.remove();
    cgOut?.remove();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("the scope maps: a member at level L sets bit L; emptied, the level mask is 0", () => {
    const sm = must(maps, "maps");
    const id = sm.allocate();
    try {
      sm.set(id, [{ cgroupId: 42n, level: 1 }, { cgroupId: 43n, level: 3 }]);
      const k = new Uint8Array(4);
      new DataView(k.buffer).setUint32(0, id, true);
      expect(new DataView(sm.levels.lookup(k)!.buffer).getUint32(0, true)).toBe(0b1010);
      sm.set(id, [{ cgroupId: 43n, level: 3 }]);
      expect(new DataView(sm.levels.lookup(k)!.buffer).getUint32(0, true)).toBe(0b1000);
      expect([...sm.members.keys()].length).toBe(1);
      expect(() => sm.set(id, [{ cgroupId: 1n, level: 40 }])).toThrow(/40 levels below the cgroup v2 root/);
      sm.set(id, []);
      expect(new DataView(sm.levels.lookup(k)!.buffer).getUint32(0, true)).toBe(0);
    } finally {
      sm.release(id);
    }
  });

  kernelTest("the scope maps pinned and taken over: ids and members read back from the kernel", () => {
    const sm = must(maps, "maps");
    const dir = `/sys/fs/bpf/ward-scope-test-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    const id = sm.allocate();
    try {
      sm.set(id, [{ cgroupId: 77n, level: 2 }, { cgroupId: 78n, level: 2 }]);
      sm.pin(dir);
      const back = ScopeMaps.fromPins(dir);
      expect(back).toBeDefined();
      try {
        expect(back!.ids()).toContain(id);
        expect(back!.membersOf(id).sort((a, b) => Number(a.cgroupId - b.cgroupId))).toEqual([{ cgroupId: 77n, level: 2 }, { cgroupId: 78n, level: 2 }]);
        expect(back!.adopt(id)).toBe(id);
        expect(back!.allocate()).not.toBe(id);
      } finally {
        back!.close();
      }
      expect(ScopeMaps.fromPins("/sys/fs/bpf/ward-scope-nothing-here")).toBeUndefined();
    } finally {
      sm.release(id);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  kernelTest("generic sensor, TracingPolicyNamespaced + sys_openat Sigkill: only processes in the namespace's cgroups are killed; moved in, killed; moved out, not; no program reloaded", async () => {
    const reg = must(registry, "registry");
    const mgr = must(manager, "manager");
    const p = policy(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicyNamespaced
metadata:
  name: scope-generic
  namespace: vendor-app
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 0
      type: int
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values:
        - ${secret}
      matchActions:
      - action: Sigkill
`);
    const st = mgr.apply(p, { mode: "enforce" });
    try {
      expect(st.hooks[0]?.mechanism).toContain("tp_btf/sys_enter");
      // No workload yet: the scope is empty and the policy enforces nothing (status says so).
      expect(st.scope).toMatchObject({ scope: "namespace vendor-app", members: 0 });
      expect(st.scope?.note).toContain("enforces nothing");
      await withDriver(async (d) => {
        must(cgIn, "cg").add(d.pid);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        await reg.upsert(workloadOf(must(cgIn, "cg"), POD));
        expect(mgr.state("scope-generic").scope).toMatchObject({ members: 1, workloads: [CONTAINER_ID] });
        const links = [...linkIdsOf(process.pid)].sort();
        expectKilled(await d.run(`cat ${secret}`));
        // A sub-cgroup of the member (a container's own init cgroup) is in scope too.
        const sub = join(must(cgIn, "cg").path, "init");
        mkdirSync(sub);
        try {
          writeFileSync(join(sub, "cgroup.procs"), `${d.pid}\n`);
          expectKilled(await d.run(`cat ${secret}`));
          // Moved out: not enforced any more.
          must(cgOut, "cg").add(d.pid);
        } finally {
          rmdirSync(sub);
        }
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        // Moved back in.
        must(cgIn, "cg").add(d.pid);
        expectKilled(await d.run(`cat ${secret}`));
        // A pod of another namespace in the same cgroup is not in scope.
        await reg.upsert(workloadOf(must(cgIn, "cg"), { ...POD, namespace: "other" }));
        expect(mgr.state("scope-generic").scope?.members).toBe(0);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        expect([...linkIdsOf(process.pid)].sort()).toEqual(links);
      });
    } finally {
      mgr.remove("scope-generic");
      await reg.remove(CONTAINER_ID);
    }
    expect([...must(maps, "maps").members.keys()].length).toBe(0);
  }, T);

  kernelTest("fanotify, containerSelector name=web + the talk's Override: the open fails with EPERM in the container's cgroup only, and follows the process when it moves", async () => {
    const reg = must(registry, "registry");
    const mgr = must(manager, "manager");
    const yaml = secureOpenPolicy({ name: "scope-fan", file: secret, allowed: "/nonexistent/cat", action: "Override\n        argError: -1" })
      .replace("spec:\n", "spec:\n  containerSelector:\n    matchLabels:\n      name: web\n");
    const p = policy(yaml);
    const st = mgr.apply(p, { mode: "enforce" });
    await mgr.ready("scope-fan");
    try {
      expect(st.hooks[0]?.mechanism).toStartWith("fanotify (");
      // No pod metadata needed: containerSelector matches the container's own name.
      await reg.upsert(workloadOf(must(cgIn, "cg"), undefined));
      expect(mgr.state("scope-fan").scope).toMatchObject({ scope: "containerSelector name=web", members: 1 });
      await withDriver(async (d) => {
        must(cgOut, "cg").add(d.pid);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        must(cgIn, "cg").add(d.pid);
        const r = await d.run(`cat ${secret}`);
        expect(r.rc).toBe(1);
        expect(r.out).toContain("Operation not permitted");
        // O_TRUNC through the shell: refused, the content stays.
        expect((await d.run(`sh -c ': > ${secret}'`)).rc).not.toBe(0);
        expect(readFileSync(secret, "utf8")).toBe(SECRET);
        must(cgOut, "cg").add(d.pid);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
      });
      const c = mgr.state("scope-fan").counters ?? {};
      expect(c.fanotify_denied).toBeGreaterThanOrEqual(2);
      expect(c.fanotify_out_of_scope).toBeGreaterThanOrEqual(2);
    } finally {
      mgr.remove("scope-fan");
      await reg.remove(CONTAINER_ID);
    }
  }, T);

  kernelTest("file guard, a rule with the scope of containerSelector id=<container id>: Sigkill at open in scope only; membership changes keep the guard's links", async () => {
    const reg = must(registry, "registry");
    const sc = must(scopes, "scopes");
    const id = sc.track("scope-guard", { containerSelector: { matchLabels: { id: CONTAINER_ID } } });
    const guard = FileGuard.open({ programs: ["guard_sys_exit"], scopeMaps: must(maps, "maps") });
    try {
      const rule = guard.addRule({ action: "kill", scope: id });
      guard.protect(secret, rule);
      const links = [...linkIdsOf(process.pid)].sort();
      await withDriver(async (d) => {
        must(cgIn, "cg").add(d.pid);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        await reg.upsert(workloadOf(must(cgIn, "cg"), undefined));
        expect(sc.report("scope-guard")?.members).toBe(1);
        expectKilled(await d.run(`cat ${secret}`));
        must(cgOut, "cg").add(d.pid);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        await reg.remove(CONTAINER_ID);
        must(cgIn, "cg").add(d.pid);
        expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
      });
      expect([...linkIdsOf(process.pid)].sort()).toEqual(links);
    } finally {
      guard.destroy();
      sc.untrack("scope-guard");
    }
  }, T);

  kernelTest("cgroup sock_addr, podSelector app=web + security_socket_connect Override: connect() fails with EPERM in the pod's cgroup only", async () => {
    const reg = must(registry, "registry");
    const mgr = must(manager, "manager");
    const p = policy(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: scope-sock
spec:
  podSelector:
    matchLabels:
      app: web
  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["${port}"]
      matchActions:
      - action: Override
        argError: -1
`);
    mgr.apply(p, { mode: "enforce" });
    try {
      await reg.upsert(workloadOf(must(cgIn, "cg"), POD));
      const links = [...linkIdsOf(process.pid)].sort();
      await withDriver(async (d) => {
        must(cgOut, "cg").add(d.pid);
        expect((await d.run(`${helper} connect tcp 127.0.0.1 ${port}`)).out.trim()).toBe("ok");
        must(cgIn, "cg").add(d.pid);
        expect((await d.run(`${helper} connect tcp 127.0.0.1 ${port}`)).out.trim()).toBe("EPERM");
        expect((await d.run(`${helperOther} connect tcp 127.0.0.1 ${port}`)).out.trim()).toBe("EPERM");
        // Relabeled out of the selector: allowed again, nothing re-attached.
        await reg.upsert(workloadOf(must(cgIn, "cg"), { ...POD, labels: { app: "db" } }));
        expect((await d.run(`${helper} connect tcp 127.0.0.1 ${port}`)).out.trim()).toBe("ok");
      });
      expect([...linkIdsOf(process.pid)].sort()).toEqual(links);
    } finally {
      mgr.remove("scope-sock");
      await reg.remove(CONTAINER_ID);
    }
  }, T);

  kernelTest("refusals: hostSelector, and a scoped policy on a manager without workload scopes, are rejected with the reason (never widened)", () => {
    const mgr = must(manager, "manager");
    const host = policy(secureOpenPolicy({ name: "scope-host", file: secret, allowed: "/bin/cat" }).replace("spec:\n", "spec:\n  podSelector:\n    matchLabels:\n      app: web\n  hostSelector: {}\n"));
    expect(() => mgr.apply(host, { mode: "enforce" })).toThrow(/spec\.hostSelector: cannot be enforced as a kernel scope/);
    expect(mgr.has("scope-host")).toBe(false);
    const bare = new PolicyManager({ features: hostHookFeatures(), encode: { nodeName: "test", clock: new BootClock() }, publish: () => {}, log: () => {} });
    const ns = policy(secureOpenPolicy({ name: "scope-ns", file: secret, allowed: "/bin/cat" }).replace("kind: TracingPolicy", "kind: TracingPolicyNamespaced").replace("name: scope-ns", "name: scope-ns\n  namespace: vendor-app"));
    expect(() => bare.apply(ns, { mode: "enforce" })).toThrow(/metadata\.namespace: the policy is scoped but this agent has no workload scopes/);
    expect(cgroupV2Mount()).toBeDefined();
  });
});
