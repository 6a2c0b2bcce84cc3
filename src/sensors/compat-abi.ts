// Whether this kernel runs 32-bit (ia32) processes. Their syscalls never fire the
// syscalls/sys_exit_* tracepoints, so a check placed only there would miss them; callers
// use this to keep such checks exact. Asked of the kernel itself: a minimal i386 ELF is
// exec'd in a child. A kernel built without IA32 emulation, or with it switched off at
// boot (6.7+: ia32_emulation=), refuses the exec with ENOEXEC.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BASE = 0x08048000;
const EHDR = 52;
const PHDR = 32;
// mov eax, 1 (exit); xor ebx, ebx; int 0x80
const CODE = [0xb8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xdb, 0xcd, 0x80];

/** A static i386 executable that calls exit(0) through int 0x80. */
export function i386ExitElf(): Uint8Array {
  return i386Elf(() => CODE);
}

/**
 * A static i386 executable of one PT_LOAD (read + execute) whose code starts right after the
 * headers. code(entry) gets the code's load address, so it can point at data it carries
 * after its instructions (tests use it for an int 0x80 open of a path).
 */
export function i386Elf(code: (entry: number) => readonly number[]): Uint8Array {
  const entry = BASE + EHDR + PHDR;
  const bytes = code(entry);
  const size = EHDR + PHDR + bytes.length;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1 /* ELFCLASS32 */, 1 /* LSB */, 1 /* EV_CURRENT */]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 3, true); // EM_386
  v.setUint32(20, 1, true); // e_version
  v.setUint32(24, entry, true); // e_entry
  v.setUint32(28, EHDR, true); // e_phoff
  v.setUint16(40, EHDR, true); // e_ehsize
  v.setUint16(42, PHDR, true); // e_phentsize
  v.setUint16(44, 1, true); // e_phnum
  v.setUint32(EHDR + 0, 1, true); // PT_LOAD
  v.setUint32(EHDR + 4, 0, true); // p_offset
  v.setUint32(EHDR + 8, BASE, true); // p_vaddr
  v.setUint32(EHDR + 12, BASE, true); // p_paddr
  v.setUint32(EHDR + 16, size, true); // p_filesz
  v.setUint32(EHDR + 20, size, true); // p_memsz
  v.setUint32(EHDR + 24, 5, true); // PF_R | PF_X
  v.setUint32(EHDR + 28, 0x1000, true); // p_align
  b.set(bytes, EHDR + PHDR);
  return b;
}

let cached: { possible: boolean; reason: string } | undefined;

/**
 * possible: 32-bit processes can run here (or it could not be ruled out: then true, so a
 * caller keeps its exact but costlier placement). reason says what the kernel answered.
 */
export function compatProcessesPossible(): { possible: boolean; reason: string } {
  if (cached) return cached;
  if (process.arch !== "x64") return (cached = { possible: false, reason: `no ia32 ABI on ${process.arch}` });
  const dir = mkdtempSync(join(tmpdir(), "ward-ia32-"));
  try {
    const file = join(dir, "exit32");
    writeFileSync(file, i386ExitElf());
    chmodSync(file, 0o700);
    const r = spawnSync(file, [], { timeout: 5000 });
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    if (code === "ENOEXEC") cached = { possible: false, reason: "the kernel refuses i386 executables (ENOEXEC): IA32 emulation is off" };
    else if (r.status === 0) cached = { possible: true, reason: "an i386 executable ran: IA32 emulation is on" };
    else cached = { possible: true, reason: `could not rule out i386 processes (${code ?? (r.signal ? `signal ${r.signal}` : `exit ${r.status}`)})` };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
