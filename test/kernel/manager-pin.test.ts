// Pinning and adoption in the policy manager, on the real kernel, for the backends the e2e
// suite does not reach on this host: a file-guard-held policy (the manager placed on the guard,
// as on a kernel without fanotify permission events) and a generic syscall policy. A first
// manager pins them and lets go, as an agent exiting with --keep-sensors-on-exit does; the
// pins alone kill real readers; a second manager adopts them from the manifest holding exactly
// the same kernel links, and removing the policies leaves nothing pinned. The manifest map
// itself: chunked, replaced atomically, refused when written from other objects.
import { afterAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, prepareHost } from "../lib/host.ts";
import { linkIdsOf } from "../lib/bpf-links.ts";
import { policyFrom } from "../unit/engine-helpers.ts";
import { BootClock } from "../../src/events/time.ts";
import { BpfMap, MapType } from "../../src/bpf/map.ts";
import { listPins } from "../../src/bpf/pin.ts";
import { GenericBackend } from "../../src/sensors/generic-backend.ts";
import { GenericSensor, type GenericPinnedPolicy } from "../../src/sensors/generic.ts";
import { PolicyManager, type PersistOptions } from "../../src/sensors/manager.ts";
import { currentObjectHashes, emptyManifest, PinManifestError, readManifest, writeManifest, type PinManifest } from "../../src/sensors/pin-manifest.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";
import { hostHookFeatures } from "../../src/sensors/resolve.ts";

const CONTENT = "guarded\n";
const bpfDir = `/sys/fs/bpf/ward-test-mpin-${process.pid}`;
let dir = "";

afterAll(() => {
  // Whatever failed, leave nothing that would go on killing readers of the temp files.
  rmSync(bpfDir, { recursive: true, force: true });
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

function cat(path: string): { stdout: string; signal: NodeJS.Signals | null } {
  const r = spawnSync("cat", [path], { encoding: "utf8", timeout: 20_000 });
  return { stdout: r.stdout ?? "", signal: r.signal };
}

const guardPolicy = (file: string, allowed: string) => policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: pin-guard
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
        values: ["${file}"]
      matchBinaries:
      - operator: NotIn
        values: ["${allowed}"]
      matchActions:
      - action: Sigkill
`);

const genericPolicy = (file: string) => policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: pin-generic
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
        values: ["${file}"]
      matchActions:
      - action: Sigkill
`);

function setup(procs: ProcessSensor, previous: PinManifest | undefined) {
  // Without fanotify in the features the manager puts file rules on the file guard.
  const { fanotify: _f, ...features } = hostHookFeatures();
  const processMap = procs.processMap!;
  const reserve = Object.values(previous?.policies ?? {}).flatMap((p) => (p.generic !== undefined ? [p.generic as GenericPinnedPolicy] : []));
  const adoptFrom = previous?.shared.generic !== undefined ? join(bpfDir, previous.shared.generic) : undefined;
  const generic = new GenericBackend(() => new GenericSensor({ processMap, ...(adoptFrom !== undefined ? { adoptFrom, reserve } : {}) }));
  const persist: PersistOptions = { bpfDir, keep: true, previous, process: { pin: (d) => procs.pin(d), unpin: () => procs.unpin() } };
  const m = new PolicyManager({ features: { ...features, keepSensors: true }, encode: { nodeName: "n", clock: new BootClock() }, publish: () => {}, log: () => {}, processMap, generic, persist });
  return { m, generic };
}

describe("policy manager persistence (file guard, generic sensor)", () => {
  kernelTest(
    "pinned by one manager, enforcing with no holder, adopted by the next with the same links, removed without a trace",
    async () => {
      prepareHost();
      dir = mkdtempSync("/tmp/ward-test-mpin-");
      const guarded = join(dir, "guarded");
      const syscalled = join(dir, "syscalled");
      const allowed = join(dir, "allowed-cat");
      writeFileSync(guarded, CONTENT);
      writeFileSync(syscalled, CONTENT);
      copyFileSync("/bin/cat", allowed);
      spawnSync("chmod", ["755", allowed]);

      const p1 = new ProcessSensor({ nodeName: "n", onEvent: () => {}, log: () => {} });
      await p1.start();
      const one = setup(p1, undefined);
      const g = one.m.apply(guardPolicy(guarded, allowed), { mode: "enforce" });
      expect(g.hooks[0]?.mechanism).toContain("file guard");
      expect(g.hooks[0]?.afterExit).toContain("pinned under --bpf-dir");
      expect(g.pinned).toMatch(/^policies\/pin-guard\//);
      one.m.apply(genericPolicy(syscalled), { mode: "enforce" });
      expect(cat(guarded).signal).toBe("SIGKILL");
      expect(cat(syscalled).signal).toBe("SIGKILL");
      const held = linkIdsOf(process.pid);
      expect(held.size).toBeGreaterThanOrEqual(5); // process sensor 3, guard 3 or more, generic 1

      // Let go as an exiting agent does: only the pins hold the programs now.
      one.m.close({ keepPinned: true });
      one.generic.close({ keepPinned: true });
      await p1.stop({ keepPinned: true });
      expect(linkIdsOf(process.pid).size).toBe(0);
      expect(cat(guarded)).toEqual({ stdout: "", signal: "SIGKILL" });
      expect(cat(syscalled)).toEqual({ stdout: "", signal: "SIGKILL" });
      expect(spawnSync(allowed, [guarded], { encoding: "utf8" }).stdout).toBe(CONTENT);
      const manifest = readManifest(bpfDir)!;
      expect(Object.keys(manifest.policies).sort()).toEqual(["pin-generic", "pin-guard"]);
      expect(manifest.shared).toEqual({ process: "process", generic: "generic" });

      const p2 = new ProcessSensor({ nodeName: "n", onEvent: () => {}, log: () => {}, persist: { dir: join(bpfDir, "process"), adopt: true } });
      await p2.start();
      const two = setup(p2, manifest);
      try {
        expect(two.m.apply(guardPolicy(guarded, allowed), { mode: "enforce" }).adopted).toBe(true);
        expect(two.m.apply(genericPolicy(syscalled), { mode: "enforce" }).adopted).toBe(true);
        two.m.finishStart();
        // Taken over, not attached again: the very links the first manager made.
        expect(linkIdsOf(process.pid)).toEqual(held);
        expect(cat(guarded).signal).toBe("SIGKILL");
        two.m.remove("pin-guard");
        two.m.remove("pin-generic");
        expect(cat(guarded)).toEqual({ stdout: CONTENT, signal: null });
        expect(cat(syscalled)).toEqual({ stdout: CONTENT, signal: null });
        expect(existsSync(bpfDir) ? listPins(bpfDir) : []).toEqual([]);
      } finally {
        two.m.close();
        two.generic.close();
        await p2.stop();
      }
      expect(existsSync(bpfDir)).toBe(false);
    },
    120_000,
  );

  kernelTest("the manifest map: a document of many chunks reads back whole, replaced atomically; other objects or another format are refused naming the directory", () => {
    prepareHost();
    const d = `${bpfDir}-manifest`;
    try {
      spawnSync("mkdir", ["-p", d]);
      const hooks = Array.from({ length: 40 }, (_, i) => ({ path: `spec.kprobes[${i}]`, hook: "sys_openat", mechanism: "x".repeat(400), afterExit: "pinned" }));
      const m: PinManifest = { ...emptyManifest(), shared: { process: "process" }, policies: { big: { hash: "h", mode: "enforce", dir: "policies/big/1", hooks } } };
      writeManifest(d, m);
      const back = readManifest(d)!;
      expect(back.policies.big?.hooks).toEqual(hooks);
      expect(back.shared).toEqual({ process: "process" });
      writeManifest(d, { ...m, policies: {} });
      expect(readManifest(d)!.policies).toEqual({});
      expect(listPins(d)).toEqual(["manifest"]);
      // Pinned from other objects: refused, nothing adopted.
      const other = { ...m, objects: { ...currentObjectHashes(), generic: "0".repeat(64) } };
      const raw = new TextEncoder().encode(JSON.stringify(other));
      rmSync(join(d, "manifest"));
      const map = BpfMap.create({ name: "ward_manifest", type: MapType.HASH, keySize: 4, valueSize: 4096, maxEntries: 1024 });
      for (let i = 0; i * 4096 < raw.length; i++) {
        const v = new Uint8Array(4096);
        v.set(raw.subarray(i * 4096, (i + 1) * 4096));
        map.update(new Uint8Array(new Uint32Array([i]).buffer), v);
      }
      const len = new Uint8Array(4096);
      new DataView(len.buffer).setUint32(0, raw.length, true);
      map.update(new Uint8Array([255, 255, 255, 255]), len);
      map.pin(join(d, "manifest"));
      map.close();
      expect(() => readManifest(d)).toThrow(PinManifestError);
      expect(() => readManifest(d)).toThrow(`pinned by ward ${m.ward} from other BPF objects (generic.o differ`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
