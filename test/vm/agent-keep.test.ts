// --keep-sensors-on-exit through the real agent (dist/ward) on Debian's 6.1 kernel with BPF
// LSM, where the talk's Override policy is held by the file guard's lsm/file_open program:
// killed with SIGKILL, the agent leaves that program pinned and the open still fails with
// EPERM (not a kill: BPF LSM can fail the call, so nothing is substituted), the file intact;
// readers that keep trying while the next agent starts are refused every time (no gap); the
// restarted agent adopts the policy; a graceful stop with the flag keeps it pinned; a start
// without the flag adopts, then a SIGKILL of that agent ends the enforcement and leaves
// nothing under the bpf dir. One boot runs it all (test/vm/agent-image.ts).
import { describe, expect } from "bun:test";
import { accelSummary } from "../../build/vm.ts";
import { kernelTest } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { GUEST, runAgentVm, type AgentVmCheck, type AgentVmResult } from "./agent-image.ts";

const VM_TIMEOUT_MS = 420_000;
const SECRET = "I love pizza!\n";
const FILE = "/my/extremely/secret/file";
const STORE = "/var/lib/ward-store";
const POLICY = `${GUEST.policyDir}/talk-override.yaml`;
const KEEP = ["--keep-sensors-on-exit", "--policy-store-dir", STORE];

const setup = `
mkdir -p /my/extremely/secret
printf 'I love pizza!\\n' > ${FILE}
`;

// The restarted agents use the harness's paths (its own agent is dead by then), so the
// harness's closing `ward status` reaches the last one.
const agentCmd = (flags: string): string =>
  `${GUEST.ward} agent --listen ${GUEST.listen} --token-file ${GUEST.tokenFile} --state-file ${GUEST.stateFile} --export-file /tmp/ward-events-2.log --bpf-dir ${GUEST.bpfDir} --policy ${POLICY} ${flags}`;

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
check running-cat /usr/bin/cat ${FILE}
check running-allowed /my/cat ${FILE}
emit_status status-first
kill -9 $agent
sleep 1
pins pins-dead
check dead-cat /usr/bin/cat ${FILE}
check dead-truncate sh -c ': > ${FILE}'
check dead-content /my/cat ${FILE}

( while :; do /usr/bin/cat ${FILE} >/dev/null 2>&1; echo $?; sleep 0.05; done ) > /tmp/restart-reads &
loop=$!
${agentCmd(KEEP.join(" "))} > /tmp/agent-2.log 2>&1 &
a2=$!
wait_ready ready-2 $a2
kill $loop
emit_file restart-reads /tmp/restart-reads
sleep 0.5
emit_file events-2 /tmp/ward-events-2.log
check adopted-cat /usr/bin/cat ${FILE}
emit_status status-adopted
kill -TERM $a2
wait $a2
note exit-2 "$?"
emit_file agent-2-log /tmp/agent-2.log
pins pins-stopped
check stopped-cat /usr/bin/cat ${FILE}

${agentCmd("")} > /tmp/agent-3.log 2>&1 &
a3=$!
wait_ready ready-3 $a3
pins pins-no-flag
check no-flag-cat /usr/bin/cat ${FILE}
kill -9 $a3
sleep 1
emit_file agent-3-log /tmp/agent-3.log
pins pins-after-no-flag
check after-no-flag-cat /usr/bin/cat ${FILE}

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
  expect({ status: c.status, signal: c.signal, stdout: c.stdout, stderr: c.stderr }).toEqual({ status: 1, signal: null, stdout: "", stderr: `/usr/bin/cat: ${FILE}: Operation not permitted\n` });
}

function readable(c: AgentVmCheck): void {
  expect({ status: c.status, signal: c.signal, stdout: c.stdout }).toEqual({ status: 0, signal: null, stdout: SECRET });
}

interface StatusHook {
  mechanism?: string;
  afterExit?: string;
  actions?: { action: string; honored: string; afterExit?: string }[];
}
interface StatusPolicy {
  name: string;
  state: string;
  adopted?: boolean;
  pinned?: string;
  hooks?: StatusHook[];
}

function policyIn(record: string): StatusPolicy {
  const s = r().json(record) as { policies?: StatusPolicy[] };
  const p = s.policies?.find((x) => x.name === "talk-override");
  if (p === undefined) throw new Error(`talk-override not in ${record}: ${JSON.stringify(s).slice(0, 2000)}`);
  return p;
}

describe("--keep-sensors-on-exit through dist/ward on Debian 6.1 (BPF LSM)", () => {
  kernelTest(
    "the VM boots with BPF LSM and the agent starts with the flag and a policy store",
    async () => {
      vm = await runAgentVm({
        policies: { "talk-override.yaml": secureOpenPolicy({ name: "talk-override", file: FILE, allowed: "/my/cat", action: "Override\n        argError: -1" }) },
        files: [
          { path: "/usr/bin/cat", file: "/usr/bin/cat", mode: 0o755 },
          { path: "/my/cat", file: "/usr/bin/cat", mode: 0o755 },
        ],
        setup,
        script,
        agentArgs: KEEP,
        timeoutMs: VM_TIMEOUT_MS,
      });
      process.stderr.write(`keep VM: ${accelSummary(vm.vm)}, agent ready after ${vm.readySeconds ?? "?"} s\n`);
      const boot = vm.vm.records.find((x) => x.kind === "boot");
      expect(vm.vm.timedOut).toBe(false);
      expect(boot?.release).toMatch(/^6\.1\./);
      expect(String(boot?.lsm)).toContain("bpf");
      if (!vm.ready) throw new Error(`the agent did not become ready:\n${vm.agentLog}`);
      expect(vm.agentLog).toContain("1 policy applied");
    },
    VM_TIMEOUT_MS + 120_000,
  );

  kernelTest("while the agent runs: EPERM in lsm/file_open, pinned, and status says it stays the same after exit", () => {
    denied(r().check("running-cat"));
    readable(r().check("running-allowed"));
    const p = policyIn("status-first");
    expect(p.state).toBe("enforcing");
    expect(p.pinned).toBeDefined();
    expect(p.hooks?.[0]?.mechanism).toStartWith("BPF LSM lsm/file_open");
    expect(p.hooks?.[0]?.afterExit).toStartWith("the same: its file guard's programs, maps and links are pinned");
  });

  kernelTest("after kill -9: the open still fails with EPERM (not a kill), a truncation too, the file is intact", () => {
    const pins = r().files.get("pins-dead") ?? "";
    expect(pins).toContain(`${GUEST.bpfDir}/manifest`);
    expect(pins).toMatch(/\/policies\/talk-override\/.*\/guard\/link_/);
    denied(r().check("dead-cat"));
    const t = r().check("dead-truncate");
    expect(t.signal).toBeNull();
    expect(t.stderr).toContain("Operation not permitted");
    expect(r().check("dead-content").stdout).toBe(SECRET);
  });

  kernelTest("the process sensor runs on 6.1: exec and exit events of cat; its wakeup control map is pinned and the next agent delivers what it adopted", () => {
    type Proc = { binary?: string; pid?: number };
    const execs = (evs: Record<string, unknown>[]) => evs.map((e) => (e.process_exec as { process?: Proc } | undefined)?.process).filter((p): p is Proc => p?.binary === "/usr/bin/cat");
    const exits = r().events.map((e) => (e.process_exit as { process?: Proc } | undefined)?.process).filter((p) => p?.binary === "/usr/bin/cat");
    expect(execs(r().events).length).toBeGreaterThan(0);
    expect(exits.length).toBeGreaterThan(0);
    expect(r().files.get("pins-dead") ?? "").toContain("/map_ward_events_ctl");
    const second = (r().files.get("events-2") ?? "")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(execs(second).length).toBeGreaterThan(0);
  });

  kernelTest("while the next agent starts every read is refused (no gap); it adopts the pinned policy", () => {
    expect(r().files.get("ready-2")).toBe("ready");
    const reads = (r().files.get("restart-reads") ?? "").split("\n").filter((x) => x !== "");
    expect(reads.length).toBeGreaterThan(5);
    expect(reads.filter((rc) => rc !== "1")).toEqual([]);
    denied(r().check("adopted-cat"));
    const p = policyIn("status-adopted");
    expect([p.state, p.adopted]).toEqual(["enforcing", true]);
    expect(r().files.get("agent-2-log")).toContain("adopted its pinned objects");
  });

  kernelTest("a graceful stop with the flag keeps it pinned and enforcing", () => {
    expect(r().files.get("exit-2")).toBe("0");
    expect(r().files.get("pins-stopped") ?? "").toContain(`${GUEST.bpfDir}/manifest`);
    denied(r().check("stopped-cat"));
  });

  kernelTest("a start without the flag adopts (still EPERM) and unpins; killed with SIGKILL it leaves nothing pinned and the file readable", () => {
    expect(r().files.get("ready-3")).toBe("ready");
    expect(r().files.get("pins-no-flag") ?? "").not.toContain("manifest");
    denied(r().check("no-flag-cat"));
    expect((r().files.get("pins-after-no-flag") ?? "").trim()).toBe("");
    readable(r().check("after-no-flag-cat"));
    expect(r().files.get("ready-4")).toBe("ready");
  });
});
