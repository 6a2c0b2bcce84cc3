// Writes a whole buffer to a file descriptor without blocking the event loop: node:fs's
// callback write runs on the thread pool, so a stdout pipe whose reader stopped reading
// stalls one pool thread and this sink's queue, never the agent. EAGAIN (a non-blocking
// pipe that is full) waits a little and tries again; the caller's retry budget bounds it.
import { write } from "node:fs";

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

