// Every /v1 route refuses requests without the right bearer token, and such a request
// changes nothing: no policy added, removed or toggled, no event subscription opened.
import { describe, expect, test } from "bun:test";
import { makeFixture, policyYaml, TOKEN } from "./lib/api-fixture.ts";

const routes: [string, string, string?][] = [
  ["GET", "/v1/status"],
  ["GET", "/v1/policies"],
  ["POST", "/v1/policies", policyYaml("new-one")],
  ["GET", "/v1/policies/existing"],
  ["DELETE", "/v1/policies/existing"],
  ["POST", "/v1/policies/existing/enable"],
  ["POST", "/v1/policies/existing/disable"],
  ["POST", "/v1/policies/existing/mode", '{"mode":"monitor"}'],
  ["GET", "/v1/events"],
  ["GET", "/v1/no-such-route"],
  ["GET", "/v1"],
];

const badHeaders: [string, Record<string, string>][] = [
  ["no header", {}],
  ["wrong token", { Authorization: "Bearer wrong-token-wrong-token-00" }],
  ["token prefix", { Authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
  ["token plus suffix", { Authorization: `Bearer ${TOKEN}x` }],
  ["basic scheme", { Authorization: `Basic ${TOKEN}` }],
  ["bare token", { Authorization: TOKEN }],
];

describe("/v1 auth", () => {
  for (const [method, path, body] of routes) {
    for (const [label, headers] of badHeaders) {
      test(`${method} ${path} with ${label} -> 401, nothing changes`, async () => {
        const f = makeFixture();
        f.store.add(policyYaml("existing"), { source: "test", file: "t.yaml" });
        f.store.setEnabled("existing", false);
        const before = JSON.stringify(f.store.list());
        const res = await f.app.request(path, { method, headers, body });
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate")).toContain("Bearer");
        const json = (await res.json()) as { error: { code: string } };
        expect(json.error.code).toBe("unauthorized");
        expect(JSON.stringify(f.store.list())).toBe(before);
        expect(f.hub.counters().subscribers).toBe(0);
      });
    }
  }

  test("the right token passes", async () => {
    const f = makeFixture();
    const res = await f.app.request("/v1/status", { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  });

  test("the scheme is case-insensitive", async () => {
    const f = makeFixture();
    const res = await f.app.request("/v1/status", { headers: { Authorization: `bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  });

  test("/healthz and /metrics need no token", async () => {
    const f = makeFixture();
    expect((await f.app.request("/healthz")).status).toBe(200);
    expect((await f.app.request("/metrics")).status).toBe(200);
  });
});
