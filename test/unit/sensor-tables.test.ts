// src/sensors/tables.ts without a kernel: the bin-name keys, and the reference counts that
// decide when a *_bin_names entry is written and removed (a map stand-in records the calls).
import { describe, expect, test } from "bun:test";
import { BinNameRefs, binNameKey, u32Key } from "../../src/sensors/tables.ts";

/** A compiled binNames entry: u32 id, u32 length, the path bytes. */
function entry(id: number, path: string): Uint8Array {
  const p = new TextEncoder().encode(path);
  const b = new Uint8Array(8 + p.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, id, true);
  dv.setUint32(4, p.length, true);
  b.set(p, 8);
  return b;
}

function fakeMap() {
  const entries = new Map<string, Uint8Array>();
  const calls: string[] = [];
  const name = (k: Uint8Array): string => new TextDecoder().decode(k.subarray(0, k.indexOf(0) < 0 ? k.length : k.indexOf(0)));
  return {
    entries,
    calls,
    update(key: Uint8Array, value: Uint8Array): void {
      expect(key.length).toBe(256);
      calls.push(`update ${name(key)}`);
      entries.set(name(key), value);
    },
    delete(key: Uint8Array): boolean {
      calls.push(`delete ${name(key)}`);
      return entries.delete(name(key));
    },
  };
}

describe("sensor tables", () => {
  test("u32Key is 4 bytes little-endian", () => {
    expect([...u32Key(0x01020304)]).toEqual([4, 3, 2, 1]);
    expect([...u32Key(-1)]).toEqual([255, 255, 255, 255]);
  });

  test("binNameKey zero pads to 256 bytes and keeps at most 255, so the key ends in NUL", () => {
    const k = binNameKey("/usr/bin/cat");
    expect(k.length).toBe(256);
    expect(new TextDecoder().decode(k.subarray(0, 12))).toBe("/usr/bin/cat");
    expect(k.subarray(12).every((b) => b === 0)).toBe(true);
    const long = binNameKey("x".repeat(300));
    expect(long.subarray(0, 255).every((b) => b === 120)).toBe(true);
    expect(long[255]).toBe(0);
  });

  test("the first use writes the name entry, the last removes it; a path under another id is a conflict and writes nothing", () => {
    const m = fakeMap();
    const refs = new BinNameRefs();
    expect(refs.add(m, entry(7, "/bin/a"))).toEqual({ path: "/bin/a", id: 7 });
    expect(refs.add(m, entry(7, "/bin/a"))).toEqual({ path: "/bin/a", id: 7 });
    expect(refs.add(m, entry(8, "/bin/b"))).toEqual({ path: "/bin/b", id: 8 });
    expect(m.calls).toEqual(["update /bin/a", "update /bin/b"]);
    expect([...m.entries.get("/bin/a")!]).toEqual([...u32Key(7)]);
    expect(refs.add(m, entry(9, "/bin/a"))).toEqual({ path: "/bin/a", id: 9, conflict: 7 });
    expect(m.calls.length).toBe(2);
    refs.release(() => m, "/bin/a");
    expect(m.entries.has("/bin/a")).toBe(true);
    refs.release(() => m, "/bin/a");
    expect(m.entries.has("/bin/a")).toBe(false);
    refs.release(() => m, "/bin/a"); // not held any more: nothing happens
    refs.release(() => m, "/bin/never");
    expect(m.calls).toEqual(["update /bin/a", "update /bin/b", "delete /bin/a"]);
  });

  test("a release whose map is gone (sensor closing) is not an error", () => {
    const m = fakeMap();
    const refs = new BinNameRefs();
    refs.add(m, entry(1, "/bin/x"));
    expect(() => refs.release(() => { throw new Error("map missing"); }, "/bin/x")).not.toThrow();
  });
});
