// An owned file descriptor. BPF objects live as long as some fd (or pin) refers to them, so every
// map, program and link holds exactly one Fd and closes it once.
import { close, dup } from "./sys.ts";

export class FdClosedError extends Error {
  override name = "FdClosedError";
}

export class Fd {
  #raw: number;

  constructor(raw: number) {
    if (!Number.isInteger(raw) || raw < 0) throw new RangeError(`invalid fd ${raw}`);
    // fd 0 is stdin; a BPF object landing there means stdin was closed. Move it up so that a
    // later "0 means none" in an attr (e.g. target_fd) cannot be confused with it.
    if (raw === 0) {
      const moved = dup(0);
      close(0);
      raw = moved;
    }
    this.#raw = raw;
  }

  /** The descriptor number; throws once closed so stale numbers are never passed to the kernel. */
  get raw(): number {
    if (this.#raw < 0) throw new FdClosedError("use of a closed fd");
    return this.#raw;
  }

  get closed(): boolean {
    return this.#raw < 0;
  }

  /** Closing twice is a no-op. */
  close(): void {
    if (this.#raw < 0) return;
    close(this.#raw);
    this.#raw = -1;
  }

  dup(): Fd {
    return new Fd(dup(this.raw));
  }

  /** Give up ownership: returns the number and leaves this Fd closed without closing the descriptor. */
  release(): number {
    const r = this.raw;
    this.#raw = -1;
    return r;
  }

  toString(): string {
    return this.#raw < 0 ? "fd(closed)" : `fd(${this.#raw})`;
  }
}
