// runOciHook against the real /v1/workloads route served on loopback (Bun.serve over createApp
// with a real WorkloadRegistry), with /proc and the cgroup v2 root as temp directories: the
// hook answers only once the registry's subscriber applied the workload; agent down, slow or
// refusing follows the fail mode; poststop forgets. The real runtime flow (runc, real cgroups)
// is test/e2e/oci-hook-runc.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../../src/api/app.ts";
import { runOciHook, type FailMode } from "../../../src/workloads/oci-hook.ts";
import { WorkloadRegistry } from "../../../src/workloads/registry.ts";
import { makeFixture, TOKEN } from "../lib/api-fixture.ts";
import { parseDuration, parseOciHookArgs } from "../../../src/cli/commands/oci-hook.ts";
import { UsageError } from "../../../src/cli/args.ts";
import { cgroupV2Mount } from "../../../src/workloads/cgroup-identity.ts";

const tmp = mkdtempSync(join(tmpdir(), "ward-oci-hook-unit-"));
const proc = join(tmp, "proc");
const cg = join(tmp, "cgroup");
const bundle = join(tmp, "bundle");
const PID = 4711;
const annotations = {
  "io.kubernetes.cri.sandbox-namespace": "shop",
  "io.kubernetes.cri.sandbox-name": "nginx-1",
  "io.kubernetes.cri.sandbox-uid": "u-1",
  "io.kubernetes.cri.container-name": "nginx",
  "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.27",
};
let cgroupId = "";

const registry = new WorkloadRegistry();
/** What the registry's one subscriber does with each change (set per test). */
let apply: () => Promise<void> = async () => {};
let server: ReturnType<typeof Bun.serve>;
let url = "";
/** A port nothing listens on. */
let deadUrl = "";

function procCgroup(pid: number | "self", path: string): void {
  mkdirSync(join(proc, String(pid)), { recursive: true });
  writeFileSync(join(proc, String(pid), "cgroup"), `9:name=systemd:${path}\n4:memory:${path}\n0::${path}\n`);
}

beforeAll(async () => {
  mkdirSync(join(cg, "ward", "c1"), { recursive: true });
  mkdirSync(join(cg, "kubepods.slice", "kubepods-pod1.slice", "cri-containerd-c2.scope"), { recursive: true });
  cgroupId = String(statSync(join(cg, "ward", "c1"), { bigint: true }).ino);
  procCgroup(PID, "/ward/c1");
  procCgroup("self", "/runtime");
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations, linux: { cgroupsPath: "kubepods-pod1.slice:cri-containerd:c2" } }));
  await registry.subscribe(() => apply());
  const f = makeFixture({ workloads: registry, cgroupRoot: cg });
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: createApp(f.deps).fetch });
  url = `http://127.0.0.1:${server.port}`;
  const dead = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  deadUrl = `http://127.0.0.1:${dead.port}`;
  dead.stop(true);
});

afterAll(() => {
  server.stop(true);
  rmSync(tmp, { recursive: true, force: true });
});

function state(over: Record<string, unknown> = {}): string {
  return JSON.stringify({ ociVersion: "1.0.2", id: "c1", status: "creating", pid: PID, bundle, annotations, ...over });
}

async function hook(stdin: string | Promise<string>, o: { failMode?: FailMode; timeoutMs?: number; url?: string; token?: string; noAgent?: boolean; allow?: string[] } = {}) {
  const lines: string[] = [];
  const code = await runOciHook(stdin, {
    endpoint: () => {
      if (o.noAgent) throw new Error("no agent found: /run/ward/agent.json does not exist");
      return { url: o.url ?? url, token: o.token ?? TOKEN };
    },
    timeoutMs: o.timeoutMs ?? 2000,
    failMode: o.failMode ?? "closed",
    ...(o.allow ? { failAllowNamespaces: o.allow } : {}),
    procRoot: proc,
    v2Root: cg,
    log: (m) => lines.push(m),
  });
  return { code, stderr: lines.join("\n") };
}

describe("ward oci-hook (createRuntime)", () => {
  test("reports cgroup, id and pod from the annotations; exits 0 only after the scope applied it", async () => {
    let appliedAt = 0;
    apply = async () => {
      await Bun.sleep(150);
      appliedAt = performance.now();
    };
    const r = await hook(state());
    const returnedAt = performance.now();
    expect(r).toEqual({ code: 0, stderr: "" });
    expect(appliedAt).toBeGreaterThan(0);
    expect(returnedAt).toBeGreaterThanOrEqual(appliedAt);
    const w = registry.get("c1")!;
    expect(w).toMatchObject({ key: "c1", cgroupPath: "/ward/c1", cgroupId: BigInt(cgroupId), runtime: "unknown", name: "nginx", image: annotations["io.kubernetes.cri.image-name"], source: "oci-hook" });
    expect(w.pod).toEqual({ namespace: "shop", name: "nginx-1", uid: "u-1", container: "nginx", labels: {} });
    expect(w.annotations).toEqual(annotations);
    apply = async () => {};
  });

  test("no pid in the state: config.json's systemd cgroupsPath", async () => {
    const r = await hook(state({ id: "c2", pid: undefined }));
    expect(r.code).toBe(0);
    expect(registry.get("c2")?.cgroupPath).toBe("/kubepods.slice/kubepods-pod1.slice/cri-containerd-c2.scope");
  });

  test("agent unreachable: closed exits 1, open exits 0; both say what and where", async () => {
    const closed = await hook(state({ id: "down" }), { url: deadUrl });
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain(`ward oci-hook: container down: PUT ${deadUrl}/v1/workloads/down: cannot reach the agent`);
    expect(closed.stderr).toContain("--fail-mode closed: refusing to start it");
    const open = await hook(state({ id: "down" }), { url: deadUrl, failMode: "open" });
    expect(open.code).toBe(0);
    expect(open.stderr).toContain("--fail-mode open: letting it start without confirmed policy scopes");
    const none = await hook(state({ id: "down" }), { noAgent: true });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("no agent found");
    expect(registry.get("down")).toBeUndefined();
  });

  test("--fail-allow-namespace: closed lets the listed namespaces' pods start (the agent's own), no others", async () => {
    const allowed = await hook(state({ id: "own" }), { url: deadUrl, allow: ["ward", "shop"] });
    expect(allowed.code).toBe(0);
    expect(allowed.stderr).toContain("namespace shop is in --fail-allow-namespace: letting it start");
    const other = await hook(state({ id: "own" }), { url: deadUrl, allow: ["ward"] });
    expect(other.code).toBe(1);
    const noPod = await hook(state({ id: "own", annotations: {} }), { url: deadUrl, allow: ["shop"] });
    expect(noPod.code).toBe(1);
  });

  test("agent slower than --timeout: closed exits 1 and withdraws the report; open exits 0", async () => {
    let release!: () => void;
    apply = () => new Promise<void>((r) => (release = r));
    const t0 = performance.now();
    const closed = await hook(state({ id: "slow" }), { timeoutMs: 300 });
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain("no answer in time (--timeout 300 ms)");
    release();
    apply = async () => {};
    await Bun.sleep(50);
    expect(registry.get("slow")).toBeUndefined();
    apply = () => new Promise<void>((r) => (release = r));
    const open = await hook(state({ id: "slow2" }), { timeoutMs: 200, failMode: "open" });
    expect(open.code).toBe(0);
    expect(open.stderr).toContain("no answer in time");
    release();
    apply = async () => {};
  });

  test("agent refusing (bad token, cgroup not its own): the fail mode, with the agent's reason", async () => {
    const r = await hook(state({ id: "tok" }), { token: "not-the-token-0123456789abcdef" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("PUT /v1/workloads/tok: agent answered 401");
  });

  test("a container left in the runtime's own v2 cgroup is refused (scoping it would scope the runtime)", async () => {
    procCgroup(4712, "/runtime");
    const r = await hook(state({ id: "v1only", pid: 4712 }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is in cgroup v2 /runtime, the runtime's own or the root");
    expect((await hook(state({ id: "v1only", pid: 4712 }), { failMode: "open" })).code).toBe(0);
    expect(registry.get("v1only")).toBeUndefined();
  });

  test("bad input: state not JSON, init gone, stdin never closed", async () => {
    const bad = await hook("{");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("ward oci-hook: container ?: OCI state on stdin: state: not valid JSON");
    const gone = await hook(state({ id: "gone", pid: 999999 }));
    expect(gone.stderr).toContain(`read ${proc}/999999/cgroup: ENOENT`);
    const t0 = performance.now();
    const hung = await hook(new Promise<string>(() => {}), { timeoutMs: 200 });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(hung.code).toBe(1);
    expect(hung.stderr).toContain("stdin was not closed in time");
    const noBundle = await hook(state({ id: "nb", bundle: join(tmp, "nope") }));
    expect(noBundle.stderr).toContain(`read ${join(tmp, "nope", "config.json")}: ENOENT`);
  });
});

describe("ward oci-hook (poststop)", () => {
  test("forgets the container; an unknown one or an agent that is down still exits 0", async () => {
    expect(registry.get("c1")).toBeDefined();
    const r = await hook(state({ status: "stopped", pid: undefined }));
    expect(r).toEqual({ code: 0, stderr: "" });
    expect(registry.get("c1")).toBeUndefined();
    expect((await hook(state({ status: "stopped", pid: undefined }))).code).toBe(0);
    const down = await hook(state({ status: "stopped", pid: undefined }), { url: deadUrl });
    expect(down.code).toBe(0);
    expect(down.stderr).toContain("(poststop): DELETE");
  });
});

describe("the command line", () => {
  test("flags: defaults, durations, fail mode, namespaces; bad values are usage errors naming the flag", () => {
    expect(parseOciHookArgs([])).toEqual({ help: false, failMode: "closed", timeoutMs: 5000, failAllowNamespaces: [] });
    const a = parseOciHookArgs(["--fail-mode", "open", "--timeout", "1.5s", "--fail-allow-namespace", "ward", "--fail-allow-namespace=kube-system", "--server", "127.0.0.1:1", "--token-file", "/t", "--state-file", "/s", "--log-file", "/l"]);
    expect(a).toEqual({ help: false, failMode: "open", timeoutMs: 1500, failAllowNamespaces: ["ward", "kube-system"], server: "127.0.0.1:1", tokenFile: "/t", stateFile: "/s", logFile: "/l" });
    expect(parseDuration("250ms", "--timeout")).toBe(250);
    expect(parseDuration("2", "--timeout")).toBe(2000);
    expect(parseDuration("1m", "--timeout")).toBe(60_000);
    const bad: Array<[string[], string]> = [
      [["--fail-mode", "maybe"], '--fail-mode must be open or closed, not "maybe"'],
      [["--timeout", "soon"], '--timeout must be a duration like 500ms, 5s or 2m, not "soon"'],
      [["--timeout", "0"], "--timeout must be above 0 and at most 10m"],
      [["--timeout", "11m"], "--timeout must be above 0 and at most 10m"],
      [["--fail-allow-namespace", "Not_A_Namespace"], "is not a Kubernetes namespace name"],
      [["extra"], 'unexpected argument "extra"'],
      [["--nope"], "unknown flag --nope"],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseOciHookArgs(argv)).toThrow(UsageError);
      expect(() => parseOciHookArgs(argv)).toThrow(message);
    }
  });

  test("`ward --server URL oci-hook --token-file FILE`: the state on stdin reaches the agent; exit codes as the fail mode says", async () => {
    const main = join(import.meta.dir, "..", "..", "..", "src", "cli", "main.ts");
    const tokenFile = join(tmp, "token");
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    const cli = async (argv: string[], stdin: string) => {
      const p = Bun.spawn([process.execPath, main, ...argv], { stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe", env });
      return { code: await p.exited, stdout: await new Response(p.stdout).text(), stderr: await new Response(p.stderr).text() };
    };
    // The command reads the real /proc and cgroup tree (the real flow is test/e2e/oci-hook-runc.test.ts):
    // the config's systemd cgroupsPath does not exist below this host's v2 root, so closed exits 1 saying where.
    const missing = await cli(["--server", url, "oci-hook", "--token-file", tokenFile], state({ id: "cli-1", pid: undefined }));
    expect(missing.code).toBe(1);
    if (cgroupV2Mount() === undefined) expect(missing.stderr).toContain("ward oci-hook: container cli-1: no cgroup v2 hierarchy is mounted");
    else expect(missing.stderr).toContain(`ward oci-hook: container cli-1: stat ${cgroupV2Mount()}/kubepods.slice/kubepods-pod1.slice/cri-containerd-c2.scope: ENOENT`);
    // poststop through --server and --token-file: the agent answers (a failure would be on stderr).
    const gone = await cli(["--server", url, "oci-hook", "--token-file", tokenFile], state({ id: "cli-2", status: "stopped", pid: undefined }));
    expect(gone).toEqual({ code: 0, stdout: "", stderr: "" });
    const usage = await cli(["oci-hook", "--fail-mode", "maybe"], "");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--fail-mode must be open or closed");
  });
});
