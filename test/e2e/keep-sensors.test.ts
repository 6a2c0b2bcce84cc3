// Persistent enforcement (--keep-sensors-on-exit), as root against the real kernel with the
// real agent: policies keep enforcing after the agent is killed with SIGKILL (fanotify rules
// on their pinned file guard backstop, the generic syscall policy on its pinned programs);
// a restarted agent adopts the pins (the kernel's link list shows no new attachment), events
// resume, deleting the policies through the API frees the files and leaves nothing under the
// bpf dir. A changed policy file is re-applied; an incompatible manifest, pins without a
// manifest, and a missing policy store are reported; without the flag nothing stays pinned.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelTest, prepareHost } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { waitFor } from "../lib/agent.ts";
import { KeepAgents, pinsUnder } from "../lib/keep-agent.ts";
import { linkIdsOf, systemLinkIds } from "../lib/bpf-links.ts";
import { BpfMap, MapType } from "../../src/bpf/map.ts";
import { cgroupV2Mount } from "../../src/workloads/cgroup-identity.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-keep-e2e-"));
const bpfRoot = `/sys/fs/bpf/ward-keep-${process.pid}`;
const myCat = join(dir, "my-cat");
const CONTENT = "kept?\n";
const agents = new KeepAgents(dir);

beforeAll(() => {
  prepareHost();
  copyFileSync("/bin/cat", myCat);
  spawnSync("chmod", ["755", myCat]);
});
afterAll(async () => {
  await agents.killAll();
  // Pins left by a failed run would go on killing readers of the temp files: remove them.
  for (const n of readdirSync("/sys/fs/bpf")) if (n.startsWith(`ward-keep-${process.pid}`)) rmSync(join("/sys/fs/bpf", n), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string): string {
  const p = join(dir, name);
  writeFileSync(p, CONTENT);
  return p;
}

const genericPolicy = (name: string, path: string): string => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
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
        - ${path}
      matchBinaries:
      - operator: NotIn
        values:
        - ${myCat}
      matchActions:
      - action: Sigkill
`;

/** A real reader: cat, or the allowed copy. */
function read(path: string, bin = "cat"): { stdout: string; stderr: string; status: number | null; signal: NodeJS.Signals | null } {
  const r = spawnSync(bin, [path], { encoding: "utf8", timeout: 20_000 });
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", status: r.status, signal: r.signal };
}

function killed(path: string): void {
  expect(read(path)).toMatchObject({ stdout: "", signal: "SIGKILL" });
}

function denied(path: string): void {
  const r = read(path);
  expect(r.signal).toBeNull();
  expect(r.status).toBe(1);
  expect(r.stderr).toContain("Operation not permitted");
}

function readable(path: string): void {
  expect(read(path)).toMatchObject({ stdout: CONTENT, signal: null, status: 0 });
}

/** Everything under a bpf dir (pins and directories), [] when it is gone. */
describe("--keep-sensors-on-exit (e2e)", () => {
  kernelTest(
    "kill -9 with a Sigkill and an Override file policy (fanotify, pinned file guard backstop) and a generic syscall policy: still enforced; restart adopts without new links, events resume; delete via the API frees the files and leaves nothing pinned",
    async () => {
      const bpfDir = `${bpfRoot}-a`;
      const store = join(dir, "store-a");
      const kill = file("kill-secret");
      const override = file("override-secret");
      const generic = file("generic-secret");
      for (const p of [kill, override, generic]) readable(p);

      const a1 = await agents.start({ bpfDir, store });
      let a1Links: Set<number>;
      try {
        await a1.add(secureOpenPolicy({ name: "keep-kill", file: kill, allowed: myCat }));
        await a1.add(secureOpenPolicy({ name: "keep-override", file: override, allowed: myCat, action: "Override\n        argError: -1" }));
        await a1.add(genericPolicy("keep-generic", generic));
        killed(kill);
        denied(override);
        killed(generic);
        expect(read(kill, myCat).stdout).toBe(CONTENT);
        // Up front, per rule: what holds it after the agent exits, and that Override becomes a kill there.
        const ps = await a1.policies();
        const ov = ps.find((p) => p.name === "keep-override")!;
        expect(ov.hooks?.[0]?.mechanism).toContain("fanotify");
        expect(ov.hooks?.[0]?.afterExit).toContain("file guard backstop");
        expect(ov.hooks?.[0]?.actions[0]?.honored).toContain("FAN_DENY");
        expect(ov.hooks?.[0]?.actions[0]?.afterExit).toContain("cannot fail the open on this kernel (no BPF LSM), so it kills instead");
        expect(ps.find((p) => p.name === "keep-generic")?.hooks?.[0]?.afterExit).toContain("pinned under --bpf-dir");
        for (const p of ps) expect(p.pinned).toBeDefined();
        a1Links = linkIdsOf(a1.agent.pid);
        expect(a1Links.size).toBeGreaterThan(0);
      } catch (e) {
        const diag = JSON.stringify({ events: a1.events().filter((x) => JSON.stringify(x).includes("secret")).slice(-6), counters: (await a1.policies()).map((p) => [p.name, (p as { counters?: unknown }).counters]) });
        await a1.kill9();
        throw new Error(`${(e as Error).message}\n${diag}\n${await a1.stderr}`);
      }
      await a1.kill9();

      // No agent: the pins alone enforce. Override is held by the backstop, as a kill.
      killed(kill);
      killed(override);
      killed(generic);
      // (This process never opens a protected file: the pins exempt nobody now.)
      for (const p of [kill, override, generic]) expect(read(p, myCat).stdout).toBe(CONTENT);
      expect(spawnSync("cat", ["/etc/hostname"]).status).toBe(0);
      const sys = systemLinkIds();
      for (const id of a1Links) expect(sys.has(id)).toBe(true);
      const pins = pinsUnder(bpfDir);
      expect(pins).toContain("manifest");
      expect(pins.some((p) => p.startsWith("process/link_"))).toBe(true);
      expect(pins.some((p) => p.startsWith("generic/link_"))).toBe(true);
      expect(pins.some((p) => p.startsWith("policies/keep-kill/") && p.includes("/backstop/link_"))).toBe(true);

      // Readers that keep trying while the next agent starts: not one of them may read a file.
      const loops = [kill, override, generic].map((p) => Bun.spawn(["sh", "-c", `while :; do cat ${p} >/dev/null 2>&1; echo $?; sleep 0.02; done`], { stdout: "pipe", stderr: "ignore" }));
      const restartAt = performance.now();
      const a2 = await agents.start({ bpfDir, store }).finally(() => {
        for (const l of loops) l.kill("SIGKILL");
      });
      const tries = await Promise.all(loops.map(async (l) => (await new Response(l.stdout).text()).split("\n").filter((x) => x !== "")));
      for (const t of tries) {
        expect(t.length).toBeGreaterThan(5);
        // 137: killed (the pins, then fanotify or the same pins); 1: EPERM once fanotify answers again
        expect(t.filter((rc) => rc !== "137" && rc !== "1")).toEqual([]);
      }
      process.stderr.write(`restart window (asserted above): ${((performance.now() - restartAt) / 1000).toFixed(1)} s to ready, reads per file ${tries.map((t) => t.length).join("/")}, every one refused\n`);
      try {
        // Adopted, not attached anew: the agent holds exactly the links the first one made.
        expect(linkIdsOf(a2.agent.pid)).toEqual(a1Links);
        const ps = await a2.policies();
        expect(ps.map((p) => [p.name, p.state, p.adopted])).toEqual([
          ["keep-generic", "enforcing", true],
          ["keep-kill", "enforcing", true],
          ["keep-override", "enforcing", true],
        ]);
        // fanotify holds its rules again (EPERM, not a kill), the others as before.
        denied(override);
        killed(kill);
        killed(generic);
        // Events resume: the generic sensor's and fanotify's matches reach the new agent's export.
        const ev = await waitFor("events of the adopted policies", () => {
          const names = new Set(a2.events().flatMap((e) => {
            const k = e.process_kprobe as { policy_name?: string } | undefined;
            return k?.policy_name !== undefined ? [k.policy_name] : [];
          }));
          return names.has("keep-generic") && names.has("keep-kill") && names.has("keep-override") ? names : undefined;
        }, 15_000, a2.agent);
        expect(ev.size).toBeGreaterThanOrEqual(3);

        for (const n of ["keep-kill", "keep-override", "keep-generic"]) expect((await a2.api(`/v1/policies/${n}`, { method: "DELETE" })).status).toBe(200);
        for (const p of [kill, override, generic]) readable(p);
        expect(pinsUnder(bpfDir)).toEqual([]);
        // The policies' links are gone from the kernel; the process sensor's live on while this agent holds them.
        const held = linkIdsOf(a2.agent.pid);
        expect(held.size).toBe(3);
        const after = systemLinkIds();
        for (const id of a1Links) expect(after.has(id)).toBe(held.has(id));
        expect(await a2.stop()).toBe(0);
      } catch (e) {
        await a2.stop();
        throw new Error(`${(e as Error).message}\nagent:\n${await a2.stderr}`);
      }
      expect(existsSync(bpfDir)).toBe(false);
      const gone = systemLinkIds();
      for (const id of a1Links) expect(gone.has(id)).toBe(false);
      const log = await a2.stderr;
      expect(log).toContain("adopted its pinned objects");
    },
    240_000,
  );

  kernelTest(
    "a policy file changed while the agent was down is re-applied (the old pins go after the new ones hold); a start without the flag adopts, then nothing stays pinned",
    async () => {
      const bpfDir = `${bpfRoot}-b`;
      const store = join(dir, "store-b");
      const first = file("first-secret");
      const second = file("second-secret");
      const policyFile = join(dir, "changing.yaml");
      writeFileSync(policyFile, genericPolicy("keep-changing", first));

      const a1 = await agents.start({ bpfDir, store, policies: [policyFile] });
      killed(first);
      readable(second);
      await a1.kill9();
      killed(first);

      writeFileSync(policyFile, genericPolicy("keep-changing", second));
      const a2 = await agents.start({ bpfDir, store, policies: [policyFile] });
      try {
        const [p] = await a2.policies();
        expect(p?.adopted).toBeUndefined();
        expect(p?.state).toBe("enforcing");
        killed(second);
        readable(first);
        expect(await a2.stop()).toBe(0);
      } finally {
        await a2.stop();
      }
      expect(await a2.stderr).toContain("re-applied: its content or mode changed");
      // A graceful stop with the flag keeps it pinned too.
      killed(second);
      expect(pinsUnder(bpfDir)).toContain("manifest");

      // Without the flag: the pins are adopted (no gap) and removed; the agent holds them until it exits.
      const a3 = await agents.start({ bpfDir, store, policies: [policyFile], keep: false });
      try {
        expect(pinsUnder(bpfDir)).toEqual([]);
        killed(second);
      } finally {
        await a3.kill9();
      }
      readable(second);
      expect(pinsUnder(bpfDir)).toEqual([]);

      // And killed with SIGKILL without the flag, nothing is left pinned either.
      const a4 = await agents.start({ bpfDir, policies: [policyFile], keep: false });
      killed(second);
      await a4.kill9();
      readable(second);
      expect(pinsUnder(bpfDir)).toEqual([]);
    },
    240_000,
  );

  kernelTest(
    "a restart that fails (a policy of its set is refused) leaves what was pinned enforcing, including the old version of a policy it had re-applied; the next good start settles it",
    async () => {
      const bpfDir = `${bpfRoot}-d`;
      const store = join(dir, "store-d");
      const oldFile = file("old-secret");
      const newFile = file("new-secret");
      const policyFile = join(dir, "settling.yaml");
      const refused = join(dir, "refused.yaml");
      writeFileSync(policyFile, genericPolicy("keep-settling", oldFile));
      // Refused when applied: the file guard/fanotify need the protected file to exist.
      writeFileSync(refused, secureOpenPolicy({ name: "keep-refused", file: join(dir, "does-not-exist"), allowed: myCat }));

      const a1 = await agents.start({ bpfDir, store, policies: [policyFile] });
      killed(oldFile);
      await a1.kill9();

      writeFileSync(policyFile, genericPolicy("keep-settling", newFile));
      const failed = spawnSync(process.execPath, [main, "agent", "--listen", "127.0.0.1:0", "--token-file", join(dir, "t-d"), "--state-file", join(dir, "s-d.json"), "--export-file", join(dir, "e-d.log"), "--bpf-dir", bpfDir, "--keep-sensors-on-exit", "--policy-store-dir", store, "--policy", policyFile, "--policy", refused], { encoding: "utf8", timeout: 120_000 });
      // It exits (a refused start closes the sensors it loaded) with the refusal named.
      expect(failed.status).toBe(1);
      expect(failed.stderr).toContain("does-not-exist");
      // The old version is still pinned and enforcing; the new one was undone with the start.
      killed(oldFile);
      readable(newFile);
      expect(pinsUnder(bpfDir)).toContain("manifest");

      const a2 = await agents.start({ bpfDir, store, policies: [policyFile] });
      try {
        killed(newFile);
        readable(oldFile);
      } finally {
        await a2.kill9();
      }
      killed(newFile);
      readable(oldFile);
      // Cleaned up by a start without the flag: adopted, unpinned, gone with that agent.
      const a3 = await agents.start({ bpfDir, store, policies: [policyFile], keep: false });
      await a3.kill9();
      readable(newFile);
      expect(pinsUnder(bpfDir)).toEqual([]);
    },
    240_000,
  );

  kernelTest("an incompatible manifest, pins without a manifest, --keep-sensors-on-exit without a policy store or with the CR watch, and scoped policies under it are refused with the reason, nothing changed", async () => {
    const bpfDir = `${bpfRoot}-c`;
    const store = join(dir, "store-c");
    const run = (args: string[]) => spawnSync(process.execPath, [main, "agent", "--listen", "127.0.0.1:0", "--token-file", join(dir, "t-c"), "--state-file", join(dir, "s-c.json"), "--export-file", join(dir, "e-c.log"), "--bpf-dir", bpfDir, ...args], { encoding: "utf8", timeout: 60_000 });

    const noStore = run(["--keep-sensors-on-exit"]);
    expect(noStore.status).toBe(1);
    expect(noStore.stderr).toContain("--keep-sensors-on-exit needs --policy-store-dir DIR");

    // CR policies are not in the store: the flag and the CR watch are refused together.
    const k8s = run(["--keep-sensors-on-exit", "--policy-store-dir", store, "--enable-k8s-api"]);
    expect(k8s.status).not.toBe(0);
    expect(k8s.stderr).toContain("--keep-sensors-on-exit: cannot be used with enable-k8s-api while TracingPolicy CRs are applied");

    // What no pin can hold exactly is refused when applied, naming why: a workload scope (its
    // membership would freeze with the agent). uprobes are pinned (test/e2e/keep-uprobe.test.ts).
    const scoped = join(dir, "keep-scoped.yaml");
    writeFileSync(scoped, secureOpenPolicy({ name: "keep-scoped", file: file("scoped-secret"), allowed: myCat }).replace("spec:\n", "spec:\n  containerSelector:\n    matchLabels:\n      id: 0123456789abcdef\n"));
    const sc = run(["--keep-sensors-on-exit", "--policy-store-dir", store, "--policy", scoped]);
    expect(sc.status).toBe(1);
    // Which refusal depends on the host: without a cgroup v2 hierarchy there are no scopes at all.
    expect(sc.stderr).toContain(cgroupV2Mount() !== undefined ? "spec.containerSelector: the policy is scoped, and with --keep-sensors-on-exit" : "the policy is scoped but this agent has no workload scopes");
    expect(pinsUnder(bpfDir)).toEqual([]);

    // A manifest from a future ward: format 99.
    const text = new TextEncoder().encode(JSON.stringify({ format: 99, ward: "9.9.9", objects: {}, policies: {}, shared: {} }));
    const m = BpfMap.create({ name: "ward_manifest", type: MapType.HASH, keySize: 4, valueSize: 4096, maxEntries: 8 });
    try {
      const chunk = new Uint8Array(4096);
      chunk.set(text);
      m.update(new Uint8Array([0, 0, 0, 0]), chunk);
      const len = new Uint8Array(4096);
      new DataView(len.buffer).setUint32(0, text.length, true);
      m.update(new Uint8Array([255, 255, 255, 255]), len);
      spawnSync("mkdir", ["-p", bpfDir]);
      m.pin(join(bpfDir, "manifest"));
    } finally {
      m.close();
    }
    const bad = run(["--keep-sensors-on-exit", "--policy-store-dir", store]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("manifest format 99 written by ward \"9.9.9\"");
    expect(bad.stderr).toContain(`rm -r ${bpfDir}`);
    expect(pinsUnder(bpfDir)).toEqual(["manifest"]);

    // Pins that no manifest describes.
    rmSync(join(bpfDir, "manifest"));
    const stray = BpfMap.create({ name: "stray", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    stray.pin(join(bpfDir, "policies", "x", "map_stray"));
    stray.close();
    const orphan = run(["--policy-store-dir", store]);
    expect(orphan.status).toBe(1);
    expect(orphan.stderr).toContain("holds pinned BPF objects but no ward manifest (policies/x/map_stray)");
    expect(pinsUnder(bpfDir)).toEqual(["policies/x/map_stray"]);
    rmSync(bpfDir, { recursive: true, force: true });
  }, 120_000);
});
