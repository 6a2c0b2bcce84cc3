// Kernel-function kprobes through the real agent (dist/ward) on Debian's 6.1 kernel, which has
// the kprobe PMU (this host has no kprobes at all). Three policies as files: fd_install with
// its int and file arguments (Prefix held in the kernel), the corpus' kprobe_commit_creds.yaml
// unchanged (the cred argument read with CO-RE), and vfs_read with return: true (a kretprobe:
// the event carries the file, the count asked for and the bytes read). Real processes in the
// guest trigger them; the export file's process_kprobe events must carry what those processes
// really did: the fd number and path they opened, the uid they switched to, the byte count
// their read returned. An Override on a kprobe, which needs bpf_override_return (absent from
// Debian's 6.1: CONFIG_FUNCTION_ERROR_INJECTION is off), is refused by `ward policy explain`
// in the guest with the missing feature and the substitute. One boot (agent-image.ts).
import { describe, expect } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { accelSummary } from "../../build/vm.ts";
import { CORPUS_DIR } from "../../build/corpus-table.ts";
import { kernelTest } from "../lib/host.ts";
import { runAgentVm, type AgentVmResult } from "./agent-image.ts";

const VM_TIMEOUT_MS = 600_000;
const HELPER = "/bin/kprobe-helper";
const FILE = "/tmp/kp-file";
const CONTENT = "kprobe test file, read through vfs_read\n";
const SETUID_TO = 4321;
const REFUSED = "/ward/refused/override.yaml";

const fdInstall = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fd-install
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 0
      type: int
    - index: 1
      type: file
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values:
        - /tmp/kp-
`;

// vfs_read(file, buf, count, pos) returns the bytes read: the kretprobe's event has both.
const vfsRead = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vfs-read
spec:
  kprobes:
  - call: vfs_read
    syscall: false
    return: true
    args:
    - index: 0
      type: file
    - index: 2
      type: size_t
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values:
        - /tmp/kp-
`;

// security_file_permission is not one of the hooks ward's LSM backends hold, so with kprobes
// it is a kprobe, and Override there needs bpf_override_return.
const override = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: file-permission-override
spec:
  kprobes:
  - call: security_file_permission
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values:
        - /tmp/kp-
      matchActions:
      - action: Override
        argError: -1
`;

const commitCreds = readFileSync(join(CORPUS_DIR, "kprobe_commit_creds.yaml"), "utf8");

const setup = `printf '${CONTENT.replace(/\n/g, "\\n")}' > ${FILE}
`;

// The agent's events reach the export file through its ring buffer reader: give it a moment
// after the last trigger before the harness stops it.
const script = `
check open ${HELPER} open ${FILE}
check setuid ${HELPER} setuid ${SETUID_TO}
sleep 3
emit_explain refused ${REFUSED}
`;

let vm: AgentVmResult | undefined;

function r(): AgentVmResult {
  if (vm === undefined) throw new Error("the VM did not run (see the first test)");
  return vm;
}

type Json = Record<string, unknown>;

interface KprobeEvent {
  process?: { binary?: string; pid?: number };
  function_name?: string;
  policy_name?: string;
  action?: string;
  args?: Json[];
  return?: Json;
}

function kprobeEvents(policy: string): KprobeEvent[] {
  return r()
    .events.map((e) => e.process_kprobe as KprobeEvent | undefined)
    .filter((e): e is KprobeEvent => e !== undefined && e.policy_name === policy);
}

function statusMechanism(policy: string): string {
  const s = r().status as { policies?: { name: string; state: string; hooks?: { mechanism?: string }[] }[] };
  const p = s.policies?.find((x) => x.name === policy);
  if (p === undefined) throw new Error(`policy ${policy} not in /v1/status: ${JSON.stringify(s).slice(0, 2000)}`);
  expect(p.state).toBe("enforcing");
  return p.hooks?.[0]?.mechanism ?? "";
}

describe("kernel-function kprobes through dist/ward on Debian 6.1 (kprobe PMU)", () => {
  kernelTest(
    "the VM boots, the agent starts with the three kprobe policies and stops cleanly",
    async () => {
      vm = await runAgentVm({
        policies: { "fd-install.yaml": fdInstall, "commit-creds.yaml": commitCreds, "vfs-read.yaml": vfsRead },
        files: [{ path: REFUSED, data: override }],
        helpers: [{ source: join(import.meta.dir, "kprobe-helper.c"), path: HELPER }],
        setup,
        script,
        timeoutMs: VM_TIMEOUT_MS,
      });
      process.stderr.write(`kprobe agent VM: ${accelSummary(vm.vm)}, agent ready after ${vm.readySeconds ?? "?"} s, ${vm.events.length} events exported\n`);
      expect(vm.vm.timedOut).toBe(false);
      expect(vm.vm.records.find((x) => x.kind === "boot")?.release).toMatch(/^6\.1\./);
      if (!vm.ready) throw new Error(`the agent did not become ready:\n${vm.agentLog.slice(-6000)}`);
      expect(vm.agentLog).toContain("3 policies applied");
      expect(vm.agentExit).toBe(0);
    },
    VM_TIMEOUT_MS + 120_000,
  );

  kernelTest("/v1/status names the kprobe PMU as each policy's mechanism, with a kretprobe for the return", () => {
    expect(statusMechanism("fd-install")).toStartWith("kprobe on fd_install through the kprobe PMU");
    expect(statusMechanism("commit-creds")).toStartWith("kprobe on commit_creds through the kprobe PMU");
    const read = statusMechanism("vfs-read");
    expect(read).toStartWith("kprobe on vfs_read through the kprobe PMU");
    expect(read).toContain("and a kretprobe for the return");
  });

  kernelTest("fd_install: the fd number and the path the helper really opened", () => {
    const open = r().check("open");
    expect(open.status).toBe(0);
    const fd = Number(/^fd (\d+)$/m.exec(open.stdout)?.[1]);
    expect(fd).toBeGreaterThanOrEqual(3);
    const e = kprobeEvents("fd-install");
    expect(e.length).toBeGreaterThanOrEqual(1);
    // the Prefix is evaluated in the kernel: nothing else the guest opened is reported
    expect(e.every((x) => String((x.args?.[1]?.file_arg as Json | undefined)?.path).startsWith("/tmp/kp-"))).toBe(true);
    const mine = e.find((x) => x.process?.binary === HELPER);
    expect(mine?.function_name).toBe("fd_install");
    expect(mine?.args?.[0]).toEqual({ int_arg: fd });
    expect((mine?.args?.[1]?.file_arg as Json | undefined)?.path).toBe(FILE);
    expect(mine?.action).toBe("KPROBE_ACTION_POST");
  });

  kernelTest("commit_creds (corpus policy, unchanged): the uid the helper switched to, read from the new cred", () => {
    const c = r().check("setuid");
    expect(c.status).toBe(0);
    expect(c.stdout).toBe(`uid ${SETUID_TO}\n`);
    const creds = kprobeEvents("commit-creds")
      .filter((x) => x.process?.binary === HELPER)
      .map((x) => x.args?.[0]?.process_credentials_arg as Json | undefined);
    // the helper's exec commits root's creds (uid 0, omitted as Tetragon omits zeros), the setresuid the new ones
    expect(creds).toContainEqual(expect.objectContaining({ uid: SETUID_TO, euid: SETUID_TO, suid: SETUID_TO, fsuid: SETUID_TO }));
    expect(creds.some((x) => x !== undefined && x.uid === undefined)).toBe(true);
  });

  kernelTest("vfs_read with return: true: one event at the return with the file, the count asked for and the bytes read", () => {
    const e = kprobeEvents("vfs-read").filter((x) => x.process?.binary === HELPER);
    expect(e.length).toBeGreaterThanOrEqual(1);
    const x = e[0]!;
    expect(x.function_name).toBe("vfs_read");
    expect((x.args?.[0]?.file_arg as Json | undefined)?.path).toBe(FILE);
    // kprobe-helper reads into a 64-byte buffer; the file is shorter
    expect(x.args?.[1]).toEqual({ size_arg: "64" }); // uint64 travels as a string in Tetragon's JSON
    expect(x.return).toEqual({ int_arg: CONTENT.length });
  });

  kernelTest("Override on a kprobe is refused in the guest: no bpf_override_return on this kernel, Sigkill named as the substitute", () => {
    const e = r().json("refused") as { name?: string; hooks?: { applicable?: boolean; rejected?: string }[] }[];
    const h = e.find((p) => p.name === "file-permission-override")?.hooks?.[0];
    expect(h?.applicable).toBe(false);
    expect(h?.rejected).toContain("Override on security_file_permission needs bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE), which this kernel does not have");
    expect(h?.rejected).toContain("substitute: Sigkill at the kprobe");
  });
});
