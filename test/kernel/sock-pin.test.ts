// The socket sensor's pins (--keep-sensors-on-exit), against the real kernel with real
// processes: a sensor pins its maps, programs and cgroup links and lets go; the pins alone
// fail the denied binary's connect(); a second sensor loads from the pins holding exactly the
// same link ids, keeps a reserved policy's set ids and slots from anything applied meanwhile,
// refuses a saved state the maps contradict (taking nothing over), adopts the policy (its
// records decode to it), and removing it and the unused links leaves no pin. A directory
// missing a pinned map is refused naming the path.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { kernelTest, kernelUnavailable, prepareHost } from "../lib/host.ts";
import { cgroupLinks, systemLinkIds } from "../lib/bpf-links.ts";
import { buildSockHelpers } from "../lib/sock-helper.ts";
import { listPins, unpin } from "../../src/bpf/pin.ts";
import { compilePolicy } from "../../src/policy/engine.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";
import { hostHookFeatures, resolvePolicy, type ResolvedHook } from "../../src/sensors/resolve.ts";
import { SockSensor, SockSensorError, type SockHookPlan } from "../../src/sensors/sock.ts";

const pinDir = `/sys/fs/bpf/ward-test-sockpin-${process.pid}`;
let dir = "";
let denied = "";
let allowed = "";
let procs: ProcessSensor | undefined;
let server: Server | undefined;
let port = 0;

beforeAll(async () => {
  if (kernelUnavailable() !== undefined) return;
  prepareHost();
  dir = mkdtempSync("/tmp/ward-sockpin-");
  denied = join(dir, "denied-helper");
  allowed = join(dir, "allowed-helper");
  buildSockHelpers(denied, allowed);
  server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
  procs = new ProcessSensor({ nodeName: "test", onEvent: () => {}, log: () => {} });
  await procs.start();
});

afterAll(async () => {
  // Whatever failed, leave no pin that would go on denying connects.
  rmSync(pinDir, { recursive: true, force: true });
  rmSync(`${pinDir}-broken`, { recursive: true, force: true });
  await procs?.stop();
  server?.close();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function connectFrom(bin: string): string {
  const r = spawnSync(bin, ["connect", "tcp", "127.0.0.1", String(port)], { encoding: "utf8", timeout: 10_000 });
  return r.signal ?? r.stdout.trim();
}

function parsed(): TracingPolicy {
  const v = validatePolicyText(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: pin
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
        argError: -1
`, "pin.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return p.policy;
}

function plans(p: TracingPolicy): SockHookPlan[] {
  const r = resolvePolicy(p, { ...hostHookFeatures(), keepSensors: true });
  expect(r.errors).toEqual([]);
  return r.hooks.filter((h): h is ResolvedHook => h.ok).map((h) => ({ index: h.index, points: h.sock!.points, tcpConnect: h.sock!.tcpConnect }));
}

const ids = (r: Record<string, number>): number[] => Object.values(r).sort((a, b) => a - b);

describe("socket sensor pins", () => {
  kernelTest("pinned, enforcing with no holder, loaded from the pins with the same links, adopted, removed without a trace", async () => {
    const processMap = procs!.processMap!;
    const p = parsed();
    const s1 = new SockSensor({ processMap });
    s1.load();
    s1.apply("a", compilePolicy(p, { setIdBase: s1.nextSetIdBase() }), plans(p));
    s1.pin(pinDir);
    const saved = s1.exportPolicy("a");
    const links = ids(s1.linkIds());
    const tables = s1.tableSizes();
    expect(links.length).toBe(2);
    expect(connectFrom(denied)).toBe("EPERM");
    s1.close({ keepPinned: true });
    expect(cgroupLinks(process.pid)).toEqual([]);
    // Only the pins hold them now.
    expect(connectFrom(denied)).toBe("EPERM");
    expect(connectFrom(allowed)).toBe("ok");
    const sys = systemLinkIds();
    for (const id of links) expect(sys.has(id)).toBe(true);

    const s2 = new SockSensor({ processMap, adoptFrom: pinDir, reserve: [saved] });
    s2.load();
    try {
      expect(ids(s2.linkIds())).toEqual(links);
      expect(cgroupLinks(process.pid).map((l) => l.linkId).sort((a, b) => a - b)).toEqual(links);
      expect(s2.tableSizes()).toEqual(tables);
      // The reserved policy's set ids are not handed out again.
      expect(s2.nextSetIdBase()).toBeGreaterThanOrEqual(saved.setIds.end);
      expect(() => s2.apply("b", compilePolicy(p, { setIdBase: saved.setIds.base }), plans(p))).toThrow("overlap those of pinned policies");
      // A saved state the pinned maps contradict is refused, and nothing is taken over.
      expect(() => s2.adoptPolicy("x", { ...saved, no: saved.no + 100 })).toThrow(SockSensorError);
      expect(() => s2.adoptPolicy("x", { ...saved, no: saved.no + 100 })).toThrow(`is not active for policy number ${saved.no + 100} in the pinned maps`);
      expect(s2.policyIds()).toEqual([]);

      s2.adoptPolicy("a", saved);
      expect(connectFrom(denied)).toBe("EPERM");
      await Bun.sleep(200);
      const recs = s2.drain().filter((e) => e.policyId === "a");
      expect(recs.length).toBeGreaterThan(0);
      expect(recs.at(-1)).toMatchObject({ point: "connect4", denied: true, error: -1 });

      s2.remove("a");
      expect(connectFrom(denied)).toBe("ok");
      expect(s2.tableSizes()).toEqual({ sock_addr_lpm: 0, sock_int_set: 0, sock_bin_names: 0, sock_bin_set: 0, activeSlots: 0 });
      expect(s2.linkIds()).toEqual({});
      expect(listPins(pinDir).filter((x) => x.startsWith("link_"))).toEqual([]);
      s2.unpin();
      expect(existsSync(pinDir)).toBe(false);
    } finally {
      s2.close();
    }
    const after = systemLinkIds();
    for (const id of links) expect(after.has(id)).toBe(false);
  });

  kernelTest("a pin directory missing one of the maps is refused naming the path", () => {
    const broken = `${pinDir}-broken`;
    const s1 = new SockSensor({ processMap: procs!.processMap! });
    s1.load();
    s1.pin(broken);
    s1.close();
    unpin(join(broken, "map_sock_slots"));
    const s2 = new SockSensor({ processMap: procs!.processMap!, adoptFrom: broken });
    expect(() => s2.load()).toThrow(`adopt socket sensor: ${join(broken, "map_sock_slots")} is missing`);
    rmSync(broken, { recursive: true, force: true });
  });
});
