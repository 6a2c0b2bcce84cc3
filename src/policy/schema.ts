// The structural schema of TracingPolicy (the CRD's OpenAPI part): which
// fields exist, their types, defaults, enums and accepted alias spellings.
// check-structure.ts walks a document against these descriptors; semantic
// rules (argument/operator compatibility, indexes, limits) live in rules.ts.
import {
  ACTION_NAMES, ARG_OPERATORS, ARG_TYPES, BINARY_OPERATORS, CAPABILITY_SET_TYPES, DATA_SOURCES,
  LIST_TYPES, NAMESPACE_TYPES, RATE_LIMIT_SCOPES, RETURN_ARG_ACTIONS, SET_OPERATORS,
} from "./types.ts";

export type FieldType =
  | { t: "string" }
  | { t: "int"; min: bigint; max: bigint }
  | { t: "bool" }
  | { t: "enum"; values: readonly string[]; aliases?: Readonly<Record<string, Alias>>; caseInsensitive?: boolean; removed?: Readonly<Record<string, string>> }
  | { t: "array"; of: FieldType }
  | { t: "object"; obj: ObjectDesc }
  | { t: "stringMap" }
  | { t: "objectMap"; obj: ObjectDesc }
  /** Accepted and kept out of the model (k8s bookkeeping such as metadata.uid). */
  | { t: "ignored" };

/** An accepted non-canonical spelling; `note` becomes a warning when Tetragon itself would reject it. */
export interface Alias {
  to: string;
  note?: string;
}

export interface FieldDesc {
  type: FieldType;
  required?: boolean;
  /** Value put into the model when the field is absent or null. Arrays default to [] and maps to {} without saying so. */
  default?: string | number | boolean;
  /** For objects: when absent, build the object from {} so its own defaults apply. */
  fillEmpty?: boolean;
}

export interface ObjectDesc {
  /** Name used in messages, e.g. "KProbeSpec". */
  name: string;
  fields: Readonly<Record<string, FieldDesc>>;
  /** Fields Tetragon used to accept, with the message explaining what replaced them. */
  removed?: Readonly<Record<string, string>>;
}

// FollowFD / UnfollowFD / CopyFD and their parameters were deprecated as unsafe
// and removed from Tetragon's CRD after v1.7.0 (reference §1.7).
const FD_ACTIONS_GONE = "was removed from Tetragon after v1.7.0 (deprecated as unsafe); the fd argument type now resolves the file path itself, so declare the argument as type fd or file instead";
const REMOVED_ACTIONS: Record<string, string> = {
  FollowFD: `action FollowFD ${FD_ACTIONS_GONE}`,
  UnfollowFD: `action UnfollowFD ${FD_ACTIONS_GONE}`,
  CopyFD: `action CopyFD ${FD_ACTIONS_GONE}`,
};

const U32 = { t: "int", min: 0n, max: 0xffffffffn } as const;
const S32 = { t: "int", min: -(1n << 31n), max: (1n << 31n) - 1n } as const;
/** uint64/int64 fields end up as JS numbers in the model, so they are bounded by 2^53-1. */
const U53 = { t: "int", min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) } as const;
const S53 = { t: "int", min: -BigInt(Number.MAX_SAFE_INTEGER), max: BigInt(Number.MAX_SAFE_INTEGER) } as const;
const STR = { t: "string" } as const;
const BOOL = { t: "bool" } as const;
const arr = (of: FieldType): FieldType => ({ t: "array", of });
const obj = (o: ObjectDesc): FieldType => ({ t: "object", obj: o });
const opt = (type: FieldType, dflt?: string | number | boolean): FieldDesc => (dflt === undefined ? { type } : { type, default: dflt });
const req = (type: FieldType): FieldDesc => ({ type, required: true });

/** Operators: schema spelling is canonical; the documented / lower-case spellings
 * that Tetragon's SelectorOp() accepts are normalized, with a note when the CRD's
 * strict enum would reject them. */
const strictNote = (from: string, to: string): string =>
  `operator "${from}" normalized to "${to}" (Tetragon's parser accepts it, but its CRD schema only allows "${to}")`;
const OPERATOR_ALIASES: Record<string, Alias> = (() => {
  const a: Record<string, Alias> = {
    GT: { to: "GreaterThan" },
    LT: { to: "LessThan" },
    NotSPortPriv: { to: "NotSportPriv" },
    SubStringIgnoreCase: { to: "SubStringIgnCase", note: `operator "SubStringIgnoreCase" (the docs' spelling) normalized to "SubStringIgnCase", the only spelling Tetragon accepts` },
  };
  const lower: Record<string, string> = {
    gt: "GreaterThan", lt: "LessThan", eq: "Equal", neq: "NotEqual", prefix: "Prefix", notprefix: "NotPrefix",
    postfix: "Postfix", notpostfix: "NotPostfix", mask: "Mask", saddr: "SAddr", Saddr: "SAddr", daddr: "DAddr",
    Daddr: "DAddr", notsaddr: "NotSAddr", NotSaddr: "NotSAddr", notdaddr: "NotDAddr", NotDaddr: "NotDAddr",
    sport: "SPort", Sport: "SPort", dport: "DPort", Dport: "DPort", protocol: "Protocol", notsport: "NotSPort",
    NotSport: "NotSPort", notdport: "NotDPort", NotDport: "NotDPort", sportpriv: "SPortPriv", SportPriv: "SPortPriv",
    dportpriv: "DPortPriv", DportPriv: "DPortPriv", notsportpriv: "NotSportPriv", notdportpriv: "NotDPortPriv",
    NotDportPriv: "NotDPortPriv", family: "Family", state: "State",
  };
  for (const [from, to] of Object.entries(lower)) a[from] = { to, note: strictNote(from, to) };
  return a;
})();

export const KPROBE_ARG: ObjectDesc = {
  name: "KProbeArg",
  fields: {
    index: req(U32),
    type: opt({ t: "enum", values: ARG_TYPES, aliases: { "unsigned long": { to: "ulong" } } }, "auto"),
    resolve: opt(STR, ""),
    sizeArgIndex: opt(U32, 0),
    returnCopy: opt(BOOL, false),
    maxData: opt(BOOL, false),
    label: opt(STR, ""),
    source: opt({ t: "enum", values: DATA_SOURCES }),
    btfType: opt(STR),
    btfTypeModule: opt(STR),
  },
};

export const ARG_SELECTOR: ObjectDesc = {
  name: "ArgSelector",
  fields: {
    index: opt(U32, 0),
    args: opt(arr(U32)),
    operator: req({ t: "enum", values: ARG_OPERATORS, aliases: OPERATOR_ALIASES }),
    values: opt(arr(STR)),
  },
};

const BINARY_SELECTOR: ObjectDesc = {
  name: "BinarySelector",
  fields: {
    operator: req({ t: "enum", values: BINARY_OPERATORS }),
    values: req(arr(STR)),
    followChildren: opt(BOOL, false),
  },
};

const PID_SELECTOR: ObjectDesc = {
  name: "PIDSelector",
  fields: {
    operator: req({ t: "enum", values: SET_OPERATORS }),
    values: req(arr(U32)),
    isNamespacePID: opt(BOOL, false),
    followForks: opt(BOOL, false),
  },
};

const NAMESPACE_SELECTOR: ObjectDesc = {
  name: "NamespaceSelector",
  fields: {
    // Tetragon lower-cases the namespace before its lookup; accept any case.
    namespace: req({ t: "enum", values: NAMESPACE_TYPES, caseInsensitive: true }),
    operator: req({ t: "enum", values: SET_OPERATORS }),
    values: req(arr(STR)),
  },
};

const NAMESPACE_CHANGES_SELECTOR: ObjectDesc = {
  name: "NamespaceChangesSelector",
  fields: {
    operator: req({ t: "enum", values: SET_OPERATORS }),
    values: req(arr({ t: "enum", values: NAMESPACE_TYPES, caseInsensitive: true })),
  },
};

const CAPABILITIES_SELECTOR: ObjectDesc = {
  name: "CapabilitiesSelector",
  fields: {
    type: opt({ t: "enum", values: CAPABILITY_SET_TYPES }, "Effective"),
    operator: req({ t: "enum", values: SET_OPERATORS }),
    isNamespaceCapability: opt(BOOL, false),
    values: req(arr(STR)),
  },
};

export const LABEL_SELECTOR: ObjectDesc = {
  name: "LabelSelector",
  fields: {
    matchLabels: opt({ t: "stringMap" }),
    matchExpressions: opt(arr(obj({
      name: "LabelSelectorRequirement",
      fields: {
        key: req(STR),
        operator: req({ t: "enum", values: ["In", "NotIn", "Exists", "DoesNotExist"] }),
        values: opt(arr(STR)),
      },
    }))),
  },
};

const WORKLOADS_SELECTOR: ObjectDesc = {
  name: "WorkloadsSelector",
  fields: {
    podSelector: opt(obj(LABEL_SELECTOR)),
    containerSelector: opt(obj(LABEL_SELECTOR)),
    hostSelector: opt(obj(LABEL_SELECTOR)),
  },
};

export const ACTION_SELECTOR: ObjectDesc = {
  name: "ActionSelector",
  fields: {
    // Tetragon matches action names case-insensitively (strings.ToLower).
    action: req({ t: "enum", values: ACTION_NAMES, caseInsensitive: true, removed: REMOVED_ACTIONS }),
    argUrl: opt(STR),
    argFqdn: opt(STR),
    argError: opt(S32),
    argSig: opt(U32),
    argSock: opt(U32),
    argIndex: opt(U32),
    argValue: opt(U32),
    argRegs: opt(arr(STR)),
    argNewSymbol: opt(STR),
    argNewAddr: opt(U53),
    argNewOffset: opt(S53),
    rateLimit: opt(STR),
    rateLimitScope: opt({ t: "enum", values: RATE_LIMIT_SCOPES }),
    kernelStackTrace: opt(BOOL, false),
    userStackTrace: opt(BOOL, false),
    imaHash: opt(BOOL, false),
  },
  removed: {
    argFd: `argFd belonged to the FollowFD/UnfollowFD/CopyFD actions, which ${FD_ACTIONS_GONE}`,
    argName: `argName belonged to the FollowFD/UnfollowFD/CopyFD actions, which ${FD_ACTIONS_GONE}`,
  },
};

export const KPROBE_SELECTOR: ObjectDesc = {
  name: "KProbeSelector",
  fields: {
    label: opt(STR),
    matchPIDs: opt(arr(obj(PID_SELECTOR))),
    matchArgs: opt(arr(obj(ARG_SELECTOR))),
    matchData: opt(arr(obj(ARG_SELECTOR))),
    matchReturnArgs: opt(arr(obj(ARG_SELECTOR))),
    matchBinaries: opt(arr(obj(BINARY_SELECTOR))),
    matchParentBinaries: opt(arr(obj(BINARY_SELECTOR))),
    matchNamespaces: opt(arr(obj(NAMESPACE_SELECTOR))),
    matchNamespaceChanges: opt(arr(obj(NAMESPACE_CHANGES_SELECTOR))),
    matchCapabilities: opt(arr(obj(CAPABILITIES_SELECTOR))),
    matchCapabilityChanges: opt(arr(obj(CAPABILITIES_SELECTOR))),
    matchWorkloads: opt(obj(WORKLOADS_SELECTOR)),
    matchActions: opt(arr(obj(ACTION_SELECTOR))),
    matchReturnActions: opt(arr(obj(ACTION_SELECTOR))),
    macros: opt(arr(STR)),
  },
};

const SELECTORS = opt(arr(obj(KPROBE_SELECTOR)));
const ARGS = opt(arr(obj(KPROBE_ARG)));
const TAGS = opt(arr(STR));

export const KPROBE_SPEC: ObjectDesc = {
  name: "KProbeSpec",
  fields: {
    call: req(STR),
    syscall: opt(BOOL, true),
    return: opt(BOOL, false),
    args: ARGS,
    data: ARGS,
    returnArg: opt(obj(KPROBE_ARG)),
    returnArgAction: opt({ t: "enum", values: RETURN_ARG_ACTIONS, caseInsensitive: true }),
    selectors: SELECTORS,
    message: opt(STR),
    tags: TAGS,
    ignore: { type: obj({ name: "KprobeIgnore", fields: { callNotFound: opt(BOOL, false) } }), fillEmpty: true },
  },
};

const TRACEPOINT_SPEC: ObjectDesc = {
  name: "TracepointSpec",
  fields: {
    subsystem: req(STR),
    event: req(STR),
    raw: opt(BOOL, false),
    args: ARGS,
    selectors: SELECTORS,
    message: opt(STR),
    tags: TAGS,
  },
};

const UPROBE_SPEC: ObjectDesc = {
  name: "UProbeSpec",
  fields: {
    path: req(STR),
    btfPath: opt(STR),
    symbols: opt(arr(STR)),
    offsets: opt(arr(U53)),
    addrs: opt(arr(U53)),
    refCtrOffsets: opt(arr(U53)),
    return: opt(BOOL, false),
    returnArg: opt(obj(KPROBE_ARG)),
    args: ARGS,
    data: ARGS,
    selectors: SELECTORS,
    message: opt(STR),
    tags: TAGS,
    binaryDigests: opt(arr(STR)),
    ignore: { type: obj({ name: "UprobeIgnore", fields: { digestVerificationFailure: opt(BOOL, false) } }), fillEmpty: true },
  },
};

const USDT_SPEC: ObjectDesc = {
  name: "UsdtSpec",
  fields: {
    path: req(STR),
    btfPath: opt(STR),
    provider: req(STR),
    name: req(STR),
    args: ARGS,
    selectors: SELECTORS,
    message: opt(STR),
    tags: TAGS,
  },
};

const LSM_HOOK_SPEC: ObjectDesc = {
  name: "LsmHookSpec",
  fields: {
    hook: req(STR),
    args: ARGS,
    selectors: SELECTORS,
    message: opt(STR),
    tags: TAGS,
  },
};

const LIST_SPEC: ObjectDesc = {
  name: "ListSpec",
  fields: {
    name: req(STR),
    values: opt(arr(STR)),
    type: opt({ t: "enum", values: LIST_TYPES }),
    pattern: opt(STR),
    validated: opt(BOOL, false),
  },
};

export const SPEC: ObjectDesc = {
  name: "TracingPolicySpec",
  fields: {
    kprobes: opt(arr(obj(KPROBE_SPEC))),
    fentries: opt(arr(obj(KPROBE_SPEC))),
    tracepoints: opt(arr(obj(TRACEPOINT_SPEC))),
    uprobes: opt(arr(obj(UPROBE_SPEC))),
    usdts: opt(arr(obj(USDT_SPEC))),
    lsmhooks: opt(arr(obj(LSM_HOOK_SPEC))),
    lists: opt(arr(obj(LIST_SPEC))),
    enforcers: opt(arr(obj({ name: "EnforcerSpec", fields: { calls: req(arr(STR)) } }))),
    options: opt(arr(obj({ name: "OptionSpec", fields: { name: req(STR), value: opt(STR, "") } }))),
    selectorsMacros: opt({ t: "objectMap", obj: KPROBE_SELECTOR }),
    podSelector: opt(obj(LABEL_SELECTOR)),
    containerSelector: opt(obj(LABEL_SELECTOR)),
    hostSelector: opt(obj(LABEL_SELECTOR)),
    nodeSelector: opt(obj(LABEL_SELECTOR)),
    loader: opt(BOOL, false),
  },
};

const IGNORED = { type: { t: "ignored" } } as const;
export const METADATA: ObjectDesc = {
  name: "ObjectMeta",
  fields: {
    name: req(STR),
    namespace: opt(STR),
    labels: opt({ t: "stringMap" }),
    annotations: opt({ t: "stringMap" }),
    // Bookkeeping fields a `kubectl get -o yaml` dump carries; valid, not used.
    generateName: IGNORED, uid: IGNORED, resourceVersion: IGNORED, generation: IGNORED,
    creationTimestamp: IGNORED, deletionTimestamp: IGNORED, deletionGracePeriodSeconds: IGNORED,
    ownerReferences: IGNORED, finalizers: IGNORED, managedFields: IGNORED, selfLink: IGNORED,
  },
};

export const POLICY: ObjectDesc = {
  name: "TracingPolicy",
  fields: {
    apiVersion: req({ t: "enum", values: ["cilium.io/v1alpha1"] }),
    kind: req({ t: "enum", values: ["TracingPolicy", "TracingPolicyNamespaced"] }),
    metadata: req(obj(METADATA)),
    spec: req(obj(SPEC)),
  },
};
