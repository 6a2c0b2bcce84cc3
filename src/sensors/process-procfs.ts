// The /proc scan: processes that were running before the sensor attached. Each becomes a
// cache entry and a kernel map entry flagged procFS, with ktime = starttime converted to
// boot-clock nanoseconds (the clock the kernel programs use), as Tetragon does.
import { readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { splitArgv } from "../events/args.ts";
import { ProcessFlag } from "../events/flags.ts";
import type { SeedProcess } from "../events/process-cache.ts";
import { NS_NAMES, type CredsNs } from "../events/process-record.ts";

/** USER_HZ: /proc/<pid>/stat times are in 1/100 s on every Linux ABI (seeded process-map entries carry starttime times this). */
export const NS_PER_TICK = 10_000_000n;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function link(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The cgroup v2 mount point, from /proc/mounts (hybrid hosts have it at /sys/fs/cgroup/unified). */
export function cgroup2Root(procRoot = "/proc"): string | undefined {
  const mounts = read(join(procRoot, "mounts")) ?? "";
  for (const line of mounts.split("\n")) {
    const f = line.split(" ");
    if (f[2] === "cgroup2" && f[1] !== undefined) return f[1];
  }
  return undefined;
}

/** Namespace inode numbers of a process, by NS_NAMES index (0 when unreadable). */
export function readNamespaces(procRoot: string, pid: number | "self"): number[] {
  return NS_NAMES.map((n) => {
    const l = link(join(procRoot, String(pid), "ns", n));
    const m = l ? /\[(\d+)\]$/.exec(l) : null;
    return m ? Number(m[1]) : 0;
  });
}

function statusIds(status: string, key: string): number[] {
  const m = new RegExp(`^${key}:\\s+(.*)$`, "m").exec(status);
  return m ? m[1]!.trim().split(/\s+/).map(Number) : [];
}

function statusHex(status: string, key: string): bigint {
  const m = new RegExp(`^${key}:\\s+([0-9a-fA-F]+)$`, "m").exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export interface ScanOptions {
  procRoot?: string;
}

/** One process from /proc, or undefined when it vanished while being read. */
export function readProc(procRoot: string, pid: number, cgRoot: string | undefined, cgIds: Map<string, bigint>): SeedProcess | undefined {
  const dir = join(procRoot, String(pid));
  const stat = read(join(dir, "stat"));
  const status = read(join(dir, "status"));
  if (stat === undefined || status === undefined) return undefined;
  // Fields after the command name, which may itself contain spaces and parentheses.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ppid = Number(rest[1] ?? 0);
  const starttime = BigInt(rest[19] ?? "0");
  const uid = statusIds(status, "Uid");
  const gid = statusIds(status, "Gid");
  const loginuid = Number(read(join(dir, "loginuid"))?.trim() ?? "4294967295");
  let cgroupId = 0n;
  if (cgRoot !== undefined) {
    const cg = /^0::(.*)$/m.exec(read(join(dir, "cgroup")) ?? "")?.[1];
    if (cg !== undefined) {
      let id = cgIds.get(cg);
      if (id === undefined) {
        try {
          id = statSync(join(cgRoot, cg), { bigint: true }).ino;
        } catch {
          id = 0n;
        }
        cgIds.set(cg, id);
      }
      cgroupId = id;
    }
  }
  const creds: CredsNs = {
    uid: uid[0] ?? 0,
    euid: uid[1] ?? 0,
    suid: uid[2] ?? 0,
    fsuid: uid[3] ?? 0,
    gid: gid[0] ?? 0,
    egid: gid[1] ?? 0,
    sgid: gid[2] ?? 0,
    fsgid: gid[3] ?? 0,
    auid: Number.isFinite(loginuid) ? loginuid : 4294967295,
    capInheritable: statusHex(status, "CapInh"),
    capPermitted: statusHex(status, "CapPrm"),
    capEffective: statusHex(status, "CapEff"),
    cgroupId,
    ns: readNamespaces(procRoot, pid),
  };
  const cwd = link(join(dir, "cwd")) ?? "";
  let flags = ProcessFlag.procFS as number;
  if (cwd === "/") flags |= ProcessFlag.rootcwd;
  if (cwd === "") flags |= ProcessFlag.nocwd;
  return {
    pid,
    ppid,
    ktime: starttime * NS_PER_TICK,
    binary: link(join(dir, "exe")) ?? "",
    argv: splitArgv(read(join(dir, "cmdline")) ?? ""),
    cwd,
    flags,
    creds,
  };
}

/** Every process in /proc (thread groups only), parents before children where possible. */
export function scanProc(opts: ScanOptions = {}): SeedProcess[] {
  const procRoot = opts.procRoot ?? "/proc";
  const cgRoot = cgroup2Root(procRoot);
  const cgIds = new Map<string, bigint>();
  const pids = readdirSync(procRoot)
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
  const out: SeedProcess[] = [];
  for (const pid of pids) {
    const p = readProc(procRoot, pid, cgRoot, cgIds);
    if (p) out.push(p);
  }
  return out;
}
