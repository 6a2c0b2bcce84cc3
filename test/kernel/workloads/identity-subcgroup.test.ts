// The docker field of a process in a container's own sub-cgroup whose process is gone by
// the time its event is written (a short `cat`): /proc cannot say, so WorkloadIdentity
// finds the sub-cgroup in the registered container's cgroup tree. A cgroup no workload
// owns stays without a docker field.
import { afterAll, describe, expect } from "bun:test";
import { mkdirSync, rmdirSync } from "node:fs";
import { join, relative } from "node:path";
import { cgroupIdOf, cgroupV2Mount, dockerField } from "../../../src/workloads/cgroup-identity.ts";
import { WorkloadIdentity } from "../../../src/workloads/identity.ts";
import { WorkloadRegistry } from "../../../src/workloads/registry.ts";
import { kernelTest } from "../../lib/host.ts";
import { TestCgroup } from "../../lib/cgroup.ts";

const ID = `${process.pid.toString(16).padStart(8, "0")}${"5ab".repeat(19)}`.slice(0, 64);
let parent: TestCgroup | undefined;
const made: string[] = [];

afterAll(() => {
  for (const d of made.reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // already gone
    }
  }
  parent?.remove();
});

describe("workload identity of a container's sub-cgroup (kernel)", () => {
  kernelTest("an exited process in <container>/init/leaf gets the container's docker field; an unowned cgroup gets none", async () => {
    const root = cgroupV2Mount();
    expect(root).toBeDefined();
    parent = new TestCgroup("identity-sub");
    const scope = join(parent.path, `docker-${ID}.scope`);
    const sub = join(scope, "init");
    const leaf = join(sub, "leaf");
    const other = join(parent.path, "unowned");
    for (const d of [scope, sub, leaf, other]) {
      mkdirSync(d);
      made.push(d);
    }
    const registry = new WorkloadRegistry();
    await registry.upsert({ key: ID, cgroupId: cgroupIdOf(scope), cgroupPath: `/${relative(root!, scope)}`, runtime: "docker", containerId: ID, annotations: {}, source: "cgroup-scan" });
    const identity = new WorkloadIdentity(registry, root);
    await identity.start();
    // A pid that cannot exist: /proc has nothing to say, as for an exited process.
    const gone = 0x3fffffff;
    expect(identity.fields(cgroupIdOf(leaf), gone).docker).toBe(dockerField(ID));
    expect(identity.fields(cgroupIdOf(sub), gone).docker).toBe(dockerField(ID));
    expect(identity.fields(cgroupIdOf(other), gone)).toEqual({});
    // The scope itself is the registry's own answer.
    expect(identity.fields(cgroupIdOf(scope)).docker).toBe(dockerField(ID));
    identity.close();
  });
});
