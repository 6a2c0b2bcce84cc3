// Cgroup path fixtures for every runtime and cgroup driver, written from the runtimes'
// documented naming (src/workloads/cgroup-identity.ts lists it), plus /proc/PID/cgroup and
// mountinfo parsing. No kernel: the real cgroup test is test/kernel/workloads/cgroup-identity.test.ts.
import { describe, expect, test } from "bun:test";
import { workloadFields } from "../../../src/workloads/event-fields.ts";
import { cgroupV2MountOf, dockerField, identityOfProcCgroup, parseCgroupPath, parseProcCgroup } from "../../../src/workloads/cgroup-identity.ts";

const ID = "6b742e38ee3a212239e6d48b2954435d1a3b0e2f5c8a7d9e0f1a2b3c4d5e6f70";
const UID = "0c9a1b2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const UID_ = UID.replace(/-/g, "_");

describe("parseCgroupPath", () => {
  const cases: [string, string, Record<string, unknown>][] = [
    ["docker, systemd driver", `/system.slice/docker-${ID}.scope`, { runtime: "docker", containerId: ID }],
    ["docker, cgroupfs driver", `/docker/${ID}`, { runtime: "docker", containerId: ID }],
    ["docker, sub-cgroup made inside the container", `/system.slice/docker-${ID}.scope/init`, { runtime: "docker", containerId: ID }],
    ["containerd CRI, systemd, burstable", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`, { runtime: "containerd", containerId: ID, podUid: UID, qos: "burstable" }],
    ["containerd CRI, systemd, besteffort", `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`, { runtime: "containerd", containerId: ID, podUid: UID, qos: "besteffort" }],
    ["containerd CRI, systemd, guaranteed", `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`, { runtime: "containerd", containerId: ID, podUid: UID, qos: "guaranteed" }],
    ["cri-o, systemd, burstable", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${ID}.scope`, { runtime: "cri-o", containerId: ID, podUid: UID, qos: "burstable" }],
    ["cri-o conmon is the monitor", `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`, { runtime: "cri-o", containerId: ID, monitor: true, podUid: UID }],
    ["cri-o, cgroupfs", `/kubepods/burstable/pod${UID}/crio-${ID}`, { runtime: "cri-o", containerId: ID, podUid: UID, qos: "burstable" }],
    ["kubelet cgroupfs, burstable", `/kubepods/burstable/pod${UID}/${ID}`, { runtime: "unknown", containerId: ID, podUid: UID, qos: "burstable" }],
    ["kubelet cgroupfs, besteffort", `/kubepods/besteffort/pod${UID}/${ID}`, { runtime: "unknown", containerId: ID, podUid: UID, qos: "besteffort" }],
    ["kubelet cgroupfs, guaranteed", `/kubepods/pod${UID}/${ID}`, { runtime: "unknown", containerId: ID, podUid: UID, qos: "guaranteed" }],
    ["podman, systemd (rootful)", `/machine.slice/libpod-${ID}.scope`, { runtime: "podman", containerId: ID }],
    ["podman, systemd (rootless)", `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope/container`, { runtime: "podman", containerId: ID }],
    ["podman conmon", `/machine.slice/libpod-conmon-${ID}.scope`, { runtime: "podman", containerId: ID, monitor: true }],
    ["podman, cgroupfs", `/libpod_parent/libpod-${ID}`, { runtime: "podman", containerId: ID }],
    ["systemd session scope", "/user.slice/user-0.slice/session-3.scope", { runtime: "systemd-scope", unit: "session-3.scope" }],
    ["systemd transient run scope", "/system.slice/run-r0123abcd.scope", { runtime: "systemd-scope", unit: "run-r0123abcd.scope" }],
    ["a service", "/system.slice/ssh.service", { runtime: "none", unit: "ssh.service" }],
    ["the root", "/", { runtime: "none" }],
  ];
  for (const [name, path, want] of cases) {
    test(name, () => {
      const got = parseCgroupPath(path);
      expect(got).toMatchObject({ path, ...want });
      if (!("podUid" in want)) expect(got.podUid).toBeUndefined();
      if (!("containerId" in want)) expect(got.containerId).toBeUndefined();
    });
  }

  test("not container ids: short hex, upper case, a pod cgroup outside kubepods", () => {
    expect(parseCgroupPath("/docker/abc123").containerId).toBeUndefined();
    expect(parseCgroupPath(`/docker/${ID.toUpperCase()}`).containerId).toBeUndefined();
    expect(parseCgroupPath(`/system.slice/docker-${ID.slice(1)}.scope`).runtime).toBe("systemd-scope");
    expect(parseCgroupPath(`/other/pod${UID}/${ID}`)).toMatchObject({ runtime: "none" });
    expect(parseCgroupPath(`/other/pod${UID}/${ID}`).podUid).toBeUndefined();
  });

  test("docker field is the id cut to 31 characters, as Tetragon's", () => {
    expect(dockerField(ID)).toBe(ID.slice(0, 31));
    expect(dockerField(ID)).toHaveLength(31);
  });
});

describe("/proc/PID/cgroup and mountinfo", () => {
  test("hybrid host: the v2 line names the container", () => {
    const text = `12:memory:/system.slice/docker-${ID}.scope\n1:name=systemd:/system.slice/docker-${ID}.scope\n0::/system.slice/docker-${ID}.scope\n`;
    expect(parseProcCgroup(text)).toHaveLength(3);
    expect(identityOfProcCgroup(text, undefined)).toMatchObject({ runtime: "docker", containerId: ID, path: `/system.slice/docker-${ID}.scope` });
  });

  test("hybrid host whose runtime used v1 only: the v1 line names it, the path stays the v2 one", () => {
    const text = `4:memory:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/user.slice\n`;
    expect(identityOfProcCgroup(text, undefined)).toMatchObject({ runtime: "docker", containerId: ID, path: "/user.slice" });
  });

  test("a path containing ':' is kept whole", () => {
    expect(parseProcCgroup("0::/a:b/c\n")[0]).toEqual({ hierarchy: 0, controllers: [], path: "/a:b/c" });
  });

  test("cgroup v2 mount from mountinfo: the cgroup2 mount with root /, on hybrid and unified hosts", () => {
    const hybrid = [
      "25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755",
      "26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate",
      "27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd",
    ].join("\n");
    expect(cgroupV2MountOf(hybrid)).toBe("/sys/fs/cgroup/unified");
    expect(cgroupV2MountOf("30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n")).toBe("/sys/fs/cgroup");
    // A subtree mount (inside a cgroup namespace) is not the root; an escaped space is decoded.
    expect(cgroupV2MountOf("30 1 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")).toBeUndefined();
    expect(cgroupV2MountOf("30 1 0:26 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n")).toBe("/mnt/cg two");
    expect(cgroupV2MountOf("")).toBeUndefined();
  });
});

describe("workloadFields (the docker and pod fields of an event)", () => {

  const pod = { uid: UID, name: "web-0", namespace: "default", labels: { app: "web" }, annotations: {}, containers: [{ name: "nginx", id: ID, runtimeId: `containerd://${ID}` }], workload: "web", workloadKind: "StatefulSet" };
  const lookup = { byContainerId: (id: string) => (id === ID ? { pod, container: pod.containers[0]! } : undefined) };
  test("a container: docker is 31 characters; pod from the lookup", () => {
    const path = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`;
    expect(workloadFields(path)).toEqual({ docker: ID.slice(0, 31) });
    expect(workloadFields(path, lookup, 1)).toEqual({
      docker: ID.slice(0, 31),
      pod: { namespace: "default", name: "web-0", uid: UID, container: { id: `containerd://${ID}`, name: "nginx", pid: 1 }, pod_labels: { app: "web" }, workload: "web", workload_kind: "StatefulSet" },
    });
  });
  test("host processes and monitor scopes have neither", () => {
    expect(workloadFields("/user.slice/user-0.slice/session-3.scope", lookup)).toEqual({});
    expect(workloadFields(`/machine.slice/libpod-conmon-${ID}.scope`, lookup)).toEqual({});
  });
});
