// Process flags: the bits bpf/include/process.h (enum ward_proc_flag) sets, and the words
// Tetragon prints for them in `process.flags` (reference/tetragon.md §2.4). The low bits are
// Tetragon's own values; a unit test checks this table against the enum in the object's BTF.

export const ProcessFlag = {
  execve: 0x1,
  procFS: 0x4,
  truncArgs: 0x10,
  miss: 0x40,
  errorFilename: 0x100,
  errorArgs: 0x200,
  nocwd: 0x800,
  rootcwd: 0x1000,
  errorCWD: 0x2000,
  clone: 0x4000,
  truncFilename: 0x10000000,
  truncCwd: 0x20000000,
} as const;

export type ProcessFlagName = keyof typeof ProcessFlag;

/** The C enumerator for each flag word (WARD_F_*), for the BTF cross-check. */
export const flagEnumerators: Record<ProcessFlagName, string> = {
  execve: "WARD_F_EXECVE",
  procFS: "WARD_F_PROCFS",
  truncArgs: "WARD_F_TRUNC_ARGS",
  miss: "WARD_F_MISS",
  errorFilename: "WARD_F_ERROR_FILENAME",
  errorArgs: "WARD_F_ERROR_ARGS",
  nocwd: "WARD_F_NOCWD",
  rootcwd: "WARD_F_ROOTCWD",
  errorCWD: "WARD_F_ERROR_CWD",
  clone: "WARD_F_CLONE",
  truncFilename: "WARD_F_TRUNC_FILENAME",
  truncCwd: "WARD_F_TRUNC_CWD",
};

const ordered = (Object.entries(ProcessFlag) as [ProcessFlagName, number][]).sort((a, b) => a[1] - b[1]);

// A host sees a handful of distinct flag combinations; each is spelled out once.
const spelled = new Map<number, string>();

/** "execve rootcwd clone": the set words in bit order, as Tetragon prints them. */
export function flagsString(flags: number): string {
  let s = spelled.get(flags);
  if (s === undefined) {
    const words: string[] = [];
    for (const [name, bit] of ordered) if ((flags & bit) >>> 0 === bit) words.push(name);
    s = words.join(" ");
    if (spelled.size < 4096) spelled.set(flags, s);
  }
  return s;
}
