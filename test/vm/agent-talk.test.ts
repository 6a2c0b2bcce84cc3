// The talk's secure policy, unchanged, through the real agent (dist/ward) on Debian's 6.1
// kernel with BPF LSM: Override makes `cat` fail with EPERM without killing it and leaves the
// file untouched (O_TRUNC included), the allowed copy of cat reads it; Override + Sigkill
// kills the reader and still leaves the file untouched; exec of a protected file fails with
// EPERM directly and through a symlink, a hardlink and a rename (by inode), while a copy (a
// new inode) runs. `ward policy explain` and `/v1/status` inside the guest name BPF LSM.
// One boot (test/vm/agent-image.ts) runs every check; the tests assert on its records.
import { describe, expect } from "bun:test";
import { join } from "node:path";
import { accelSummary } from "../../build/vm.ts";
import { kernelTest } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { runAgentVm, type AgentVmCheck, type AgentVmResult } from "./agent-image.ts";

const VM_TIMEOUT_MS = 420_000;
const SECRET = "I love pizza!\n";
const FILE = "/my/extremely/secret/file";
const KILLED_FILE = "/my/killed/secret/file";
const FORBIDDEN = "/my/forbidden";
const HELPER = "/bin/lsm-helper";

const OVERRIDE = "Override\n        argError: -1";
const OVERRIDE_KILL = "Override\n        argError: -1\n      - action: Sigkill";

const execPolicy = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: talk-exec
spec:
  kprobes:
  - call: security_bprm_check
    syscall: false
    args:
    - index: 0
      type: linux_binprm
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values:
        - ${FORBIDDEN}
      matchActions:
      - action: Override
        argError: -1
`;

const setup = `
mkdir -p /my/extremely/secret /my/killed/secret
printf 'I love pizza!\\n' > ${FILE}
printf 'I love pizza!\\n' > ${KILLED_FILE}
cp ${HELPER} ${FORBIDDEN}
`;

const script = `
check cat-denied /usr/bin/cat ${FILE}
check cat-allowed /my/cat ${FILE}
check truncate-denied sh -c ': > ${FILE}'
check content-after-truncate /my/cat ${FILE}
check kill-cat /usr/bin/cat ${KILLED_FILE}
check kill-truncate sh -c ': > ${KILLED_FILE}'
check kill-content /my/cat ${KILLED_FILE}
check kill-allowed /my/cat ${KILLED_FILE}
ln -s ${FORBIDDEN} /tmp/forbidden-symlink
ln ${FORBIDDEN} /my/forbidden-hardlink
cp ${FORBIDDEN} /my/forbidden-copy
check exec-direct ${HELPER} exec ${FORBIDDEN} noop
check exec-symlink ${HELPER} exec /tmp/forbidden-symlink noop
check exec-hardlink ${HELPER} exec /my/forbidden-hardlink noop
mv /my/forbidden-hardlink /my/renamed
check exec-renamed ${HELPER} exec /my/renamed noop
check exec-copy ${HELPER} exec /my/forbidden-copy noop
check exec-sh sh -c '${FORBIDDEN} noop'
`;

let vm: AgentVmResult | undefined;

function r(): AgentVmResult {
  if (vm === undefined) throw new Error("the VM did not run (see the first test)");
  return vm;
}

function denied(c: AgentVmCheck): void {
  expect(c.signal).toBeNull();
  expect(c.stdout).not.toContain("pizza");
}

function killed(c: AgentVmCheck): void {
  expect(c.signal).toBe("SIGKILL");
  expect(c.stdout).toBe("");
}

interface Hook {
  path?: string;
  hook?: string;
  mechanism?: string;
  actions?: { action: string; honored: string }[];
}

/** /v1/status from the guest: hook mechanisms per policy. */
function statusHooks(policy: string): Hook[] {
  const s = r().status as { policies?: { name: string; state: string; hooks?: Hook[] }[] };
  const p = s.policies?.find((x) => x.name === policy);
  if (p === undefined) throw new Error(`policy ${policy} not in /v1/status: ${JSON.stringify(s).slice(0, 2000)}`);
  expect(p.state).toBe("enforcing");
  return p.hooks ?? [];
}

function explainHooks(policy: string): { mechanism?: string; applicable?: boolean }[] {
  const e = r().explain as { name?: string; hooks?: { mechanism?: string; applicable?: boolean }[] }[];
  const p = e.find((x) => x.name === policy);
  if (p === undefined) throw new Error(`policy ${policy} not in explain output`);
  return p.hooks ?? [];
}

interface KprobeEvent {
  process?: { binary?: string };
  function_name?: string;
  policy_name?: string;
  action?: string;
  args?: { file_arg?: { path?: string } }[];
}

function kprobeEvents(policy: string): KprobeEvent[] {
  return r()
    .events.map((e) => e.process_kprobe as KprobeEvent | undefined)
    .filter((e): e is KprobeEvent => e !== undefined && e.policy_name === policy);
}

describe("the talk's secure policy through dist/ward on Debian 6.1 (BPF LSM)", () => {
  kernelTest(
    "the VM boots with BPF LSM, the agent starts with the three policies and stops cleanly",
    async () => {
      vm = await runAgentVm({
        policies: {
          "talk-override.yaml": secureOpenPolicy({ name: "talk-override", file: FILE, allowed: "/my/cat", action: OVERRIDE }),
          "talk-kill.yaml": secureOpenPolicy({ name: "talk-kill", file: KILLED_FILE, allowed: "/my/cat", action: OVERRIDE_KILL }),
          "talk-exec.yaml": execPolicy,
        },
        files: [
          { path: "/usr/bin/cat", file: "/usr/bin/cat", mode: 0o755 },
          { path: "/my/cat", file: "/usr/bin/cat", mode: 0o755 },
        ],
        helpers: [{ source: join(import.meta.dir, "lsm-helper.c"), path: HELPER }],
        setup,
        script,
        timeoutMs: VM_TIMEOUT_MS,
      });
      process.stderr.write(`talk VM: ${accelSummary(vm.vm)}, agent ready after ${vm.readySeconds ?? "?"} s\n`);
      const boot = vm.vm.records.find((x) => x.kind === "boot");
      expect(vm.vm.timedOut).toBe(false);
      expect(boot?.release).toMatch(/^6\.1\./);
      expect(String(boot?.lsm)).toContain("bpf");
      if (!vm.ready) throw new Error(`the agent did not become ready:\n${vm.agentLog}`);
      expect(vm.agentLog).toContain("3 policies applied");
      expect(vm.agentExit).toBe(0);
    },
    VM_TIMEOUT_MS + 120_000,
  );

  kernelTest("Override: cat prints Operation not permitted, exits 1 and is not killed", () => {
    const c = r().check("cat-denied");
    denied(c);
    expect(c.status).toBe(1);
    expect(c.stderr).toBe(`/usr/bin/cat: ${FILE}: Operation not permitted\n`);
  });

  kernelTest("the allowed binary /my/cat (matchBinaries NotIn) reads the file", () => {
    const c = r().check("cat-allowed");
    expect(c.status).toBe(0);
    expect(c.stdout).toBe(SECRET);
  });

  kernelTest("Override: sh -c ': > file' fails with EPERM and the content is intact", () => {
    const t = r().check("truncate-denied");
    denied(t);
    expect(t.stderr).toContain("Operation not permitted");
    expect(r().check("content-after-truncate").stdout).toBe(SECRET);
  });

  kernelTest("Override + Sigkill: the reader and the truncating shell are killed, the content is intact", () => {
    killed(r().check("kill-cat"));
    killed(r().check("kill-truncate"));
    expect(r().check("kill-content").stdout).toBe(SECRET);
    expect(r().check("kill-allowed").status).toBe(0);
  });

  kernelTest("exec of the protected file fails with EPERM directly, through a symlink, a hardlink and after a rename", () => {
    for (const name of ["exec-direct", "exec-symlink", "exec-hardlink", "exec-renamed"]) {
      const c = r().check(name);
      expect({ name, status: c.status, signal: c.signal, stdout: c.stdout }).toEqual({ name, status: 3, signal: null, stdout: "ERR execve 1\n" });
    }
    // the shell's own exec of it is refused the same way
    const sh = r().check("exec-sh");
    expect(sh.signal).toBeNull();
    expect(sh.stderr).toContain("Operation not permitted");
    // a copy is another inode: it runs (the helper rejects the unknown subcommand, exit 2)
    const copy = r().check("exec-copy");
    expect(copy.status).toBe(2);
    expect(copy.stderr).toContain("unknown subcommand noop");
  });

  kernelTest("explain and /v1/status in the guest name BPF LSM as the mechanism, and how each action is honored", () => {
    const open = statusHooks("talk-override")[0];
    expect(open?.mechanism).toStartWith("BPF LSM lsm/file_open");
    expect(open?.actions?.[0]?.honored).toContain("EPERM in lsm/file_open");
    const kill = statusHooks("talk-kill")[0];
    expect(kill?.mechanism).toStartWith("BPF LSM lsm/file_open");
    expect(kill?.actions?.map((a) => a.action)).toEqual(["Override(argError=-1)", "Sigkill"]);
    expect(kill?.actions?.[1]?.honored).toContain("the call fails with EPERM there");
    expect(statusHooks("talk-exec")[0]?.mechanism).toStartWith("BPF LSM lsm/bprm_check_security");
    for (const p of ["talk-override", "talk-kill"]) {
      const h = explainHooks(p)[0];
      expect(h?.applicable).toBe(true);
      expect(h?.mechanism).toStartWith("BPF LSM lsm/file_open");
    }
    expect(explainHooks("talk-exec")[0]?.mechanism).toStartWith("BPF LSM lsm/bprm_check_security");
  });

  kernelTest("the export file has process_kprobe events for the denied and killed opens", () => {
    const opens = kprobeEvents("talk-override");
    expect(opens.some((e) => e.function_name === "security_file_open" && e.process?.binary === "/usr/bin/cat" && e.args?.[0]?.file_arg?.path === FILE && e.action === "KPROBE_ACTION_OVERRIDE")).toBe(true);
    // the allowed reader never matches
    expect(opens.some((e) => e.process?.binary === "/my/cat")).toBe(false);
    const kills = kprobeEvents("talk-kill");
    expect(kills.some((e) => e.process?.binary === "/usr/bin/cat" && e.args?.[0]?.file_arg?.path === KILLED_FILE)).toBe(true);
    const execs = kprobeEvents("talk-exec");
    expect(execs.filter((e) => e.function_name === "security_bprm_check").length).toBeGreaterThanOrEqual(4);
  });
});
