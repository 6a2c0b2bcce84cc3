// Return hooks on the open family (security_file_open's substitute: the file read from the
// returned fd) run on gen_open_exit at the per-syscall tracepoints syscalls/sys_exit_openat
// & co. where the sensor chose them, instead of tp_btf/sys_exit at the exit of every syscall;
// with tp_btf chosen they run there, with the reason kept. Real processes open a file and are
// reported (or killed) from the returned fd either way, and a return hook on another syscall
// (which still needs tp_btf/sys_exit) does not make the open hook run twice.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { compilePolicy, hostSyscallNumber, type CompiledPolicy } from "../../src/policy/engine.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { GenericSensor, syscallHook, type GenericEvent, type ResolvedHook } from "../../src/sensors/generic.ts";
import { chooseOpenExit } from "../../src/sensors/open-exit.ts";

const SECRET = "open exit\n";
const NR_OPENAT = hostSyscallNumber("sys_openat") ?? 257;
const NR_CLOSE = hostSyscallNumber("sys_close") ?? 3;
let dir = "";
let secret = "";

function compile(sensor: GenericSensor, yaml: string): CompiledPolicy {
  const v = validatePolicyText(yaml, "test.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return compilePolicy(p.policy, { setIdBase: sensor.nextSetIdBase() });
}

const fileOpen = (name: string, action: string): string => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
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
        operator: Postfix
        values: ["/open-exit/secret"]
      matchActions:
      - action: ${action}
`;

/** The hook as resolve.ts builds it: openat's exit, the file from the returned fd. */
function opened(c: CompiledPolicy): ResolvedHook {
  const h = syscallHook(c, 0, NR_OPENAT, true);
  return { ...h, sources: [{ from: "return" as const, fd: true }, ...h.sources.slice(1)], openedFd: true };
}

/** A return hook on close that never matches: it only makes tp_btf/sys_exit attach. */
function closeNever(sensor: GenericSensor): { c: CompiledPolicy; h: ResolvedHook } {
  const c = compile(sensor, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: close-never
spec:
  kprobes:
  - call: sys_close
    syscall: true
    args:
    - index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["987654"]
`);
  return { c, h: syscallHook(c, 0, NR_CLOSE, true) };
}

async function recordsOf(sensor: GenericSensor, policyId: string): Promise<GenericEvent[]> {
  await Bun.sleep(300);
  return sensor.drain().filter((e) => e.policyId === policyId);
}

/** Runs cat on the secret, returns the records of its tgid for the policy. */
async function catSecret(sensor: GenericSensor, policyId: string): Promise<{ r: ReturnType<typeof spawnSync>; mine: GenericEvent[] }> {
  const r = spawnSync("cat", [secret], { encoding: "utf8", timeout: 15_000 });
  const mine = (await recordsOf(sensor, policyId)).filter((e) => e.tgid === r.pid);
  return { r, mine };
}

describe("generic return hooks on the open family: per-syscall exit tracepoints or tp_btf/sys_exit", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-open-exit-");
    mkdirSync(join(dir, "open-exit"));
    secret = join(dir, "open-exit/secret");
    writeFileSync(secret, SECRET);
  });

  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("tracepoints chosen: gen_open_exit on syscalls/sys_exit_openat reports and kills from the returned fd; tp_btf/sys_exit stays off", async () => {
    // The 32-bit check is skipped so this runs on any host with tracefs: the placement itself is under test.
    const choice = chooseOpenExit({ allowCompatGap: true });
    expect(choice.kind).toBe("tracepoint");
    const sensor = new GenericSensor({ openExit: choice });
    sensor.load();
    try {
      expect(sensor.openExitPlacement()).toEqual(choice);
      const c = compile(sensor, fileOpen("oe-post", "Post"));
      sensor.apply("oe-post", c, [opened(c)]);
      expect(sensor.attachments()).toEqual(["tracepoint/syscalls/sys_exit_openat (gen_open_exit)"]);
      const { r, mine } = await catSecret(sensor, "oe-post");
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(SECRET);
      expect(mine.length).toBe(1);
      expect(mine[0]?.atReturn).toBe(true);
      expect(mine[0]?.ret).toBeGreaterThanOrEqual(0n);
      expect(new TextDecoder().decode(mine[0]?.args[0]?.bytes)).toBe(secret);

      // Another return hook needs tp_btf/sys_exit: the open hook still runs once per open.
      const other = closeNever(sensor);
      sensor.apply("close-never", other.c, [other.h]);
      expect(sensor.attachments().sort()).toEqual(["tp_btf/sys_exit", "tracepoint/syscalls/sys_exit_openat (gen_open_exit)"]);
      const again = await catSecret(sensor, "oe-post");
      expect(again.r.stdout).toBe(SECRET);
      expect(again.mine.length).toBe(1);
      sensor.remove("close-never");
      sensor.remove("oe-post");
      expect(sensor.attachments()).toEqual([]);

      const k = compile(sensor, fileOpen("oe-kill", "Sigkill"));
      sensor.apply("oe-kill", k, [opened(k)]);
      const killed = spawnSync("cat", [secret], { encoding: "utf8", timeout: 15_000 });
      expect(killed.signal).toBe("SIGKILL");
      expect(killed.stdout).toBe("");
      const other2 = spawnSync("cat", ["/etc/hostname"], { encoding: "utf8", timeout: 15_000 });
      expect(other2.signal).toBeNull();
      expect(other2.status).toBe(0);
      sensor.remove("oe-kill");
      expect(sensor.attachments()).toEqual([]);
    } finally {
      sensor.close();
    }
  });

  kernelTest("tracepoints chosen: a return hook on openat reads the syscall's arguments from the task's registers (the record's regs are not the syscall's)", async () => {
    const sensor = new GenericSensor({ openExit: chooseOpenExit({ allowCompatGap: true }) });
    sensor.load();
    try {
      const c = compile(sensor, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: oe-args
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    return: true
    args:
    - index: 1
      type: string
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: Postfix
        values: ["/open-exit/secret"]
`);
      sensor.apply("oe-args", c, [syscallHook(c, 0, NR_OPENAT, true)]);
      expect(sensor.attachments()).toEqual(["tracepoint/syscalls/sys_exit_openat (gen_open_exit)"]);
      const { r, mine } = await catSecret(sensor, "oe-args");
      expect(r.stdout).toBe(SECRET);
      expect(mine.length).toBe(1);
      expect(mine[0]?.atReturn).toBe(true);
      expect(mine[0]?.ret).toBeGreaterThanOrEqual(0n);
      expect(new TextDecoder().decode(mine[0]?.args.find((a) => a.type === "string")?.bytes)).toBe(secret);
      sensor.remove("oe-args");
    } finally {
      sensor.close();
    }
  });

  kernelTest("by default the sensor places the hook where chooseOpenExit() says this host needs (tp_btf/sys_exit where 32-bit processes can run) and reports from there", async () => {
    const want = chooseOpenExit();
    const sensor = new GenericSensor();
    sensor.load();
    try {
      expect(sensor.openExitPlacement()).toEqual(want);
      const c = compile(sensor, fileOpen("oe-default", "Post"));
      sensor.apply("oe-default", c, [opened(c)]);
      expect(sensor.attachments()).toEqual([want.kind === "tracepoint" ? "tracepoint/syscalls/sys_exit_openat (gen_open_exit)" : "tp_btf/sys_exit"]);
      const { r, mine } = await catSecret(sensor, "oe-default");
      expect(r.stdout).toBe(SECRET);
      expect(mine.length).toBe(1);
      expect(new TextDecoder().decode(mine[0]?.args[0]?.bytes)).toBe(secret);
      sensor.remove("oe-default");
      expect(sensor.attachments()).toEqual([]);
    } finally {
      sensor.close();
    }
  });

  kernelTest("tp_btf chosen (e.g. 32-bit processes possible): the same hook runs at tp_btf/sys_exit and the reason is kept", async () => {
    const choice = { kind: "tp_btf" as const, reason: "test: 32-bit processes may run here" };
    const sensor = new GenericSensor({ openExit: choice });
    sensor.load();
    try {
      expect(sensor.openExitPlacement()).toEqual(choice);
      const c = compile(sensor, fileOpen("oe-btf", "Post"));
      sensor.apply("oe-btf", c, [opened(c)]);
      expect(sensor.attachments()).toEqual(["tp_btf/sys_exit"]);
      const { r, mine } = await catSecret(sensor, "oe-btf");
      expect(r.stdout).toBe(SECRET);
      expect(mine.length).toBe(1);
      expect(new TextDecoder().decode(mine[0]?.args[0]?.bytes)).toBe(secret);
      sensor.remove("oe-btf");
      expect(sensor.attachments()).toEqual([]);
    } finally {
      sensor.close();
    }
  });
});
