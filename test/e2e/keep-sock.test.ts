// Socket policies with --keep-sensors-on-exit, as root against the real kernel with the real
// agent: a TCP connect policy and a UDP sendto policy (cgroup/connect4|6 and cgroup/sendmsg4|6
// at the cgroup v2 root) keep failing the denied binary's calls with EPERM after the agent is
// killed with SIGKILL, while another binary connects and sends; a restarted agent adopts the
// pinned cgroup links (the very link ids the first agent made, none new), a connect tried
// again and again during the restart is refused every time; deleting the policies lets the
// calls through and leaves nothing under the bpf dir. A changed socket policy is re-applied
// with no call let through and the old entries leave the pinned maps; a start that fails
// after adopting one leaves it enforcing. Without the flag nothing stays pinned and a SIGKILL
// ends the enforcement.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupLinks, systemLinkIds } from "../lib/bpf-links.ts";
import { buildSockHelpers } from "../lib/sock-helper.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { waitFor } from "../lib/agent.ts";
import { KeepAgents, pinsUnder, type KeepAgent } from "../lib/keep-agent.ts";
import { BpfMap } from "../../src/bpf/map.ts";
import { countActiveSlots, countEntries } from "../../src/sensors/tables.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-keep-sock-"));
const bpfRoot = `/sys/fs/bpf/ward-keep-sock-${process.pid}`;
const denied = join(dir, "denied-helper");
const allowed = join(dir, "allowed-helper");
const agents = new KeepAgents(dir);
let server: Server | undefined;
let udp: Socket | undefined;
let port = 0;
let portU = 0;

beforeAll(async () => {
  if (kernelUnavailable() !== undefined) return;
  buildSockHelpers(denied, allowed);
  server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
  udp = createSocket("udp4");
  await new Promise<void>((r) => udp!.bind(0, "127.0.0.1", r));
  portU = udp.address().port;
});

afterAll(async () => {
  await agents.killAll();
  // Pins left by a failed run would go on denying the helpers: remove them.
  for (const n of readdirSync("/sys/fs/bpf")) if (n.startsWith(`ward-keep-sock-${process.pid}`)) rmSync(join("/sys/fs/bpf", n), { recursive: true, force: true });
  server?.close();
  udp?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** "ok", "EPERM", another errno name, or the signal that ended the helper. */
function call(bin: string, op: "connect" | "sendto"): string {
  const r = spawnSync(bin, [op, op === "connect" ? "tcp" : "udp", "127.0.0.1", String(op === "connect" ? port : portU)], { encoding: "utf8", timeout: 10_000 });
  return r.signal ?? r.stdout.trim();
}

const connectPolicy = (name = "keep-connect", argError = -1): string => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
spec:
  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 0
        operator: Protocol
        values: ["IPPROTO_TCP"]
      - index: 1
        operator: Family
        values: ["AF_INET"]
      - index: 1
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["${port}"]
      matchBinaries:
      - operator: In
        values: ["${denied}"]
      matchActions:
      - action: Override
        argError: ${argError}
`;

const sendtoPolicy = (): string => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: keep-sendto
spec:
  kprobes:
  - call: sys_sendto
    syscall: true
    args:
    - index: 0
      type: int
    - index: 4
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 4
        operator: Family
        values: ["AF_INET"]
      - index: 4
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 4
        operator: SPort
        values: ["${portU}"]
      matchBinaries:
      - operator: In
        values: ["${denied}"]
      matchActions:
      - action: Override
        argError: -1
`;

/** Active hook slots (struct sock_slot.flags, offset 0, bit 1) and set entries in the pinned maps. */
function pinnedTables(bpfDir: string): { activeSlots: number; lpm: number; binSet: number } {
  const open = (n: string): BpfMap => BpfMap.fromPin(join(bpfDir, "sock", `map_${n}`));
  const slots = open("sock_slots"), lpm = open("sock_addr_lpm"), bins = open("sock_bin_set");
  try {
    return { activeSlots: countActiveSlots(slots, 0, 1), lpm: countEntries(lpm), binSet: countEntries(bins) };
  } finally {
    for (const m of [slots, lpm, bins]) m.close();
  }
}

const cgroupLinkIds = (pid: number): number[] => cgroupLinks(pid).map((l) => l.linkId).sort((a, b) => a - b);

describe("--keep-sensors-on-exit with socket policies (e2e)", () => {
  kernelTest(
    "kill -9: connect and sendto still fail with EPERM for the denied binary only; the restart adopts the same cgroup link ids with no refused call let through; delete frees them and leaves nothing pinned",
    async () => {
      const bpfDir = `${bpfRoot}-a`;
      const store = join(dir, "store-a");
      expect(call(denied, "connect")).toBe("ok");
      expect(call(denied, "sendto")).toBe("ok");

      const a1 = await agents.start({ bpfDir, store, keep: true });
      let a1Links: number[];
      try {
        await a1.add(connectPolicy());
        await a1.add(sendtoPolicy());
        expect(call(denied, "connect")).toBe("EPERM");
        expect(call(denied, "sendto")).toBe("EPERM");
        expect(call(allowed, "connect")).toBe("ok");
        expect(call(allowed, "sendto")).toBe("ok");
        const ps = await a1.policies();
        for (const p of ps) {
          expect(p.pinned).toBeDefined();
          expect(p.hooks?.[0]?.mechanism).toContain("cgroup sock_addr programs");
          expect(p.hooks?.[0]?.afterExit).toContain("cgroup links, programs and maps are pinned under --bpf-dir");
        }
        a1Links = cgroupLinkIds(a1.agent.pid);
        expect(a1Links.length).toBe(4); // cgroup/connect4, connect6, sendmsg4, sendmsg6 (the hooks attach both families)
      } catch (e) {
        await a1.kill9();
        throw new Error(`${(e as Error).message}\n${await a1.stderr}`);
      }
      await a1.kill9();

      // No agent: the pinned links alone decide, for the denied binary only.
      expect(call(denied, "connect")).toBe("EPERM");
      expect(call(denied, "sendto")).toBe("EPERM");
      expect(call(allowed, "connect")).toBe("ok");
      expect(call(allowed, "sendto")).toBe("ok");
      const sys = systemLinkIds();
      for (const id of a1Links) expect(sys.has(id)).toBe(true);
      const pins = pinsUnder(bpfDir);
      expect(pins).toContain("manifest");
      expect(pins.filter((p) => p.startsWith("sock/link_"))).toEqual(["sock/link_connect4", "sock/link_connect6", "sock/link_sendmsg4", "sock/link_sendmsg6"]);
      expect(pins.some((p) => p.startsWith("sock/map_sock_addr_lpm"))).toBe(true);

      // A denied connect tried again and again while the next agent starts: every one refused.
      const loop = Bun.spawn(["sh", "-c", `while :; do ${denied} connect tcp 127.0.0.1 ${port}; sleep 0.02; done`], { stdout: "pipe", stderr: "ignore" });
      const restartAt = performance.now();
      const a2 = await agents.start({ bpfDir, store, keep: true }).finally(() => loop.kill("SIGKILL"));
      const tries = (await new Response(loop.stdout).text()).split("\n").filter((x) => x !== "");
      try {
        expect(tries.length).toBeGreaterThan(5);
        expect(tries.filter((t) => t !== "EPERM")).toEqual([]);
        process.stderr.write(`restart window (asserted above): ${((performance.now() - restartAt) / 1000).toFixed(1)} s to ready, ${tries.length} connects tried, every one EPERM\n`);
        // Adopted, not attached anew: the agent holds exactly the cgroup links the first one made.
        expect(cgroupLinkIds(a2.agent.pid)).toEqual(a1Links);
        const ps = await a2.policies();
        expect(ps.map((p) => [p.name, p.state, p.adopted])).toEqual([
          ["keep-connect", "enforcing", true],
          ["keep-sendto", "enforcing", true],
        ]);
        expect(call(denied, "connect")).toBe("EPERM");
        expect(call(denied, "sendto")).toBe("EPERM");
        expect(call(allowed, "connect")).toBe("ok");
        // Events resume: the adopted slots' records reach the new agent's export.
        await waitFor("events of the adopted socket policies", () => {
          const names = eventPolicies(a2);
          return names.has("keep-connect") && names.has("keep-sendto") ? names : undefined;
        }, 15_000, a2.agent);

        expect((await a2.api("/v1/policies/keep-connect", { method: "DELETE" })).status).toBe(200);
        expect(call(denied, "connect")).toBe("ok");
        expect(call(denied, "sendto")).toBe("EPERM");
        expect(pinsUnder(bpfDir).filter((p) => p.startsWith("sock/link_"))).toEqual(["sock/link_sendmsg4", "sock/link_sendmsg6"]);
        expect((await a2.api("/v1/policies/keep-sendto", { method: "DELETE" })).status).toBe(200);
        expect(call(denied, "sendto")).toBe("ok");
        expect(pinsUnder(bpfDir)).toEqual([]);
        expect(cgroupLinks(a2.agent.pid)).toEqual([]);
        const after = systemLinkIds();
        for (const id of a1Links) expect(after.has(id)).toBe(false);
        expect(await a2.stop()).toBe(0);
      } catch (e) {
        await a2.stop();
        throw new Error(`${(e as Error).message}\nconnects during restart: ${tries.join(",")}\nagent:\n${await a2.stderr}`);
      }
      expect(existsSync(bpfDir)).toBe(false);
      expect(await a2.stderr).toContain("policy keep-connect: adopted its pinned objects");
    },
    240_000,
  );

  kernelTest(
    "a socket policy file changed while the agent was down: the new version holds before the old pins go (no connect gets through), the old one's entries are removed; a start without the flag adopts and unpins, and its SIGKILL ends it",
    async () => {
      const bpfDir = `${bpfRoot}-c`;
      const store = join(dir, "store-c");
      const policyFile = join(dir, "changing.yaml");
      writeFileSync(policyFile, connectPolicy("keep-changing", -1));
      const a1 = await agents.start({ bpfDir, store, keep: true, policies: [policyFile] });
      expect(call(denied, "connect")).toBe("EPERM");
      const a1Links = cgroupLinkIds(a1.agent.pid);
      await a1.kill9();
      expect(call(denied, "connect")).toBe("EPERM");
      const before = pinnedTables(bpfDir);
      expect(before.activeSlots).toBe(1);
      expect(before.lpm).toBeGreaterThan(0);

      // The new version fails the call with EACCES: during the restart either version may
      // answer, but one of them always does.
      writeFileSync(policyFile, connectPolicy("keep-changing", -13));
      const loop = Bun.spawn(["sh", "-c", `while :; do ${denied} connect tcp 127.0.0.1 ${port}; sleep 0.02; done`], { stdout: "pipe", stderr: "ignore" });
      const a2 = await agents.start({ bpfDir, store, keep: true, policies: [policyFile] }).finally(() => loop.kill("SIGKILL"));
      const tries = (await new Response(loop.stdout).text()).split("\n").filter((x) => x !== "");
      try {
        expect(tries.length).toBeGreaterThan(5);
        expect(tries.filter((t) => t !== "EPERM" && t !== "EACCES")).toEqual([]);
        const [p] = await a2.policies();
        expect(p?.adopted).toBeUndefined();
        expect(p?.state).toBe("enforcing");
        expect(call(denied, "connect")).toBe("EACCES");
        expect(call(allowed, "connect")).toBe("ok");
        // The links the old version ran on serve the new one: still no new attachment.
        expect(cgroupLinkIds(a2.agent.pid)).toEqual(a1Links);
        expect(await a2.stop()).toBe(0);
      } catch (e) {
        await a2.stop();
        throw new Error(`${(e as Error).message}\nconnects during restart: ${tries.join(",")}\nagent:\n${await a2.stderr}`);
      }
      expect(await a2.stderr).toContain("re-applied: its content or mode changed");
      // A graceful stop with the flag keeps it pinned too; the old version's slot and set
      // entries are gone (the same content but for argError: as many entries as before).
      expect(call(denied, "connect")).toBe("EACCES");
      expect(pinnedTables(bpfDir)).toEqual(before);

      const a3 = await agents.start({ bpfDir, store, keep: false, policies: [policyFile] });
      try {
        expect((await a3.policies())[0]?.adopted).toBe(true);
        expect(pinsUnder(bpfDir)).toEqual([]);
        expect(call(denied, "connect")).toBe("EACCES");
      } finally {
        await a3.kill9();
      }
      expect(call(denied, "connect")).toBe("ok");
      expect(pinsUnder(bpfDir)).toEqual([]);
      const sys = systemLinkIds();
      for (const id of a1Links) expect(sys.has(id)).toBe(false);
    },
    240_000,
  );

  kernelTest(
    "a restart that fails after adopting a socket policy (another policy of its set is refused) leaves it pinned and enforcing; the next start adopts it",
    async () => {
      const bpfDir = `${bpfRoot}-d`;
      const store = join(dir, "store-d");
      const policyFile = join(dir, "kept.yaml");
      const refused = join(dir, "refused.yaml");
      writeFileSync(policyFile, connectPolicy("keep-kept", -1));
      // Refused when applied: a file rule needs its file to exist.
      writeFileSync(refused, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: keep-refused
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["${join(dir, "does-not-exist")}"]
      matchActions:
      - action: Sigkill
`);
      const a1 = await agents.start({ bpfDir, store, keep: true, policies: [policyFile] });
      const a1Links = cgroupLinkIds(a1.agent.pid);
      await a1.kill9();
      const failed = spawnSync(process.execPath, [main, "agent", "--listen", "127.0.0.1:0", "--token-file", join(dir, "t-d"), "--state-file", join(dir, "s-d.json"), "--export-file", join(dir, "e-d.log"), "--bpf-dir", bpfDir, "--keep-sensors-on-exit", "--policy-store-dir", store, "--policy", policyFile, "--policy", refused], { encoding: "utf8", timeout: 120_000 });
      expect(failed.status).toBe(1);
      expect(failed.stderr).toContain("does-not-exist");
      expect(failed.stderr).toContain("policy keep-kept: adopted its pinned objects");
      // What the failed start had adopted is still pinned, enforcing, on the same links.
      expect(call(denied, "connect")).toBe("EPERM");
      expect(call(allowed, "connect")).toBe("ok");
      expect(pinnedTables(bpfDir).activeSlots).toBe(1);
      const sys = systemLinkIds();
      for (const id of a1Links) expect(sys.has(id)).toBe(true);

      const a2 = await agents.start({ bpfDir, store, keep: true, policies: [policyFile] });
      try {
        expect((await a2.policies())[0]?.adopted).toBe(true);
        expect(cgroupLinkIds(a2.agent.pid)).toEqual(a1Links);
        expect((await a2.api("/v1/policies/keep-kept", { method: "DELETE" })).status).toBe(200);
        expect(call(denied, "connect")).toBe("ok");
        expect(pinsUnder(bpfDir)).toEqual([]);
      } finally {
        await a2.kill9();
      }
    },
    240_000,
  );

  kernelTest(
    "without the flag: nothing is pinned, and a SIGKILL of the agent ends the socket enforcement",
    async () => {
      const bpfDir = `${bpfRoot}-b`;
      const a = await agents.start({ bpfDir, store: join(dir, "store-b"), keep: false });
      try {
        await a.add(connectPolicy());
        expect(call(denied, "connect")).toBe("EPERM");
        expect(cgroupLinks(a.agent.pid).length).toBe(2);
        expect(pinsUnder(bpfDir)).toEqual([]);
      } catch (e) {
        await a.kill9();
        throw new Error(`${(e as Error).message}\n${await a.stderr}`);
      }
      const links = cgroupLinkIds(a.agent.pid);
      await a.kill9();
      expect(call(denied, "connect")).toBe("ok");
      expect(pinsUnder(bpfDir)).toEqual([]);
      const sys = systemLinkIds();
      for (const id of links) expect(sys.has(id)).toBe(false);
    },
    120_000,
  );
});

/** The policy names of the process_kprobe events an agent exported so far. */
function eventPolicies(a: KeepAgent): Set<string> {
  return new Set(a.events().flatMap((e) => {
    const k = (e as { process_kprobe?: { policy_name?: string } }).process_kprobe;
    return k?.policy_name !== undefined ? [k.policy_name] : [];
  }));
}
