// Loader benchmark: where the time goes between an object's bytes and live kernel objects,
// split into our time (TypeScript: ELF+BTF parse, CO-RE+link, attr building, BTF fix-up)
// and kernel time (the bpf(2) calls: BTF_LOAD, MAP_CREATE, PROG_LOAD with the verifier).
// Prints, per committed object, medians over several iterations and the ratio of our time
// to kernel time measured in the same run (design.md: ratios, not bare wall-clock claims).
//
// How the split is measured: parse and relocate are pure (no syscalls), so their wall time
// is ours. For the load phase, BpfProgram.load and BpfMap.create are wrapped with timers
// (their work is the syscall; building the attr takes microseconds) and BTF_LOAD is timed
// on the same encoded BTF in the same iteration; the rest of newCollection is ours.
// The process pins itself to CPU 0 (taskset) since the two vCPUs here differ in speed.
//
// Usage (root): bun run bench/loader.ts [--iterations 15] [--quick] [--json]
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fixupBtfForLoad, loadKernelBtf } from "../src/bpf/btf.ts";
import { loadBtf } from "../src/bpf/btf-load.ts";
import { loadCollectionSpec, newCollection, type CollectionSpec } from "../src/bpf/collection.ts";
import { CoreTarget } from "../src/bpf/core.ts";
import { linkProgram } from "../src/bpf/linker.ts";
import { BpfMap } from "../src/bpf/map.ts";
import { BpfProgram, type ProgramLoadSpec } from "../src/bpf/program.ts";
import type { MapSpec } from "../src/bpf/map.ts";
import { pinSelf } from "./lib/host.ts";
import { metric, runBench, type BenchSection } from "./lib/results.ts";

const root = join(import.meta.dir, "..");

pinSelf(0);

/** Committed objects that can load: bad_* never parse, rejected.o never verifies. */
function objects(): string[] {
  return ["bpf/obj", "bpf/obj/testdata"].flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith(".o") && !f.startsWith("bad_") && f !== "rejected.o")
      .sort()
      .map((f) => `${d}/${f}`),
  );
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))] ?? Number.NaN;
};

// ---- kernel-call timers: wrap the two static entry points newCollection goes through ----
let kernelMs = 0;
const origLoad = BpfProgram.load.bind(BpfProgram);
const origCreate = BpfMap.create.bind(BpfMap);
BpfProgram.load = (spec: ProgramLoadSpec): BpfProgram => {
  const t = performance.now();
  try {
    return origLoad(spec);
  } finally {
    kernelMs += performance.now() - t;
  }
};
BpfMap.create = (spec: MapSpec, opts?: { innerMapFd?: number }): BpfMap => {
  const t = performance.now();
  try {
    return origCreate(spec, opts);
  } finally {
    kernelMs += performance.now() - t;
  }
};

interface Sample {
  parse: number;
  relocate: number;
  loadTotal: number;
  loadKernel: number;
}

interface ObjectReport {
  object: string;
  bytes: number;
  programs: number;
  refused: string[];
  insns: number;
  median: { parse: number; relocate: number; loadOurs: number; loadKernel: number; ours: number; kernel: number };
  spread: { oursP25: number; oursP75: number; kernelP25: number; kernelP75: number };
  oursOverKernel: number;
  ratioMin: number;
  ratioMax: number;
}

/** Programs of this object the kernel accepts here (LSM/fentry are refused on this host). */
function loadable(spec: CollectionSpec, kernelBtf: ReturnType<typeof loadKernelBtf>): { ok: string[]; refused: string[] } {
  const ok: string[] = [];
  const refused: string[] = [];
  for (const name of Object.keys(spec.programs)) {
    try {
      newCollection(spec, { programs: [name], kernelBtf }).close();
      ok.push(name);
    } catch (e) {
      refused.push(`${name} (${e instanceof Error ? ((e as { code?: string }).code ?? e.name) : "error"})`);
    }
  }
  return { ok, refused };
}

function sampleOnce(bytes: Uint8Array, name: string, programs: string[], kernelBtf: ReturnType<typeof loadKernelBtf>): Sample {
  let t = performance.now();
  const spec = loadCollectionSpec(bytes, name);
  const parse = performance.now() - t;

  // CO-RE + subprogram linking, pure: placeholder map fds (the verifier never sees these).
  t = performance.now();
  const core = new CoreTarget(kernelBtf);
  for (const p of programs) linkProgram(spec.programs[p]!, { mapFd: () => 3, btf: spec.btf, core });
  const relocate = performance.now() - t;

  // BTF_LOAD of the same fixed-up BTF newCollection will load: kernel part of BTF handling.
  let btfKernel = 0;
  if (spec.btf !== undefined) {
    const raw = fixupBtfForLoad(spec.btf, spec.datasecLayout).encode();
    const tb = performance.now();
    loadBtf(raw).close();
    btfKernel = performance.now() - tb;
  }

  kernelMs = 0;
  t = performance.now();
  newCollection(spec, { programs, kernelBtf }).close();
  const loadTotal = performance.now() - t;
  return { parse, relocate, loadTotal, loadKernel: kernelMs + btfKernel };
}

function benchObject(path: string, kernelBtf: ReturnType<typeof loadKernelBtf>, iterations: number, warm: boolean): ObjectReport {
  const bytes = new Uint8Array(readFileSync(join(root, path)));
  const spec = loadCollectionSpec(bytes, path);
  const { ok, refused } = loadable(spec, kernelBtf);
  const insns = ok.reduce((n, p) => n + spec.programs[p]!.insns.length / 8, 0);
  if (warm) sampleOnce(bytes, path, ok, kernelBtf); // warm-up: JIT, page cache, kernel BTF index
  const samples: Sample[] = [];
  for (let i = 0; i < iterations; i++) samples.push(sampleOnce(bytes, path, ok, kernelBtf));
  // newCollection relocates again itself, so its non-kernel time already holds reloc+link:
  // ours = parse + that; the separate relocate timing only breaks it down.
  const ours = samples.map((s) => s.parse + Math.max(0, s.loadTotal - s.loadKernel));
  const kernel = samples.map((s) => s.loadKernel);
  const ratios = samples.map((s, i) => ours[i]! / Math.max(1e-6, kernel[i]!));
  return {
    object: path,
    bytes: bytes.length,
    programs: ok.length,
    refused,
    insns,
    median: {
      parse: median(samples.map((s) => s.parse)),
      relocate: median(samples.map((s) => s.relocate)),
      loadOurs: median(samples.map((s) => Math.max(0, s.loadTotal - s.loadKernel))),
      loadKernel: median(kernel),
      ours: median(ours),
      kernel: median(kernel),
    },
    spread: { oursP25: quantile(ours, 0.25), oursP75: quantile(ours, 0.75), kernelP25: quantile(kernel, 0.25), kernelP75: quantile(kernel, 0.75) },
    oursOverKernel: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
  };
}

await runBench("loader", "Loader: parse + relocate + load per object, ours against the kernel's (verifier)", async (args, section: BenchSection) => {
  const iterations = Math.floor(args.num("iterations", 15, 1));
  if (process.getuid?.() !== 0) throw new Error("bench/loader: needs root (it loads programs)");
  const t = performance.now();
  const kernelBtf = loadKernelBtf();
  const vmlinuxMs = performance.now() - t;
  // --quick only checks the bench runs: no warm-up load (the verifier is the slow part)
  const reports = objects().map((o) => benchObject(o, kernelBtf, iterations, !args.quick));
  for (const r of reports) {
    const name = relative("bpf/obj", r.object);
    const id = `loader_${name.replace(/\.o$/, "").replace(/[^A-Za-z0-9]+/g, "_")}`;
    section.metrics.push(
      metric({
        id,
        name: `loader ${name}: our time / the kernel's`,
        unit: "ratio",
        median: r.oursOverKernel,
        min: r.ratioMin,
        max: r.ratioMax,
        rounds: iterations,
        detail: `${r.programs} programs, ${r.insns} insns; ours ${r.median.ours.toFixed(2)} ms, kernel ${r.median.kernel.toFixed(2)} ms`,
      }),
    );
  }
  const f = (n: number): string => n.toFixed(2);
  section.profiles.push({
    explains: section.metrics.map((m) => m.id),
    title: `per object, medians in ms over ${iterations} iterations (CPU 0); kernel BTF parse once per process: ${vmlinuxMs.toFixed(1)} ms`,
    lines: reports.map(
      (r) =>
        `${relative("bpf/obj", r.object)}: parse ${f(r.median.parse)}, relocate+link ${f(r.median.relocate)}, load ours ${f(r.median.loadOurs)}, load kernel ${f(r.median.loadKernel)}${r.refused.length ? `; refused here, not timed: ${r.refused.join(", ")}` : ""}`,
    ),
  });
  section.notes.push(
    "ours = ELF+BTF parse and the rest of newCollection (BTF fix-up, attrs, CO-RE, linking); kernel = the BTF_LOAD, MAP_CREATE and PROG_LOAD (verifier) syscalls, timed around the calls",
  );
});
