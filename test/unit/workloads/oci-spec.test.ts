// OCI state and config.json parsing, cgroupsPath forms (cgroupfs and systemd's slice:prefix:name)
// and the Kubernetes identity from containerd's and CRI-O's annotation spellings.
import { describe, expect, test } from "bun:test";
import { cgroupsPathToV2, kubeIdentityOf, OciInputError, parseOciConfig, parseOciState, slicePath } from "../../../src/workloads/oci-spec.ts";

const ID = "a".repeat(64);

describe("parseOciState", () => {
  test("createRuntime state as runc sends it", () => {
    const s = parseOciState(JSON.stringify({ ociVersion: "1.0.2-dev", id: "probe2", status: "creating", pid: 21989, bundle: "/tmp/b", annotations: { a: "b" } }));
    expect(s).toEqual({ ociVersion: "1.0.2-dev", id: "probe2", status: "creating", pid: 21989, bundle: "/tmp/b", annotations: { a: "b" } });
  });

  test("poststop state has no pid", () => {
    const s = parseOciState(JSON.stringify({ ociVersion: "1.0.2", id: ID, status: "stopped", bundle: "/b" }));
    expect(s.pid).toBeUndefined();
    expect(s.annotations).toEqual({});
  });

  const bad: Array<[string, unknown, string]> = [
    ["not JSON", "{", "state: not valid JSON"],
    ["not an object", "[]", "state: must be a JSON object"],
    ["no id", { status: "creating", bundle: "/b" }, "state.id: missing"],
    ["bad id", { id: "../x", status: "creating", bundle: "/b" }, 'state.id: "../x" is not a container id'],
    ["no status", { id: "x", bundle: "/b" }, "state.status: missing"],
    ["relative bundle", { id: "x", status: "creating", bundle: "b" }, 'state.bundle: must be an absolute path, not "b"'],
    ["pid a string", { id: "x", status: "creating", bundle: "/b", pid: "1" }, 'state.pid: must be a positive integer, not "1"'],
    ["annotation not a string", { id: "x", status: "creating", bundle: "/b", annotations: { k: 1 } }, "state.annotations.k: must be a string, not 1"],
  ];
  for (const [what, input, message] of bad) {
    test(`rejects ${what}`, () => {
      const text = typeof input === "string" ? input : JSON.stringify(input);
      expect(() => parseOciState(text)).toThrow(OciInputError);
      expect(() => parseOciState(text)).toThrow(message);
    });
  }
});

describe("parseOciConfig", () => {
  test("annotations and linux.cgroupsPath", () => {
    expect(parseOciConfig(JSON.stringify({ ociVersion: "1.0.2", annotations: { x: "y" }, linux: { cgroupsPath: "/a/b" } }))).toEqual({ annotations: { x: "y" }, cgroupsPath: "/a/b" });
    expect(parseOciConfig(JSON.stringify({ linux: {} }))).toEqual({ annotations: {} });
  });
  test("errors name the file and field", () => {
    expect(() => parseOciConfig(JSON.stringify({ linux: { cgroupsPath: 3 } }), "/b/config.json")).toThrow("/b/config.json linux.cgroupsPath: must be a string, not 3");
    expect(() => parseOciConfig(JSON.stringify({ annotations: [] }), "/b/config.json")).toThrow("/b/config.json annotations: must be an object of strings");
  });
});

describe("cgroupsPathToV2", () => {
  test("cgroupfs paths are themselves", () => {
    expect(cgroupsPathToV2(`/kubepods/besteffort/pod0a1b/${ID}`)).toBe(`/kubepods/besteffort/pod0a1b/${ID}`);
    expect(cgroupsPathToV2("/ward/c1/")).toBe("/ward/c1");
  });
  test("relative cgroupfs paths need the runtime's own cgroup: undefined", () => {
    expect(cgroupsPathToV2("ward/c1")).toBeUndefined();
  });
  test("systemd slice:prefix:name, as containerd, CRI-O and runc write it", () => {
    expect(cgroupsPathToV2(`kubepods-besteffort-pod0a1b_2c3d.slice:cri-containerd:${ID}`)).toBe(
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b_2c3d.slice/cri-containerd-${ID}.scope`,
    );
    expect(cgroupsPathToV2(`kubepods-pod1.slice:crio:${ID}`)).toBe(`/kubepods.slice/kubepods-pod1.slice/crio-${ID}.scope`);
    expect(cgroupsPathToV2(`:docker:${ID}`)).toBe(`/system.slice/docker-${ID}.scope`);
    expect(cgroupsPathToV2("machine.slice::c1")).toBe("/machine.slice/c1.scope");
    expect(cgroupsPathToV2("-.slice:x:y")).toBe("/x-y.scope");
    expect(cgroupsPathToV2("user.slice:x:sub.slice")).toBe("/user.slice/sub.slice");
  });
  test("bad systemd forms", () => {
    expect(() => cgroupsPathToV2("kubepods:x:y")).toThrow('slice "kubepods" must end in .slice');
    expect(() => cgroupsPathToV2("a--b.slice:x:y")).toThrow("is not a valid systemd slice name");
    expect(() => cgroupsPathToV2("a.slice:x:")).toThrow("empty name");
    expect(slicePath("a-b.slice")).toBe("/a.slice/a-b.slice");
  });
});

describe("kubeIdentityOf", () => {
  test("containerd's io.kubernetes.cri.* annotations", () => {
    const k = kubeIdentityOf({
      "io.kubernetes.cri.container-type": "container",
      "io.kubernetes.cri.sandbox-namespace": "shop",
      "io.kubernetes.cri.sandbox-name": "nginx-7d9f",
      "io.kubernetes.cri.sandbox-uid": "0a1b2c3d-0000-4000-8000-000000000001",
      "io.kubernetes.cri.container-name": "nginx",
      "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.27",
      "io.kubernetes.cri.sandbox-id": ID,
    });
    expect(k).toEqual({ namespace: "shop", podName: "nginx-7d9f", podUid: "0a1b2c3d-0000-4000-8000-000000000001", containerName: "nginx", containerType: "container", image: "docker.io/library/nginx:1.27", sandboxId: ID });
  });

  test("CRI-O's kubelet labels and io.kubernetes.cri-o.* annotations", () => {
    const k = kubeIdentityOf({
      "io.kubernetes.pod.namespace": "shop",
      "io.kubernetes.pod.name": "nginx-7d9f",
      "io.kubernetes.pod.uid": "uid-1",
      "io.kubernetes.container.name": "nginx",
      "io.kubernetes.cri-o.ContainerType": "container",
      "io.kubernetes.cri-o.ImageName": "quay.io/x/nginx:1",
      "io.kubernetes.cri-o.SandboxID": ID,
    });
    expect(k).toEqual({ namespace: "shop", podName: "nginx-7d9f", podUid: "uid-1", containerName: "nginx", containerType: "container", image: "quay.io/x/nginx:1", sandboxId: ID });
  });

  test("CRI-O with only io.kubernetes.cri-o.Namespace and the Labels JSON", () => {
    const labels = { "io.kubernetes.pod.name": "p", "io.kubernetes.pod.uid": "u", "io.kubernetes.container.name": "c", "io.kubernetes.pod.namespace": "ignored" };
    const k = kubeIdentityOf({ "io.kubernetes.cri-o.Namespace": "ns", "io.kubernetes.cri-o.Labels": JSON.stringify(labels) });
    expect(k).toEqual({ namespace: "ns", podName: "p", podUid: "u", containerName: "c" });
    expect(() => kubeIdentityOf({ "io.kubernetes.cri-o.Labels": "{" })).toThrow("annotations.io.kubernetes.cri-o.Labels: is not a JSON object");
  });

  test("containerd's spelling wins when both are present; no annotations, no identity", () => {
    expect(kubeIdentityOf({ "io.kubernetes.cri.sandbox-namespace": "a", "io.kubernetes.pod.namespace": "b" }).namespace).toBe("a");
    expect(kubeIdentityOf({})).toEqual({});
  });
});
