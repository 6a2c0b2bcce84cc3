// 32-bit (int 0x80) openers, to check that a guard placement sees compat syscalls: x86 never
// fires the syscalls/sys_exit_* tracepoints for them. Built as bytes (no gcc -m32 needed).
import { chmodSync, writeFileSync } from "node:fs";
import { i386Elf } from "../../src/sensors/compat-abi.ts";

const u32le = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
const NR32_OPEN = 5;
const NR32_OPENAT = 295;
const AT_FDCWD = -100;

/**
 * Writes an executable that opens `path` read-only through the i386 open(2) or openat(2)
 * (AT_FDCWD) and exits with the result's low byte: the fd (3) on success, 256 - errno on
 * failure. A guard that catches the open kills it first.
 */
export function writeCompatOpener(file: string, path: string, call: "open" | "openat"): void {
  const elf = i386Elf((entry) => {
    const tail = [
      0x89, 0xc3, // mov ebx, eax      (exit status: the fd or -errno)
      0xb8, ...u32le(1), // mov eax, 1 (exit)
      0xcd, 0x80, // int 0x80
    ];
    // the path follows the code; its address depends on the code's length, which does not
    const head = (pathAt: number): number[] =>
      call === "open"
        ? [
            0xb8, ...u32le(NR32_OPEN), // mov eax, 5
            0xbb, ...u32le(pathAt), // mov ebx, path
            0x31, 0xc9, // xor ecx, ecx  (O_RDONLY)
            0x31, 0xd2, // xor edx, edx
            0xcd, 0x80, // int 0x80
          ]
        : [
            0xb8, ...u32le(NR32_OPENAT), // mov eax, 295
            0xbb, ...u32le(AT_FDCWD >>> 0), // mov ebx, AT_FDCWD
            0xb9, ...u32le(pathAt), // mov ecx, path
            0x31, 0xd2, // xor edx, edx  (O_RDONLY)
            0x31, 0xf6, // xor esi, esi
            0xcd, 0x80, // int 0x80
          ];
    const codeLength = head(0).length + tail.length;
    return [...head(entry + codeLength), ...tail, ...new TextEncoder().encode(path), 0];
  });
  writeFileSync(file, elf);
  chmodSync(file, 0o755);
}
