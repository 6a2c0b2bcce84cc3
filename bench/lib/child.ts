// A long-running helper process a bench starts and stops (the agent, bpftrace): its output
// is collected for error messages, and stop() waits until it has exited, so whatever it
// attached is gone before the next measurement.
import { spawn, type ChildProcess } from "node:child_process";

export class ChildError extends Error {
  override name = "ChildError";
}

export class BenchChild {
  private out = "";
  private exitInfo: string | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    readonly label: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (d: Buffer) => {
      // Only the tail matters for a diagnosis; keep memory bounded on chatty children.
      this.out = (this.out + d.toString("utf8")).slice(-8192);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, sig) => {
        this.exitInfo = sig !== null ? `signal ${sig}` : `exit ${code}`;
        resolve();
      }),
    );
  }

  static start(label: string, cmd: string, args: string[], env?: Record<string, string>): BenchChild {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: env ? { ...process.env, ...env } : process.env });
    return new BenchChild(label, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get output(): string {
    return this.out;
  }

  /** undefined while it runs, else how it ended */
  get exit(): string | undefined {
    return this.exitInfo;
  }

  /** Throws with the child's output when it has already exited. */
  assertRunning(): void {
    if (this.exitInfo !== undefined) throw new ChildError(`${this.label} exited (${this.exitInfo}):\n${this.out}`);
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exitInfo !== undefined) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
