// LabelSelector semantics (podSelector, containerSelector) and containerSelector's label set.
import { describe, expect, test } from "bun:test";
import { LabelSelectorError, matchesLabels, parseLabelSelector } from "../../../src/workloads/label-selector.ts";
import { bareContainerId, containerLabels, imageRepo, matchesContainer } from "../../../src/workloads/container-selector.ts";

describe("matchesLabels", () => {
  const labels = { app: "nginx", tier: "web" };
  test("empty selector matches all", () => expect(matchesLabels({}, labels)).toBe(true));
  test("matchLabels: all must be equal", () => {
    expect(matchesLabels({ matchLabels: { app: "nginx" } }, labels)).toBe(true);
    expect(matchesLabels({ matchLabels: { app: "nginx", tier: "db" } }, labels)).toBe(false);
    expect(matchesLabels({ matchLabels: { env: "" } }, labels)).toBe(false);
  });
  test("In / NotIn / Exists / DoesNotExist", () => {
    expect(matchesLabels({ matchExpressions: [{ key: "app", operator: "In", values: ["redis", "nginx"] }] }, labels)).toBe(true);
    expect(matchesLabels({ matchExpressions: [{ key: "app", operator: "In", values: ["redis"] }] }, labels)).toBe(false);
    expect(matchesLabels({ matchExpressions: [{ key: "env", operator: "In", values: ["prod"] }] }, labels)).toBe(false);
    expect(matchesLabels({ matchExpressions: [{ key: "app", operator: "NotIn", values: ["nginx"] }] }, labels)).toBe(false);
    // NotIn holds when the key is absent (Kubernetes semantics).
    expect(matchesLabels({ matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] }, labels)).toBe(true);
    expect(matchesLabels({ matchExpressions: [{ key: "tier", operator: "Exists" }] }, labels)).toBe(true);
    expect(matchesLabels({ matchExpressions: [{ key: "env", operator: "Exists" }] }, labels)).toBe(false);
    expect(matchesLabels({ matchExpressions: [{ key: "env", operator: "DoesNotExist" }] }, labels)).toBe(true);
    expect(matchesLabels({ matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, labels)).toBe(false);
  });
  test("labels and expressions are ANDed", () => {
    const sel = { matchLabels: { app: "nginx" }, matchExpressions: [{ key: "tier", operator: "In" as const, values: ["db"] }] };
    expect(matchesLabels(sel, labels)).toBe(false);
    expect(matchesLabels(sel, { app: "nginx", tier: "db" })).toBe(true);
  });
  test("inherited object keys are not labels", () => {
    expect(matchesLabels({ matchExpressions: [{ key: "toString", operator: "Exists" }] }, labels)).toBe(false);
  });
});

describe("parseLabelSelector", () => {
  test("valid", () => {
    expect(parseLabelSelector({ matchLabels: { a: "b" }, matchExpressions: [{ key: "k", operator: "Exists" }] }, "spec.podSelector")).toEqual({ matchLabels: { a: "b" }, matchExpressions: [{ key: "k", operator: "Exists" }] });
    expect(parseLabelSelector({}, "spec.podSelector")).toEqual({});
  });
  const bad: [unknown, string][] = [
    [[], "spec.podSelector"],
    [{ matchLabel: {} }, "spec.podSelector.matchLabel"],
    [{ matchLabels: { a: 1 } }, "spec.podSelector.matchLabels.a"],
    [{ matchExpressions: [{ key: "k", operator: "Equals", values: ["x"] }] }, "spec.podSelector.matchExpressions[0].operator"],
    [{ matchExpressions: [{ key: "k", operator: "In" }] }, "spec.podSelector.matchExpressions[0].values"],
    [{ matchExpressions: [{ key: "k", operator: "Exists", values: ["x"] }] }, "spec.podSelector.matchExpressions[0].values"],
    [{ matchExpressions: [{ operator: "Exists" }] }, "spec.podSelector.matchExpressions[0].key"],
  ];
  for (const [sel, path] of bad) {
    test(`refused at ${path}`, () => {
      let err: unknown;
      try {
        parseLabelSelector(sel, "spec.podSelector");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(LabelSelectorError);
      expect((err as LabelSelectorError).path).toBe(path);
    });
  }
});

describe("containerSelector", () => {
  const c = {
    name: "web",
    id: "containerd://6b742e38ee3a212239e6d48b2954435d1a3b0e2f5c8a7d9e0f1a2b3c4d5e6f70",
    image: "registry.local:5000/team/nginx:1.27@sha256:abcd",
    annotations: { "io.kubernetes.container.name": "web", "example.com/tier": "edge", name: "spoof" },
  };
  test("repo is the image without tag or digest; a registry port stays", () => {
    expect(imageRepo("docker.io/library/nginx:1.27")).toBe("docker.io/library/nginx");
    expect(imageRepo("registry.local:5000/nginx")).toBe("registry.local:5000/nginx");
    expect(imageRepo(c.image)).toBe("registry.local:5000/team/nginx");
    expect(bareContainerId("cri-o://abc")).toBe("abc");
  });
  test("labels: name, repo, id (bare), annotations; reserved keys win", () => {
    const l = containerLabels(c);
    expect(l.name).toBe("web");
    expect(l.id).toBe("6b742e38ee3a212239e6d48b2954435d1a3b0e2f5c8a7d9e0f1a2b3c4d5e6f70");
    expect(l["example.com/tier"]).toBe("edge");
    expect(containerLabels({ annotations: { name: "spoof" } }).name).toBeUndefined();
  });
  test("by name, id, repo and annotation", () => {
    expect(matchesContainer({ matchLabels: { name: "web" } }, c)).toBe(true);
    expect(matchesContainer({ matchLabels: { name: "db" } }, c)).toBe(false);
    expect(matchesContainer({ matchExpressions: [{ key: "id", operator: "In", values: ["6b742e38ee3a212239e6d48b2954435d1a3b0e2f5c8a7d9e0f1a2b3c4d5e6f70"] }] }, c)).toBe(true);
    expect(matchesContainer({ matchLabels: { repo: "registry.local:5000/team/nginx" } }, c)).toBe(true);
    expect(matchesContainer({ matchLabels: { "example.com/tier": "edge" } }, c)).toBe(true);
    expect(matchesContainer({ matchExpressions: [{ key: "example.com/tier", operator: "NotIn", values: ["edge"] }] }, c)).toBe(false);
  });
});
