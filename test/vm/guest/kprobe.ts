// Runs inside the qemu VM (Debian 6.1, kprobes on), compiled with `bun build --compile`: the
// generic sensor's kernel-function kprobes without the agent around them, so each step says
// how long it took (program verification under TCG is the slow part). Policies resolve with
// hostHookFeatures() of the guest, apply through GenericBackend (the agent's path), real
// processes trigger them; every step prints one record (test/vm/kprobe-vm.test.ts).
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { VM_MARKER } from "../../../build/vm.ts";
import { validatePolicyText } from "../../../src/policy/validate.ts";
import { encodeHookArg } from "../../../src/events/kprobe-event.ts";
import { GenericBackend } from "../../../src/sensors/generic-backend.ts";
import { GenericSensor, probeKprobeSupport } from "../../../src/sensors/generic.ts";
import { hostHookFeatures, resolvePolicy, type ResolvedHook } from "../../../src/sensors/resolve.ts";
import type { GenericMatch } from "../../../src/sensors/manager.ts";

const HELPER = "/bin/kprobe-helper";
const UDP_PORT = 7777;

function emit(record: Record<string, unknown>): void {
  process.stdout.write(`${VM_MARKER}${JSON.stringify(record, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`);
}

function policy(yaml: string) {
  const r = validatePolicyText(yaml, "guest.yaml");
  const p = r.policies[0];
  if (!r.valid || p === undefined) throw new Error(`invalid policy: ${JSON.stringify(r.diagnostics)}`);
  return p.policy;
}

const POLICIES: Record<string, string> = {
  "fd-install": `apiVersion: cilium.io/v1alpha1
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
`,
  "commit-creds": `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: commit-creds
spec:
  kprobes:
  - call: commit_creds
    syscall: false
    args:
    - index: 0
      type: cred
`,
  "tcp-connect": `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: tcp-connect
spec:
  kprobes:
  - call: tcp_connect
    syscall: false
    args:
    - index: 0
      type: sock
`,
  "file-permission": `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: file-permission
spec:
  kprobes:
  - call: security_file_permission
    syscall: false
    return: true
    args:
    - index: 0
      type: file
    - index: 1
      type: int
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values:
        - /etc/kp-
`,
  // ip_output(net, sk, skb): the skb's IP and UDP headers, DPort held in the kernel
  "ip-output": `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ip-output
spec:
  kprobes:
  - call: ip_output
    syscall: false
    args:
    - index: 2
      type: skb
    selectors:
    - matchArgs:
      - index: 2
        operator: DPort
        values:
        - "${UDP_PORT}"
`,
  // vfs_truncate(const struct path *, loff_t): the struct path's full path, Prefix in the kernel
  "vfs-truncate": `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: vfs-truncate
spec:
  kprobes:
  - call: vfs_truncate
    syscall: false
    args:
    - index: 0
      type: path
    - index: 1
      type: int64
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values:
        - /tmp/kp-
`,
};

function run(cmd: string, args: string[]): Record<string, unknown> {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

async function main(): Promise<void> {
  emit({ kind: "guest" });
  const f = hostHookFeatures();
  emit({ kind: "check", name: "features", kprobes: f.kprobes, overrideReturn: f.overrideReturn, kprobeMulti: f.kprobeMulti ?? false, support: probeKprobeSupport() });
  writeFileSync("/tmp/kp-file", "kprobe test file\n");
  writeFileSync("/tmp/kp-trunc", "to be truncated\n");
  mkdirSync("/etc", { recursive: true }); // the initramfs has no /etc
  writeFileSync("/etc/kp-watched", "watched\n");
  const backend = new GenericBackend(() => new GenericSensor({ lazyPrograms: true }));
  const matches: GenericMatch[] = [];
  backend.onMatch((m) => matches.push(m));
  const mechanisms: Record<string, string[]> = {};
  for (const [id, yaml] of Object.entries(POLICIES)) {
    const p = policy(yaml);
    const res = resolvePolicy(p, f);
    mechanisms[id] = res.hooks.map((h) => (h.ok ? h.mechanism : `refused: ${h.reason}`));
    emit({ kind: "step", name: `apply-${id}`, mechanisms: mechanisms[id] });
    const t = Date.now();
    try {
      backend.apply(id, p, res.hooks.filter((h): h is ResolvedHook => h.ok), "enforce");
      emit({ kind: "check", name: `apply-${id}`, ms: Date.now() - t, mechanisms: mechanisms[id] });
    } catch (e) {
      emit({ kind: "check", name: `apply-${id}`, ms: Date.now() - t, error: e instanceof Error ? `${e.name}: ${e.message}`.slice(0, 6000) : String(e) });
    }
  }
  const triggers = {
    open: run(HELPER, ["open", "/tmp/kp-file"]),
    setuid: run(HELPER, ["setuid", "4321"]),
    connect: run(HELPER, ["connect"]),
    read: run("/bin/cat", ["/etc/kp-watched"]),
    udp: run(HELPER, ["udp", String(UDP_PORT)]),
    truncate: run(HELPER, ["truncate", "/tmp/kp-trunc"]),
  };
  emit({ kind: "check", name: "triggers", ...triggers });
  await new Promise((r) => setTimeout(r, 1500));
  const events = matches.map((m) => ({
    policy: m.policyId,
    function: m.functionName ?? m.hook.functionName,
    tgid: m.tgid,
    action: m.action,
    args: m.args.map((a) => encodeHookArg(a)),
    ...(m.ret !== undefined ? { ret: encodeHookArg(m.ret) } : {}),
  }));
  // only the helper's and cat's events matter; keep the record small
  emit({ kind: "check", name: "events", count: events.length, events: events.slice(0, 120) });
  backend.close();
  emit({ kind: "guest-end" });
}

await main().catch((e: unknown) => emit({ kind: "check", name: "crash", error: String(e instanceof Error ? e.stack : e) }));
process.exit(0);
