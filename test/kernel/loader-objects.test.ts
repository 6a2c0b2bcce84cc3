// The loader end to end on every committed object, through the public collection API:
// each object parses, each program this kernel allows loads and attaches, each program it
// refuses fails with the typed error (LSM/fentry: VerifierError EPERM with the hint;
// kprobes: UnsupportedFeatureError "no kprobe PMU"), and rejected.o fails with the log.
// The fixture sections.o also proves the linker's work in the kernel: global data in
// .data/.bss/.rodata, bpf-to-bpf calls, a tracepoint counting exactly, a uprobe, a cgroup
// sock_create hook and a map-in-map read by a socket filter.
import { afterAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import {
  AttachType,
  BpfMap,
  type BpfProgram,
  type Collection,
  type CollectionSpec,
  type Link,
  ProgType,
  type ProgramSpec,
  UnsupportedFeatureError,
  VerifierError,
  attachProgram,
  loadCollectionSpec,
  newCollection,
} from "../../src/bpf/index.ts";
import { symbolFileOffset } from "../../src/bpf/uprobe-symbols.ts";
import { attachKprobeMulti } from "../../src/bpf/link.ts";
import { probeHelper } from "../../src/bpf/features.ts";
import { Helper } from "../../src/bpf/constants.ts";
import { TestCgroup } from "../lib/cgroup.ts";
import { spawnScript } from "../lib/child.ts";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");

/** Every committed object; bad_* fixtures are meant not to parse (unit tests cover them). */
function committedObjects(): string[] {
  return ["bpf/obj", "bpf/obj/testdata"].flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith(".o") && !f.startsWith("bad_"))
      .map((f) => `${d}/${f}`),
  );
}

const u32 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const readU64 = (b: Uint8Array | undefined, off = 0): bigint => (b === undefined ? -1n : new DataView(b.buffer, b.byteOffset).getBigUint64(off, true));

/** What this kernel is expected to do with a program (design.md "Kernel facts"). */
type Outcome = "attach" | "load-only" | "refused-eperm" | "no-kprobe-pmu" | "verifier-reject";
function expectedOutcome(object: string, p: ProgramSpec): Outcome {
  if (object.endsWith("/rejected.o")) return "verifier-reject";
  if (p.type === ProgType.LSM) return "refused-eperm";
  if (p.type === ProgType.TRACING && p.expectedAttachType !== AttachType.TRACE_RAW_TP) return "refused-eperm";
  // A program calling bpf_override_return verifies only where the kernel has the helper
  // (CONFIG_BPF_KPROBE_OVERRIDE): the probe says which, and the verifier's log says why.
  if (p.type === ProgType.KPROBE && p.name === "gen_kprobe_override" && probeHelper(ProgType.KPROBE, Helper.override_return).status !== "supported") return "verifier-reject";
  // "?" marks a program that is not loaded by default (generic_kprobe.o: loaded per hook).
  if (p.type === ProgType.KPROBE && /^\??k(ret)?probe/.test(p.section)) return "no-kprobe-pmu";
  // Socket filters attach with setsockopt, not through the loader; test-run instead.
  if (p.type === ProgType.SOCKET_FILTER) return "load-only";
  return "attach";
}

const cleanups: Array<() => void> = [];
afterAll(() => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // best effort: later cleanups still run
    }
  }
});

let cgroup: TestCgroup | undefined;
function testCgroup(): TestCgroup {
  if (cgroup === undefined) {
    const cg = new TestCgroup("objects");
    cgroup = cg;
    cleanups.push(() => cg.remove());
  }
  return cgroup;
}

/** The libc /bin/sh links (a uprobe target every Debian host has). */
function libcPath(): string {
  const r = spawnSync("sh", ["-c", "ldd /bin/sh | awk '/libc.so/ {print $3}'"], { encoding: "utf8" });
  const p = r.stdout.trim();
  if (p === "") throw new Error(`find libc of /bin/sh with ldd: no libc.so line (status ${r.status}, signal ${r.signal}, stderr ${r.stderr})`);
  return p;
}

function attachFor(spec: ProgramSpec, prog: BpfProgram): Link {
  // kprobe.multi sections name no functions (the generic sensor gives them per hook): give one.
  if (spec.type === ProgType.KPROBE && /^\??k(ret)?probe\.multi/.test(spec.section)) return attachKprobeMulti(prog, ["fd_install"], { retprobe: spec.section.includes("kretprobe") });
  if (spec.type === ProgType.KPROBE && spec.section.startsWith("uprobe") && spec.attachTo === "") {
    // A bare "uprobe" section names no target: give one (libc's open64, which dash calls per redirection).
    return attachProgram(prog, spec, { target: `${libcPath()}:open64`, resolveSymbol: symbolFileOffset });
  }
  return attachProgram(prog, spec, { cgroup: testCgroup().path });
}

describe("every committed object", () => {
  const objects = committedObjects();

  kernelTest("parses with at least one program", () => {
    expect(objects.length).toBeGreaterThan(6);
    for (const o of objects) {
      const spec = loadCollectionSpec(join(root, o));
      expect({ o, programs: Object.keys(spec.programs).length > 0 }).toEqual({ o, programs: true });
    }
  });

  for (const o of objects) {
    kernelTest(`${o}: each program loads and attaches, or is refused with the typed error`, () => {
      const spec: CollectionSpec = loadCollectionSpec(join(root, o));
      for (const p of Object.values(spec.programs)) {
        const want = expectedOutcome(o, p);
        let coll: Collection | undefined;
        try {
          if (want === "refused-eperm" || want === "verifier-reject") {
            let err: unknown;
            try {
              coll = newCollection(spec, { programs: [p.name] });
            } catch (e) {
              err = e;
            }
            expect({ program: p.name, error: err instanceof VerifierError }).toEqual({ program: p.name, error: true });
            const v = err as VerifierError;
            if (want === "refused-eperm") {
              expect(v.code).toBe("EPERM");
              expect(v.log).toEqual([]);
              expect(v.message).toContain("not permitted on this kernel");
            } else {
              expect(v.log.length).toBeGreaterThan(0);
              expect(v.message).toContain(p.name);
            }
            continue;
          }
          coll = newCollection(spec, { programs: [p.name] });
          const prog = coll.programs[p.name];
          expect(prog).toBeDefined();
          if (want === "load-only") continue;
          if (want === "no-kprobe-pmu") {
            let err: unknown;
            try {
              attachFor(p, prog!).close();
            } catch (e) {
              err = e;
            }
            expect({ program: p.name, error: err instanceof UnsupportedFeatureError }).toEqual({ program: p.name, error: true });
            const multi = p.section.includes(".multi");
            expect((err as UnsupportedFeatureError).feature).toBe(multi ? "kprobe_multi" : "kprobe");
            expect((err as Error).message).toContain(multi ? "no kprobe.multi links" : "no kprobe PMU");
            continue;
          }
          const link = attachFor(p, prog!);
          expect(link.fd.raw).toBeGreaterThan(0);
          link.close();
        } finally {
          coll?.close();
        }
      }
    }, 300_000); // generic.o verifies six large programs one by one
  }
});

describe("rejected.o", () => {
  kernelTest("fails with VerifierError carrying the verifier's reason", () => {
    const spec = loadCollectionSpec(join(root, "bpf/obj/testdata/rejected.o"));
    let err: unknown;
    try {
      newCollection(spec).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VerifierError);
    const v = err as VerifierError;
    expect(v.code).toBe("EACCES");
    expect(v.logText).toMatch(/unbounded memory access|invalid access to map value/);
    // The message carries the log's last lines, so an operator sees why without digging.
    expect(v.message).toContain("out_of_bounds");
    expect(v.message).toMatch(/unbounded memory access|invalid access to map value/);
  });
});

describe("sections.o in the kernel", () => {
  kernelTest("globals, subprograms, a tracepoint and a uprobe count a child's syscalls exactly", async () => {
    const n = 7;
    const child = spawnScript(`echo ready; read go; i=0; while [ $i -lt ${n} ]; do : < /dev/null; i=$((i+1)); done; echo done; read end`);
    const spec = loadCollectionSpec(join(root, "bpf/obj/testdata/sections.o"));
    let coll: Collection | undefined;
    const links: Link[] = [];
    try {
      await child.expectLine("ready");
      spec.variables.target_tgid!.set(child.pid);
      spec.variables.rodata_step!.set(3n);
      coll = newCollection(spec, { programs: ["raw_tp_sys_enter", "tp_sys_enter_openat", "uprobe_any"] });
      for (const name of ["raw_tp_sys_enter", "tp_sys_enter_openat", "uprobe_any"]) {
        links.push(attachFor(spec.programs[name]!, coll.programs[name]!));
      }
      child.send("go");
      await child.expectLine("done");
      for (const l of links.splice(0)) l.close();

      const hits = coll.maps.hits!;
      const rawCalls = readU64(hits.lookup(u32(0)));
      // The tracepoint and the uprobe see exactly the child's n opens of /dev/null.
      expect(readU64(hits.lookup(u32(1)))).toBe(BigInt(n));
      expect(readU64(hits.lookup(u32(5)))).toBe(BigInt(n));
      // The raw tracepoint saw every syscall: at least the opens, plus read/write/close...
      expect(rawCalls).toBeGreaterThanOrEqual(BigInt(n));
      // .bss started at 0 and .data at 100; each call added the .rodata step (3).
      const bss = coll.maps[".bss"]!.lookup(u32(0));
      const data = coll.maps[".data"]!.lookup(u32(0));
      expect(readU64(bss, spec.variables.bss_counter!.offset)).toBe(3n * rawCalls);
      expect(readU64(data, spec.variables.data_counter!.offset)).toBe(100n + 3n * rawCalls);
      // .rodata is frozen: userspace writes are refused.
      expect(() => coll!.maps[".rodata"]!.update(u32(0), new Uint8Array(coll!.maps[".rodata"]!.spec.valueSize))).toThrow();
    } finally {
      for (const l of links) l.close();
      coll?.close();
      child.kill();
      await child.finish();
    }
  });

  kernelTest("cgroup/sock_create runs for sockets made inside the test cgroup only", () => {
    const spec = loadCollectionSpec(join(root, "bpf/obj/testdata/sections.o"));
    const coll = newCollection(spec, { programs: ["cgroup_sock_create"] });
    const cg = testCgroup();
    const link = attachFor(spec.programs.cgroup_sock_create!, coll.programs.cgroup_sock_create!);
    // A listening TCP socket is made at once (a UDP handle would wait for bind).
    const makeSocket = `${process.execPath} -e 'Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }).stop(true)'`;
    const count = () => readU64(coll.maps.hits!.lookup(u32(6)));
    try {
      expect(count()).toBe(0n);
      // Outside the cgroup: the program does not run.
      expect(spawnSync("sh", ["-c", makeSocket]).status).toBe(0);
      expect(count()).toBe(0n);
      // The shell moves itself in, then execs the socket maker.
      const inside = spawnSync("sh", ["-c", `echo $$ > ${cg.path}/cgroup.procs && exec ${makeSocket}`], { encoding: "utf8" });
      expect(inside.stderr).toBe("");
      expect(inside.status).toBe(0);
      expect(count()).toBeGreaterThanOrEqual(1n);
    } finally {
      link.close();
      coll.close();
    }
  });

  kernelTest("a socket filter reads through the map-in-map slot set from .values", () => {
    const spec = loadCollectionSpec(join(root, "bpf/obj/testdata/sections.o"));
    const coll = newCollection(spec, { programs: ["socket_filter"] });
    try {
      // Slot 1 of `outer` holds `inner`: a lookup returns the inner map's id.
      const innerId = coll.maps.outer!.lookup(u32(1));
      expect(innerId).toBeDefined();
      expect(new DataView(innerId!.buffer, innerId!.byteOffset).getUint32(0, true)).toBe(coll.maps.inner!.info().id);
      expect(coll.maps.outer!.lookup(u32(0))).toBeUndefined();
      // Three runs of the filter on a small packet bump inner[0] three times.
      const packet = new Uint8Array(64);
      const r = coll.programs.socket_filter!.testRun({ dataIn: packet, repeat: 3 });
      expect(r.retval).toBe(0);
      expect(readU64(coll.maps.inner!.lookup(u32(0)))).toBe(3n);
    } finally {
      coll.close();
    }
  });
});

describe("BpfMap from a collection", () => {
  kernelTest("maps are created with the object's names and sizes", () => {
    const spec = loadCollectionSpec(join(root, "bpf/obj/testdata/ringbuf.o"));
    const coll = newCollection(spec);
    try {
      const info = coll.maps.stats!.info();
      expect(info.name).toBe("stats");
      expect(coll.maps.stats!.spec.valueSize).toBe(8);
      expect(coll.maps.events!.spec.maxEntries).toBe(4096);
      expect(coll.maps.stats).toBeInstanceOf(BpfMap);
    } finally {
      coll.close();
    }
  });
});
