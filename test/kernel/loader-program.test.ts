// Program loading against the real verifier: rejection with the log, log growth, EPERM for
// program types this kernel's policy refuses, test runs, info, pins; BTF loading.
import { describe, expect } from "bun:test";
import { rmSync } from "node:fs";
import { kernelTest } from "../lib/host.ts";
import { counterMap } from "../lib/loader-progs.ts";
import { Asm, JmpOp, Reg, retProgram } from "../../src/bpf/asm.ts";
import { BtfLoadError, loadBtf } from "../../src/bpf/btf-load.ts";
import { AttachType, Helper } from "../../src/bpf/constants.ts";
import { kernelTypeId } from "../../src/bpf/features.ts";
import { BpfProgram, EPERM_HINT, ProgType, VerifierError } from "../../src/bpf/program.ts";
import { ensureBpffs, unpin } from "../../src/bpf/pin.ts";

function loadError(fn: () => unknown): VerifierError {
  try {
    fn();
  } catch (e) {
    if (e instanceof VerifierError) return e;
    throw e;
  }
  throw new Error("expected the load to fail");
}

describe("verifier rejections", () => {
  kernelTest("exit without setting r0 raises VerifierError with the log (R0 !read_ok)", () => {
    const e = loadError(() => BpfProgram.load({ name: "no_r0", type: ProgType.SOCKET_FILTER, insns: new Asm().exit().bytes(), license: "GPL" }));
    expect(e.code).toBe("EACCES");
    expect(e.program).toBe("no_r0");
    expect(e.log.some((l) => l.includes("R0 !read_ok"))).toBe(true);
    expect(e.message).toStartWith("load program no_r0: EACCES (permission denied)");
    expect(e.message).toContain("R0 !read_ok");
    expect(e.hint).toBeUndefined();
  });

  kernelTest("a log longer than 64 KiB is grown until the verifier's own verdict shows", () => {
    // 12k instructions are each printed at log level 1: about 200 KiB of log before the error.
    const a = new Asm();
    for (let i = 0; i < 12_000; i++) a.mov64Imm(Reg.R1, i);
    a.exit();
    const e = loadError(() => BpfProgram.load({ name: "long_log", type: ProgType.SOCKET_FILTER, insns: a.bytes(), license: "GPL" }));
    expect(e.code).toBe("EACCES"); // not ENOSPC
    expect(e.logText.length).toBeGreaterThan(64 * 1024);
    expect(e.log.slice(-3).join("\n")).toContain("R0 !read_ok");
  });

  kernelTest("an unknown helper is named in the log", () => {
    const e = loadError(() =>
      BpfProgram.load({ name: "bad_helper", type: ProgType.SOCKET_FILTER, insns: new Asm().call(99_999).ret(0).bytes(), license: "GPL" }),
    );
    expect(e.code).toBe("EINVAL");
    expect(e.logText).toMatch(/invalid func unknown#99999/);
  });
});

describe("programs this kernel refuses", () => {
  kernelTest("LSM and fentry loads fail with EPERM, an empty log and the not-permitted hint", () => {
    const lsmId = kernelTypeId("bpf_lsm_file_open", "func");
    const fentryId = kernelTypeId("bpf_fentry_test1", "func") ?? kernelTypeId("vfs_read", "func");
    expect(lsmId).toBeDefined();
    expect(fentryId).toBeDefined();
    const lsm = loadError(() =>
      BpfProgram.load({ name: "t_lsm", type: ProgType.LSM, expectedAttachType: AttachType.LSM_MAC, attachBtfId: lsmId!, insns: retProgram(0), license: "GPL" }),
    );
    const fentry = loadError(() =>
      BpfProgram.load({ name: "t_fentry", type: ProgType.TRACING, expectedAttachType: AttachType.TRACE_FENTRY, attachBtfId: fentryId!, insns: retProgram(0), license: "GPL" }),
    );
    for (const e of [lsm, fentry]) {
      expect(e.code).toBe("EPERM");
      expect(e.log).toEqual([]);
      expect(e.hint).toBe(EPERM_HINT);
      expect(e.message).toContain("not permitted on this kernel");
    }
  });

  kernelTest("tp_btf loads where LSM does not (same TRACING machinery, so EPERM is policy, not the type)", () => {
    const id = kernelTypeId("btf_trace_sched_switch", "typedef");
    const p = BpfProgram.load({ name: "t_tp_btf", type: ProgType.TRACING, expectedAttachType: AttachType.TRACE_RAW_TP, attachBtfId: id!, insns: retProgram(0), license: "GPL" });
    expect(p.info().attachBtfId).toBe(id!);
    p.close();
  });
});

describe("loaded programs", () => {
  kernelTest("test run returns the program's verdict", () => {
    const p = BpfProgram.load({ name: "t_run", type: ProgType.SOCKET_FILTER, insns: retProgram(7), license: "GPL" });
    try {
      const r = p.testRun({ dataIn: new Uint8Array(64), repeat: 1 });
      expect(r.retval).toBe(7);
    } finally {
      p.close();
    }
  });

  kernelTest("info reports name, type, tag and the maps the program uses", () => {
    const m = counterMap("t_used");
    const insns = new Asm()
      .st("w", Reg.R10, -4, 0)
      .ldMapFd(Reg.R1, m.fd.raw)
      .mov64Reg(Reg.R2, Reg.R10)
      .alu64Imm(0, Reg.R2, -4)
      .call(Helper.map_lookup_elem)
      .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out")
      .label("out")
      .ret(0)
      .bytes();
    const p = BpfProgram.load({ name: "t_info", type: ProgType.SOCKET_FILTER, insns, license: "GPL" });
    try {
      const i = p.info();
      expect(i.name).toBe("t_info");
      expect(i.type).toBe(ProgType.SOCKET_FILTER);
      expect(i.tag).toMatch(/^[0-9a-f]{16}$/);
      expect(i.mapIds).toEqual([m.info().id]);
    } finally {
      p.close();
      m.close();
    }
  });

  kernelTest("pin and reopen a program by path", () => {
    ensureBpffs();
    const path = `/sys/fs/bpf/ward-test-prog-${process.pid}`;
    const p = BpfProgram.load({ name: "t_pinned", type: ProgType.SOCKET_FILTER, insns: retProgram(3), license: "GPL" });
    try {
      p.pin(path);
      const again = BpfProgram.fromPin(path);
      expect(again.info().id).toBe(p.info().id);
      expect(again.name).toBe("t_pinned");
      expect(again.testRun({ dataIn: new Uint8Array(64) }).retval).toBe(3);
      again.close();
    } finally {
      unpin(path);
      p.close();
      rmSync(path, { force: true });
    }
  });
});

describe("BTF_LOAD", () => {
  // A header, one INT type named "int", and its string table.
  function btfBlob(bits: number): Uint8Array {
    const strings = new TextEncoder().encode("\0int\0");
    const b = new Uint8Array(24 + 16 + strings.length);
    const v = new DataView(b.buffer);
    v.setUint16(0, 0xeb9f, true);
    v.setUint8(2, 1);
    v.setUint32(4, 24, true);
    v.setUint32(8, 0, true);
    v.setUint32(12, 16, true);
    v.setUint32(16, 16, true);
    v.setUint32(20, strings.length, true);
    v.setUint32(24, 1, true); // name_off -> "int"
    v.setUint32(28, 1 << 24, true); // kind INT
    v.setUint32(32, 4, true); // size
    v.setUint32(36, bits, true); // encoding: offset 0, nr_bits
    b.set(strings, 40);
    return b;
  }

  kernelTest("valid BTF gives an fd; invalid BTF raises BtfLoadError with the kernel's log", () => {
    const fd = loadBtf(btfBlob(32));
    expect(fd.raw).toBeGreaterThan(0);
    fd.close();
    let err: unknown;
    try {
      loadBtf(btfBlob(64)); // 64 bits in a 4-byte int
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BtfLoadError);
    expect((err as BtfLoadError).code).toBe("EINVAL");
    expect((err as BtfLoadError).log.length).toBeGreaterThan(0);
    expect((err as Error).message).toStartWith("load btf: EINVAL");
  });
});
