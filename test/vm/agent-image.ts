// The real agent in the VM: dist/ward (build/binary.ts) in an initramfs with busybox, the
// test's policy files, helper binaries and files, booted once on Debian's 6.1 kernel with BPF
// LSM (build/vm.ts). The guest starts `ward agent --policy ...` as root (token and state under
// /run/ward, events to /tmp/ward-events.log), waits for /healthz, runs the test's busybox sh
// script, whose `check` calls run real processes and print one result record each, then
// records `ward policy explain -o json` and `ward status -o json` from inside the guest, stops
// the agent and hands the export file and the agent's log back. One boot runs every check of
// a suite: under TCG a boot with the agent takes about a minute.
//
// The script's shell functions (defined before it runs, in the same shell):
//   check NAME CMD [ARG...]   run CMD in a child (stdin /dev/null), record its exit status
//                             (or the signal that ended it), stdout and stderr
//   emit_file NAME PATH       record a file's content (or that it is missing)
//   emit_status NAME          record `ward status -o json` now (the policies' mechanisms)
//   emit_explain NAME FILE... record `ward policy explain -o json FILE...` (guest paths)
//   note NAME TEXT            record a short text (no double quotes or backslashes)
// Names are [A-Za-z0-9._-]. Every payload travels base64-encoded gzip, so any byte is safe on
// the serial console. A status above 128 is a death by signal 128-N (sh's convention; the
// helpers the tests run never exit above 128 themselves).
import { spawnSync } from "node:child_process";
import { constants } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ensureSystemPackages } from "../../build/system.ts";
import {
  binaryWithLibs,
  buildInitramfs,
  busyboxEntries,
  ensureVmKernel,
  ensureVmTools,
  initScript,
  runVm,
  vmCacheDir,
  VM_MARKER,
  type InitramfsEntry,
  type VmRecord,
  type VmRun,
} from "../../build/vm.ts";
import { ensureBinary } from "../lib/binary.ts";
import { HELPER_TOOLCHAIN } from "./image.ts";

/** Where things are inside the guest. */
export const GUEST = {
  ward: "/usr/bin/ward",
  /** test/kernel/guard-helper.c, static */
  guardHelper: "/bin/ward-helper",
  policyDir: "/ward/policies",
  exportFile: "/tmp/ward-events.log",
  agentLog: "/tmp/ward-agent.log",
  stateFile: "/run/ward/state.json",
  tokenFile: "/run/ward/token",
  bpfDir: "/sys/fs/bpf/ward",
  listen: "127.0.0.1:7878",
} as const;

export interface AgentVmHelper {
  /** C source on the host, compiled with cc -O2 -static -pthread */
  source: string;
  /** absolute path in the guest */
  path: string;
}

export interface AgentVmSpec {
  /** Policy files by file name ("talk.yaml"): placed in GUEST.policyDir and given to the agent with --policy. */
  policies: Record<string, string>;
  /** Extra initramfs members (copies of binaries, files the policies protect). */
  files?: InitramfsEntry[];
  /** Static helpers built from C sources (test/kernel/guard-helper.c is always at GUEST.guardHelper). */
  helpers?: AgentVmHelper[];
  /** busybox sh run before the agent starts (make files, links, directories). */
  setup?: string;
  /** busybox sh run once the agent is ready; calls check/emit_file/emit_status/emit_explain/note. */
  script: string;
  /** Extra `ward agent` flags. */
  agentArgs?: string[];
  /** For the whole boot. */
  timeoutMs: number;
  /** Guest memory; default 2048 MiB (the ~110 MB binary is unpacked into RAM, the agent adds its RSS). */
  memoryMb?: number;
}

export interface AgentVmCheck {
  name: string;
  /** exit status, null when a signal ended it */
  status: number | null;
  /** "SIGKILL" when a signal ended it */
  signal: string | null;
  stdout: string;
  stderr: string;
}

export class AgentVmError extends Error {
  override name = "AgentVmError";
}

export interface AgentVmResult {
  vm: VmRun;
  /** the agent answered /healthz (and the script ran) */
  ready: boolean;
  /** seconds from the agent's start to its first /healthz answer, as the guest counted them */
  readySeconds: number | undefined;
  checks: Map<string, AgentVmCheck>;
  /** emit_file / emit_status / emit_explain / note payloads, and the harness's own: "explain", "status", "events", "agent-log" */
  files: Map<string, string | undefined>;
  /** `ward policy explain -o json` of every policy, from the guest, after the script */
  explain: unknown;
  /** `ward status -o json` (GET /v1/status) from the guest, after the script */
  status: unknown;
  /** the export file's events */
  events: Record<string, unknown>[];
  agentLog: string;
  /** the agent's exit status after SIGTERM */
  agentExit: number | undefined;
  /** A check's record; throws with the agent's log and the console tail when it is missing. */
  check(name: string): AgentVmCheck;
  /** A payload by name, parsed as JSON. */
  json(name: string): unknown;
}

const NAME = /^[A-Za-z0-9._-]+$/;

/** The shell functions the test's script calls (see the header). */
function prelude(): string {
  return `
b64() { gzip -c "$1" | base64 -w 0; }
check() {
  _n=$1; shift
  ( exec "$@" ) </dev/null >/tmp/.check.out 2>/tmp/.check.err
  _s=$?
  echo '${VM_MARKER}{"kind":"check","name":"'"$_n"'","status":'"$_s"',"stdout":"'"$(b64 /tmp/.check.out)"'","stderr":"'"$(b64 /tmp/.check.err)"'"}'
}
emit_file() {
  if [ -e "$2" ]; then
    echo '${VM_MARKER}{"kind":"file","name":"'"$1"'","data":"'"$(b64 "$2")"'"}'
  else
    echo '${VM_MARKER}{"kind":"file","name":"'"$1"'","missing":true}'
  fi
}
note() { printf '%s' "$2" > /tmp/.note; emit_file "$1" /tmp/.note; }
emit_status() { WARD_STATE_FILE=${GUEST.stateFile} ${GUEST.ward} status -o json >/tmp/.status.json 2>&1; emit_file "$1" /tmp/.status.json; }
emit_explain() { _n=$1; shift; ${GUEST.ward} policy explain -o json "$@" >/tmp/.explain.json 2>&1; emit_file "$_n" /tmp/.explain.json; }
`;
}

/** The guest's command after /init's mounts: prelude, setup, agent, script, records, stop. */
function runScript(spec: AgentVmSpec): string {
  const policyArgs = Object.keys(spec.policies).map((f) => `--policy ${GUEST.policyDir}/${f}`).join(" ");
  const extra = (spec.agentArgs ?? []).map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return `#!/bin/busybox sh
export PATH=/usr/bin:/bin:/sbin HOME=/root
mkdir -p /root /run/ward /sys/fs/cgroup
ip link set lo up
hostname ward-vm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
${prelude()}
( . /ward/setup.sh ) >/tmp/ward-setup.log 2>&1
emit_file setup-log /tmp/ward-setup.log
${GUEST.ward} agent --listen ${GUEST.listen} --token-file ${GUEST.tokenFile} --state-file ${GUEST.stateFile} --export-file ${GUEST.exportFile} --bpf-dir ${GUEST.bpfDir} ${policyArgs} ${extra} >${GUEST.agentLog} 2>&1 &
agent=$!
ready=false
i=0
while [ $i -lt 600 ]; do
  if wget -q -O /dev/null http://${GUEST.listen}/healthz 2>/dev/null; then ready=true; break; fi
  kill -0 $agent 2>/dev/null || break
  sleep 0.2
  i=$((i + 1))
done
echo '${VM_MARKER}{"kind":"agent-ready","ready":'$ready',"tenths":'$((i * 2))'}'
if [ $ready = true ]; then
  ( . /ward/script.sh )
  emit_explain explain ${GUEST.policyDir}/*
  emit_status status
fi
kill -TERM $agent 2>/dev/null
wait $agent
echo '${VM_MARKER}{"kind":"agent-exit","status":'$?'}'
emit_file events ${GUEST.exportFile}
emit_file agent-log ${GUEST.agentLog}
`;
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([k, v]) => [v, k]));

function decode(b64: string): string {
  return b64 === "" ? "" : gunzipSync(Buffer.from(b64, "base64")).toString("utf8");
}

function toCheck(r: VmRecord): AgentVmCheck {
  const st = Number(r.status);
  const bySignal = st > 128;
  return {
    name: String(r.name),
    status: bySignal ? null : st,
    signal: bySignal ? (SIGNAL_NAMES.get(st - 128) ?? `signal ${st - 128}`) : null,
    stdout: decode(String(r.stdout ?? "")),
    stderr: decode(String(r.stderr ?? "")),
  };
}

function parseJson(text: string | undefined, what: string): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AgentVmError(`${what} is not JSON:\n${text.slice(0, 2000)}`);
  }
}

export function parseAgentRun(vm: VmRun): AgentVmResult {
  const checks = new Map<string, AgentVmCheck>();
  const files = new Map<string, string | undefined>();
  let ready = false;
  let readySeconds: number | undefined;
  let agentExit: number | undefined;
  for (const r of vm.records) {
    if (r.kind === "check") checks.set(String(r.name), toCheck(r));
    else if (r.kind === "file") files.set(String(r.name), r.missing === true ? undefined : decode(String(r.data ?? "")));
    else if (r.kind === "agent-ready") {
      ready = r.ready === true;
      readySeconds = ready ? Number(r.tenths) / 10 : undefined;
    } else if (r.kind === "agent-exit") agentExit = Number(r.status);
  }
  const agentLog = files.get("agent-log") ?? "";
  const context = (): string => `\nagent log:\n${agentLog.slice(-4000)}\nconsole tail:\n${vm.console.slice(-3000)}`;
  const events = (files.get("events") ?? "")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => parseJson(l, "an export line") as Record<string, unknown>);
  const status = files.get("status");
  const explain = files.get("explain");
  return {
    vm,
    ready,
    readySeconds,
    checks,
    files,
    explain: ready ? parseJson(explain, "ward policy explain -o json") : undefined,
    status: ready ? parseJson(status, "ward status -o json") : undefined,
    events,
    agentLog,
    agentExit,
    check(name) {
      const c = checks.get(name);
      if (c === undefined) throw new AgentVmError(`no record for check ${name} (agent ready: ${ready})${context()}`);
      return c;
    },
    json(name) {
      if (!files.has(name)) throw new AgentVmError(`no record ${name}${context()}`);
      return parseJson(files.get(name), name);
    },
  };
}

function compileHelper(source: string, out: string): void {
  const cc = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", out, source], { encoding: "utf8" });
  if (cc.status !== 0) throw new AgentVmError(`cc ${source} failed: ${cc.stderr}`);
}

/** Builds (or reuses) dist/ward, assembles the initramfs, boots it once and parses what the guest said. */
export async function runAgentVm(spec: AgentVmSpec): Promise<AgentVmResult> {
  for (const f of Object.keys(spec.policies)) if (!NAME.test(f)) throw new AgentVmError(`policy file name ${JSON.stringify(f)}: use [A-Za-z0-9._-]`);
  ensureVmTools();
  ensureSystemPackages(HELPER_TOOLCHAIN);
  const kernel = ensureVmKernel();
  const ward = await ensureBinary();
  const work = mkdtempSync(join(vmCacheDir(), "agent-"));
  try {
    const helpers: InitramfsEntry[] = [];
    const all = [{ source: join(import.meta.dir, "..", "kernel", "guard-helper.c"), path: GUEST.guardHelper }, ...(spec.helpers ?? [])];
    all.forEach((h, i) => {
      const out = join(work, `helper-${i}`);
      compileHelper(h.source, out);
      helpers.push({ path: h.path, file: out, mode: 0o755 });
    });
    const entries: InitramfsEntry[] = [
      ...busyboxEntries(),
      ...binaryWithLibs(ward, GUEST.ward),
      ...helpers,
      ...Object.entries(spec.policies).map(([f, yaml]) => ({ path: `${GUEST.policyDir}/${f}`, data: yaml })),
      ...(spec.files ?? []),
      { path: "/ward/setup.sh", data: spec.setup ?? ":\n" },
      { path: "/ward/script.sh", data: spec.script },
      { path: "/ward/run.sh", data: runScript(spec), mode: 0o755 },
      { path: "/init", data: initScript("/ward/run.sh"), mode: 0o755 },
    ];
    const initrd = buildInitramfs(entries, join(work, "initramfs.cpio.gz"));
    const vm = await runVm({ kernel, initramfs: initrd, timeoutMs: spec.timeoutMs, memoryMb: spec.memoryMb ?? 2048 });
    return parseAgentRun(vm);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
