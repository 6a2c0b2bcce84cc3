// Agent lifecycle with stand-in sensors over a real HTTP server: readiness only after every
// sensor started, state file written and removed, events reach sinks and /v1/events,
// failed starts undo everything, invalid policies stop the start with positions.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, type SensorContext } from "../../../src/agent/agent.ts";
import { parseAgentConfig, type AgentConfig } from "../../../src/agent/config.ts";
import type { EventSink } from "../../../src/agent/event-hub.ts";
import { PolicyInvalidError } from "../../../src/agent/policy-store.ts";
import type { Sensor, SensorStatus, StopOptions } from "../../../src/agent/sensor.ts";
import { readState } from "../../../src/agent/state-file.ts";
import { fakeParse, policyYaml } from "../lib/api-fixture.ts";

class FakeSensor implements Sensor {
  state: SensorStatus["state"] = "stopped";
  stoppedWith: StopOptions | undefined;
  gate = Promise.withResolvers<void>();
  constructor(
    readonly name: string,
    readonly ctx: SensorContext,
    private readonly fail = false,
  ) {}
  async start() {
    this.state = "starting";
    await this.gate.promise;
    if (this.fail) {
      this.state = "error";
      throw new Error("attach failed: EPERM");
    }
    this.state = "running";
  }
  async stop(opts?: StopOptions) {
    this.stoppedWith = opts;
    this.state = "stopped";
  }
  status(): SensorStatus {
    return { state: this.state, counters: { lost_ringbuf: 2, process_cache_size: 7 } };
  }
}

class MemorySink implements EventSink {
  readonly name = "memory";
  lines: string[] = [];
  flushed = 0;
  write(l: string) {
    this.lines.push(l);
  }
  async flush() {
    this.flushed++;
  }
  async close() {}
}

let dir = "";
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = "";
});

function setup(extra: string[] = [], fail = false) {
  dir = mkdtempSync(join(tmpdir(), "ward-agent-"));
  const cfg = parseAgentConfig(["--listen", "127.0.0.1:0", "--token-file", join(dir, "token"), "--state-file", join(dir, "state.json"), ...extra]) as AgentConfig;
  const sensors: FakeSensor[] = [];
  const sink = new MemorySink();
  const logs: string[] = [];
  const agent = new Agent(cfg, {
    parser: fakeParse,
    sensors: (ctx) => {
      sensors.push(new FakeSensor("a", ctx), new FakeSensor("b", ctx, fail));
      return sensors;
    },
    sinks: () => [sink],
    log: (m) => logs.push(m),
  });
  return { cfg, agent, sensors, sink, logs };
}

async function get(url: string, token?: string) {
  return fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

describe("Agent", () => {
  test("healthz is 503 until every sensor runs; state file and token file are written", async () => {
    const { cfg, agent, sensors } = setup();
    const starting = agent.start();
    for (let i = 0; i < 200 && sensors.length === 0; i++) await Bun.sleep(5);
    const state = readState(cfg.stateFile)!;
    expect(state.pid).toBe(process.pid);
    expect(state.token_file).toBe(cfg.tokenFile);
    expect(statSync(cfg.tokenFile).mode & 0o777).toBe(0o600);
    expect((await get(`${state.url}/healthz`)).status).toBe(503);
    sensors[0]!.gate.resolve();
    await Bun.sleep(10);
    expect((await get(`${state.url}/healthz`)).status).toBe(503);
    sensors[1]!.gate.resolve();
    await starting;
    expect((await get(`${state.url}/healthz`)).status).toBe(200);
    await agent.stop();
  });

  test("events reach sinks and /v1/events; stop detaches, flushes, removes the state file", async () => {
    const { cfg, agent, sensors, sink } = setup();
    const starting = agent.start();
    for (let i = 0; i < 200 && sensors.length === 0; i++) await Bun.sleep(5);
    for (const s of sensors) s.gate.resolve();
    await starting;
    const token = readFileSync(cfg.tokenFile, "utf8").trim();
    const res = await get(`${agent.url}/v1/events?event_types=PROCESS_EXEC`, token);
    expect(res.status).toBe(200);
    for (let i = 0; i < 200 && agent.hub.counters().subscribers === 0; i++) await Bun.sleep(5);
    sensors[0]!.ctx.publish({ process_exit: { process: { binary: "/bin/x" } } });
    sensors[0]!.ctx.publish({ process_exec: { process: { binary: "/bin/true" } }, node_name: "n" });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.endsWith("}\n")) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toBe('\n{"process_exec":{"process":{"binary":"/bin/true"}},"node_name":"n"}\n');
    expect(sink.lines).toHaveLength(2);

    const status = (await (await get(`${agent.url}/v1/status`, token)).json()) as Record<string, any>;
    expect(status.ready).toBe(true);
    expect(status.sensors.map((s: { name: string; state: string }) => `${s.name}:${s.state}`)).toEqual(["a:running", "b:running"]);
    expect(status.events.lost).toEqual({ ringbuf: 4 });
    expect(status.process_cache_size).toBe(14);

    await agent.stop();
    expect(sensors.map((s) => s.state)).toEqual(["stopped", "stopped"]);
    expect(sensors[0]!.stoppedWith).toEqual({ keepAttached: false });
    expect(sink.flushed).toBeGreaterThan(0);
    expect(existsSync(cfg.stateFile)).toBe(false);
    // The stream ended with the agent.
    expect((await reader.read()).done).toBe(true);
    await expect(fetch(`${agent.url}/healthz`)).rejects.toThrow();
  });

  test("--keep-sensors-on-exit reaches the sensors", async () => {
    const { agent, sensors } = setup(["--keep-sensors-on-exit"]);
    const starting = agent.start();
    for (let i = 0; i < 200 && sensors.length === 0; i++) await Bun.sleep(5);
    for (const s of sensors) s.gate.resolve();
    await starting;
    await agent.stop();
    expect(sensors[1]!.stoppedWith).toEqual({ keepAttached: true });
  });

  test("a sensor that fails to start undoes everything", async () => {
    const { cfg, agent, sensors } = setup([], true);
    const starting = agent.start();
    for (let i = 0; i < 200 && sensors.length === 0; i++) await Bun.sleep(5);
    for (const s of sensors) s.gate.resolve();
    await expect(starting).rejects.toThrow("start sensor b: attach failed: EPERM");
    expect(sensors[0]!.state).toBe("stopped");
    expect(existsSync(cfg.stateFile)).toBe(false);
  });

  test("invalid policy files stop the start before anything is listening or written", async () => {
    dir = mkdtempSync(join(tmpdir(), "ward-agent-"));
    writeFileSync(join(dir, "good.yaml"), policyYaml("good"));
    writeFileSync(join(dir, "bad.yaml"), "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspecc: {}\n");
    const cfg = parseAgentConfig(["--listen", "127.0.0.1:0", "--token-file", join(dir, "token"), "--state-file", join(dir, "state.json"), "--policy-dir", dir]) as AgentConfig;
    let built = false;
    const agent = new Agent(cfg, { parser: fakeParse, sensors: () => ((built = true), []), sinks: () => [], log: () => {} });
    try {
      await agent.start();
      throw new Error("start succeeded");
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyInvalidError);
      expect((err as PolicyInvalidError).errors).toEqual([{ file: join(dir, "bad.yaml"), line: 5, column: 1, path: "specc", message: 'unknown field "specc"' }]);
    }
    expect(agent.store.list()).toEqual([]);
    expect(built).toBe(false);
    expect(existsSync(cfg.stateFile)).toBe(false);
    expect(existsSync(cfg.tokenFile)).toBe(false);
  });

  test("policies from --policy are loaded and reported as not enforced", async () => {
    dir = mkdtempSync(join(tmpdir(), "ward-agent-"));
    writeFileSync(join(dir, "p.yaml"), policyYaml("p"));
    const cfg = parseAgentConfig(["--listen", "127.0.0.1:0", "--token-file", join(dir, "token"), "--state-file", join(dir, "state.json"), "--policy", join(dir, "p.yaml")]) as AgentConfig;
    const agent = new Agent(cfg, { parser: fakeParse, sensors: () => [], sinks: () => [], log: () => {} });
    await agent.start();
    expect(agent.status().policies).toMatchObject([{ name: "p", source: `file:${join(dir, "p.yaml")}`, state: "loaded (not enforced: hook sensors not built yet)" }]);
    await agent.stop();
  });

  test("refuses to start while another live agent owns the state file", async () => {
    dir = mkdtempSync(join(tmpdir(), "ward-agent-"));
    const stateFile = join(dir, "state.json");
    // pid 1 is always alive.
    writeFileSync(stateFile, JSON.stringify({ pid: 1, url: "http://127.0.0.1:1", token_file: "/x" }));
    const cfg = parseAgentConfig(["--listen", "127.0.0.1:0", "--token-file", join(dir, "token"), "--state-file", stateFile]) as AgentConfig;
    const agent = new Agent(cfg, { parser: fakeParse, sensors: () => [], sinks: () => [], log: () => {} });
    await expect(agent.start()).rejects.toThrow("another agent is running (pid 1");
    expect(readState(stateFile)!.pid).toBe(1);
  });
});
