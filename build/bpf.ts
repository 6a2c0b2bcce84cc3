// `npm run build:bpf`: compiles every bpf/*.c to bpf/obj/<name>.o and every
// bpf/testdata/*.c to bpf/obj/testdata/<name>.o with Debian clang 14.
// `--check` builds into a temp dir and fails, listing each stale or missing object and
// each object without a source; `npm test` and CI run it so committed objects never drift.
//
// Objects must be byte-identical from any checkout folder: clang runs in the repo root on
// relative paths with -fdebug-compilation-dir=., so no absolute path reaches DWARF or the
// BTF line info. DWARF is then stripped (llvm-strip -g removes only .debug_* and their
// relocations; .BTF, .BTF.ext and the symbol table stay), which halves the objects that
// end up embedded in the binary.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";

const root = join(import.meta.dir, "..");

export interface BpfSource {
  /** source path relative to the repo root, e.g. "bpf/testdata/ringbuf.c" */
  source: string;
  /** object path relative to the repo root, e.g. "bpf/obj/testdata/ringbuf.o" */
  object: string;
}

export class BpfBuildError extends Error {
  override name = "BpfBuildError";
}

/** Source folders and where their objects go (relative to the repo root). */
const groups: Array<{ dir: string; out: string }> = [
  { dir: "bpf", out: "bpf/obj" },
  { dir: "bpf/testdata", out: "bpf/obj/testdata" },
];

function cFiles(dir: string): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".c"))
    .map((e) => e.name)
    .sort();
}

/** Every BPF source and its object, sorted (bpf/*.c first, then bpf/testdata/*.c). */
export function listSources(): BpfSource[] {
  return groups.flatMap(({ dir, out }) =>
    cFiles(dir).map((f) => ({ source: `${dir}/${f}`, object: `${out}/${basename(f, ".c")}.o` })),
  );
}

/** Objects present under bpf/obj (relative paths), for finding ones without a source. */
function listObjects(): string[] {
  return groups.flatMap(({ out }) => {
    const abs = join(root, out);
    if (!existsSync(abs)) return [];
    return readdirSync(abs, { withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(".o"))
      .map((e) => `${out}/${e.name}`);
  });
}

/** Prefer the versioned binaries: the objects are pinned to clang 14's output. */
function tool(name: string): string {
  for (const candidate of [`/usr/bin/${name}-14`, `/usr/lib/llvm-14/bin/${name}`, `/usr/bin/${name}`]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new BpfBuildError(`${name} not found: install Debian's clang and llvm packages (build/system.ts does it as root)`);
}

export function clangVersion(): string {
  const r = spawnSync(tool("clang"), ["--version"], { encoding: "utf8" });
  return (r.stdout ?? "").split("\n")[0] ?? "unknown";
}

/** The exact compiler command for one source, run in the repo root. */
export function clangArgs(src: BpfSource, outFile: string): string[] {
  return [
    "-target", "bpf", "-O2", "-g", "-Wall", "-Werror",
    "-fdebug-compilation-dir=.", `-fdebug-prefix-map=${root}=.`,
    "-I", "bpf/include",
    "-c", src.source, "-o", outFile,
  ];
}

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? 1, stderr }));
    child.on("error", (e) => resolve({ code: 1, stderr: String(e) }));
  });
}

/** Compiles one source to outFile (absolute) and strips DWARF. */
async function compileOne(src: BpfSource, outFile: string): Promise<void> {
  const cc = await run(tool("clang"), clangArgs(src, outFile));
  if (cc.code !== 0) throw new BpfBuildError(`compile ${src.source}:\n${cc.stderr.trimEnd()}`);
  const strip = await run(tool("llvm-strip"), ["-g", outFile]);
  if (strip.code !== 0) throw new BpfBuildError(`strip ${src.source}:\n${strip.stderr.trimEnd()}`);
}

/** Runs jobs with at most `limit` in flight; collects every failure instead of stopping at the first. */
async function pool<T>(items: T[], limit: number, job: (item: T) => Promise<void>): Promise<Error[]> {
  const errors: Error[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await job(item);
      } catch (e) {
        errors.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  return errors;
}

/** Compiles every source into `outRoot` (same relative layout as the repo). */
async function compileAll(outRoot: string, sources: BpfSource[]): Promise<void> {
  for (const { out } of groups) mkdirSync(join(outRoot, out), { recursive: true });
  const cpus = navigator.hardwareConcurrency || 2;
  const errors = await pool(sources, cpus, (s) => compileOne(s, join(outRoot, s.object)));
  if (errors.length > 0) throw new BpfBuildError(errors.map((e) => e.message).join("\n"));
}

function same(a: string, b: string): boolean {
  if (!existsSync(a) || !existsSync(b)) return false;
  return Buffer.compare(readFileSync(a), readFileSync(b)) === 0;
}

/** src/bpf/objects.generated.ts: one `with { type: "file" }` import per sensor object. */
const generatedPath = "src/bpf/objects.generated.ts";

export function generatedObjectsModule(sources: BpfSource[] = listSources()): string {
  const sensors = sources.filter((s) => s.object.startsWith("bpf/obj/") && !s.object.startsWith("bpf/obj/testdata/"));
  const lines = [
    "// Generated by build/bpf.ts from bpf/*.c: the sensor objects embedded in the binary.",
    "// Do not edit; `npm run build:bpf` rewrites it and `--check` fails when it is stale.",
  ];
  sensors.forEach((s, i) => lines.push(`import o${i} from "../../${s.object}" with { type: "file" };`));
  lines.push("", "export const objectFiles: Record<string, string> = {");
  sensors.forEach((s, i) => lines.push(`  ${JSON.stringify(basename(s.object, ".o"))}: o${i},`));
  lines.push("};", "");
  return lines.join("\n");
}

function generatedFresh(): boolean {
  const abs = join(root, generatedPath);
  return existsSync(abs) && readFileSync(abs, "utf8") === generatedObjectsModule();
}

export interface CheckResult {
  stale: string[];
  missing: string[];
  orphans: string[];
  /** objects.generated.ts does not list exactly the sensor objects */
  generatedStale: boolean;
}

/** Builds into a temp dir and compares with the committed objects. */
export async function checkBpf(): Promise<CheckResult> {
  const sources = listSources();
  const tmp = mkdtempSync(join(tmpdir(), "ward-bpf-check-"));
  try {
    await compileAll(tmp, sources);
    const result: CheckResult = { stale: [], missing: [], orphans: [], generatedStale: !generatedFresh() };
    for (const s of sources) {
      const committed = join(root, s.object);
      if (!existsSync(committed)) result.missing.push(s.object);
      else if (!same(committed, join(tmp, s.object))) result.stale.push(s.object);
    }
    const expected = new Set(sources.map((s) => s.object));
    result.orphans = listObjects().filter((o) => !expected.has(o)).sort();
    return result;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Builds every object in place; writes only objects whose bytes changed, removes orphans. */
export async function buildBpf(): Promise<{ written: string[]; removed: string[] }> {
  const sources = listSources();
  const tmp = mkdtempSync(join(tmpdir(), "ward-bpf-build-"));
  try {
    await compileAll(tmp, sources);
    const written: string[] = [];
    for (const s of sources) {
      const dest = join(root, s.object);
      const built = join(tmp, s.object);
      if (same(dest, built)) continue;
      mkdirSync(join(dest, ".."), { recursive: true });
      writeFileSync(dest, readFileSync(built));
      written.push(s.object);
    }
    const expected = new Set(sources.map((s) => s.object));
    const removed = listObjects().filter((o) => !expected.has(o));
    for (const o of removed) unlinkSync(join(root, o));
    if (!generatedFresh()) {
      writeFileSync(join(root, generatedPath), generatedObjectsModule());
      written.push(generatedPath);
    }
    return { written, removed };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const check = process.argv.includes("--check");
  try {
    if (check) {
      const r = await checkBpf();
      const problems = [
        ...r.stale.map((o) => `stale: ${o} (source changed; run npm run build:bpf)`),
        ...r.missing.map((o) => `missing: ${o} (not built; run npm run build:bpf)`),
        ...r.orphans.map((o) => `no source: ${o} (delete it or restore its .c)`),
        ...(r.generatedStale ? [`stale: ${generatedPath} (run npm run build:bpf)`] : []),
      ];
      if (problems.length > 0) {
        process.stderr.write(`bpf objects out of date (compiler: ${clangVersion()}):\n${problems.map((p) => `  ${p}`).join("\n")}\n`);
        process.exit(1);
      }
      process.stdout.write(`bpf objects fresh (${listSources().length} sources)\n`);
    } else {
      const r = await buildBpf();
      for (const o of r.written) process.stdout.write(`built ${o}\n`);
      for (const o of r.removed) process.stdout.write(`removed ${o} (no source)\n`);
      process.stdout.write(`bpf objects up to date (${listSources().length} sources, ${relative(process.cwd(), join(root, "bpf/obj")) || "."})\n`);
    }
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
