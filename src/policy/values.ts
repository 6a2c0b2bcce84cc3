// Parsers for the value formats a TracingPolicy carries inside strings:
// integers in Go's base-prefix syntax, ranges, ports, IP addresses and CIDRs,
// capability / protocol / family / TCP state names, rate limits, URLs, FQDNs.
// Each returns either the parsed value or a message saying what is allowed,
// so validate.ts can put that message next to a source position.

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = <T>(message: string): Parsed<T> => ({ ok: false, message });

/** Integer widths of matchArgs values, as Tetragon parses them (see §1.6: int/size_t/16/8-bit are 32-bit). */
export type IntWidth = "s32" | "u32" | "s64" | "u64";

const LIMITS: Record<IntWidth, [bigint, bigint]> = {
  s32: [-(1n << 31n), (1n << 31n) - 1n],
  u32: [0n, (1n << 32n) - 1n],
  s64: [-(1n << 63n), (1n << 63n) - 1n],
  u64: [0n, (1n << 64n) - 1n],
};

/** Go strconv.ParseInt(s, base, _) syntax: base 0 accepts 0x / 0o / 0b / leading-0 octal and `_` separators after a prefix; base 10 plain digits. */
export function parseGoInt(s: string, base: 0 | 10): bigint | undefined {
  let t = s;
  let neg = false;
  if (t.startsWith("-") || t.startsWith("+")) {
    neg = t[0] === "-";
    t = t.slice(1);
  }
  if (t === "") return undefined;
  let digits = t;
  let radix = 10;
  if (base === 0) {
    const p = t.slice(0, 2).toLowerCase();
    if (p === "0x") [radix, digits] = [16, t.slice(2)];
    else if (p === "0o") [radix, digits] = [8, t.slice(2)];
    else if (p === "0b") [radix, digits] = [2, t.slice(2)];
    else if (t.length > 1 && t[0] === "0") [radix, digits] = [8, t.slice(1)];
    // With base 0 Go accepts `_` between digits, and right after a base prefix ("0x_1f").
    if (radix !== 10) digits = digits.replace(/^_/, "");
    if (/^_|__|_$/.test(digits)) return undefined;
    digits = digits.replaceAll("_", "");
  }
  const alphabet = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[radix as 2 | 8 | 10 | 16];
  if (digits === "" || !alphabet.test(digits)) return undefined;
  let v = 0n;
  const r = BigInt(radix);
  for (const ch of digits.toLowerCase()) v = v * r + BigInt(parseInt(ch, radix));
  return neg ? -v : v;
}

export function parseIntValue(s: string, width: IntWidth, base: 0 | 10 = 0): Parsed<bigint> {
  const v = parseGoInt(s.trim() === s ? s : "", base);
  const syntax = base === 0 ? "an integer (decimal, 0x hex, 0o/0 octal or 0b binary)" : "a decimal integer";
  if (v === undefined) return bad(`"${s}" is not ${syntax}`);
  const [lo, hi] = LIMITS[width];
  if (v < lo || v > hi) return bad(`${s} is out of range for a ${widthName(width)} value (${lo}..${hi})`);
  return ok(v);
}

function widthName(w: IntWidth): string {
  return { s32: "signed 32-bit", u32: "unsigned 32-bit", s64: "signed 64-bit", u64: "unsigned 64-bit" }[w];
}

/** "min:max" (inclusive) or a single value meaning "v:v". */
export function parseRange(s: string, width: IntWidth, base: 0 | 10 = 10): Parsed<[bigint, bigint]> {
  const parts = s.split(":");
  if (parts.length > 2) return bad(`"${s}" is not a range: expected "min:max"`);
  const a = parseIntValue(parts[0] ?? "", width, base);
  if (!a.ok) return a;
  if (parts.length === 1) return ok([a.value, a.value]);
  const b = parseIntValue(parts[1] ?? "", width, base);
  if (!b.ok) return b;
  if (a.value > b.value) return bad(`range "${s}" has min > max`);
  return ok([a.value, b.value]);
}

export function parsePortOrRange(s: string): Parsed<[number, number]> {
  const parts = s.split(":");
  if (parts.length > 2) return bad(`"${s}" is not a port or port range ("PORT" or "MIN:MAX", 0..65535)`);
  const nums: number[] = [];
  for (const p of parts) {
    if (!/^[0-9]+$/.test(p)) return bad(`"${s}" is not a port or port range ("PORT" or "MIN:MAX", 0..65535)`);
    const n = Number(p);
    if (n > 65535) return bad(`port ${p} is out of range (0..65535)`);
    nums.push(n);
  }
  const lo = nums[0] ?? 0;
  const hi = nums[1] ?? lo;
  if (lo > hi) return bad(`port range "${s}" has min > max`);
  return ok([lo, hi]);
}

// ------------------------------------------------------------ addresses

function parseIPv4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    // Go's netip rejects leading zeros (ambiguous octal), and so do we.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function parseIPv6(s: string): boolean {
  if (s.includes("%")) return false; // zones are not matchable addresses
  let head = s;
  let v4tail = 0;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    if (parseIPv4(s.slice(lastColon + 1)) === undefined) return false;
    head = s.slice(0, lastColon + 1) + "0";
    v4tail = 1; // an IPv4 tail fills two groups; count it as one extra below
  }
  const dbl = head.split("::");
  if (dbl.length > 2) return false;
  const groups = (x: string): string[] | undefined => {
    if (x === "") return [];
    const g = x.split(":");
    return g.every((h) => /^[0-9a-fA-F]{1,4}$/.test(h)) ? g : undefined;
  };
  const left = groups(dbl[0] ?? "");
  const right = dbl.length === 2 ? groups(dbl[1] ?? "") : [];
  if (left === undefined || right === undefined) return false;
  const n = left.length + right.length + v4tail;
  return dbl.length === 2 ? n <= 7 : n === 8;
}

export interface AddrValue {
  family: 4 | 6;
  addr: string;
  prefixLen: number;
}

/** An IPv4/IPv6 address or CIDR, as netip.ParseAddr / ParsePrefix accept them. */
export function parseAddrOrCidr(s: string): Parsed<AddrValue> {
  const slash = s.indexOf("/");
  const addr = slash < 0 ? s : s.slice(0, slash);
  const lenStr = slash < 0 ? undefined : s.slice(slash + 1);
  let family: 4 | 6;
  if (parseIPv4(addr) !== undefined) family = 4;
  else if (addr.includes(":") && parseIPv6(addr)) family = 6;
  else return bad(`"${s}" is not an IPv4/IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
  const max = family === 4 ? 32 : 128;
  let prefixLen = max;
  if (lenStr !== undefined) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenStr) || Number(lenStr) > max) {
      return bad(`"${s}" has an invalid prefix length (0..${max} for IPv${family})`);
    }
    prefixLen = Number(lenStr);
  }
  return ok({ family, addr, prefixLen });
}

// ------------------------------------------------------------ names

/** Capability names exactly as Tetragon's proto enum spells them (DAC_OVERRIDE has no CAP_ prefix there). */
export const CAPABILITY_NAMES = [
  "CAP_CHOWN", "DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
  "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
] as const;

export interface CapName {
  name: string;
  /** Set when the spelling was accepted but differs from what Tetragon accepts. */
  note?: string;
}

/** Tetragon upper-cases and trims before the lookup; CAP_DAC_OVERRIDE is the spelling
 * everyone writes, so we accept it and say that Tetragon would not. */
export function parseCapabilityName(s: string): Parsed<CapName> {
  const up = s.trim().toUpperCase();
  if ((CAPABILITY_NAMES as readonly string[]).includes(up)) return ok({ name: up });
  if (up === "CAP_DAC_OVERRIDE") {
    return ok({ name: "DAC_OVERRIDE", note: `"${s}" normalized to DAC_OVERRIDE (Tetragon's enum spelling; Tetragon itself rejects CAP_DAC_OVERRIDE)` });
  }
  const hint = (CAPABILITY_NAMES as readonly string[]).includes(`CAP_${up}`) ? ` (did you mean CAP_${up}?)` : "";
  return bad(`"${s}" is not a capability name${hint}; expected one of CAP_CHOWN, DAC_OVERRIDE, CAP_SYS_ADMIN, ... (Linux capability names)`);
}

export const IPPROTO: Record<string, number> = {
  IPPROTO_IP: 0, IPPROTO_ICMP: 1, IPPROTO_IGMP: 2, IPPROTO_IPIP: 4, IPPROTO_TCP: 6, IPPROTO_EGP: 8,
  IPPROTO_PUP: 12, IPPROTO_UDP: 17, IPPROTO_IDP: 22, IPPROTO_TP: 29, IPPROTO_DCCP: 33, IPPROTO_IPV6: 41,
  IPPROTO_RSVP: 46, IPPROTO_GRE: 47, IPPROTO_ESP: 50, IPPROTO_AH: 51, IPPROTO_ICMPV6: 58, IPPROTO_MTP: 92,
  IPPROTO_BEETPH: 94, IPPROTO_ENCAP: 98, IPPROTO_PIM: 103, IPPROTO_COMP: 108, IPPROTO_L2TP: 115,
  IPPROTO_SCTP: 132, IPPROTO_UDPLITE: 136, IPPROTO_MPLS: 137, IPPROTO_ETHERNET: 143, IPPROTO_RAW: 255,
  IPPROTO_MPTCP: 262,
};

export const ADDRESS_FAMILIES: Record<string, number> = {
  AF_UNSPEC: 0, AF_UNIX: 1, AF_LOCAL: 1, AF_INET: 2, AF_AX25: 3, AF_IPX: 4, AF_APPLETALK: 5,
  AF_NETROM: 6, AF_BRIDGE: 7, AF_ATMPVC: 8, AF_X25: 9, AF_INET6: 10, AF_ROSE: 11, AF_DECnet: 12,
  AF_NETBEUI: 13, AF_SECURITY: 14, AF_KEY: 15, AF_NETLINK: 16, AF_ROUTE: 16, AF_PACKET: 17,
  AF_ASH: 18, AF_ECONET: 19, AF_ATMSVC: 20, AF_RDS: 21, AF_SNA: 22, AF_IRDA: 23, AF_PPPOX: 24,
  AF_WANPIPE: 25, AF_LLC: 26, AF_IB: 27, AF_MPLS: 28, AF_CAN: 29, AF_TIPC: 30, AF_BLUETOOTH: 31,
  AF_IUCV: 32, AF_RXRPC: 33, AF_ISDN: 34, AF_PHONET: 35, AF_IEEE802154: 36, AF_CAIF: 37, AF_ALG: 38,
  AF_NFC: 39, AF_VSOCK: 40, AF_KCM: 41, AF_QIPCRTR: 42, AF_SMC: 43, AF_XDP: 44, AF_MCTP: 45,
};

export const TCP_STATES: Record<string, number> = {
  TCP_ESTABLISHED: 1, TCP_SYN_SENT: 2, TCP_SYN_RECV: 3, TCP_FIN_WAIT1: 4, TCP_FIN_WAIT2: 5,
  TCP_TIME_WAIT: 6, TCP_CLOSE: 7, TCP_CLOSE_WAIT: 8, TCP_LAST_ACK: 9, TCP_LISTEN: 10, TCP_CLOSING: 11,
  TCP_NEW_SYN_RECV: 12,
};

/** Protocol / Family / State values: a number, a "min:max" range, or a symbolic name. */
export function parseNamedNumber(s: string, names: Record<string, number>, what: string, example: string): Parsed<number> {
  const named = names[s];
  if (named !== undefined) return ok(named);
  const r = parseRange(s, "u64", 10);
  if (r.ok) return ok(Number(r.value[0]));
  return bad(`"${s}" is not a ${what}: expected a number, a "min:max" range or a name such as ${example}`);
}

/** FileType / NotFileType values (Tetragon's fileTypeTable). */
export const FILE_TYPES: Record<string, string> = {
  sock: "sock", socket: "sock", lnk: "lnk", link: "lnk", reg: "reg", regular: "reg",
  blk: "blk", block: "blk", dir: "dir", chr: "chr", char: "chr", fifo: "fifo", pipe: "fifo",
};

/** rateLimit: "N" (seconds), "Ns", "Nm", "Nh" (any case); N fits uint32. Returns milliseconds, capped at 2^32-1 like Tetragon. */
export function parseRateLimit(s: string): Parsed<number> {
  const m = /^([0-9]+)([smhSMH]?)$/.exec(s);
  if (m === null) return bad(`"${s}" is not a rate limit: expected N, Ns, Nm or Nh (e.g. "1m")`);
  const n = BigInt(m[1] ?? "0");
  if (n > 0xffffffffn) return bad(`rate limit ${s} is too large (the number must fit in 32 bits)`);
  const mult = { "": 1n, s: 1n, m: 60n, h: 3600n }[(m[2] ?? "").toLowerCase() as "" | "s" | "m" | "h"];
  const ms = n * mult * 1000n;
  return ok(Number(ms > 0xffffffffn ? 0xffffffffn : ms));
}

/** DNS-1123 subdomain, the rule for metadata.name. */
export function checkDns1123Subdomain(s: string): string | undefined {
  if (s.length === 0) return "must not be empty";
  if (s.length > 253) return `is ${s.length} characters long; at most 253 are allowed`;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s)) {
    return "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit";
  }
  return undefined;
}

/** DNS-1123 label, the rule for metadata.namespace. */
export function checkDns1123Label(s: string): string | undefined {
  if (s.length === 0) return "must not be empty";
  if (s.length > 63) return `is ${s.length} characters long; at most 63 are allowed`;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s)) return "must be a DNS-1123 label: lower-case letters, digits and '-'";
  return undefined;
}

export function checkUrl(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `"${s}" is not a URL (expected http://... or https://...)`;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `"${s}" uses ${u.protocol}; only http and https URLs can be fetched`;
  return undefined;
}

export function checkFqdn(s: string): string | undefined {
  const name = s.endsWith(".") ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return `"${s}" is not a domain name (1..253 characters)`;
  for (const label of name.split(".")) {
    if (!/^[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?$/.test(label)) {
      return `"${s}" is not a domain name: label "${label}" must be 1..63 letters, digits, '-' or '_' and not start or end with '-'`;
    }
  }
  return undefined;
}

/** Placeholders meant for envsubst, e.g. ${PODCIDR}. */
export const PLACEHOLDER = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
