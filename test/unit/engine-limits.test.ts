// What the engine refuses, with the field path of each problem: Tetragon's limits, value
// syntax, operator/type mismatches and features it does not implement. The validator
// catches most of these first; the engine enforces them again because the tables are
// fixed-size and must never be written past their bounds.
import { describe, expect, test } from "bun:test";
import type { ActionSelector, ArgSelector } from "../../src/policy/types.ts";
import { compileMutated, compileProblems, emptySelector, firstSelector, kprobePolicy, policyFrom } from "./engine-helpers.ts";

const ONE_INT = kprobePolicy(`    - index: 0\n      type: "int"`, `    - matchArgs:\n      - index: 0\n        operator: "Equal"\n        values: ["1"]`);
const ONE_STR = kprobePolicy(`    - index: 0\n      type: "string"`, `    - matchArgs:\n      - index: 0\n        operator: "Equal"\n        values: ["a"]`);
const post: ActionSelector = { action: "Post", argRegs: [], kernelStackTrace: false, userStackTrace: false, imaHash: false };
const argSel = (operator: ArgSelector["operator"], values: string[]): ArgSelector => ({ index: 0, args: [], operator, values });

function problemsAfter(yaml: string, change: (p: ReturnType<typeof policyFrom>) => void) {
  const p = policyFrom(yaml);
  change(p);
  return compileProblems(p);
}

describe("limits", () => {
  test("5 selectors compile, 6 do not", () => {
    const ok = compileMutated(ONE_INT, (p) => { const k = p.spec.kprobes[0]; if (k) k.selectors = Array.from({ length: 5 }, emptySelector); });
    expect(ok.hooks.length).toBe(1);
    const bad = problemsAfter(ONE_INT, (p) => { const k = p.spec.kprobes[0]; if (k) k.selectors = Array.from({ length: 6 }, emptySelector); });
    expect(bad).toEqual([{ path: "spec.kprobes[0].selectors", message: "at most 5 selectors per hook, found 6" }]);
  });

  test("3 actions compile, 4 do not", () => {
    compileMutated(ONE_INT, (p) => { firstSelector(p).matchActions = [post, post, post]; });
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchActions = [post, post, post, post]; });
    expect(bad[0]?.path).toBe("spec.kprobes[0].selectors[0].matchActions");
  });

  test("4 inline integer values compile, 5 do not (InMap takes any number)", () => {
    compileMutated(ONE_INT, (p) => { firstSelector(p).matchArgs = [argSel("Equal", ["1", "2", "3", "4"])]; });
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchArgs = [argSel("Equal", ["1", "2", "3", "4", "5"])]; });
    expect(bad[0]?.path).toBe("spec.kprobes[0].selectors[0].matchArgs[0].values");
    expect(bad[0]?.message).toContain("InMap");
    const many = compileMutated(ONE_INT, (p) => { firstSelector(p).matchArgs = [argSel("InMap", Array.from({ length: 1000 }, (_, i) => String(i)))]; });
    expect(many.tables.intSet.count).toBe(1000);
  });

  test("5 argument matchers per selector compile, 6 do not", () => {
    compileMutated(ONE_INT, (p) => { firstSelector(p).matchArgs = Array.from({ length: 5 }, () => argSel("Equal", ["1"])); });
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchArgs = Array.from({ length: 6 }, () => argSel("Equal", ["1"])); });
    expect(bad.some((x) => x.message.includes("at most 5 entries"))).toBe(true);
  });

  test("string lengths: Equal 4096, Prefix 252 (LPM key data 256 minus the set id), Postfix 127", () => {
    compileMutated(ONE_STR, (p) => { firstSelector(p).matchArgs = [argSel("Equal", ["e".repeat(4096)]), argSel("Prefix", ["p".repeat(252)]), argSel("Postfix", ["s".repeat(127)])]; });
    for (const [op, n] of [["Equal", 4097], ["Prefix", 253], ["Postfix", 128]] as const) {
      const bad = problemsAfter(ONE_STR, (p) => { firstSelector(p).matchArgs = [argSel(op, ["x".repeat(n)])]; });
      expect(bad[0]?.path).toBe("spec.kprobes[0].selectors[0].matchArgs[0].values[0]");
    }
    const pre = problemsAfter(ONE_STR, (p) => { firstSelector(p).matchArgs = [argSel("Prefix", ["x".repeat(253)])]; });
    expect(pre[0]?.message).toContain("at most 252");
  });

  test("matchPIDs take at most 4 values; matchBinaries one item per selector", () => {
    const pids = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchPIDs = [{ operator: "In", values: [1, 2, 3, 4, 5], isNamespacePID: false, followForks: false }]; });
    expect(pids[0]?.path).toBe("spec.kprobes[0].selectors[0].matchPIDs[0].values");
    const bins = problemsAfter(ONE_INT, (p) => {
      const b = { operator: "In" as const, values: ["/bin/a"], followChildren: false };
      firstSelector(p).matchBinaries = [b, b];
    });
    expect(bins[0]?.path).toBe("spec.kprobes[0].selectors[0].matchBinaries");
  });

  test("at most 64 followChildren selectors per policy", () => {
    const bad = problemsAfter(ONE_INT, (p) => {
      const base = p.spec.kprobes[0];
      if (base === undefined) return;
      p.spec.kprobes = Array.from({ length: 13 }, () => ({
        ...base,
        selectors: Array.from({ length: 5 }, () => ({ ...emptySelector(), matchBinaries: [{ operator: "In" as const, values: ["/bin/sh"], followChildren: true }] })),
      }));
    });
    expect(bad.length).toBe(1);
    expect(bad[0]?.message).toContain("at most 64 followChildren");
  });
});

describe("values, types and unsupported features", () => {
  test("malformed values name the offending value", () => {
    for (const [type, op, v] of [["int", "Equal", "12x"], ["int", "Equal", "4294967296"], ["sock", "DPort", "70000"], ["sock", "DAddr", "10.0.0.0/33"], ["sock", "Protocol", "IPPROTO_NOPE"], ["uint64", "InMap", "5:x"]] as const) {
      const bad = problemsAfter(kprobePolicy(`    - index: 0\n      type: "${type}"`, `    - matchArgs:\n      - index: 0\n        operator: "Equal"\n        values: ["1"]`.replace('"Equal"', type === "sock" ? '"Family"' : '"Equal"')), (p) => { firstSelector(p).matchArgs = [argSel(op, [v])]; });
      expect({ v, path: bad[0]?.path }).toEqual({ v, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]" });
    }
  });

  test("an operator that does not fit the argument type", () => {
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchArgs = [argSel("Prefix", ["/x"])]; });
    expect(bad[0]).toEqual({ path: "spec.kprobes[0].selectors[0].matchArgs[0].operator", message: "Prefix does not apply to an argument of type signed integer" });
  });

  test("matchArgs index that names no argument", () => {
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchArgs = [{ index: 3, args: [], operator: "Equal", values: ["1"] }]; });
    expect(bad[0]?.path).toBe("spec.kprobes[0].selectors[0].matchArgs[0].index");
  });

  test("CelExpr and matchWorkloads are refused by name", () => {
    const cel = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchArgs = [argSel("CelExpr", ["arg0 > 1"])]; });
    expect(cel[0]?.message).toContain("CelExpr");
    const wl = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchWorkloads = { hostSelector: { matchLabels: {}, matchExpressions: [] } }; });
    expect(wl[0]?.path).toBe("spec.kprobes[0].selectors[0].matchWorkloads");
  });

  test("unknown capability names", () => {
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchCapabilities = [{ type: "Effective", operator: "In", isNamespaceCapability: false, values: ["CAP_FLY"] }]; });
    expect(bad[0]).toEqual({ path: "spec.kprobes[0].selectors[0].matchCapabilities[0].values[0]", message: "unknown capability CAP_FLY" });
  });

  test("InMap list: values that name no resolvable syscall list", () => {
    const bad = problemsAfter(ONE_INT, (p) => { firstSelector(p).matchArgs = [argSel("InMap", ["list:nope"])]; });
    expect(bad[0]?.message).toContain("list nope");
  });
});

describe("engine errors", () => {
  test("evaluating a hook the tables do not have is an EngineError and the engine keeps working", async () => {
    const { evaluate, EngineError } = await import("../../src/policy/engine.ts");
    const c = compileMutated(ONE_INT, () => {});
    expect(() => evaluate(c, 5, { pid: 1, binary: "/bin/sh" })).toThrow(EngineError);
    expect(evaluate(c, 0, { pid: 1, binary: "/bin/sh", args: [{ int: 1 }] }).matched).toBe(true);
  });
});
