// The policy manager's checks that run before anything touches the kernel (a rejected hook,
// a missing file or binary, a generic hook without the generic sensor), and the event form
// of hook matches (src/events/kprobe-event.ts). Kernel behaviour is in test/e2e/enforce-*.
import { describe, expect, test } from "bun:test";
import { PolicyRejectedError, PolicyStore, formatDiagnostic, type PolicyBackend } from "../../src/agent/policy-store.ts";
import { encodeHookMatch, kprobeActionName } from "../../src/events/kprobe-event.ts";
import type { ProcessInfo } from "../../src/events/model.ts";
import { emptyCreds } from "../../src/events/process-cache.ts";
import { BootClock } from "../../src/events/time.ts";
import type { KProbeArg } from "../../src/policy/types.ts";
import { fieldSource, parseFormat, typedArg } from "../../src/sensors/generic-backend.ts";
import { PolicyManager } from "../../src/sensors/manager.ts";
import { HookResolutionError, type HookFeatures } from "../../src/sensors/resolve.ts";
import { policyFrom } from "./engine-helpers.ts";

const HERE: HookFeatures = { release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber: () => 257 };

function manager(): { m: PolicyManager; opened: number } {
  const state = { opened: 0 };
  const m = new PolicyManager({
    features: HERE,
    encode: { nodeName: "n", clock: new BootClock(0n) },
    publish: () => {},
    log: () => {},
    openGuard: () => {
      state.opened++;
      throw new Error("the kernel must not be touched in this test");
    },
  });
  return { m, get opened() { return state.opened; } } as { m: PolicyManager; opened: number };
}

const secure = (file: string, bin: string, action = "Sigkill") => policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: secure
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
        operator: Equal
        values: ["${file}"]
      matchBinaries:
      - operator: NotIn
        values: ["${bin}"]
      matchActions:
      - action: ${action}
`);

describe("policy manager: refusals before the kernel", () => {
  test("Override on security_file_open here: HookResolutionError with the reason, nothing opened", () => {
    const t = manager();
    expect(() => t.m.apply(secure("/etc/hostname", "/bin/cat", "Override\n        argError: -1"), { mode: "enforce" })).toThrow(HookResolutionError);
    try {
      t.m.apply(secure("/etc/hostname", "/bin/cat", "Override\n        argError: -1"), { mode: "enforce" });
    } catch (e) {
      expect((e as HookResolutionError).problems[0]).toContain("Override needs BPF LSM or fmod_ret");
    }
    expect(t.opened).toBe(0);
    expect(t.m.has("secure")).toBe(false);
  });

  test("a protected file that does not exist fails the apply before the guard opens", () => {
    const t = manager();
    expect(() => t.m.apply(secure("/nonexistent/secret", "/bin/cat"), { mode: "enforce" })).toThrow(/file \/nonexistent\/secret: ENOENT/);
    expect(t.opened).toBe(0);
    expect(t.m.has("secure")).toBe(false);
  });

  test("an allowed binary that does not exist is not refused here: it reaches the guard, which matches it by path", () => {
    const t = manager();
    // The guard (refused by this test's openGuard) is where the entry is matched by path and
    // watched: nothing before it rejects the policy for a missing binary any more.
    expect(() => t.m.apply(secure("/etc/hostname", "/nonexistent/cat"), { mode: "enforce" })).toThrow(/could not be attached: the kernel must not be touched/);
    expect(t.opened).toBe(1);
    expect(t.m.has("secure")).toBe(false);
  });

  test("a disabled policy reports each matchBinaries entry as applying it now would match it", () => {
    const t = manager();
    const st = t.m.apply(secure("/etc/hostname", "/nonexistent/dir/cat"), { mode: "enforce", enabled: false });
    expect(st.hooks[0]?.binaries).toEqual([{ selector: 0, op: "NotIn", entries: [{ path: "/nonexistent/dir/cat", by: "path", match: "path (not present; watching /)", watching: "/" }] }]);
    expect(st.hooks[0]?.limits.some((l) => l.startsWith("matchBinaries NotIn: while the entry is missing the path allows it"))).toBe(true);
    t.m.remove("secure");
  });

  test("an existing file reaches the guard (which this test refuses): the error is reported, nothing is kept", () => {
    const t = manager();
    expect(() => t.m.apply(secure("/etc/hostname", "/bin/cat"), { mode: "enforce" })).toThrow(/could not be attached: the kernel must not be touched/);
    expect(t.opened).toBe(1);
    expect(t.m.has("secure")).toBe(false);
  });

  test("a disabled policy is resolved (and refused) at apply, but attaches nothing", () => {
    const t = manager();
    const st = t.m.apply(secure("/etc/hostname", "/bin/cat"), { mode: "enforce", enabled: false });
    expect(st.state).toBe("disabled");
    expect(st.hooks[0]?.mechanism).toContain("file guard substitute");
    expect(t.opened).toBe(0);
    t.m.remove("secure");
    expect(t.m.has("secure")).toBe(false);
  });

  test("a generic hook without the generic sensor is refused, naming the hook", () => {
    const t = manager();
    const p = policyFrom(`apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: o\nspec:\n  kprobes:\n  - call: sys_openat\n    syscall: true\n`);
    expect(() => t.m.apply(p, { mode: "enforce" })).toThrow(/spec\.kprobes\[0\] \(sys_openat\): the generic hook sensor is not available/);
  });
});

describe("process_kprobe / process_tracepoint / process_lsm JSON", () => {
  const proc: ProcessInfo = {
    execId: "ZXhlYw==", pid: 42, tid: 43, ktime: 1_000_000_000n, binary: "/usr/bin/cat", arguments: "/secret", cwd: "/", flags: 1,
    creds: emptyCreds(), parentExecId: "cGFyZW50", ppid: 1,
  };
  const opts = { nodeName: "node1", clock: new BootClock(0n) };

  test("process_kprobe: Tetragon's field order, typed args, action name, policy name", () => {
    const j = encodeHookMatch({
      kind: "process_kprobe", time: 2_000_000_000n, process: proc, parent: undefined, functionName: "security_file_open",
      args: [{ kind: "file", path: "/secret" }, { kind: "int", value: -100 }, { kind: "size", value: 2n ** 40n }, { kind: "string", value: "x", label: "name" }],
      ret: { kind: "int", value: 0 }, action: "Sigkill", policyName: "secure", tags: ["t1"],
    }, opts);
    expect(Object.keys(j)).toEqual(["process_kprobe", "node_name", "time"]);
    const body = j.process_kprobe as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(["process", "function_name", "args", "return", "action", "policy_name", "tags"]);
    expect(body.args).toEqual([{ file_arg: { path: "/secret" } }, { int_arg: -100 }, { size_arg: "1099511627776" }, { string_arg: "x", label: "name" }]);
    expect(body.action).toBe("KPROBE_ACTION_SIGKILL");
    expect(body.policy_name).toBe("secure");
    expect((body.process as Record<string, unknown>).binary).toBe("/usr/bin/cat");
    expect((body.process as Record<string, unknown>).tid).toBe(43);
    expect(j.time).toBe("1970-01-01T00:00:02Z");
  });

  test("process_tracepoint and process_lsm keep their own field order", () => {
    const tp = encodeHookMatch({ kind: "process_tracepoint", time: 0n, process: proc, parent: proc, subsys: "syscalls", event: "sys_enter_openat", args: [{ kind: "syscall_id", id: 257, abi: "x64" }], action: "Post", policyName: "p" }, opts);
    expect(Object.keys(tp.process_tracepoint as object)).toEqual(["process", "parent", "subsys", "event", "args", "policy_name", "action"]);
    const lsm = encodeHookMatch({ kind: "process_lsm", time: 0n, process: proc, parent: undefined, functionName: "bprm_check_security", args: [{ kind: "linux_binprm", path: "/bin/x" }], action: "Override", policyName: "p", message: "m" }, opts);
    expect(Object.keys(lsm.process_lsm as object)).toEqual(["process", "function_name", "policy_name", "message", "args", "action"]);
    expect((lsm.process_lsm as Record<string, unknown>).args).toEqual([{ linux_binprm_arg: { path: "/bin/x" } }]);
    expect(kprobeActionName("NoPost")).toBe("KPROBE_ACTION_NOPOST");
  });
});

describe("generic backend helpers: tracefs format and typed arguments", () => {
  const FORMAT = `name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] comm;\toffset:32;\tsize:4;\tsigned:0;
`;

  test("format fields by Tetragon's index (common fields included); user pointers of syscalls/ events", () => {
    const f = parseFormat(FORMAT);
    expect(f.map((x) => x.name)).toEqual(["common_type", "common_flags", "common_preempt_count", "common_pid", "__syscall_nr", "dfd", "filename", "comm"]);
    expect(fieldSource(f, 6, "syscalls")).toEqual({ from: "tp-field", offset: 24, size: 8, user: true });
    expect(fieldSource(f, 4, "syscalls")).toEqual({ from: "tp-field", offset: 8, size: 4, signed: true });
    expect(fieldSource(f, 7, "sched")).toEqual({ from: "tp-dataloc", offset: 32 });
    expect(() => fieldSource(f, 9, "syscalls")).toThrow(/past the format's 8 fields/);
  });

  test("record arguments become the variant the policy declared", () => {
    const decl = (type: string, label = "") => ({ index: 0, type, resolve: "", sizeArgIndex: 0, returnCopy: false, maxData: false, label }) as KProbeArg;
    expect(typedArg({ slot: 0, type: "s64", state: "int", int: 0xffffff9cn }, decl("int"))).toEqual({ kind: "int", value: -100 });
    expect(typedArg({ slot: 0, type: "u64", state: "int", int: 5n }, decl("size_t"))).toEqual({ kind: "size", value: 5n });
    expect(typedArg({ slot: 0, type: "string", state: "bytes", int: 0n, bytes: new TextEncoder().encode("/etc\0junk") }, decl("string", "path"))).toEqual({ kind: "string", value: "/etc", label: "path" });
    expect(typedArg({ slot: 0, type: "u64", state: "int", int: 0x80000003n }, decl("syscall64"))).toEqual({ kind: "syscall_id", id: 3, abi: "i386" });
    expect(typedArg({ slot: 0, type: "file", state: "bytes", int: BigInt(0o100644), bytes: new TextEncoder().encode("/etc/passwd") }, decl("fd"))).toEqual({ kind: "file", path: "/etc/passwd", permission: "-rw-r--r--" });
  });
});

describe("policy store through a backend: all or nothing", () => {
  const parse = (text: string) => ({ ok: true as const, policies: text.split(",").map((name) => ({ name, kind: "TracingPolicy", document: {} })) });
  function fake(refuse: string) {
    const attached = new Set<string>();
    const backend: PolicyBackend = {
      apply(r) {
        if (r.name === refuse) throw new Error(`policy ${r.name} cannot be applied on this kernel:\n  spec.kprobes[0] (x): no kprobes`);
        attached.add(r.name);
      },
      remove: (n) => void attached.delete(n),
      setEnabled(n, enabled) {
        if (n === "stuck" && enabled) throw new Error("cannot");
      },
      setMode() {},
      info: (n) => ({ state: attached.has(n) ? "enforcing" : "disabled", hooks: [] }),
      close: () => attached.clear(),
    };
    return { backend, attached };
  }

  test("a refused policy in a batch leaves none of the batch attached or stored", () => {
    const store = new PolicyStore(parse);
    const f = fake("bad");
    store.attachBackend(f.backend);
    expect(() => store.add("a,bad,c", { source: "api", file: "<request>" })).toThrow(PolicyRejectedError);
    expect(f.attached.size).toBe(0);
    expect(store.list()).toEqual([]);
    store.add("a", { source: "api", file: "<request>" });
    expect(store.info("a").state).toBe("enforcing");
  });

  test("attachBackend at start: one refusal removes the ones already applied and keeps no backend", () => {
    const store = new PolicyStore(parse);
    store.add("a,bad", { source: "file:/p.yaml", file: "/p.yaml" });
    const f = fake("bad");
    try {
      store.attachBackend(f.backend);
      throw new Error("attachBackend should have thrown");
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyRejectedError);
      // the problem line becomes path + reason (the hook's name kept: the reason does not say it)
      expect((e as PolicyRejectedError).errors).toEqual([
        { file: "/p.yaml", message: "policy bad cannot be applied on this kernel:" },
        { file: "/p.yaml", path: "spec.kprobes[0]", message: "x: no kprobes" },
      ]);
    }
    expect(f.attached.size).toBe(0);
    expect(store.info("a").state).toBe("loaded (not enforced: hook sensors not built yet)");
  });

  test("attachBackend at start: every refused policy is reported with file, line:col and path, and none stays attached", () => {
    const at = (line: number) => new Map([["metadata.name", { line, column: 9 }], ["spec.kprobes[0]", { line: line + 3, column: 5 }]]);
    const positioned = (text: string) => ({ ok: true as const, policies: text.split(",").map((name, i) => ({ name, kind: "TracingPolicy", document: {}, positions: at(4 + 20 * i) })) });
    const store = new PolicyStore(positioned);
    store.addAll([
      { text: "bad", source: "file:/one.yaml", file: "/one.yaml" },
      { text: "good,bad2", source: "file:/two.yaml", file: "/two.yaml" },
    ]);
    const attached = new Set<string>();
    const backend: PolicyBackend = {
      apply(r) {
        if (r.name.startsWith("bad")) throw new Error(`policy ${r.name} cannot be applied on this kernel:\n  spec.kprobes[0] (x): hook x cannot run here`);
        attached.add(r.name);
      },
      remove: (n) => void attached.delete(n),
      setEnabled() {},
      setMode() {},
      info: () => ({ state: "enforcing", hooks: [] }),
      close: () => attached.clear(),
    };
    let err: unknown;
    try {
      store.attachBackend(backend);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyRejectedError);
    expect((err as PolicyRejectedError).errors.map(formatDiagnostic)).toEqual([
      "/one.yaml:4:9: policy bad cannot be applied on this kernel:",
      "/one.yaml:7:5: spec.kprobes[0]: hook x cannot run here",
      "/two.yaml:24:9: policy bad2 cannot be applied on this kernel:",
      "/two.yaml:27:5: spec.kprobes[0]: hook x cannot run here",
    ]);
    expect(attached.size).toBe(0); // "good" was applied, then removed again
  });

  test("a refused enable leaves the policy as it was", () => {
    const store = new PolicyStore(parse);
    store.attachBackend(fake("none").backend);
    store.add("stuck", { source: "api", file: "<request>" });
    store.setEnabled("stuck", false);
    expect(() => store.setEnabled("stuck", true)).toThrow(PolicyRejectedError);
    expect(store.get("stuck")?.enabled).toBe(false);
  });
});
