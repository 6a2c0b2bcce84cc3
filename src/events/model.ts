// The event model: what ward knows about a process and the lifecycle events it reports.
// Encoders (src/events/tetragon.ts, src/export/compact.ts) turn these into output forms.
import type { CredsNs } from "./process-record.ts";

/** One process image: a pid between an exec (or clone, or the /proc scan) and the next. */
export interface ProcessInfo {
  readonly execId: string;
  readonly pid: number;
  /** Thread that triggered the event (== pid for exec/exit). */
  readonly tid: number;
  /** Boot-clock ns of the exec/clone (identity, with pid); /proc starttime for procFS. */
  readonly ktime: bigint;
  readonly binary: string;
  /** argv[1..] as Tetragon prints them (see args.ts). */
  readonly arguments: string;
  readonly cwd: string;
  /** enum ward_proc_flag bits (flags.ts). */
  readonly flags: number;
  readonly creds: CredsNs;
  readonly parentExecId: string;
  readonly ppid: number;
  /** Inode and link count of the executed file (exec only; nlink 0 = deleted or memfd). */
  readonly file?: { ino: bigint; nlink: number };
}

export interface ProcessExecEvent {
  readonly type: "process_exec";
  /** Boot-clock ns of the event. */
  readonly time: bigint;
  readonly process: ProcessInfo;
  readonly parent: ProcessInfo | undefined;
}

export interface ProcessExitEvent {
  readonly type: "process_exit";
  readonly time: bigint;
  readonly process: ProcessInfo;
  readonly parent: ProcessInfo | undefined;
  readonly signal: string | undefined;
  readonly status: number;
}

export type ProcessEvent = ProcessExecEvent | ProcessExitEvent;
