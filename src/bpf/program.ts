// PROG_LOAD with cilium's log policy: try without a log (fast), then with a level-1 log of 64 KiB
// that grows on ENOSPC; EAGAIN (verifier interrupted by a signal) is retried.
import { Attr, objInfo, objName, readCString } from "./attr.ts";
import { AttachType, BpfCmd, ProgType } from "./constants.ts";
import { Fd } from "./fd.ts";
import { getPinned, pinObject } from "./pin.ts";
import { SyscallError, addr as ptrOf, errnoText } from "./sys.ts";

export { ProgType, AttachType };

export interface ProgramLoadSpec {
  name: string;
  type: ProgType;
  expectedAttachType?: AttachType;
  /** Encoded instructions, 8 bytes each. */
  insns: Uint8Array;
  license: string;
  attachBtfId?: number;
  attachBtfObjFd?: number;
  btfFd?: number;
  funcInfo?: Uint8Array;
  funcInfoCnt?: number;
  lineInfo?: Uint8Array;
  lineInfoCnt?: number;
  kernVersion?: number;
  flags?: number;
  fdArray?: Int32Array;
}

export interface ProgramInfo {
  type: ProgType;
  id: number;
  tag: string;
  name: string;
  mapIds: number[];
  btfId: number;
  xlatedLen: number;
  jitedLen: number;
  verifiedInsns: number;
  attachBtfObjId: number;
  attachBtfId: number;
  runTimeNs: bigint;
  runCnt: bigint;
  recursionMisses: bigint;
}

export interface TestRunResult {
  retval: number;
  duration: number;
  dataOut?: Uint8Array;
}

const EPERM = 1;
const EAGAIN = 11;
const ENOSPC = 28;
const LOG_START = 64 * 1024;
const LOG_MAX = 0xffffffff >>> 2;
const MAX_ATTEMPTS = 30;
const TAIL_LINES = 5;

export const EPERM_HINT =
  "program type not permitted on this kernel (LSM/fentry loads are refused by a security policy here)";

/** A program the kernel refused; `log` holds the verifier log lines (empty when none was produced). */
export class VerifierError extends SyscallError {
  override name = "VerifierError";
  readonly log: string[];
  readonly program: string;
  readonly hint: string | undefined;
  /** The log was cut off (the buffer hit its maximum). */
  readonly truncated: boolean;

  constructor(program: string, errno: number, log: string[], truncated = false) {
    const hint = errno === EPERM && log.length === 0 ? EPERM_HINT : undefined;
    const code = new SyscallError("bpf", "BPF_PROG_LOAD", errno).code;
    let msg = `load program ${program}: ${code} (${errnoText(errno)})`;
    if (hint !== undefined) msg += `: ${hint}`;
    const tail = log.slice(-TAIL_LINES);
    if (tail.length > 0) msg += `:\n  ${tail.join("\n  ")}`;
    super("bpf", "BPF_PROG_LOAD", errno, msg);
    this.program = program;
    this.log = log;
    this.hint = hint;
    this.truncated = truncated;
  }

  /** The whole log as text. */
  get logText(): string {
    return this.log.join("\n");
  }
}

function splitLog(buf: Uint8Array): string[] {
  return readCString(buf)
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0);
}

const PROG_INFO_SIZE = 232;

export class BpfProgram {
  readonly fd: Fd;
  readonly name: string;
  readonly type: ProgType;
  /** As given at load; undefined for programs opened from a pin or fd (the kernel does not report it). */
  readonly expectedAttachType: AttachType | undefined;

  private constructor(fd: Fd, name: string, type: ProgType, expectedAttachType?: AttachType) {
    this.fd = fd;
    this.name = name;
    this.type = type;
    this.expectedAttachType = expectedAttachType;
  }

  static load(spec: ProgramLoadSpec): BpfProgram {
    if (spec.insns.byteLength === 0 || spec.insns.byteLength % 8 !== 0) {
      throw new RangeError(`load program ${spec.name}: instructions must be a non-empty multiple of 8 bytes`);
    }
    const license = new TextEncoder().encode(`${spec.license}\0`);
    const build = (log: Uint8Array | null, level: number): Attr => {
      const a = new Attr()
        .u32(0, spec.type)
        .u32(4, spec.insns.byteLength / 8)
        .ptr(8, spec.insns)
        .ptr(16, license)
        .u32(40, spec.kernVersion ?? 0)
        .u32(44, spec.flags ?? 0)
        .chars(48, objName(spec.name), 16)
        .u32(68, spec.expectedAttachType ?? 0)
        .u32(72, spec.btfFd ?? 0)
        .u32(108, spec.attachBtfId ?? 0)
        .u32(112, spec.attachBtfObjFd ?? 0);
      if (log !== null) a.u32(24, level).u32(28, log.byteLength).ptr(32, log);
      if (spec.funcInfo !== undefined && (spec.funcInfoCnt ?? 0) > 0) {
        a.u32(76, 8).ptr(80, spec.funcInfo).u32(88, spec.funcInfoCnt ?? 0);
      }
      if (spec.lineInfo !== undefined && (spec.lineInfoCnt ?? 0) > 0) {
        a.u32(92, 16).ptr(96, spec.lineInfo).u32(104, spec.lineInfoCnt ?? 0);
      }
      if (spec.fdArray !== undefined && spec.fdArray.length > 0) a.ptr(120, spec.fdArray);
      return a;
    };
    const attempt = (log: Uint8Array | null, level: number): { fd: number; errno: number; trueSize: number } => {
      for (;;) {
        const a = build(log, level);
        const r = a.tryCall(BpfCmd.PROG_LOAD);
        if (r.errno === EAGAIN) continue;
        return { fd: r.result, errno: r.errno, trueSize: a.getU32(140) };
      }
    };

    const first = attempt(null, 0);
    if (first.errno === 0) return new BpfProgram(new Fd(first.fd), spec.name, spec.type, spec.expectedAttachType);

    // Retry with a log to explain the failure. ENOSPC on the log overrides the real result, so
    // grow until the kernel gives its own verdict.
    let size = LOG_START;
    let errno = first.errno;
    let log = new Uint8Array(0);
    let truncated = false;
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      log = new Uint8Array(size);
      const r = attempt(log, 1);
      if (r.errno === 0) {
        // Loaded with a log but not without one: keep it (the first failure was transient).
        return new BpfProgram(new Fd(r.fd), spec.name, spec.type, spec.expectedAttachType);
      }
      errno = r.errno;
      if (r.errno !== ENOSPC) break;
      if (size >= LOG_MAX) {
        truncated = true;
        break;
      }
      size = Math.min(LOG_MAX, r.trueSize > size ? r.trueSize : size * 2);
    }
    throw new VerifierError(spec.name, errno, splitLog(log), truncated);
  }

  static fromPin(path: string): BpfProgram {
    return BpfProgram.fromFd(getPinned(path));
  }

  /** Wrap an fd that refers to a program (takes ownership). */
  static fromFd(fd: Fd): BpfProgram {
    const i = readProgramInfo(fd.raw);
    return new BpfProgram(fd, i.name, i.type);
  }

  pin(path: string): void {
    pinObject(this.fd, path);
  }

  info(): ProgramInfo {
    return readProgramInfo(this.fd.raw);
  }

  /** PROG_TEST_RUN (where the program type supports it). */
  testRun(opts: { dataIn?: Uint8Array; dataOutSize?: number; ctxIn?: Uint8Array; repeat?: number } = {}): TestRunResult {
    const out = opts.dataOutSize !== undefined ? new Uint8Array(opts.dataOutSize) : null;
    const a = new Attr()
      .u32(0, this.fd.raw)
      .u32(8, opts.dataIn?.byteLength ?? 0)
      .u32(12, out?.byteLength ?? 0)
      .ptr(16, opts.dataIn)
      .ptr(24, out)
      .u32(32, opts.repeat ?? 0)
      .u32(40, opts.ctxIn?.byteLength ?? 0)
      .ptr(48, opts.ctxIn);
    a.call(BpfCmd.PROG_TEST_RUN);
    const res: TestRunResult = { retval: a.getU32(4), duration: a.getU32(36) };
    if (out !== null) res.dataOut = out.slice(0, a.getU32(12));
    return res;
  }

  close(): void {
    this.fd.close();
  }
}

export function readProgramInfo(fd: number): ProgramInfo {
  // First ask for the counts, then fetch the map ids into a buffer of that size.
  const v = objInfo(fd, PROG_INFO_SIZE);
  const nrMaps = v.getUint32(52, true);
  let mapIds: number[] = [];
  if (nrMaps > 0) {
    const ids = new Uint32Array(nrMaps);
    const infoBytes = new Uint8Array(PROG_INFO_SIZE);
    const iv = new DataView(infoBytes.buffer);
    iv.setUint32(52, nrMaps, true);
    const a = new Attr().u32(0, fd).u32(4, PROG_INFO_SIZE).ptr(8, infoBytes);
    // map_ids pointer goes inside the info struct; keep `ids` alive through the call.
    iv.setBigUint64(56, BigInt(ptrOf(ids)), true);
    a.call(BpfCmd.OBJ_GET_INFO_BY_FD);
    mapIds = [...ids];
  }
  const tag = [...new Uint8Array(v.buffer, 8, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
  return {
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    tag,
    jitedLen: v.getUint32(16, true),
    xlatedLen: v.getUint32(20, true),
    mapIds,
    name: readCString(new Uint8Array(v.buffer, 64, 16)),
    btfId: v.getUint32(128, true),
    runTimeNs: v.getBigUint64(192, true),
    runCnt: v.getBigUint64(200, true),
    recursionMisses: v.getBigUint64(208, true),
    verifiedInsns: v.getUint32(216, true),
    attachBtfObjId: v.getUint32(220, true),
    attachBtfId: v.getUint32(224, true),
  };
}

