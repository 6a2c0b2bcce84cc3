// uprobe policies under --keep-sensors-on-exit, as root against the real kernel with the real
// agent: a Sigkill uprobe on a shared-library function built here (test/kernel/uprobe-helper.c)
// is pinned (gen_uprobe and its link, generic/link_up_<policy no>_<dispatch id>); after the
// agent is killed with SIGKILL the caller is still killed before the function body runs, also
// while the next agent starts; that agent adopts the same link (same link id, nothing attached
// anew), reports the calls with the pinned target's path and symbol, and deleting the policy
// lets the call run and leaves nothing under the bpf dir. A policy file changed while the agent
// was down is re-applied (old link detached and unpinned). Without the flag nothing is pinned.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { kernelTest } from "../lib/host.ts";
import { waitFor } from "../lib/agent.ts";
import { KeepAgents, pinsUnder, type KeepAgent } from "../lib/keep-agent.ts";
import { bpfLinks, linkIdsOf, systemLinkIds } from "../lib/bpf-links.ts";

const root = join(import.meta.dir, "..", "..");
const helper = join(root, "test", "kernel", "uprobe-helper.c");
const dir = mkdtempSync(join(tmpdir(), "ward-keep-uprobe-"));
const bpfRoot = `/sys/fs/bpf/ward-keep-uprobe-${process.pid}`;
const lib = join(dir, "libwardprobe.so");
const caller = join(dir, "caller");
const agents = new KeepAgents(dir);

function gcc(args: string[]): void {
  const r = spawnSync("gcc", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc ${args.join(" ")}: ${r.stderr}`);
}

beforeAll(() => {
  ensureSystemPackages([["/usr/bin/cc", "gcc"]]);
  gcc(["-O2", "-shared", "-fPIC", "-DWARD_LIB", "-o", lib, helper]);
  gcc(["-O2", "-o", caller, helper, `-L${dir}`, "-lwardprobe", `-Wl,-rpath,${dir}`]);
});

afterAll(async () => {
  await agents.killAll();
  // Pins a failed run left would go on killing callers of the library: remove them.
  for (const n of readdirSync("/sys/fs/bpf")) if (n.startsWith(`ward-keep-uprobe-${process.pid}`)) rmSync(join("/sys/fs/bpf", n), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

const policyKilling = (n: number): string => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: keep-uprobe
spec:
  uprobes:
  - path: "${lib}"
    symbols:
    - "ward_probe_target"
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
        - "${n}"
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "post-"
`;
const POLICY = policyKilling(13);

function call(n: number, s: string): { stdout: string; signal: NodeJS.Signals | null } {
  const r = spawnSync(caller, ["lib", String(n), s], { encoding: "utf8", timeout: 20_000 });
  return { stdout: r.stdout ?? "", signal: r.signal };
}

function killedCall(n = 13): void {
  expect(call(n, "x")).toEqual({ stdout: "", signal: "SIGKILL" });
}

/** The agent's perf links (fdinfo link_type "perf"): with only a uprobe policy applied, its uprobe links. */
function perfLinks(pid: number): number[] {
  return bpfLinks(pid).filter((l) => l.linkType === "perf").map((l) => l.linkId).sort((a, b) => a - b);
}

describe("uprobe policies under --keep-sensors-on-exit (e2e)", () => {
  kernelTest(
    "kill -9: the pinned uprobe still kills the caller, also through the restart; the restarted agent adopts the same link, reports the calls, and delete lets the call run and unpins everything",
    async () => {
      const bpfDir = `${bpfRoot}-a`;
      const store = join(dir, "store-a");
      expect(call(13, "x").stdout).toBe("entered\nreturned 15\n");

      const a1 = await agents.start({ bpfDir, store });
      let a1Links: Set<number>;
      let a1Perf: number[];
      try {
        const r = await a1.api("/v1/policies", { method: "POST", body: POLICY, headers: { "Content-Type": "application/yaml" } });
        expect(r.status).toBe(201);
        killedCall();
        expect(call(4, "quiet").stdout).toBe("entered\nreturned 10\n");
        const ps = ((await (await a1.api("/v1/policies")).json()) as { policies: { name: string; pinned?: string; hooks?: { afterExit: string }[] }[] }).policies;
        expect(ps[0]?.pinned).toBeDefined();
        expect(ps[0]?.hooks?.[0]?.afterExit).toContain("pinned per policy and target");
        a1Links = linkIdsOf(a1.agent.pid);
        a1Perf = perfLinks(a1.agent.pid);
        expect(a1Perf.length).toBe(1); // one target: one uprobe link
        const pins = pinsUnder(bpfDir);
        expect(pins.filter((p) => /^generic\/link_up_\d+_\d+$/.test(p)).length).toBe(1);
        expect(pins).toContain("generic/prog_gen_uprobe");
      } catch (e) {
        await a1.kill9();
        throw new Error(`${(e as Error).message}\n${await a1.stderr}`);
      }
      await a1.kill9();

      // No agent: the pinned uprobe alone kills the caller; other calls run.
      killedCall();
      expect(call(4, "quiet").stdout).toBe("entered\nreturned 10\n");
      const sys = systemLinkIds();
      for (const id of a1Links) expect(sys.has(id)).toBe(true);

      // Callers that keep calling while the next agent starts: every one of them is killed.
      const loop = Bun.spawn(["sh", "-c", `while :; do ${caller} lib 13 x >/dev/null 2>&1; echo $?; sleep 0.02; done`], { stdout: "pipe", stderr: "ignore" });
      const restartAt = performance.now();
      const a2 = await agents.start({ bpfDir, store }).finally(() => loop.kill("SIGKILL"));
      const tries = (await new Response(loop.stdout).text()).split("\n").filter((x) => x !== "");
      expect(tries.length).toBeGreaterThan(5);
      expect(tries.filter((rc) => rc !== "137")).toEqual([]);
      process.stderr.write(`uprobe restart window (asserted above): ${((performance.now() - restartAt) / 1000).toFixed(1)} s to ready, ${tries.length} calls, every one killed\n`);
      try {
        // Adopted, not attached anew: the same links, the uprobe's among them.
        expect(linkIdsOf(a2.agent.pid)).toEqual(a1Links);
        expect(perfLinks(a2.agent.pid)).toEqual(a1Perf);
        const ps = ((await (await a2.api("/v1/policies")).json()) as { policies: { name: string; state: string; adopted?: boolean }[] }).policies;
        expect(ps.map((p) => [p.name, p.state, p.adopted])).toEqual([["keep-uprobe", "enforcing", true]]);
        killedCall();
        // The adopted target names reach the records: path and symbol from the manifest.
        expect(call(4, "post-adopted").stdout).toBe("entered\nreturned 17\n");
        const ev = await waitFor("a process_uprobe event of the adopted policy", () => uprobes(a2).find((e) => e.action === "KPROBE_ACTION_POST"), 15_000, a2.agent);
        expect(ev).toMatchObject({ path: lib, symbol: "ward_probe_target", policy_name: "keep-uprobe", args: [{ int_arg: 4 }, { string_arg: "post-adopted" }] });

        expect((await a2.api("/v1/policies/keep-uprobe", { method: "DELETE" })).status).toBe(200);
        expect(call(13, "x").stdout).toBe("entered\nreturned 15\n");
        expect(pinsUnder(bpfDir)).toEqual([]);
        expect(perfLinks(a2.agent.pid)).toEqual([]);
        const after = systemLinkIds();
        for (const id of a1Perf) expect(after.has(id)).toBe(false);
        expect(await a2.stop()).toBe(0);
      } catch (e) {
        await a2.stop();
        throw new Error(`${(e as Error).message}\nagent:\n${await a2.stderr}`);
      }
      expect(existsSync(bpfDir)).toBe(false);
      expect(call(13, "x").stdout).toBe("entered\nreturned 15\n");
    },
    240_000,
  );

  kernelTest(
    "without the flag nothing is pinned: the uprobe ends with the agent, on SIGKILL too",
    async () => {
      const bpfDir = `${bpfRoot}-b`;
      const a = await agents.start({ bpfDir, store: join(dir, "store-b"), keep: false });
      let perf: number[];
      try {
        const r = await a.api("/v1/policies", { method: "POST", body: POLICY, headers: { "Content-Type": "application/yaml" } });
        expect(r.status).toBe(201);
        killedCall();
        perf = perfLinks(a.agent.pid);
        expect(perf.length).toBe(1);
        expect(pinsUnder(bpfDir).filter((p) => p.includes("link_") || p.includes("prog_"))).toEqual([]);
      } catch (e) {
        await a.kill9();
        throw new Error(`${(e as Error).message}\n${await a.stderr}`);
      }
      await a.kill9();
      expect(call(13, "x").stdout).toBe("entered\nreturned 15\n");
      expect(pinsUnder(bpfDir)).toEqual([]);
      const sys = systemLinkIds();
      for (const id of perf) expect(sys.has(id)).toBe(false);
    },
    120_000,
  );

  kernelTest(
    "a uprobe policy file changed while the agent was down is re-applied: the old link detached and unpinned, the new one pinned; a start without the flag adopts, unpins, and leaves nothing after SIGKILL",
    async () => {
      const bpfDir = `${bpfRoot}-c`;
      const store = join(dir, "store-c");
      const policyFile = join(dir, "changing-uprobe.yaml");
      writeFileSync(policyFile, policyKilling(13));
      const a1 = await agents.start({ bpfDir, store, policies: [policyFile] });
      const old = perfLinks(a1.agent.pid);
      expect(old.length).toBe(1);
      killedCall(13);
      await a1.kill9();
      killedCall(13);

      writeFileSync(policyFile, policyKilling(14));
      const a2 = await agents.start({ bpfDir, store, policies: [policyFile] });
      try {
        killedCall(14);
        expect(call(13, "x").stdout).toBe("entered\nreturned 15\n");
        const now = perfLinks(a2.agent.pid);
        expect(now.length).toBe(1);
        expect(now).not.toEqual(old);
        // the old version's link is detached and unpinned, the new one pinned in its place
        expect(systemLinkIds().has(old[0]!)).toBe(false);
        expect(pinsUnder(bpfDir).filter((p) => p.startsWith("generic/link_up_")).length).toBe(1);
        expect(await a2.stop()).toBe(0);
      } finally {
        await a2.stop();
      }
      expect(await a2.stderr).toContain("re-applied: its content or mode changed");
      // A graceful stop with the flag keeps it pinned.
      killedCall(14);

      const a3 = await agents.start({ bpfDir, store, policies: [policyFile], keep: false });
      try {
        expect(pinsUnder(bpfDir)).toEqual([]);
        killedCall(14);
      } finally {
        await a3.kill9();
      }
      expect(call(14, "x").stdout).toBe("entered\nreturned 16\n");
      expect(pinsUnder(bpfDir)).toEqual([]);
    },
    240_000,
  );
});

/** The process_uprobe events an agent exported so far. */
function uprobes(a: KeepAgent): { path?: string; symbol?: string; policy_name?: string; action?: string; args?: unknown[] }[] {
  return a.events().flatMap((e) => {
    const u = (e as { process_uprobe?: { path?: string; symbol?: string; policy_name?: string; action?: string; args?: unknown[] } }).process_uprobe;
    return u !== undefined ? [u] : [];
  });
}
