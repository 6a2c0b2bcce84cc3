// Throwaway cgroup v2 directories for kernel tests. The cgroup2 mount is found in
// /proc/mounts (here /sys/fs/cgroup/unified, on most hosts /sys/fs/cgroup), never assumed.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The cgroup2 mount point, or undefined when cgroup v2 is not mounted. */
export function cgroup2Mount(): string | undefined {
  for (const line of readFileSync("/proc/mounts", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f[2] === "cgroup2" && f[1] !== undefined) return f[1];
  }
  return undefined;
}

export class TestCgroup {
  readonly path: string;

  constructor(name: string) {
    const mount = cgroup2Mount();
    if (mount === undefined) throw new Error("create test cgroup: no cgroup2 mount in /proc/mounts");
    this.path = join(mount, `ward-test-${name}-${process.pid}`);
    mkdirSync(this.path);
  }

  /** Moves a process in (writing its pid to cgroup.procs). */
  add(pid: number): void {
    writeFileSync(join(this.path, "cgroup.procs"), `${pid}\n`);
  }

  pids(): number[] {
    return readFileSync(join(this.path, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  }

  /**
   * Moves any remaining process back to the root cgroup and removes the directory.
   * (rmdir fails while a process is inside; kill or finish children first when possible.)
   */
  remove(): void {
    if (!existsSync(this.path)) return;
    const root = cgroup2Mount();
    for (const pid of this.pids()) {
      try {
        if (root !== undefined) writeFileSync(join(root, "cgroup.procs"), `${pid}\n`);
      } catch {
        // the process exited meanwhile
      }
    }
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(this.path);
        return;
      } catch (e) {
        // EBUSY while an exiting process is still accounted to the cgroup.
        if ((e as NodeJS.ErrnoException).code !== "EBUSY") throw e;
        Bun.sleepSync(20);
      }
    }
    rmdirSync(this.path);
  }
}
