// spec.uprobes on the real kernel: Tetragon YAML resolved for this host (resolve.ts), compiled
// by the engine and run by the generic sensor's gen_uprobe. The targets are built here with
// gcc from uprobe-helper.c: a shared library function called by a PIE, a function of the PIE
// itself, the same in a non-PIE, a stripped copy, and libc's setenv. Real processes call
// them; the records carry the arguments; Sigkill kills the caller before the function body
// prints; bad targets are refused naming the policy position.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";
import { UprobeElf } from "../../src/bpf/uprobe-symbols.ts";
import { GenericBackend } from "../../src/sensors/generic-backend.ts";
import { GenericSensor } from "../../src/sensors/generic.ts";
import type { GenericMatch } from "../../src/sensors/manager.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";
import { hostHookFeatures, resolvePolicy, type HookFeatures, type ResolvedHook } from "../../src/sensors/resolve.ts";

const HELPER = join(import.meta.dir, "uprobe-helper.c");
let dir = "";
let lib = "", caller = "", callerB = "", noPie = "", stripped = "";
let libc = "";
let procs: ProcessSensor | undefined;
let backend: GenericBackend | undefined;
let features: HookFeatures | undefined;
const matches: GenericMatch[] = [];

function gcc(args: string[]): void {
  const r = spawnSync("gcc", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc ${args.join(" ")}: ${r.stderr}`);
}

function run(bin: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(bin, args, { encoding: "utf8", timeout: 15_000 });
}

function policy(name: string, uprobe: string): TracingPolicy {
  const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
spec:
  uprobes:
${uprobe}`;
  const v = validatePolicyText(yaml, `${name}.yaml`);
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => `${d.path}: ${d.message}`).join("; ")}`);
  return p.policy;
}

/** Resolves for this host and applies; returns the resolved hooks (throws the resolution errors). */
function apply(id: string, p: TracingPolicy): ResolvedHook[] {
  const r = resolvePolicy(p, features!);
  if (r.errors.length > 0) throw new Error(r.errors.join("; "));
  const hooks = r.hooks.filter((h): h is ResolvedHook => h.ok);
  backend!.apply(id, p, hooks, r.mode);
  return hooks;
}

async function matchesOf(id: string, n = 1): Promise<GenericMatch[]> {
  for (let i = 0; i < 40; i++) {
    const got = matches.filter((m) => m.policyId === id);
    if (got.length >= n) {
      await Bun.sleep(150); // anything more that would arrive
      return matches.filter((m) => m.policyId === id);
    }
    await Bun.sleep(50);
  }
  return matches.filter((m) => m.policyId === id);
}

const LIB_TARGET = (extra = "") => `  - path: "${lib}"
    symbols:
    - "ward_probe_target"
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "string"
    - index: 2
      type: "char_buf"
      sizeArgIndex: 4
    - index: 3
      type: "uint64"
${extra}`;

describe("uprobes (generic sensor, gen_uprobe)", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-uprobe-");
    ensureSystemPackages([["/usr/bin/cc", "gcc"], ["/usr/bin/strip", "binutils"]]);
    lib = join(dir, "libwardprobe.so");
    caller = join(dir, "caller");
    callerB = join(dir, "caller-b");
    noPie = join(dir, "caller-nopie");
    stripped = join(dir, "caller-stripped");
    gcc(["-O2", "-shared", "-fPIC", "-DWARD_LIB", "-o", lib, HELPER]);
    gcc(["-O2", "-fPIE", "-pie", "-o", caller, HELPER, `-L${dir}`, "-lwardprobe", `-Wl,-rpath,${dir}`]);
    gcc(["-O2", "-fno-pie", "-no-pie", "-o", noPie, HELPER, `-L${dir}`, "-lwardprobe", `-Wl,-rpath,${dir}`]);
    copyFileSync(caller, callerB);
    copyFileSync(caller, stripped);
    spawnSync("chmod", ["755", callerB, stripped]);
    const st = spawnSync("strip", ["--strip-all", stripped], { encoding: "utf8" });
    if (st.status !== 0) throw new Error(`strip: ${st.stderr}`);
    const ldd = spawnSync("ldd", [caller], { encoding: "utf8" }).stdout;
    libc = /libc\.so\.6 => (\S+)/.exec(ldd)?.[1] ?? "";
    features = hostHookFeatures();
    procs = new ProcessSensor({ nodeName: "test", onEvent: () => {}, log: () => {} });
    await procs.start();
    const processMap = procs.processMap;
    backend = new GenericBackend(() => new GenericSensor({ processMap }));
    backend.onMatch((m) => matches.push(m));
  });

  afterAll(async () => {
    backend?.close();
    await procs?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("the host has the uprobe PMU (what every test below relies on)", () => {
    expect(features?.uprobes).toBeDefined();
    expect(readelfType(caller)).toBe("shared object"); // a PIE
    expect(readelfType(noPie)).toBe("executable");
    expect(new UprobeElf(stripped).hasSymtab).toBe(false);
    expect(libc).not.toBe("");
  });

  kernelTest("a shared library function: each call is reported with its int, string, char_buf and uint64 arguments; matchArgs picks the call", async () => {
    const hooks = apply("lib-post", policy("lib-post", LIB_TARGET(`    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "hello"`)));
    try {
      expect(hooks[0]?.event).toBe("process_uprobe");
      expect(hooks[0]?.mechanism).toContain("uprobe PMU");
      const r1 = run(caller, ["lib", "7", "hello"]);
      const r2 = run(caller, ["lib", "7", "other"]);
      expect(r1.stdout).toBe("entered\nreturned 13\n");
      expect(r2.stdout).toBe("entered\nreturned 13\n");
      const got = await matchesOf("lib-post");
      expect(got.length).toBe(1);
      const m = got[0]!;
      expect(m.tgid).toBe(r1.pid!);
      expect(m.uprobe?.path).toBe(lib);
      expect(m.uprobe?.symbol).toBe("ward_probe_target");
      expect(m.args[0]).toEqual({ kind: "int", value: 7 });
      expect(m.args[1]).toEqual({ kind: "string", value: "hello" });
      expect(m.args[2]?.kind).toBe("bytes");
      expect(Buffer.from((m.args[2] as { value: Uint8Array }).value).toString()).toBe("hello");
      expect(m.args[3]).toEqual({ kind: "size", value: 5n });
      expect(m.action).toBe("Post");
    } finally {
      backend!.remove("lib-post");
    }
  }, 180_000); // the first policy loads and verifies generic.o (24 s on a quiet machine)

  kernelTest("matchBinaries In [caller]: the same library function called from a copy of the caller is not reported", async () => {
    apply("lib-bin", policy("lib-bin", LIB_TARGET(`    selectors:
    - matchBinaries:
      - operator: "In"
        values:
        - "${caller}"`)));
    try {
      const a = run(caller, ["lib", "1", "a"]);
      const b = run(callerB, ["lib", "2", "b"]);
      expect(a.status).toBe(0);
      expect(b.status).toBe(0);
      await Bun.sleep(300);
      const got = await matchesOf("lib-bin");
      expect(got.map((m) => m.tgid)).toEqual([a.pid!]);
    } finally {
      backend!.remove("lib-bin");
    }
  });

  kernelTest("Sigkill: the caller dies at the probe, before the function body runs or returns; another argument lives", async () => {
    apply("lib-kill", policy("lib-kill", LIB_TARGET(`    selectors:
    - matchArgs:
      - index: 0
        operator: "Equal"
        values:
        - "13"
      matchActions:
      - action: Sigkill`)));
    try {
      const k = run(caller, ["lib", "13", "x"]);
      expect(k.signal).toBe("SIGKILL");
      expect(k.stdout).toBe(""); // neither "entered" (the body) nor "returned" (its caller)
      const ok = run(caller, ["lib", "12", "x"]);
      expect(ok.stdout).toBe("entered\nreturned 14\n");
      const got = await matchesOf("lib-kill");
      expect(got.length).toBe(1);
      expect(got[0]?.action).toBe("Sigkill");
      expect(got[0]?.tgid).toBe(k.pid!);
    } finally {
      backend!.remove("lib-kill");
    }
    // removed: the same call runs again
    expect(run(caller, ["lib", "13", "x"]).stdout).toBe("entered\nreturned 15\n");
  });

  kernelTest("a function of the executable itself, in a PIE and in a non-PIE; long and string arguments", async () => {
    for (const [id, bin] of [["pie-local", caller], ["nopie-local", noPie]] as const) {
      apply(id, policy(id, `  - path: "${bin}"
    symbols:
    - "ward_local_target"
    args:
    - index: 0
      type: "int64"
    - index: 1
      type: "string"`));
      try {
        const r = run(bin, ["local", "-21", "tag-x"]);
        expect(r.stdout).toBe("returned -41\n");
        const got = await matchesOf(id);
        expect(got.length).toBe(1);
        expect(got[0]?.args).toEqual([{ kind: "long", value: -21n }, { kind: "string", value: "tag-x" }]);
      } finally {
        backend!.remove(id);
      }
    }
  });

  kernelTest("libc's setenv, called by the test program (matchBinaries keeps the rest of the machine out)", async () => {
    apply("libc-setenv", policy("libc-setenv", `  - path: "${libc}"
    symbols:
    - "setenv"
    args:
    - index: 0
      type: "string"
    - index: 1
      type: "string"
    selectors:
    - matchBinaries:
      - operator: "In"
        values:
        - "${noPie}"`));
    try {
      const r = run(noPie, ["setenv", "WARD_UPROBE_VAR", "value-42"]);
      expect(r.stdout).toBe("returned 0\n");
      const got = await matchesOf("libc-setenv");
      expect(got.length).toBe(1);
      expect(got[0]?.uprobe?.path).toBe(libc);
      expect(got[0]?.args).toEqual([{ kind: "string", value: "WARD_UPROBE_VAR" }, { kind: "string", value: "value-42" }]);
    } finally {
      backend!.remove("libc-setenv");
    }
  });

  kernelTest("a stripped binary: a symbol is refused saying so; the same function by file offset works and reports the offset", async () => {
    const bad = resolvePolicy(policy("strip-sym", `  - path: "${stripped}"
    symbols:
    - "ward_local_target"`), features!);
    expect(bad.errors.length).toBe(1);
    expect(bad.errors[0]).toContain("spec.uprobes[0]");
    expect(bad.errors[0]).toContain("symbols[0]");
    expect(bad.errors[0]).toContain("stripped");
    // strip keeps the loadable segments: the unstripped file's offset is the stripped one's
    const off = Number(new UprobeElf(caller).symbolOffset("ward_local_target"));
    apply("strip-off", policy("strip-off", `  - path: "${stripped}"
    offsets:
    - ${off}
    args:
    - index: 0
      type: "int"`));
    try {
      expect(run(stripped, ["local", "5", "t"]).stdout).toBe("returned 11\n");
      const got = await matchesOf("strip-off");
      expect(got.length).toBe(1);
      expect(got[0]?.uprobe).toEqual({ path: stripped, symbol: "", offset: BigInt(off) });
      expect(got[0]?.args).toEqual([{ kind: "int", value: 5 }]);
    } finally {
      backend!.remove("strip-off");
    }
  });

  kernelTest("refusals name the policy position and why: missing symbol, missing file, IFUNC, imported symbol, Override, kernel-object argument", () => {
    const errs = (body: string): string[] => resolvePolicy(policy("bad", body), features!).errors;
    const missingSym = errs(`  - path: "${lib}"
    symbols:
    - "ward_probe_target"
    - "no_such_function_here"`);
    expect(missingSym[0]).toMatch(/^spec\.uprobes\[0\] .*symbols\[1\]: resolve no_such_function_here in .*libwardprobe\.so: no such function symbol/);
    expect(errs(`  - path: "${dir}/absent"
    symbols:
    - "main"`)[0]).toMatch(/spec\.uprobes\[0\] .*: path: read .*absent: no such file/);
    expect(errs(`  - path: "${libc}"
    symbols:
    - "strlen"`)[0]).toContain("IFUNC");
    expect(errs(`  - path: "${caller}"
    symbols:
    - "ward_probe_target"`)[0]).toContain("imported from a shared library");
    expect(errs(`  - path: "${lib}"
    symbols:
    - "ward_probe_target"
    selectors:
    - matchActions:
      - action: Override
        argError: -1`)[0]).toMatch(/spec\.uprobes\[0\] .*Override on a uprobe cannot be honored.*substitute: Sigkill/);
    expect(errs(`  - path: "${lib}"
    symbols:
    - "ward_probe_target"
    args:
    - index: 0
      type: "file"`)[0]).toContain("args[0]: type file is a kernel object");
  });
});

function readelfType(path: string): string {
  return new UprobeElf(path).type;
}
