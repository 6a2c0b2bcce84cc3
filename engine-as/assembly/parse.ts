// Value syntax of Tetragon selectors: integers with Go's base prefixes, `min:max` ranges,
// IPv4/IPv6 addresses and CIDRs, and the symbolic names (IPPROTO_*, AF_*, TCP_*, CAP_*,
// namespace and file types). Results land in module globals because AssemblyScript has
// no tuples; every parser returns false on malformed input.

export let parsedInt: u64 = 0;
export let rangeLo: u64 = 0;
export let rangeHi: u64 = 0;

function digitVal(c: i32): i32 {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 122) return c - 87;
  if (c >= 65 && c <= 90) return c - 55;
  return 99;
}

/** Parses like Go's strconv.ParseInt(s, 0, bits) (signed) or ParseUint (unsigned):
 * optional sign (signed only), 0x / 0o / 0b / leading-0 octal, underscores between digits.
 * The value is stored two's-complement in parsedInt. */
export function parseInteger(s: string, bits: i32, signed: bool): bool {
  let i = 0;
  const n = s.length;
  let neg = false;
  if (i < n && (s.charCodeAt(i) == 43 || s.charCodeAt(i) == 45)) {
    if (!signed && s.charCodeAt(i) == 45) return false;
    neg = s.charCodeAt(i) == 45;
    i++;
  }
  let base: u64 = 10;
  if (i + 1 < n && s.charCodeAt(i) == 48) {
    const p = s.charCodeAt(i + 1) | 32;
    if (p == 120) { base = 16; i += 2; }
    else if (p == 111) { base = 8; i += 2; }
    else if (p == 98) { base = 2; i += 2; }
    else { base = 8; i += 1; }
  }
  if (i >= n) return base == 8 && n > 0 && s.charCodeAt(n - 1) == 48 ? setInt(0) : false;
  let v: u64 = 0;
  let digits = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c == 95) continue;
    const d = digitVal(c);
    if (<u64>d >= base) return false;
    const next = v * base + <u64>d;
    if (v != 0 && (next - <u64>d) / base != v) return false; // u64 overflow
    v = next;
    digits++;
  }
  if (digits == 0) return false;
  if (signed) {
    const limit: u64 = bits == 64 ? (<u64>1 << 63) : (<u64>1 << (bits - 1));
    if (neg ? v > limit : v >= limit) return false;
    parsedInt = neg ? <u64>(-(<i64>v)) : v;
  } else {
    if (bits < 64 && v >= (<u64>1 << bits)) return false;
    parsedInt = v;
  }
  return true;
}

export function setRange(lo: u64, hi: u64): void {
  rangeLo = lo;
  rangeHi = hi;
}

export function setParsed(v: u64): void {
  parsedInt = v;
}

function setInt(v: u64): bool {
  parsedInt = v;
  return true;
}

/** "n" or "lo:hi" (inclusive) of unsigned integers in base 10 (InMap, ports). */
export function parseRange(s: string, max: u64): bool {
  const c = s.indexOf(":");
  if (c < 0) {
    if (!parseDecimal(s) || parsedInt > max) return false;
    rangeLo = parsedInt;
    rangeHi = parsedInt;
    return true;
  }
  if (!parseDecimal(s.substring(0, c)) || parsedInt > max) return false;
  const lo = parsedInt;
  if (!parseDecimal(s.substring(c + 1)) || parsedInt > max) return false;
  if (parsedInt < lo) return false;
  rangeLo = lo;
  rangeHi = parsedInt;
  return true;
}

/** "lo:hi" with signed or unsigned integers in Go base-0 syntax (InRange). */
export function parseIntRange(s: string, bits: i32, signed: bool): bool {
  const c = s.indexOf(":");
  if (c < 0) {
    if (!parseInteger(s, bits, signed)) return false;
    rangeLo = parsedInt;
    rangeHi = parsedInt;
    return true;
  }
  if (!parseInteger(s.substring(0, c), bits, signed)) return false;
  const lo = parsedInt;
  if (!parseInteger(s.substring(c + 1), bits, signed)) return false;
  const hi = parsedInt;
  if (signed ? <i64>hi < <i64>lo : hi < lo) return false;
  rangeLo = lo;
  rangeHi = hi;
  return true;
}

export function parseDecimal(s: string): bool {
  if (s.length == 0) return false;
  let v: u64 = 0;
  for (let i = 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    const next = v * 10 + <u64>d;
    if (next < v) return false;
    v = next;
  }
  parsedInt = v;
  return true;
}

// ---- addresses ----
export const addrBytes = new Uint8Array(16);
export let addrFamily: u8 = 0;
export let addrPrefix: i32 = 0;

function parseV4Into(s: string, off: i32): bool {
  const parts = s.split(".");
  if (parts.length != 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (p.length == 0 || p.length > 3) return false;
    if (!parseDecimal(p) || parsedInt > 255) return false;
    addrBytes[off + i] = <u8>parsedInt;
  }
  return true;
}

function parseHex16(s: string): i32 {
  if (s.length == 0 || s.length > 4) return -1;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const d = digitVal(s.charCodeAt(i));
    if (d > 15) return -1;
    v = v * 16 + d;
  }
  return v;
}

function parseV6(s: string): bool {
  for (let i = 0; i < 16; i++) addrBytes[i] = 0;
  const dbl = s.indexOf("::");
  if (dbl >= 0 && s.indexOf("::", dbl + 1) >= 0) return false;
  const head = dbl >= 0 ? s.substring(0, dbl) : s;
  const tail = dbl >= 0 ? s.substring(dbl + 2) : "";
  const hp = head.length > 0 ? head.split(":") : new Array<string>(0);
  const tp = tail.length > 0 ? tail.split(":") : new Array<string>(0);
  // An embedded IPv4 tail (::ffff:1.2.3.4) takes two groups.
  const groups = new Array<i32>(0);
  const all = new Array<string>(0);
  for (let i = 0; i < hp.length; i++) all.push(hp[i]);
  const split = all.length;
  for (let i = 0; i < tp.length; i++) all.push(tp[i]);
  let v4tail = false;
  for (let i = 0; i < all.length; i++) {
    const g = all[i];
    if (i == all.length - 1 && g.indexOf(".") >= 0) {
      if (!parseV4Into(g, 12)) return false;
      v4tail = true;
      continue;
    }
    const v = parseHex16(g);
    if (v < 0) return false;
    groups.push(v);
  }
  const total = groups.length + (v4tail ? 2 : 0);
  if (dbl < 0 && total != 8) return false;
  if (dbl >= 0 && total > 7) return false;
  const headGroups = split;
  // head groups from the front, the rest right-aligned before the optional v4 tail
  for (let i = 0; i < headGroups && i < groups.length; i++) {
    addrBytes[i * 2] = <u8>(groups[i] >> 8);
    addrBytes[i * 2 + 1] = <u8>groups[i];
  }
  const tailGroups = groups.length - headGroups;
  const tailEnd = v4tail ? 6 : 8;
  for (let j = 0; j < tailGroups; j++) {
    const g = groups[headGroups + j];
    const pos = tailEnd - tailGroups + j;
    addrBytes[pos * 2] = <u8>(g >> 8);
    addrBytes[pos * 2 + 1] = <u8>g;
  }
  return true;
}

/** An address or CIDR: sets addrFamily (4/6), addrBytes (v4 in [0..4)), addrPrefix, and
 * clears host bits below the prefix (Go's netip.ParsePrefix(...).Masked() behaviour). */
export function parseCidr(s: string): bool {
  let a = s;
  let plen = -1;
  const slash = s.indexOf("/");
  if (slash >= 0) {
    a = s.substring(0, slash);
    if (!parseDecimal(s.substring(slash + 1))) return false;
    plen = <i32>parsedInt;
  }
  for (let i = 0; i < 16; i++) addrBytes[i] = 0;
  if (a.indexOf(":") >= 0) {
    if (!parseV6(a)) return false;
    addrFamily = 6;
    if (plen < 0) plen = 128;
    if (plen > 128) return false;
  } else {
    if (!parseV4Into(a, 0)) return false;
    addrFamily = 4;
    if (plen < 0) plen = 32;
    if (plen > 32) return false;
  }
  addrPrefix = plen;
  maskAddr(addrBytes, plen);
  return true;
}

export function maskAddr(b: Uint8Array, plen: i32): void {
  for (let i = 0; i < 16; i++) {
    const bitsHere = plen - i * 8;
    if (bitsHere >= 8) continue;
    if (bitsHere <= 0) b[i] = 0;
    else b[i] = <u8>(<i32>b[i] & (0xff << (8 - bitsHere)));
  }
}

// ---- names ----
const PROTOCOLS: string[] = [
  "IPPROTO_IP", "0", "IPPROTO_ICMP", "1", "IPPROTO_IGMP", "2", "IPPROTO_IPIP", "4", "IPPROTO_TCP", "6",
  "IPPROTO_EGP", "8", "IPPROTO_PUP", "12", "IPPROTO_UDP", "17", "IPPROTO_IDP", "22", "IPPROTO_TP", "29",
  "IPPROTO_DCCP", "33", "IPPROTO_IPV6", "41", "IPPROTO_RSVP", "46", "IPPROTO_GRE", "47", "IPPROTO_ESP", "50",
  "IPPROTO_AH", "51", "IPPROTO_ICMPV6", "58", "IPPROTO_MTP", "92", "IPPROTO_BEETPH", "94", "IPPROTO_ENCAP", "98",
  "IPPROTO_PIM", "103", "IPPROTO_COMP", "108", "IPPROTO_L2TP", "115", "IPPROTO_SCTP", "132",
  "IPPROTO_UDPLITE", "136", "IPPROTO_MPLS", "137", "IPPROTO_ETHERNET", "143", "IPPROTO_RAW", "255",
  "IPPROTO_MPTCP", "262",
];
const FAMILIES: string[] = [
  "AF_UNSPEC", "0", "AF_UNIX", "1", "AF_LOCAL", "1", "AF_INET", "2", "AF_AX25", "3", "AF_IPX", "4",
  "AF_APPLETALK", "5", "AF_NETROM", "6", "AF_BRIDGE", "7", "AF_ATMPVC", "8", "AF_X25", "9", "AF_INET6", "10",
  "AF_ROSE", "11", "AF_DECnet", "12", "AF_NETBEUI", "13", "AF_SECURITY", "14", "AF_KEY", "15",
  "AF_NETLINK", "16", "AF_ROUTE", "16", "AF_PACKET", "17", "AF_ASH", "18", "AF_ECONET", "19", "AF_ATMSVC", "20",
  "AF_RDS", "21", "AF_SNA", "22", "AF_IRDA", "23", "AF_PPPOX", "24", "AF_WANPIPE", "25", "AF_LLC", "26",
  "AF_IB", "27", "AF_MPLS", "28", "AF_CAN", "29", "AF_TIPC", "30", "AF_BLUETOOTH", "31", "AF_IUCV", "32",
  "AF_RXRPC", "33", "AF_ISDN", "34", "AF_PHONET", "35", "AF_IEEE802154", "36", "AF_CAIF", "37", "AF_ALG", "38",
  "AF_NFC", "39", "AF_VSOCK", "40", "AF_KCM", "41", "AF_QIPCRTR", "42", "AF_SMC", "43", "AF_XDP", "44",
  "AF_MCTP", "45",
];
const STATES: string[] = [
  "TCP_ESTABLISHED", "1", "TCP_SYN_SENT", "2", "TCP_SYN_RECV", "3", "TCP_FIN_WAIT1", "4", "TCP_FIN_WAIT2", "5",
  "TCP_TIME_WAIT", "6", "TCP_CLOSE", "7", "TCP_CLOSE_WAIT", "8", "TCP_LAST_ACK", "9", "TCP_LISTEN", "10",
  "TCP_CLOSING", "11", "TCP_NEW_SYN_RECV", "12",
];
// S_IFMT >> 12 values
const FILE_TYPES: string[] = [
  "fifo", "1", "pipe", "1", "chr", "2", "char", "2", "dir", "4", "blk", "6", "block", "6",
  "reg", "8", "regular", "8", "lnk", "10", "link", "10", "sock", "12", "socket", "12",
];
// Tetragon's proto enum order; DAC_OVERRIDE has no CAP_ prefix there (both spellings accepted).
export const CAP_NAMES: string[] = [
  "CAP_CHOWN", "DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];
export const NS_NAMES: string[] = [
  "Uts", "Ipc", "Mnt", "Pid", "PidForChildren", "Net", "Time", "TimeForChildren", "Cgroup", "User",
];
// /proc/PID/ns file names in the same order, for the host_ns lookup done by the wrapper.

function lookup(table: string[], s: string): bool {
  for (let i = 0; i < table.length; i += 2) {
    if (table[i] == s) {
      parsedInt = <u64>I32.parseInt(table[i + 1]);
      return true;
    }
  }
  return false;
}

export function parseProtocol(s: string): bool {
  return lookup(PROTOCOLS, s) || parseInteger(s, 32, false);
}
export function parseFamily(s: string): bool {
  return lookup(FAMILIES, s) || parseInteger(s, 16, false);
}
export function parseState(s: string): bool {
  return lookup(STATES, s) || parseInteger(s, 8, false);
}
export function parseFileType(s: string): bool {
  return lookup(FILE_TYPES, s.toLowerCase());
}

/** Capability bit number, or -1. */
export function capBit(s: string): i32 {
  const u = s.toUpperCase();
  for (let i = 0; i < CAP_NAMES.length; i++) {
    if (CAP_NAMES[i] == u) return i;
  }
  if (u == "CAP_DAC_OVERRIDE") return 1;
  return -1;
}

export function nsIndex(s: string): i32 {
  for (let i = 0; i < NS_NAMES.length; i++) {
    if (NS_NAMES[i] == s) return i;
  }
  return -1;
}
