// PUT and DELETE /v1/workloads/:id (the OCI hook's routes): PUT validates (400 with every field
// path), needs the token, answers only after every registry subscriber applied the workload,
// undoes a workload a subscriber refused, and checks the reported cgroup against the tree the
// agent sees; DELETE forgets.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkloadRegistry, type WorkloadChange } from "../../src/workloads/registry.ts";
import { AUTH, makeFixture } from "./lib/api-fixture.ts";

type Json = Record<string, any>;
const tmp = mkdtempSync(join(tmpdir(), "ward-api-workloads-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function fixture(registry = new WorkloadRegistry(), cgroupRoot?: string) {
  const f = makeFixture({ workloads: registry, ...(cgroupRoot !== undefined ? { cgroupRoot } : {}) });
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = AUTH) => {
    const res = await f.app.request(path, { method, headers: { "content-type": "application/json", ...headers }, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Json };
  };
  return { f, registry, call };
}

const report = {
  cgroup_path: "/ward/c1",
  cgroup_id: "4242",
  runtime: "containerd",
  name: "nginx",
  image: "docker.io/library/nginx:1.27",
  annotations: { "io.kubernetes.cri.container-name": "nginx" },
  pod: { namespace: "shop", name: "nginx-1", uid: "u-1", container: "nginx" },
  pid: 1234,
};

describe("PUT /v1/workloads/:id", () => {
  test("registers the workload and answers only after every subscriber applied it", async () => {
    const { registry, call } = fixture();
    let release!: () => void;
    const seen: WorkloadChange[] = [];
    await registry.subscribe(async (c) => {
      seen.push(c);
      await new Promise<void>((r) => (release = r));
    });
    let answered = false;
    const pending = call("PUT", "/v1/workloads/c1", report).then((r) => {
      answered = true;
      return r;
    });
    await Bun.sleep(50);
    expect(seen).toHaveLength(1);
    expect(answered).toBe(false);
    release();
    const r = await pending;
    expect(r.status).toBe(201);
    expect(r.json).toEqual({ workload: { key: "c1", cgroup_id: "4242", cgroup_path: "/ward/c1" }, replaced: false, applied: true });
    expect(registry.get("c1")).toEqual({
      key: "c1",
      cgroupId: 4242n,
      cgroupPath: "/ward/c1",
      runtime: "containerd",
      containerId: "c1",
      name: "nginx",
      image: report.image,
      annotations: report.annotations,
      pod: { namespace: "shop", name: "nginx-1", uid: "u-1", container: "nginx", labels: {} },
      source: "oci-hook",
    });
    expect(registry.byCgroupId(4242n)?.key).toBe("c1");
    expect(seen[0]!.added[0]!.pod?.namespace).toBe("shop");
    // The same id again replaces it: 200, the subscriber sees old removed and new added.
    const p2 = call("PUT", "/v1/workloads/c1", { ...report, cgroup_id: "4343" });
    await Bun.sleep(20);
    release();
    const r2 = await p2;
    expect(r2.status).toBe(200);
    expect(r2.json.replaced).toBe(true);
    expect(seen[1]!.removed[0]!.cgroupId).toBe(4242n);
    expect(seen[1]!.added[0]!.cgroupId).toBe(4343n);
    expect(registry.byCgroupId(4242n)).toBeUndefined();
  });

  test("keeps the pod labels of an entry the pod watch made, and waits for the feeders' own writes (settleWorkloads)", async () => {
    const registry = new WorkloadRegistry();
    let merged = Promise.resolve();
    // A pod-watch stand-in: on a label-less report it queues a merged write, as the pod feed does.
    await registry.subscribe((c) => {
      const w = c.added[0];
      if (w !== undefined && w.source === "oci-hook" && w.pod !== undefined && Object.keys(w.pod.labels).length === 0) {
        merged = Bun.sleep(100).then(() => registry.upsert({ ...w, source: "kubernetes", pod: { ...w.pod!, labels: { app: "web" } } }));
      }
    });
    const f = makeFixture({ workloads: registry, settleWorkloads: () => merged });
    const put = (body: unknown) => f.app.request("/v1/workloads/c1", { method: "PUT", headers: AUTH, body: JSON.stringify(body) });
    expect((await put(report)).status).toBe(201);
    // Answered only after the merged write: the labels are there.
    expect(registry.get("c1")?.pod?.labels).toEqual({ app: "web" });
    expect(registry.get("c1")?.source).toBe("kubernetes");
    // A second report (a restarted hook) keeps them instead of dropping the container from a podSelector scope.
    merged = Promise.resolve();
    const seen: Record<string, string>[] = [];
    await registry.subscribe((c) => {
      for (const w of c.added) seen.push({ ...(w.pod?.labels ?? {}) });
    });
    seen.length = 0;
    expect((await put(report)).status).toBe(200);
    expect(seen).toEqual([{ app: "web" }]);
    expect(registry.get("c1")?.source).toBe("oci-hook");
    // Another pod under the same id: its labels are not carried over (the report is written as sent).
    seen.length = 0;
    expect((await put({ ...report, pod: { namespace: "shop", name: "other" } })).status).toBe(200);
    expect(seen[0]).toEqual({});
  });

  test("400 names every bad field by path; nothing is registered", async () => {
    const { registry, call } = fixture();
    const r = await call("PUT", "/v1/workloads/c1", { cgroup_path: "ward/c1", cgroup_id: 12, runtime: "lxc", extra: 1, annotations: { a: 1 }, pod: { name: "p", uid: 3 }, pid: -1 });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("invalid_workload");
    expect(r.json.error.errors.map((e: Json) => e.path)).toEqual([
      "body.extra",
      "body.cgroup_path",
      "body.cgroup_id",
      "body.runtime",
      "body.annotations.a",
      "body.pod.namespace",
      "body.pod.uid",
      "body.pid",
    ]);
    expect(r.json.error.message).toContain("body.cgroup_id: must be a non-empty string, not 12");
    expect(registry.all()).toEqual([]);
    const missing = await call("PUT", "/v1/workloads/c1", {});
    expect(missing.json.error.errors).toEqual([
      { path: "body.cgroup_path", message: "is required" },
      { path: "body.cgroup_id", message: "is required" },
    ]);
    expect((await call("PUT", "/v1/workloads/c1", { ...report, cgroup_id: "0" })).json.error.errors[0].path).toBe("body.cgroup_id");
    expect((await call("PUT", "/v1/workloads/c1", { ...report, cgroup_id: "18446744073709551616" })).status).toBe(400);
    expect((await call("PUT", "/v1/workloads/c1", { ...report, cgroup_path: "/a/../b" })).json.error.errors[0].path).toBe("body.cgroup_path");
    expect((await call("PUT", "/v1/workloads/c1", "{")).json.error.code).toBe("bad_json");
    expect((await call("PUT", "/v1/workloads/c1", "")).json.error.code).toBe("empty_body");
    expect((await call("PUT", "/v1/workloads/c1", [])).json.error.errors).toEqual([{ path: "body", message: "must be a JSON object" }]);
    expect((await call("PUT", "/v1/workloads/a%20b", report)).json.error.code).toBe("bad_id");
    expect((await call("PUT", "/v1/workloads/c1?x=1", report)).json.error.code).toBe("unknown_parameter");
    expect(registry.all()).toEqual([]);
  });

  test("the token is required", async () => {
    const { registry, call } = fixture();
    expect((await call("PUT", "/v1/workloads/c1", report, {})).status).toBe(401);
    expect((await call("PUT", "/v1/workloads/c1", report, { Authorization: "Bearer wrong-token-0123456789abcdef0" })).status).toBe(401);
    expect((await call("DELETE", "/v1/workloads/c1", undefined, {})).status).toBe(401);
    expect(registry.all()).toEqual([]);
  });

  test("a subscriber that fails: 500 scope_apply_failed and the registry is as it was", async () => {
    const { registry, call } = fixture();
    let fail = false;
    await registry.subscribe(() => {
      if (fail) throw new Error("scope map full");
    });
    expect((await call("PUT", "/v1/workloads/c1", report)).status).toBe(201);
    fail = true;
    const r = await call("PUT", "/v1/workloads/c1", { ...report, cgroup_id: "99" });
    expect(r.status).toBe(500);
    expect(r.json.error.code).toBe("scope_apply_failed");
    expect(r.json.error.message).toContain("scope map full");
    fail = false;
    expect(registry.get("c1")?.cgroupId).toBe(4242n);
    fail = true;
    expect((await call("PUT", "/v1/workloads/c2", report)).status).toBe(500);
    fail = false;
    expect(registry.get("c2")).toBeUndefined();
  });

  test("with cgroupRoot the cgroup must exist there with the reported id", async () => {
    const root = join(tmp, "cg");
    mkdirSync(join(root, "ward", "c1"), { recursive: true });
    const ino = String(statSync(join(root, "ward", "c1"), { bigint: true }).ino);
    const { registry, call } = fixture(new WorkloadRegistry(), root);
    const wrong = await call("PUT", "/v1/workloads/c1", report);
    expect(wrong.status).toBe(422);
    expect(wrong.json.error.code).toBe("cgroup_mismatch");
    expect(wrong.json.error.agent_cgroup_id).toBe(ino);
    const gone = await call("PUT", "/v1/workloads/c1", { ...report, cgroup_path: "/ward/none" });
    expect(gone.status).toBe(422);
    expect(gone.json.error.code).toBe("cgroup_not_found");
    expect(registry.all()).toEqual([]);
    expect((await call("PUT", "/v1/workloads/c1", { ...report, cgroup_id: ino })).status).toBe(201);
  });

  test("without a registry: 503", async () => {
    const f = makeFixture();
    const res = await f.app.request("/v1/workloads/c1", { method: "PUT", headers: AUTH, body: JSON.stringify(report) });
    expect(res.status).toBe(503);
    expect(((await res.json()) as Json).error.code).toBe("workloads_unavailable");
  });
});

describe("DELETE /v1/workloads/:id", () => {
  test("forgets the workload (subscribers see it removed); unknown ids are 404", async () => {
    const { registry, call } = fixture();
    const removed: WorkloadChange[] = [];
    await registry.subscribe((c) => {
      if (c.removed.length) removed.push(c);
    });
    await call("PUT", "/v1/workloads/c1", report);
    expect(registry.all().map((w) => w.key)).toEqual(["c1"]);
    const d = await call("DELETE", "/v1/workloads/c1");
    expect(d).toEqual({ status: 200, json: { deleted: "c1" } });
    expect(removed[0]!.removed[0]!.key).toBe("c1");
    expect((await call("DELETE", "/v1/workloads/c1")).json.error.code).toBe("workload_not_found");
    expect(registry.all()).toEqual([]);
  });
});
