// bpffs helpers: an object pinned on bpffs outlives the process that made it (loader.md §7).
import { existsSync, mkdirSync, readFileSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { Attr } from "./attr.ts";
import { BPF_FS_MAGIC, BpfCmd } from "./constants.ts";
import { Fd } from "./fd.ts";
import { cString, mount, statfsType } from "./sys.ts";

export class PinError extends Error {
  override name = "PinError";
}

/** True when `path` lies on a bpf filesystem (statfs magic; /proc/mounts if statfs fails). */
export function isBpffs(path: string): boolean {
  try {
    return statfsType(path) === BPF_FS_MAGIC;
  } catch {
    try {
      return readFileSync("/proc/mounts", "utf8")
        .split("\n")
        .some((l) => {
          const f = l.split(" ");
          return f[2] === "bpf" && (path === f[1] || path.startsWith(`${f[1]}/`));
        });
    } catch {
      return false;
    }
  }
}

/** Make sure `path` is on bpffs, mounting bpffs there if it is not. */
export function ensureBpffs(path = "/sys/fs/bpf"): void {
  if (existsSync(path) && isBpffs(path)) return;
  mkdirSync(path, { recursive: true });
  if (isBpffs(path)) return;
  mount("bpf", path, "bpf");
  if (!isBpffs(path)) throw new PinError(`mount bpffs at ${path}: still not a bpf filesystem`);
}

/** OBJ_PIN: pin any BPF fd (map, program, link, BTF) at `path`; creates parent dirs on bpffs. */
export function pinObject(fd: Fd | number, path: string): void {
  const parent = dirname(path);
  if (!existsSync(parent)) mkdirSync(parent, { recursive: true });
  const name = cString(path);
  new Attr().ptr(0, name).u32(8, typeof fd === "number" ? fd : fd.raw).call(BpfCmd.OBJ_PIN);
}

/** OBJ_GET: a new fd for the object pinned at `path`. flags: ObjFlags.RDONLY / WRONLY. */
export function getPinned(path: string, flags = 0): Fd {
  const name = cString(path);
  return new Fd(new Attr().ptr(0, name).u32(12, flags).call(BpfCmd.OBJ_GET));
}

/** Remove a pin; the object lives on while fds refer to it. Missing pins are not an error. */
export function unpin(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}
