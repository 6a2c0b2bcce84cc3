// The direct line writer (ProcessEventWriter) against the reference: for every event, its line
// must be byte for byte JSON.stringify(encodeEvent(ev)), valid JSON, and its object form must
// serialize to the same line. Events are generated from a seeded PRNG with strings that need
// every kind of escaping (quotes, backslashes, control characters, DEL, U+2028, non-ASCII,
// surrogate pairs and lone surrogates) in argv, cwd and binary, under each encoder option.
import { describe, expect, test } from "bun:test";
import { joinArguments } from "../../src/events/args.ts";
import { execId } from "../../src/events/exec-id.ts";
import type { ProcessEvent, ProcessInfo } from "../../src/events/model.ts";
import { emptyCreds } from "../../src/events/process-cache.ts";
import { decodeExitCode } from "../../src/events/signals.ts";
import { ScratchWriter } from "../../src/events/byte-writer.ts";
import { encodeEvent, ProcessEventWriter, utf8, type EncodeOptions } from "../../src/events/tetragon.ts";
import { BootClock } from "../../src/events/time.ts";

// xorshift32: the same cases on every run, so a failure names a reproducible seed.
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

const PIECES = [
  "a", "Z", "0", " ", "/", "-", "=", '"', "\\", "\n", "\t", "\r", "\b", "\f", "\u0000", "\u0001", "\u001f", "\u007f",
  "é", "ß", "日本", "\u2028", "\u2029", "😀", "\ud800", "\udfff", "\udc00x", "\ufffd", "'", "<>&", "$(x)", "%s",
];

function str(r: () => number, max: number): string {
  let s = "";
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)]!;
  return s;
}

const clock = new BootClock(BigInt(Date.UTC(2024, 3, 14, 2, 0, 0)) * 1_000_000n);

function info(r: () => number, node: string): ProcessInfo {
  const pid = 1 + Math.floor(r() * 4_000_000);
  const ktime = r() < 0.1 ? 0n : BigInt(Math.floor(r() * 2 ** 50));
  const argv = Array.from({ length: Math.floor(r() * 5) }, () => str(r, 6));
  const c = emptyCreds();
  const creds = {
    ...c,
    uid: Math.floor(r() * 70000),
    euid: r() < 0.5 ? 0 : Math.floor(r() * 70000),
    auid: r() < 0.5 ? 4294967295 : Math.floor(r() * 1000),
    capPermitted: r() < 0.5 ? 0n : BigInt(Math.floor(r() * 2 ** 41)),
    capEffective: r() < 0.5 ? 0n : 0x1ffffffffffn,
    capInheritable: r() < 0.8 ? 0n : 1n << 5n,
    ns: Array.from({ length: 10 }, () => (r() < 0.2 ? 0 : 4026531834 + Math.floor(r() * 4))),
  };
  const flagBits = [0x1, 0x4, 0x10, 0x40, 0x100, 0x200, 0x800, 0x1000, 0x2000, 0x4000, 0x10000000, 0x20000000];
  let flags = 0;
  for (const b of flagBits) if (r() < 0.2) flags |= b;
  return {
    execId: execId(node, ktime, pid),
    pid,
    tid: r() < 0.8 ? pid : pid + 1 + Math.floor(r() * 100),
    ktime,
    binary: r() < 0.05 ? "" : `/usr/${str(r, 8)}`,
    arguments: joinArguments(argv),
    cwd: r() < 0.05 ? "" : `/${str(r, 8)}`,
    flags,
    creds,
    parentExecId: r() < 0.05 ? "" : execId(node, 7n, pid - 1),
    ppid: pid - 1,
    ...(r() < 0.7 ? { file: { ino: BigInt(Math.floor(r() * 2 ** 40)), nlink: r() < 0.3 ? 0 : 1 } } : {}),
  };
}

function event(r: () => number, node: string): ProcessEvent {
  const process = info(r, node);
  const parent = r() < 0.85 ? info(r, node) : undefined;
  const time = BigInt(Math.floor(r() * 2 ** 50));
  if (r() < 0.5) return { type: "process_exec", time, process, parent };
  const code = [0, 1 << 8, 9, 15, 137 << 8, 0x86, 64][Math.floor(r() * 7)]!;
  return { type: "process_exit", time, process, parent, ...decodeExitCode(code) };
}

const OPTIONS: Array<[string, Omit<EncodeOptions, "nodeName" | "clock">]> = [
  ["default", {}],
  ["process credentials", { processCred: true }],
  ["namespaces", { processNs: true, hostNs: [4026531834, 4026531835, 4026531836, 4026531837, 0, 4026531834, 4026531835, 4026531836, 4026531837, 4026531834] }],
  ["credentials and namespaces", { processCred: true, processNs: true }],
];

describe("ProcessEventWriter equals JSON.stringify(encodeEvent)", () => {
  for (const [name, extra] of OPTIONS) {
    test(`generated events, ${name}`, () => {
      for (const node of ["node-a", "nöde \"x\"", "n\u0001"]) {
        const opts: EncodeOptions = { nodeName: node, clock, ...extra };
        const w = new ProcessEventWriter(opts);
        const r = prng(0x9e3779b9 ^ node.length ^ name.length);
        for (let i = 0; i < 3000; i++) {
          const ev = event(r, node);
          const want = JSON.stringify(encodeEvent(ev, opts));
          // Twice: the second line comes from the cached block.
          for (let k = 0; k < 2; k++) {
            const line = w.line(ev);
            if (line !== want) expect({ i, line }).toEqual({ i, line: want });
          }
          expect(JSON.stringify(w.json(ev))).toBe(want);
          expect(want.isWellFormed()).toBe(true);
          expect(JSON.stringify(JSON.parse(want))).toBe(want);
        }
      }
    });
  }

  test("a block is shared by later events of the image and of its children, and forget() drops it", () => {
    const opts: EncodeOptions = { nodeName: "n", clock };
    const w = new ProcessEventWriter(opts);
    const r = prng(7);
    const parent = info(r, "n");
    const child = info(r, "n");
    const exec: ProcessEvent = { type: "process_exec", time: 5n, process: child, parent };
    const exit: ProcessEvent = { type: "process_exit", time: 6n, process: child, parent, signal: undefined, status: 0 };
    expect(w.line(exec)).toBe(JSON.stringify(encodeEvent(exec, opts)));
    const a = w.json(exec) as { process_exec: { parent: object } };
    const b = w.json(exit) as { process_exit: { parent: object } };
    expect(a.process_exec.parent).toBe(b.process_exit.parent);
    expect(Object.isFrozen(a.process_exec.parent)).toBe(true);
    w.forget(child);
    expect(w.line(exit)).toBe(JSON.stringify(encodeEvent(exit, opts)));
  });

  test("ByteWriter.json() writes the UTF-8 of JSON.stringify for single strings", () => {
    const w = new ScratchWriter();
    const quote = (s: string): string => {
      w.begin(6 * s.length + 2);
      w.json(s);
      return utf8(w.take());
    };
    const r = prng(42);
    for (let i = 0; i < 20000; i++) {
      const s = str(r, 10);
      expect(quote(s)).toBe(JSON.stringify(s));
    }
    for (let c = 0; c < 0x10000; c++) {
      const s = String.fromCharCode(c);
      if (quote(s) !== JSON.stringify(s)) expect({ c, q: quote(s) }).toEqual({ c, q: JSON.stringify(s) });
    }
  });

  test("ByteWriter.uint() writes decimal digits; each line is a view followed by a newline, and lines wrap in one buffer", () => {
    const w = new ScratchWriter();
    for (const n of [0, 7, 10, 99, 100, 4294967295, 2 ** 53 - 1, -1, 1.5]) {
      w.begin(32);
      w.uint(n);
      expect(utf8(w.take())).toBe(String(n));
    }
    // Execs at their image's start (the time is copied from the block) and exits.
    const r = prng(7);
    const o: EncodeOptions = { nodeName: "node-ü", clock };
    const ev = Array.from({ length: 400 }, (): ProcessEvent => {
      const e = event(r, o.nodeName);
      return e.type === "process_exec" && r() < 0.7 ? { ...e, time: e.process.ktime } : e;
    });
    const wr = new ProcessEventWriter(o);
    const buffers = new Set<ArrayBufferLike>();
    let wrapped = false;
    let last = -1;
    for (const e of ev) {
      const l = wr.lineBytes(e);
      expect(utf8(l)).toBe(JSON.stringify(encodeEvent(e, o)));
      expect(new Uint8Array(l.buffer, l.byteOffset + l.byteLength, 1)[0]).toBe(0x0a);
      if (l.byteOffset < last) wrapped = true;
      last = l.byteOffset;
      buffers.add(l.buffer);
    }
    // 400 lines of ~1 KB went through one 64 KiB buffer, from its front again when full.
    expect(wrapped).toBe(true);
    expect(buffers.size).toBe(1);
  });

});
