// What the engine produced for a policy, per hook: argument slots, selectors with their
// matchers (operator, target, where the values live and how many), and actions. Read
// back from the compiled tables through the engine's own layout, so what is printed is
// what the kernel would be given.
import { decodeAction, engineLayout, tableString, type ActionRecord, type CompiledPolicy, type SectionName } from "./engine.ts";

export const MECHANISM_PENDING = "engine output only; kernel mechanism selection arrives with the hooks sensor";

const ARG_TYPE_NAMES = ["none", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "string", "buffer", "file", "path", "sock", "sockaddr", "sockaddr_un", "caps", "syscall64", "opaque", "nop"];
const SOURCE_NAMES = ["arg", "data:current_task", "data:pt_regs", "return"];
const KIND_NAMES = ["", "matchArgs", "matchPIDs", "matchNamespaces", "matchCapabilities", "matchNamespaceChanges", "matchCapabilityChanges", "matchBinaries", "matchParentBinaries"];
const OP_NAMES: Readonly<Record<number, string>> = {
  1: "GreaterThan", 2: "LessThan", 3: "Equal", 4: "NotEqual", 5: "In", 6: "NotIn", 8: "Prefix", 9: "Postfix", 10: "InMap", 11: "NotInMap",
  12: "Mask", 13: "SAddr", 14: "DAddr", 15: "SPort", 16: "DPort", 17: "Protocol", 18: "NotSPort", 19: "NotDPort", 20: "SPortPriv",
  21: "NotSportPriv", 22: "DPortPriv", 23: "NotDPortPriv", 24: "NotSAddr", 25: "NotDAddr", 26: "NotPrefix", 27: "NotPostfix",
  28: "Family", 29: "State", 30: "CapabilitiesGained", 31: "InRange", 32: "NotInRange", 33: "SubString", 34: "SubStringIgnCase",
  36: "FileType", 37: "NotFileType",
};
const NS_NAMES = ["Uts", "Ipc", "Mnt", "Pid", "PidForChildren", "Net", "Time", "TimeForChildren", "Cgroup", "User"];
const CAP_SET_NAMES = ["Effective", "Inheritable", "Permitted"];
const VALUE_MAPS: Readonly<Record<number, string>> = {
  0: "no values", 1: "inline", 2: "inline ranges", 3: "string hash maps", 4: "prefix LPM trie", 5: "postfix LPM trie (reversed)",
  6: "int hash set", 7: "address LPM trie", 8: "binary-id hash set", 9: "substring array", 10: "bit mask",
};
const HOOK_KINDS = ["", "kprobe", "fentry", "tracepoint", "raw tracepoint", "uprobe", "usdt", "lsm"];

export interface ExplainedMatcher {
  field: string;
  operator: string;
  /** "arg 1 (file)", "binary", "pid", "namespace Mnt", ... */
  target: string;
  /** Where the values live in the kernel. */
  storage: string;
  /** Value-set id for map-backed values. */
  setId?: number;
  /** Entries the kernel maps hold for this matcher (inline values for inline kinds). */
  entries: number;
  /** Up to a few values, decoded for reading. */
  sample: string[];
  flags: string[];
}

export interface ExplainedSelector {
  index: number;
  label?: string;
  matchers: ExplainedMatcher[];
  actions: ActionRecord[];
  returnActions: ActionRecord[];
}

export interface ExplainedHook {
  path: string;
  name: string;
  kind: string;
  hookId: number;
  args: { slot: number; type: string; source: string; index: number }[];
  alwaysPost: boolean;
  /** returnArgAction of the hook (TrackSock/UntrackSock on the returned sock). */
  returnArgAction?: string;
  selectors: ExplainedSelector[];
  mechanism: string;
  /** Set once the hook was resolved for a kernel (src/sensors/resolve.ts): false = rejected there. */
  applicable?: boolean;
  /** Why the hook cannot run on that kernel: the missing feature and the substitute. */
  rejected?: string;
  /** How each action is honored on that kernel (afterExit: differently once the agent has exited). */
  honored?: { selector: number; action: string; honored: string; afterExit?: string }[];
  /** What holds the hook once the agent has exited (SIGKILL included). */
  afterExit?: string;
  /** Measured limits of the mechanism. */
  limits?: string[];
  /** Ways around the rule on that kernel, with the remedy. */
  bypasses?: string[];
  /**
   * File guard hooks: how each matchBinaries entry would be matched if applied now ("inode
   * (dev:ino)", "inode (dev:ino) and path", "path (not present; watching DIR)").
   */
  binaries?: { selector: number; op: string; entries: { path: string; by: string; match: string; watching?: string }[] }[];
}

export interface ExplainedPolicy {
  name: string;
  layoutVersion: number;
  blobBytes: number;
  mode: "enforce" | "monitor";
  tables: Partial<Record<SectionName, number>>;
  hooks: ExplainedHook[];
  /** The kernel the mechanisms were chosen for, when resolved ("6.18.0 (BPF LSM: no, kprobes: no)"). */
  kernel?: string;
  /** The workload scope in words, for scoped policies (docs/scoping.md). */
  scope?: string;
}

const SAMPLE = 4;

/** Value-set entries per set id, with a few decoded values, from the key sections. */
function indexSets(c: CompiledPolicy): Map<number, { entries: number; sample: string[] }> {
  const L = engineLayout();
  const out = new Map<number, { entries: number; sample: string[] }>();
  const td = new TextDecoder();
  const add = (id: number, value: string | undefined): void => {
    let e = out.get(id);
    if (e === undefined) { e = { entries: 0, sample: [] }; out.set(id, e); }
    e.entries++;
    if (value !== undefined && e.sample.length < SAMPLE) e.sample.push(value);
  };
  const lpmSet = L.get("ward_str_prefix_key.set_id") ?? 4;
  const lpmData = L.get("ward_str_prefix_key.data") ?? 8;
  for (const [name, sec] of Object.entries(c.tables) as [SectionName, CompiledPolicy["tables"][SectionName]][]) {
    const dv = new DataView(sec.bytes.buffer, sec.bytes.byteOffset, sec.bytes.byteLength);
    for (let i = 0; i < sec.count && name !== "strings" && name !== "hooks"; i++) {
      const o = i * sec.entrySize;
      if (name.startsWith("strEq")) {
        const len = dv.getUint32(o + 4, true);
        add(dv.getUint32(o, true), JSON.stringify(td.decode(sec.bytes.subarray(o + 8, o + 8 + len))));
      } else if (name === "strPrefix" || name === "strPostfix") {
        const n = (dv.getUint32(o, true) - 32) / 8;
        let bytes = sec.bytes.slice(o + lpmData, o + lpmData + n);
        if (name === "strPostfix") bytes = bytes.reverse();
        add(dv.getUint32(o + lpmSet, true), JSON.stringify(td.decode(bytes)));
      } else if (name === "intSet") {
        add(dv.getUint32(o, true), dv.getBigUint64(o + 8, true).toString());
      } else if (name === "addrLpm") {
        const bits = dv.getUint32(o, true) - 64;
        const fam = sec.bytes[o + (L.get("ward_addr_key.family") ?? 8)];
        const a = sec.bytes.subarray(o + (L.get("ward_addr_key.addr") ?? 12), o + (L.get("ward_addr_key.addr") ?? 12) + 16);
        const text = fam === 4 ? [...a.subarray(0, 4)].join(".") : Array.from({ length: 8 }, (_, g) => (((a[2 * g] ?? 0) << 8) | (a[2 * g + 1] ?? 0)).toString(16)).join(":");
        add(dv.getUint32(o + lpmSet, true), `${text}/${bits}`);
      } else if (name === "binSet") {
        add(dv.getUint32(o, true), `bin#${dv.getUint32(o + 4, true)}`);
      } else if (name === "substr") {
        const len = dv.getUint32(o + 4, true);
        add(dv.getUint32(o, true), JSON.stringify(td.decode(sec.bytes.subarray(o + 8, o + 8 + len))));
      }
    }
  }
  return out;
}

function binaryNames(c: CompiledPolicy): Map<number, string> {
  const sec = c.tables.binNames;
  const dv = new DataView(sec.bytes.buffer, sec.bytes.byteOffset, sec.bytes.byteLength);
  const m = new Map<number, string>();
  for (let i = 0; i < sec.count; i++) {
    const o = i * sec.entrySize;
    const len = dv.getUint32(o + 4, true);
    m.set(dv.getUint32(o, true), new TextDecoder().decode(sec.bytes.subarray(o + 8, o + 8 + len)));
  }
  return m;
}

export function explainCompiled(c: CompiledPolicy): ExplainedPolicy {
  const L = engineLayout();
  const n = (k: string): number => {
    const v = L.get(k);
    if (v === undefined) throw new Error(`engine layout lacks ${k}`);
    return v;
  };
  const sets = indexSets(c);
  const bins = binaryNames(c);
  const hb = c.tables.hooks.bytes;
  const dv = new DataView(hb.buffer, hb.byteOffset, hb.byteLength);
  const hooks: ExplainedHook[] = c.hooks.map((h) => {
    const base = h.index * n("sizeof.ward_hook_config");
    const nArgs = hb[base + n("ward_hook_config.n_args")] ?? 0;
    const flags = hb[base + n("ward_hook_config.flags")] ?? 0;
    const args: ExplainedHook["args"] = [];
    for (let s = 0; s < n("const.WARD_MAX_SLOTS"); s++) {
      const ao = base + n("ward_hook_config.args") + s * n("sizeof.ward_arg_cfg");
      if ((hb[ao + n("ward_arg_cfg.present")] ?? 0) === 0) continue;
      if (s >= nArgs && s !== n("const.WARD_MAX_SLOTS") - 1) continue;
      args.push({ slot: s, type: ARG_TYPE_NAMES[dv.getUint16(ao + n("ward_arg_cfg.type"), true)] ?? "?", source: SOURCE_NAMES[hb[ao + n("ward_arg_cfg.source")] ?? 0] ?? "?", index: hb[ao + n("ward_arg_cfg.index")] ?? 0 });
    }
    const argType = (slot: number): string => args.find((a) => a.slot === slot)?.type ?? "?";
    const selectors: ExplainedSelector[] = [];
    const nSel = hb[base + n("ward_hook_config.n_selectors")] ?? 0;
    for (let si = 0; si < nSel; si++) {
      const so = base + n("ward_hook_config.selectors") + si * n("sizeof.ward_selector");
      const matchers: ExplainedMatcher[] = [];
      const nm = hb[so + n("ward_selector.n_matchers")] ?? 0;
      for (let mi = 0; mi < nm; mi++) {
        const mo = so + n("ward_selector.matchers") + mi * n("sizeof.ward_matcher");
        const kind = hb[mo + n("ward_matcher.kind")] ?? 0;
        const op = hb[mo + n("ward_matcher.op")] ?? 0;
        const slot = hb[mo + n("ward_matcher.slot")] ?? 0;
        const vk = hb[mo + n("ward_matcher.value_kind")] ?? 0;
        const nv = hb[mo + n("ward_matcher.nvalues")] ?? 0;
        const mf = dv.getUint16(mo + n("ward_matcher.flags"), true);
        const setId = dv.getUint32(mo + n("ward_matcher.set_id"), true);
        const val = (i: number): bigint => dv.getBigUint64(mo + n("ward_matcher.values") + 8 * i, true);
        const fl: string[] = [];
        if (mf & 1) fl.push(kind === 2 ? "followForks" : "followChildren");
        if (mf & 2) fl.push("isNamespacePID");
        if (mf & 4) fl.push("isNamespaceCapability");
        if (mf & 8) fl.push("return");
        if (mf & 0x20) fl.push("host_ns from init_task");
        let target = "";
        if (kind === 1) target = `${mf & 8 ? "return value" : `arg slot ${slot}`} (${argType(slot)})`;
        else if (kind === 2) target = mf & 2 ? "namespace pid" : "pid";
        else if (kind === 3) target = `namespace ${NS_NAMES[slot] ?? slot}`;
        else if (kind === 4 || kind === 6) target = `${CAP_SET_NAMES[slot] ?? slot} capabilities`;
        else if (kind === 5) target = "namespaces";
        else if (kind === 7) target = "binary";
        else if (kind === 8) target = "parent binary";
        let entries = 0;
        let sample: string[] = [];
        if (vk === 1) { entries = nv; sample = Array.from({ length: Math.min(nv, SAMPLE) }, (_, i) => (argType(slot).startsWith("s") ? BigInt.asIntN(64, val(i)) : val(i)).toString()); }
        else if (vk === 2) { entries = nv; sample = Array.from({ length: Math.min(nv, SAMPLE) }, (_, i) => `${val(2 * i)}:${val(2 * i + 1)}`); }
        else if (vk === 10) { entries = 1; sample = [`0x${val(0).toString(16)}`]; }
        else if (vk !== 0) {
          const s = sets.get(setId);
          entries = s?.entries ?? 0;
          sample = (s?.sample ?? []).map((v) => (v.startsWith("bin#") ? JSON.stringify(bins.get(Number(v.slice(4))) ?? v) : v));
        }
        const m: ExplainedMatcher = { field: KIND_NAMES[kind] ?? `kind ${kind}`, operator: OP_NAMES[op] ?? `op ${op}`, target, storage: VALUE_MAPS[vk] ?? `kind ${vk}`, entries, sample, flags: fl };
        if (vk >= 3 && vk <= 9) m.setId = setId;
        matchers.push(m);
      }
      const acts = (off: string, cnt: string): ActionRecord[] => Array.from({ length: hb[so + n(cnt)] ?? 0 }, (_, i) => decodeAction(c, hb, so + n(off) + i * n("sizeof.ward_action")));
      const labelRef = dv.getUint32(so + n("ward_selector.label_ref"), true);
      const sel: ExplainedSelector = { index: si, matchers, actions: acts("ward_selector.actions", "ward_selector.n_actions"), returnActions: acts("ward_selector.return_actions", "ward_selector.n_return_actions") };
      const label = tableString(c, labelRef);
      if (label !== undefined) sel.label = label;
      selectors.push(sel);
    }
    const hook: ExplainedHook = {
      path: h.path, name: h.name, kind: HOOK_KINDS[hb[base + n("ward_hook_config.hook_kind")] ?? 0] ?? "?", hookId: h.hookId,
      args, alwaysPost: (flags & 4) !== 0, selectors, mechanism: MECHANISM_PENDING,
    };
    const raa = dv.getUint32(base + n("ward_hook_config.return_arg_action"), true);
    if (raa === 11) hook.returnArgAction = "TrackSock";
    if (raa === 12) hook.returnArgAction = "UntrackSock";
    return hook;
  });
  const tables: Partial<Record<SectionName, number>> = {};
  for (const [k, s] of Object.entries(c.tables) as [SectionName, { count: number }][]) if (s.count > 0 && k !== "hooks" && k !== "strings") tables[k] = s.count;
  return { name: c.name, layoutVersion: c.layoutVersion, blobBytes: c.blob.length, mode: c.monitor ? "monitor" : "enforce", tables, hooks };
}

function actionText(a: ActionRecord): string {
  const p: string[] = [];
  if (a.argError !== undefined) p.push(`argError=${a.argError}`);
  if (a.argSig !== undefined) p.push(`argSig=${a.argSig}`);
  if (a.action === "TrackSock" || a.action === "UntrackSock") p.push(`argSock=${a.argIndex}`);
  if (a.action === "Set") p.push(`argIndex=${a.argIndex}`, `argValue=${a.argValue}`);
  if (a.rateLimitMs > 0) p.push(`rateLimit=${a.rateLimitMs}ms/${a.rateLimitScope}`);
  if (a.kernelStackTrace) p.push("kernelStackTrace");
  if (a.userStackTrace) p.push("userStackTrace");
  if (a.imaHash) p.push("imaHash");
  if (a.argUrl !== undefined) p.push(`argUrl=${a.argUrl}`);
  if (a.argFqdn !== undefined) p.push(`argFqdn=${a.argFqdn}`);
  if (a.monitorOnly) p.push("monitor: counted, not enforced");
  return p.length > 0 ? `${a.action}(${p.join(", ")})` : a.action;
}

/** Human-readable report, one block per hook. */
export function formatExplained(p: ExplainedPolicy): string {
  const out: string[] = [];
  const tables = Object.entries(p.tables).map(([k, v]) => `${k}=${v}`).join(" ");
  out.push(`policy ${p.name} (mode ${p.mode}): ${p.hooks.length} hook(s), filter layout v${p.layoutVersion}, ${p.blobBytes} bytes${tables ? `; map entries: ${tables}` : ""}`);
  if (p.kernel !== undefined) {
    const rejected = p.hooks.filter((h) => h.applicable === false).length;
    out.push(`  on this kernel, ${p.kernel}: ${rejected === 0 ? "every hook can be applied as written" : `${rejected} hook(s) cannot run here, so the agent refuses this policy`}`);
  }
  if (p.scope !== undefined) out.push(`  workload scope: ${p.scope}`);
  for (const h of p.hooks) {
    out.push(`  ${h.path} ${h.kind} ${h.name} (hook id ${h.hookId})`);
    if (h.applicable === false) out.push(`    REJECTED on this kernel: ${h.rejected ?? ""}`);
    else out.push(`    mechanism: ${h.mechanism}`);
    for (const a of h.honored ?? []) {
      out.push(`    selector ${a.selector} ${a.action}: ${a.honored}`);
      if (a.afterExit !== undefined) out.push(`    selector ${a.selector} ${a.action}, ${a.afterExit}`);
    }
    if (h.afterExit !== undefined) out.push(`    after the agent exits: ${h.afterExit}`);
    for (const l of h.limits ?? []) out.push(`    limit: ${l}`);
    for (const b of h.bypasses ?? []) out.push(`    BYPASS on this kernel: ${b}`);
    for (const b of h.binaries ?? []) for (const e of b.entries) out.push(`    selector ${b.selector} matchBinaries ${b.op} ${e.path}: ${e.match}`);
    if (h.args.length > 0) out.push(`    args: ${h.args.map((a) => `slot ${a.slot}=${a.type}@${a.source}#${a.index}`).join(", ")}`);
    if (h.returnArgAction !== undefined) out.push(`    on return: ${h.returnArgAction} on the returned socket`);
    if (h.alwaysPost) out.push("    no selectors: every call posts an event");
    for (const s of h.selectors) {
      out.push(`    selector ${s.index}${s.label ? ` "${s.label}"` : ""}: ${s.matchers.length === 0 ? "matches every call" : `all of ${s.matchers.length} matcher(s)`}`);
      for (const m of s.matchers) {
        const more = m.entries > m.sample.length ? ` (+${m.entries - m.sample.length} more)` : "";
        const vals = m.sample.length > 0 ? ` [${m.sample.join(", ")}${more}]` : "";
        const set = m.setId !== undefined ? ` #${m.setId}` : "";
        out.push(`      ${m.field} ${m.operator} on ${m.target}: ${m.storage}${set}, ${m.entries} value(s)${vals}${m.flags.length ? ` {${m.flags.join(", ")}}` : ""}`);
      }
      out.push(`      actions: ${s.actions.map(actionText).join(", ")}`);
      if (s.returnActions.length > 0) out.push(`      return actions: ${s.returnActions.map(actionText).join(", ")}`);
    }
  }
  return `${out.join("\n")}\n`;
}
