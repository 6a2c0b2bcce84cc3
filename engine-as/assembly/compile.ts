// Policy -> kernel filter tables (the blob described by bpf/include/ward_filter.h).
// This is where selector semantics are decided: operator/type compatibility, value
// syntax, Tetragon's limits, defaults (no actions = Post), and the placement of every
// value set in the map made for its operator.
import { Writer, utf8, bytesKey } from "./io";
import * as L from "./layout";
import {
  parseInteger, parsedInt, parseRange, rangeLo, rangeHi, parseIntRange, parseDecimal,
  parseCidr, addrBytes, addrFamily, addrPrefix, parseProtocol, parseFamily, parseState,
  parseFileType, capBit, nsIndex, setRange, setParsed,
} from "./parse";
import {
  PolicySpec, HookSpec, ArgSpec, ArgMatch, SelectorSpec, ActionSpec, BinMatch, CapMatch,
} from "./model";

const HOOK_LIST_NAMES: string[] = ["", "kprobes", "fentries", "tracepoints", "tracepoints", "uprobes", "usdts", "lsmhooks"];

/** InMap value: "n" or "lo:hi" in base 10, negative allowed for signed types, reversed
 * ranges swapped. Sets rangeLo/rangeHi as two's complement, lo <= hi in the type's order;
 * the expansion counts up with u64 wrap-around, so "-5:5" crosses 0 correctly. */
function parseMapRange(v: string, signed: bool): bool {
  const c = v.indexOf(":");
  const a = c < 0 ? v : v.substring(0, c);
  const b = c < 0 ? v : v.substring(c + 1);
  if (!parseDec(a, signed)) return false;
  let lo = parsedInt;
  if (!parseDec(b, signed)) return false;
  let hi = parsedInt;
  if (signed ? <i64>hi < <i64>lo : hi < lo) { const x = lo; lo = hi; hi = x; }
  setRange(lo, hi);
  return true;
}

function parseDec(s: string, signed: bool): bool {
  if (signed && s.startsWith("-")) {
    if (!parseDecimal(s.substring(1)) || parsedInt > (<u64>1 << 63)) return false;
    setParsed(<u64>(-(<i64>parsedInt)));
    return true;
  }
  return parseDecimal(s);
}

export function argTypeCode(t: string): u16 {
  if (t == "int" || t == "int32" || t == "sint32" || t == "capability" || t == "bpf_cmd") return L.ARG_S32;
  if (t == "int16" || t == "sint16") return L.ARG_S16;
  if (t == "int8" || t == "sint8") return L.ARG_S8;
  if (t == "uint8") return L.ARG_U8;
  if (t == "uint16") return L.ARG_U16;
  if (t == "uint32") return L.ARG_U32;
  if (t == "long" || t == "int64" || t == "sint64") return L.ARG_S64;
  if (t == "ulong" || t == "uint64" || t == "size_t" || t == "unsigned long") return L.ARG_U64;
  if (t == "string" || t == "filename" || t == "data_loc" || t == "net_device") return L.ARG_STRING;
  if (t == "char_buf" || t == "char_iovec" || t == "iov_iter" || t == "const_buf") return L.ARG_BUF;
  if (t == "file" || t == "fd" || t == "kiocb" || t == "linux_binprm") return L.ARG_FILE;
  if (t == "path" || t == "dentry") return L.ARG_PATH;
  if (t == "sock" || t == "socket" || t == "skb") return L.ARG_SOCK;
  if (t == "sockaddr") return L.ARG_SOCKADDR;
  if (t == "sockaddr_un") return L.ARG_SOCKADDR_UN;
  if (t == "kernel_cap_t" || t == "cap_inheritable" || t == "cap_permitted" || t == "cap_effective") return L.ARG_CAPS;
  if (t == "syscall64") return L.ARG_SYSCALL64;
  if (t == "nop") return L.ARG_NOP;
  if (t == "auto" || t == "") return L.ARG_NONE;
  return L.ARG_OPAQUE;
}

export function opCode(s: string): u8 {
  if (s == "GreaterThan" || s == "GT") return L.OP_GT;
  if (s == "LessThan" || s == "LT") return L.OP_LT;
  if (s == "Equal") return L.OP_EQ;
  if (s == "NotEqual") return L.OP_NEQ;
  if (s == "In") return L.OP_IN;
  if (s == "NotIn") return L.OP_NOTIN;
  if (s == "Prefix") return L.OP_PREFIX;
  if (s == "Postfix") return L.OP_POSTFIX;
  if (s == "InMap") return L.OP_INMAP;
  if (s == "NotInMap") return L.OP_NOTINMAP;
  if (s == "Mask") return L.OP_MASK;
  if (s == "SAddr") return L.OP_SADDR;
  if (s == "DAddr") return L.OP_DADDR;
  if (s == "SPort") return L.OP_SPORT;
  if (s == "DPort") return L.OP_DPORT;
  if (s == "Protocol") return L.OP_PROTOCOL;
  if (s == "NotSPort") return L.OP_NOTSPORT;
  if (s == "NotDPort") return L.OP_NOTDPORT;
  if (s == "SPortPriv") return L.OP_SPORTPRIV;
  if (s == "NotSportPriv" || s == "NotSPortPriv") return L.OP_NOTSPORTPRIV;
  if (s == "DPortPriv") return L.OP_DPORTPRIV;
  if (s == "NotDPortPriv") return L.OP_NOTDPORTPRIV;
  if (s == "NotSAddr") return L.OP_NOTSADDR;
  if (s == "NotDAddr") return L.OP_NOTDADDR;
  if (s == "NotPrefix") return L.OP_NOTPREFIX;
  if (s == "NotPostfix") return L.OP_NOTPOSTFIX;
  if (s == "Family") return L.OP_FAMILY;
  if (s == "State") return L.OP_STATE;
  if (s == "CapabilitiesGained") return L.OP_CAPSGAINED;
  if (s == "InRange") return L.OP_INRANGE;
  if (s == "NotInRange") return L.OP_NOTINRANGE;
  if (s == "SubString") return L.OP_SUBSTRING;
  if (s == "SubStringIgnCase") return L.OP_SUBSTRING_IGNCASE;
  if (s == "FileType") return L.OP_FILETYPE;
  if (s == "NotFileType") return L.OP_NOTFILETYPE;
  return 0;
}

export function actionCode(s: string): u32 {
  if (s == "Post") return L.ACT_POST;
  if (s == "FollowFD") return L.ACT_FOLLOWFD;
  if (s == "Sigkill") return L.ACT_SIGKILL;
  if (s == "UnfollowFD") return L.ACT_UNFOLLOWFD;
  if (s == "Override") return L.ACT_OVERRIDE;
  if (s == "CopyFD") return L.ACT_COPYFD;
  if (s == "GetUrl") return L.ACT_GETURL;
  if (s == "DnsLookup") return L.ACT_DNSLOOKUP;
  if (s == "NoPost") return L.ACT_NOPOST;
  if (s == "Signal") return L.ACT_SIGNAL;
  if (s == "TrackSock") return L.ACT_TRACKSOCK;
  if (s == "UntrackSock") return L.ACT_UNTRACKSOCK;
  if (s == "NotifyEnforcer") return L.ACT_NOTIFYENFORCER;
  if (s == "CleanupEnforcerNotification") return L.ACT_CLEANUPENFORCER;
  if (s == "Set") return L.ACT_SET;
  return 0;
}

function isIntType(t: u16): bool {
  return (t >= L.ARG_S8 && t <= L.ARG_U64) || t == L.ARG_SYSCALL64;
}
function isSignedType(t: u16): bool {
  return t >= L.ARG_S8 && t <= L.ARG_S64;
}
function intBits(t: u16): i32 {
  return t == L.ARG_S64 || t == L.ARG_U64 || t == L.ARG_SYSCALL64 ? 64 : 32;
}
function isStrType(t: u16): bool {
  return t == L.ARG_STRING || t == L.ARG_BUF || t == L.ARG_FILE || t == L.ARG_PATH || t == L.ARG_SOCKADDR_UN;
}
function isStrOp(op: u8): bool {
  return op == L.OP_PREFIX || op == L.OP_NOTPREFIX || op == L.OP_POSTFIX || op == L.OP_NOTPOSTFIX ||
    op == L.OP_SUBSTRING || op == L.OP_SUBSTRING_IGNCASE;
}

/** A matcher being filled: 80 bytes laid out as struct ward_matcher. */
class M {
  b: Uint8Array = new Uint8Array(L.MATCHER_SIZE);
  kind(v: u8): M { this.b[L.M_KIND] = v; return this; }
  op(v: u8): M { this.b[L.M_OP] = v; return this; }
  slot(v: u8): M { this.b[L.M_SLOT] = v; return this; }
  slot2(v: u8): M { this.b[L.M_SLOT2] = v; return this; }
  vk(v: u8): M { this.b[L.M_VALUE_KIND] = v; return this; }
  n(v: i32): M { this.b[L.M_NVALUES] = <u8>v; return this; }
  flag(f: u16): M { store<u16>(this.b.dataStart + L.M_FLAGS, load<u16>(this.b.dataStart + L.M_FLAGS) | f); return this; }
  set(id: u32): M { store<u32>(this.b.dataStart + L.M_SET_ID, id); return this; }
  aux(v: u32): M { store<u32>(this.b.dataStart + L.M_AUX, v); return this; }
  val(i: i32, v: u64): M { store<u64>(this.b.dataStart + L.M_VALUES + (<usize>i << 3), v); return this; }
  getVal(i: i32): u64 { return load<u64>(this.b.dataStart + L.M_VALUES + (<usize>i << 3)); }
}

export class Compiler {
  errors: string[] = [];
  sec: Writer[] = [];
  count: u32[] = [];
  nextSet: u32;
  strings: Writer = new Writer(256);
  stringRefs: Map<string, u32> = new Map();
  binIdOf: Map<string, u32> = new Map();
  binEmitted: Set<u32> = new Set();
  followBits: u32 = 0;
  hooks: Writer = new Writer(L.HOOK_SIZE);
  // Per-set dedupe of entries, so repeated values do not produce duplicate map keys.
  seen: Set<string> = new Set();

  constructor(public p: PolicySpec) {
    for (let i: u32 = 0; i <= L.SEC_COUNT; i++) {
      this.sec.push(new Writer(64));
      this.count.push(0);
    }
    this.nextSet = p.setIdBase == 0 ? 1 : p.setIdBase;
    this.followBits = p.followBitBase;
    for (let i = 0; i < p.binNames.length; i++) {
      const b = p.binNames[i];
      this.binIdOf.set(bytesKey(0, b.dataStart, b.length), p.binIds[i]);
    }
  }

  err(path: string, msg: string): void {
    this.errors.push(path + ": " + msg);
  }

  newSet(): u32 {
    return this.nextSet++;
  }

  /** A STRINGS record ([u32 len][bytes]); returns offset + 1 (0 means none). */
  stringRef(s: string): u32 {
    if (s.length == 0) return 0;
    if (this.stringRefs.has(s)) return this.stringRefs.get(s);
    const ref = <u32>this.strings.len + 1;
    this.strings.str(s);
    this.stringRefs.set(s, ref);
    return ref;
  }

  private fresh(kind: u32, setId: u32, b: Uint8Array, n: i32): bool {
    const k = kind.toString() + ":" + bytesKey(setId, b.dataStart, n);
    if (this.seen.has(k)) return false;
    this.seen.add(k);
    return true;
  }

  // ---- value-set emitters ----

  /** Equal key; returns the class used. */
  addStrEq(setId: u32, v: Uint8Array): i32 {
    const c = L.strClass(v.length);
    if (!this.fresh(L.SEC_STR_EQ_BASE + c, setId, v, v.length)) return c;
    const w = this.sec[L.SEC_STR_EQ_BASE + c];
    const off = w.zeros(L.STR_EQ_HDR + L.strClassSize(c));
    w.putU32(off, setId);
    w.putU32(off + 4, <u32>v.length);
    w.putBytes(off + 8, v, v.length);
    this.count[L.SEC_STR_EQ_BASE + c]++;
    return c;
  }

  addPrefix(setId: u32, v: Uint8Array): void {
    if (!this.fresh(L.SEC_STR_PREFIX, setId, v, v.length)) return;
    const w = this.sec[L.SEC_STR_PREFIX];
    const off = w.zeros(L.PREFIX_KEY_SIZE);
    w.putU32(off, 32 + 8 * <u32>v.length);
    w.putU32(off + 4, setId);
    w.putBytes(off + 8, v, v.length);
    this.count[L.SEC_STR_PREFIX]++;
  }

  addPostfix(setId: u32, v: Uint8Array): void {
    const r = new Uint8Array(v.length);
    for (let i = 0; i < v.length; i++) r[i] = v[v.length - 1 - i];
    if (!this.fresh(L.SEC_STR_POSTFIX, setId, r, r.length)) return;
    const w = this.sec[L.SEC_STR_POSTFIX];
    const off = w.zeros(L.POSTFIX_KEY_SIZE);
    w.putU32(off, 32 + 8 * <u32>r.length);
    w.putU32(off + 4, setId);
    w.putBytes(off + 8, r, r.length);
    this.count[L.SEC_STR_POSTFIX]++;
  }

  addInt(setId: u32, v: u64): void {
    const k = "i" + setId.toString() + ":" + v.toString();
    if (this.seen.has(k)) return;
    this.seen.add(k);
    const w = this.sec[L.SEC_INT_SET];
    const off = w.zeros(L.INT_KEY_SIZE);
    w.putU32(off, setId);
    w.putU64(off + 8, v);
    this.count[L.SEC_INT_SET]++;
  }

  addAddr(setId: u32): void {
    const n = addrFamily == 4 ? 4 : 16;
    const k = "a" + setId.toString() + ":" + addrFamily.toString() + "/" + addrPrefix.toString() + ":" + bytesKey(0, addrBytes.dataStart, n);
    if (this.seen.has(k)) return;
    this.seen.add(k);
    const w = this.sec[L.SEC_ADDR_LPM];
    const off = w.zeros(L.ADDR_KEY_SIZE);
    w.putU32(off, 64 + <u32>addrPrefix);
    w.putU32(off + 4, setId);
    w.putU8(off + L.ADDR_K_FAMILY, addrFamily);
    w.putBytes(off + L.ADDR_K_ADDR, addrBytes, n);
    this.count[L.SEC_ADDR_LPM]++;
  }

  binId(path: Uint8Array): u32 {
    const k = bytesKey(0, path.dataStart, path.length);
    if (!this.binIdOf.has(k)) return 0;
    const id = this.binIdOf.get(k);
    if (!this.binEmitted.has(id)) {
      this.binEmitted.add(id);
      const w = this.sec[L.SEC_BIN_NAMES];
      const off = w.zeros(L.BIN_NAME_SIZE);
      w.putU32(off, id);
      w.putU32(off + 4, <u32>path.length);
      w.putBytes(off + 8, path, path.length);
      this.count[L.SEC_BIN_NAMES]++;
    }
    return id;
  }

  addBinSet(setId: u32, binId: u32): void {
    const k = "b" + setId.toString() + ":" + binId.toString();
    if (this.seen.has(k)) return;
    this.seen.add(k);
    const w = this.sec[L.SEC_BIN_SET];
    const off = w.zeros(L.BIN_SET_KEY_SIZE);
    w.putU32(off, setId);
    w.putU32(off + 4, binId);
    this.count[L.SEC_BIN_SET]++;
  }

  addSubstr(setId: u32, v: Uint8Array): u32 {
    const idx = this.count[L.SEC_SUBSTR];
    const w = this.sec[L.SEC_SUBSTR];
    const off = w.zeros(L.SUBSTR_ENTRY_SIZE);
    w.putU32(off, setId);
    w.putU32(off + 4, <u32>v.length);
    w.putBytes(off + 8, v, v.length);
    this.count[L.SEC_SUBSTR]++;
    return idx;
  }

  // ---- hooks ----

  compileHook(h: HookSpec, hi: i32): void {
    const path = "spec." + HOOK_LIST_NAMES[h.kind] + "[" + h.specIndex.toString() + "]";
    const base = this.hooks.zeros(L.HOOK_SIZE);
    const w = this.hooks;
    w.putU32(base + L.H_HOOK_ID, this.p.hookIdBase + <u32>hi);
    w.putU8(base + L.H_HOOK_KIND, h.kind);
    let hf: u8 = 0;
    if (h.flags & 1) hf |= L.HF_SYSCALL;
    if (h.flags & 2) hf |= L.HF_RETURN;
    if (h.selectors.length == 0) hf |= L.HF_NO_SELECTORS;
    w.putU8(base + L.H_FLAGS, hf);
    if (h.returnArgAction.length > 0) {
      const a = actionCode(h.returnArgAction);
      if (a != L.ACT_TRACKSOCK && a != L.ACT_UNTRACKSOCK) this.err(path + ".returnArgAction", "must be TrackSock or UntrackSock, not " + h.returnArgAction);
      w.putU32(base + L.H_RETURN_ARG_ACTION, a);
    }
    w.putU32(base + L.H_NAME_REF, this.stringRef(h.name));
    w.putU32(base + L.H_SPEC_INDEX, h.specIndex);

    // Slots: args, then data, then the return value in slot 5.
    const nSlots = h.args.length + h.data.length;
    if (nSlots > L.MAX_SLOTS - 1) {
      this.err(path, "args and data together may have at most " + (L.MAX_SLOTS - 1).toString() + " entries, found " + nSlots.toString());
      return;
    }
    const types = new Array<u16>(L.MAX_SLOTS).fill(0);
    w.putU8(base + L.H_N_ARGS, <u8>nSlots);
    for (let i = 0; i < nSlots; i++) {
      const a = i < h.args.length ? h.args[i] : h.data[i - h.args.length];
      types[i] = this.writeArgCfg(base + L.H_ARGS + i * L.ARG_CFG_SIZE, a, i < h.args.length ? L.SRC_ARG : (a.source == 2 ? L.SRC_PT_REGS : L.SRC_CURRENT_TASK));
    }
    const ra = h.returnArg;
    if (ra != null) {
      types[L.SLOT_RETURN] = this.writeArgCfg(base + L.H_ARGS + L.SLOT_RETURN * L.ARG_CFG_SIZE, ra, L.SRC_RETURN);
    }

    if (h.selectors.length > L.MAX_SELECTORS) {
      this.err(path + ".selectors", "at most " + L.MAX_SELECTORS.toString() + " selectors per hook, found " + h.selectors.length.toString());
      return;
    }
    w.putU8(base + L.H_N_SELECTORS, <u8>h.selectors.length);
    for (let si = 0; si < h.selectors.length; si++) {
      const sb = base + L.H_SELECTORS + si * L.SELECTOR_SIZE;
      this.compileSelector(h, types, h.selectors[si], sb, path + ".selectors[" + si.toString() + "]");
    }
    // Slot types may have been inferred from operators (type auto): write them back.
    for (let i = 0; i < L.MAX_SLOTS; i++) {
      w.putU16(base + L.H_ARGS + i * L.ARG_CFG_SIZE + L.AC_TYPE, types[i]);
    }
  }

  writeArgCfg(off: i32, a: ArgSpec, src: u8): u16 {
    const w = this.hooks;
    const t = argTypeCode(a.type);
    w.putU16(off + L.AC_TYPE, t);
    w.putU8(off + L.AC_SOURCE, src);
    w.putU8(off + L.AC_INDEX, <u8>a.index);
    w.putU8(off + L.AC_SIZE_ARG, <u8>a.sizeArgIndex);
    w.putU8(off + L.AC_PRESENT, 1);
    let f: u16 = 0;
    if (a.flags & 1) f |= L.ARGF_RETURN_COPY;
    if (a.flags & 2) f |= L.ARGF_MAX_DATA;
    if (a.flags & 4) f |= L.ARGF_RESOLVE;
    if (a.flags & 8) f |= L.ARGF_BTF_TYPE;
    w.putU16(off + L.AC_FLAGS, f);
    return t;
  }

  compileSelector(h: HookSpec, types: u16[], s: SelectorSpec, sb: i32, path: string): void {
    const w = this.hooks;
    w.putU32(sb + L.S_LABEL_REF, this.stringRef(s.label));
    if (s.hasWorkloads) this.err(path + ".matchWorkloads", "matchWorkloads is not supported: ward has no Kubernetes workload filter yet");
    const ms = new Array<M>(0);
    let sflags: u8 = 0;

    // matchPIDs
    for (let i = 0; i < s.pids.length; i++) {
      const p = s.pids[i];
      const pp = path + ".matchPIDs[" + i.toString() + "]";
      const op = opCode(p.op);
      if (op != L.OP_IN && op != L.OP_NOTIN) { this.err(pp + ".operator", "must be In or NotIn"); continue; }
      if (p.values.length > L.MAX_INT_VALUES) { this.err(pp + ".values", "at most " + L.MAX_INT_VALUES.toString() + " PIDs per matchPIDs item, found " + p.values.length.toString()); continue; }
      const m = new M().kind(L.MK_PID).op(op).vk(L.VK_INLINE).n(p.values.length);
      if (p.flags & 1) m.flag(L.MF_NS_PID);
      if (p.flags & 2) m.flag(L.MF_FOLLOW);
      for (let j = 0; j < p.values.length; j++) m.val(j, <u64>p.values[j]);
      ms.push(m);
    }

    // matchArgs / matchData / matchReturnArgs
    let argMatchers = 0;
    for (let i = 0; i < s.args.length; i++) {
      const a = s.args[i];
      const fld = a.origin == 0 ? "matchArgs" : a.origin == 1 ? "matchData" : "matchReturnArgs";
      let ordinal = 0;
      for (let j = 0; j < i; j++) if (s.args[j].origin == a.origin) ordinal++;
      const ap = path + "." + fld + "[" + ordinal.toString() + "]";
      if (a.origin != 2) argMatchers++;
      const m = this.compileArgMatch(h, types, a, ap);
      if (m != null) {
        if (a.origin == 2) { m.flag(L.MF_RETURN); sflags |= L.SF_RETURN_MATCHERS; }
        if (a.origin == 1) m.flag(L.MF_DATA);
        ms.push(m);
      }
    }
    if (argMatchers > L.MAX_ARG_MATCHERS) this.err(path + ".matchArgs", "matchArgs and matchData together may have at most " + L.MAX_ARG_MATCHERS.toString() + " entries, found " + argMatchers.toString());

    // matchBinaries / matchParentBinaries
    if (s.bins.length > 1) this.err(path + ".matchBinaries", "at most 1 matchBinaries item per selector, found " + s.bins.length.toString());
    else if (s.bins.length == 1) { const m = this.compileBinary(s.bins[0], L.MK_BINARY, path + ".matchBinaries[0]"); if (m != null) ms.push(m); }
    if (s.parentBins.length > 1) this.err(path + ".matchParentBinaries", "at most 1 matchParentBinaries item per selector, found " + s.parentBins.length.toString());
    else if (s.parentBins.length == 1) { const m = this.compileBinary(s.parentBins[0], L.MK_PARENT_BINARY, path + ".matchParentBinaries[0]"); if (m != null) ms.push(m); }

    // matchNamespaces
    if (s.ns.length > L.MAX_NS_ITEMS) this.err(path + ".matchNamespaces", "at most " + L.MAX_NS_ITEMS.toString() + " matchNamespaces items, found " + s.ns.length.toString());
    for (let i = 0; i < s.ns.length; i++) {
      const n = s.ns[i];
      const np = path + ".matchNamespaces[" + i.toString() + "]";
      const op = opCode(n.op);
      const t = nsIndex(n.ns);
      if (op != L.OP_IN && op != L.OP_NOTIN) { this.err(np + ".operator", "must be In or NotIn"); continue; }
      if (t < 0) { this.err(np + ".namespace", "unknown namespace " + n.ns); continue; }
      if (n.values.length > L.MAX_INT_VALUES) { this.err(np + ".values", "at most " + L.MAX_INT_VALUES.toString() + " values per matchNamespaces item, found " + n.values.length.toString()); continue; }
      const m = new M().kind(L.MK_NS).op(op).slot(<u8>t).vk(L.VK_INLINE).n(n.values.length);
      let ok = true;
      for (let j = 0; j < n.values.length; j++) {
        const v = n.values[j];
        if (v == "host_ns") {
          const h = this.p.hostNs[t];
          if (h != 0) m.val(j, <u64>h);
          else {
            // Unknown here (e.g. /proc/1/ns unreadable): the kernel reads init_task's inode.
            m.flag(L.MF_HOST_NS);
            m.aux(load<u32>(m.b.dataStart + L.M_AUX) | (1 << <u32>j));
          }
        } else if (parseDecimal(v) && parsedInt <= 0xffffffff) {
          m.val(j, parsedInt);
        } else { this.err(np + ".values[" + j.toString() + "]", "not a namespace inode number or host_ns: " + v); ok = false; }
      }
      if (ok) ms.push(m);
    }

    // matchNamespaceChanges
    if (s.nsChanges.length > 1) this.err(path + ".matchNamespaceChanges", "at most 1 matchNamespaceChanges item, found " + s.nsChanges.length.toString());
    else if (s.nsChanges.length == 1) {
      const n = s.nsChanges[0];
      const np = path + ".matchNamespaceChanges[0]";
      const op = opCode(n.op);
      if (op != L.OP_IN && op != L.OP_NOTIN) this.err(np + ".operator", "must be In or NotIn");
      else {
        let mask: u64 = 0;
        let ok = true;
        for (let j = 0; j < n.values.length; j++) {
          const t = nsIndex(n.values[j]);
          if (t < 0) { this.err(np + ".values[" + j.toString() + "]", "unknown namespace " + n.values[j]); ok = false; }
          else mask |= <u64>1 << <u64>t;
        }
        if (ok) ms.push(new M().kind(L.MK_NS_CHANGE).op(op).vk(L.VK_MASK).n(1).val(0, mask));
      }
    }

    // matchCapabilities / matchCapabilityChanges
    for (let i = 0; i < s.caps.length; i++) {
      const m = this.compileCaps(s.caps[i], L.MK_CAPS, path + ".matchCapabilities[" + i.toString() + "]");
      if (m != null) ms.push(m);
    }
    for (let i = 0; i < s.capChanges.length; i++) {
      const m = this.compileCaps(s.capChanges[i], L.MK_CAP_CHANGE, path + ".matchCapabilityChanges[" + i.toString() + "]");
      if (m != null) ms.push(m);
    }

    if (ms.length > L.MAX_MATCHERS) {
      this.err(path, "at most " + L.MAX_MATCHERS.toString() + " matchers per selector (all kinds together), found " + ms.length.toString());
      return;
    }
    w.putU8(sb + L.S_N_MATCHERS, <u8>ms.length);
    w.putU8(sb + L.S_FLAGS, sflags);
    for (let i = 0; i < ms.length; i++) w.putBytes(sb + L.S_MATCHERS + i * L.MATCHER_SIZE, ms[i].b, L.MATCHER_SIZE);

    // Actions: none means Post, stored explicitly so the kernel has no special case.
    const na = this.compileActions(h, s.actions, sb + L.S_ACTIONS, path + ".matchActions", true);
    w.putU8(sb + L.S_N_ACTIONS, <u8>na);
    const nr = this.compileActions(h, s.returnActions, sb + L.S_RETURN_ACTIONS, path + ".matchReturnActions", false);
    w.putU8(sb + L.S_N_RETURN_ACTIONS, <u8>nr);
  }

  /** Maps matchArgs.index / args[] to a slot. -1 when it names no argument. */
  resolveSlot(h: HookSpec, a: ArgMatch, which: i32): i32 {
    if (a.origin == 2) return L.SLOT_RETURN;
    if (a.origin == 1) {
      const idx = a.args.length > which ? <i32>a.args[which] : (which == 0 ? <i32>a.index : -1);
      return idx >= 0 && idx < h.data.length ? h.args.length + idx : -1;
    }
    if (a.args.length > which) {
      const idx = <i32>a.args[which];
      return idx < h.args.length ? idx : -1;
    }
    if (which > 0) return -1;
    // index is the prototype position (tracepoints: the format field index): the arg that
    // declares it is the slot. Tracepoint examples also use it as a position in args.
    for (let i = 0; i < h.args.length; i++) if (<i32>h.args[i].index == <i32>a.index) return i;
    const tp = h.kind == L.HOOK_TRACEPOINT || h.kind == L.HOOK_RAW_TRACEPOINT;
    return tp && <i32>a.index < h.args.length ? <i32>a.index : -1;
  }

  compileArgMatch(h: HookSpec, types: u16[], a: ArgMatch, ap: string): M | null {
    const op = opCode(a.op);
    if (op == 0) { this.err(ap + ".operator", a.op == "CelExpr" ? "CelExpr is not supported by ward's engine" : "unknown operator " + a.op); return null; }
    if (op == L.OP_IN || op == L.OP_NOTIN) { this.err(ap + ".operator", a.op + " is for matchPIDs/matchBinaries/matchNamespaces/matchCapabilities, not arguments"); return null; }
    const slot = this.resolveSlot(h, a, 0);
    if (slot < 0) { this.err(ap + ".index", "names no argument of this hook (index " + a.index.toString() + ")"); return null; }
    if (a.origin == 2 && h.returnArg == null) { this.err(ap, "matchReturnArgs needs returnArg on the hook"); return null; }
    let t = types[slot];
    if (t == L.ARG_NONE) {
      // type auto (tracepoints): infer from the operator, as the format would.
      t = isStrOp(op) ? L.ARG_STRING : L.ARG_U64;
      types[slot] = t;
    }
    const m = new M().kind(L.MK_ARG).op(op).slot(<u8>slot);
    const vals = a.values;

    if (op == L.OP_EQ || op == L.OP_NEQ) {
      if (t == L.ARG_CAPS) {
        // Each value is a capability set: a number (e.g. "0") or a capability name.
        if (vals.length > L.MAX_INT_VALUES) { this.err(ap + ".values", "at most " + L.MAX_INT_VALUES.toString() + " values, found " + vals.length.toString()); return null; }
        for (let i = 0; i < vals.length; i++) {
          if (parseInteger(vals[i], 64, false)) { m.val(i, parsedInt); continue; }
          const mask = this.capMask(vals[i].split("|").map<string>((x: string): string => x.trim()), ap + ".values[" + i.toString() + "]", true);
          if (mask < 0) return null;
          m.val(i, <u64>mask);
        }
        return m.vk(L.VK_INLINE).n(vals.length);
      }
      if (isIntType(t)) return this.inlineInts(m, t, vals, ap);
      if (isStrType(t)) {
        const setId = this.newSet();
        let classes: u32 = 0;
        for (let i = 0; i < vals.length; i++) {
          const b = utf8(vals[i]);
          if (b.length > L.EQ_MAX) { this.err(ap + ".values[" + i.toString() + "]", "Equal strings are at most " + L.EQ_MAX.toString() + " bytes"); return null; }
          classes |= 1 << <u32>this.addStrEq(setId, b);
        }
        if (t == L.ARG_FILE || t == L.ARG_PATH) {
          const fw = this.sec[L.SEC_FILE_SETS];
          const off = fw.zeros(L.FILE_SET_SIZE);
          fw.putU32(off, setId);
          fw.putU32(off + 4, classes);
          this.count[L.SEC_FILE_SETS]++;
        }
        return m.vk(L.VK_STR_EQ).set(setId).aux(classes).n(vals.length > 255 ? 255 : vals.length);
      }
      return this.badType(ap, a.op, t);
    }
    if (op == L.OP_PREFIX || op == L.OP_NOTPREFIX || op == L.OP_POSTFIX || op == L.OP_NOTPOSTFIX) {
      if (!isStrType(t)) return this.badType(ap, a.op, t);
      const pre = op == L.OP_PREFIX || op == L.OP_NOTPREFIX;
      const max = pre ? L.PREFIX_MAX : L.POSTFIX_MAX - 1;
      const setId = this.newSet();
      for (let i = 0; i < vals.length; i++) {
        const b = utf8(vals[i]);
        if (b.length > max) { this.err(ap + ".values[" + i.toString() + "]", (pre ? "Prefix" : "Postfix") + " value is " + b.length.toString() + " bytes; at most " + max.toString() + (pre ? " (the kernel's LPM trie keys hold " + L.LPM_DATA_MAX.toString() + " bytes after prefixlen, 4 are the set id)" : "")); return null; }
        if (pre) this.addPrefix(setId, b); else this.addPostfix(setId, b);
      }
      return m.vk(pre ? L.VK_STR_PREFIX : L.VK_STR_POSTFIX).set(setId).n(vals.length > 255 ? 255 : vals.length);
    }
    if (op == L.OP_SUBSTRING || op == L.OP_SUBSTRING_IGNCASE) {
      if (!isStrType(t)) return this.badType(ap, a.op, t);
      if (vals.length > 100) { this.err(ap + ".values", "at most 100 substrings"); return null; }
      const setId = this.newSet();
      let first: u32 = 0;
      for (let i = 0; i < vals.length; i++) {
        let s = vals[i];
        if (op == L.OP_SUBSTRING_IGNCASE) s = s.toLowerCase();
        const b = utf8(s);
        if (b.length >= 100) { this.err(ap + ".values[" + i.toString() + "]", "SubString values are shorter than 100 bytes"); return null; }
        const idx = this.addSubstr(setId, b);
        if (i == 0) first = idx;
      }
      return m.vk(L.VK_SUBSTR).set(setId).n(vals.length).val(0, <u64>first);
    }
    if (op == L.OP_GT || op == L.OP_LT || op == L.OP_MASK) {
      if (!isIntType(t)) return this.badType(ap, a.op, t);
      return this.inlineInts(m, t, vals, ap);
    }
    if (op == L.OP_INRANGE || op == L.OP_NOTINRANGE) {
      if (!isIntType(t)) return this.badType(ap, a.op, t);
      if (vals.length > L.MAX_INT_VALUES) { this.err(ap + ".values", "at most " + L.MAX_INT_VALUES.toString() + " ranges, found " + vals.length.toString()); return null; }
      for (let i = 0; i < vals.length; i++) {
        if (!parseIntRange(vals[i], intBits(t), isSignedType(t))) { this.err(ap + ".values[" + i.toString() + "]", "not a range min:max: " + vals[i]); return null; }
        m.val(2 * i, rangeLo).val(2 * i + 1, rangeHi);
      }
      return m.vk(L.VK_INLINE_RANGE).n(vals.length);
    }
    if (op == L.OP_INMAP || op == L.OP_NOTINMAP) {
      if (!isIntType(t)) return this.badType(ap, a.op, t);
      const setId = this.newSet();
      let total: u64 = 0;
      for (let i = 0; i < vals.length; i++) {
        const v = vals[i];
        if (v.startsWith("list:")) {
          const name = v.substring(5);
          let found = false;
          for (let k = 0; k < this.p.lists.length; k++) {
            if (this.p.lists[k].name != name) continue;
            found = true;
            const lv = this.p.lists[k].values;
            for (let j = 0; j < lv.length; j++) this.addInt(setId, lv[j]);
          }
          if (!found) { this.err(ap + ".values[" + i.toString() + "]", "list " + name + " is not a syscall list ward could resolve"); return null; }
          continue;
        }
        // Base 10, signed for signed types; a reversed range is swapped (Tetragon does both).
        if (!parseMapRange(v, isSignedType(t))) { this.err(ap + ".values[" + i.toString() + "]", "not a decimal number or range min:max: " + v); return null; }
        const span = rangeHi - rangeLo;
        total += span + 1;
        if (span >= 65536 || total > 65536) { this.err(ap + ".values[" + i.toString() + "]", "ranges expand to more than 65536 map entries"); return null; }
        for (let x = rangeLo; ; x++) { this.addInt(setId, x); if (x == rangeHi) break; }
      }
      return m.vk(L.VK_INT_SET).set(setId).n(vals.length > 255 ? 255 : vals.length);
    }
    const sock = t == L.ARG_SOCK;
    const sockaddr = t == L.ARG_SOCKADDR;
    if (op == L.OP_SPORT || op == L.OP_NOTSPORT || op == L.OP_DPORT || op == L.OP_NOTDPORT) {
      const isD = op == L.OP_DPORT || op == L.OP_NOTDPORT;
      if (!(sock || (sockaddr && !isD))) return this.badType(ap, a.op, t);
      const lo = new Array<u64>(0);
      const hi = new Array<u64>(0);
      for (let i = 0; i < vals.length; i++) {
        if (!parseRange(vals[i], 65535)) { this.err(ap + ".values[" + i.toString() + "]", "not a port or port range lo:hi: " + vals[i]); return null; }
        lo.push(rangeLo);
        hi.push(rangeHi);
      }
      if (lo.length <= L.MAX_INLINE / 2) {
        for (let i = 0; i < lo.length; i++) m.val(2 * i, lo[i]).val(2 * i + 1, hi[i]);
        return m.vk(L.VK_INLINE_RANGE).n(lo.length);
      }
      // More ranges than fit inline: expand into the int set (ports are bounded, 65536 at most).
      const setId = this.newSet();
      for (let i = 0; i < lo.length; i++) for (let x = lo[i]; x <= hi[i]; x++) this.addInt(setId, x);
      return m.vk(L.VK_INT_SET).set(setId).n(vals.length > 255 ? 255 : vals.length);
    }
    if (op == L.OP_SPORTPRIV || op == L.OP_NOTSPORTPRIV || op == L.OP_DPORTPRIV || op == L.OP_NOTDPORTPRIV) {
      const isD = op == L.OP_DPORTPRIV || op == L.OP_NOTDPORTPRIV;
      if (!(sock || (sockaddr && !isD))) return this.badType(ap, a.op, t);
      return m.vk(L.VK_NONE).n(0);
    }
    if (op == L.OP_SADDR || op == L.OP_NOTSADDR || op == L.OP_DADDR || op == L.OP_NOTDADDR) {
      const isD = op == L.OP_DADDR || op == L.OP_NOTDADDR;
      if (!(sock || (sockaddr && !isD))) return this.badType(ap, a.op, t);
      const setId = this.newSet();
      for (let i = 0; i < vals.length; i++) {
        if (!parseCidr(vals[i])) { this.err(ap + ".values[" + i.toString() + "]", "not an IPv4/IPv6 address or CIDR: " + vals[i]); return null; }
        this.addAddr(setId);
      }
      return m.vk(L.VK_ADDR_LPM).set(setId).n(vals.length > 255 ? 255 : vals.length);
    }
    if (op == L.OP_PROTOCOL || op == L.OP_FAMILY || op == L.OP_STATE) {
      const okType = op == L.OP_FAMILY ? (sock || sockaddr || t == L.ARG_SOCKADDR_UN) : sock;
      if (!okType) return this.badType(ap, a.op, t);
      if (vals.length > L.MAX_INLINE) { this.err(ap + ".values", "at most " + L.MAX_INLINE.toString() + " values, found " + vals.length.toString()); return null; }
      for (let i = 0; i < vals.length; i++) {
        const v = vals[i];
        const ok = op == L.OP_PROTOCOL ? parseProtocol(v) : op == L.OP_FAMILY ? parseFamily(v) : parseState(v);
        if (!ok) { this.err(ap + ".values[" + i.toString() + "]", "unknown value " + v); return null; }
        m.val(i, parsedInt);
      }
      return m.vk(L.VK_INLINE).n(vals.length);
    }
    if (op == L.OP_CAPSGAINED) {
      const slot2 = this.resolveSlot(h, a, 1);
      if (t != L.ARG_CAPS || slot2 < 0 || types[slot2] != L.ARG_CAPS) { this.err(ap + ".args", "CapabilitiesGained needs args: [new, old], two capability-set arguments"); return null; }
      // Tetragon takes no values: any capability gained. Values, if given, narrow it.
      const mask = vals.length == 0 ? <i64>-1 : this.capMask(vals, ap);
      if (vals.length > 0 && mask < 0) return null;
      return m.slot2(<u8>slot2).vk(L.VK_MASK).n(1).val(0, <u64>mask);
    }
    if (op == L.OP_FILETYPE || op == L.OP_NOTFILETYPE) {
      if (t != L.ARG_FILE && t != L.ARG_PATH) return this.badType(ap, a.op, t);
      if (vals.length > L.MAX_INLINE) { this.err(ap + ".values", "at most " + L.MAX_INLINE.toString() + " file types"); return null; }
      for (let i = 0; i < vals.length; i++) {
        if (!parseFileType(vals[i])) { this.err(ap + ".values[" + i.toString() + "]", "unknown file type " + vals[i]); return null; }
        m.val(i, parsedInt);
      }
      return m.vk(L.VK_INLINE).n(vals.length);
    }
    this.err(ap + ".operator", "operator " + a.op + " is not supported");
    return null;
  }

  badType(ap: string, op: string, t: u16): M | null {
    this.err(ap + ".operator", op + " does not apply to an argument of type " + typeName(t));
    return null;
  }

  inlineInts(m: M, t: u16, vals: string[], ap: string): M | null {
    if (vals.length > L.MAX_INT_VALUES) { this.err(ap + ".values", "at most " + L.MAX_INT_VALUES.toString() + " integer values (use InMap for more), found " + vals.length.toString()); return null; }
    for (let i = 0; i < vals.length; i++) {
      if (!parseInteger(vals[i], intBits(t), isSignedType(t))) { this.err(ap + ".values[" + i.toString() + "]", "not a " + intBits(t).toString() + "-bit " + (isSignedType(t) ? "signed" : "unsigned") + " integer: " + vals[i]); return null; }
      m.val(i, parsedInt);
    }
    return m.vk(L.VK_INLINE).n(vals.length);
  }

  /** OR of the named capabilities' bits; -1 (after an error) on an unknown name. */
  capMask(vals: string[], ap: string, isValuePath: bool = false): i64 {
    let mask: u64 = 0;
    for (let i = 0; i < vals.length; i++) {
      const b = capBit(vals[i]);
      if (b < 0) { this.err(isValuePath ? ap : ap + ".values[" + i.toString() + "]", "unknown capability " + vals[i]); return -1; }
      mask |= <u64>1 << <u64>b;
    }
    return <i64>mask;
  }

  compileCaps(c: CapMatch, kind: u8, cp: string): M | null {
    const op = opCode(c.op);
    if (op != L.OP_IN && op != L.OP_NOTIN) { this.err(cp + ".operator", "must be In or NotIn"); return null; }
    const set: u8 = c.type == "" || c.type == "Effective" ? 0 : c.type == "Inheritable" ? 1 : c.type == "Permitted" ? 2 : 255;
    if (set == 255) { this.err(cp + ".type", "must be Effective, Inheritable or Permitted"); return null; }
    const mask = this.capMask(c.values, cp);
    if (mask < 0) return null;
    const m = new M().kind(kind).op(op).slot(set).vk(L.VK_MASK).n(1).val(0, <u64>mask);
    if (c.isNs) m.flag(L.MF_NS_CAP);
    return m;
  }

  compileBinary(b: BinMatch, kind: u8, bp: string): M | null {
    const op = opCode(b.op);
    const m = new M().kind(kind).op(op);
    for (let i = 0; i < b.values.length; i++) {
      if (b.values[i].length >= L.BIN_PATH_MAX) { this.err(bp + ".values[" + i.toString() + "]", "binary paths are at most " + (L.BIN_PATH_MAX - 1).toString() + " bytes"); return null; }
    }
    if (op == L.OP_IN || op == L.OP_NOTIN) {
      const setId = this.newSet();
      for (let i = 0; i < b.values.length; i++) {
        const id = this.binId(b.values[i]);
        if (id == 0) { this.err(bp + ".values[" + i.toString() + "]", "binary was not interned by the wrapper"); return null; }
        this.addBinSet(setId, id);
      }
      m.vk(L.VK_BIN_SET).set(setId).n(b.values.length > 255 ? 255 : b.values.length);
      if (b.follow) {
        if (kind != L.MK_BINARY) { this.err(bp + ".followChildren", "followChildren applies to matchBinaries only"); return null; }
        if (this.followBits >= <u32>L.MAX_FOLLOW) { this.err(bp + ".followChildren", "at most " + L.MAX_FOLLOW.toString() + " followChildren selectors across the loaded policies"); return null; }
        const bit = this.followBits++;
        const w = this.sec[L.SEC_FOLLOW];
        const off = w.zeros(L.FOLLOW_ENTRY_SIZE);
        w.putU32(off, bit);
        w.putU32(off + 4, setId);
        w.putU32(off + 8, <u32>op);
        this.count[L.SEC_FOLLOW]++;
        m.flag(L.MF_FOLLOW).aux(bit);
      }
      return m;
    }
    if (op == L.OP_PREFIX || op == L.OP_NOTPREFIX || op == L.OP_POSTFIX || op == L.OP_NOTPOSTFIX) {
      if (b.follow) { this.err(bp + ".followChildren", "followChildren works only with In and NotIn"); return null; }
      const pre = op == L.OP_PREFIX || op == L.OP_NOTPREFIX;
      const setId = this.newSet();
      for (let i = 0; i < b.values.length; i++) {
        const v = b.values[i];
        if (!pre && v.length >= L.POSTFIX_MAX) { this.err(bp + ".values[" + i.toString() + "]", "Postfix values are at most " + (L.POSTFIX_MAX - 1).toString() + " bytes"); return null; }
        if (pre) this.addPrefix(setId, v); else this.addPostfix(setId, v);
      }
      return m.vk(pre ? L.VK_STR_PREFIX : L.VK_STR_POSTFIX).set(setId).n(b.values.length > 255 ? 255 : b.values.length);
    }
    this.err(bp + ".operator", "must be In, NotIn, Prefix, NotPrefix, Postfix or NotPostfix");
    return null;
  }

  compileActions(h: HookSpec, list: ActionSpec[], off: i32, ap: string, defaultPost: bool): i32 {
    const w = this.hooks;
    if (list.length > L.MAX_ACTIONS) { this.err(ap, "at most " + L.MAX_ACTIONS.toString() + " actions per selector, found " + list.length.toString()); return 0; }
    if (list.length == 0) {
      if (!defaultPost) return 0;
      w.putU32(off + L.A_KIND, L.ACT_POST);
      return 1;
    }
    const monitor = (this.p.flags & 1) != 0;
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      const o = off + i * L.ACTION_SIZE;
      const pp = ap + "[" + i.toString() + "]";
      const k = actionCode(a.name);
      if (k == 0) { this.err(pp + ".action", "unknown action " + a.name); continue; }
      let f: u32 = 0;
      if (a.flags & 1) f |= L.AF_KERNEL_STACK;
      if (a.flags & 2) f |= L.AF_USER_STACK;
      if (a.flags & 4) f |= L.AF_IMA_HASH;
      if (a.present & 1) f |= L.AF_HAS_ERROR;
      if (a.present & 2) f |= L.AF_HAS_SIG;
      const enforcing = k == L.ACT_SIGKILL || k == L.ACT_SIGNAL || k == L.ACT_OVERRIDE || k == L.ACT_NOTIFYENFORCER || k == L.ACT_SET;
      if (monitor && enforcing) f |= L.AF_MONITOR;
      if (k == L.ACT_SIGNAL && (a.present & 2) == 0) this.err(pp + ".argSig", "Signal needs argSig");
      if (k == L.ACT_OVERRIDE && (a.present & 1) == 0) this.err(pp + ".argError", "Override needs argError");
      if (k == L.ACT_GETURL && a.argUrl.length == 0) this.err(pp + ".argUrl", "GetUrl needs argUrl");
      if (k == L.ACT_DNSLOOKUP && a.argFqdn.length == 0) this.err(pp + ".argFqdn", "DnsLookup needs argFqdn");
      w.putU32(o + L.A_KIND, k);
      w.putU32(o + L.A_FLAGS, f);
      w.putI32(o + L.A_ARG_ERROR, a.argError);
      w.putU32(o + L.A_ARG_SIG, a.argSig);
      w.putU32(o + L.A_ARG_INDEX, k == L.ACT_SET ? a.argIndex : a.argSock);
      w.putU32(o + L.A_ARG_VALUE, a.argValue);
      w.putU64(o + L.A_RATE_LIMIT_MS, a.rateLimitMs);
      w.putU32(o + L.A_RATE_LIMIT_SCOPE, a.scope == "process" ? 1 : a.scope == "global" ? 2 : 0);
      w.putU32(o + L.A_STR_REF, k == L.ACT_GETURL ? this.stringRef(a.argUrl) : k == L.ACT_DNSLOOKUP ? this.stringRef(a.argFqdn) : 0);
    }
    return list.length;
  }

  /** The whole blob, or null when errors were recorded. */
  run(): Uint8Array | null {
    for (let i = 0; i < this.p.hooks.length; i++) this.compileHook(this.p.hooks[i], i);
    if (this.errors.length > 0) return null;

    // Sections in kind order; payloads 8-aligned so u64 fields are aligned in place.
    const kinds = new Array<u32>(0);
    for (let k: u32 = 1; k <= L.SEC_COUNT; k++) kinds.push(k);
    const out = new Writer(L.HEADER_SIZE + kinds.length * L.SECTION_SIZE + this.hooks.len + 1024);
    out.zeros(L.HEADER_SIZE + kinds.length * L.SECTION_SIZE);
    for (let i = 0; i < kinds.length; i++) {
      const k = kinds[i];
      out.align(8);
      const off = out.len;
      let count: u32 = 0;
      let size: u32 = 0;
      if (k == L.SEC_HOOKS) {
        out.bytes(this.hooks.finish());
        count = <u32>this.p.hooks.length;
        size = <u32>L.HOOK_SIZE;
      } else if (k == L.SEC_STRINGS) {
        out.bytes(this.strings.finish());
        count = <u32>this.strings.len;
        size = 1;
      } else {
        out.bytes(this.sec[k].finish());
        count = this.count[k];
        size = <u32>entrySize(k);
      }
      const so = L.HEADER_SIZE + i * L.SECTION_SIZE;
      out.putU32(so, k);
      out.putU32(so + 4, <u32>off);
      out.putU32(so + 8, count);
      out.putU32(so + 12, size);
    }
    out.align(8);
    out.putU32(L.BH_MAGIC, L.MAGIC);
    out.putU16(L.BH_VERSION, L.LAYOUT_VERSION);
    out.putU16(L.BH_HEADER_SIZE, <u16>L.HEADER_SIZE);
    out.putU32(L.BH_TOTAL_SIZE, <u32>out.len);
    out.putU32(L.BH_N_HOOKS, <u32>this.p.hooks.length);
    out.putU32(L.BH_N_SECTIONS, <u32>kinds.length);
    out.putU32(L.BH_FLAGS, (this.p.flags & 1) != 0 ? L.BF_MONITOR : 0);
    out.putU32(L.BH_SET_ID_BASE, this.p.setIdBase);
    out.putU32(L.BH_HOOK_ID_BASE, this.p.hookIdBase);
    out.putU32(L.BH_SET_ID_END, this.nextSet);
    out.putU32(L.BH_N_FOLLOW, this.followBits - this.p.followBitBase);
    return out.finish();
  }
}

export function entrySize(k: u32): i32 {
  if (k == L.SEC_HOOKS) return L.HOOK_SIZE;
  if (k >= L.SEC_STR_EQ_BASE && k < L.SEC_STR_EQ_BASE + <u32>L.STR_CLASSES) return L.STR_EQ_HDR + L.strClassSize(<i32>(k - L.SEC_STR_EQ_BASE));
  if (k == L.SEC_STR_PREFIX) return L.PREFIX_KEY_SIZE;
  if (k == L.SEC_STR_POSTFIX) return L.POSTFIX_KEY_SIZE;
  if (k == L.SEC_INT_SET) return L.INT_KEY_SIZE;
  if (k == L.SEC_ADDR_LPM) return L.ADDR_KEY_SIZE;
  if (k == L.SEC_BIN_NAMES) return L.BIN_NAME_SIZE;
  if (k == L.SEC_BIN_SET) return L.BIN_SET_KEY_SIZE;
  if (k == L.SEC_SUBSTR) return L.SUBSTR_ENTRY_SIZE;
  if (k == L.SEC_FOLLOW) return L.FOLLOW_ENTRY_SIZE;
  if (k == L.SEC_FILE_SETS) return L.FILE_SET_SIZE;
  return 1;
}

export function typeName(t: u16): string {
  if (t == L.ARG_S8 || t == L.ARG_S16 || t == L.ARG_S32 || t == L.ARG_S64) return "signed integer";
  if (t == L.ARG_U8 || t == L.ARG_U16 || t == L.ARG_U32 || t == L.ARG_U64) return "unsigned integer";
  if (t == L.ARG_STRING) return "string";
  if (t == L.ARG_BUF) return "buffer";
  if (t == L.ARG_FILE) return "file";
  if (t == L.ARG_PATH) return "path";
  if (t == L.ARG_SOCK) return "sock/socket/skb";
  if (t == L.ARG_SOCKADDR) return "sockaddr";
  if (t == L.ARG_SOCKADDR_UN) return "sockaddr_un";
  if (t == L.ARG_CAPS) return "capability set";
  if (t == L.ARG_SYSCALL64) return "syscall64";
  if (t == L.ARG_NOP) return "nop";
  return "opaque (no operators)";
}
