// The typed model of a Tetragon TracingPolicy / TracingPolicyNamespaced
// (cilium.io/v1alpha1), as produced by validate.ts after a policy passed
// validation. Field names mirror the CRD's YAML spelling exactly so a reader
// can hold this file next to Tetragon's types.go.
//
// The model is *normalized*: every CRD default is applied (syscall: true,
// return: false, arg type "auto", capability type "Effective", ...), every
// list field is present (possibly empty), and accepted aliases are rewritten
// to one canonical spelling (operators, action names, argument types). The
// engine (engine-as/, src/policy/engine.ts) can therefore switch on the
// string unions below without re-checking spellings or undefineds.

// ---------------------------------------------------------------- enums

export const API_VERSION = "cilium.io/v1alpha1";

export const POLICY_KINDS = ["TracingPolicy", "TracingPolicyNamespaced"] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/** Argument types of KProbeArg.type (CRD enum, canonical spelling). */
export const ARG_TYPES = [
  "auto",
  "int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32",
  "ulong", "uint64", "size_t", "long", "sint64", "int64",
  "char_buf", "char_iovec", "skb", "sock", "sockaddr", "socket", "sockaddr_un",
  "string", "fd", "file", "filename", "path", "nop",
  "bpf_attr", "perf_event", "bpf_map", "user_namespace", "capability", "kiocb", "iov_iter",
  "cred", "const_buf", "load_info", "module", "syscall64",
  "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective",
  "linux_binprm", "data_loc", "net_device", "bpf_cmd", "dentry", "bpf_prog",
] as const;
export type ArgType = (typeof ARG_TYPES)[number];

/** matchArgs / matchData / matchReturnArgs operators (CRD enum, canonical spelling).
 * `GT`/`LT` are normalized to `GreaterThan`/`LessThan`; `NotSPortPriv` to the
 * CRD's `NotSportPriv`; the docs' `SubStringIgnoreCase` to `SubStringIgnCase`. */
export const ARG_OPERATORS = [
  "Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix",
  "GreaterThan", "LessThan", "Mask",
  "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "DPort", "NotDPort", "DPortPriv", "NotDPortPriv",
  "SAddr", "NotSAddr", "DAddr", "NotDAddr", "Protocol", "Family", "State",
  "InMap", "NotInMap", "CapabilitiesGained", "InRange", "NotInRange",
  "SubString", "SubStringIgnCase", "CelExpr", "FileType", "NotFileType",
] as const;
export type ArgOperator = (typeof ARG_OPERATORS)[number];

/** matchBinaries / matchParentBinaries operators. */
export const BINARY_OPERATORS = ["In", "NotIn", "Prefix", "NotPrefix", "Postfix", "NotPostfix"] as const;
export type BinaryOperator = (typeof BINARY_OPERATORS)[number];

/** matchPIDs, matchNamespaces, matchNamespaceChanges, matchCapabilities, matchCapabilityChanges. */
export const SET_OPERATORS = ["In", "NotIn"] as const;
export type SetOperator = (typeof SET_OPERATORS)[number];

export const NAMESPACE_TYPES = [
  "Uts", "Ipc", "Mnt", "Pid", "PidForChildren", "Net", "Time", "TimeForChildren", "Cgroup", "User",
] as const;
export type NamespaceType = (typeof NAMESPACE_TYPES)[number];

export const CAPABILITY_SET_TYPES = ["Effective", "Inheritable", "Permitted"] as const;
export type CapabilitySetType = (typeof CAPABILITY_SET_TYPES)[number];

/** Action names (CRD enum on main, canonical spelling; the parser accepts any case). */
export const ACTION_NAMES = [
  "Post", "Sigkill", "Override", "GetUrl", "DnsLookup", "NoPost", "Signal",
  "TrackSock", "UntrackSock", "NotifyEnforcer", "CleanupEnforcerNotification", "Set",
] as const;
export type ActionName = (typeof ACTION_NAMES)[number];

export const RETURN_ARG_ACTIONS = ["TrackSock", "UntrackSock"] as const;
export type ReturnArgAction = (typeof RETURN_ARG_ACTIONS)[number];

export const RATE_LIMIT_SCOPES = ["thread", "process", "global"] as const;
export type RateLimitScope = (typeof RATE_LIMIT_SCOPES)[number];

export const LIST_TYPES = ["syscalls", "generated_syscalls", "generated_ftrace"] as const;
export type ListType = (typeof LIST_TYPES)[number];

export const DATA_SOURCES = ["current_task", "pt_regs"] as const;
export type DataSource = (typeof DATA_SOURCES)[number];

/** Hook kinds as they appear under spec. */
export const HOOK_KINDS = ["kprobes", "fentries", "tracepoints", "uprobes", "usdts", "lsmhooks"] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

// ---------------------------------------------------------------- metadata

export interface ObjectMeta {
  name: string;
  /** Required for TracingPolicyNamespaced, absent for TracingPolicy. */
  namespace?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

// ---------------------------------------------------------------- k8s label selector

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values: string[];
}

export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: LabelSelectorRequirement[];
}

// ---------------------------------------------------------------- arguments

export interface KProbeArg {
  /** Position in the function prototype (tracepoints: format field index). */
  index: number;
  type: ArgType;
  /** BTF field path, e.g. "mm.owner.real_parent.comm"; "" when unset. */
  resolve: string;
  /** 1-based index of the size argument for char_buf/char_iovec; 0 when unset. */
  sizeArgIndex: number;
  returnCopy: boolean;
  maxData: boolean;
  label: string;
  /** Only for `data` entries. */
  source?: DataSource;
  btfType?: string;
  btfTypeModule?: string;
}

// ---------------------------------------------------------------- selectors

export interface ArgSelector {
  /** Prototype position (matchReturnArgs: 0 = the return value). */
  index: number;
  /** Positions in the spec `args` list; when non-empty, takes precedence over index. */
  args: number[];
  operator: ArgOperator;
  /** Values exactly as written (strings); `list:NAME` references kept as-is. */
  values: string[];
}

export interface BinarySelector {
  operator: BinaryOperator;
  values: string[];
  followChildren: boolean;
}

export interface PIDSelector {
  operator: SetOperator;
  values: number[];
  isNamespacePID: boolean;
  followForks: boolean;
}

export interface NamespaceSelector {
  namespace: NamespaceType;
  operator: SetOperator;
  /** Namespace inode numbers as decimal strings, or "host_ns". */
  values: string[];
}

export interface NamespaceChangesSelector {
  operator: SetOperator;
  values: NamespaceType[];
}

export interface CapabilitiesSelector {
  type: CapabilitySetType;
  operator: SetOperator;
  isNamespaceCapability: boolean;
  /** Canonical capability names as in Tetragon's proto enum (CAP_SYS_ADMIN, DAC_OVERRIDE, ...). */
  values: string[];
}

export interface WorkloadsSelector {
  podSelector?: LabelSelector;
  containerSelector?: LabelSelector;
  /** Only {} (all host workloads) is allowed when present. */
  hostSelector?: LabelSelector;
}

export interface ActionSelector {
  action: ActionName;
  argUrl?: string;
  argFqdn?: string;
  argError?: number;
  argSig?: number;
  argSock?: number;
  argIndex?: number;
  argValue?: number;
  /** Uprobe Override register assignments; empty when unset. */
  argRegs: string[];
  argNewSymbol?: string;
  argNewAddr?: number;
  argNewOffset?: number;
  /** As written ("10", "5s", "1m", "2h"); see rateLimitMs for the parsed value. */
  rateLimit?: string;
  /** rateLimit parsed to milliseconds (present iff rateLimit is). */
  rateLimitMs?: number;
  rateLimitScope?: RateLimitScope;
  kernelStackTrace: boolean;
  userStackTrace: boolean;
  imaHash: boolean;
}

export interface KProbeSelector {
  label?: string;
  matchPIDs: PIDSelector[];
  matchArgs: ArgSelector[];
  matchData: ArgSelector[];
  matchReturnArgs: ArgSelector[];
  matchBinaries: BinarySelector[];
  matchParentBinaries: BinarySelector[];
  matchNamespaces: NamespaceSelector[];
  matchNamespaceChanges: NamespaceChangesSelector[];
  matchCapabilities: CapabilitiesSelector[];
  matchCapabilityChanges: CapabilitiesSelector[];
  matchWorkloads?: WorkloadsSelector;
  matchActions: ActionSelector[];
  matchReturnActions: ActionSelector[];
  /** Names of spec.selectorsMacros entries; validate.ts has already merged them in. */
  macros: string[];
}

// ---------------------------------------------------------------- hooks

export interface KprobeIgnore {
  callNotFound: boolean;
}

/** kprobes and fentries. */
export interface KProbeSpec {
  /** Kernel symbol or `list:NAME`. */
  call: string;
  /** CRD default true. */
  syscall: boolean;
  return: boolean;
  args: KProbeArg[];
  data: KProbeArg[];
  returnArg?: KProbeArg;
  returnArgAction?: ReturnArgAction;
  selectors: KProbeSelector[];
  message?: string;
  tags: string[];
  ignore: KprobeIgnore;
}

export interface TracepointSpec {
  subsystem: string;
  event: string;
  raw: boolean;
  args: KProbeArg[];
  selectors: KProbeSelector[];
  message?: string;
  tags: string[];
}

export interface UprobeIgnore {
  digestVerificationFailure: boolean;
}

export interface UProbeSpec {
  path: string;
  btfPath?: string;
  /** Exactly one of symbols / offsets / addrs is non-empty. 64-bit values are
   * numbers: validation rejects anything above Number.MAX_SAFE_INTEGER. */
  symbols: string[];
  offsets: number[];
  addrs: number[];
  refCtrOffsets: number[];
  return: boolean;
  returnArg?: KProbeArg;
  args: KProbeArg[];
  data: KProbeArg[];
  selectors: KProbeSelector[];
  message?: string;
  tags: string[];
  binaryDigests: string[];
  ignore: UprobeIgnore;
}

export interface UsdtSpec {
  path: string;
  btfPath?: string;
  provider: string;
  name: string;
  args: KProbeArg[];
  selectors: KProbeSelector[];
  message?: string;
  tags: string[];
}

export interface LsmHookSpec {
  /** LSM hook name without the `security_` prefix, e.g. "file_open". */
  hook: string;
  args: KProbeArg[];
  selectors: KProbeSelector[];
  message?: string;
  tags: string[];
}

export interface ListSpec {
  name: string;
  values: string[];
  type?: ListType;
  pattern?: string;
  validated: boolean;
}

export interface EnforcerSpec {
  calls: string[];
}

export interface OptionSpec {
  name: string;
  value: string;
}

// ---------------------------------------------------------------- policy

export interface TracingPolicySpec {
  kprobes: KProbeSpec[];
  fentries: KProbeSpec[];
  tracepoints: TracepointSpec[];
  uprobes: UProbeSpec[];
  usdts: UsdtSpec[];
  lsmhooks: LsmHookSpec[];
  lists: ListSpec[];
  enforcers: EnforcerSpec[];
  options: OptionSpec[];
  /** Kept for reference; selectors have their macros merged already. */
  selectorsMacros: Record<string, KProbeSelector>;
  podSelector?: LabelSelector;
  containerSelector?: LabelSelector;
  hostSelector?: LabelSelector;
  nodeSelector?: LabelSelector;
  loader: boolean;
}

export interface TracingPolicy {
  apiVersion: typeof API_VERSION;
  kind: PolicyKind;
  metadata: ObjectMeta;
  spec: TracingPolicySpec;
}

// ---------------------------------------------------------------- diagnostics

export type Severity = "error" | "warning";

/** One diagnostic about a policy file, with the position of the offending node. */
export interface PolicyError {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
  /** Field path, e.g. "spec.kprobes[0].selectors[1].matchArgs[0].operator"; "" for the document itself. */
  path: string;
  /** What was found and what is allowed. */
  message: string;
  severity: Severity;
}

/** Where a field of a document starts in its source file (1-based). */
export interface SourcePos {
  line: number;
  column: number;
}

/** Field path (as in PolicyError.path) -> position of that node's value. */
export type SourceMap = ReadonlyMap<string, SourcePos>;

/** A validated policy together with where it came from. */
export interface LoadedPolicy {
  policy: TracingPolicy;
  file: string;
  /** 0-based index of the YAML document inside the file. */
  document: number;
  sourceMap: SourceMap;
}
