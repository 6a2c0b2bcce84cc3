import { describe, expect, test } from "bun:test";
import { WorkloadRegistry, type Workload, type WorkloadChange } from "../../../src/workloads/registry.ts";

function wl(key: string, cgroupId: bigint, extra: Partial<Workload> = {}): Workload {
  return { key, cgroupId, cgroupPath: `/c/${key}`, runtime: "containerd", annotations: {}, source: "oci-hook", ...extra };
}

describe("WorkloadRegistry", () => {
  test("upsert resolves only after subscribers applied the change, and replacement reports old and new", async () => {
    const r = new WorkloadRegistry();
    const seen: WorkloadChange[] = [];
    let applied = 0;
    await r.subscribe(async (c) => {
      await new Promise((res) => setTimeout(res, 10));
      seen.push(c);
      applied++;
    });
    await r.upsert(wl("a", 1n));
    expect(applied).toBe(1);
    await r.upsert(wl("a", 2n));
    expect(seen[1]!.removed.map((w) => w.cgroupId)).toEqual([1n]);
    expect(seen[1]!.added.map((w) => w.cgroupId)).toEqual([2n]);
    expect(r.byCgroupId(1n)).toBeUndefined();
    expect(r.byCgroupId(2n)?.key).toBe("a");
    await r.remove("a");
    expect(r.all()).toEqual([]);
    expect(seen[2]!.removed.map((w) => w.key)).toEqual(["a"]);
  });

  test("a late subscriber gets what is known; a failing subscriber fails the upsert", async () => {
    const r = new WorkloadRegistry();
    await r.upsert(wl("a", 1n));
    const got: string[] = [];
    const off = await r.subscribe((c) => {
      for (const w of c.added) got.push(w.key);
    });
    expect(got).toEqual(["a"]);
    off();
    await expect(r.subscribe(() => { throw new Error("initial"); })).rejects.toThrow("initial");
    await r.subscribe((c) => {
      if (c.added.some((w) => w.key === "b")) throw new Error("map full");
    });
    await expect(r.upsert(wl("b", 3n))).rejects.toThrow("map full");
  });
});
