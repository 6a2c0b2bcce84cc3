// /healthz readiness, /v1/status contents and /metrics exposition.
import { describe, expect, test } from "bun:test";
import { AUTH, execEvent, makeFixture, policyYaml } from "./lib/api-fixture.ts";

describe("health, status, metrics", () => {
  test("/healthz is 503 until ready, then 200", async () => {
    const f = makeFixture();
    f.setReady(false);
    const r1 = await f.app.request("/healthz");
    expect(r1.status).toBe(503);
    expect(((await r1.json()) as { error: { code: string } }).error.code).toBe("not_ready");
    f.setReady(true);
    const r2 = await f.app.request("/healthz");
    expect(r2.status).toBe(200);
    expect(await r2.json()).toEqual({ status: "ok" });
  });

  test("/v1/status reports sensors, counters and policies", async () => {
    const f = makeFixture();
    f.store.add(policyYaml("p"), { source: "api", file: "x" });
    f.hub.publish(execEvent("/bin/true"));
    const res = await f.app.request("/v1/status", { headers: AUTH });
    const s = (await res.json()) as Record<string, any>;
    expect(s.node_name).toBe("node-a");
    expect(s.sensors).toEqual([{ name: "process", state: "running" }]);
    expect(s.events).toMatchObject({ total: 1, by_type: { process_exec: 1 } });
    expect(s.policies.map((p: { name: string }) => p.name)).toEqual(["p"]);
  });

  test("/v1/status rejects query parameters", async () => {
    const f = makeFixture();
    expect((await f.app.request("/v1/status?x=1", { headers: AUTH })).status).toBe(400);
  });

  test("/metrics is Prometheus text with event, loss, policy and cache metrics", async () => {
    const f = makeFixture();
    f.store.add(policyYaml("a"), { source: "api", file: "x" });
    f.store.add(policyYaml("b"), { source: "api", file: "x" });
    f.store.setEnabled("b", false);
    f.hub.publish(execEvent("/bin/true"));
    f.hub.publish(execEvent("/bin/true"));
    f.hub.publish({ process_exit: { process: { binary: "/bin/true" } } });
    f.hub.recordLoss("ringbuf", 3);
    const res = await f.app.request("/metrics");
    expect(res.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const text = await res.text();
    const lines = text.split("\n");
    expect(lines).toContain('ward_events_total{type="PROCESS_EXEC"} 2');
    expect(lines).toContain('ward_events_total{type="PROCESS_EXIT"} 1');
    expect(lines).toContain('ward_events_lost_total{reason="ringbuf"} 3');
    expect(lines).toContain('ward_policies{state="enabled"} 1');
    expect(lines).toContain('ward_policies{state="disabled"} 1');
    expect(lines).toContain("ward_process_cache_size 3");
    expect(lines).toContain('ward_sensor_up{sensor="process",state="running"} 1');
    expect(lines).toContain("# TYPE ward_events_total counter");
    // Every sample line is "name{labels} value" or "name value".
    for (const l of lines.filter((l) => l && !l.startsWith("#"))) expect(l).toMatch(/^ward_[a-z_]+(\{[^}]*\})? \d+(\.\d+)?$/);
  });

  test("unknown routes are JSON 404", async () => {
    const f = makeFixture();
    const res = await f.app.request("/nope");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});
