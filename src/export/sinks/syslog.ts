// Syslog sink: each event line becomes one RFC 5424 message
//
//   <PRI>1 TIMESTAMP HOSTNAME ward PROCID MSGID - {"process_exec":{...},"node_name":...}
//
// PRI = facility * 8 + severity (default local0.info = 134), TIMESTAMP the event's own `time`
// cut to the 6 fraction digits RFC 5424 allows, HOSTNAME the node name, PROCID the agent's
// pid, MSGID the event type (process_exec, process_kprobe ...), no structured data, and the
// JSON line as MSG, which is what Splunk and Elastic parse.
//
// Transports: TCP and a unix stream socket frame messages by octet counting (RFC 6587 §3.4.1,
// "LEN SP MSG"), so a newline inside an event can never split it; UDP sends one datagram per
// message (RFC 5426). A batch is "sent" once the kernel took all its bytes: plain syslog has
// no acknowledgement, so what a receiver had not read yet when it died is lost without the
// sender knowing (RELP would close that gap; rsyslog, Splunk and Elastic all read this framing).
// Over UDP nothing is ever known about delivery, and a message is cut at 65,000 bytes.
import type { Socket } from "bun";
import { QueuedSink, type QueueOptions } from "../queued.ts";
import { asBuffer, lineText } from "../lines.ts";
import { SendError, type Batch, type Line, type Transport } from "../sink.ts";
import { maxHeaderBytes, writeByteMessage } from "./syslog-bytes.ts";

export type SyslogProto = "tcp" | "udp" | "unix";

export const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};
export const SEVERITIES: Record<string, number> = { emerg: 0, alert: 1, crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7 };

export interface SyslogOptions extends QueueOptions {
  name?: string;
  proto: SyslogProto;
  /** host and port for tcp/udp. */
  host?: string;
  port?: number;
  /** Socket path for unix. */
  path?: string;
  facility?: string;
  severity?: string;
  /** HOSTNAME field (the node name). */
  hostname: string;
  appName?: string;
  /** Connect and per-batch write timeout, ms (default 5 s). */
  timeoutMs?: number;
}

const UDP_MAX = 65_000;

/** RFC 5424 fields other than the event: printable US-ASCII without spaces, bounded length. */
function headerField(v: string, max: number): string {
  const s = v.replace(/[^\x21-\x7e]/g, "_").slice(0, max);
  return s === "" ? "-" : s;
}

const TIME_KEY = '"time":"';
const TIME_KEY_BYTES = Buffer.from(TIME_KEY);
/** The longest `time` value looked at: 35 characters with 9 fraction digits and an offset. */
const TIME_MAX = 40;
const TIME_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

/**
 * The event's `time` ("2026-12-03T15:53:00.123456789Z") in RFC 5424's form (≤ 6 fraction
 * digits). On bytes the search and the decoding stay within the few ASCII bytes of the key
 * and its value: the line itself is never decoded (UTF-8 never puts an ASCII byte inside a
 * multi-byte character, so the byte search finds what the string search would).
 */
export function syslogTimestamp(line: Line, now: () => Date = () => new Date()): string {
  let t: string | undefined;
  if (typeof line === "string") {
    const i = line.lastIndexOf(TIME_KEY);
    if (i >= 0) t = line.slice(i + 8, line.indexOf('"', i + 8));
  } else {
    const b = asBuffer(line);
    const i = b.lastIndexOf(TIME_KEY_BYTES);
    if (i >= 0) {
      const end = b.indexOf(0x22, i + 8);
      if (end >= 0 && end - (i + 8) <= TIME_MAX) t = b.toString("latin1", i + 8, end);
    }
  }
  if (t !== undefined) {
    const m = TIME_RE.exec(t);
    if (m) return `${m[1]}${m[2] ? `.${m[2].slice(0, 6)}` : ""}${m[3]}`;
  }
  return now().toISOString();
}

/** The event type: the first key of a Tetragon event line, as the encoder writes it. */
export function eventTypeOfLine(line: Line): string {
  // `{"` + at most 32 name bytes + `":`: the first 36 bytes decide. Latin-1 maps a byte of a
  // multi-byte character to a non-[a-z_] character, so it fails the pattern as UTF-8 would.
  const head = typeof line === "string" ? line : asBuffer(line).toString("latin1", 0, Math.min(36, line.byteLength));
  const m = /^\{"([a-z_]{1,32})":/.exec(head);
  return m ? m[1]! : "-";
}

export class SyslogFormatter {
  readonly prefix: string;
  readonly suffix: string;
  readonly #prefixBytes: Uint8Array;
  readonly #suffixBytes: Uint8Array;
  /** Room one byte line's header (and LEN) can take: see maxHeaderBytes. */
  readonly maxHeader: number;
  constructor(opts: Pick<SyslogOptions, "facility" | "severity" | "hostname" | "appName">) {
    const pri = (FACILITIES[opts.facility ?? "local0"] ?? 16) * 8 + (SEVERITIES[opts.severity ?? "info"] ?? 6);
    this.prefix = `<${pri}>1 `;
    this.suffix = ` ${headerField(opts.hostname, 255)} ${headerField(opts.appName ?? "ward", 48)} ${process.pid} `;
    this.#prefixBytes = Buffer.from(this.prefix, "latin1");
    this.#suffixBytes = Buffer.from(this.suffix, "latin1");
    this.maxHeader = maxHeaderBytes(this.prefix.length, this.suffix.length);
  }
  /** Writes one byte line's message (`LEN SP` first when framed) into out at off; the new offset. */
  writeBytes(out: Uint8Array, off: number, line: Uint8Array, framed: boolean): number {
    return writeByteMessage(out, off, line, this.#prefixBytes, this.#suffixBytes, framed);
  }
  /** Everything before MSG: printable ASCII only (headerField, the timestamp's pattern), so its length is its byte count. */
  header(line: Line): string {
    return `${this.prefix}${syslogTimestamp(line)}${this.suffix}${eventTypeOfLine(line)} - `;
  }
  format(line: Line): string {
    return `${this.header(line)}${lineText(line)}`;
  }
  /** One message as bytes: the header, then the line's bytes as they are. */
  message(line: Line): Buffer {
    if (typeof line === "string") return Buffer.from(this.header(line) + line);
    const out = Buffer.allocUnsafe(this.maxHeader + line.byteLength);
    return out.subarray(0, this.writeBytes(out, 0, line, false));
  }
}

/**
 * A batch as octet-counted frames (RFC 6587 §3.4.1), `LEN SP MSG` each, in one buffer: LEN is
 * the exact byte count of MSG (header + line). Byte lines are framed from their bytes (the
 * header fields copied out of them, syslog-bytes.ts) and copied once, into the result.
 */
export function octetFrames(fmt: SyslogFormatter, batch: Batch): Buffer {
  // Strings are measured and headed first; a byte line needs at most maxHeader besides itself.
  const heads: Array<string | undefined> = new Array<string | undefined>(batch.length);
  let room = 0;
  for (let i = 0; i < batch.length; i++) {
    const l = batch[i]!;
    if (typeof l === "string") {
      const n = Buffer.byteLength(l, "utf8");
      const h = fmt.header(l);
      // The frame's prefix and the header are ASCII: their .length is their byte count.
      const head = `${h.length + n} ${h}`;
      heads[i] = head;
      room += head.length + n;
    } else room += fmt.maxHeader + l.byteLength;
  }
  const out = Buffer.allocUnsafe(room);
  let off = 0;
  for (let i = 0; i < batch.length; i++) {
    const l = batch[i]!;
    if (typeof l === "string") {
      off += out.write(heads[i]!, off, "latin1");
      off += out.write(l, off, "utf8");
    } else off = fmt.writeBytes(out, off, l, true);
  }
  return out.subarray(0, off);
}

/** A TCP or unix stream connection that writes whole buffers, waiting for drain on backpressure. */
class StreamConn {
  #sock: Socket<undefined> | undefined;
  #connecting: Promise<Socket<undefined>> | undefined;
  #drain: (() => void) | undefined;
  #closedWaiter: ((err: Error) => void) | undefined;

  constructor(
    private readonly target: { hostname: string; port: number } | { unix: string },
    private readonly timeoutMs: number,
  ) {}

  #describe(): string {
    return "unix" in this.target ? `unix:${this.target.unix}` : `${this.target.hostname}:${this.target.port}`;
  }

  async #connect(): Promise<Socket<undefined>> {
    if (this.#sock) return this.#sock;
    this.#connecting ??= (async () => {
      // Only the current socket's end counts: a replaced socket closing late must not drop its successor.
      const lost = (s: Socket<undefined>, why: string) => {
        if (this.#sock !== undefined && this.#sock !== s) return;
        this.#sock = undefined;
        const w = this.#closedWaiter;
        this.#closedWaiter = undefined;
        w?.(new Error(`connection to ${this.#describe()} ${why}`));
      };
      const p = Bun.connect({
        ...this.target,
        socket: {
          data() {
            // A syslog receiver sends nothing back; anything it does send is ignored.
          },
          drain: () => {
            const d = this.#drain;
            this.#drain = undefined;
            d?.();
          },
          close: (s: Socket<undefined>) => lost(s, "closed"),
          end: (s: Socket<undefined>) => lost(s, "ended by the server"),
          error: (s: Socket<undefined>, err: Error) => lost(s, `failed: ${err.message}`),
        },
      } as Parameters<typeof Bun.connect>[0]) as Promise<Socket<undefined>>;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connect ${this.#describe()}: timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      });
      try {
        const s = await Promise.race([p, timeout]);
        this.#sock = s;
        return s;
      } catch (err) {
        // A connect that completes after the timeout must not leak its socket.
        p.then((s) => s.end(), () => {});
        throw err;
      } finally {
        clearTimeout(timer);
        this.#connecting = undefined;
      }
    })();
    return this.#connecting;
  }

  async write(buf: Buffer): Promise<void> {
    const sock = await this.#connect();
    let off = 0;
    const deadline = Date.now() + this.timeoutMs;
    while (off < buf.length) {
      if (this.#sock !== sock) throw new Error(`connection to ${this.#describe()} lost while writing`);
      const n = sock.write(buf.subarray(off));
      if (n < 0) throw new Error(`write to ${this.#describe()} failed`);
      off += n;
      if (off >= buf.length) break;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.close();
        throw new Error(`write to ${this.#describe()}: no progress within ${this.timeoutMs} ms`);
      }
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.#drain = () => {
          clearTimeout(t);
          resolve();
        };
        this.#closedWaiter = (err) => {
          clearTimeout(t);
          reject(err);
        };
      });
    }
  }

  close(): void {
    const s = this.#sock;
    this.#sock = undefined;
    s?.end();
  }
}

class StreamTransport implements Transport {
  readonly kind = "syslog";
  readonly #conn: StreamConn;
  constructor(
    private readonly fmt: SyslogFormatter,
    target: { hostname: string; port: number } | { unix: string },
    timeoutMs: number,
  ) {
    this.#conn = new StreamConn(target, timeoutMs);
  }
  async send(batch: Batch): Promise<void> {
    const frames = octetFrames(this.fmt, batch);
    try {
      await this.#conn.write(frames);
    } catch (err) {
      this.#conn.close();
      throw new SendError(`syslog: ${(err as Error).message}`, true, { cause: err });
    }
  }
  async close(): Promise<void> {
    this.#conn.close();
  }
}

class UdpTransport implements Transport {
  readonly kind = "syslog";
  #sock: Bun.udp.Socket<"buffer"> | undefined;
  #drain: (() => void) | undefined;
  constructor(
    private readonly fmt: SyslogFormatter,
    private readonly host: string,
    private readonly port: number,
  ) {}
  async send(batch: Batch): Promise<void> {
    try {
      const sock = (this.#sock ??= await Bun.udpSocket({
        socket: {
          drain: () => {
            const d = this.#drain;
            this.#drain = undefined;
            d?.();
          },
        },
      }));
      for (const line of batch) {
        let msg = this.fmt.message(line);
        if (msg.length > UDP_MAX) msg = msg.subarray(0, UDP_MAX);
        // false: the socket's buffer is full; wait for drain (bounded) and send again.
        for (let tries = 0; !sock.send(msg, this.port, this.host); tries++) {
          if (tries > 50) throw new Error("socket buffer stays full");
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 20);
            this.#drain = () => {
              clearTimeout(t);
              resolve();
            };
          });
        }
      }
    } catch (err) {
      throw new SendError(`syslog udp ${this.host}:${this.port}: ${(err as Error).message}`, true, { cause: err });
    }
  }
  async close(): Promise<void> {
    this.#sock?.close();
    this.#sock = undefined;
  }
}

export class SyslogSink extends QueuedSink {
  constructor(opts: SyslogOptions) {
    const fmt = new SyslogFormatter(opts);
    const timeout = opts.timeoutMs ?? 5_000;
    let t: Transport;
    if (opts.proto === "unix") t = new StreamTransport(fmt, { unix: opts.path! }, timeout);
    else if (opts.proto === "tcp") t = new StreamTransport(fmt, { hostname: opts.host!, port: opts.port! }, timeout);
    else t = new UdpTransport(fmt, opts.host!, opts.port!);
    super(opts.name ?? "syslog", t, opts);
  }
}
