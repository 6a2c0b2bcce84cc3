// deploy/: every YAML file parses (yaml package, all documents), holds the kinds a user
// applies, and the pieces agree with the code: CRD group, names and version are the ones
// the CR watcher lists (src/workloads/k8s/policies.ts), RBAC grants what the watches read,
// the DaemonSet's agent args are accepted by the agent's own flag parser, the systemd unit's ExecStart parses,
// and the OCI hook configs (oci-hooks.d JSON for CRI-O/Podman, the hooks object for runc and
// containerd's base spec, the containerd snippet) follow their formats and name flags `ward oci-hook` accepts.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { AGENT_FLAGS, parseAgentConfig, type AgentConfig } from "../../src/agent/config.ts";
import { CRD_GROUP, CRD_VERSION } from "../../src/workloads/k8s/policies.ts";
import { parseOciHookArgs } from "../../src/cli/commands/oci-hook.ts";

const deploy = join(import.meta.dir, "..", "..", "deploy");
// Manifests are free-form documents; the assertions below check their shape.
type Obj = Record<string, any>;

function docsOf(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(join(deploy, file), "utf8"));
  for (const d of docs) expect({ file, errors: d.errors.map((e) => e.message) }).toEqual({ file, errors: [] });
  return docs.map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

const all = readdirSync(deploy).filter((f) => f.endsWith(".yaml")).sort();
const objects = all.flatMap((f) => docsOf(f).map((o) => ({ file: f, o })));
const byKind = (kind: string) => objects.filter((x) => x.o.kind === kind).map((x) => x.o);

/** Every `--flag` the manifests and the unit pass to `ward agent`, whichever form. */
function flagNames(args: readonly string[]): string[] {
  return args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]!);
}

describe("deploy/", () => {
  test("every agent flag in the DaemonSet and the systemd unit is one ward agent accepts", () => {
    const ds = byKind("DaemonSet")[0]!;
    const unit = readFileSync(join(deploy, "systemd", "ward.service"), "utf8");
    const unitArgs = /^ExecStart=\S+ (.*)$/m.exec(unit)![1]!.split(" ");
    for (const name of [...flagNames(ds.spec.template.spec.containers[0].args), ...flagNames(unitArgs)]) {
      expect({ name, accepted: name in AGENT_FLAGS }).toEqual({ name, accepted: true });
    }
  });

  test("the YAML files and their kinds", () => {
    expect(all).toEqual(["crds.yaml", "daemonset.yaml", "rbac.yaml"]);
    expect(objects.map((x) => `${x.file}: ${x.o.kind}`)).toEqual([
      "crds.yaml: CustomResourceDefinition",
      "crds.yaml: CustomResourceDefinition",
      "daemonset.yaml: DaemonSet",
      "rbac.yaml: Namespace",
      "rbac.yaml: ServiceAccount",
      "rbac.yaml: ClusterRole",
      "rbac.yaml: ClusterRoleBinding",
    ]);
    for (const { o } of objects) expect(typeof o.apiVersion).toBe("string");
  });

  test("CRDs: Tetragon's group, names, scope and version", () => {
    const crds = byKind("CustomResourceDefinition");
    const want = [
      { kind: "TracingPolicy", plural: "tracingpolicies", short: "tgtp", scope: "Cluster" },
      { kind: "TracingPolicyNamespaced", plural: "tracingpoliciesnamespaced", short: "tgtpn", scope: "Namespaced" },
    ];
    expect(crds).toHaveLength(2);
    for (const [i, w] of want.entries()) {
      const c = crds[i]!;
      expect(c.apiVersion).toBe("apiextensions.k8s.io/v1");
      expect(c.metadata.name).toBe(`${w.plural}.${CRD_GROUP}`);
      expect(c.spec.group).toBe(CRD_GROUP);
      expect(c.spec.names.kind).toBe(w.kind);
      expect(c.spec.names.plural).toBe(w.plural);
      expect(c.spec.names.shortNames).toEqual([w.short]);
      expect(c.spec.scope).toBe(w.scope);
      expect(c.spec.versions.map((v: Obj) => [v.name, v.served, v.storage])).toEqual([[CRD_VERSION, true, true]]);
      const spec = c.spec.versions[0].schema.openAPIV3Schema.properties.spec;
      expect(spec["x-kubernetes-preserve-unknown-fields"]).toBe(true);
      expect(spec.properties.podSelector.properties.matchExpressions.items.properties.operator.enum).toEqual(["In", "NotIn", "Exists", "DoesNotExist"]);
    }
    // Only the namespaced kind forbids hostSelector.
    expect(crds[0]!.spec.versions[0].schema.openAPIV3Schema.properties.spec["x-kubernetes-validations"]).toBeUndefined();
    expect(crds[1]!.spec.versions[0].schema.openAPIV3Schema.properties.spec["x-kubernetes-validations"][0].rule).toBe("!has(self.hostSelector)");
  });

  test("RBAC: read-only on pods, nodes and both CRDs, bound to the DaemonSet's service account", () => {
    const role = byKind("ClusterRole")[0]!;
    expect(role.rules).toEqual([
      { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
      { apiGroups: [CRD_GROUP], resources: ["tracingpolicies", "tracingpoliciesnamespaced"], verbs: ["get", "list", "watch"] },
    ]);
    const sa = byKind("ServiceAccount")[0]!;
    const binding = byKind("ClusterRoleBinding")[0]!;
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    const ds = byKind("DaemonSet")[0]!;
    expect(ds.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    expect(ds.metadata.namespace).toBe(sa.metadata.namespace);
  });

  test("DaemonSet: hostPID, privileged, the host mounts, NODE_NAME from the downward API, args the agent accepts", () => {
    const ds = byKind("DaemonSet")[0]!;
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).toBe(true);
    expect(ds.spec.selector.matchLabels).toEqual({ "app.kubernetes.io/name": ds.spec.template.metadata.labels["app.kubernetes.io/name"] });
    const c = pod.containers[0];
    expect(c.securityContext.privileged).toBe(true);
    const hostPaths = Object.fromEntries(pod.volumes.map((v: Obj) => [v.name, v.hostPath.path]));
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [hostPaths[m.name], m.mountPath]));
    expect(mounts).toEqual({
      "/sys/fs/bpf": "/sys/fs/bpf",
      "/sys/kernel/tracing": "/sys/kernel/tracing",
      "/sys/fs/cgroup": "/sys/fs/cgroup",
      "/proc": "/host/proc",
      "/run/ward": "/run/ward",
      "/var/lib/ward/policies": "/var/lib/ward/policies",
    });
    expect(c.volumeMounts.find((m: Obj) => m.mountPath === "/sys/fs/bpf").mountPropagation).toBe("Bidirectional");
    expect(c.env).toContainEqual({ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } });
    expect(c.args[0]).toBe("agent");
    // Every arg is a flag the agent accepts (an unknown one throws here, as the agent would refuse to start).
    const cfg = parseAgentConfig(c.args.slice(1), { NODE_NAME: "node-1" }) as AgentConfig;
    expect(cfg.nodeName).toBe("node-1");
    // The pod and CR watches, in-cluster (no kubeconfig in a pod), waiting for the API server.
    expect(cfg).toMatchObject({ enableK8sApi: true, enableTracingPolicyCrd: true, k8sControlplaneRetry: -1 });
    expect(cfg.k8sKubeconfigPath).toBeUndefined();
    // In-cluster config needs the service account token mounted (not disabled).
    expect(pod.automountServiceAccountToken).not.toBe(false);
    expect(cfg.policyStoreDir).toBe("/var/lib/ward/policies");
    expect(cfg.bpfDir).toBe("/sys/fs/bpf/ward");
    // Every path the agent writes is on a mounted host directory.
    for (const p of [cfg.stateFile, cfg.tokenFile, cfg.exportFile!]) expect(p.startsWith("/run/ward/")).toBe(true);
  });

  test("systemd unit: ExecStart is an agent command line the parser accepts", () => {
    const unit = readFileSync(join(deploy, "systemd", "ward.service"), "utf8");
    const exec = /^ExecStart=(\S+) (.*)$/m.exec(unit)!;
    expect(exec[1]).toBe("/usr/local/bin/ward");
    const argv = exec[2]!.split(" ");
    expect(argv[0]).toBe("agent");
    const cfg = parseAgentConfig(argv.slice(1), {}) as AgentConfig;
    expect(cfg.policyDir).toBe("/etc/ward/policies");
    expect(cfg.policyStoreDir).toBe("/var/lib/ward/policies");
    // Enforcement outlives a crash of the agent; persistence needs the store (checked at start).
    expect(cfg.keepSensorsOnExit).toBe(true);
    expect(unit).toContain("ExecStartPre=/bin/mkdir -p /etc/ward/policies");
  });

  describe("OCI hook configs (deploy/oci-hook/)", () => {
    const hookDir = join(deploy, "oci-hook");
    const json = (f: string): Obj => JSON.parse(readFileSync(join(hookDir, f), "utf8")) as Obj;
    // runtime-spec 1.0.2 hook stages (config.md, "POSIX-platform Hooks").
    const STAGES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

    /** One OCI hook entry (path, args, env, timeout) that runs `ward oci-hook` with flags it accepts. */
    function checkEntry(h: Obj): void {
      expect(Object.keys(h).every((k) => ["path", "args", "env", "timeout"].includes(k))).toBe(true);
      expect(h.path).toBe("/usr/local/bin/ward"); // where docs/deploy.md (and the systemd page) install it
      expect(h.args.slice(0, 2)).toEqual(["ward", "oci-hook"]);
      const a = parseOciHookArgs(h.args.slice(2));
      expect(a.failMode).toBe("closed");
      // The runtime's own hook timeout (seconds) must be longer than ward's, so ward's fail mode decides, not a kill.
      expect(Number.isInteger(h.timeout)).toBe(true);
      expect(h.timeout * 1000).toBeGreaterThan(a.timeoutMs);
      expect(a.logFile).toBe("/var/log/ward-oci-hook.log");
      // The agent's own pods start while the agent is down (else a closed hook keeps it down).
      expect(a.failAllowNamespaces).toEqual([byKind("DaemonSet")[0]!.metadata.namespace]);
    }

    test("the files", () => {
      expect(readdirSync(hookDir).sort()).toEqual(["containerd-config.toml", "runc-hooks.json", "ward-oci-hook.json"]);
    });

    test("ward-oci-hook.json: an oci-hooks(5) 1.0.0 definition for createRuntime and poststop", () => {
      const d = json("ward-oci-hook.json");
      expect(Object.keys(d).sort()).toEqual(["hook", "stages", "version", "when"]);
      expect(d.version).toBe("1.0.0");
      // when: at least one of always, annotations, commands, hasBindMounts; every container here.
      expect(d.when).toEqual({ always: true });
      expect(d.stages).toEqual(["createRuntime", "poststop"]);
      for (const st of d.stages) expect(STAGES).toContain(st);
      checkEntry(d.hook);
    });

    test("runc-hooks.json: the config.json hooks object, the same hook for both stages", () => {
      const h = json("runc-hooks.json");
      expect(Object.keys(h).sort()).toEqual(["createRuntime", "poststop"]);
      expect(h.createRuntime).toHaveLength(1);
      expect(h.poststop).toEqual(h.createRuntime);
      checkEntry(h.createRuntime[0]);
      // The same hook as the hooks.d definition.
      expect(h.createRuntime[0]).toEqual(json("ward-oci-hook.json").hook);
    });

    test("containerd-config.toml: parses, points the runc runtime at a base spec", () => {
      const t = Bun.TOML.parse(readFileSync(join(hookDir, "containerd-config.toml"), "utf8")) as Obj;
      expect(t.version).toBe(2);
      const runcRt = t.plugins["io.containerd.grpc.v1.cri"].containerd.runtimes.runc;
      expect(runcRt).toEqual({ runtime_type: "io.containerd.runc.v2", base_runtime_spec: "/etc/containerd/ward-base-spec.json" });
      // The docs' recipe builds that file from runc-hooks.json.
      expect(readFileSync(join(import.meta.dir, "..", "..", "docs", "deploy.md"), "utf8")).toContain("/etc/containerd/ward-base-spec.json");
    });
  });
});
