// JSON lines to a file with size-based rotation: when the next line would pass maxBytes,
// FILE becomes FILE.1, FILE.1 becomes FILE.2 ... and FILE.<maxBackups> is removed, so at most
// maxBackups old files are kept next to the live one (Tetragon's export file keeps
// --export-file-max-backups the same way, with timestamped names instead of numbers).
// A QueuedSink like every sink: writes are batched and go out on the thread pool, so a slow
// disk fills this sink's bounded queue instead of stalling the agent.
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { writeAll, writevAll } from "./fd-write.ts";
import { joinLines, lineByteLength, lineRuns } from "./lines.ts";
import { QueuedSink, type QueueOptions } from "./queued.ts";
import { SendError, SinkError, type Batch, type Transport } from "./sink.ts";

export interface JsonlFileOptions extends QueueOptions {
  name?: string;
  /** Rotate before the file would exceed this many bytes (default 10 MiB). */
  maxBytes?: number;
  /** Rotated files to keep (default 5; 0 keeps none, the file is just truncated). */
  maxBackups?: number;
  /** File mode for new files (default 0o600: events can carry secrets in arguments). */
  mode?: number;
}

class FileTransport implements Transport {
  readonly kind = "file";
  fd: number;
  size: number;
  rotations = 0;

  constructor(
    readonly path: string,
    readonly maxBytes: number,
    readonly maxBackups: number,
    private readonly mode: number,
  ) {
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, "a", this.mode);
      this.size = fstatSync(this.fd).size;
    } catch (err) {
      throw new SinkError(`open export file ${path}: ${(err as Error).message}`);
    }
  }

  async send(batch: Batch): Promise<void> {
    try {
      // The batch as runs of the sink's line store (writev: no copy) when it fits the file.
      const runs = lineRuns(batch);
      let total = 0;
      for (const r of runs) total += r.byteLength;
      if (this.size + total <= this.maxBytes || batch.length === 0) {
        if (total === 0) return;
        await writevAll(this.fd, runs);
        this.size += total;
        return;
      }
      // Cut where the file would pass maxBytes, by each line's exact UTF-8 length; the
      // chunks are pieces of one joined buffer (line i starts where the lengths before it
      // end) and a rotation happens between them. Only a batch that crosses the limit does this.
      const buf = joinLines(batch);
      let start = 0;
      let off = 0;
      for (const l of batch) {
        const n = lineByteLength(l) + 1;
        if (this.size + (off - start) + n > this.maxBytes && this.size + (off - start) > 0) {
          await this.#write(buf.subarray(start, off));
          this.#rotate();
          start = off;
        }
        off += n;
      }
      await this.#write(buf.subarray(start, off));
    } catch (err) {
      // Lines before the failing chunk are in the file already; a retry writes them again
      // (at-least-once), which a reader of JSON lines tolerates better than a hole.
      throw new SendError(`write ${this.path}: ${(err as Error).message}`, true, { cause: err });
    }
  }

  async #write(buf: Uint8Array): Promise<void> {
    if (buf.length === 0) return;
    await writeAll(this.fd, buf);
    this.size += buf.length;
  }

  #rotate(): void {
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
    this.size = 0;
    this.rotations++;
  }

  async close(): Promise<void> {
    closeSync(this.fd);
  }
}

export class JsonlFileSink extends QueuedSink {
  readonly maxBytes: number;
  readonly maxBackups: number;
  readonly #file: FileTransport;

  constructor(
    readonly path: string,
    opts: JsonlFileOptions = {},
  ) {
    const file = new FileTransport(path, Math.max(1024, opts.maxBytes ?? 10 * 1024 * 1024), Math.max(0, opts.maxBackups ?? 5), opts.mode ?? 0o600);
    super(opts.name ?? "file", file, { lingerMs: 50, ...opts });
    this.#file = file;
    this.maxBytes = file.maxBytes;
    this.maxBackups = file.maxBackups;
  }

  get rotations(): number {
    return this.#file.rotations;
  }
}
