// A child process driven line by line over stdin/stdout, for kernel tests that must load a
// program for a known pid before the child does the work being measured:
//   const c = spawnScript(`echo ready; read go; ...; echo done; read end`);
//   await c.expectLine("ready"); ...load with c.pid...; c.send("go"); await c.expectLine("done");
// dash (/bin/sh on Debian) runs builtins without forking, so the syscalls it makes between
// two lines are exactly the ones the script spells out.
import type { Subprocess } from "bun";

export class Child {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  #lines: string[] = [];
  #partial = "";
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
    this.proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe", cwd: opts.cwd, env: opts.env });
    void this.#pump();
  }

  /** Splits stdout into lines in the background, so a timed-out wait loses nothing. */
  async #pump(): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.proc.stdout) {
        this.#partial += decoder.decode(chunk, { stream: true });
        const parts = this.#partial.split("\n");
        this.#partial = parts.pop() ?? "";
        this.#lines.push(...parts);
        this.#wake?.();
      }
    } finally {
      this.#ended = true;
      this.#wake?.();
    }
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** The next stdout line; fails after timeoutMs, naming what was expected. */
  async nextLine(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.#lines.shift();
      if (line !== undefined) return line;
      if (this.#ended) {
        const err = await new Response(this.proc.stderr).text().catch(() => "");
        throw new Error(`child ${this.pid}: stdout closed (exit ${await this.proc.exited}) before a full line; stderr: ${err}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`child ${this.pid}: no line within ${timeoutMs} ms (have "${this.#partial}")`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
  }

  async expectLine(want: string, timeoutMs = 10_000): Promise<void> {
    const got = await this.nextLine(timeoutMs);
    if (got !== want) throw new Error(`child ${this.pid}: expected "${want}", got "${got}"`);
  }

  send(line: string): void {
    this.proc.stdin.write(`${line}\n`);
    this.proc.stdin.flush();
  }

  /** Closes stdin (a pending `read` fails, so the script ends) and waits for the exit code. */
  async finish(): Promise<number> {
    this.proc.stdin.end();
    return this.proc.exited;
  }

  /** Kills the child if it still runs; safe in finally blocks. */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

/** A /bin/sh child running `script`. */
export function spawnScript(script: string, opts: { cwd?: string } = {}): Child {
  return new Child(["/bin/sh", "-c", script], opts);
}
