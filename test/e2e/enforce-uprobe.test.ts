// spec.uprobes through the real agent (`ward agent`), as root against the real kernel: a
// policy added over the API puts a uprobe on a shared library function built here with gcc
// (test/kernel/uprobe-helper.c); its calls become process_uprobe events in the export file
// (path, symbol, args, policy_name, action, the calling process), Sigkill kills the caller
// before the function body runs, /v1/status names the mechanism, a missing symbol is
// refused with its policy position and leaves nothing applied, and delete detaches it.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ensureSystemPackages } from "../../build/system.ts";
import { kernelTest } from "../lib/host.ts";
import { agentReady, waitFor } from "../lib/agent.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const helper = join(root, "test", "kernel", "uprobe-helper.c");
const dir = mkdtempSync(join(tmpdir(), "ward-uprobe-e2e-"));
const bpfDir = `/sys/fs/bpf/ward-uprobe-e2e-${process.pid}`;
const lib = join(dir, "libwardprobe.so");
const caller = join(dir, "caller");

function gcc(args: string[]): void {
  const r = spawnSync("gcc", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc ${args.join(" ")}: ${r.stderr}`);
}

beforeAll(() => {
  ensureSystemPackages([["/usr/bin/cc", "gcc"]]);
  gcc(["-O2", "-shared", "-fPIC", "-DWARD_LIB", "-o", lib, helper]);
  gcc(["-O2", "-o", caller, helper, `-L${dir}`, "-lwardprobe", `-Wl,-rpath,${dir}`]);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

const POLICY = (name: string, symbol = "ward_probe_target") => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
spec:
  uprobes:
  - path: "${lib}"
    symbols:
    - "${symbol}"
    message: "probe target called"
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values:
        - "13"
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "post-"
`;

interface UprobeEvent {
  process?: { binary?: string; pid?: number };
  path?: string;
  symbol?: string;
  policy_name?: string;
  message?: string;
  args?: Record<string, unknown>[];
  action?: string;
}

describe("uprobes through the agent", () => {
  kernelTest(
    "a uprobe policy over the API: process_uprobe events with Tetragon's fields, Sigkill before the body runs, status names the mechanism, bad symbol refused, delete detaches",
    async () => {
      const stateFile = join(dir, "state.json");
      const tokenFile = join(dir, "token");
      const exportFile = join(dir, "events.log");
      const agent: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(
        [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", bpfDir],
        { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
      );
      const stderr = new Response(agent.stderr).text();
      try {
        const { state, token } = await agentReady(agent, { stateFile, tokenFile }, stderr);
        const api = (path: string, init: RequestInit = {}) => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
        const uprobes = (): UprobeEvent[] =>
          existsSync(exportFile)
            ? readFileSync(exportFile, "utf8").split("\n").filter((l) => l.includes("process_uprobe")).map((l) => (JSON.parse(l) as { process_uprobe: UprobeEvent }).process_uprobe)
            : [];

        const bad = await api("/v1/policies", { method: "POST", body: POLICY("uprobe-bad", "no_such_function_here") });
        expect(bad.status).toBe(400);
        const badText = await bad.text();
        expect(badText).toContain("spec.uprobes[0]");
        expect(badText).toContain("symbols[0]: resolve no_such_function_here");
        expect(((await (await api("/v1/policies")).json()) as { policies: unknown[] }).policies).toEqual([]);

        const add = await api("/v1/policies", { method: "POST", body: POLICY("uprobe-e2e") });
        expect(add.status).toBe(201);

        const posted = spawnSync(caller, ["lib", "4", "post-me"], { encoding: "utf8" });
        expect(posted.stdout).toBe("entered\nreturned 12\n");
        const quiet = spawnSync(caller, ["lib", "4", "quiet"], { encoding: "utf8" });
        expect(quiet.stdout).toBe("entered\nreturned 10\n");
        const killed = spawnSync(caller, ["lib", "13", "x"], { encoding: "utf8" });
        expect(killed.signal).toBe("SIGKILL");
        expect(killed.stdout).toBe("");

        const evs = await waitFor("2 process_uprobe events", () => (uprobes().length >= 2 ? uprobes() : undefined), 15_000, agent);
        await Bun.sleep(300);
        const all = uprobes();
        expect(all.length).toBe(2); // the "quiet" call matches no selector
        const post = all.find((e) => e.action === "KPROBE_ACTION_POST");
        const kill = all.find((e) => e.action === "KPROBE_ACTION_SIGKILL");
        expect(post).toMatchObject({ path: lib, symbol: "ward_probe_target", policy_name: "uprobe-e2e", message: "probe target called", args: [{ int_arg: 4 }, { string_arg: "post-me" }] });
        expect(post?.process?.binary).toBe(caller);
        expect(post?.process?.pid).toBe(posted.pid);
        expect(kill).toMatchObject({ path: lib, symbol: "ward_probe_target", args: [{ int_arg: 13 }, { string_arg: "x" }] });
        expect(kill?.process?.pid).toBe(killed.pid);
        expect(evs.length).toBeGreaterThanOrEqual(2);

        const st = (await (await api("/v1/status")).json()) as { policies: { name: string; hooks: { mechanism: string; actions: { action: string; honored: string }[] }[] }[] };
        const hook = st.policies.find((p) => p.name === "uprobe-e2e")?.hooks[0];
        expect(hook?.mechanism).toContain(`uprobe PMU on ${lib}`);
        expect(hook?.actions.find((a) => a.action === "Sigkill")?.honored).toContain("before the function body runs");

        expect((await api("/v1/policies/uprobe-e2e", { method: "DELETE" })).status).toBe(200);
        expect(spawnSync(caller, ["lib", "13", "x"], { encoding: "utf8" }).stdout).toBe("entered\nreturned 15\n");
      } finally {
        if (agent.exitCode === null) agent.kill("SIGTERM");
        expect(await agent.exited).toBe(0);
      }
    },
    120_000,
  );
});
