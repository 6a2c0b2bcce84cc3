// exec_id: Tetragon's cluster-unique process id, base64("<node>:<ktime>:<pid>")
// (reference/tetragon.md §2.3). ktime is the boot-clock nanosecond time of the exec or clone.

export function execId(nodeName: string, ktime: bigint, pid: number): string {
  return Buffer.from(`${nodeName}:${ktime}:${pid}`).toString("base64");
}

/** The parent id Tetragon gives a process whose parent pid is 0. */
export function rootParentExecId(nodeName: string): string {
  return execId(nodeName, 1n, 0);
}
