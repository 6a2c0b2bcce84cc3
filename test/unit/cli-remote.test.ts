// The CLI against an in-process API server (real Hono app, real store and hub, stand-in
// parser): ward events streams and filters, ward status, ward policy add/list/mode/disable/
// delete, the token is sent and a wrong one is refused; ward events reads stdin when piped.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execEvent, makeFixture, policyYaml, TOKEN, type Fixture } from "./lib/api-fixture.ts";

// Each test spawns bun several times; on a loaded machine one spawn can take seconds.
const SPAWN_TIMEOUT = 60_000;

const main = join(import.meta.dir, "..", "..", "src", "cli", "main.ts");
let f: Fixture;
let server: ReturnType<typeof Bun.serve>;
let dir: string;
let env: Record<string, string>;

beforeAll(() => {
  f = makeFixture();
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: f.app.fetch, idleTimeout: 0 });
  dir = mkdtempSync(join(tmpdir(), "ward-cli-"));
  writeFileSync(join(dir, "token"), `${TOKEN}\n`, { mode: 0o600 });
  // The state file route: URL and token file, as the agent writes them.
  writeFileSync(join(dir, "agent.json"), JSON.stringify({ pid: process.pid, url: `http://127.0.0.1:${server.port}`, token_file: join(dir, "token"), node_name: "n", version: "x", started_at: "" }));
  env = { ...(process.env as Record<string, string>), WARD_STATE_FILE: join(dir, "agent.json") };
});
afterAll(async () => {
  f.hub.closeSubscribers();
  await server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function ward(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
  const p = Bun.spawn([process.execPath, main, ...args], {
    env: { ...env, ...opts.env },
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

describe("ward policy (remote)", () => {
  test("add, list, mode, disable, delete", async () => {
    const file = join(dir, "p.yaml");
    writeFileSync(file, policyYaml("cli-policy"));
    let r = await ward(["policy", "add", file, "--mode", "monitor"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("added cli-policy (monitor)");
    r = await ward(["policy", "list", "-o", "json"]);
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: "cli-policy", mode: "monitor", enabled: true }]);
    r = await ward(["policy", "mode", "cli-policy", "enforce"]);
    expect(r.code).toBe(0);
    r = await ward(["policy", "disable", "cli-policy"]);
    expect(r.stdout).toBe("cli-policy: disabled\n");
    r = await ward(["policy", "list"]);
    expect(r.stdout).toMatch(/^NAME\s+KIND\s+MODE\s+STATE\s+SOURCE\ncli-policy\s+TracingPolicy\s+enforce\s+disabled\s+api\n$/);
    r = await ward(["policy", "delete", "cli-policy"]);
    expect(r.code).toBe(0);
    expect(f.store.list()).toEqual([]);
  }, SPAWN_TIMEOUT);

  test("an invalid file prints file:line:col: path: message and exits 1", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: b\nspecc: {}\n");
    const r = await ward(["policy", "add", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${file}:5:1: specc: unknown field "specc"\n`);
    expect(f.store.list()).toEqual([]);
  }, SPAWN_TIMEOUT);

  test("deleting an unknown policy exits 1 with the agent's message", async () => {
    const r = await ward(["policy", "delete", "ghost"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no policy named "ghost"');
  }, SPAWN_TIMEOUT);

  test("a wrong token is refused", async () => {
    const r = await ward(["status"], { env: { WARD_TOKEN: "not-the-token-not-the-token" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("401");
  }, SPAWN_TIMEOUT);
});

describe("ward status", () => {
  test("human and json forms", async () => {
    let r = await ward(["status"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("ward 0.0.0-test on node-a (pid 1), up 5s, ready\n");
    expect(r.stdout).toContain("  process          running");
    r = await ward(["--server", `127.0.0.1:${server.port}`, "status", "-o", "json"]);
    expect(JSON.parse(r.stdout).node_name).toBe("node-a");
  }, SPAWN_TIMEOUT);
});

describe("ward events", () => {
  test("streams from the agent with filters (stdin not a pipe)", async () => {
    const p = Bun.spawn([process.execPath, main, "events", "--event-types", "PROCESS_EXEC", "--process", "curl"], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 400 && f.hub.counters().subscribers === 0; i++) await Bun.sleep(10);
    expect(f.hub.counters().subscribers).toBe(1);
    f.hub.publish(execEvent("/bin/true"));
    f.hub.publish({ process_exit: { process: { binary: "/usr/bin/curl" } } });
    f.hub.publish(execEvent("/usr/bin/curl"));
    f.hub.closeSubscribers();
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    expect(out).toBe(`${JSON.stringify(execEvent("/usr/bin/curl"))}\n`);
  }, SPAWN_TIMEOUT);

  test("a lost record goes to stderr; stdout keeps only the events", async () => {
    const p = Bun.spawn([process.execPath, main, "events", "-o", "compact"], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 400 && f.hub.counters().subscribers === 0; i++) await Bun.sleep(10);
    expect(f.hub.counters().subscribers).toBe(1);
    // 200 events in one go against a backlog of 64: most are lost for this client.
    for (let i = 0; i < 200; i++) f.hub.publish(execEvent(`/bin/e${i}`));
    f.hub.closeSubscribers();
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(code).toBe(0);
    const lines = out.trim().split("\n");
    expect(lines.every((l) => l.startsWith("🚀 process "))).toBe(true);
    const m = /ward events: (\d+) events lost: this client read more slowly/.exec(err);
    expect(m).not.toBeNull();
    expect(lines.length + Number(m![1])).toBe(200);
  }, SPAWN_TIMEOUT);

  test("reads JSON lines from a pipe and filters them offline", async () => {
    const lines = [execEvent("/bin/a"), { process_exit: { process: { binary: "/bin/a" } } }, execEvent("/bin/b")].map((e) => JSON.stringify(e));
    const r = await ward(["events", "-e", "PROCESS_EXEC", "--process", "/a$"], { stdin: `${lines.join("\n")}\nnot json\n\n`, env: { WARD_STATE_FILE: "/nonexistent" } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${lines[0]}\n`);
    expect(r.stderr).toContain("stdin line 4: not a JSON object, skipped");
  }, SPAWN_TIMEOUT);

  test("-o compact renders tetra's one-line form", async () => {
    const line = JSON.stringify({ process_exec: { process: { binary: "/usr/bin/curl", arguments: "cilium.io" } }, node_name: "node-a" });
    const r = await ward(["events", "-o", "compact"], { stdin: `${line}\n` });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("🚀 process node-a /usr/bin/curl cilium.io\n");
  }, SPAWN_TIMEOUT);

  test("a bad filter is a usage error (exit 2)", async () => {
    const r = await ward(["events", "--event-types", "NOPE"], { stdin: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown event type "NOPE"');
  }, SPAWN_TIMEOUT);
});
