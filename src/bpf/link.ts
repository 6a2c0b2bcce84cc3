// Attaching programs. Every attachment is a Link; most are kernel bpf_links (pinnable, survive the
// process when pinned), a few are legacy attachments kept alive by this process (perf ioctl,
// PROG_ATTACH) for kernels without the link form (loader.md §6).
import { constants as fsc, openSync } from "node:fs";
import { Attr, objInfo } from "./attr.ts";
import { AttachFlags, AttachType, BpfCmd, LinkType, PERF_EVENT_IOC_DISABLE, PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF, ProgType } from "./constants.ts";
import { Fd } from "./fd.ts";
import { openProbeEvent, openTracepointEvent, UnsupportedFeatureError } from "./perf.ts";
import { getPinned, pinObject } from "./pin.ts";
import type { BpfProgram } from "./program.ts";
import { symbolFileOffset } from "./uprobe-symbols.ts";
import { SyscallError, addr as addrOf, cString, dup as dupRaw, ioctl, withContext } from "./sys.ts";

export { UnsupportedFeatureError };

export class LinkError extends Error {
  override name = "LinkError";
}

export interface LinkInfo {
  type: LinkType;
  id: number;
  progId: number;
  /** raw_tracepoint links: the tracepoint name. */
  tpName?: string;
  /** tracing links: attach type and target BTF id. */
  attachType?: AttachType;
  targetBtfId?: number;
  /** cgroup links. */
  cgroupId?: bigint;
}

type Kind = "link" | "perf-ioctl" | "prog-attach";

const EINVAL = 22;
const EOPNOTSUPP = 95;
const ENOTSUPP = 524;
const LINK_INFO_SIZE = 64;

/**
 * An attachment. `fd` is the bpf_link fd for kernel links; for legacy attachments it is the perf
 * event fd (perf-ioctl) or the cgroup fd (prog-attach), and pin() is refused.
 */
export class Link {
  readonly fd: Fd;
  readonly kind: Kind;
  readonly description: string;
  /** Extra fds the attachment needs (perf event of a perf link; program for PROG_DETACH). */
  readonly #extra: Fd[];
  readonly #detach: (() => void) | undefined;
  #detached = false;

  constructor(fd: Fd, kind: Kind, description: string, extra: Fd[] = [], detach?: () => void) {
    this.fd = fd;
    this.kind = kind;
    this.description = description;
    this.#extra = extra;
    this.#detach = detach;
  }

  /** Open a pinned bpf_link (the attachment lives on while the pin or any fd exists). */
  static fromPin(path: string): Link {
    const fd = getPinned(path);
    return new Link(fd, "link", `pinned link ${path}`);
  }

  /** Pin the link on bpffs so the attachment outlives this process. */
  pin(path: string): void {
    if (this.kind !== "link") {
      throw new LinkError(`pin ${this.description}: a ${this.kind} attachment is not a bpf_link and cannot be pinned on this kernel`);
    }
    pinObject(this.fd, path);
  }

  /**
   * Detach now, even when other fds or pins refer to the link (LINK_DETACH: cgroup and other
   * network links). Throws LinkError for link types the kernel cannot force-detach.
   */
  detach(): void {
    if (this.#detached) return;
    if (this.kind === "link") {
      try {
        new Attr().u32(0, this.fd.raw).call(BpfCmd.LINK_DETACH);
      } catch (e) {
        // Raw tracepoint, tracing and perf links have no forced detach: only closing every fd
        // and removing every pin ends them. Say so rather than pretend.
        if (e instanceof SyscallError && (e.errno === EINVAL || e.errno === EOPNOTSUPP)) {
          throw new LinkError(`detach ${this.description}: the kernel cannot force-detach this link type (${e.code}); close it and remove its pins instead`);
        }
        throw withContext(e, `detach ${this.description}`);
      }
    } else {
      this.#detach?.();
    }
    this.#detached = true;
  }

  info(): LinkInfo {
    if (this.kind !== "link") throw new LinkError(`info of ${this.description}: not a bpf_link`);
    return readLinkInfo(this.fd.raw);
  }

  /** Close this process's reference. Legacy attachments are detached; pinned links stay attached. */
  close(): void {
    if (this.kind !== "link" && !this.#detached && !this.fd.closed) {
      try {
        this.detach();
      } catch {
        // Closing the fds below drops the attachment anyway for perf events; nothing else to do.
      }
    }
    this.fd.close();
    for (const f of this.#extra) f.close();
  }
}

export function readLinkInfo(fd: number): LinkInfo {
  const v = objInfo(fd, LINK_INFO_SIZE);
  const info: LinkInfo = { type: v.getUint32(0, true), id: v.getUint32(4, true), progId: v.getUint32(8, true) };
  if (info.type === LinkType.RAW_TRACEPOINT) {
    // Ask again with a buffer for the name.
    const name = new Uint8Array(256);
    const buf = new Uint8Array(LINK_INFO_SIZE);
    const bv = new DataView(buf.buffer);
    bv.setBigUint64(16, BigInt(addrOf(name)), true);
    bv.setUint32(24, name.byteLength, true);
    new Attr().u32(0, fd).u32(4, LINK_INFO_SIZE).ptr(8, buf).call(BpfCmd.OBJ_GET_INFO_BY_FD);
    const end = name.indexOf(0);
    info.tpName = new TextDecoder().decode(name.subarray(0, end < 0 ? name.length : end));
  } else if (info.type === LinkType.TRACING) {
    info.attachType = v.getUint32(16, true);
    info.targetBtfId = v.getUint32(24, true);
  } else if (info.type === LinkType.CGROUP) {
    info.cgroupId = v.getBigUint64(16, true);
    info.attachType = v.getUint32(24, true);
  }
  return info;
}


function linkCreate(progFd: number, targetFd: number, attachType: number, fill?: (a: Attr) => void): number {
  const a = new Attr().u32(0, progFd).u32(4, targetFd).u32(8, attachType);
  fill?.(a);
  return a.call(BpfCmd.LINK_CREATE);
}

function noLinkSupport(e: unknown): boolean {
  return e instanceof SyscallError && (e.errno === EINVAL || e.errno === ENOTSUPP || e.errno === EOPNOTSUPP);
}

const TRACING_ATTACH = new Set<number>([
  AttachType.TRACE_RAW_TP,
  AttachType.TRACE_FENTRY,
  AttachType.TRACE_FEXIT,
  AttachType.MODIFY_RETURN,
  AttachType.LSM_MAC,
]);

/**
 * tp_btf / fentry / fexit / fmod_ret / LSM programs (loaded with attach_btf_id): LINK_CREATE,
 * falling back to RAW_TRACEPOINT_OPEN with no name on kernels without tracing links.
 */
export function attachTracing(prog: BpfProgram, opts: { attachType?: AttachType; cookie?: bigint } = {}): Link {
  const what = `attach program ${prog.name}`;
  const at = opts.attachType ?? prog.expectedAttachType;
  if (at !== undefined && TRACING_ATTACH.has(at)) {
    try {
      const fd = linkCreate(prog.fd.raw, 0, at, (a) => {
        if (opts.cookie !== undefined) a.u64(24, opts.cookie);
      });
      return new Link(new Fd(fd), "link", `tracing link of ${prog.name}`);
    } catch (e) {
      if (!noLinkSupport(e)) throw withContext(e, what);
    }
  }
  try {
    const fd = new Attr().u32(8, prog.fd.raw).call(BpfCmd.RAW_TRACEPOINT_OPEN);
    return new Link(new Fd(fd), "link", `tracing link of ${prog.name}`);
  } catch (e) {
    throw withContext(e, what);
  }
}

/** RAW_TRACEPOINT programs on a named raw tracepoint ("sys_enter", "sched_switch"). */
export function attachRawTracepoint(prog: BpfProgram, name: string, opts: { cookie?: bigint } = {}): Link {
  const tp = cString(name);
  const a = new Attr().ptr(0, tp).u32(8, prog.fd.raw);
  if (opts.cookie !== undefined) a.u64(16, opts.cookie);
  try {
    const fd = a.call(BpfCmd.RAW_TRACEPOINT_OPEN);
    return new Link(new Fd(fd), "link", `raw tracepoint ${name} link of ${prog.name}`);
  } catch (e) {
    throw withContext(e, `attach program ${prog.name} to raw tracepoint ${name}`);
  }
}

/**
 * Attach a program to an open perf event: a BPF_PERF_EVENT link (5.15+), else the
 * PERF_EVENT_IOC_SET_BPF ioctl. Takes ownership of `perf`.
 */
export interface PerfAttachOptions {
  cookie?: bigint;
  /** "ioctl" skips the perf link (tests; kernels before 5.15 take this path on their own). */
  mode?: "auto" | "ioctl";
}

export function attachPerfEvent(prog: BpfProgram, perf: Fd, description: string, opts: PerfAttachOptions = {}): Link {
  try {
    let fd: number;
    try {
      if (opts.mode === "ioctl") throw new SyscallError("bpf", "BPF_LINK_CREATE", EINVAL, "perf link skipped");
      fd = linkCreate(prog.fd.raw, perf.raw, AttachType.PERF_EVENT, (a) => {
        if (opts.cookie !== undefined) a.u64(16, opts.cookie);
      });
    } catch (e) {
      if (!noLinkSupport(e)) throw e;
      ioctl(perf.raw, PERF_EVENT_IOC_SET_BPF, prog.fd.raw);
      ioctl(perf.raw, PERF_EVENT_IOC_ENABLE, 0);
      const p = perf;
      return new Link(p, "perf-ioctl", description, [], () => {
        ioctl(p.raw, PERF_EVENT_IOC_DISABLE, 0);
      });
    }
    // The perf link holds its own reference to the event; we keep ours until close().
    return new Link(new Fd(fd), "link", description, [perf]);
  } catch (e) {
    perf.close();
    throw withContext(e, `attach program ${prog.name} (${description})`);
  }
}

/** TRACEPOINT programs on tracefs event category/name (e.g. "syscalls", "sys_enter_openat"). */
export function attachTracepoint(prog: BpfProgram, category: string, name: string, opts: PerfAttachOptions = {}): Link {
  let perf: Fd;
  try {
    perf = openTracepointEvent(category, name);
  } catch (e) {
    throw withContext(e, `attach program ${prog.name} to tracepoint ${category}/${name}`);
  }
  return attachPerfEvent(prog, perf, `tracepoint ${category}/${name} link of ${prog.name}`, opts);
}

/** KPROBE programs on a kernel symbol through the kprobe PMU. */
export function attachKprobe(
  prog: BpfProgram,
  symbol: string,
  opts: { retprobe?: boolean; offset?: bigint; cookie?: bigint } = {},
): Link {
  let perf: Fd;
  try {
    perf = openProbeEvent("kprobe", symbol, opts.offset ?? 0n, { retprobe: opts.retprobe ?? false });
  } catch (e) {
    throw withContext(e, `attach program ${prog.name} to kprobe ${symbol}`);
  }
  return attachPerfEvent(prog, perf, `${opts.retprobe === true ? "kretprobe" : "kprobe"} ${symbol} link of ${prog.name}`, opts);
}

/** BPF_F_KPROBE_MULTI_RETURN: the multi link runs the program at the functions' returns. */
const KPROBE_MULTI_RETURN = 1;

/**
 * A kprobe.multi program (expected attach type TRACE_KPROBE_MULTI, 5.18+) on many kernel
 * functions through one link: LINK_CREATE with link_create.kprobe_multi {flags, cnt, syms,
 * addrs, cookies}. `cookies[i]` is what bpf_get_attach_cookie returns at `symbols[i]`.
 */
export function attachKprobeMulti(prog: BpfProgram, symbols: readonly string[], opts: { retprobe?: boolean; cookies?: readonly bigint[] } = {}): Link {
  const what = `attach program ${prog.name} to kprobe.multi of ${symbols.length} functions (${symbols.slice(0, 3).join(", ")}${symbols.length > 3 ? ", ..." : ""})`;
  if (symbols.length === 0) throw new LinkError(`${what}: no functions`);
  if (opts.cookies !== undefined && opts.cookies.length !== symbols.length) throw new LinkError(`${what}: ${opts.cookies.length} cookies for ${symbols.length} functions`);
  // The kernel reads an array of C string pointers; the strings must outlive the call.
  const strs = symbols.map((s) => cString(s));
  const syms = new BigUint64Array(strs.map((s) => BigInt(addrOf(s))));
  const cookies = opts.cookies !== undefined ? new BigUint64Array(opts.cookies) : undefined;
  try {
    const fd = linkCreate(prog.fd.raw, 0, AttachType.TRACE_KPROBE_MULTI, (a) => {
      a.u32(16, opts.retprobe === true ? KPROBE_MULTI_RETURN : 0).u32(20, symbols.length).ptr(24, new Uint8Array(syms.buffer));
      if (cookies !== undefined) a.ptr(40, new Uint8Array(cookies.buffer));
    });
    void strs;
    return new Link(new Fd(fd), "link", `${opts.retprobe === true ? "kretprobe" : "kprobe"}.multi link of ${prog.name} (${symbols.length} functions)`);
  } catch (e) {
    // EOPNOTSUPP is the kernel saying it has no fprobe (CONFIG_FPROBE off, or no kprobes at
    // all): a missing feature, typed as such so callers fall back to one kprobe per function.
    if (e instanceof SyscallError && e.code === "EOPNOTSUPP") {
      throw new UnsupportedFeatureError("kprobe_multi", `${what}: this kernel has no kprobe.multi links (BPF_LINK_CREATE: EOPNOTSUPP; CONFIG_FPROBE off or no kprobes); attach one kprobe per function instead`);
    }
    throw withContext(e, what);
  }
}

/**
 * KPROBE-type programs on a user binary through the uprobe PMU. A number is the file offset of
 * the instruction; a string is a function symbol, resolved to its file offset (uprobe-symbols.ts).
 */
export function attachUprobe(
  prog: BpfProgram,
  binaryPath: string,
  offsetOrSymbol: number | bigint | string,
  opts: { retprobe?: boolean; pid?: number; cookie?: bigint; resolveSymbol?: (path: string, sym: string) => bigint } = {},
): Link {
  let perf: Fd;
  let off: bigint;
  try {
    if (typeof offsetOrSymbol === "string") {
      off = (opts.resolveSymbol ?? symbolFileOffset)(binaryPath, offsetOrSymbol);
    } else {
      off = BigInt(offsetOrSymbol);
    }
    perf = openProbeEvent("uprobe", binaryPath, off, { retprobe: opts.retprobe ?? false, pid: opts.pid ?? -1 });
  } catch (e) {
    throw withContext(e, `attach program ${prog.name} to uprobe ${binaryPath}:${String(offsetOrSymbol)}`);
  }
  return attachPerfEvent(prog, perf, `${opts.retprobe === true ? "uretprobe" : "uprobe"} ${binaryPath}:${String(offsetOrSymbol)} link of ${prog.name}`, opts);
}

/** Our own fd for the cgroup; the caller's fd (if any) stays the caller's. */
function openCgroup(cgroup: string | number | Fd): Fd {
  if (cgroup instanceof Fd) return cgroup.dup();
  if (typeof cgroup === "number") return new Fd(dupRaw(cgroup));
  // libuv opens with O_CLOEXEC already.
  return new Fd(openSync(cgroup, fsc.O_RDONLY | fsc.O_DIRECTORY));
}

/**
 * cgroup programs (sock_addr, sock, device, sysctl, skb, sockopt) on a cgroup v2 directory:
 * LINK_CREATE, falling back to PROG_ATTACH with ALLOW_MULTI (detached on close).
 */
export function attachCgroup(
  prog: BpfProgram,
  cgroup: string | number | Fd,
  attachType: AttachType,
  opts: { /** "prog-attach" skips LINK_CREATE (tests, or hosts that must share with PROG_ATTACH users). */ mode?: "auto" | "prog-attach" } = {},
): Link {
  const label = typeof cgroup === "string" ? cgroup : `fd ${cgroup instanceof Fd ? cgroup.raw : cgroup}`;
  const what = `attach program ${prog.name} to cgroup ${label} (${AttachType[attachType] ?? attachType})`;
  let cg: Fd;
  try {
    cg = openCgroup(cgroup);
  } catch (e) {
    throw withContext(e, what);
  }
  try {
    try {
      if (opts.mode === "prog-attach") throw new SyscallError("bpf", "BPF_LINK_CREATE", EINVAL, "link_create skipped");
      const fd = linkCreate(prog.fd.raw, cg.raw, attachType);
      cg.close();
      return new Link(new Fd(fd), "link", `cgroup ${label} link of ${prog.name}`);
    } catch (e) {
      if (!noLinkSupport(e)) throw e;
      const linkErr = e;
      const progFd = prog.fd.dup();
      const attach = (flags: number): void => {
        new Attr().u32(0, cg.raw).u32(4, progFd.raw).u32(8, attachType).u32(12, flags).call(BpfCmd.PROG_ATTACH);
      };
      try {
        attach(AttachFlags.ALLOW_MULTI);
      } catch (e2) {
        try {
          attach(AttachFlags.ALLOW_OVERRIDE);
        } catch {
          progFd.close();
          throw e2 instanceof SyscallError ? e2 : linkErr;
        }
      }
      return new Link(cg, "prog-attach", `cgroup ${label} attachment of ${prog.name}`, [progFd], () => {
        new Attr().u32(0, cg.raw).u32(4, progFd.raw).u32(8, attachType).call(BpfCmd.PROG_DETACH);
      });
    }
  } catch (e) {
    cg.close();
    throw withContext(e, what);
  }
}


export { ProgType };
