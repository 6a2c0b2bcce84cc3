// BTF_LOAD: hand raw BTF to the kernel (the object's BTF, after fix-ups in btf.ts). Same log
// policy as programs: no log first, then a growing log to explain a rejection.
import { Attr } from "./attr.ts";
import { BpfCmd } from "./constants.ts";
import { Fd } from "./fd.ts";
import { SyscallError, errnoText } from "./sys.ts";

const ENOSPC = 28;
const LOG_START = 64 * 1024;
const LOG_MAX = 0xffffffff >>> 2;

export class BtfLoadError extends SyscallError {
  override name = "BtfLoadError";
  readonly log: string[];

  constructor(errno: number, log: string[]) {
    const code = new SyscallError("bpf", "BPF_BTF_LOAD", errno).code;
    const tail = log.slice(-5);
    super(
      "bpf",
      "BPF_BTF_LOAD",
      errno,
      `load btf: ${code} (${errnoText(errno)})${tail.length > 0 ? `:\n  ${tail.join("\n  ")}` : ""}`,
    );
    this.log = log;
  }
}

export function loadBtf(raw: Uint8Array): Fd {
  const attempt = (log: Uint8Array | null): { fd: number; errno: number; trueSize: number } => {
    const a = new Attr().ptr(0, raw).u32(16, raw.byteLength);
    if (log !== null) a.ptr(8, log).u32(20, log.byteLength).u32(24, 1);
    const r = a.tryCall(BpfCmd.BTF_LOAD);
    return { fd: r.result, errno: r.errno, trueSize: a.getU32(28) };
  };
  const first = attempt(null);
  if (first.errno === 0) return new Fd(first.fd);
  let size = LOG_START;
  let errno = first.errno;
  let log = new Uint8Array(0);
  for (let i = 0; i < 30; i++) {
    log = new Uint8Array(size);
    const r = attempt(log);
    if (r.errno === 0) return new Fd(r.fd);
    errno = r.errno;
    if (r.errno !== ENOSPC || size >= LOG_MAX) break;
    size = Math.min(LOG_MAX, r.trueSize > size ? r.trueSize : size * 2);
  }
  const end = log.indexOf(0);
  const text = new TextDecoder().decode(end < 0 ? log : log.subarray(0, end));
  throw new BtfLoadError(
    errno,
    text.split("\n").map((l) => l.trimEnd()).filter((l) => l.length > 0),
  );
}
