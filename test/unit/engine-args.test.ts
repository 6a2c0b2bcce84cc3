// matchArgs operators on integer, string, file and capability arguments: the engine's
// userspace decision over the compiled tables, against Tetragon's semantics.
import { describe, expect, test } from "bun:test";
import { fileRuleSets, type CompiledPolicy } from "../../src/policy/engine.ts";
import { argMatcher, compileMutated, compileYaml, decide, firstSelector, hits, kprobePolicy } from "./engine-helpers.ts";

describe("integer operators", () => {
  test("Equal: any of the values; NotEqual: none of them", () => {
    const eq = argMatcher("int", "Equal", ["1", "0x10", "-1"]);
    expect(hits(eq, { int: 1 })).toBe(true);
    expect(hits(eq, { int: 16 })).toBe(true);
    expect(hits(eq, { int: -1 })).toBe(true);
    expect(hits(eq, { int: 2 })).toBe(false);
    const ne = argMatcher("int", "NotEqual", ["1", "2"]);
    expect(hits(ne, { int: 1 })).toBe(false);
    expect(hits(ne, { int: 3 })).toBe(true);
  });

  test("int is read as 32 bits: 0xffffffff from the kernel is -1", () => {
    const eq = argMatcher("int", "Equal", ["-1"]);
    expect(hits(eq, { int: 0xffffffff })).toBe(true);
    const u = argMatcher("uint32", "Equal", ["4294967295"]);
    expect(hits(u, { int: -1 })).toBe(true);
    expect(hits(u, { int: 0x1ffffffffn })).toBe(true);
  });

  test("octal and hex values use Go's base prefixes", () => {
    const eq = argMatcher("uint32", "Equal", ["010", "0x1F"]);
    expect(hits(eq, { int: 8 })).toBe(true);
    expect(hits(eq, { int: 31 })).toBe(true);
    expect(hits(eq, { int: 10 })).toBe(false);
  });

  test("GreaterThan / LessThan compare signed for signed types, unsigned for unsigned", () => {
    const gt = argMatcher("int", "GreaterThan", ["-5"]);
    expect(hits(gt, { int: -4 })).toBe(true);
    expect(hits(gt, { int: -5 })).toBe(false);
    expect(hits(gt, { int: -6 })).toBe(false);
    const lt = argMatcher("uint64", "LessThan", ["100"]);
    expect(hits(lt, { int: 99 })).toBe(true);
    expect(hits(lt, { int: 100 })).toBe(false);
    expect(hits(lt, { int: -1 })).toBe(false); // 2^64-1 unsigned
  });

  test("Mask: any bit in common with any value", () => {
    const m = argMatcher("uint32", "Mask", ["0x3", "0x100"]);
    expect(hits(m, { int: 2 })).toBe(true);
    expect(hits(m, { int: 0x100 })).toBe(true);
    expect(hits(m, { int: 0x4 })).toBe(false);
    expect(hits(m, { int: 0 })).toBe(false);
  });

  test("InMap with ranges; NotInMap", () => {
    const m = argMatcher("uint64", "InMap", ["1", "10:20", "100"]);
    for (const v of [1, 10, 15, 20, 100]) expect(hits(m, { int: v })).toBe(true);
    for (const v of [0, 9, 21, 99, 101]) expect(hits(m, { int: v })).toBe(false);
    const n = argMatcher("uint64", "NotInMap", ["5:6"]);
    expect(hits(n, { int: 5 })).toBe(false);
    expect(hits(n, { int: 7 })).toBe(true);
  });

  test("InMap on a signed type: negative values, ranges crossing 0, reversed ranges swapped", () => {
    // The validator refuses a reversed range; the engine's behaviour is Tetragon's.
    const m = compileMutated(kprobePolicy(`    - index: 0\n      type: "int64"`, `    - matchArgs:\n      - index: 0\n        operator: "InMap"\n        values: ["1"]`), (p) => { const a = firstSelector(p).matchArgs[0]; if (a) a.values = ["-3:2", "10:8"]; });
    for (const v of [-3, -1, 0, 2, 8, 9, 10]) expect(hits(m, { int: v })).toBe(true);
    for (const v of [-4, 3, 7, 11]) expect(hits(m, { int: v })).toBe(false);
    expect(m.tables.intSet.count).toBe(9);
  });

  test("InRange / NotInRange are inclusive and signed-aware", () => {
    const r = argMatcher("int", "InRange", ["-10:-1", "5:5"]);
    expect(hits(r, { int: -10 })).toBe(true);
    expect(hits(r, { int: -1 })).toBe(true);
    expect(hits(r, { int: 0 })).toBe(false);
    expect(hits(r, { int: 5 })).toBe(true);
    const nr = argMatcher("int", "NotInRange", ["0:9"]);
    expect(hits(nr, { int: 9 })).toBe(false);
    expect(hits(nr, { int: 10 })).toBe(true);
  });

  test("an argument the kernel could not read matches nothing, NotEqual included", () => {
    const ne = argMatcher("int", "NotEqual", ["1"]);
    expect(decide(ne, { args: [] }).matched).toBe(false);
  });
});

describe("string operators", () => {
  test("Equal is exact: no prefix, no extension", () => {
    const eq = argMatcher("string", "Equal", ["/etc/passwd", "/etc/shadow"]);
    expect(hits(eq, { string: "/etc/passwd" })).toBe(true);
    expect(hits(eq, { string: "/etc/shadow" })).toBe(true);
    expect(hits(eq, { string: "/etc/passw" })).toBe(false);
    expect(hits(eq, { string: "/etc/passwd2" })).toBe(false);
  });

  test("Equal across size classes: 16 and 17 bytes land in different maps and both match", () => {
    const a16 = "a".repeat(16);
    const a17 = "a".repeat(17);
    const c = argMatcher("string", "Equal", [a16, a17]);
    expect(c.tables.strEq16.count).toBe(1);
    expect(c.tables.strEq32.count).toBe(1);
    expect(hits(c, { string: a16 })).toBe(true);
    expect(hits(c, { string: a17 })).toBe(true);
    expect(hits(c, { string: "a".repeat(15) })).toBe(false);
  });

  test("Equal at the 4096-byte maximum", () => {
    const big = "x".repeat(4096);
    const c = argMatcher("string", "Equal", [big]);
    expect(c.tables.strEq4096.count).toBe(1);
    expect(hits(c, { string: big })).toBe(true);
    expect(hits(c, { string: `${big}x` })).toBe(false);
  });

  test("NotEqual: none of the values", () => {
    const ne = argMatcher("string", "NotEqual", ["a", "b"]);
    expect(hits(ne, { string: "a" })).toBe(false);
    expect(hits(ne, { string: "c" })).toBe(true);
  });

  test("Prefix: a prefix equal to the whole value matches; longer values do not", () => {
    const p = argMatcher("string", "Prefix", ["/etc/", "/usr/lib"]);
    expect(hits(p, { string: "/etc/" })).toBe(true);
    expect(hits(p, { string: "/etc/passwd" })).toBe(true);
    expect(hits(p, { string: "/usr/lib64/x" })).toBe(true);
    expect(hits(p, { string: "/etc" })).toBe(false);
    expect(hits(p, { string: "/usr/li" })).toBe(false);
  });

  test("Prefix: the empty prefix matches everything (the validator warns; the engine keeps the semantics)", () => {
    const p = compileMutated(
      kprobePolicy(`    - index: 0\n      type: "string"`, `    - matchArgs:\n      - index: 0\n        operator: "Prefix"\n        values: ["x"]`),
      (pol) => { const m = firstSelector(pol).matchArgs[0]; if (m !== undefined) m.values = [""]; },
    );
    expect(hits(p, { string: "" })).toBe(true);
    expect(hits(p, { string: "anything" })).toBe(true);
  });

  test("Prefix of 252 bytes (WARD_PREFIX_MAX) matches a longer argument (the kernel keys on its first 252 bytes)", () => {
    const pre = "p".repeat(252);
    const p = argMatcher("string", "Prefix", [pre]);
    expect(hits(p, { string: `${pre}tail` })).toBe(true);
    expect(hits(p, { string: pre.slice(0, 251) })).toBe(false);
  });

  test("NotPrefix", () => {
    const p = argMatcher("string", "NotPrefix", ["/tmp/"]);
    expect(hits(p, { string: "/tmp/x" })).toBe(false);
    expect(hits(p, { string: "/var/tmp/x" })).toBe(true);
  });

  test("Postfix / NotPostfix over the reversed tail", () => {
    const p = argMatcher("string", "Postfix", [".so", "/id_rsa"]);
    expect(hits(p, { string: "/lib/libc.so" })).toBe(true);
    expect(hits(p, { string: ".so" })).toBe(true);
    expect(hits(p, { string: "/root/.ssh/id_rsa" })).toBe(true);
    expect(hits(p, { string: "/lib/libc.so.6" })).toBe(false);
    const n = argMatcher("string", "NotPostfix", [".log"]);
    expect(hits(n, { string: "/var/a.log" })).toBe(false);
    expect(hits(n, { string: "/var/a.txt" })).toBe(true);
  });

  test("Postfix of 127 bytes matches a long argument by its last 128 bytes", () => {
    const post = "q".repeat(127);
    const p = argMatcher("string", "Postfix", [post]);
    expect(hits(p, { string: `${"z".repeat(300)}${post}` })).toBe(true);
    expect(hits(p, { string: `${post}z` })).toBe(false);
  });

  test("empty value lists: Equal matches nothing, NotEqual everything", () => {
    const p = policyEmpty("Equal");
    expect(hits(p, { string: "x" })).toBe(false);
    const n = policyEmpty("NotEqual");
    expect(hits(n, { string: "x" })).toBe(true);
  });

  test("SubString and SubStringIgnCase", () => {
    const s = argMatcher("string", "SubString", ["passwd", "shadow"]);
    expect(hits(s, { string: "/etc/passwd-" })).toBe(true);
    expect(hits(s, { string: "/etc/gshadow" })).toBe(true);
    expect(hits(s, { string: "/etc/PASSWD" })).toBe(false);
    const i = argMatcher("string", "SubStringIgnCase", ["Passwd"]);
    expect(hits(i, { string: "/etc/PASSWD" })).toBe(true);
    expect(hits(i, { string: "/etc/group" })).toBe(false);
  });

  test("bytes are compared exactly, invalid UTF-8 included", () => {
    const eq = argMatcher("char_buf", "Equal", ["ab"]);
    expect(hits(eq, { string: new Uint8Array([0x61, 0x62]) })).toBe(true);
    expect(hits(eq, { string: new Uint8Array([0x61, 0xff]) })).toBe(false);
  });
});

function policyEmpty(op: string): CompiledPolicy {
  return compileMutated(
    kprobePolicy(`    - index: 0\n      type: "string"`, `    - matchArgs:\n      - index: 0\n        operator: "${op}"\n        values: ["x"]`),
    (p) => { const m = firstSelector(p).matchArgs[0]; if (m !== undefined) m.values = []; },
  );
}

describe("file and path arguments", () => {
  test("Equal on a file path also lists the set for inode resolution", () => {
    const c = argMatcher("file", "Equal", ["/etc/shadow", "/etc/gshadow"]);
    expect(c.tables.fileSets.count).toBe(1);
    expect(fileRuleSets(c)).toEqual([{ setId: 1, paths: ["/etc/gshadow", "/etc/shadow"].sort((a, b) => a.length - b.length) }]);
    expect(fileRuleSets(argMatcher("string", "Equal", ["/etc/shadow"]))).toEqual([]);
    expect(hits(c, { file: { path: "/etc/shadow" } })).toBe(true);
    expect(hits(c, { file: { path: "/etc/shadow.bak" } })).toBe(false);
  });

  test("FileType / NotFileType", () => {
    const c = argMatcher("file", "FileType", ["reg", "lnk"]);
    expect(hits(c, { file: { path: "/x", type: "reg" } })).toBe(true);
    expect(hits(c, { file: { path: "/x", type: "lnk" } })).toBe(true);
    expect(hits(c, { file: { path: "/x", type: "dir" } })).toBe(false);
    const n = argMatcher("path", "NotFileType", ["dir"]);
    expect(hits(n, { file: { path: "/x", type: "dir" } })).toBe(false);
    expect(hits(n, { file: { path: "/x", type: "reg" } })).toBe(true);
  });
});

describe("capability-set arguments", () => {
  test("Equal with a number or a capability name", () => {
    const c = argMatcher("cap_effective", "NotEqual", ["0"]);
    expect(hits(c, { int: 0n })).toBe(false);
    expect(hits(c, { int: 1n << 21n })).toBe(true);
    const n = argMatcher("cap_effective", "Equal", ["CAP_SYS_ADMIN"]);
    expect(hits(n, { int: 1n << 21n })).toBe(true);
    expect(hits(n, { int: (1n << 21n) | 1n })).toBe(false);
    const both = compileMutated(kprobePolicy(`    - index: 0\n      type: "cap_effective"`, `    - matchArgs:\n      - index: 0\n        operator: "Equal"\n        values: ["0"]`), (p) => { const m = firstSelector(p).matchArgs[0]; if (m) m.values = ["CAP_SYS_ADMIN|CAP_CHOWN"]; });
    expect(hits(both, { int: (1n << 21n) | 1n })).toBe(true);
    expect(hits(both, { int: 1n << 21n })).toBe(false);
  });

  const gainedYaml = kprobePolicy(
    `    - index: 0\n      type: "cap_permitted"\n    - index: 1\n      type: "cap_permitted"`,
    `    - matchArgs:\n      - args: [0, 1]\n        operator: "CapabilitiesGained"`,
  );
  const admin = 1n << 21n;
  const raw = 1n << 13n;

  test("CapabilitiesGained: any capability in new and not in old", () => {
    const c = compileYaml(gainedYaml);
    expect(decide(c, { args: [{ int: admin }, { int: 0n }] }).matched).toBe(true);
    expect(decide(c, { args: [{ int: admin }, { int: admin }] }).matched).toBe(false);
    expect(decide(c, { args: [{ int: 0n }, { int: admin }] }).matched).toBe(false);
  });

  test("CapabilitiesGained narrowed by values", () => {
    const c = compileMutated(gainedYaml, (p) => { const m = firstSelector(p).matchArgs[0]; if (m !== undefined) m.values = ["CAP_SYS_ADMIN"]; });
    expect(decide(c, { args: [{ int: raw | admin }, { int: raw }] }).matched).toBe(true);
    expect(decide(c, { args: [{ int: raw | admin }, { int: admin }] }).matched).toBe(false);
  });
});
