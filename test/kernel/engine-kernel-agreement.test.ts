// Differential test: the kernel evaluator (bpf/generic.c, fed through GenericSensor) and the
// engine's userspace evaluate() read one compilation and must reach the same decision
// (issue 4). Real processes (two copies of a tiny openat helper, so matchBinaries can tell
// them apart) open a deterministic table of paths with a table of flags; the selector the
// kernel posted for each open (or none) is compared with evaluate() on the same event.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { compilePolicy, evaluate, hostSyscallNumber, type CompiledPolicy, type EngineEvent } from "../../src/policy/engine.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { GenericSensor, syscallHook, type GenericEvent } from "../../src/sensors/generic.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";

const NR_OPENAT = hostSyscallNumber("sys_openat") ?? 257;
const O_WRONLY = 0x1;
const O_RDWR = 0x2;
const O_CREAT = 0x40;
const O_TRUNC = 0x200;

// The raw syscall, so libc adds no flags of its own (the kernel must see exactly ours).
const HELPER_C = `#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  long fd = syscall(SYS_openat, AT_FDCWD, argv[1], (int)strtol(argv[2], 0, 0), 0600);
  printf("%ld\\n", fd < 0 ? -(long)errno : fd);
  return 0;
}
`;

let dir = "";
let binA = "";
let binB = "";
let sensor: GenericSensor | undefined;
let procs: ProcessSensor | undefined;

function s(): GenericSensor {
  if (sensor === undefined) throw new Error("generic sensor not loaded");
  return sensor;
}

function compile(yaml: string): CompiledPolicy {
  const v = validatePolicyText(yaml, "agreement.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return compilePolicy(p.policy, { setIdBase: s().nextSetIdBase() });
}

interface Case { path: string; flags: number; binary: string; ret?: number }
interface Outcome { kernel: string; engine: string }

/** Runs the cases in real processes; returns the kernel's records of each case's open (by case). */
async function runCases(policyId: string, cases: Case[]): Promise<GenericEvent[][]> {
  const byPid = new Map<number, number>();
  const out: GenericEvent[][] = cases.map(() => []);
  const collect = (): void => {
    for (const e of s().drain()) {
      if (e.policyId !== policyId) continue;
      const i = byPid.get(e.tgid);
      if (i !== undefined) out[i]?.push(e);
    }
  };
  for (const [i, c] of cases.entries()) {
    const r = spawnSync(c.binary, [c.path, `0x${c.flags.toString(16)}`], { encoding: "utf8", timeout: 10_000 });
    if (r.status !== 0 || r.pid === undefined) throw new Error(`helper failed for ${JSON.stringify(c)}: ${r.status} ${r.stderr}`);
    byPid.set(r.pid, i);
    // what openat returned (fd or -errno), for the engine's return-phase event
    c.ret = Number.parseInt(r.stdout.trim(), 10);
    // drain as we go so other processes' records cannot fill the ring buffer
    if (i % 8 === 7) collect();
  }
  await Bun.sleep(300);
  collect();
  // only the open of the case's path counts (the loader's own opens may match NotPrefix selectors)
  return out.map((recs, i) => recs.filter((e) => new TextDecoder().decode(e.args.find((a) => a.slot === 0)?.bytes) === cases[i]?.path));
}

function table(cases: readonly Case[], outcomes: readonly Outcome[]): string {
  return cases.map((c, i) => {
    const o = outcomes[i];
    const mark = o !== undefined && o.kernel !== o.engine ? "!!" : "  ";
    return `${mark} ${c.binary === binA ? "A" : "B"} flags=0x${c.flags.toString(16).padStart(3, "0")} ${c.path.padEnd(48)} kernel=${o?.kernel} engine=${o?.engine}`;
  }).join("\n");
}

describe("engine/kernel agreement (one compilation, two evaluators)", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-agree-");
    mkdirSync(join(dir, "a"));
    mkdirSync(join(dir, "etc"));
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "helper.c"), HELPER_C);
    binA = join(dir, "bin/open-a");
    binB = join(dir, "bin/open-b");
    const cc = spawnSync("cc", ["-O1", "-o", binA, join(dir, "helper.c")], { encoding: "utf8" });
    if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`);
    copyFileSync(binA, binB);
    spawnSync("chmod", ["755", binB]);
    procs = new ProcessSensor({ nodeName: "test", onEvent: () => {}, log: () => {} });
    await procs.start();
    sensor = new GenericSensor({ processMap: procs.processMap });
    sensor.load();
    // Verifying the generic sensor takes 10-25 s on this machine kind.
  }, 180_000);

  afterAll(async () => {
    sensor?.close();
    await procs?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("sys_enter openat: Equal/Prefix/Postfix/NotPrefix on the path, Mask/Equal on flags, matchBinaries In/NotIn", async () => {
    const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: agreement
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    - index: 2
      type: "int"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "${dir}/a/secret"
      matchBinaries:
      - operator: "In"
        values:
        - "${binA}"
      matchActions:
      - action: Post
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "${dir}/etc/"
      - index: 2
        operator: "Mask"
        values:
        - "${O_WRONLY | O_RDWR}"
      matchActions:
      - action: Post
    - matchArgs:
      - index: 1
        operator: "Postfix"
        values:
        - ".conf"
      matchBinaries:
      - operator: "NotIn"
        values:
        - "${binA}"
      matchActions:
      - action: Post
    - matchArgs:
      - index: 1
        operator: "NotPrefix"
        values:
        - "${dir}/"
      - index: 2
        operator: "Mask"
        values:
        - "${O_TRUNC}"
      matchActions:
      - action: Post
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "${dir}/a/"
      - index: 2
        operator: "Equal"
        values:
        - "0"
      matchActions:
      - action: Post
`;
    const c = compile(yaml);
    const paths = [
      `${dir}/a/secret`, `${dir}/a/secret.conf`, `${dir}/a/other`, `${dir}/etc/app.conf`, `${dir}/etc/data`,
      `${dir}/other.conf`, "/tmp/ward-agree-outside/x.conf", "/tmp/ward-agree-outside/y",
    ];
    const flagsList = [0, O_WRONLY | O_CREAT, O_RDWR | O_CREAT | O_TRUNC, O_TRUNC];
    const cases: Case[] = [];
    for (const path of paths) for (const flags of flagsList) for (const binary of [binA, binB]) cases.push({ path, flags, binary });
    s().apply("agreement", c, [syscallHook(c, 0, NR_OPENAT)]);
    let records: GenericEvent[][];
    try {
      records = await runCases("agreement", cases);
    } finally {
      s().remove("agreement");
    }
    const outcomes: Outcome[] = cases.map((cs, i) => {
      const recs = records[i] ?? [];
      const kernel = recs.length === 0 ? "none" : recs.map((e) => `s${e.selector}`).join(",");
      const ev: EngineEvent = { pid: 1, binary: cs.binary, args: [{ string: cs.path }, { int: cs.flags }] };
      const d = evaluate(c, 0, ev);
      const engine = d.matched && d.post ? `s${d.selector}` : "none";
      return { kernel, engine };
    });
    const disagree = outcomes.filter((o) => o.kernel !== o.engine).length;
    if (disagree > 0) process.stderr.write(`engine/kernel disagreement (${disagree}/${cases.length}):\n${table(cases, outcomes)}\n`);
    expect(disagree).toBe(0);
    // the table must exercise every selector and the no-match case, or it proves little
    const seen = new Set(outcomes.map((o) => o.kernel));
    for (const want of ["s0", "s1", "s2", "s3", "s4", "none"]) expect(seen).toContain(want);
  }, 60_000);

  kernelTest("sys_exit openat (return: true): matchReturnArgs decide with the first arg-matching selector, no fall-through", async () => {
    // Present files open (ret = fd); missing ones give -ENOENT; O_DIRECTORY on a file -ENOTDIR.
    writeFileSync(join(dir, "a/present"), "x");
    writeFileSync(join(dir, "b.conf"), "x");
    const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: agreement-ret
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    return: true
    args:
    - index: 1
      type: "string"
    - index: 2
      type: "int"
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "${dir}/a/"
      matchReturnArgs:
      - index: 0
        operator: "Equal"
        values:
        - "-2"
      matchActions:
      - action: Post
    - matchArgs:
      - index: 1
        operator: "Postfix"
        values:
        - ".conf"
      matchReturnArgs:
      - index: 0
        operator: "NotEqual"
        values:
        - "-2"
      matchActions:
      - action: Post
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "${dir}/"
      matchActions:
      - action: Post
`;
    const c = compile(yaml);
    const paths = [`${dir}/a/present`, `${dir}/a/missing`, `${dir}/a`, `${dir}/b.conf`, `${dir}/nope.conf`, `${dir}/etc`, "/tmp/ward-agree-outside/z.conf"];
    const O_DIRECTORY = 0x10000;
    const cases: Case[] = [];
    for (const path of paths) for (const flags of [0, O_DIRECTORY]) cases.push({ path, flags, binary: binA });
    const hook = syscallHook(c, 0, NR_OPENAT);
    expect(hook.atReturn).toBe(true);
    s().apply("agreement-ret", c, [hook]);
    let records: GenericEvent[][];
    try {
      records = await runCases("agreement-ret", cases);
    } finally {
      s().remove("agreement-ret");
    }
    const outcomes: Outcome[] = cases.map((cs, i) => {
      const recs = records[i] ?? [];
      const kernel = recs.length === 0 ? "none" : recs.map((e) => `s${e.selector}:${e.ret}`).join(",");
      const ev: EngineEvent = { pid: 1, binary: cs.binary, args: [{ string: cs.path }, { int: cs.flags }], returnValue: { int: cs.ret ?? 0 } };
      const d = evaluate(c, 0, ev);
      // the first selector whose matchArgs hold is the one; if its matchReturnArgs fail the
      // return posts nothing (no fall-through to later selectors: bpf/generic.c, the engine)
      const engine = d.matched && d.post && d.returnMatched ? `s${d.selector}:${cs.ret}` : "none";
      return { kernel, engine };
    });
    const disagree = outcomes.filter((o) => o.kernel !== o.engine).length;
    if (disagree > 0) process.stderr.write(`engine/kernel disagreement at the return (${disagree}/${cases.length}):\n${table(cases, outcomes)}\n`);
    expect(disagree).toBe(0);
    const seen = new Set(outcomes.map((o) => o.kernel.replace(/:.*/, "")));
    for (const want of ["s0", "s1", "s2", "none"]) expect(seen).toContain(want);
  }, 60_000);
});
