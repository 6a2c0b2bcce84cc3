// Linux signal names (x86-64/arm64 numbering), for process_exit.signal.

const names: readonly string[] = [
  "", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
  "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",
  "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF",
  "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
];

/** "SIGKILL" for 9; real-time signals as "SIGRTMIN+n"; undefined for 0. */
export function signalName(sig: number): string | undefined {
  if (sig <= 0) return undefined;
  const n = names[sig];
  if (n !== undefined) return n;
  if (sig >= 32 && sig <= 64) return sig === 34 ? "SIGRTMIN" : `SIGRTMIN+${sig - 34}`;
  return String(sig);
}

/**
 * Splits a wait status (task->exit_code) the way wait(2) does: the terminating signal in the
 * low 7 bits (bit 7 says a core was dumped), the exit status in bits 8-15.
 */
export function decodeExitCode(code: number): { signal: string | undefined; status: number } {
  return { signal: signalName(code & 0x7f), status: (code >>> 8) & 0xff };
}
