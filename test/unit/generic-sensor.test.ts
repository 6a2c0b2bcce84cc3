// The generic sensor's userspace side without the kernel: the object's BTF agrees with the
// offsets syscallHook() reads from the engine's hook configs, and syscallHook() maps a
// compiled syscall kprobe's argument slots to the syscall registers.
import { describe, expect, test } from "bun:test";
import { loadCollectionSpec } from "../../src/bpf/collection.ts";
import { readObject } from "../../src/bpf/objects.ts";
import { structLayout } from "../../src/events/layout.ts";
import { compilePolicy, engineLayout } from "../../src/policy/engine.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { syscallHook } from "../../src/sensors/generic.ts";

const spec = loadCollectionSpec(readObject("generic"), "generic");

function compiled(body: string) {
  const v = validatePolicyText(`apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n${body}`, "t.yaml");
  const p = v.policies[0];
  if (p === undefined) throw new Error(v.diagnostics.map((d) => d.message).join("; "));
  return compilePolicy(p.policy);
}

describe("generic sensor layout", () => {
  test("generic.o's ward_hook_config is the engine's, and syscallHook's fixed offsets hold", () => {
    const btf = spec.btf;
    if (btf === undefined) throw new Error("generic.o has no BTF");
    const hook = structLayout(btf, "ward_hook_config");
    const arg = structLayout(btf, "ward_arg_cfg");
    expect(hook.size).toBe(engineLayout().get("sizeof.ward_hook_config") ?? -1);
    expect(hook.offset("args")).toBe(24);
    expect(hook.offset("flags")).toBe(7);
    expect(arg.size).toBe(8);
    expect(arg.offset("index")).toBe(3);
    expect(arg.offset("present")).toBe(5);
  });

  test("syscallHook: slots read their prototype index from pt_regs, return: true evaluates at the return", () => {
    const c = compiled(`  kprobes:
  - call: "sys_write"
    syscall: true
    return: true
    args:
    - index: 0
      type: "fd"
    - index: 2
      type: "size_t"
    - index: 1
      type: "char_iovec"
      sizeArgIndex: 3
    returnArg:
      index: 0
      type: "int"
`);
    const h = syscallHook(c, 0, 1, undefined, ["fd", "size_t", "char_iovec"]);
    expect(h.atReturn).toBe(true);
    expect(h.sources.slice(0, 3)).toEqual([
      { from: "syscall-arg", index: 0 },
      { from: "syscall-arg", index: 2 },
      { from: "syscall-arg", index: 1, iovec: true },
    ]);
    expect(h.sources[5]).toEqual({ from: "return" });
    expect(h.attach).toEqual({ kind: "syscall", nr: 1 });
  });

  test("syscallHook without return: true evaluates at the entry", () => {
    const c = compiled(`  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
`);
    const h = syscallHook(c, 0, 257);
    expect(h.atReturn).toBe(false);
    expect(h.sources[0]).toEqual({ from: "syscall-arg", index: 1 });
    expect(h.sources[1]).toBeUndefined();
  });
});
