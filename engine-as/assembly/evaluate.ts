// Userspace evaluation of one event against one hook's tables: the same walk the BPF
// program does (selectors in order, first match wins; every matcher of a selector must
// hold), reading the hook config straight from the blob.
import { Reader, Writer } from "./io";
import * as L from "./layout";
import { Tables, strEqHas, prefixHas, postfixHas, addrHas, intHas, binIdOf, binSetHas } from "./tables";

export const EVENT_MAGIC: u32 = 0x54564557; // "WEVT"

const K_INT: u8 = 1;
const K_BYTES: u8 = 2;
const K_SOCK: u8 = 3;
const K_FILE: u8 = 4;

export class Slot {
  idx: i32 = 0;
  kind: u8 = 0;
  int: u64 = 0;
  p: usize = 0; // bytes (string, buffer, file path, sockaddr_un path)
  n: i32 = 0;
  family: u16 = 0;
  protocol: u16 = 0;
  state: u8 = 0;
  sport: u16 = 0;
  dport: u16 = 0;
  saddr: usize = 0;
  daddr: usize = 0;
  fileType: u32 = 0;
}

export class Ancestor {
  pid: u32 = 0;
  nspid: u32 = 0;
  p: usize = 0;
  n: i32 = 0;
}

/** The event, decoded in place: byte fields point into the input buffer. One instance is
 * reused for every evaluation so the hot path allocates nothing. */
export class Event {
  pid: u32 = 0;
  nspid: u32 = 0;
  flags: u32 = 0; // 1 in host user ns, 2 return phase
  binP: usize = 0;
  binN: i32 = 0;
  parP: usize = 0;
  parN: i32 = 0;
  nAncestors: i32 = 0;
  ancestors: StaticArray<Ancestor> = new StaticArray<Ancestor>(L.MAX_ANCESTORS);
  ns: StaticArray<u32> = new StaticArray<u32>(L.NS_TYPES);
  nsExec: StaticArray<u32> = new StaticArray<u32>(L.NS_TYPES);
  hostNs: StaticArray<u32> = new StaticArray<u32>(L.NS_TYPES);
  caps: StaticArray<u64> = new StaticArray<u64>(3);
  capsExec: StaticArray<u64> = new StaticArray<u64>(3);
  nSlots: i32 = 0;
  slots: StaticArray<Slot> = new StaticArray<Slot>(L.MAX_SLOTS);

  constructor() {
    for (let i = 0; i < L.MAX_ANCESTORS; i++) this.ancestors[i] = new Ancestor();
    for (let i = 0; i < L.MAX_SLOTS; i++) this.slots[i] = new Slot();
  }
}

const theEvent = new Event();

function slotOf(ev: Event, i: i32): Slot | null {
  // Slots are few (<= 6): a scan beats a map.
  for (let k = 0; k < ev.nSlots; k++) {
    const s = unchecked(ev.slots[k]);
    if (s.idx == i) return s;
  }
  return null;
}

export function readEvent(r: Reader): Event | null {
  if (r.u32() != EVENT_MAGIC) return null;
  const ev = theEvent;
  ev.pid = r.u32();
  ev.nspid = r.u32();
  ev.flags = r.u32();
  let n = r.u32();
  ev.binN = <i32>n;
  ev.binP = r.skip(<usize>n);
  n = r.u32();
  ev.parN = <i32>n;
  ev.parP = r.skip(<usize>n);
  const na = r.u32();
  ev.nAncestors = 0;
  for (let i: u32 = 0; i < na && !r.overrun; i++) {
    const pid = r.u32();
    const nspid = r.u32();
    const k = r.u32();
    const p = r.skip(<usize>k);
    if (ev.nAncestors >= L.MAX_ANCESTORS) continue;
    const a = unchecked(ev.ancestors[ev.nAncestors++]);
    a.pid = pid;
    a.nspid = nspid;
    a.n = <i32>k;
    a.p = p;
  }
  for (let i = 0; i < L.NS_TYPES; i++) ev.ns[i] = r.u32();
  for (let i = 0; i < L.NS_TYPES; i++) ev.nsExec[i] = r.u32();
  for (let i = 0; i < L.NS_TYPES; i++) ev.hostNs[i] = r.u32();
  for (let i = 0; i < 3; i++) ev.caps[i] = r.u64();
  for (let i = 0; i < 3; i++) ev.capsExec[i] = r.u64();
  const ns = r.u32();
  if (ns > <u32>L.MAX_SLOTS) return null;
  ev.nSlots = <i32>ns;
  for (let i = 0; i < <i32>ns && !r.overrun; i++) {
    const s = unchecked(ev.slots[i]);
    s.idx = <i32>r.u8();
    s.kind = r.u8();
    if (s.kind == K_INT) {
      s.int = r.u64();
    } else if (s.kind == K_BYTES) {
      const k = r.u32();
      s.n = <i32>k;
      s.p = r.skip(<usize>k);
    } else if (s.kind == K_SOCK) {
      s.family = r.u16();
      s.protocol = r.u16();
      s.state = r.u8();
      r.u8();
      s.sport = r.u16();
      s.dport = r.u16();
      s.saddr = r.skip(16);
      s.daddr = r.skip(16);
    } else if (s.kind == K_FILE) {
      const k = r.u32();
      s.n = <i32>k;
      s.p = r.skip(<usize>k);
      s.fileType = r.u32();
    } else {
      return null;
    }
  }
  return r.overrun ? null : ev;
}

// ---- integer semantics: the kernel reads the arg at its width and extends it ----

function normalize(t: u16, v: u64): u64 {
  if (t == L.ARG_S8) return <u64>(<i64>(<i8>v));
  if (t == L.ARG_S16) return <u64>(<i64>(<i16>v));
  if (t == L.ARG_S32) return <u64>(<i64>(<i32>v));
  if (t == L.ARG_U8) return v & 0xff;
  if (t == L.ARG_U16) return v & 0xffff;
  if (t == L.ARG_U32) return v & 0xffffffff;
  return v;
}

function signedType(t: u16): bool {
  return t >= L.ARG_S8 && t <= L.ARG_S64;
}

@inline function mval(m: usize, i: i32): u64 {
  return load<u64>(m + L.M_VALUES + (<usize>i << 3));
}

function inlineAny(m: usize, n: i32, v: u64): bool {
  for (let i = 0; i < n; i++) if (mval(m, i) == v) return true;
  return false;
}

function rangeAny(m: usize, n: i32, v: u64, signed: bool): bool {
  for (let i = 0; i < n; i++) {
    const lo = mval(m, 2 * i);
    const hi = mval(m, 2 * i + 1);
    if (signed ? (<i64>v >= <i64>lo && <i64>v <= <i64>hi) : (v >= lo && v <= hi)) return true;
  }
  return false;
}

function lowerEq(a: u8, b: u8): bool {
  const la = a >= 65 && a <= 90 ? a + 32 : a;
  return la == b;
}

function substrAny(t: Tables, m: usize, p: usize, n: i32, ignCase: bool): bool {
  const first = <u32>mval(m, 0);
  const cnt = <u32>load<u8>(m + L.M_NVALUES);
  for (let i: u32 = 0; i < cnt; i++) {
    const e = t.substrPtr(first + i);
    const sl = <i32>load<u32>(e + 4);
    const sp = e + 8;
    for (let s = 0; s + sl <= n; s++) {
      let ok = true;
      for (let j = 0; j < sl; j++) {
        const a = load<u8>(p + <usize>(s + j));
        const b = load<u8>(sp + <usize>j);
        if (ignCase ? !lowerEq(a, b) : a != b) { ok = false; break; }
      }
      if (ok) return true;
    }
  }
  return false;
}

/** Matching on a string-valued slot by its value kind. */
function matchBytes(t: Tables, m: usize, vk: u8, setId: u32, p: usize, n: i32, op: u8): bool {
  if (vk == L.VK_STR_EQ) return strEqHas(t, setId, p, n);
  if (vk == L.VK_STR_PREFIX) return prefixHas(t, setId, p, n);
  if (vk == L.VK_STR_POSTFIX) return postfixHas(t, setId, p, n);
  if (vk == L.VK_SUBSTR) return substrAny(t, m, p, n, op == L.OP_SUBSTRING_IGNCASE);
  return false;
}

function isNegated(op: u8): bool {
  return op == L.OP_NEQ || op == L.OP_NOTIN || op == L.OP_NOTPREFIX || op == L.OP_NOTPOSTFIX ||
    op == L.OP_NOTINMAP || op == L.OP_NOTSPORT || op == L.OP_NOTDPORT || op == L.OP_NOTSPORTPRIV ||
    op == L.OP_NOTDPORTPRIV || op == L.OP_NOTSADDR || op == L.OP_NOTDADDR || op == L.OP_NOTINRANGE ||
    op == L.OP_NOTFILETYPE;
}

function ipFamily(f: u16): i32 {
  return f == 2 ? 4 : f == 10 ? 6 : 0;
}

function matchArg(t: Tables, hook: usize, m: usize, ev: Event): bool {
  const op = load<u8>(m + L.M_OP);
  const slotI = <i32>load<u8>(m + L.M_SLOT);
  const vk = load<u8>(m + L.M_VALUE_KIND);
  const n = <i32>load<u8>(m + L.M_NVALUES);
  const setId = load<u32>(m + L.M_SET_ID);
  const ty = load<u16>(hook + L.H_ARGS + <usize>slotI * L.ARG_CFG_SIZE + L.AC_TYPE);
  const s = slotOf(ev, slotI);
  // An argument the kernel could not read matches nothing, negated operators included.
  if (s == null) return false;
  const neg = isNegated(op);

  if (op == L.OP_CAPSGAINED) {
    const old = slotOf(ev, <i32>load<u8>(m + L.M_SLOT2));
    if (old == null) return false;
    return ((s.int & ~old.int) & mval(m, 0)) != 0;
  }

  if (s.kind == K_INT) {
    const v = normalize(ty, s.int);
    const sg = signedType(ty);
    let hit = false;
    if (op == L.OP_EQ || op == L.OP_NEQ) hit = inlineAny(m, n, v);
    else if (op == L.OP_GT) {
      for (let i = 0; i < n; i++) if (sg ? <i64>v > <i64>mval(m, i) : v > mval(m, i)) hit = true;
    } else if (op == L.OP_LT) {
      for (let i = 0; i < n; i++) if (sg ? <i64>v < <i64>mval(m, i) : v < mval(m, i)) hit = true;
    } else if (op == L.OP_MASK) {
      for (let i = 0; i < n; i++) if ((v & mval(m, i)) != 0) hit = true;
    } else if (op == L.OP_INMAP || op == L.OP_NOTINMAP) hit = intHas(t, setId, v);
    else if (op == L.OP_INRANGE || op == L.OP_NOTINRANGE) hit = rangeAny(m, n, v, sg);
    else return false;
    return neg ? !hit : hit;
  }

  if (s.kind == K_BYTES || s.kind == K_FILE) {
    if (op == L.OP_FILETYPE || op == L.OP_NOTFILETYPE) {
      const hit = inlineAny(m, n, <u64>s.fileType);
      return neg ? !hit : hit;
    }
    if (op == L.OP_FAMILY) return inlineAny(m, n, 1); // sockaddr_un is AF_UNIX
    const hit = matchBytes(t, m, vk, setId, s.p, s.n, op);
    return neg ? !hit : hit;
  }

  if (s.kind == K_SOCK) {
    let hit = false;
    if (op == L.OP_SPORT || op == L.OP_NOTSPORT || op == L.OP_DPORT || op == L.OP_NOTDPORT) {
      const port = <u64>(op == L.OP_SPORT || op == L.OP_NOTSPORT ? s.sport : s.dport);
      hit = vk == L.VK_INT_SET ? intHas(t, setId, port) : rangeAny(m, n, port, false);
    } else if (op == L.OP_SPORTPRIV || op == L.OP_NOTSPORTPRIV) hit = s.sport < 1024;
    else if (op == L.OP_DPORTPRIV || op == L.OP_NOTDPORTPRIV) hit = s.dport < 1024;
    else if (op == L.OP_SADDR || op == L.OP_NOTSADDR || op == L.OP_DADDR || op == L.OP_NOTDADDR) {
      const fam = ipFamily(s.family);
      const src = op == L.OP_SADDR || op == L.OP_NOTSADDR;
      hit = fam != 0 && addrHas(t, setId, fam, src ? s.saddr : s.daddr);
    } else if (op == L.OP_PROTOCOL) hit = inlineAny(m, n, <u64>s.protocol);
    else if (op == L.OP_FAMILY) hit = inlineAny(m, n, <u64>s.family);
    else if (op == L.OP_STATE) hit = inlineAny(m, n, <u64>s.state);
    else return false;
    return neg ? !hit : hit;
  }
  return false;
}

function binaryInSet(t: Tables, setId: u32, p: usize, n: i32): bool {
  return binSetHas(t, setId, binIdOf(t, p, n));
}

function matchBinary(t: Tables, m: usize, ev: Event, parent: bool): bool {
  const op = load<u8>(m + L.M_OP);
  const vk = load<u8>(m + L.M_VALUE_KIND);
  const setId = load<u32>(m + L.M_SET_ID);
  const p = parent ? ev.parP : ev.binP;
  const n = parent ? ev.parN : ev.binN;
  let hit = false;
  if (vk == L.VK_BIN_SET) {
    if ((load<u16>(m + L.M_FLAGS) & L.MF_FOLLOW) != 0) {
      // The kernel tests follow_mask bit aux, set at the exec of a binary in the set and
      // inherited by forks; seen from userspace that is "self or an ancestor in the set".
      hit = binaryInSet(t, setId, p, n);
      for (let i = 0; !hit && i < ev.nAncestors; i++) {
        const a = unchecked(ev.ancestors[i]);
        hit = binaryInSet(t, setId, a.p, a.n);
      }
    } else hit = binaryInSet(t, setId, p, n);
  } else if (vk == L.VK_STR_PREFIX) hit = prefixHas(t, setId, p, n);
  else if (vk == L.VK_STR_POSTFIX) hit = postfixHas(t, setId, p, n);
  return isNegated(op) ? !hit : hit;
}

function matchPid(m: usize, ev: Event): bool {
  const op = load<u8>(m + L.M_OP);
  const f = load<u16>(m + L.M_FLAGS);
  const n = <i32>load<u8>(m + L.M_NVALUES);
  const nsPid = (f & L.MF_NS_PID) != 0;
  // Following forks by namespace pid needs a task in a pid namespace: others never match.
  if ((f & L.MF_FOLLOW) != 0 && nsPid && ev.nspid == 0) return false;
  let hit = inlineAny(m, n, <u64>(nsPid ? ev.nspid : ev.pid));
  if ((f & L.MF_FOLLOW) != 0) {
    for (let i = 0; !hit && i < ev.nAncestors; i++) {
      const a = unchecked(ev.ancestors[i]);
      hit = inlineAny(m, n, <u64>(nsPid ? a.nspid : a.pid));
    }
  }
  return op == L.OP_NOTIN ? !hit : hit;
}

function matchOne(t: Tables, hook: usize, m: usize, ev: Event): bool {
  const kind = load<u8>(m + L.M_KIND);
  const op = load<u8>(m + L.M_OP);
  const neg = op == L.OP_NOTIN;
  if (kind == L.MK_ARG) return matchArg(t, hook, m, ev);
  if (kind == L.MK_PID) return matchPid(m, ev);
  if (kind == L.MK_BINARY) return matchBinary(t, m, ev, false);
  if (kind == L.MK_PARENT_BINARY) return matchBinary(t, m, ev, true);
  if (kind == L.MK_NS) {
    const t = <i32>load<u8>(m + L.M_SLOT);
    const cur = <u64>ev.ns[t];
    const n = <i32>load<u8>(m + L.M_NVALUES);
    const hostMask = (load<u16>(m + L.M_FLAGS) & L.MF_HOST_NS) != 0 ? load<u32>(m + L.M_AUX) : 0;
    let hit = false;
    for (let i = 0; i < n; i++) {
      const v = (hostMask & (1 << <u32>i)) != 0 ? <u64>ev.hostNs[t] : mval(m, i);
      if (v == cur && v != 0) hit = true;
    }
    return neg ? !hit : hit;
  }
  if (kind == L.MK_CAPS) {
    // isNamespaceCapability: tasks in the host user namespace match neither In nor NotIn.
    if ((load<u16>(m + L.M_FLAGS) & L.MF_NS_CAP) != 0 && (ev.flags & 1) != 0) return false;
    const hit = (ev.caps[<i32>load<u8>(m + L.M_SLOT)] & mval(m, 0)) != 0;
    return neg ? !hit : hit;
  }
  if (kind == L.MK_CAP_CHANGE) {
    if ((load<u16>(m + L.M_FLAGS) & L.MF_NS_CAP) != 0 && (ev.flags & 1) != 0) return false;
    const set = <i32>load<u8>(m + L.M_SLOT);
    const changed = ev.caps[set] ^ ev.capsExec[set];
    // In: a listed capability changed since exec. NotIn: none of the listed changed, but
    // some other capability did.
    return neg ? (changed & mval(m, 0)) == 0 && changed != 0 : (changed & mval(m, 0)) != 0;
  }
  if (kind == L.MK_NS_CHANGE) {
    // Namespaces not recorded at exec (inode 0) are not compared.
    let changed: u64 = 0;
    for (let i = 0; i < L.NS_TYPES; i++) if (ev.nsExec[i] != 0 && ev.ns[i] != ev.nsExec[i]) changed |= <u64>1 << <u64>i;
    // In: a listed namespace changed. NotIn: a namespace that is not listed changed.
    return neg ? (changed & ~mval(m, 0)) != 0 : (changed & mval(m, 0)) != 0;
  }
  return false;
}

/** Result encoding: [i32 selector][u32 flags][u32 nActions][actions][u32 nReturn][actions].
 * selector -1: matched without selectors; -2: no selector matched. flags 1 = matched,
 * 2 = return matchers held. Actions are the raw struct ward_action records. */
export function evaluate(t: Tables, hookIndex: u32, ev: Event, out: Writer): bool {
  if (hookIndex >= t.nHooks) return false;
  const h = t.hookPtr(hookIndex);
  const nSel = <i32>load<u8>(h + L.H_N_SELECTORS);
  const hf = load<u8>(h + L.H_FLAGS);
  out.len = 0;
  if ((hf & L.HF_NO_SELECTORS) != 0) {
    out.i32(-1);
    out.u32(1);
    out.u32(1);
    const off = out.zeros(L.ACTION_SIZE);
    out.putU32(off + L.A_KIND, L.ACT_POST);
    out.u32(0);
    return true;
  }
  const returnPhase = (ev.flags & 2) != 0;
  for (let si = 0; si < nSel; si++) {
    const s = h + L.H_SELECTORS + <usize>si * L.SELECTOR_SIZE;
    const nm = <i32>load<u8>(s + L.S_N_MATCHERS);
    let ok = true;
    let retOk = true;
    for (let mi = 0; mi < nm; mi++) {
      const m = s + L.S_MATCHERS + <usize>mi * L.MATCHER_SIZE;
      if ((load<u16>(m + L.M_FLAGS) & L.MF_RETURN) != 0) {
        if (returnPhase && retOk && !matchOne(t, h, m, ev)) retOk = false;
        continue;
      }
      if (!matchOne(t, h, m, ev)) { ok = false; break; }
    }
    if (!ok) continue;
    const hasRet = (load<u8>(s + L.S_FLAGS) & L.SF_RETURN_MATCHERS) != 0;
    out.i32(si);
    out.u32(1 | (returnPhase && (!hasRet || retOk) ? 2 : 0));
    const na = <i32>load<u8>(s + L.S_N_ACTIONS);
    out.u32(<u32>na);
    for (let i = 0; i < na; i++) {
      const off = out.zeros(L.ACTION_SIZE);
      memory.copy(out.buf.dataStart + <usize>off, s + L.S_ACTIONS + <usize>i * L.ACTION_SIZE, L.ACTION_SIZE);
    }
    const nr = returnPhase && (!hasRet || retOk) ? <i32>load<u8>(s + L.S_N_RETURN_ACTIONS) : 0;
    out.u32(<u32>nr);
    for (let i = 0; i < nr; i++) {
      const off = out.zeros(L.ACTION_SIZE);
      memory.copy(out.buf.dataStart + <usize>off, s + L.S_RETURN_ACTIONS + <usize>i * L.ACTION_SIZE, L.ACTION_SIZE);
    }
    return true;
  }
  out.i32(-2);
  out.u32(0);
  out.u32(0);
  out.u32(0);
  return true;
}
