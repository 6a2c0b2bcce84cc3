// The i386 probe behind the guard's open-exit placement: the ELF it builds is well formed,
// and the kernel's answer about 32-bit processes matches what running one really does.
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compatProcessesPossible, i386ExitElf } from "../../src/sensors/compat-abi.ts";

test("the probe executable is a 32-bit little-endian i386 ET_EXEC with one PT_LOAD covering it", () => {
  const b = i386ExitElf();
  const v = new DataView(b.buffer);
  expect([...b.slice(0, 7)]).toEqual([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  expect(v.getUint16(16, true)).toBe(2);
  expect(v.getUint16(18, true)).toBe(3);
  expect(v.getUint32(52, true)).toBe(1);
  expect(v.getUint32(52 + 16, true)).toBe(b.length);
  expect(v.getUint32(24, true) - v.getUint32(52 + 8, true)).toBe(84); // entry = the code after the headers
});

test("compatProcessesPossible agrees with exec'ing an i386 program here", () => {
  const dir = mkdtempSync(join(tmpdir(), "ward-ia32-test-"));
  try {
    const f = join(dir, "x");
    writeFileSync(f, i386ExitElf());
    chmodSync(f, 0o700);
    const r = spawnSync(f, []);
    const refused = (r.error as NodeJS.ErrnoException | undefined)?.code === "ENOEXEC";
    const answer = compatProcessesPossible();
    expect(answer.possible).toBe(!refused);
    if (!refused) expect(r.status).toBe(0); // where it runs, the probe exits 0 via int 0x80
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
