// The blob the engine writes must be the bytes the BPF side reads: every size and offset
// the engine uses (engineLayout(), from the compiled WASM) is compared with what clang
// computes from bpf/include/ward_filter.h, for the host and for the BPF target; every
// enum constant in engine-as/assembly/layout.ts is compared with the header's. Also:
// the same policy always produces the same bytes, and the framing is what the header says.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BinaryInterner, compilePolicy, engineLayout, engineLayoutVersion, PolicyCompileError } from "../../src/policy/engine.ts";
import { policyFrom } from "./engine-helpers.ts";

const root = join(import.meta.dir, "..", "..");
const header = join(root, "bpf", "include", "ward_filter.h");

const SECTION_ENUM: Record<string, string> = {
  hooks: "WARD_SEC_HOOKS", strEq: "WARD_SEC_STR_EQ_BASE", strPrefix: "WARD_SEC_STR_PREFIX", strPostfix: "WARD_SEC_STR_POSTFIX",
  intSet: "WARD_SEC_INT_SET", addrLpm: "WARD_SEC_ADDR_LPM", binNames: "WARD_SEC_BIN_NAMES", binSet: "WARD_SEC_BIN_SET",
  substr: "WARD_SEC_SUBSTR", follow: "WARD_SEC_FOLLOW", strings: "WARD_SEC_STRINGS", fileSets: "WARD_SEC_FILE_SETS",
};

/** The C expression that computes a layoutInfo key. */
function cExpr(key: string): string {
  if (key === "version") return "WARD_FILTER_LAYOUT_VERSION";
  if (key === "magic") return "WARD_FILTER_MAGIC";
  if (key.startsWith("sizeof.")) return `sizeof(struct ${key.slice(7)})`;
  if (key.startsWith("const.")) return key.slice(6);
  if (key.startsWith("sec.")) {
    const e = SECTION_ENUM[key.slice(4)];
    if (e === undefined) throw new Error(`no enum for ${key}`);
    return e;
  }
  const dot = key.indexOf(".");
  return `__builtin_offsetof(struct ${key.slice(0, dot)}, ${key.slice(dot + 1)})`;
}

/** Enum/define constants of layout.ts that the header must define under WARD_<NAME>. */
function layoutTsConstants(): Map<string, number> {
  const src = readFileSync(join(root, "engine-as", "assembly", "layout.ts"), "utf8");
  const out = new Map<string, number>();
  const prefixes = /^(SEC|ARG|SRC|ARGF|MK|OP|VK|MF|ACT|AF|SF|HOOK|HF|BF|MAX|STR)_/;
  for (const m of src.matchAll(/^export const ([A-Z0-9_]+)(?::\s*\w+)?\s*=\s*(0x[0-9a-fA-F]+|\d+);/gm)) {
    const name = m[1] ?? "";
    // Struct sizes/offsets that share a prefix are checked through engineLayout() instead.
    if (name === "ARG_CFG_SIZE" || name === "STR_EQ_HDR") continue;
    if (prefixes.test(name) || ["LPM_DATA_MAX", "PREFIX_MAX", "POSTFIX_MAX", "EQ_MAX", "BIN_PATH_MAX", "SUBSTR_MAX", "NS_TYPES", "SLOT_RETURN"].includes(name)) {
      out.set(`WARD_${name}`, Number(m[2]));
    }
  }
  out.set("WARD_FILTER_MAGIC", Number(/export const MAGIC: u32 = (0x[0-9a-f]+)/.exec(src)?.[1]));
  out.set("WARD_FILTER_LAYOUT_VERSION", Number(/export const LAYOUT_VERSION: u16 = (\d+)/.exec(src)?.[1]));
  return out;
}

function clang(args: string[]): { status: number; out: string } {
  const r = spawnSync("clang", args, { encoding: "utf8" });
  if (r.error) throw new Error(`clang is needed for the layout test: ${r.error.message}`);
  return { status: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

describe("ward_filter.h key helpers", () => {
  test("ward_str_class() puts every length where the engine puts it", () => {
    const lengths = [1, 15, 16, 17, 31, 32, 33, 64, 65, 128, 129, 256, 257, 512, 513, 1024, 1025, 2048, 2049, 4095, 4096];
    // The engine: one Equal value per length; the section each key lands in is its class.
    const values = lengths.map((n, i) => String.fromCharCode(97 + (i % 26)).repeat(n));
    const p = policyFrom(POLICY_TEMPLATE);
    const m = p.spec.kprobes[0]?.selectors[0]?.matchArgs[0];
    if (m === undefined) throw new Error("test policy shape");
    m.operator = "Equal";
    m.values = values;
    const c = compilePolicy(p);
    const engineClass = new Map<number, number>();
    for (let cls = 0; cls < 9; cls++) {
      const sec = c.tables[`strEq${16 << cls}` as keyof typeof c.tables];
      const dv = new DataView(sec.bytes.buffer, sec.bytes.byteOffset, sec.bytes.byteLength);
      for (let i = 0; i < sec.count; i++) engineClass.set(dv.getUint32(i * sec.entrySize + 4, true), cls);
    }
    const dir = mkdtempSync(join(tmpdir(), "ward-class-"));
    try {
      writeFileSync(join(dir, "c.c"), [
        "#include <stdio.h>",
        `#include "${header}"`,
        "int main(void) {",
        ...lengths.map((n) => `  printf("%d %d %d\\n", ${n}, ward_str_class(${n}), WARD_STR_LPM_PREFIXLEN(${n}));`),
        "  return 0;",
        "}",
      ].join("\n"));
      const cc = clang(["-O0", "-Wall", "-Werror", "-o", join(dir, "c"), join(dir, "c.c")]);
      expect(cc.status).toBe(0);
      const out = spawnSync(join(dir, "c"), { encoding: "utf8" }).stdout.trim().split("\n").map((l) => l.split(" ").map(Number));
      for (const [n = 0, cls = -1, plen = 0] of out) {
        expect({ n, cls }).toEqual({ n, cls: engineClass.get(n) ?? -2 });
        expect(plen).toBe(32 + 8 * n);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("LPM keys and the kernel's key limit", () => {
  const layout = engineLayout();
  const at = (k: string): number => layout.get(k) ?? -1;

  test("every LPM key holds at most LPM_DATA_SIZE_MAX (256) bytes after prefixlen; the prefix key uses all of it", () => {
    // The kernel (kernel/bpf/lpm_trie.c) refuses key_size - 4 > 256 at map creation.
    expect(at("const.WARD_LPM_DATA_MAX")).toBe(256);
    for (const k of ["ward_str_prefix_key", "ward_str_postfix_key", "ward_addr_key"]) {
      expect({ key: k, data: at(`sizeof.${k}`) - 4 <= 256 }).toEqual({ key: k, data: true });
    }
    expect(at("sizeof.ward_str_prefix_key")).toBe(4 + 256);
    expect(at("const.WARD_PREFIX_MAX")).toBe(256 - 4);
    expect(at("ward_str_prefix_key.data") + at("const.WARD_PREFIX_MAX")).toBe(at("sizeof.ward_str_prefix_key"));
  });

  const prefixPolicy = (value: string) => {
    const p = policyFrom(POLICY_TEMPLATE);
    const m = p.spec.kprobes[0]?.selectors[0]?.matchArgs[0];
    if (m === undefined) throw new Error("test policy shape");
    m.values = [value];
    return p;
  };

  test("a Prefix value of exactly WARD_PREFIX_MAX bytes compiles to a full key", () => {
    const c = compilePolicy(prefixPolicy("/" + "a".repeat(251)));
    const pk = c.tables.strPrefix;
    expect(pk.count).toBe(1);
    expect(pk.entrySize).toBe(at("sizeof.ward_str_prefix_key"));
    expect(new DataView(pk.bytes.buffer, pk.bytes.byteOffset).getUint32(0, true)).toBe(32 + 8 * 252);
  });

  test("a longer Prefix value (the validator bypassed) is a compile error naming the path and the limit, not a truncated key", () => {
    let err: unknown;
    try {
      compilePolicy(prefixPolicy("/" + "a".repeat(252)));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyCompileError);
    const problems = (err as PolicyCompileError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]?.path).toBe("spec.kprobes[0].selectors[0].matchArgs[0].values[0]");
    expect(problems[0]?.message).toContain("Prefix value is 253 bytes; at most 252");
  });
});

describe("ward_filter.h layout", () => {
  const layout = engineLayout();
  const consts = layoutTsConstants();

  test("every engine offset and size equals clang's for the host, and the BPF target agrees", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-layout-"));
    try {
      const keys = [...layout.keys()];
      const prog = [
        "#include <stdio.h>",
        `#include "${header}"`,
        "int main(void) {",
        ...keys.map((k) => `  printf("%s=%llu\\n", "${k}", (unsigned long long)(${cExpr(k)}));`),
        ...[...consts.keys()].map((k) => `  printf("%s=%llu\\n", "${k}", (unsigned long long)(${k}));`),
        "  return 0;",
        "}",
      ].join("\n");
      writeFileSync(join(dir, "layout.c"), prog);
      const exe = join(dir, "layout");
      const cc = clang(["-O0", "-Wall", "-Werror", "-o", exe, join(dir, "layout.c")]);
      expect(cc.out).toBe("");
      expect(cc.status).toBe(0);
      const run = spawnSync(exe, { encoding: "utf8" });
      const got = new Map(run.stdout.trim().split("\n").map((l) => { const i = l.indexOf("="); return [l.slice(0, i), Number(l.slice(i + 1))] as const; }));
      for (const k of keys) expect({ key: k, value: got.get(k) }).toEqual({ key: k, value: layout.get(k) });
      for (const [k, v] of consts) expect({ key: k, value: got.get(k) }).toEqual({ key: k, value: v });

      // Same numbers under -target bpf (what the BPF programs are built with).
      const asserts = [
        // The kernel types the header needs, without parsing all of vmlinux.h.
        "#define __VMLINUX_H__",
        "typedef unsigned char __u8; typedef unsigned short __u16; typedef unsigned int __u32;",
        "typedef int __s32; typedef unsigned long long __u64;",
        `#include "${header}"`,
        ...keys.map((k, i) => `_Static_assert((${cExpr(k)}) == ${layout.get(k)}u, "k${i}");`),
      ].join("\n");
      writeFileSync(join(dir, "bpf.c"), asserts);
      const bpf = clang(["-target", "bpf", "-O2", "-c", "-o", join(dir, "bpf.o"), join(dir, "bpf.c")]);
      expect(bpf.out).toBe("");
      expect(bpf.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("the layout covers the structs the kernel reads", () => {
    for (const s of ["ward_hook_config", "ward_selector", "ward_matcher", "ward_action", "ward_arg_cfg", "ward_str_prefix_key", "ward_addr_key", "ward_int_key", "ward_bin_set_key", "ward_blob_header", "ward_section"]) {
      expect(layout.has(`sizeof.${s}`)).toBe(true);
    }
    expect(engineLayoutVersion()).toBe(consts.get("WARD_FILTER_LAYOUT_VERSION") ?? -1);
  });
});

const POLICY_TEMPLATE = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: classes
spec:
  kprobes:
  - call: "test_fn"
    syscall: false
    args:
    - index: 0
      type: "string"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values: ["x"]
`;

const POLICY = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: det
spec:
  kprobes:
  - call: "security_file_open"
    syscall: false
    args:
    - index: 0
      type: "file"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values: ["/etc/", "/root/.ssh/"]
      - index: 0
        operator: "NotEqual"
        values: ["/etc/hosts", "/etc/resolv.conf"]
      matchBinaries:
      - operator: "NotIn"
        values: ["/usr/sbin/sshd", "/usr/bin/sudo"]
      matchActions:
      - action: Override
        argError: -1
  - call: "tcp_connect"
    syscall: false
    args:
    - index: 0
      type: "sock"
    selectors:
    - matchArgs:
      - index: 0
        operator: "NotDAddr"
        values: ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]
`;

describe("blob framing and determinism", () => {
  test("the same policy compiles to the same bytes, also with a fresh interner", () => {
    const a = compilePolicy(policyFrom(POLICY), { binaries: new BinaryInterner() });
    const b = compilePolicy(policyFrom(POLICY), { binaries: new BinaryInterner() });
    expect(Buffer.from(a.blob).equals(Buffer.from(b.blob))).toBe(true);
    const c = compilePolicy(policyFrom(POLICY));
    const d = compilePolicy(policyFrom(POLICY));
    expect(Buffer.from(c.blob).equals(Buffer.from(d.blob))).toBe(true);
  });

  test("header: magic, version, sizes, bases; sections 8-aligned and inside the blob", () => {
    const c = compilePolicy(policyFrom(POLICY), { setIdBase: 1000, hookIdBase: 7 });
    const layout = engineLayout();
    const dv = new DataView(c.blob.buffer, c.blob.byteOffset, c.blob.byteLength);
    const at = (k: string): number => layout.get(k) ?? -1;
    expect(dv.getUint32(0, true)).toBe(0x544c4657);
    expect(new TextDecoder().decode(c.blob.subarray(0, 4))).toBe("WFLT");
    expect(dv.getUint16(at("ward_blob_header.version"), true)).toBe(c.layoutVersion);
    expect(dv.getUint16(at("ward_blob_header.header_size"), true)).toBe(at("sizeof.ward_blob_header"));
    expect(dv.getUint32(at("ward_blob_header.total_size"), true)).toBe(c.blob.length);
    expect(dv.getUint32(at("ward_blob_header.n_hooks"), true)).toBe(2);
    expect(dv.getUint32(at("ward_blob_header.set_id_base"), true)).toBe(1000);
    expect(dv.getUint32(at("ward_blob_header.hook_id_base"), true)).toBe(7);
    for (const s of Object.values(c.tables)) {
      expect(s.bytes.byteOffset % 8).toBe(0);
      expect(s.bytes.length).toBe(s.count * s.entrySize);
    }
    expect(c.hooks.map((h) => h.hookId)).toEqual([7, 8]);
    // Four sets: the prefix set, the NotEqual set, the binary set, the address set.
    expect(c.setIds).toEqual({ base: 1000, end: 1004 });
    expect(dv.getUint32(at("ward_blob_header.set_id_end"), true)).toBe(1004);
    expect(c.followBits).toBe(0);
    // Set ids start at the base: the first prefix key's set_id.
    const pk = c.tables.strPrefix.bytes;
    expect(new DataView(pk.buffer, pk.byteOffset).getUint32(at("ward_str_prefix_key.set_id"), true)).toBe(1000);
  });

  test("LPM keys: prefixlen counts the set id and the value bits", () => {
    const c = compilePolicy(policyFrom(POLICY));
    const layout = engineLayout();
    const pk = c.tables.strPrefix.bytes;
    const dv = new DataView(pk.buffer, pk.byteOffset, pk.byteLength);
    const size = layout.get("sizeof.ward_str_prefix_key") ?? 0;
    const lens = [0, 1].map((i) => dv.getUint32(i * size, true));
    expect(lens).toEqual([32 + 8 * "/etc/".length, 32 + 8 * "/root/.ssh/".length]);
    const data = layout.get("ward_str_prefix_key.data") ?? 0;
    expect(new TextDecoder().decode(pk.subarray(data, data + 5))).toBe("/etc/");
    expect(pk[data + 5]).toBe(0);
    const ak = c.tables.addrLpm.bytes;
    const av = new DataView(ak.buffer, ak.byteOffset, ak.byteLength);
    const asz = layout.get("sizeof.ward_addr_key") ?? 0;
    expect([0, 1, 2].map((i) => av.getUint32(i * asz, true))).toEqual([64 + 8, 64 + 8, 64 + 128]);
    expect([0, 1, 2].map((i) => ak[i * asz + (layout.get("ward_addr_key.family") ?? 0)])).toEqual([4, 4, 6]);
  });
});
