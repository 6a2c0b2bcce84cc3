// The single binary: dist/ward runs from another directory with nothing next to it, the
// sensor objects are embedded (read back byte-identical from a compiled entry point), and the
// light commands (version, oci-hook, status, policy validate, the remote policy commands) load
// only their own chunks.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { binaryEntries, compileFlags } from "../../build/binary.ts";
import { objectNames } from "../../src/bpf/objects.ts";
import { readState } from "../../src/agent/state-file.ts";
import { VERSION } from "../../src/version.ts";
import { ensureBinary } from "../lib/binary.ts";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");

function runIn(cwd: string, cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("dist/ward", () => {
  test("`ward version` runs from /tmp", async () => {
    const ward = await ensureBinary();
    const r = runIn("/tmp", ward, ["version"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`ward ${VERSION}`);
  }, 120_000);

  test("embedded sensor objects read back byte-identical from a compiled binary in /tmp", () => {
    // A tiny entry compiled the same way as dist/ward (build/binary.ts's flags) that prints
    // each embedded object's size and hash; run from /tmp so no checkout path can help.
    const dir = mkdtempSync(join(tmpdir(), "ward-embed-"));
    try {
      const entry = join(dir, "entry.ts");
      writeFileSync(
        entry,
        `import { objectNames, readObject } from ${JSON.stringify(join(root, "src", "bpf", "objects.ts"))};\n` +
          `const out: Record<string, string> = {};\n` +
          `for (const n of objectNames()) out[n] = new Bun.CryptoHasher("sha256").update(readObject(n)).digest("hex");\n` +
          `process.stdout.write(JSON.stringify(out));\n`,
      );
      const exe = join(dir, "embed");
      const b = runIn(root, process.execPath, ["build", ...compileFlags, entry, "--outfile", exe]);
      expect(b.stderr).not.toContain("error");
      expect(b.code).toBe(0);
      rmSync(entry);
      const r = runIn("/tmp", exe, []);
      expect(r.code).toBe(0);
      const got = JSON.parse(r.stdout) as Record<string, string>;
      const names = objectNames();
      expect(names.length).toBeGreaterThan(0);
      expect(Object.keys(got).sort()).toEqual(names);
      for (const n of names) {
        const want = new Bun.CryptoHasher("sha256").update(readFileSync(join(root, "bpf", "obj", `${n}.o`))).digest("hex");
        expect({ n, sha: got[n] }).toEqual({ n, sha: want });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("light commands run from their chunks of the compiled binary", async () => {
    const ward = await ensureBinary();
    const dir = mkdtempSync(join(tmpdir(), "ward-light-"));
    try {
      // policy validate: the yaml and policy chunk, a diagnostic with file:line:col.
      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspec:\n  kprobes:\n  - call: security_file_open\n    syscall: nope\n");
      const v = runIn("/tmp", ward, ["policy", "validate", join(root, "policies", "kill-secret-read.yaml"), bad]);
      expect(v.code).toBe(1);
      expect(v.stdout + v.stderr).toContain(`${bad}:8:14: spec.kprobes[0].syscall: expected true or false`);
      expect(v.stdout + v.stderr).not.toContain("kill-secret-read.yaml:");
      // oci-hook as a poststop hook with no agent: says so and exits 0 (a runtime ignores a
      // poststop failure, so the hook never reports one as an exit code).
      const missing = join(dir, "agent.json");
      const state = JSON.stringify({ ociVersion: "1.0.2", id: "ward-light-test", status: "stopped", pid: 0, bundle: dir, annotations: {} });
      const h = spawnSync(ward, ["oci-hook", "--state-file", missing], { cwd: "/tmp", input: state, encoding: "utf8", timeout: 60_000 });
      expect(h.status).toBe(0);
      expect(h.stderr).toContain(`ward oci-hook: container ward-light-test (poststop): no agent found: ${missing} does not exist`);
      // status with no agent: the client's error, exit 1.
      const st = spawnSync(ward, ["status"], { cwd: "/tmp", env: { ...process.env, WARD_STATE_FILE: missing }, encoding: "utf8", timeout: 60_000 });
      expect(st.stderr).toContain(`no agent found: ${missing} does not exist`);
      expect(st.status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("light commands load only their own modules (the chunks of build/binary.ts's compile)", () => {
    // The same compile as dist/ward with Bun's metafile: which chunk each command's dynamic
    // import became, what it imports statically (loaded and evaluated with it) and which
    // source modules are in each chunk. A static import of the agent, the loader or yaml from
    // a light command's module graph would show here (and cost every hook start its bytecode).
    const dir = mkdtempSync(join(tmpdir(), "ward-chunks-"));
    try {
      const meta = join(dir, "meta.json");
      const b = runIn(root, process.execPath, ["build", ...compileFlags, ...binaryEntries, "--outfile", join(dir, "ward"), `--metafile=${meta}`]);
      expect(b.stderr).not.toContain("error");
      expect(b.code).toBe(0);
      type Output = { bytes: number; entryPoint?: string; imports: { path: string; kind: string }[]; inputs: Record<string, unknown> };
      const outputs = (JSON.parse(readFileSync(meta, "utf8")) as { outputs: Record<string, Output> }).outputs;
      const byEntry = new Map(Object.entries(outputs).flatMap(([k, o]) => (o.entryPoint ? [[o.entryPoint, k] as const] : [])));
      // Chunks loaded with an entry (main.ts, then the command's own chunks): static imports only.
      const loaded = (entries: string[]): { bytes: number; modules: string[] } => {
        const seen = new Set<string>();
        const walk = (k: string): void => {
          if (seen.has(k)) return;
          seen.add(k);
          for (const i of outputs[k]!.imports) if (i.kind === "import-statement") walk(i.path.startsWith("./") ? i.path : `./${i.path}`);
        };
        for (const e of ["src/cli/main.ts", ...entries]) {
          const k = byEntry.get(e);
          expect({ e, chunk: k !== undefined }).toEqual({ e, chunk: true });
          walk(k!);
        }
        const chunks = [...seen].map((k) => outputs[k]!);
        return { bytes: chunks.reduce((a, o) => a + o.bytes, 0), modules: chunks.flatMap((o) => Object.keys(o.inputs)) };
      };
      const heavy = /^(node_modules\/hono\/|src\/bpf\/|src\/sensors\/|src\/api\/|src\/agent\/agent\.ts$|src\/policy\/engine\.ts$|engine-as\/|bpf\/obj\/)/;
      const noPolicy = /^(node_modules\/yaml\/|src\/policy\/)/;
      const cases: { name: string; entries: string[]; maxBytes: number; yaml: boolean }[] = [
        { name: "version", entries: ["src/cli/commands/version.ts"], maxBytes: 8_000, yaml: false },
        { name: "oci-hook", entries: ["src/cli/commands/oci-hook.ts"], maxBytes: 48_000, yaml: false },
        { name: "status", entries: ["src/cli/commands/status.ts"], maxBytes: 32_000, yaml: false },
        // policy add/list/delete/...: the agent parses; the command sends the file as it is.
        { name: "policy list", entries: ["src/cli/commands/policy.ts", "src/cli/commands/policy-remote.ts"], maxBytes: 48_000, yaml: false },
        // validate parses YAML: yaml and the policy checks are its work, the rest is not.
        { name: "policy validate", entries: ["src/cli/commands/policy.ts", "src/policy/validate.ts"], maxBytes: 400_000, yaml: true },
      ];
      for (const c of cases) {
        const l = loaded(c.entries);
        const bad = l.modules.filter((m) => heavy.test(m) || (!c.yaml && noPolicy.test(m)));
        expect({ command: c.name, heavy: bad }).toEqual({ command: c.name, heavy: [] });
        expect({ command: c.name, underBudget: l.bytes <= c.maxBytes, bytes: l.bytes }).toEqual({ command: c.name, underBudget: true, bytes: l.bytes });
      }
      // The agent's chunk does hold the loader and hono: the walk sees real imports.
      const agent = loaded(["src/cli/commands/agent.ts"]).modules;
      expect(agent.some((m) => m.startsWith("src/bpf/"))).toBe(true);
      expect(agent.some((m) => m.startsWith("node_modules/hono/"))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  // The fanotify engine decision thread is a second entrypoint of the split binary
  // (sensors/fanotify-worker.js importing shared chunks): it must load from the binary's own
  // file system and decide. A matchCapabilities selector is engine-decided (fanotify.ts).
  kernelTest("dist/ward agent: an engine-decided fanotify rule runs its decision thread from the binary (root cat gets EPERM, nobody reads)", async () => {
    const ward = await ensureBinary();
    const dir = mkdtempSync(join(tmpdir(), "ward-bin-worker-"));
    chmodSync(dir, 0o755);
    const file = join(dir, "secret");
    writeFileSync(file, "secret\n");
    chmodSync(file, 0o644);
    const policy = join(dir, "p.yaml");
    writeFileSync(
      policy,
      `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bin-engine-worker
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["${file}"]
      matchCapabilities:
      - type: Effective
        operator: In
        values: ["CAP_SYS_ADMIN"]
      matchActions:
      - action: Override
        argError: -1
`,
    );
    const state = join(dir, "agent.json");
    const agent = Bun.spawn(
      [ward, "agent", "--listen", "127.0.0.1:0", "--state-file", state, "--token-file", join(dir, "token"), "--export-file", join(dir, "events.log"), "--bpf-dir", `/sys/fs/bpf/ward-bin-worker-${process.pid}`, "--policy", policy],
      { cwd: "/tmp", stdout: "ignore", stderr: "pipe" },
    );
    try {
      let ready = false;
      for (let i = 0; i < 600 && !ready && agent.exitCode === null; i++) {
        await Bun.sleep(100);
        const url = existsSync(state) ? readState(state)?.url : undefined;
        if (url !== undefined) ready = await fetch(`${url}/healthz`).then((r) => r.status === 200, () => false);
      }
      expect({ ready, exit: agent.exitCode }).toEqual({ ready: true, exit: null });
      const st = spawnSync(ward, ["status"], { cwd: "/tmp", env: { ...process.env, WARD_STATE_FILE: state }, encoding: "utf8", timeout: 60_000 });
      expect(st.stdout).toMatch(/bin-engine-worker\s+enforce\s+enforcing/);
      expect(st.stdout).toContain("policy engine's userspace evaluate()");
      const rootCat = spawnSync("cat", [file], { encoding: "utf8", timeout: 10_000 });
      expect({ code: rootCat.status, stderr: rootCat.stderr }).toEqual({ code: 1, stderr: `cat: ${file}: Operation not permitted\n` });
      const nobody = spawnSync("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", file], { encoding: "utf8", timeout: 10_000 });
      expect({ code: nobody.status, stdout: nobody.stdout }).toEqual({ code: 0, stdout: "secret\n" });
    } finally {
      agent.kill("SIGTERM");
      await agent.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  // The machine facts from design.md: tp_btf and cgroup programs work, LSM loads are
  // refused with EPERM. The probe runs real loads, so this needs root.
  kernelTest("`ward probe --json` from /tmp reports tp_btf and cgroup supported, LSM refused", async () => {
    const ward = await ensureBinary();
    const r = runIn("/tmp", ward, ["probe", "--json"]);
    expect(r.code).toBe(0);
    type Status = { status: string; code?: string };
    const report = JSON.parse(r.stdout) as {
      kernel: { release: string; btf: boolean };
      programTypes: Record<string, Status>;
      attach: Record<string, Status>;
    };
    expect(report.kernel.btf).toBe(true);
    expect(report.attach.tp_btf?.status).toBe("supported");
    expect(report.attach.cgroup?.status).toBe("supported");
    expect(report.programTypes.cgroup_sock_addr?.status).toBe("supported");
    expect(report.programTypes.tracing?.status).toBe("supported");
    expect(report.attach.lsm).toMatchObject({ status: "refused", code: "EPERM" });
    expect(report.programTypes.lsm).toMatchObject({ status: "refused", code: "EPERM" });
  }, 120_000);
});
