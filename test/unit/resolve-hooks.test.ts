// Hook resolution (src/sensors/resolve.ts) against two described kernels: this host kind
// (6.18, no kprobes, BPF LSM refused) and an LSM-capable kernel with kprobes (6.1 cloud).
// Every hook of the Tetragon corpus gets a mechanism or a rejection naming the missing
// feature and a substitute; the talk's policies get the mechanism issue 5 asks for.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { resolvePolicy, syscallName, type GenericAttach, type HookFeatures, type ResolvedHook, type RejectedHook } from "../../src/sensors/resolve.ts";
import { policyFrom } from "./engine-helpers.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";

const SYSCALLS: Record<string, number> = { openat: 257, init_module: 175, finit_module: 313, dup: 32, dup2: 33, linkat: 265, setuid: 105 };
const syscallNumber = (n: string): number | undefined => SYSCALLS[n] ?? (n === "nosuch" ? undefined : 999);
const HERE: HookFeatures = { release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber };
const LSM: HookFeatures = { release: "6.1.0-30-cloud-amd64", bpfLsm: true, kprobes: true, overrideReturn: true, tracepoint: () => true, syscallNumber };

function policy(spec: string, name = "p"): string {
  return `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

const SECURE = secureOpenPolicy({ name: "p", file: "/my/extremely/secret/file", allowed: "/my/cat" });

const OPENAT = policy(`  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["/my/extremely/secret/file"]
      matchActions:
      - action: Sigkill
`);

const MODULES = (action: string) => policy(`  kprobes:
  - call: sys_init_module
    syscall: true
    selectors:
    - matchActions:
      - action: ${action}
  - call: sys_finit_module
    syscall: true
    selectors:
    - matchActions:
      - action: ${action}
`);

function ok(h: unknown): ResolvedHook {
  const r = h as ResolvedHook | RejectedHook;
  if (!r.ok) throw new Error(`expected a mechanism, got rejection: ${r.reason}`);
  return r;
}

function rejected(h: unknown): string {
  const r = h as ResolvedHook | RejectedHook;
  if (r.ok) throw new Error(`expected a rejection, got ${r.mechanism}`);
  return r.reason;
}

describe("the talk's policies", () => {
  test("security_file_open + file arg + matchBinaries NotIn + Sigkill: the file guard substitute here, BPF LSM there", () => {
    const here = ok(resolvePolicy(policyFrom(SECURE), HERE).hooks[0]);
    expect(here.backend).toBe("guard");
    expect(here.event).toBe("process_kprobe");
    expect(here.functionName).toBe("security_file_open");
    expect(here.guard?.programs).toEqual(["guard_sys_exit", "guard_exec", "guard_io_uring"]);
    expect(here.guard?.rules).toEqual([{ selector: 0, action: "kill", post: true, actionNames: ["Sigkill"], binaries: { op: "NotIn", paths: ["/my/cat"] }, files: ["/my/extremely/secret/file"], hooks: ["open", "exec", "io_uring"] }]);
    expect(here.mechanism).toContain("the exit of open, openat, openat2, creat, open_by_handle_at");
    // Where the host says where the check sits, the mechanism carries it.
    const placed = ok(resolvePolicy(policyFrom(SECURE), { ...HERE, guardOpenExit: () => "here on tp_btf/sys_exit, at every syscall's exit (32-bit processes may run here)" }).hooks[0]);
    expect(placed.mechanism).toContain("(here on tp_btf/sys_exit, at every syscall's exit (32-bit processes may run here))");
    expect(here.actions[0]?.honored).toContain("SIGKILL");
    expect(here.bypasses).toEqual([]); // io_uring is exact on 6.18 (measured)
    expect(here.limits.join("\n")).toContain("io_uring");
    const lsm = ok(resolvePolicy(policyFrom(SECURE), LSM).hooks[0]);
    expect(lsm.guard?.programs).toEqual(["guard_lsm_open"]);
    expect(lsm.guard?.rules[0]?.hooks).toEqual(["lsm_open"]);
    expect(lsm.mechanism).toContain("lsm/file_open");
  });

  test("io_uring on a kernel where linked requests leak: the bypass and its remedy are named", () => {
    const old = ok(resolvePolicy(policyFrom(SECURE), { ...HERE, release: "6.1.0" }).hooks[0]);
    expect(old.bypasses.join("\n")).toMatch(/io_uring.*io_uring_setup/);
  });

  test("sys_openat (syscall: true) runs on tp_btf/sys_enter filtered on its number, with Tetragon's function name", () => {
    const h = ok(resolvePolicy(policyFrom(OPENAT), HERE).hooks[0]);
    expect(h.backend).toBe("generic");
    expect(h.functionName).toBe("__x64_sys_openat");
    expect(h.generic).toEqual([{ kind: "syscall", subsystem: "raw_syscalls", event: "sys_enter", raw: false, syscall: "openat", withExit: false }]);
    expect(h.mechanism).toContain("tp_btf/sys_enter filtered on syscall 257 (openat)");
    expect(h.bypasses.join("\n")).toMatch(/relative paths.*openat2.*io_uring.*remedy: security_file_open/);
  });

  test("Override on security_file_open is refused here with the reason and the substitute; honored as EPERM with BPF LSM", () => {
    const p = policyFrom(SECURE.replace("action: Sigkill", "action: Override\n        argError: -1"));
    const reason = rejected(resolvePolicy(p, HERE).hooks[0]);
    expect(reason).toContain("Override needs BPF LSM or fmod_ret");
    expect(reason).toContain("use action Sigkill");
    const r = resolvePolicy(p, HERE);
    expect(r.errors[0]).toStartWith("spec.kprobes[0] (security_file_open): ");
    const lsm = ok(resolvePolicy(p, LSM).hooks[0]);
    expect(lsm.guard?.rules[0]?.action).toBe("deny");
    expect(lsm.actions[0]?.honored).toContain("EPERM");
  });

  test("monitor mode turns Override and Sigkill into posted events, so nothing needs enforcing features", () => {
    const p = policyFrom(SECURE.replace("action: Sigkill", "action: Override\n        argError: -1"));
    const h = ok(resolvePolicy(p, HERE, "monitor").hooks[0]);
    expect(h.guard?.rules[0]?.action).toBe("report");
    expect(h.actions[0]?.honored).toContain("monitor mode");
  });

  test("module loading: Sigkill runs at the syscall tracepoint saying the module may still load; Override is refused here, denied with BPF LSM", () => {
    const r = resolvePolicy(policyFrom(MODULES("Sigkill")), HERE);
    expect(r.errors).toEqual([]);
    const [init, finit] = r.hooks.map(ok);
    expect(init?.backend).toBe("generic");
    expect(finit?.generic?.[0]?.syscall).toBe("finit_module");
    expect(finit?.functionName).toBe("__x64_sys_finit_module");
    expect(init?.actions[0]?.honored).toContain("the module may still load");
    expect(init?.limits.join("\n")).toContain("still loads");
    const over = rejected(resolvePolicy(policyFrom(MODULES("Override\n        argError: -1")), HERE).hooks[1]);
    expect(over).toContain("Override needs BPF LSM");
    expect(over).toContain("CONFIG_KPROBES off");
    const lsm = resolvePolicy(policyFrom(MODULES("Override\n        argError: -1")), LSM).hooks.map(ok);
    expect(lsm[0]?.backend).toBe("guard");
    expect(lsm[0]?.guard?.programs).toEqual(["guard_lsm_read_file", "guard_lsm_load_data"]);
    expect(lsm[0]?.guard?.rules[0]?.action).toBe("deny");
  });

  test("with BPF LSM, two module hooks with different selectors cannot share the module guard's one rule", () => {
    const text = MODULES("Sigkill").replace(/(sys_finit_module\n    syscall: true\n    selectors:\n    - matchActions:\n      - action: )Sigkill/, "$1Post");
    const r = resolvePolicy(policyFrom(text), LSM);
    expect(rejected(r.hooks[1])).toContain("one rule for init_module and finit_module");
  });
});

describe("rejections name the missing feature and a substitute", () => {
  test("a kernel function kprobe: no kprobes here", () => {
    const p = policyFrom(policy(`  kprobes:\n  - call: fd_install\n    syscall: false\n    args:\n    - index: 1\n      type: file\n`));
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toBe(
      "hook fd_install cannot run on this kernel: no kprobes (CONFIG_KPROBES off); substitute: security_file_open with a file argument (decided on the opened file: Equal files by the file guard, by inode; prefixes and other matchers at the open-family syscall exit, by its resolved path)",
    );
  });

  test("Override on a syscall: bpf_override_return is missing", () => {
    const p = policyFrom(OPENAT.replace("action: Sigkill", "action: Override\n        argError: -1"));
    const reason = rejected(resolvePolicy(p, HERE).hooks[0]);
    expect(reason).toContain("bpf_override_return");
    expect(reason).toContain("substitute: Sigkill");
  });

  test("security_socket_connect, security_path_*, kernel_module_request", () => {
    const sock = policyFrom(policy(`  kprobes:\n  - call: security_socket_connect\n    syscall: false\n    args:\n    - index: 1\n      type: sockaddr\n`));
    // on the cgroup connect hooks, which see inet sockets only: a hook matching every connect is refused
    expect(rejected(resolvePolicy(sock, HERE).hooks[0])).toMatch(/no selectors: every connect would match.*non-inet sockets.*add matchArgs Family \[AF_INET, AF_INET6\]/);
    const path = policyFrom(policy(`  kprobes:\n  - call: security_path_unlink\n    syscall: false\n    args:\n    - index: 0\n      type: path\n`));
    expect(rejected(resolvePolicy(path, HERE).hooks[0])).toMatch(/security_path_unlink cannot run on this kernel: no BPF LSM.*substitute: /);
    const req = policyFrom(policy(`  kprobes:\n  - call: security_kernel_module_request\n    syscall: false\n    args:\n    - index: 0\n      type: string\n`));
    expect(rejected(resolvePolicy(req, HERE).hooks[0])).toMatch(/substitute: kprobes on sys_finit_module and sys_init_module/);
  });

  test("file rules the guard cannot express go to the generic sensor at the open-family syscall exit; its own rejections still hold", () => {
    const ret = policyFrom(SECURE.replace("operator: Equal", "operator: Prefix").replace("    - index: 0\n      type: file\n", "    - index: 0\n      type: file\n    returnArg:\n      index: 0\n      type: int\n    return: true\n"));
    expect(rejected(resolvePolicy(ret, HERE).hooks[0])).toContain("sees the syscall's return, not the LSM hook's");
    const two = policyFrom(SECURE.replace("operator: Equal", "operator: Prefix").replace("    - index: 0\n      type: file\n", "    - index: 0\n      type: file\n    - index: 1\n      type: int\n"));
    expect(rejected(resolvePolicy(two, HERE).hooks[0])).toContain("security_file_open has one argument");
  });

  test("matchArgs on a kernel object a syscall entry does not have (sock) is refused with a substitute; an fd is read as its path", () => {
    const p = policyFrom(policy(`  kprobes:\n  - call: sys_connect\n    syscall: true\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Family\n        values: ["AF_INET"]\n`));
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toContain("a syscall entry has no sock to read");
    const fd = policyFrom(policy(`  kprobes:\n  - call: sys_read\n    syscall: true\n    args:\n    - index: 0\n      type: fd\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: ["/etc/passwd"]\n`));
    expect(ok(resolvePolicy(fd, HERE).hooks[0]).backend).toBe("generic");
  });

  test("an unknown syscall, a missing tracefs event", () => {
    const p = policyFrom(OPENAT.replace("sys_openat", "sys_nosuch"));
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toContain("nosuch is not a known x86_64 syscall");
    const tp = policyFrom(policy(`  tracepoints:\n  - subsystem: nosuch\n    event: thing\n`));
    expect(rejected(resolvePolicy(tp, { ...HERE, tracepoint: () => false }).hooks[0])).toContain("tracepoint nosuch/thing does not exist");
  });
});

describe("security_file_open rules beyond the file guard (no BPF LSM): generic sensor at the open-family syscall exit", () => {
  const PIDS = policy(`  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["/my/extremely/secret/file"]
      matchPIDs:
      - operator: NotIn
        followForks: true
        isNamespacePID: true
        values: [1]
      matchActions:
      - action: Sigkill
`);
  const EXITS: GenericAttach[] = ["open", "openat", "openat2", "creat", "open_by_handle_at"].map((syscall) => ({ kind: "syscall" as const, subsystem: "raw_syscalls", event: "sys_exit", raw: false, syscall, withExit: true, openedFd: true }));

  test("the talk's matchPIDs policy: every open-family exit, file from the returned fd, Sigkill before return, honest limits", () => {
    const r = resolvePolicy(policyFrom(PIDS), HERE);
    expect(r.errors).toEqual([]);
    const h = ok(r.hooks[0]);
    expect(h.backend).toBe("generic");
    expect(h.event).toBe("process_kprobe");
    expect(h.functionName).toBe("security_file_open");
    expect(h.mechanism).toStartWith("generic: open-family syscall exit, file from the returned fd");
    expect(h.generic).toEqual(EXITS);
    expect(h.guard).toBeUndefined();
    expect(h.actions).toHaveLength(1);
    expect(h.actions[0]?.action).toBe("Sigkill");
    expect(h.actions[0]?.honored).toContain("SIGKILL");
    expect(h.actions[0]?.honored).toContain("before it returns to user space");
    // Where the host says where the open-family exit sits (the generic sensor makes the file guard's choice), it is named.
    const placed = ok(resolvePolicy(policyFrom(PIDS), { ...HERE, guardOpenExit: () => "here on the per-syscall exit tracepoints (syscalls/sys_exit_openat)" }).hooks[0]);
    expect(placed.mechanism).toContain("open_by_handle_at when they return an fd; here on the per-syscall exit tracepoints (syscalls/sys_exit_openat);");
    expect(placed.actions[0]?.honored).toContain("opened the file; here on the per-syscall exit tracepoints (syscalls/sys_exit_openat), before it returns");
    const limits = h.limits.join("\n");
    expect(limits).toContain("path-based");
    expect(limits).toContain("a hardlink is matched by its own path");
    expect(limits).toContain("O_PATH");
    const bypasses = h.bypasses.join("\n");
    expect(bypasses).toMatch(/io_uring.*bypasses this rule.*remedy: .*io_uring_setup.*Equal.*file guard/);
    // monitor mode: the same mechanism, the kill posted instead
    expect(ok(resolvePolicy(policyFrom(PIDS), HERE, "monitor").hooks[0]).actions[0]?.honored).toContain("monitor mode");
  });

  test("Prefix, Postfix, matchNamespaces, matchCapabilities, no selectors, lsmhooks: generic here; the guard keeps Equal + matchBinaries", () => {
    const prefix = policyFrom(SECURE.replace("operator: Equal", "operator: Prefix"));
    expect(ok(resolvePolicy(prefix, HERE).hooks[0]).generic).toEqual(EXITS);
    const postfix = policyFrom(SECURE.replace("operator: Equal", "operator: Postfix"));
    expect(ok(resolvePolicy(postfix, HERE).hooks[0]).backend).toBe("generic");
    const ns = policyFrom(SECURE.replace("      matchBinaries:", "      matchNamespaces:\n      - namespace: Pid\n        operator: NotIn\n        values: [host_ns]\n      matchBinaries:"));
    expect(ok(resolvePolicy(ns, HERE).hooks[0]).backend).toBe("generic");
    const caps = policyFrom(SECURE.replace("      matchBinaries:", "      matchCapabilities:\n      - type: Effective\n        operator: In\n        values: [CAP_SYS_ADMIN]\n      matchBinaries:"));
    expect(ok(resolvePolicy(caps, HERE).hooks[0]).backend).toBe("generic");
    const none = policyFrom(policy(`  kprobes:\n  - call: security_file_open\n    syscall: false\n    args:\n    - index: 0\n      type: file\n`));
    expect(ok(resolvePolicy(none, HERE).hooks[0]).backend).toBe("generic");
    const lsmhook = policyFrom(policy(`  lsmhooks:\n  - hook: file_open\n    args:\n    - index: 0\n      type: file\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: ["/my/"]\n`));
    const l = ok(resolvePolicy(lsmhook, HERE).hooks[0]);
    expect(l.backend).toBe("generic");
    expect(l.event).toBe("process_lsm");
    // What the guard expresses stays with the guard (inode-exact, io_uring and exec covered).
    expect(ok(resolvePolicy(policyFrom(SECURE), HERE).hooks[0]).backend).toBe("guard");
    // With BPF LSM nothing changes: the LSM guard (and its own refusal of prefixes).
    expect(rejected(resolvePolicy(prefix, LSM).hooks[0])).toContain("matchArgs Prefix on a file");
  });

  test("actions the generic sensor cannot take are refused with the reason", () => {
    const over = policyFrom(PIDS.replace("action: Sigkill", "action: Override\n        argError: -1"));
    expect(rejected(resolvePolicy(over, HERE).hooks[0])).toContain("Override needs bpf_override_return");
    const relative = policyFrom(PIDS.replace('values: ["/my/extremely/secret/file"]', 'values: ["secret/file"]').replace("operator: Equal", "operator: Postfix"));
    expect(ok(resolvePolicy(relative, HERE).hooks[0]).backend).toBe("generic");
  });
});

test("list:NAME of syscalls: one syscall tracepoint per entry; generated_syscalls: every syscall; ftrace lists need kprobes", () => {
  const list = policyFrom(policy(`  lists:\n  - name: dups\n    type: syscalls\n    values: ["sys_dup", "sys_dup2"]\n  kprobes:\n  - call: "list:dups"\n`));
  const h = ok(resolvePolicy(list, HERE).hooks[0]);
  expect(h.generic?.map((g) => g.syscall)).toEqual(["dup", "dup2"]);
  const all = policyFrom(policy(`  lists:\n  - name: all\n    type: generated_syscalls\n  kprobes:\n  - call: "list:all"\n`));
  expect(ok(resolvePolicy(all, HERE).hooks[0]).generic).toEqual([{ kind: "syscall", subsystem: "raw_syscalls", event: "sys_enter", raw: false, syscall: "*", withExit: false }]);
  const ftrace = policyFrom(policy(`  lists:\n  - name: k\n    type: generated_ftrace\n    pattern: "^ksys_*"\n  kprobes:\n  - call: "list:k"\n`));
  expect(rejected(resolvePolicy(ftrace, HERE).hooks[0])).toContain("need kprobes");
});

test("syscall names: sys_X, __x64_sys_X; not 32-bit or kernel functions", () => {
  expect(syscallName("sys_openat")).toBe("openat");
  expect(syscallName("__x64_sys_finit_module")).toBe("finit_module");
  expect(syscallName("__ia32_sys_openat")).toBeUndefined();
  expect(syscallName("fd_install")).toBeUndefined();
});

describe("the Tetragon corpus: every hook gets a mechanism or a reasoned rejection", () => {
  const dir = join(import.meta.dir, "..", "fixtures", "tetragon-policies");
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  for (const [kernel, f] of [["this kernel", HERE], ["an LSM kernel with kprobes", LSM]] as const) {
    test(`on ${kernel}`, () => {
      let hooks = 0;
      let resolved = 0;
      for (const file of files) {
        const r = validatePolicyText(readFileSync(join(dir, file), "utf8"), file);
        for (const lp of r.policies) {
          for (const h of resolvePolicy(lp.policy, f).hooks) {
            hooks++;
            if (h.ok) {
              resolved++;
              expect(h.mechanism.length).toBeGreaterThan(10);
              expect(h.actions.length).toBeGreaterThan(0);
              for (const a of h.actions) expect(a.honored.length).toBeGreaterThan(10);
            } else {
              // The reason names what is missing; kernel-feature rejections also name a substitute.
              expect(h.reason.length).toBeGreaterThan(20);
              if (/cannot run on this kernel/.test(h.reason)) expect(h.reason).toContain("substitute: ");
            }
          }
        }
      }
      expect(hooks).toBeGreaterThan(100);
      expect(resolved).toBeGreaterThan(10);
    });
  }
});

describe("spec.uprobes: the generic sensor's gen_uprobe where the uprobe PMU exists", () => {
  const offsets: Record<string, number> = { readline: 0xd4f20, main: 0x31a40 };
  const UP: HookFeatures = {
    ...HERE,
    uprobes: {
      fileOffset(path, t) {
        if (path !== "/bin/bash") throw new Error(`read ${path}: no such file`);
        if ("symbol" in t) {
          const o = offsets[t.symbol];
          if (o === undefined) throw new Error(`resolve ${t.symbol} in ${path}: no such function symbol`);
          return o;
        }
        return "offset" in t ? t.offset : t.addr - 0x1000;
      },
      digest: (_p, algo) => `${algo}:${"ab".repeat(32)}`,
    },
  };
  const UPROBE = (extra = "", head = `    symbols: [readline, main]`) => policy(`  uprobes:
  - path: /bin/bash
${head}
    args:
    - index: 0
      type: string
${extra}`);

  test("each symbol becomes a file offset; the event is process_uprobe; Sigkill says the body never runs", () => {
    const h = ok(resolvePolicy(policyFrom(UPROBE(`    selectors:
    - matchBinaries:
      - operator: In
        values: [/bin/bash]
      matchActions:
      - action: Sigkill`)), UP).hooks[0]);
    expect(h.backend).toBe("generic");
    expect(h.event).toBe("process_uprobe");
    expect(h.generic?.[0]?.uprobe).toEqual({ path: "/bin/bash", targets: [{ symbol: "readline", offset: 0xd4f20 }, { symbol: "main", offset: 0x31a40 }] });
    expect(h.mechanism).toContain("uprobe PMU on /bin/bash at file offsets 0xd4f20 (readline), 0x31a40 (main)");
    expect(h.actions.find((a) => a.action === "Sigkill")?.honored).toContain("before the function body runs");
  });

  test("addrs go through the ELF segments, offsets are taken as file offsets", () => {
    expect(ok(resolvePolicy(policyFrom(UPROBE("", "    addrs: [0x2000]")), UP).hooks[0]).generic?.[0]?.uprobe?.targets).toEqual([{ symbol: "", offset: 0x1000 }]);
    expect(ok(resolvePolicy(policyFrom(UPROBE("", "    offsets: [4096]")), UP).hooks[0]).generic?.[0]?.uprobe?.targets).toEqual([{ symbol: "", offset: 4096 }]);
  });

  test("refused with the reason: no uprobe PMU, a missing symbol (with its position), Override, return, kernel types, a wrong digest", () => {
    expect(rejected(resolvePolicy(policyFrom(UPROBE()), HERE).hooks[0])).toContain("no uprobe PMU");
    const missing = resolvePolicy(policyFrom(UPROBE("", "    symbols: [readline, nosuch]")), UP);
    expect(missing.errors[0]).toBe("spec.uprobes[0] (/bin/bash:readline,nosuch): symbols[1]: resolve nosuch in /bin/bash: no such function symbol");
    expect(rejected(resolvePolicy(policyFrom(UPROBE(`    selectors:
    - matchActions:
      - action: Override
        argError: -1`)), UP).hooks[0])).toMatch(/Override on a uprobe cannot be honored.*substitute: Sigkill/);
    expect(rejected(resolvePolicy(policyFrom(policy(`  uprobes:
  - path: /bin/bash
    symbols: [readline]
    return: true
    returnArg:
      index: 0
      type: int
`)), UP).hooks[0])).toContain("uretprobes are not attached");
    expect(rejected(resolvePolicy(policyFrom(policy(`  uprobes:
  - path: /bin/bash
    symbols: [readline]
    args:
    - index: 0
      type: sock
`)), UP).hooks[0])).toContain("kernel object");
    expect(rejected(resolvePolicy(policyFrom(UPROBE(`    binaryDigests: ["sha256:${"f".repeat(64)}"]`)), UP).hooks[0])).toContain(`matches none of the digests (it is sha256:${"ab".repeat(32)})`);
    expect(ok(resolvePolicy(policyFrom(UPROBE(`    binaryDigests: ["sha256:${"AB".repeat(32)}"]`)), UP).hooks[0]).event).toBe("process_uprobe");
  });
});
