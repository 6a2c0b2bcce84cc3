// --keep-sensors-on-exit with a generic-sensor BPF LSM hook (lsmhooks path_unlink, Override)
// through the real agent (dist/ward) on Debian's 6.1 kernel with BPF LSM: pinned as
// generic/prog_gen_lsm_path_unlink and generic/link_lsm_path_unlink; killed with SIGKILL, the
// agent leaves the hook failing unlink with EPERM (the file stays); every unlink tried while
// the next agent starts fails and the file is still there (no gap); that agent adopts the
// policy holding exactly the link ids the first one made (nothing attached anew); an agent
// started with the flag and without the policy removes it: the unlink is let through and nothing
// is left under the bpf dir. One boot runs it all (test/vm/agent-image.ts).
import { describe, expect } from "bun:test";
import { accelSummary } from "../../build/vm.ts";
import { kernelTest } from "../lib/host.ts";
import { GUEST, runAgentVm, type AgentVmCheck, type AgentVmResult } from "./agent-image.ts";

const VM_TIMEOUT_MS = 420_000;
const STORE = "/var/lib/ward-store";
const POLICY = `${GUEST.policyDir}/keep-unlink.yaml`;
const KEEP = ["--keep-sensors-on-exit", "--policy-store-dir", STORE];

const unlinkPolicy = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: keep-unlink
spec:
  lsmhooks:
  - hook: path_unlink
    args:
    - index: 0
      type: path
    - index: 1
      type: dentry
    selectors:
    - matchArgs:
      - index: 1
        operator: Prefix
        values:
        - /protected/
      matchActions:
      - action: Override
        argError: -1
`;

const setup = `
mkdir -p /protected /other
for f in a b c d; do echo keep > /protected/$f; done
echo free > /other/free
`;

const agentCmd = (flags: string): string =>
  `${GUEST.ward} agent --listen ${GUEST.listen} --token-file ${GUEST.tokenFile} --state-file ${GUEST.stateFile} --export-file /tmp/ward-events-2.log --bpf-dir ${GUEST.bpfDir} ${flags}`;

// Link ids a process holds, from its fdinfo (busybox has no bpftool).
const script = `
wait_ready() {
  _i=0
  while [ $_i -lt 600 ]; do
    if wget -q -O /dev/null http://${GUEST.listen}/healthz 2>/dev/null; then note "$1" ready; return 0; fi
    kill -0 $2 2>/dev/null || break
    sleep 0.2
    _i=$((_i + 1))
  done
  note "$1" not-ready
}
pins() { find ${GUEST.bpfDir} ! -type d 2>/dev/null | sort > /tmp/.pins; emit_file "$1" /tmp/.pins; }
links() { for f in /proc/$2/fdinfo/*; do sed -n 's/^link_id:[[:space:]]*//p' "$f" 2>/dev/null; done | sort -n > /tmp/.links; emit_file "$1" /tmp/.links; }
check running-rm rm /protected/a
check running-other rm /other/free
emit_status status-first
pins pins-running
links links-1 $agent
kill -9 $agent
sleep 1
pins pins-dead
check dead-rm rm /protected/b

( while :; do rm /protected/c >/dev/null 2>&1; echo $?; sleep 0.05; done ) > /tmp/restart-rms &
loop=$!
${agentCmd(`--policy ${POLICY} ${KEEP.join(" ")}`)} > /tmp/agent-2.log 2>&1 &
a2=$!
wait_ready ready-2 $a2
kill $loop
emit_file restart-rms /tmp/restart-rms
check after-restart-ls ls /protected
links links-2 $a2
emit_status status-adopted
check adopted-rm rm /protected/d
kill -TERM $a2
wait $a2
note exit-2 "$?"
emit_file agent-2-log /tmp/agent-2.log

${agentCmd(KEEP.join(" "))} > /tmp/agent-3.log 2>&1 &
a3=$!
wait_ready ready-3 $a3
pins pins-removed
check removed-rm rm /protected/d
kill -TERM $a3
wait $a3
emit_file agent-3-log /tmp/agent-3.log
pins pins-end

${agentCmd("")} > /tmp/agent-4.log 2>&1 &
a4=$!
wait_ready ready-4 $a4
`;

let vm: AgentVmResult | undefined;

function r(): AgentVmResult {
  if (vm === undefined) throw new Error("the VM did not run (see the first test)");
  return vm;
}

function denied(c: AgentVmCheck): void {
  expect({ status: c.status, signal: c.signal }).toEqual({ status: 1, signal: null });
  expect(c.stderr).toContain("Operation not permitted");
}

interface StatusPolicy {
  name: string;
  state: string;
  adopted?: boolean;
  pinned?: string;
  hooks?: { mechanism?: string; afterExit?: string }[];
}

function policyIn(record: string): StatusPolicy {
  const s = r().json(record) as { policies?: StatusPolicy[] };
  const p = s.policies?.find((x) => x.name === "keep-unlink");
  if (p === undefined) throw new Error(`keep-unlink not in ${record}: ${JSON.stringify(s).slice(0, 2000)}`);
  return p;
}

const ids = (name: string): number[] => (r().files.get(name) ?? "").split("\n").filter((x) => x !== "").map(Number);

describe("--keep-sensors-on-exit with a generic BPF LSM hook, through dist/ward on Debian 6.1", () => {
  kernelTest(
    "the VM boots with BPF LSM and the agent applies the path_unlink policy with the flag",
    async () => {
      vm = await runAgentVm({
        policies: { "keep-unlink.yaml": unlinkPolicy },
        files: [],
        setup,
        script,
        agentArgs: KEEP,
        timeoutMs: VM_TIMEOUT_MS,
      });
      process.stderr.write(`keep-lsm VM: ${accelSummary(vm.vm)}, agent ready after ${vm.readySeconds ?? "?"} s\n`);
      const boot = vm.vm.records.find((x) => x.kind === "boot");
      expect(vm.vm.timedOut).toBe(false);
      expect(boot?.release).toMatch(/^6\.1\./);
      expect(String(boot?.lsm)).toContain("bpf");
      if (!vm.ready) throw new Error(`the agent did not become ready:\n${vm.agentLog}`);
      expect(vm.agentLog).toContain("1 policy applied");
    },
    VM_TIMEOUT_MS + 120_000,
  );

  kernelTest("while the agent runs: unlink fails with EPERM under /protected/, the program and link are pinned, status says so", () => {
    denied(r().check("running-rm"));
    expect(r().check("running-other").status).toBe(0);
    const p = policyIn("status-first");
    expect(p.state).toBe("enforcing");
    expect(p.pinned).toBeDefined();
    expect(p.hooks?.[0]?.mechanism).toStartWith("BPF LSM lsm/path_unlink");
    expect(p.hooks?.[0]?.afterExit).toContain("generic/link_lsm_path_unlink");
    const pins = r().files.get("pins-running") ?? "";
    expect(pins).toContain(`${GUEST.bpfDir}/generic/link_lsm_path_unlink`);
    expect(pins).toContain(`${GUEST.bpfDir}/generic/prog_gen_lsm_path_unlink`);
    expect(ids("links-1").length).toBeGreaterThan(0);
  });

  kernelTest("after kill -9: unlink still fails with EPERM (the pinned lsm/path_unlink decides)", () => {
    expect(r().files.get("pins-dead") ?? "").toContain(`${GUEST.bpfDir}/generic/link_lsm_path_unlink`);
    denied(r().check("dead-rm"));
  });

  kernelTest("while the next agent starts every unlink fails and the files stay (no gap); it adopts the same links", () => {
    expect(r().files.get("ready-2")).toBe("ready");
    const rms = (r().files.get("restart-rms") ?? "").split("\n").filter((x) => x !== "");
    expect(rms.length).toBeGreaterThan(5);
    expect(rms.filter((rc) => rc !== "1")).toEqual([]);
    expect(r().check("after-restart-ls").stdout.split("\n").filter((x) => x !== "")).toEqual(["a", "b", "c", "d"]);
    expect(ids("links-2")).toEqual(ids("links-1"));
    const p = policyIn("status-adopted");
    expect([p.state, p.adopted]).toEqual(["enforcing", true]);
    denied(r().check("adopted-rm"));
    expect(r().files.get("exit-2")).toBe("0");
    expect(r().files.get("agent-2-log")).toContain("adopted its pinned objects");
  });

  kernelTest("an agent whose policy set no longer names it removes it: unlink goes through, nothing left pinned", () => {
    expect(r().files.get("ready-3")).toBe("ready");
    expect(r().check("removed-rm").status).toBe(0);
    expect((r().files.get("pins-end") ?? "").trim()).toBe("");
    expect(r().files.get("ready-4")).toBe("ready");
  });
});
