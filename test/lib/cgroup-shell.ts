// A shell driven over stdin, one command line per request, for tests that move a process
// between cgroups: the shell runs each command in whatever cgroup it is in now (children
// start in their parent's cgroup), so moving its pid moves every later command.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { expect } from "bun:test";

/**
 * A shell that runs one command line per request in whatever cgroup it is in now: moving
 * its pid moves every later command (children start in their parent's cgroup).
 */
export class Driver {
  readonly child: ChildProcessWithoutNullStreams;
  #buf = "";
  #waiters: ((s: string) => void)[] = [];

  constructor() {
    this.child = spawn("sh", ["-c", 'while read -r line; do eval "$line" 2>&1; echo "__rc=$?"; done'], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (d: string) => {
      this.#buf += d;
      let i: number;
      while ((i = this.#buf.search(/__rc=\d+\n/)) >= 0) {
        const end = this.#buf.indexOf("\n", i);
        const out = this.#buf.slice(0, end + 1);
        this.#buf = this.#buf.slice(end + 1);
        this.#waiters.shift()?.(out);
      }
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error("driver: no pid (spawn failed)");
    return this.child.pid;
  }

  /** Runs a command line; resolves with its output and exit status (137: killed by SIGKILL). */
  run(line: string): Promise<{ out: string; rc: number }> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`driver: no answer to ${line}`)), 15_000);
      this.#waiters.push((s) => {
        clearTimeout(t);
        const m = /__rc=(\d+)\n$/.exec(s);
        resolve({ out: s.slice(0, m?.index ?? s.length), rc: Number(m?.[1] ?? -1) });
      });
      this.child.stdin.write(`${line}\n`);
    });
  }

  close(): void {
    this.child.stdin.end();
    this.child.kill("SIGKILL");
  }
}

/** Killed by SIGKILL (the shell reports 128 + 9) before anything was read. */
export function expectKilled(r: { out: string; rc: number }): void {
  expect(r.rc).toBe(137);
  expect(r.out).not.toContain("pizza");
}

export async function withDriver(fn: (d: Driver) => Promise<void>): Promise<void> {
  const d = new Driver();
  try {
    await fn(d);
  } finally {
    d.close();
    await new Promise((r) => setTimeout(r, 20));
  }
}

