// The cgroup-scan feeder on the real cgroup v2 tree: container cgroups (named as docker's
// systemd driver names them) made before start are found by the scan, ones made later by
// inotify, removed ones leave the registry; a conmon monitor scope is not a container; an
// entry the OCI hook made is never overwritten.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { CgroupScanFeed } from "../../../src/workloads/cgroup-feed.ts";
import { cgroupIdOf, cgroupV2Mount } from "../../../src/workloads/cgroup-identity.ts";
import { WorkloadRegistry } from "../../../src/workloads/registry.ts";
import { kernelTest, kernelUnavailable } from "../../lib/host.ts";

const hex = (seed: number): string => Array.from({ length: 64 }, (_, i) => ((seed * 5 + i * 11) % 16).toString(16)).join("");
const A = hex(process.pid);
const B = hex(process.pid + 3);
const C = hex(process.pid + 5);
let root = "";
let parent = "";

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(10);
  }
}

describe("cgroup-scan feeder (inotify on cgroupfs)", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    root = cgroupV2Mount() ?? "";
    parent = join(root, `ward-feed-test-${process.pid}`);
    mkdirSync(join(parent, "slice.slice", `docker-${A}.scope`), { recursive: true });
    mkdirSync(join(parent, `crio-conmon-${C}.scope`));
  });

  afterAll(() => {
    for (const d of [join(parent, "slice.slice", `docker-${A}.scope`), join(parent, "slice.slice", `docker-${B}.scope`), join(parent, "slice.slice"), join(parent, `crio-conmon-${C}.scope`), parent]) {
      if (parent !== "" && existsSync(d)) rmdirSync(d);
    }
  });

  kernelTest("scan at start, inotify after: added and removed as the runtime makes and removes cgroups", async () => {
    expect(root).not.toBe("");
    const reg = new WorkloadRegistry();
    const feed = new CgroupScanFeed(reg, { root });
    await feed.start();
    try {
      const rel = `/ward-feed-test-${process.pid}/slice.slice/docker-${A}.scope`;
      expect(reg.get(A)).toEqual({ key: A, cgroupId: cgroupIdOf(join(root, rel)), cgroupPath: rel, runtime: "docker", containerId: A, annotations: {}, source: "cgroup-scan" });
      expect(reg.get(C)).toBeUndefined(); // the monitor is not a container
      expect(feed.watched).toBeGreaterThanOrEqual(3); // root, the parent, the slice

      // an OCI hook entry for B exists first: the scan must not replace it
      mkdirSync(join(parent, "slice.slice", `docker-${B}.scope`));
      await until("B found", () => reg.get(B) !== undefined);
      expect(reg.get(B)?.source).toBe("cgroup-scan");
      await reg.upsert({ ...reg.get(B)!, source: "oci-hook", name: "web" });
      rmdirSync(join(parent, "slice.slice", `docker-${B}.scope`));
      mkdirSync(join(parent, "slice.slice", `docker-${B}.scope`));
      await Bun.sleep(100);
      await feed.settled();
      expect(reg.get(B)?.name).toBe("web");

      rmdirSync(join(parent, "slice.slice", `docker-${A}.scope`));
      await until("A gone", () => reg.get(A) === undefined);
    } finally {
      feed.close();
    }
  });
});
