// Randomized cross-check: the engine's decision over its tables against a direct TS
// statement of the operator's meaning, for many generated values and arguments. A seeded
// generator keeps failures reproducible.
import { describe, expect, test } from "bun:test";
import { addressBytes, type CompiledPolicy } from "../../src/policy/engine.ts";
import { argMatcher, hits } from "./engine-helpers.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHA = "ab/.";
function word(r: () => number, max: number): string {
  const n = Math.floor(r() * (max + 1));
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHA[Math.floor(r() * ALPHA.length)];
  return s;
}

describe("strings against a direct statement of the operators", () => {
  for (const op of ["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix"] as const) {
    test(op, () => {
      const r = rng(op.length * 7919);
      for (let round = 0; round < 15; round++) {
        const values = [...new Set(Array.from({ length: 1 + Math.floor(r() * 4) }, () => word(r, 6)).filter((v) => v !== ""))];
        if (values.length === 0) continue;
        const c = argMatcher("string", op, values);
        for (let i = 0; i < 40; i++) {
          // Half the probes are built from a value so hits are frequent.
          const base = values[Math.floor(r() * values.length)] ?? "";
          const arg = r() < 0.5 ? word(r, 8) : r() < 0.5 ? base + word(r, 3) : word(r, 3) + base;
          const want = op.endsWith("Equal") ? values.includes(arg) : op.endsWith("Prefix") ? values.some((v) => arg.startsWith(v)) : values.some((v) => arg.endsWith(v));
          expect({ op, values, arg, matched: hits(c, { string: arg }) }).toEqual({ op, values, arg, matched: op.startsWith("Not") ? !want : want });
        }
      }
    });
  }
});

function inCidr(addr: Uint8Array, cidr: string): boolean {
  const [a = "", bits = ""] = cidr.split("/");
  const net = addressBytes(a);
  const plen = Number(bits);
  for (let i = 0; i < plen; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if (((addr[byte] ?? 0) & mask) !== ((net[byte] ?? 0) & mask)) return false;
  }
  return true;
}

describe("addresses against a bitwise CIDR check", () => {
  test("IPv4 and IPv6 CIDRs of every length", () => {
    const r = rng(4242);
    const byte = (): number => Math.floor(r() * 4) * 64; // few distinct bytes: more overlaps
    for (let round = 0; round < 12; round++) {
      const v6 = round % 2 === 1;
      const cidrs = Array.from({ length: 1 + Math.floor(r() * 3) }, () => {
        const plen = Math.floor(r() * (v6 ? 129 : 33));
        if (v6) return `${Array.from({ length: 8 }, () => (byte() * 256 + byte()).toString(16)).join(":")}/${plen}`;
        return `${Array.from({ length: 4 }, byte).join(".")}/${plen}`;
      });
      const c: CompiledPolicy = argMatcher("sock", "DAddr", cidrs);
      for (let i = 0; i < 40; i++) {
        const addr = v6 ? Array.from({ length: 8 }, () => (byte() * 256 + byte()).toString(16)).join(":") : Array.from({ length: 4 }, byte).join(".");
        const bytes = addressBytes(addr);
        const want = cidrs.some((x) => inCidr(bytes, x));
        const got = hits(c, { sock: { family: v6 ? 10 : 2, daddr: addr } });
        expect({ cidrs, addr, got }).toEqual({ cidrs, addr, got: want });
      }
    }
  });
});

describe("integers against direct comparisons", () => {
  test("GreaterThan, LessThan, Mask, InRange on int32 with random values", () => {
    const r = rng(99);
    const rnd = (): number => Math.floor(r() * 64) - 32;
    for (let round = 0; round < 10; round++) {
      const vals = Array.from({ length: 1 + Math.floor(r() * 4) }, rnd);
      const gt = argMatcher("int", "GreaterThan", vals.map(String));
      const lt = argMatcher("int", "LessThan", vals.map(String));
      const mask = argMatcher("int", "Mask", vals.map((v) => String(Math.abs(v))));
      const ranges = vals.map((v) => [v, v + Math.floor(r() * 5)] as const);
      const inr = argMatcher("int", "InRange", ranges.map(([a, b]) => `${a}:${b}`));
      for (let i = 0; i < 30; i++) {
        const x = rnd();
        expect(hits(gt, { int: x })).toBe(vals.some((v) => x > v));
        expect(hits(lt, { int: x })).toBe(vals.some((v) => x < v));
        expect(hits(mask, { int: x })).toBe(vals.some((v) => ((x >>> 0) & Math.abs(v)) !== 0));
        expect(hits(inr, { int: x })).toBe(ranges.some(([a, b]) => x >= a && x <= b));
      }
    }
  });
});
