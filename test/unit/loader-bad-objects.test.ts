// Bad inputs to the object layer, through the public loadCollectionSpec (bytes or a path):
// truncated files, garbage, corrupted bytes, an unknown
// program section and a reference to a map the object never defines. Each must end in an
// ElfError that names the object and the problem (BtfError for damage inside .BTF), never
// in a TypeError/RangeError from reading past a buffer.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BtfError } from "../../src/bpf/btf.ts";
import { CollectionError, loadCollectionSpec } from "../../src/bpf/collection.ts";
import { ElfError } from "../../src/bpf/elf.ts";

const objDir = join(import.meta.dir, "..", "..", "bpf", "obj", "testdata");
const object = (name: string): Uint8Array => new Uint8Array(readFileSync(join(objDir, `${name}.o`)));

/** The error loadCollectionSpec throws, or undefined when it parsed. */
function parseError(bytes: Uint8Array, name: string): unknown {
  try {
    loadCollectionSpec(bytes, name);
    return undefined;
  } catch (e) {
    return e;
  }
}

/** Deterministic bytes (xorshift32) so a failure reproduces. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

describe("loadCollectionSpec on bad input", () => {
  test("the intact fixtures parse (so the failures below come from the damage)", () => {
    for (const n of ["count_openat", "ringbuf", "connect4", "core_moved", "sections", "rejected"]) {
      expect(parseError(object(n), n)).toBeUndefined();
    }
  });

  test("every truncation of an object is an ElfError naming the object", () => {
    const full = object("count_openat");
    // clang writes the section header table last, so every proper prefix loses part of it.
    const lengths = [0, 1, 4, 16, 63, 64, 65, full.length >> 1, full.length - 64, full.length - 1];
    for (let n = 0; n < full.length; n += 97) lengths.push(n);
    for (const n of lengths) {
      const e = parseError(full.subarray(0, n), "count_openat.o");
      expect({ n, error: e instanceof ElfError }).toEqual({ n, error: true });
      expect((e as Error).message).toContain("count_openat.o");
    }
  });

  test("garbage bytes and a bare ELF magic give an ElfError", () => {
    const rnd = prng(7);
    const garbage = Uint8Array.from({ length: 4096 }, () => Math.floor(rnd() * 256));
    expect(parseError(garbage, "garbage")).toBeInstanceOf(ElfError);
    const magicOnly = new Uint8Array(4096);
    magicOnly.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    expect(parseError(magicOnly, "magic")).toBeInstanceOf(ElfError);
    const text = new TextEncoder().encode("#!/bin/sh\necho this is not an object\n");
    const e = parseError(text, "script");
    expect(e).toBeInstanceOf(ElfError);
    expect((e as Error).message).toMatch(/script/);
  });

  // Damage inside .BTF surfaces as the BTF parser's own typed error; anything untyped
  // (TypeError, RangeError from a DataView) would be a crash.
  test("corrupted bytes either parse or give an ElfError/BtfError, never another exception", () => {
    const rnd = prng(42);
    for (const n of ["sections", "ringbuf"]) {
      const base = object(n);
      for (let round = 0; round < 300; round++) {
        const bytes = base.slice();
        const flips = 1 + Math.floor(rnd() * 4);
        for (let i = 0; i < flips; i++) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
        const e = parseError(bytes, `${n}.o`);
        if (e !== undefined && !(e instanceof ElfError) && !(e instanceof BtfError)) {
          throw new Error(`round ${round} of ${n}.o: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
      }
    }
  });

  // Random flips missed relocations pointing between instructions and symbol sizes that cut
  // an instruction in half (a 20,000-round fuzz found them); this sweep sets every byte of
  // one object to values that hit those cases, so the whole file is covered each run.
  test("every single-byte corruption of sections.o parses or gives an ElfError/BtfError", () => {
    const base = object("sections");
    for (let pos = 0; pos < base.length; pos++) {
      for (const v of [15, 0xff]) {
        const bytes = base.slice();
        bytes[pos] = v;
        const e = parseError(bytes, "sections.o");
        if (e !== undefined && !(e instanceof ElfError) && !(e instanceof BtfError)) {
          throw new Error(`byte ${pos} = ${v}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
      }
    }
  }, 120_000);

  test("an unknown program section is an ElfError naming the section", () => {
    const e = parseError(object("bad_unknown_section"), "bad_unknown_section.o");
    expect(e).toBeInstanceOf(ElfError);
    expect((e as Error).message).toContain("wardbogus/not_a_hook");
  });

  test("a reference to a map the object never defines is an ElfError naming the map", () => {
    const e = parseError(object("bad_missing_map"), "bad_missing_map.o");
    expect(e).toBeInstanceOf(ElfError);
    expect((e as Error).message).toContain("missing_map");
  });

  test("a path that does not exist is a CollectionError naming it", () => {
    let err: unknown;
    try {
      loadCollectionSpec("/nonexistent/ward/object.o");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CollectionError);
    expect((err as Error).message).toContain("/nonexistent/ward/object.o");
  });
});
