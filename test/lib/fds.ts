// What this process holds open, for leak checks that do not depend on what earlier tests (or
// their finalizers) opened or close meanwhile. A bare count of /proc/self/fd does: an earlier
// test's descriptor that is closed during the checked span hides a leak of the same size, or
// makes a clean span look like it closed something.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** fdinfo lines that name the kernel object behind a BPF descriptor. */
const OBJECT_ID = /^(map_id|prog_id|link_id|btf_id):\s*(\d+)$/gm;

/**
 * One string per open descriptor: its number, what it points at and, for BPF objects, the
 * object's id. A descriptor number reused for a new object after the old one was closed
 * gives a new string (another id, or another target), so it shows up in leakedSince().
 */
export function openDescriptors(): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
      info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    } catch {
      continue; // closed meanwhile (or the fd readdir itself used)
    }
    const ids = [...info.matchAll(OBJECT_ID)].map((m) => `${m[1]}=${m[2]}`);
    const ino = /^ino:\s*(\d+)$/m.exec(info)?.[1];
    out.add([fd, target, ino === undefined ? "" : `ino=${ino}`, ...ids].join(" "));
  }
  return out;
}

/** Descriptors open now that were not in `before` (the /proc reads' own fds excluded). */
export function leakedSince(before: ReadonlySet<string>): string[] {
  const dirFd = /^\d+ \/proc\/\d+\/fd /;
  return [...openDescriptors()].filter((d) => !before.has(d) && !dirFd.test(d) && !d.includes("/fdinfo/"));
}
