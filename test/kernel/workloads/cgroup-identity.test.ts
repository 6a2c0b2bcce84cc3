// Workload identity of a real process (root): a cgroup named like a docker scope under the
// cgroup v2 root, a sleep moved into it, and identityOfPid reads runtime, container id and
// the cgroup id (the directory's inode) back from /proc/PID/cgroup; scanContainerCgroups
// finds the same cgroup by walking the tree.
import { afterAll, describe, expect } from "bun:test";
import { mkdirSync, rmdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { cgroupV2Mount, identityOfPid, scanContainerCgroups } from "../../../src/workloads/cgroup-identity.ts";
import { kernelTest } from "../../lib/host.ts";
import { TestCgroup } from "../../lib/cgroup.ts";

const ID = `${process.pid.toString(16).padStart(8, "0")}${"c0ffee".repeat(9)}10`.slice(0, 64);
let parent: TestCgroup | undefined;
let scope: string | undefined;
const kids: { kill(sig?: number | NodeJS.Signals): void; exited: Promise<number> }[] = [];

afterAll(async () => {
  for (const k of kids) {
    k.kill("SIGKILL");
    await k.exited;
  }
  if (scope !== undefined) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(scope);
        break;
      } catch {
        Bun.sleepSync(20);
      }
    }
  }
  parent?.remove();
});

describe("cgroup identity (kernel)", () => {
  kernelTest("a sleep in <v2 root>/.../docker-<id>.scope: docker, the id, the cgroup id; the tree scan finds it", async () => {
    const root = cgroupV2Mount();
    // The test probes, not assumes: the v2 hierarchy must be mounted (it is on this host kind, hybrid or unified).
    expect(root).toBeDefined();
    parent = new TestCgroup("identity");
    scope = join(parent.path, `docker-${ID}.scope`);
    mkdirSync(scope);
    const sleep = Bun.spawn(["sleep", "30"], { stdio: ["ignore", "ignore", "ignore"] });
    kids.push(sleep);
    await Bun.write(join(scope, "cgroup.procs"), `${sleep.pid}\n`);

    const id = identityOfPid(sleep.pid);
    expect(id.runtime).toBe("docker");
    expect(id.containerId).toBe(ID);
    expect(id.dir).toBe(scope);
    expect(id.path).toBe(`/${parent.path.slice(root!.length + 1)}/docker-${ID}.scope`);
    expect(id.cgroupId).toBe(statSync(scope, { bigint: true }).ino);
    // Not the parent's id: the id is the process's own cgroup.
    expect(id.cgroupId).not.toBe(statSync(parent.path, { bigint: true }).ino);

    const found = scanContainerCgroups(root!).get(ID);
    expect(found?.dir).toBe(scope);
    expect(found?.cgroupId).toBe(id.cgroupId!);

    // This test process itself is not in a container named like that.
    expect(identityOfPid(process.pid).containerId).not.toBe(ID);
  });

  kernelTest("a process that is gone: no_such_process", () => {
    let code: string | undefined;
    try {
      identityOfPid(0x3fffffff);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe("no_such_process");
  });
});
