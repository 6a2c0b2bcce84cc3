// Semantic rules over a structurally valid policy: argument indexes, operator
// vs. argument type, value formats, per-selector limits, action parameters,
// list references, hook-kind restrictions. Mirrors what Tetragon checks when
// it loads a policy (pkg/selectors, pkg/sensors/tracing), stated in one place
// so a policy is rejected before anything reaches the kernel.
//
// Subtrees that already failed the structural walk are "tainted" and skipped,
// so rules never look at half-built objects and never report noise on top of
// a type error.
import type {
  ActionSelector, ArgSelector, ArgType, HookKind, KProbeArg, KProbeSelector, KProbeSpec, LabelSelector,
  ListSpec, Severity, TracingPolicy,
} from "./types.ts";
import { CAP_MASK_TYPES, INLINE_INT_OPERATORS, INT_WIDTH, operatorsFor, VALUELESS_OPERATORS } from "./operators.ts";
import {
  ADDRESS_FAMILIES, checkDns1123Label, checkDns1123Subdomain, checkFqdn, checkUrl, FILE_TYPES, IPPROTO,
  parseAddrOrCidr, parseCapabilityName, parseIntValue, parseNamedNumber, parsePortOrRange, parseRange,
  parseRateLimit, TCP_STATES,
} from "./values.ts";
import { joinPath } from "./parse.ts";
import { lintPathValues, lintSelectorArg } from "./lint.ts";
import { resolveFilterTarget, type FilterSource, type FilterTarget } from "./resolve.ts";

export interface RuleSink {
  report(severity: Severity, path: string, message: string): void;
  /** True when the structural walk already reported an error at or below `path`. */
  tainted(path: string): boolean;
  /** True when `path` appears in the source document. */
  written(path: string): boolean;
}

// Limits (reference §1.9).
export const LIMITS = {
  selectorsPerHook: 5,
  actionsPerSelector: 3,
  argFiltersPerSelector: 5,
  inlineIntValues: 4,
  pidValues: 4,
  namespaceValues: 4,
  namespaceItems: 10,
  namespaceChangesItems: 1,
  binarySelectorItems: 1,
  binaryPathMax: 255,
  // Bytes: the kernel's LPM trie keys hold 256 bytes after prefixlen and the set id takes 4
  // (WARD_PREFIX_MAX in bpf/include/ward_filter.h).
  prefixMax: 252,
  postfixMax: 127,
  equalStringMax: 4096,
  substringMax: 99,
  substringsPerHook: 100,
  celExprPerPolicy: 8,
  argsPerHook: 5,
  kprobeArgIndexMax: 4,
  rawTracepointArgIndexMax: 5,
  resolveDepth: 10,
  tags: 16,
  tagMin: 2,
  tagMax: 128,
  messageMin: 2,
  messageMax: 256,
  inMapEntries: 1 << 20,
  followChildrenSelectors: 64,
} as const;


/** The parts of any hook the selector rules need. */
interface HookView {
  kind: HookKind;
  path: string;
  /** Human name for messages and lint, e.g. "kprobe sys_openat". */
  name: string;
  args: KProbeArg[];
  data: KProbeArg[];
  returnArg: KProbeArg | undefined;
  isReturn: boolean;
  selectors: KProbeSelector[];
  /** kprobes: syscall flag; others false. */
  syscall: boolean;
  call: string;
  raw: boolean;
  substrings: number;
}

const ENFORCING: readonly string[] = ["Sigkill", "Signal", "Override", "NotifyEnforcer", "Set"];
const IMA_HOOKS = [
  "bprm_check_security", "bprm_committed_creds", "bprm_committing_creds", "bprm_creds_from_file", "file_ioctl",
  "file_lock", "file_open", "file_post_open", "file_receive", "mmap_file",
];
const OPTION_NAMES = ["disable-kprobe-multi", "disable-uprobe-multi", "override-method", "policy-mode", "sleepable-preload-size", "fanotify-fail-mode", "fanotify-answer-ms"];
const GO_BOOLS = ["1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"];
const HOOK_KINDS: readonly HookKind[] = ["kprobes", "fentries", "tracepoints", "uprobes", "usdts", "lsmhooks"];

export function checkPolicy(p: TracingPolicy, sink: RuleSink): void {
  new Rules(p, sink).run();
}

/** containerSelector keys every container has: Tetragon's name and repo, and ward's id. */
const CONTAINER_KEYS = new Set(["name", "repo", "id"]);

function containerKeyNote(k: string): string {
  return `containerSelector key "${k}" is not name, repo or id: it matches only containers with an annotation "${k}" (ward reads annotations from the OCI hook; Tetragon knows only name and repo)`;
}

class Rules {
  private celExprs = 0;
  /** The syscall64 hint for InMap list: values is given once per policy, not per value. */
  private lintedListType = false;
  private followChildren = 0;
  private readonly lists = new Map<string, ListSpec>();
  private readonly usedLists = new Set<string>();
  private readonly taintedLists = new Set<string>();

  constructor(private readonly p: TracingPolicy, private readonly sink: RuleSink) {}

  private err(path: string, msg: string): void {
    this.sink.report("error", path, msg);
  }
  private warn(path: string, msg: string): void {
    this.sink.report("warning", path, msg);
  }
  /** Whether `path` was written in the source (as opposed to filled in by a default). */
  private written(path: string): boolean {
    return this.sink.written(path);
  }
  private ok(path: string): boolean {
    return !this.sink.tainted(path);
  }

  run(): void {
    const { p } = this;
    if (p.metadata !== undefined) this.metadata();
    // spec that is not a map at all leaves nothing to check; a spec with one bad
    // field still has its other (untainted) parts checked below.
    if (p.spec === undefined) return;
    const spec = p.spec;
    this.collectLists();
    this.macros();
    this.enforcersAndOptions();
    this.labelSelector(spec.podSelector, "spec.podSelector", "pod");
    this.labelSelector(spec.containerSelector, "spec.containerSelector", "container");
    this.labelSelector(spec.nodeSelector, "spec.nodeSelector", "node");
    this.hostSelector(spec.hostSelector, "spec.hostSelector");
    if (p.kind === "TracingPolicyNamespaced" && spec.hostSelector !== undefined) {
      this.err("spec.hostSelector", "TracingPolicyNamespaced should have a null spec.hostSelector (it only applies to pods in its namespace)");
    }
    let hooks = 0;
    for (const kind of HOOK_KINDS) {
      const list = spec[kind] as unknown[];
      list.forEach((h, i) => {
        const path = `spec.${kind}[${i}]`;
        hooks++;
        if (h === null || !this.ok(path)) return;
        this.hook(kind, h, path);
      });
    }
    if (hooks === 0 && !spec.loader) {
      this.warn("spec", "the policy has no hooks (kprobes, tracepoints, uprobes, usdts, lsmhooks, fentries) and loader is false: it observes nothing");
    }
    if (this.celExprs > LIMITS.celExprPerPolicy) {
      this.err("spec", `${this.celExprs} CelExpr operators in this policy; at most ${LIMITS.celExprPerPolicy} are allowed`);
    }
    if (this.followChildren > LIMITS.followChildrenSelectors) {
      this.err("spec", `${this.followChildren} matchBinaries with followChildren; at most ${LIMITS.followChildrenSelectors} are allowed`);
    }
    spec.lists.forEach((l, i) => {
      if (l !== null && l.name !== "" && !this.usedLists.has(l.name)) this.warn(`spec.lists[${i}].name`, `list "${l.name}" is never referenced (use it as "list:${l.name}")`);
    });
  }

  // ------------------------------------------------------------ metadata

  private metadata(): void {
    const { p } = this;
    if (!this.ok("metadata")) return;
    const m = p.metadata;
    const nameErr = checkDns1123Subdomain(m.name);
    if (nameErr !== undefined) this.err("metadata.name", `policy name "${m.name}" ${nameErr}`);
    if (p.kind === "TracingPolicyNamespaced") {
      if (m.namespace === undefined || m.namespace === "") {
        // kubectl fills in the context's namespace, "default" unless configured; do the same, visibly.
        m.namespace = "default";
        this.warn("metadata", `TracingPolicyNamespaced without metadata.namespace: using namespace "default" (as kubectl would with a default context)`);
      } else {
        const e = checkDns1123Label(m.namespace);
        if (e !== undefined) this.err("metadata.namespace", `namespace "${m.namespace}" ${e}`);
      }
    } else if (m.namespace !== undefined && m.namespace !== "") {
      this.err("metadata.namespace", `a TracingPolicy is cluster-scoped and must not set metadata.namespace; use kind TracingPolicyNamespaced to restrict it to namespace "${m.namespace}"`);
    }
  }

  private labelSelector(s: LabelSelector | undefined, path: string, what: "pod" | "container" | "node"): void {
    if (s === undefined || !this.ok(path)) return;
    for (const [k, v] of Object.entries(s.matchLabels)) {
      // containerSelector values are not pod labels: image repos have '/', container ids
      // 64 characters, annotation values are free text.
      if (what === "container") continue;
      if (v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) {
        this.err(joinPath(`${path}.matchLabels`, k), `label value "${v}" is not valid: at most 63 characters, letters, digits, '-', '_' and '.', starting and ending with a letter or digit`);
      }
    }
    s.matchExpressions.forEach((e, i) => {
      const ep = `${path}.matchExpressions[${i}]`;
      if (e === null) return;
      if ((e.operator === "In" || e.operator === "NotIn") && e.values.length === 0) this.err(`${ep}.values`, `operator ${e.operator} needs at least one value`);
      if ((e.operator === "Exists" || e.operator === "DoesNotExist") && e.values.length > 0) this.err(`${ep}.values`, `operator ${e.operator} takes no values`);
      if (what === "container" && !CONTAINER_KEYS.has(e.key)) this.warn(`${ep}.key`, containerKeyNote(e.key));
    });
    if (what === "container") {
      for (const k of Object.keys(s.matchLabels)) {
        if (!CONTAINER_KEYS.has(k)) this.warn(joinPath(`${path}.matchLabels`, k), containerKeyNote(k));
      }
    }
  }

  private hostSelector(s: LabelSelector | undefined, path: string): void {
    if (s === undefined || !this.ok(path)) return;
    if (Object.keys(s.matchLabels).length > 0 || s.matchExpressions.length > 0) {
      this.err(path, "hostSelector should be either null or {} (matchLabels / matchExpressions are not supported)");
    }
  }

  // ------------------------------------------------------------ lists, macros, enforcers, options

  private collectLists(): void {
    this.p.spec.lists.forEach((l, i) => {
      const path = `spec.lists[${i}]`;
      if (l === null) return;
      if (!this.ok(path)) {
        // Its own error is already reported; do not add "list not defined" errors on top.
        if (typeof l.name === "string") this.taintedLists.add(l.name);
        return;
      }
      if (l.name === "") this.err(`${path}.name`, "list name must not be empty");
      else if (this.lists.has(l.name)) this.err(`${path}.name`, `duplicate list name "${l.name}"`);
      else this.lists.set(l.name, l);
      if (l.type === "generated_ftrace") {
        if (l.pattern === undefined || l.pattern === "") this.err(path, `a generated_ftrace list needs a pattern (a regular expression over available_filter_functions)`);
        else {
          try {
            new RegExp(l.pattern);
          } catch (e) {
            this.err(`${path}.pattern`, `pattern is not a valid regular expression: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
        if (l.values.length > 0) this.err(`${path}.values`, "a generated_ftrace list takes its values from the pattern; remove values");
      } else if (l.pattern !== undefined) {
        this.err(`${path}.pattern`, `pattern is only used by lists of type generated_ftrace (this list is ${l.type ?? "untyped"})`);
      }
      if (l.type === "generated_syscalls" && l.values.length > 0) this.err(`${path}.values`, "a generated_syscalls list is filled with all syscalls; remove values");
      if (l.type === "syscalls" || l.type === undefined) {
        if (l.values.length === 0) this.err(path, `list "${l.name}" has no values`);
        l.values.forEach((v, j) => {
          const vp = `${path}.values[${j}]`;
          if (l.type === "syscalls") {
            if (!/^([a-z0-9]+\/)?(__[a-z0-9]+_)?sys_[a-z0-9_]+$/.test(v)) {
              this.err(vp, `"${v}" is not a syscall name: syscall lists hold names like "sys_dup" (optionally with an ABI prefix, "i386/sys_dup")`);
            }
          } else if (!/^[A-Za-z_][A-Za-z0-9_.$]*$/.test(v)) {
            this.err(vp, `"${v}" is not a kernel function name`);
          } else if (/^sys_/.test(v)) {
            this.err(vp, `"${v}" looks like a syscall; lists of syscalls must declare type: syscalls (syscall and regular functions cannot be mixed)`);
          }
        });
      }
    });
  }

  /** `list:NAME` reference check; returns the list when it exists. */
  private listRef(value: string, path: string): ListSpec | undefined {
    const name = value.slice("list:".length);
    const l = this.lists.get(name);
    this.usedLists.add(name);
    if (l === undefined && !this.taintedLists.has(name) && this.ok("spec.lists")) {
      const known = [...this.lists.keys()];
      this.err(path, `"${value}" refers to list "${name}", which is not defined in spec.lists${known.length > 0 ? ` (defined: ${known.join(", ")})` : ""}`);
    }
    return l;
  }

  private macros(): void {
    const spec = this.p.spec;
    if (!this.ok("spec.selectorsMacros")) return;
    for (const name of Object.keys(spec.selectorsMacros)) {
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) this.err(joinPath("spec.selectorsMacros", name), `macro name "${name}" must be letters, digits, '_', '-' or '.'`);
    }
  }

  /** Merge macros into the selector (Tetragon appends a macro's filters to the selector's). */
  private mergeMacros(sel: KProbeSelector, path: string): void {
    if (sel.macros.length === 0) return;
    const owner = new Map<string, string>();
    const fields = ["matchPIDs", "matchArgs", "matchData", "matchReturnArgs", "matchBinaries", "matchParentBinaries",
      "matchNamespaces", "matchNamespaceChanges", "matchCapabilities", "matchCapabilityChanges", "matchActions", "matchReturnActions"] as const;
    for (const f of fields) if (sel[f].length > 0) owner.set(f, "the selector");
    if (sel.matchWorkloads !== undefined) owner.set("matchWorkloads", "the selector");
    sel.macros.forEach((m, i) => {
      const mp = `${path}.macros[${i}]`;
      const macro = Object.hasOwn(this.p.spec.selectorsMacros, m) ? this.p.spec.selectorsMacros[m] : undefined;
      if (macro === undefined) {
        this.err(mp, `macro "${m}" is not defined in spec.selectorsMacros`);
        return;
      }
      if (!this.ok(joinPath("spec.selectorsMacros", m))) return;
      for (const f of fields) {
        if (macro[f].length === 0) continue;
        const prev = owner.get(f);
        if (prev !== undefined) {
          this.err(mp, `${f} is set both in ${prev} and in macro "${m}"; a field may come from only one place`);
          continue;
        }
        owner.set(f, `macro "${m}"`);
        (sel[f] as unknown[]).push(...(macro[f] as unknown[]));
      }
      if (macro.matchWorkloads !== undefined) {
        if (owner.has("matchWorkloads")) this.err(mp, `matchWorkloads is set both in ${owner.get("matchWorkloads")} and in macro "${m}"`);
        else sel.matchWorkloads = macro.matchWorkloads;
      }
    });
  }

  private enforcersAndOptions(): void {
    const spec = this.p.spec;
    if (spec.enforcers.length > 1) this.err("spec.enforcers[1]", `only one enforcer definition is allowed (found ${spec.enforcers.length})`);
    spec.enforcers.forEach((e, i) => {
      const path = `spec.enforcers[${i}]`;
      if (e === null || !this.ok(path)) return;
      if (e.calls.length === 0) this.err(`${path}.calls`, "an enforcer needs at least one syscall (or list:NAME)");
      e.calls.forEach((c, j) => {
        if (c.startsWith("list:")) this.listRef(c, `${path}.calls[${j}]`);
        else if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(c)) this.err(`${path}.calls[${j}]`, `"${c}" is not a syscall name`);
      });
    });
    const seen = new Set<string>();
    spec.options.forEach((o, i) => {
      const path = `spec.options[${i}]`;
      if (o === null || !this.ok(path)) return;
      if (seen.has(o.name)) this.warn(`${path}.name`, `option "${o.name}" is set more than once; the last one wins`);
      seen.add(o.name);
      if (!OPTION_NAMES.includes(o.name)) {
        this.warn(`${path}.name`, `unknown option "${o.name}" is ignored; known options: ${OPTION_NAMES.join(", ")}`);
        return;
      }
      const vp = `${path}.value`;
      switch (o.name) {
        case "disable-kprobe-multi":
        case "disable-uprobe-multi":
          if (!GO_BOOLS.includes(o.value)) this.err(vp, `option ${o.name} takes a boolean ("true" or "false"), found "${o.value}"`);
          break;
        case "override-method":
          if (o.value !== "fmod-ret" && o.value !== "override-return") this.err(vp, `option override-method takes "fmod-ret" or "override-return", found "${o.value}"`);
          break;
        case "fanotify-fail-mode":
          // ward's own: what a fanotify decision not ready in time gets (src/sensors/fanotify.ts)
          if (o.value !== "deny" && o.value !== "allow") this.err(vp, `option fanotify-fail-mode takes "deny" or "allow", found "${o.value}"`);
          break;
        case "fanotify-answer-ms":
          if (!/^[1-9][0-9]{0,4}$/.test(o.value)) this.err(vp, `option fanotify-answer-ms takes a whole number of milliseconds from 1 to 99999, found "${o.value}"`);
          break;
        case "policy-mode":
          if (o.value !== "enforce" && o.value !== "monitor") this.err(vp, `option policy-mode takes "enforce" or "monitor", found "${o.value}"`);
          break;
        case "sleepable-preload-size": {
          const r = parseIntValue(o.value, "s64", 10);
          if (!r.ok || r.value <= 0n) this.err(vp, `option sleepable-preload-size takes a positive integer, found "${o.value}"`);
          break;
        }
      }
    });
  }

  // ------------------------------------------------------------ hooks

  private hook(kind: HookKind, h: unknown, path: string): void {
    const spec = this.p.spec;
    const common = h as { args: KProbeArg[]; selectors: KProbeSelector[]; message?: string; tags: string[] };
    this.messageAndTags(common.message, common.tags, path);
    let view: HookView;
    switch (kind) {
      case "kprobes":
      case "fentries": {
        const k = h as KProbeSpec;
        if (k.call === "") this.err(`${path}.call`, "call must name a kernel function or list:NAME");
        else if (k.call.startsWith("list:")) {
          const l = this.listRef(k.call, `${path}.call`);
          if (l !== undefined && (l.type === "syscalls" || l.type === "generated_syscalls") && !k.syscall) {
            this.err(`${path}.syscall`, `call "${k.call}" is a list of syscalls but syscall is false`);
          }
        } else if (!/^[A-Za-z_][A-Za-z0-9_.$]*$/.test(k.call)) this.err(`${path}.call`, `"${k.call}" is not a kernel function name`);
        else if (k.syscall && !/^(__[a-z0-9]+_)?(compat_)?sys_/.test(k.call)) {
          // The CRD default is syscall: true, which reads arguments through the syscall
          // wrapper's pt_regs; on an ordinary function that yields garbage.
          this.warn(`${path}.syscall`, `"${k.call}" is not a syscall, but syscall is ${this.written(`${path}.syscall`) ? "set to true" : "true by default (CRD default)"}: its arguments would be read as syscall arguments; add syscall: false`);
        }
        this.returnRules(k.return, k.returnArg, path);
        if (k.returnArgAction !== undefined) {
          if (!k.return) this.err(`${path}.returnArgAction`, `returnArgAction ${k.returnArgAction} acts on the return value and needs return: true`);
          else if (k.returnArg !== undefined && k.returnArg.type !== "sock") this.err(`${path}.returnArgAction`, `returnArgAction ${k.returnArgAction} needs a returnArg of type sock (found ${k.returnArg.type})`);
        }
        view = { kind, path, name: `${kind === "kprobes" ? "kprobe" : "fentry"} ${k.call}`, args: k.args, data: k.data, returnArg: k.returnArg, isReturn: k.return, selectors: k.selectors, syscall: k.syscall, call: k.call, raw: false, substrings: 0 };
        if (k.args.length + k.data.length > LIMITS.argsPerHook) this.err(`${path}.args`, `${k.args.length} args + ${k.data.length} data entries; at most ${LIMITS.argsPerHook} in total`);
        break;
      }
      case "tracepoints": {
        const t = h as TracingPolicy["spec"]["tracepoints"][number];
        if (!/^[A-Za-z0-9_]+$/.test(t.subsystem)) this.err(`${path}.subsystem`, `"${t.subsystem}" is not a tracepoint subsystem name (letters, digits, '_')`);
        if (!/^[A-Za-z0-9_]+$/.test(t.event)) this.err(`${path}.event`, `"${t.event}" is not a tracepoint event name (letters, digits, '_')`);
        if (t.args.length > LIMITS.argsPerHook) this.err(`${path}.args`, `${t.args.length} args; at most ${LIMITS.argsPerHook}`);
        view = { kind, path, name: `tracepoint ${t.subsystem}/${t.event}`, args: t.args, data: [], returnArg: undefined, isReturn: false, selectors: t.selectors, syscall: false, call: `${t.subsystem}/${t.event}`, raw: t.raw, substrings: 0 };
        break;
      }
      case "uprobes": {
        const u = h as TracingPolicy["spec"]["uprobes"][number];
        if (u.path === "") this.err(`${path}.path`, "path must name the traced binary or library");
        else if (!u.path.startsWith("/")) this.warn(`${path}.path`, `path "${u.path}" is relative; uprobes attach to a file, give its absolute path`);
        const targets = [u.symbols.length > 0 && "symbols", u.offsets.length > 0 && "offsets", u.addrs.length > 0 && "addrs"].filter((x): x is string => x !== false);
        if (targets.length === 0) this.err(path, "a uprobe needs one of symbols, offsets or addrs");
        else if (targets.length > 1) this.err(`${path}.${targets[1]}`, `uprobe needs at most one of symbols, addrs or offsets defined (found ${targets.join(" and ")})`);
        if (u.refCtrOffsets.length > 0) {
          const n = Math.max(u.symbols.length, u.offsets.length, u.addrs.length);
          if (u.refCtrOffsets.length !== n) this.err(`${path}.refCtrOffsets`, `refCtrOffsets has ${u.refCtrOffsets.length} entries; it needs one per traced location (${n})`);
        }
        u.binaryDigests.forEach((d, i) => {
          const m = /^(sha1|sha256|sha384|sha512|build-id):([0-9a-fA-F]+)$/.exec(d);
          const want: Record<string, number> = { sha1: 40, sha256: 64, sha384: 96, sha512: 128 };
          const alg = m?.[1] ?? "";
          if (m === null || (want[alg] !== undefined && (m[2] ?? "").length !== want[alg]) || (alg === "build-id" && (m[2] ?? "").length % 2 !== 0)) {
            this.err(`${path}.binaryDigests[${i}]`, `"${d}" is not a digest: expected sha1:<40 hex>, sha256:<64 hex>, sha384:<96 hex>, sha512:<128 hex> or build-id:<hex>`);
          }
        });
        this.returnRules(u.return, u.returnArg, path);
        if (u.args.length + u.data.length > LIMITS.argsPerHook) this.err(`${path}.args`, `${u.args.length} args + ${u.data.length} data entries; at most ${LIMITS.argsPerHook} in total`);
        view = { kind, path, name: `uprobe ${u.path}`, args: u.args, data: u.data, returnArg: u.returnArg, isReturn: u.return, selectors: u.selectors, syscall: false, call: u.symbols[0] ?? "", raw: false, substrings: 0 };
        break;
      }
      case "usdts": {
        const u = h as TracingPolicy["spec"]["usdts"][number];
        if (u.path === "") this.err(`${path}.path`, "path must name the binary that carries the USDT probe");
        if (u.provider === "") this.err(`${path}.provider`, "provider must not be empty");
        if (u.name === "") this.err(`${path}.name`, "name must not be empty");
        if (u.args.length > LIMITS.argsPerHook) this.err(`${path}.args`, `${u.args.length} args; at most ${LIMITS.argsPerHook}`);
        view = { kind, path, name: `usdt ${u.provider}:${u.name}`, args: u.args, data: [], returnArg: undefined, isReturn: false, selectors: u.selectors, syscall: false, call: u.name, raw: false, substrings: 0 };
        break;
      }
      case "lsmhooks": {
        const l = h as TracingPolicy["spec"]["lsmhooks"][number];
        if (l.hook.startsWith("security_")) this.err(`${path}.hook`, `LSM hook names omit the "security_" prefix: write "${l.hook.slice("security_".length)}"`);
        else if (!/^[a-z0-9_]+$/.test(l.hook)) this.err(`${path}.hook`, `"${l.hook}" is not an LSM hook name (e.g. file_open, bprm_check_security)`);
        if (l.args.length > LIMITS.argsPerHook) this.err(`${path}.args`, `${l.args.length} args; at most ${LIMITS.argsPerHook}`);
        view = { kind, path, name: `lsm ${l.hook}`, args: l.args, data: [], returnArg: undefined, isReturn: false, selectors: l.selectors, syscall: false, call: l.hook, raw: false, substrings: 0 };
        break;
      }
    }
    view.args.forEach((a, i) => this.argDef(a, `${path}.args[${i}]`, view, false));
    view.data.forEach((a, i) => this.argDef(a, `${path}.data[${i}]`, view, true));
    if (view.returnArg !== undefined) this.argDef(view.returnArg, `${path}.returnArg`, view, false);
    if (view.selectors.length > LIMITS.selectorsPerHook) {
      this.err(`${path}.selectors[${LIMITS.selectorsPerHook}]`, `${view.selectors.length} selectors; at most ${LIMITS.selectorsPerHook} per hook`);
    }
    view.selectors.forEach((s, i) => {
      const sp = `${path}.selectors[${i}]`;
      if (s === null || !this.ok(sp)) return;
      this.selector(s, sp, view);
    });
    if (view.substrings > LIMITS.substringsPerHook) {
      this.err(`${path}.selectors`, `${view.substrings} SubString values in this hook; at most ${LIMITS.substringsPerHook}`);
    }
  }

  private messageAndTags(message: string | undefined, tags: string[], path: string): void {
    if (message !== undefined) {
      if (message.length < LIMITS.messageMin) this.err(`${path}.message`, `message must be at least ${LIMITS.messageMin} characters (found ${message.length})`);
      else if (message.length > LIMITS.messageMax) this.warn(`${path}.message`, `message is ${message.length} characters; it will be truncated to ${LIMITS.messageMax}`);
    }
    if (tags.length > LIMITS.tags) this.err(`${path}.tags[${LIMITS.tags}]`, `${tags.length} tags; at most ${LIMITS.tags}`);
    tags.forEach((t, i) => {
      if (t === null) return;
      if (t.length < LIMITS.tagMin) this.err(`${path}.tags[${i}]`, `tag "${t}" is too short (at least ${LIMITS.tagMin} characters)`);
      else if (t.length > LIMITS.tagMax) this.warn(`${path}.tags[${i}]`, `tag is ${t.length} characters; it will be truncated to ${LIMITS.tagMax}`);
    });
  }

  private returnRules(isReturn: boolean, returnArg: KProbeArg | undefined, path: string): void {
    if (isReturn && returnArg === undefined) this.err(`${path}.return`, "ReturnArg not specified with Return=true: add returnArg (e.g. {index: 0, type: int})");
    if (!isReturn && returnArg !== undefined) this.warn(`${path}.returnArg`, "returnArg is ignored unless return: true");
  }

  private argDef(a: KProbeArg, path: string, h: HookView, isData: boolean): void {
    if (a === null) return;
    const k = h.kind;
    if (a.type === "auto" && k !== "tracepoints") {
      this.err(`${path}.type`, `type auto (infer from the tracepoint format) only works for tracepoints; give this ${k.replace(/s$/, "")} argument an explicit type`);
    }
    if (a.type === "syscall64" && k !== "tracepoints") this.err(`${path}.type`, "type syscall64 only applies to tracepoint arguments (raw_syscalls id)");
    if (a.type === "const_buf" && k === "tracepoints") this.err(`${path}.type`, "type const_buf cannot be set by a policy (it is inferred from the tracepoint format)");
    if ((k === "kprobes" || k === "fentries" || k === "lsmhooks" || k === "uprobes") && !isData && a.index > LIMITS.kprobeArgIndexMax) {
      this.err(`${path}.index`, `argument index ${a.index} is out of range: functions are read up to their 5th argument (index 0..${LIMITS.kprobeArgIndexMax})`);
    }
    if (k === "tracepoints" && h.raw && a.index > LIMITS.rawTracepointArgIndexMax) {
      this.err(`${path}.index`, `raw tracepoint argument index ${a.index} is out of range (0..${LIMITS.rawTracepointArgIndexMax})`);
    }
    const bufTypes = ["char_buf", "char_iovec"];
    if (a.sizeArgIndex !== 0) {
      if (!bufTypes.includes(a.type)) this.err(`${path}.sizeArgIndex`, `sizeArgIndex only applies to char_buf and char_iovec arguments (this one is ${a.type})`);
      else if (a.sizeArgIndex > LIMITS.kprobeArgIndexMax + 1) this.err(`${path}.sizeArgIndex`, `sizeArgIndex ${a.sizeArgIndex} is out of range: it is the 1-based position of the size argument (1..${LIMITS.kprobeArgIndexMax + 1})`);
    }
    if (a.returnCopy && !bufTypes.includes(a.type)) this.err(`${path}.returnCopy`, `returnCopy only applies to char_buf and char_iovec arguments (this one is ${a.type})`);
    if (a.maxData) {
      if (!["char_buf", "char_iovec", "iov_iter"].includes(a.type)) this.err(`${path}.maxData`, `maxData only applies to buffer arguments (char_buf, char_iovec, iov_iter; this one is ${a.type})`);
      else if (a.returnCopy) this.err(`${path}.maxData`, "maxData cannot be combined with returnCopy");
    }
    if (a.resolve !== "") {
      const depth = a.resolve.split(".").length;
      if (!/^[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[[0-9]+\])?)*$/.test(a.resolve)) {
        this.err(`${path}.resolve`, `"${a.resolve}" is not a BTF field path (e.g. "mm.owner.real_parent.comm", "arr[2].x")`);
      } else if (depth > LIMITS.resolveDepth) {
        this.err(`${path}.resolve`, `resolve path has ${depth} levels; at most ${LIMITS.resolveDepth}`);
      }
    }
    if (a.source !== undefined && !isData) this.err(`${path}.source`, "source only applies to data entries (current_task or pt_regs)");
    if (a.btfTypeModule !== undefined && a.btfType === undefined) this.err(`${path}.btfTypeModule`, "btfTypeModule needs btfType");
  }

  // ------------------------------------------------------------ selectors

  private selector(sel: KProbeSelector, path: string, h: HookView): void {
    this.mergeMacros(sel, path);
    const nFilters = sel.matchArgs.length + sel.matchData.length;
    if (nFilters > LIMITS.argFiltersPerSelector) {
      this.err(`${path}.matchArgs`, `${nFilters} matchArgs/matchData filters; at most ${LIMITS.argFiltersPerSelector} per selector`);
    }
    sel.matchArgs.forEach((m, i) => this.argFilter(m, `${path}.matchArgs[${i}]`, h, "args"));
    sel.matchData.forEach((m, i) => this.argFilter(m, `${path}.matchData[${i}]`, h, "data"));
    if (sel.matchReturnArgs.length > 0 && !h.isReturn) {
      this.err(`${path}.matchReturnArgs`, `matchReturnArgs filters the return value and needs return: true with a returnArg on this hook`);
    } else sel.matchReturnArgs.forEach((m, i) => this.argFilter(m, `${path}.matchReturnArgs[${i}]`, h, "return"));
    for (const f of ["matchBinaries", "matchParentBinaries"] as const) {
      if (sel[f].length > LIMITS.binarySelectorItems) this.err(`${path}.${f}[1]`, `${f} takes at most ${LIMITS.binarySelectorItems} item (found ${sel[f].length}); put all paths in one item's values`);
      sel[f].forEach((b, i) => {
        const bp = `${path}.${f}[${i}]`;
        if (b === null) return;
        if (b.values.length === 0) this.err(`${bp}.values`, `${f} needs at least one path`);
        if (b.followChildren) {
          this.followChildren++;
          if (b.operator !== "In" && b.operator !== "NotIn") this.err(`${bp}.followChildren`, `followChildren only works with operators In and NotIn (found ${b.operator})`);
        }
        b.values.forEach((v, j) => {
          const vp = `${bp}.values[${j}]`;
          if (v === "") this.err(vp, "binary path must not be empty");
          else if (v.length > LIMITS.binaryPathMax) this.err(vp, `binary path is ${v.length} characters; at most ${LIMITS.binaryPathMax}`);
          else if ((b.operator === "In" || b.operator === "NotIn") && !v.startsWith("/")) {
            this.warn(vp, `"${v}" is not an absolute path; ${f} ${b.operator} compares the full path of the executable, so it never matches`);
          }
        });
      });
    }
    sel.matchPIDs.forEach((m, i) => {
      if (m === null) return;
      const mp = `${path}.matchPIDs[${i}]`;
      if (m.values.length === 0) this.err(`${mp}.values`, "matchPIDs needs at least one PID");
      if (m.values.length > LIMITS.pidValues) this.err(`${mp}.values[${LIMITS.pidValues}]`, `${m.values.length} PIDs; at most ${LIMITS.pidValues} per matchPIDs item`);
    });
    if (sel.matchNamespaces.length > LIMITS.namespaceItems) this.err(`${path}.matchNamespaces[${LIMITS.namespaceItems}]`, `${sel.matchNamespaces.length} matchNamespaces items; at most ${LIMITS.namespaceItems}`);
    sel.matchNamespaces.forEach((m, i) => {
      if (m === null) return;
      const mp = `${path}.matchNamespaces[${i}]`;
      if (m.values.length === 0) this.err(`${mp}.values`, "matchNamespaces needs at least one value (a namespace inode number or host_ns)");
      if (m.values.length > LIMITS.namespaceValues) this.err(`${mp}.values[${LIMITS.namespaceValues}]`, `${m.values.length} values; at most ${LIMITS.namespaceValues} per matchNamespaces item`);
      m.values.forEach((v, j) => {
        if (v !== "host_ns" && !parseIntValue(v, "u32", 10).ok) this.err(`${mp}.values[${j}]`, `"${v}" is not a namespace: values for matchNamespaces can only be a decimal inode number (uint32) or "host_ns"`);
      });
    });
    if (sel.matchNamespaceChanges.length > LIMITS.namespaceChangesItems) this.err(`${path}.matchNamespaceChanges[1]`, `matchNamespaceChanges takes only ${LIMITS.namespaceChangesItems} item (found ${sel.matchNamespaceChanges.length})`);
    sel.matchNamespaceChanges.forEach((m, i) => {
      if (m !== null && m.values.length === 0) this.err(`${path}.matchNamespaceChanges[${i}].values`, "matchNamespaceChanges needs at least one namespace type");
    });
    for (const f of ["matchCapabilities", "matchCapabilityChanges"] as const) {
      const types = new Set<string>();
      sel[f].forEach((m, i) => {
        if (m === null) return;
        const mp = `${path}.${f}[${i}]`;
        types.add(m.type);
        if (m.values.length === 0) this.err(`${mp}.values`, `${f} needs at least one capability name`);
        m.values = m.values.map((v, j) => {
          const r = parseCapabilityName(v);
          if (!r.ok) {
            this.err(`${mp}.values[${j}]`, r.message);
            return v;
          }
          if (r.value.note !== undefined) this.warn(`${mp}.values[${j}]`, r.value.note);
          return r.value.name;
        });
      });
      if (types.size > 1) this.warn(`${path}.${f}`, `${f} mixes capability sets (${[...types].join(", ")}); Tetragon documents only one type per selector`);
    }
    if (sel.matchWorkloads !== undefined) {
      this.labelSelector(sel.matchWorkloads.podSelector, `${path}.matchWorkloads.podSelector`, "pod");
      this.labelSelector(sel.matchWorkloads.containerSelector, `${path}.matchWorkloads.containerSelector`, "container");
      this.hostSelector(sel.matchWorkloads.hostSelector, `${path}.matchWorkloads.hostSelector`);
    }
    for (const f of ["matchActions", "matchReturnActions"] as const) {
      const acts = sel[f];
      if (acts.length > LIMITS.actionsPerSelector) this.err(`${path}.${f}[${LIMITS.actionsPerSelector}]`, `${acts.length} actions; at most ${LIMITS.actionsPerSelector} per selector`);
      if (f === "matchReturnActions" && acts.length > 0 && !h.isReturn) this.err(`${path}.${f}`, "matchReturnActions run at function return and need return: true on this hook");
      acts.forEach((a, i) => {
        if (a !== null) this.action(a, `${path}.${f}[${i}]`, h);
      });
      const names = acts.filter((a) => a !== null).map((a) => a.action);
      if (names.includes("Post") && names.includes("NoPost")) this.warn(`${path}.${f}`, "both Post and NoPost in one selector: NoPost suppresses the event");
    }
  }

  /** Resolve which declared argument a filter refers to; undefined (with an error) when none. */
  private filterTarget(m: ArgSelector, path: string, h: HookView, where: FilterSource): FilterTarget | undefined {
    const hit = resolveFilterTarget(h.kind, h, m, where);
    if (hit !== undefined) {
      // For CapabilitiesGained and friends every listed position must exist, not just the first.
      this.checkArgsPositions(m, path, h, where);
      return hit;
    }
    if (where === "return") {
      if (h.returnArg !== undefined) this.err(`${path}.index`, `matchReturnArgs index ${m.index} does not name the return value (returnArg has index ${h.returnArg.index})`);
      return undefined;
    }
    const list = where === "args" ? h.args : h.data;
    if (m.args.length > 0) {
      this.checkArgsPositions(m, path, h, where);
      return undefined;
    }
    if (where === "data") {
      this.err(`${path}.index`, `matchData index ${m.index} is out of range: the hook declares ${list.length} data entr${list.length === 1 ? "y" : "ies"}`);
      return undefined;
    }
    const declared = list.filter((a) => a !== null).map((a) => a.index);
    this.err(`${path}.index`, declared.length === 0
      ? `matchArgs index ${m.index} refers to an argument, but this hook declares no args; add an args entry with index ${m.index} and a type`
      : `matchArgs index ${m.index} does not name a declared argument (declared indexes: ${declared.join(", ")}); add an args entry with index ${m.index} and a type`);
    return undefined;
  }

  private checkArgsPositions(m: ArgSelector, path: string, h: HookView, where: FilterSource): void {
    if (where === "return") return;
    const list = where === "args" ? h.args : h.data;
    m.args.forEach((p, i) => {
      if (list[p] === undefined) this.err(`${path}.args[${i}]`, `args position ${p} is out of range: the hook declares ${list.length} ${where} entr${list.length === 1 ? "y" : "ies"} (positions 0..${list.length - 1})`);
    });
  }

  private argFilter(m: ArgSelector, path: string, h: HookView, where: "args" | "data" | "return"): void {
    if (m === null) return;
    const target = this.filterTarget(m, path, h, where);
    if (m.operator === "CelExpr") {
      this.celExprs++;
      if (m.values.length !== 1 || (m.values[0] ?? "").trim() === "") this.err(`${path}.values`, `CelExpr takes exactly one value, a CEL expression over arg0..argN (found ${m.values.length} values)`);
      return;
    }
    if (target === undefined) return;
    const type: ArgType = target.arg.type;
    const allowed = operatorsFor(type);
    if (!allowed.includes(m.operator)) {
      this.err(`${path}.operator`, `operator ${m.operator} cannot be applied to ${where === "return" ? "the return value" : `argument ${m.index}`} of type ${type}; allowed for ${type}: ${allowed.join(", ")}`);
      return;
    }
    if (m.operator === "CapabilitiesGained") {
      if (m.args.length !== 2) {
        this.err(`${path}.args`, "CapabilitiesGained needs args: [new, old], the positions of two capability arguments");
        return;
      }
      const second = (where === "data" ? h.data : h.args)[m.args[1] ?? -1];
      if (second !== undefined && !CAP_MASK_TYPES.includes(second.type)) this.err(`${path}.args[1]`, `CapabilitiesGained compares two capability sets; the second argument has type ${second.type}`);
    }
    if (VALUELESS_OPERATORS.includes(m.operator)) {
      if (m.values.length > 0) this.err(`${path}.values`, `operator ${m.operator} takes no values`);
      return;
    }
    if (m.values.length === 0) {
      this.err(`${path}.values`, `operator ${m.operator} needs at least one value`);
      return;
    }
    this.filterValues(m, path, type, h);
    if (where === "args") {
      const lint = lintSelectorArg(h, target.arg, m);
      if (lint !== undefined) this.warn(path, lint);
    }
    const rel = lintPathValues(target.arg, m);
    if (rel !== undefined) this.warn(`${path}.values[${rel.index}]`, rel.message);
  }

  private filterValues(m: ArgSelector, path: string, type: ArgType, h: HookView): void {
    const op = m.operator;
    const each = (check: (v: string, vpath: string) => string | undefined): void => {
      m.values.forEach((v, i) => {
        const e = check(v, `${path}.values[${i}]`);
        if (e !== undefined) this.err(`${path}.values[${i}]`, e);
      });
    };
    const width = INT_WIDTH[type];
    if (width !== undefined || CAP_MASK_TYPES.includes(type)) {
      if (INLINE_INT_OPERATORS.includes(op) && m.values.length > LIMITS.inlineIntValues) {
        this.err(`${path}.values[${LIMITS.inlineIntValues}]`, `${m.values.length} values; ${op} on integers takes at most ${LIMITS.inlineIntValues} (use InMap for more)`);
      }
    }
    if (CAP_MASK_TYPES.includes(type)) {
      each((v) => {
        if (parseIntValue(v, "u64", 0).ok) return undefined;
        for (const c of v.split(",")) {
          const r = parseCapabilityName(c);
          if (!r.ok) return `capability mask ${JSON.stringify(v)}: ${r.message}`;
        }
        return undefined;
      });
      return;
    }
    switch (op) {
      case "Equal": case "NotEqual": case "GreaterThan": case "LessThan": case "Mask":
        if (width !== undefined) {
          each((v) => { const r = parseIntValue(v, width, 0); return r.ok ? undefined : r.message; });
          return;
        }
        if (op === "Equal" || op === "NotEqual") each((v) => (byteLength(v) > LIMITS.equalStringMax ? `value is ${byteLength(v)} bytes; string matches take at most ${LIMITS.equalStringMax}` : undefined));
        return;
      case "InRange": case "NotInRange":
        each((v) => { const r = parseRange(v, width ?? "s64", 10); return r.ok ? undefined : r.message; });
        return;
      case "InMap": case "NotInMap": {
        let entries = 0n;
        each((v, vpath) => {
          if (v.startsWith("list:")) {
            const l = this.listRef(v, vpath);
            if (l !== undefined && l.type !== "syscalls" && l.type !== "generated_syscalls") return `"${v}": only lists of syscalls (type syscalls) can be used as InMap values`;
            if (type !== "syscall64" && !this.lintedListType) {
              this.lintedListType = true;
              this.warn(`${path}.values`, `"${v}" inserts syscall ids with their ABI bit; declare the argument as type syscall64 so 32-bit syscalls match too (found ${type})`);
            }
            return undefined;
          }
          const r = parseRange(v, width ?? "s64", 10);
          if (!r.ok) return r.message;
          entries += r.value[1] - r.value[0] + 1n;
          return undefined;
        });
        if (entries > BigInt(LIMITS.inMapEntries)) this.err(`${path}.values`, `the ranges expand to ${entries} map entries; at most ${LIMITS.inMapEntries}`);
        return;
      }
      case "Prefix": case "NotPrefix":
        each((v) => (v === "" ? "empty prefix matches everything; remove the filter instead" : byteLength(v) > LIMITS.prefixMax ? `prefix is ${byteLength(v)} bytes; at most ${LIMITS.prefixMax} (the kernel's LPM trie key holds 256 bytes, 4 are the set id)` : undefined));
        return;
      case "Postfix": case "NotPostfix":
        each((v) => (v === "" ? "empty postfix matches everything; remove the filter instead" : byteLength(v) > LIMITS.postfixMax ? `postfix is ${byteLength(v)} bytes; at most ${LIMITS.postfixMax}` : undefined));
        return;
      case "SubString": case "SubStringIgnCase":
        h.substrings += m.values.length;
        each((v) => (v === "" ? "empty substring matches everything" : v.length > LIMITS.substringMax ? `substring is ${v.length} characters; at most ${LIMITS.substringMax}` : undefined));
        return;
      case "SAddr": case "NotSAddr": case "DAddr": case "NotDAddr":
        each((v) => { const r = parseAddrOrCidr(v); return r.ok ? undefined : r.message; });
        return;
      case "SPort": case "NotSPort": case "DPort": case "NotDPort":
        each((v) => { const r = parsePortOrRange(v); return r.ok ? undefined : r.message; });
        return;
      case "Protocol":
        each((v) => { const r = parseNamedNumber(v, IPPROTO, "protocol", "IPPROTO_TCP"); return r.ok ? undefined : r.message; });
        return;
      case "Family":
        each((v) => { const r = parseNamedNumber(v, ADDRESS_FAMILIES, "address family", "AF_INET"); return r.ok ? undefined : r.message; });
        return;
      case "State":
        each((v) => { const r = parseNamedNumber(v, TCP_STATES, "TCP state", "TCP_ESTABLISHED"); return r.ok ? undefined : r.message; });
        return;
      case "FileType": case "NotFileType":
        each((v) => (Object.hasOwn(FILE_TYPES, v) ? undefined : `"${v}" is not a file type; allowed: ${Object.keys(FILE_TYPES).join(", ")}`));
        return;
      default:
        return;
    }
  }

  // ------------------------------------------------------------ actions

  private action(a: ActionSelector, path: string, h: HookView): void {
    const params: Record<string, boolean> = {
      argUrl: a.argUrl !== undefined, argFqdn: a.argFqdn !== undefined, argError: a.argError !== undefined,
      argSig: a.argSig !== undefined, argSock: a.argSock !== undefined, argIndex: a.argIndex !== undefined,
      argValue: a.argValue !== undefined, argRegs: a.argRegs.length > 0, argNewSymbol: a.argNewSymbol !== undefined,
      argNewAddr: a.argNewAddr !== undefined, argNewOffset: a.argNewOffset !== undefined,
      rateLimit: a.rateLimit !== undefined, rateLimitScope: a.rateLimitScope !== undefined,
      kernelStackTrace: a.kernelStackTrace, userStackTrace: a.userStackTrace, imaHash: a.imaHash,
    };
    const allowed: Record<string, readonly string[]> = {
      Post: ["rateLimit", "rateLimitScope", "kernelStackTrace", "userStackTrace", "imaHash"],
      NoPost: [], Sigkill: [], CleanupEnforcerNotification: [],
      Signal: ["argSig"],
      Override: h.kind === "uprobes" ? ["argError", "argRegs", "argNewSymbol", "argNewAddr", "argNewOffset"] : ["argError"],
      GetUrl: ["argUrl"], DnsLookup: ["argFqdn"],
      TrackSock: ["argSock"], UntrackSock: ["argSock"],
      NotifyEnforcer: ["argError", "argSig"],
      Set: ["argIndex", "argValue"],
    };
    const mine = allowed[a.action] ?? [];
    for (const [p, present] of Object.entries(params)) {
      if (!present || mine.includes(p)) continue;
      const owners = Object.entries(allowed).filter(([, ps]) => ps.includes(p)).map(([n]) => n);
      const extra = p.startsWith("argNew") || p === "argRegs" ? " (Override on uprobes only)" : "";
      if (allowed.Post?.includes(p) === true) {
        // Tetragon rejects these outright ("rate limiting can only applied to post action").
        this.err(`${path}.${p}`, `${p} only applies to the Post action (found on ${a.action})`);
        continue;
      }
      // Tetragon ignores other parameters an action does not use: a warning, not an error.
      this.warn(`${path}.${p}`, `${p} is ignored: it is not a parameter of ${a.action}${mine.length > 0 ? ` (which takes ${mine.join(", ")})` : " (which takes none)"}; ${p} belongs to ${owners.join(", ") || "Override"}${extra}`);
    }
    const need = (p: string, what: string): void => {
      if (!params[p]) this.err(path, `${a.action} needs ${p} (${what})`);
    };
    switch (a.action) {
      case "Signal":
        need("argSig", "the signal number, e.g. 9 for SIGKILL");
        break;
      case "GetUrl":
        need("argUrl", "the URL to fetch");
        if (a.argUrl !== undefined) { const e = checkUrl(a.argUrl); if (e !== undefined) this.err(`${path}.argUrl`, e); }
        break;
      case "DnsLookup":
        need("argFqdn", "the name to look up");
        if (a.argFqdn !== undefined) { const e = checkFqdn(a.argFqdn); if (e !== undefined) this.err(`${path}.argFqdn`, e); }
        break;
      case "TrackSock":
      case "UntrackSock":
        {
          // argSock defaults to 0 in Tetragon (Go zero value), so an absent argSock means argument 0.
          const idx = a.argSock ?? 0;
          const at = a.argSock === undefined ? path : `${path}.argSock`;
          const arg = h.args.find((x) => x !== null && x.index === idx);
          if (arg === undefined) this.err(at, `${a.action} needs argSock, the index of a declared sock argument; ${idx} is not declared`);
          else if (arg.type !== "sock") this.err(at, `argSock ${idx} names an argument of type ${arg.type}; ${a.action} needs a sock`);
        }
        break;
      case "Set":
        if (h.kind !== "usdts") this.err(`${path}.action`, "Set writes a USDT argument and only works on usdts hooks");
        need("argIndex", "the position of the USDT argument to write");
        need("argValue", "the value to write");
        if (a.argIndex !== undefined && a.argIndex >= h.args.length) this.err(`${path}.argIndex`, `argIndex ${a.argIndex} is out of range: the hook declares ${h.args.length} args`);
        break;
      case "Override": {
        const variants = [a.argNewSymbol, a.argNewAddr, a.argNewOffset].filter((x) => x !== undefined).length;
        if (variants > 1) this.err(path, "override action needs at most one of argNewSymbol, argNewAddr or argNewOffset defined");
        if (h.kind === "uprobes") {
          if (!params.argError && a.argRegs === undefined && variants === 0) this.err(path, "Override on a uprobe needs argError, argRegs or one of argNewSymbol/argNewAddr/argNewOffset");
          a.argRegs?.forEach((r, i) => {
            if (!/^[a-z0-9]+=(-?[0-9]+|%[a-z0-9]+|-?[0-9]*\(%[a-z0-9]+\)|[0-9]+%[a-z0-9]+)$/.test(r)) {
              this.err(`${path}.argRegs[${i}]`, `"${r}" is not a register assignment (e.g. rax=11, rbp=%rsp, rsp=8(%rsp))`);
            }
          });
        } else {
          need("argError", "the error to return, e.g. -1 for EPERM");
          if (a.argError !== undefined && (a.argError >= 0 || a.argError < -4095)) {
            this.warn(`${path}.argError`, `argError ${a.argError} is not a negative errno (-1..-4095); the caller will not see a failure`);
          }
        }
        if (h.kind === "kprobes") {
          const okTarget = h.syscall || h.call.startsWith("security_") || this.isSyscallList(h.call);
          if (!okTarget) this.err(`${path}.action`, `Override on kprobe "${h.call}" is not possible: only syscalls (syscall: true) and security_* functions can have their return value overridden`);
        }
        if (h.kind === "tracepoints" || h.kind === "usdts") this.err(`${path}.action`, `Override cannot change the outcome of a ${h.kind === "usdts" ? "USDT probe" : "tracepoint"}; use Sigkill, Signal or NotifyEnforcer`);
        break;
      }
      case "NotifyEnforcer":
        if (this.p.spec.enforcers.length === 0 && this.ok("spec.enforcers")) this.err(`${path}.action`, "NotifyEnforcer needs spec.enforcers (the syscalls where the enforcer acts)");
        if (!params.argError && !params.argSig) this.err(path, "NotifyEnforcer needs argError and/or argSig (what the enforcer does)");
        break;
      case "Post":
        if (a.rateLimit !== undefined) {
          const r = parseRateLimit(a.rateLimit);
          if (!r.ok) this.err(`${path}.rateLimit`, r.message);
          else a.rateLimitMs = r.value;
        } else if (a.rateLimitScope !== undefined) this.warn(`${path}.rateLimitScope`, "rateLimitScope is ignored without rateLimit");
        if (a.imaHash && (h.kind !== "lsmhooks" || !IMA_HOOKS.includes(h.call))) {
          this.err(`${path}.imaHash`, `imaHash is only available on LSM hooks ${IMA_HOOKS.join(", ")}`);
        }
        break;
      default:
        break;
    }
    if (a.argSig !== undefined && (a.argSig < 1 || a.argSig > 64)) this.err(`${path}.argSig`, `argSig ${a.argSig} is not a signal number (1..64, e.g. 9 for SIGKILL)`);
    if (h.kind === "fentries" && ENFORCING.includes(a.action)) this.err(`${path}.action`, `${a.action}: enforcement is not supported for fentry hooks; use a kprobe or an LSM hook`);
  }

  private isSyscallList(call: string): boolean {
    if (!call.startsWith("list:")) return false;
    const t = this.lists.get(call.slice(5))?.type;
    return t === "syscalls" || t === "generated_syscalls";
  }
}

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}
