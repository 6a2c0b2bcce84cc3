// bpffs helpers: an object pinned on bpffs outlives the process that made it (loader.md §7).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync, type Dirent } from "node:fs";
import { dirname, join } from "node:path";
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

/** Pin file names in a pin directory: one per map, one per program, one per link. */
export const MAP_PIN_PREFIX = "map_";
export const LINK_PIN_PREFIX = "link_";
export const PROG_PIN_PREFIX = "prog_";

/**
 * A pin name for `key` that bpffs accepts: bpffs refuses names with a "." in them, so dots
 * (and "/", which would make a directory) become "@".
 */
export function pinName(prefix: string, key: string): string {
  return `${prefix}${key.replace(/[./]/g, "@")}`;
}

/** Pin every map of a collection (whatever maps it has) as dir/map_<name>; creates dir. */
export function pinMaps(dir: string, maps: Readonly<Record<string, { pin(path: string): void }>>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, m] of Object.entries(maps)) m.pin(join(dir, pinName(MAP_PIN_PREFIX, name)));
}

/**
 * Every pin under `dir` (files on bpffs are pinned objects; directories are walked), as
 * paths relative to dir, sorted. Missing dir: none.
 */
export function listPins(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(join(dir, rel), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    for (const e of entries) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk("");
  return out.sort();
}

/**
 * Unpin everything under dir and remove its directories (dir included). Only for a
 * directory on bpffs: the objects live on while fds refer to them (the caller's), and end
 * when the last goes.
 */
export function removePins(dir: string): void {
  if (!existsSync(dir)) return;
  if (!isBpffs(dir)) throw new PinError(`remove pins under ${dir}: not on a bpf filesystem`);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Deletes `dir` and its subdirectories when they hold nothing: sensors unpin their objects
 * but may leave the folders. rmdir fails on anything non-empty, so a pin that is still there
 * (or anything else) is never removed by this.
 */
export function removeEmptyDirs(dir: string): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeEmptyDirs(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // Not empty, or gone already: either way nothing to do.
  }
}
