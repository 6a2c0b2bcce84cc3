// Attaching hand-assembled programs to real kernel hooks: the counters they bump must rise when
// this process makes syscalls, and stop once the link is detached or closed.
import { describe, expect } from "bun:test";
import { readFileSync } from "node:fs";
import { retProgram } from "../../src/bpf/asm.ts";
import { kernelTest } from "../lib/host.ts";
import { counterInsns, counterMap, readCounter, syscalls } from "../lib/loader-progs.ts";
import { AttachType, LinkType } from "../../src/bpf/constants.ts";
import { kernelTypeId } from "../../src/bpf/features.ts";
import { attachKprobe, attachRawTracepoint, attachTracepoint, attachTracing, attachUprobe, type Link } from "../../src/bpf/link.ts";
import { UnsupportedFeatureError } from "../../src/bpf/perf.ts";
import { BpfProgram, ProgType } from "../../src/bpf/program.ts";

/** The counter rises by at least n while we make n syscalls, and by nothing after `stop`. */
function expectCounting(counter: ReturnType<typeof counterMap>, stop: () => void): void {
  const before = readCounter(counter);
  syscalls(200);
  const during = readCounter(counter);
  expect(during - before).toBeGreaterThanOrEqual(200n);
  stop();
  const after = readCounter(counter);
  syscalls(200);
  expect(readCounter(counter)).toBe(after);
}

describe("tracing hooks", () => {
  kernelTest("raw tracepoint sys_enter: counter rises, link info names the tracepoint, close detaches", () => {
    const counter = counterMap();
    const prog = BpfProgram.load({ name: "t_raw_tp", type: ProgType.RAW_TRACEPOINT, insns: counterInsns(counter.fd.raw, process.pid), license: "GPL" });
    let link: Link | undefined;
    try {
      link = attachRawTracepoint(prog, "sys_enter");
      const info = link.info();
      expect(info.type).toBe(LinkType.RAW_TRACEPOINT);
      expect(info.tpName).toBe("sys_enter");
      expect(info.progId).toBe(prog.info().id);
      const l = link;
      expectCounting(counter, () => l.close());
    } finally {
      link?.close();
      prog.close();
      counter.close();
    }
  });

  kernelTest("tp_btf on sys_enter (attach_btf_id of btf_trace_sys_enter): counter rises, close stops it", () => {
    const id = kernelTypeId("btf_trace_sys_enter", "typedef");
    expect(id).toBeDefined();
    const counter = counterMap();
    const prog = BpfProgram.load({
      name: "t_tp_btf",
      type: ProgType.TRACING,
      expectedAttachType: AttachType.TRACE_RAW_TP,
      attachBtfId: id!,
      insns: counterInsns(counter.fd.raw, process.pid),
      license: "GPL",
    });
    let link: Link | undefined;
    try {
      link = attachTracing(prog);
      expect(link.kind).toBe("link");
      const info = link.info();
      // The kernel represents a tp_btf attachment as a raw tracepoint link on the same event.
      expect(info.type).toBe(LinkType.RAW_TRACEPOINT);
      expect(info.tpName).toBe("sys_enter");
      // Tracing links cannot be force-detached: detach() says so instead of pretending.
      const l = link;
      expect(() => l.detach()).toThrow(/cannot force-detach this link type/);
      expectCounting(counter, () => l.close());
    } finally {
      link?.close();
      prog.close();
      counter.close();
    }
  });

  kernelTest("tp_btf without a known attach type falls back to RAW_TRACEPOINT_OPEN", () => {
    const id = kernelTypeId("btf_trace_sys_enter", "typedef");
    const counter = counterMap();
    const loaded = BpfProgram.load({
      name: "t_tp_btf2",
      type: ProgType.TRACING,
      expectedAttachType: AttachType.TRACE_RAW_TP,
      attachBtfId: id!,
      insns: counterInsns(counter.fd.raw, process.pid),
      license: "GPL",
    });
    // Reopened by fd, the program no longer knows its expected attach type.
    const prog = BpfProgram.fromFd(loaded.fd.dup());
    loaded.close();
    expect(prog.expectedAttachType).toBeUndefined();
    let link: Link | undefined;
    try {
      link = attachTracing(prog);
      const l = link;
      expectCounting(counter, () => l.close());
    } finally {
      link?.close();
      prog.close();
      counter.close();
    }
  });

  kernelTest("tracepoint syscalls/sys_enter_getppid through a perf-event link", () => {
    const counter = counterMap();
    const prog = BpfProgram.load({ name: "t_tp", type: ProgType.TRACEPOINT, insns: counterInsns(counter.fd.raw, process.pid), license: "GPL" });
    let link: Link | undefined;
    try {
      link = attachTracepoint(prog, "syscalls", "sys_enter_getppid");
      expect(link.kind).toBe("link");
      expect(link.info().type).toBe(LinkType.PERF_EVENT);
      const before = readCounter(counter);
      syscalls(300);
      const delta = readCounter(counter) - before;
      // Only getppid counts, and only from this process: exactly our calls (plus a few stray ones).
      expect(delta).toBeGreaterThanOrEqual(300n);
      expect(delta).toBeLessThan(310n);
      link.close();
      const after = readCounter(counter);
      syscalls(100);
      expect(readCounter(counter)).toBe(after);
    } finally {
      link?.close();
      prog.close();
      counter.close();
    }
  });

  kernelTest("tracepoint through the PERF_EVENT_IOC_SET_BPF fallback: counts, refuses pinning, close detaches", () => {
    const counter = counterMap();
    const prog = BpfProgram.load({ name: "t_tp_ioctl", type: ProgType.TRACEPOINT, insns: counterInsns(counter.fd.raw, process.pid), license: "GPL" });
    let link: Link | undefined;
    try {
      link = attachTracepoint(prog, "syscalls", "sys_enter_getppid", { mode: "ioctl" });
      expect(link.kind).toBe("perf-ioctl");
      expect(() => link!.pin("/sys/fs/bpf/never")).toThrow(/cannot be pinned/);
      const l = link;
      expectCounting(counter, () => l.close());
    } finally {
      link?.close();
      prog.close();
      counter.close();
    }
  });

  kernelTest("an unknown tracepoint is a clear error naming it", () => {
    const prog = BpfProgram.load({ name: "t_tp_none", type: ProgType.TRACEPOINT, insns: retProgram(0), license: "GPL" });
    try {
      expect(() => attachTracepoint(prog, "syscalls", "sys_enter_no_such_call")).toThrow(/tracepoint syscalls\/sys_enter_no_such_call/);
    } finally {
      prog.close();
    }
  });
});

describe("probes this kernel lacks", () => {
  kernelTest("kprobe: typed UnsupportedFeatureError saying the kprobe PMU is absent", () => {
    const counter = counterMap();
    const prog = BpfProgram.load({ name: "t_kprobe", type: ProgType.KPROBE, insns: counterInsns(counter.fd.raw, process.pid), license: "GPL" });
    try {
      let err: unknown;
      try {
        attachKprobe(prog, "do_sys_openat2").close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsupportedFeatureError);
      expect((err as UnsupportedFeatureError).feature).toBe("kprobe");
      expect((err as Error).message).toContain("no kprobe PMU");
    } finally {
      prog.close();
      counter.close();
    }
  });

  kernelTest("uprobe on libc's getppid (symbol resolved to its file offset) counts this process's calls", () => {
    const libc = readFileSync("/proc/self/maps", "utf8")
      .split("\n")
      .map((l) => l.split(/\s+/).at(-1) ?? "")
      .find((p) => /\/libc\.so\.6$/.test(p));
    expect(libc).toBeDefined();
    const counter = counterMap();
    const prog = BpfProgram.load({ name: "t_uprobe", type: ProgType.KPROBE, insns: counterInsns(counter.fd.raw, process.pid), license: "GPL" });
    let link: Link | undefined;
    try {
      link = attachUprobe(prog, libc!, "getppid", { pid: process.pid });
      expect(link.kind).toBe("link");
      const l = link;
      expectCounting(counter, () => l.close());
      expect(() => attachUprobe(prog, libc!, "no_such_function_here")).toThrow(/no such function symbol/);
      // The return probe (retprobe bit from the PMU's format file) counts the same calls.
      const ret = attachUprobe(prog, libc!, "getppid", { pid: process.pid, retprobe: true });
      expectCounting(counter, () => ret.close());
    } finally {
      link?.close();
      prog.close();
      counter.close();
    }
  });
});
