// /v1/policies: add as YAML and JSON, validation errors with positions, enable/disable/mode,
// delete, and malformed requests; every failing request leaves the store as it was.
import { describe, expect, test } from "bun:test";
import { STATE_DISABLED, STATE_NOT_ENFORCED } from "../../src/agent/policy-store.ts";
import { AUTH, makeFixture, policyYaml } from "./lib/api-fixture.ts";

type Json = Record<string, any>;

async function call(f: ReturnType<typeof makeFixture>, method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await f.app.request(path, { method, headers: { ...AUTH, ...headers }, body });
  return { status: res.status, json: (await res.json()) as Json };
}

describe("POST /v1/policies", () => {
  test("YAML body adds the policy, reported as loaded but not enforced", async () => {
    const f = makeFixture();
    const r = await call(f, "POST", "/v1/policies", policyYaml("block-cat"), { "content-type": "application/yaml" });
    expect(r.status).toBe(201);
    expect(r.json.policies).toHaveLength(1);
    expect(r.json.policies[0]).toMatchObject({ name: "block-cat", enabled: true, mode: "enforce", state: STATE_NOT_ENFORCED, source: "api" });
    const list = await call(f, "GET", "/v1/policies");
    expect(list.json.policies.map((p: Json) => p.name)).toEqual(["block-cat"]);
  });

  test("JSON body adds the policy", async () => {
    const f = makeFixture();
    const doc = { apiVersion: "cilium.io/v1alpha1", kind: "TracingPolicy", metadata: { name: "from-json" }, spec: {} };
    const r = await call(f, "POST", "/v1/policies", JSON.stringify(doc), { "content-type": "application/json" });
    expect(r.status).toBe(201);
    expect(f.store.list().map((p) => p.name)).toEqual(["from-json"]);
  });

  test("?mode=monitor sets the mode", async () => {
    const f = makeFixture();
    const r = await call(f, "POST", "/v1/policies?mode=monitor", policyYaml("m"));
    expect(r.status).toBe(201);
    expect(r.json.policies[0].mode).toBe("monitor");
  });

  test("an invalid policy is 400 with file, line, column and path, and nothing is added", async () => {
    const f = makeFixture();
    const text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspce: {}\n";
    const r = await call(f, "POST", "/v1/policies", text);
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("policy_invalid");
    expect(r.json.error.errors).toEqual([{ file: "<request>", line: 5, column: 1, path: "spce", message: 'unknown field "spce"' }]);
    expect(f.store.list()).toEqual([]);
  });

  test("YAML syntax errors carry positions", async () => {
    const f = makeFixture();
    const r = await call(f, "POST", "/v1/policies", "kind: TracingPolicy\nmetadata: [\n");
    expect(r.status).toBe(400);
    expect(r.json.error.errors[0].line).toBeGreaterThanOrEqual(2);
    expect(typeof r.json.error.errors[0].column).toBe("number");
  });

  test("malformed JSON is 400 bad_json with line and column", async () => {
    const f = makeFixture();
    const r = await call(f, "POST", "/v1/policies", '{"kind": "TracingPolicy",\n "metadata": {"name": "x"},,}', { "content-type": "application/json" });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("bad_json");
    expect(r.json.error.errors[0]).toMatchObject({ line: 2 });
    expect(f.store.list()).toEqual([]);
  });

  test("a duplicate name is 409 and the first policy stays", async () => {
    const f = makeFixture();
    await call(f, "POST", "/v1/policies", policyYaml("dup"));
    await call(f, "POST", "/v1/policies/dup/disable");
    const r = await call(f, "POST", "/v1/policies", policyYaml("dup"));
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe("policy_exists");
    expect(f.store.info("dup").enabled).toBe(false);
  });

  test("an empty body is 400", async () => {
    const f = makeFixture();
    const r = await call(f, "POST", "/v1/policies", "  \n");
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("empty_body");
  });

  test("a body over the limit is 400 body_too_large", async () => {
    const f = makeFixture({ maxBodyBytes: 64 });
    const r = await call(f, "POST", "/v1/policies", policyYaml("x".repeat(100)));
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("body_too_large");
    expect(f.store.list()).toEqual([]);
  });

  test("a streamed body over the limit (no Content-Length) is refused too", async () => {
    const f = makeFixture({ maxBodyBytes: 64 });
    const chunks = [policyYaml("a"), "# ".padEnd(80, "x")];
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const next = chunks.shift();
        if (next === undefined) c.close();
        else c.enqueue(new TextEncoder().encode(next));
      },
    });
    const res = await f.app.request("/v1/policies", { method: "POST", headers: AUTH, body, duplex: "half" } as RequestInit);
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).error.code).toBe("body_too_large");
  });

  test("unknown query parameters and bad modes are 400", async () => {
    const f = makeFixture();
    expect((await call(f, "POST", "/v1/policies?mdoe=monitor", policyYaml("q"))).json.error.code).toBe("unknown_parameter");
    expect((await call(f, "POST", "/v1/policies?mode=audit", policyYaml("q"))).json.error.code).toBe("bad_mode");
    expect(f.store.list()).toEqual([]);
  });
});

describe("/v1/policies/:name", () => {
  async function withPolicy() {
    const f = makeFixture();
    await call(f, "POST", "/v1/policies", policyYaml("p1"));
    return f;
  }

  test("GET returns the policy and its text", async () => {
    const f = await withPolicy();
    const r = await call(f, "GET", "/v1/policies/p1");
    expect(r.status).toBe(200);
    expect(r.json.policy.name).toBe("p1");
    expect(r.json.text).toBe(policyYaml("p1"));
  });

  test("unknown names are 404", async () => {
    const f = await withPolicy();
    for (const [m, p] of [["GET", "/v1/policies/nope"], ["DELETE", "/v1/policies/nope"], ["POST", "/v1/policies/nope/enable"], ["POST", "/v1/policies/nope/disable"]] as const) {
      const r = await call(f, m, p);
      expect(r.status).toBe(404);
      expect(r.json.error.code).toBe("policy_not_found");
    }
    const r = await call(f, "POST", "/v1/policies/nope/mode", '{"mode":"monitor"}');
    expect(r.status).toBe(404);
  });

  test("disable then enable", async () => {
    const f = await withPolicy();
    let r = await call(f, "POST", "/v1/policies/p1/disable");
    expect(r.status).toBe(200);
    expect(r.json.policy).toMatchObject({ enabled: false, state: STATE_DISABLED });
    r = await call(f, "POST", "/v1/policies/p1/enable", "{}");
    expect(r.json.policy).toMatchObject({ enabled: true, state: STATE_NOT_ENFORCED });
  });

  test("enable with a body other than {} is 400 and changes nothing", async () => {
    const f = await withPolicy();
    await call(f, "POST", "/v1/policies/p1/disable");
    const r = await call(f, "POST", "/v1/policies/p1/enable", '{"force":true}');
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("unknown_field");
    expect(f.store.info("p1").enabled).toBe(false);
  });

  test("mode switches between enforce and monitor", async () => {
    const f = await withPolicy();
    let r = await call(f, "POST", "/v1/policies/p1/mode", '{"mode":"monitor"}');
    expect(r.status).toBe(200);
    expect(r.json.policy.mode).toBe("monitor");
    r = await call(f, "POST", "/v1/policies/p1/mode", '{"mode":"enforce"}');
    expect(r.json.policy.mode).toBe("enforce");
  });

  test("mode bodies: unknown fields, bad values, missing field, malformed JSON are 400", async () => {
    const f = await withPolicy();
    const cases: [string, string][] = [
      ['{"mode":"monitor","extra":1}', "unknown_field"],
      ['{"mode":"audit"}', "bad_mode"],
      ["{}", "missing_field"],
      ['["monitor"]', "bad_body"],
      ['{"mode":', "bad_json"],
      ["", "bad_json"],
    ];
    for (const [body, code] of cases) {
      const r = await call(f, "POST", "/v1/policies/p1/mode", body);
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe(code);
    }
    expect(f.store.info("p1").mode).toBe("enforce");
  });

  test("DELETE removes it", async () => {
    const f = await withPolicy();
    const r = await call(f, "DELETE", "/v1/policies/p1");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ deleted: "p1" });
    expect(f.store.list()).toEqual([]);
  });
});

describe("with the real validator (src/policy/validate.ts)", () => {
  test("errors carry line, column and field path; valid policies load", async () => {
    const { parsePolicies } = await import("../../src/agent/policy-parser.ts");
    const { PolicyStore } = await import("../../src/agent/policy-store.ts");
    const { createApp } = await import("../../src/api/app.ts");
    const f = makeFixture();
    const store = new PolicyStore(parsePolicies);
    const app = createApp({ ...f.deps, policies: store });
    const bad = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: x\nspec:\n  kprobes:\n  - call: fd_install\n    syscal: false\n";
    let res = await app.request("/v1/policies", { method: "POST", headers: AUTH, body: bad });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Json;
    expect(body.error.errors[0]).toMatchObject({ file: "<request>", line: 8, column: 5, path: "spec.kprobes[0].syscal" });
    expect(store.list()).toEqual([]);
    const good = bad.replace("syscal:", "syscall:").replace("name: x", "name: fd-install\n").replace("spec:", "spec:\n  options:\n  - name: policy-mode\n    value: monitor");
    res = await app.request("/v1/policies", { method: "POST", headers: AUTH, body: good });
    expect(res.status).toBe(201);
    expect(store.list()).toMatchObject([{ name: "fd-install", mode: "monitor" }]);
  });
});
