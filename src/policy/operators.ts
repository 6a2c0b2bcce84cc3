// Which matchArgs operators apply to which argument types, and how their
// values are written. One table, used by the validator and available to the
// engine so both agree on what a policy may say (reference §1.5/§1.6).
import type { ArgOperator, ArgType } from "./types.ts";
import type { IntWidth } from "./values.ts";

export const INT_OPERATORS: readonly ArgOperator[] = [
  "Equal", "NotEqual", "GreaterThan", "LessThan", "Mask", "InMap", "NotInMap", "InRange", "NotInRange",
];
export const STRING_OPERATORS: readonly ArgOperator[] = [
  "Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix", "SubString", "SubStringIgnCase",
];
const SOCK_OPERATORS: readonly ArgOperator[] = [
  "SAddr", "NotSAddr", "DAddr", "NotDAddr", "SPort", "NotSPort", "DPort", "NotDPort",
  "SPortPriv", "NotSportPriv", "DPortPriv", "NotDPortPriv", "Protocol", "Family", "State",
];
const SOCKADDR_OPERATORS: readonly ArgOperator[] = ["SAddr", "NotSAddr", "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "Family"];
const FILE_TYPE_OPERATORS: readonly ArgOperator[] = ["FileType", "NotFileType"];

/** Integer width each integer-like type's values are parsed with. */
export const INT_WIDTH: Partial<Record<ArgType, IntWidth>> = {
  int: "s32", int32: "s32", sint32: "s32", int16: "s32", sint16: "s32", int8: "s32", sint8: "s32", size_t: "s32",
  capability: "s32", bpf_cmd: "s32",
  uint32: "u32", uint16: "u32", uint8: "u32",
  long: "s64", int64: "s64", sint64: "s64", syscall64: "s64",
  ulong: "u64", uint64: "u64",
};

export const CAP_MASK_TYPES: readonly ArgType[] = ["kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective"];

/** Types whose matchArgs compare strings (paths, names, buffers). */
export const STRING_LIKE_TYPES: readonly ArgType[] = [
  "string", "filename", "net_device", "data_loc", "char_buf", "file", "fd", "kiocb", "path", "dentry", "linux_binprm",
];

/** Operators allowed on an argument of `type`; CelExpr works on any argument. `auto`
 * (tracepoint format inference) is only known at load time, so everything passes. */
export function operatorsFor(type: ArgType): readonly ArgOperator[] {
  if (type === "auto") return ["CelExpr", ...INT_OPERATORS, ...STRING_OPERATORS, ...SOCK_OPERATORS, ...FILE_TYPE_OPERATORS];
  if (INT_WIDTH[type] !== undefined) return ["CelExpr", ...INT_OPERATORS];
  switch (type) {
    case "file":
    case "path":
      return ["CelExpr", ...STRING_OPERATORS, ...FILE_TYPE_OPERATORS];
    case "string": case "filename": case "net_device": case "data_loc": case "char_buf":
    case "fd": case "kiocb": case "dentry": case "linux_binprm":
      return ["CelExpr", ...STRING_OPERATORS];
    case "char_iovec": case "iov_iter":
      return ["CelExpr", "Prefix", "NotPrefix", "Postfix", "NotPostfix"];
    case "sock": case "socket": case "skb":
      return ["CelExpr", ...SOCK_OPERATORS];
    case "sockaddr":
      return ["CelExpr", ...SOCKADDR_OPERATORS];
    case "sockaddr_un":
      return ["CelExpr", "Equal", "NotEqual", "Prefix", "NotPrefix", "SubString", "SubStringIgnCase", "Family"];
    case "kernel_cap_t": case "cap_inheritable": case "cap_permitted": case "cap_effective":
      return ["CelExpr", "Equal", "NotEqual", "CapabilitiesGained"];
    default:
      // cred, user_namespace, bpf_attr, bpf_prog, bpf_map, perf_event, load_info, module, const_buf, nop
      return ["CelExpr"];
  }
}

/** Operators that take no values. */
export const VALUELESS_OPERATORS: readonly ArgOperator[] = ["SPortPriv", "NotSportPriv", "DPortPriv", "NotDPortPriv", "CapabilitiesGained"];

/** Operators whose integer values are written inline (at most 4 of them). */
export const INLINE_INT_OPERATORS: readonly ArgOperator[] = ["Equal", "NotEqual", "GreaterThan", "LessThan", "Mask", "InRange", "NotInRange"];
