// Every transport fed byte lines as the process pipeline makes them (test/lib/line-arena.ts),
// mixed with strings: the file holds exactly the lines' UTF-8 bytes and rotates by exact byte
// length, stdout writes them (and compacts them from the decoded text), syslog frames carry
// the exact octet count of a non-ASCII MSG over TCP and one datagram per message over UDP,
// Loki and ClickHouse get the decoded lines in their bodies.
import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writevAll } from "../../src/export/fd-write.ts";
import { JsonlFileSink } from "../../src/export/jsonl-file.ts";
import { joinLines, lineRuns } from "../../src/export/lines.ts";
import { lineByteLength, type Line } from "../../src/export/sink.ts";
import { ClickHouseSink } from "../../src/export/sinks/clickhouse.ts";
import { LokiSink } from "../../src/export/sinks/loki.ts";
import { octetFrames, SyslogFormatter, SyslogSink, eventTypeOfLine, syslogTimestamp } from "../../src/export/sinks/syslog.ts";
import { maxHeaderBytes, writeByteMessage } from "../../src/export/sinks/syslog-bytes.ts";
import { StdoutSink } from "../../src/export/stdout.ts";
import { LineArena } from "../lib/line-arena.ts";
import { freePort, LokiServer } from "../lib/servers.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "ward-bytes-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A process_exec line with `arg` in its arguments (non-ASCII welcome) and its own time. */
function exec(i: number, arg = `grüße ${i}`): string {
  return JSON.stringify({
    process_exec: { process: { pid: 100 + i, binary: "/usr/bin/echo", arguments: arg, pod: { namespace: "ns-ü", name: "web" } } },
    node_name: "n1",
    time: `2026-12-03T15:53:00.${String(i).padStart(9, "0")}Z`,
  });
}

/** Alternates byte lines and strings: every third line a string, the rest arena views. */
function mixed(texts: readonly string[]): Line[] {
  const arena = new LineArena();
  return texts.map((t, i) => (i % 3 === 1 ? t : arena.add(t)));
}

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

describe("file sink with byte lines", () => {
  test("the file holds exactly the lines' UTF-8 bytes, each followed by a newline", async () => {
    const path = join(tmp(), "e.jsonl");
    const texts = Array.from({ length: 50 }, (_, i) => exec(i));
    const s = new JsonlFileSink(path);
    for (const l of mixed(texts)) s.write(l);
    await s.close();
    expect(readFileSync(path).equals(Buffer.from(texts.map((t) => `${t}\n`).join("")))).toBe(true);
    expect(s.stats()).toMatchObject({ written: 50, sent: 50 });
  });

  test("rotation cuts by exact byte length: no file passes maxBytes, and none could have held its successor's first line", async () => {
    const dir = tmp();
    const path = join(dir, "events.log");
    // 2 bytes per ü: a cut by string length would overfill the files.
    const texts = Array.from({ length: 60 }, (_, i) => exec(i, `${"ü".repeat(40)} ${i}`));
    const s = new JsonlFileSink(path, { maxBytes: 1024, maxBackups: 100 });
    for (const l of mixed(texts)) s.write(l);
    await s.close();
    const files = readdirSync(dir)
      .map((f) => ({ f, n: f === "events.log" ? 0 : Number(f.slice("events.log.".length)) }))
      .sort((a, b) => b.n - a.n)
      .map(({ f }) => readFileSync(join(dir, f)));
    expect(files.length).toBeGreaterThan(3);
    const got: string[] = [];
    files.forEach((b, k) => {
      expect(b.length).toBeLessThanOrEqual(1024);
      const ls = b.toString("utf8").split("\n").slice(0, -1);
      got.push(...ls);
      const next = files[k + 1];
      if (next) expect(b.length + next.indexOf(0x0a) + 1).toBeGreaterThan(1024);
    });
    expect(got).toEqual(texts);
  });
});

describe("writevAll", () => {
  test("a non-blocking pipe that fills up: short writes and EAGAIN resume where they stopped, the reader gets exactly the bytes", async () => {
    const dir = tmp();
    const fifo = join(dir, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const wfd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    // 3,000 lines of ~400 bytes in arena runs, some strings between: ~1.2 MB, far past the pipe's 64 KiB.
    const texts = Array.from({ length: 3000 }, (_, i) => exec(i, `${"ü".repeat(150)} ${i}`));
    const runs = lineRuns(mixed(texts));
    // More pieces than one writev takes (IOV_MAX 1024): the calls are split.
    expect(runs.length).toBeGreaterThan(1024);
    const got: Buffer[] = [];
    let done = false;
    const chunk = Buffer.alloc(7000); // an odd size, so reads end inside buffers
    const drain = (async () => {
      while (!done) {
        try {
          const n = readSync(rfd, chunk, 0, chunk.length, null);
          if (n > 0) got.push(Buffer.from(chunk.subarray(0, n)));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
          await Bun.sleep(1);
        }
      }
    })();
    await writevAll(wfd, runs);
    closeSync(wfd);
    // What is still in the pipe.
    for (;;) {
      try {
        const n = readSync(rfd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        got.push(Buffer.from(chunk.subarray(0, n)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        await Bun.sleep(1);
      }
    }
    done = true;
    await drain;
    closeSync(rfd);
    expect(Buffer.concat(got).equals(Buffer.from(joinLines(mixed(texts))))).toBe(true);
    expect(Buffer.concat(got).toString("utf8")).toBe(texts.map((t) => `${t}\n`).join(""));
  });
});

describe("stdout sink with byte lines", () => {
  test("writes the bytes as they are; the compact form decodes them first", async () => {
    const dir = tmp();
    const raw = join(dir, "raw");
    const fd = openSync(raw, "w");
    const texts = [exec(1), exec(2), exec(3), exec(4)];
    const s = new StdoutSink(fd);
    for (const l of mixed(texts)) s.write(l);
    await s.close();
    closeSync(fd);
    expect(readFileSync(raw, "utf8")).toBe(texts.map((t) => `${t}\n`).join(""));

    const compact = join(dir, "compact");
    const fd2 = openSync(compact, "w");
    // A rewriting map (the compact form's place) gets the decoded text.
    const s2 = new StdoutSink(fd2, { map: (l) => `${JSON.parse(l).process_exec.process.arguments}` });
    for (const l of mixed(texts)) s2.write(l);
    await s2.close();
    closeSync(fd2);
    expect(readFileSync(compact, "utf8")).toBe("grüße 1\ngrüße 2\ngrüße 3\ngrüße 4\n");
  });
});

describe("syslog with byte lines", () => {
  test("header fields come from the bytes without decoding them; messages are header + the line's bytes", () => {
    const t = exec(7);
    const b = new LineArena().add(t);
    expect(syslogTimestamp(b)).toBe(syslogTimestamp(t));
    expect(syslogTimestamp(b)).toBe("2026-12-03T15:53:00.000000Z");
    expect(eventTypeOfLine(b)).toBe("process_exec");
    expect(eventTypeOfLine(new TextEncoder().encode('{"ü":1}'))).toBe("-");
    expect(syslogTimestamp(new TextEncoder().encode('{"x":{}}'), () => new Date(0))).toBe("1970-01-01T00:00:00.000Z");
    const f = new SyslogFormatter({ hostname: "n1" });
    expect(f.message(b).toString("utf8")).toBe(f.format(t));
    expect(f.message(t).equals(f.message(b))).toBe(true);
    // Octet counting: LEN is the byte count of MSG, for strings and bytes alike.
    const frames = octetFrames(f, [b, t]);
    const msg = Buffer.from(f.format(t));
    expect(frames.equals(Buffer.concat([Buffer.from(`${msg.length} `), msg, Buffer.from(`${msg.length} `), msg]))).toBe(true);
    expect(msg.length).toBe(Buffer.byteLength(f.header(t)) + lineByteLength(t));
  });

  test("the byte framer writes the header the string formatter writes, for every shape of time and type it accepts or refuses", () => {
    const now = () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    const f = new SyslogFormatter({ hostname: "h1", facility: "auth", severity: "err" });
    const body = '{"process_exec":{"process":{"arguments":"ü \\"time\\":\\"x"}},"node_name":"n"';
    const cases = [
      `${body},"time":"2026-12-03T15:53:00.123456789Z"}`,
      `${body},"time":"2026-12-03T15:53:00Z"}`,
      `${body},"time":"2026-12-03T15:53:00.1+02:00"}`,
      `${body},"time":"2026-12-03T15:53:00.1234567-11:30"}`,
      `${body},"time":"2026-12-03T15:53:00.1234567891Z"}`, // 10 fraction digits: refused
      `${body},"time":"2026-12-03T15:53:00.Z"}`,
      `${body},"time":"2026-12-03 15:53:00Z"}`,
      `${body},"time":"2026-12-03T15:53:00+0200"}`,
      `${body},"time":"2026-12-03T15:53:00Zjunk"}`,
      `${body},"time":"2026-12-03T15:53`,
      `${body}}`,
      '{"time":"2026-12-03T15:53:00Z","x":{}}',
      '{"ProcessExec":{},"time":"2026-12-03T15:53:00Z"}',
      `{"${"a".repeat(32)}":{}}`,
      `{"${"a".repeat(33)}":{}}`,
      '{"process_exit"}',
      "not json",
      "",
    ];
    const out = new Uint8Array(maxHeaderBytes(f.prefix.length, f.suffix.length) + 400);
    for (const c of cases) {
      const want = `${f.prefix}${syslogTimestamp(c, now)}${f.suffix}${eventTypeOfLine(c)} - ${c}`;
      const b = new TextEncoder().encode(c);
      const n = writeByteMessage(out, 0, b, Buffer.from(f.prefix), Buffer.from(f.suffix), false, now);
      expect(Buffer.from(out.subarray(0, n)).toString("utf8")).toBe(want);
      const framed = writeByteMessage(out, 0, b, Buffer.from(f.prefix), Buffer.from(f.suffix), true, now);
      expect(Buffer.from(out.subarray(0, framed)).toString("utf8")).toBe(`${Buffer.byteLength(want)} ${want}`);
    }
  });

  test("TCP: a receiver parsing octet-counted frames on bytes gets every non-ASCII message whole, in order", async () => {
    const got: Buffer[] = [];
    let pending = Buffer.alloc(0);
    const srv = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(_sock, chunk) {
          pending = Buffer.concat([pending, chunk]);
          for (;;) {
            const sp = pending.indexOf(0x20);
            if (sp < 0) break;
            const len = Number(pending.subarray(0, sp).toString("latin1"));
            if (!Number.isInteger(len)) throw new Error(`bad frame length ${pending.subarray(0, sp).toString("latin1")}`);
            if (pending.length < sp + 1 + len) break;
            got.push(Buffer.from(pending.subarray(sp + 1, sp + 1 + len)));
            pending = pending.subarray(sp + 1 + len);
          }
        },
      },
    });
    try {
      const texts = Array.from({ length: 30 }, (_, i) => exec(i, `ü€😀 ${i}`));
      const s = new SyslogSink({ proto: "tcp", host: "127.0.0.1", port: srv.port, hostname: "n1", lingerMs: 1, maxBatch: 7 });
      for (const l of mixed(texts)) s.write(l);
      await s.close();
      await until("30 frames", () => got.length === 30);
      const f = new SyslogFormatter({ hostname: "n1" });
      expect(got.map((m) => m.toString("utf8"))).toEqual(texts.map((t) => f.format(t)));
      expect(pending.length).toBe(0);
      expect(s.stats()).toMatchObject({ written: 30, sent: 30 });
    } finally {
      srv.stop(true);
    }
  });

  test("UDP: one datagram per message, the line's bytes after the header", async () => {
    const got: Buffer[] = [];
    const recv = await Bun.udpSocket({
      hostname: "127.0.0.1",
      socket: {
        data(_s, buf) {
          got.push(Buffer.from(buf));
        },
      },
    });
    try {
      const texts = Array.from({ length: 10 }, (_, i) => exec(i));
      const s = new SyslogSink({ proto: "udp", host: "127.0.0.1", port: recv.port, hostname: "n1", lingerMs: 1 });
      for (const l of mixed(texts)) s.write(l);
      await s.close();
      await until("10 datagrams", () => got.length === 10);
      const f = new SyslogFormatter({ hostname: "n1" });
      expect(got.map((m) => m.toString("utf8")).sort()).toEqual(texts.map((t) => f.format(t)).sort());
    } finally {
      recv.close();
    }
  });
});

describe("HTTP sinks with byte lines", () => {
  test("Loki: entries are the decoded lines, labels parsed from them", async () => {
    const srv = new LokiServer(await freePort());
    srv.start();
    try {
      const texts = Array.from({ length: 12 }, (_, i) => exec(i));
      const s = new LokiSink({ url: srv.url, lingerMs: 1 });
      for (const l of mixed(texts)) s.write(l);
      await s.close();
      expect(s.stats()).toMatchObject({ written: 12, sent: 12 });
      const streams = [...srv.streams.values()];
      expect(streams).toHaveLength(1);
      expect(streams[0]!.labels).toEqual({ node: "n1", type: "process_exec", namespace: "ns-ü" });
      expect(streams[0]!.entries.map((e) => e.line)).toEqual(texts);
    } finally {
      await srv.stop();
    }
  });

  test("ClickHouse: one JSONEachRow row per line, columns from the decoded event, `event` the exact line", async () => {
    const bodies: string[] = [];
    const srv = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const q = new URL(req.url).searchParams.get("query") ?? "";
        const body = await req.text();
        if (q.startsWith("INSERT")) bodies.push(body);
        return new Response("");
      },
    });
    try {
      const texts = Array.from({ length: 9 }, (_, i) => exec(i));
      const s = new ClickHouseSink({ url: `http://127.0.0.1:${srv.port}`, lingerMs: 1 });
      for (const l of mixed(texts)) s.write(l);
      await s.close();
      const rows = bodies.join("").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { event: string; arguments: string; namespace: string; pid: number });
      expect(rows.map((r) => r.event)).toEqual(texts);
      expect(rows[3]).toMatchObject({ arguments: "grüße 3", namespace: "ns-ü", pid: 103 });
    } finally {
      srv.stop(true);
    }
  });
});
