// JSON lines to a file with size-based rotation: when the next write would pass maxBytes,
// FILE becomes FILE.1, FILE.1 becomes FILE.2 ... and FILE.<maxBackups> is removed, so at most
// maxBackups old files are kept next to the live one (Tetragon's export file keeps
// --export-file-max-backups the same way, with timestamped names instead of numbers).
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { BufferedFd } from "./buffered-fd.ts";
import { SinkError, type EventSink } from "./sink.ts";

export interface JsonlFileOptions {
  /** Rotate before the file would exceed this many bytes (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files to keep (default 5; 0 keeps none, the file is just truncated). */
  maxBackups?: number;
  /** File mode for new files (default 0o600: events can carry secrets in arguments). */
  mode?: number;
}

export class JsonlFileSink implements EventSink {
  readonly name: string;
  readonly maxBytes: number;
  readonly maxBackups: number;
  private fd: number;
  private size: number;
  private readonly out: BufferedFd;
  private readonly mode: number;
  private closed = false;
  rotations = 0;

  constructor(
    readonly path: string,
    opts: JsonlFileOptions = {},
  ) {
    this.name = `file:${path}`;
    this.maxBytes = Math.max(1024, opts.maxBytes ?? 10 * 1024 * 1024);
    this.maxBackups = Math.max(0, opts.maxBackups ?? 5);
    this.mode = opts.mode ?? 0o600;
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, "a", this.mode);
      this.size = fstatSync(this.fd).size;
    } catch (err) {
      throw new SinkError(`open export file ${path}: ${(err as Error).message}`);
    }
    this.out = new BufferedFd(this.fd);
  }

  write(line: string): void {
    if (this.closed) return;
    const n = Buffer.byteLength(line) + 1;
    if (this.size + this.out.pending + n > this.maxBytes && this.size + this.out.pending > 0) this.rotate();
    this.out.push(line, n - 1);
  }

  async flush(): Promise<void> {
    this.flushSync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flushSync();
    closeSync(this.fd);
    this.closed = true;
  }

  private flushSync(): void {
    const n = this.out.pending;
    this.out.flushSync();
    this.size += n;
  }

  private rotate(): void {
    this.flushSync();
    closeSync(this.fd);
    if (this.maxBackups === 0) {
      unlinkSync(this.path);
    } else {
      const oldest = `${this.path}.${this.maxBackups}`;
      if (existsSync(oldest)) unlinkSync(oldest);
      for (let i = this.maxBackups - 1; i >= 1; i--) {
        const from = `${this.path}.${i}`;
        if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
      }
      renameSync(this.path, `${this.path}.1`);
    }
    this.fd = openSync(this.path, "a", this.mode);
    this.out.setFd(this.fd);
    this.size = 0;
    this.rotations++;
  }
}
