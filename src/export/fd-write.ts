// Writes a whole buffer to a file descriptor without blocking the event loop: node:fs's
// callback write runs on the thread pool, so a stdout pipe whose reader stopped reading
// stalls one pool thread and this sink's queue, never the agent. EAGAIN (a non-blocking
// pipe that is full) waits a little and tries again; the caller's retry budget bounds it.
import { write, writev } from "node:fs";

function writeOnce(fd: number, buf: Uint8Array, off: number): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, buf, off, buf.length - off, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

export async function writeAll(fd: number, buf: Uint8Array): Promise<void> {
  let off = 0;
  let waits = 0;
  while (off < buf.length) {
    try {
      off += await writeOnce(fd, buf, off);
      waits = 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN" || ++waits > 200) throw err;
      await Bun.sleep(Math.min(50, waits * 2));
    }
  }
}


/** Linux's IOV_MAX: the most buffers one writev(2) takes. */
const IOV_MAX = 1024;

function writevOnce(fd: number, bufs: Uint8Array[]): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, bufs, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/**
 * Writes the buffers one after another, as writeAll would their concatenation, with writev(2):
 * lines that are views of the sink's line store go to the kernel as they are, never copied
 * into one buffer first. A short write resumes inside the buffer it stopped in.
 */
export async function writevAll(fd: number, bufs: readonly Uint8Array[]): Promise<void> {
  let i = 0;
  let head: Uint8Array | undefined = bufs[0];
  let waits = 0;
  while (head !== undefined) {
    const batch: Uint8Array[] = [head];
    for (let j = i + 1; j < bufs.length && batch.length < IOV_MAX; j++) batch.push(bufs[j]!);
    let n: number;
    try {
      n = await writevOnce(fd, batch);
      waits = 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN" || ++waits > 200) throw err;
      await Bun.sleep(Math.min(50, waits * 2));
      continue;
    }
    // Skip what was written: whole buffers, then part of the one it stopped in.
    while (head !== undefined && n >= head.byteLength) {
      n -= head.byteLength;
      head = bufs[++i];
    }
    if (head !== undefined && n > 0) head = head.subarray(n);
  }
}
