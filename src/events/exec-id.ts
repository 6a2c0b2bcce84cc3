// exec_id: Tetragon's cluster-unique process id, base64("<node>:<ktime>:<pid>")
// (reference/tetragon.md §2.3). ktime is the boot-clock nanosecond time of the exec or clone.

// btoa is cheaper than a Buffer round trip but encodes Latin-1, not UTF-8 (Go's bytes); node
// names are almost always ASCII host names, where both agree; anything else goes through UTF-8.
const ascii = /^[\x00-\x7f]*$/;

export function execId(nodeName: string, ktime: bigint, pid: number): string {
  const s = `${nodeName}:${ktime}:${pid}`;
  return ascii.test(nodeName) ? btoa(s) : Buffer.from(s).toString("base64");
}

/** The parent id Tetragon gives a process whose parent pid is 0. */
export function rootParentExecId(nodeName: string): string {
  return execId(nodeName, 1n, 0);
}
