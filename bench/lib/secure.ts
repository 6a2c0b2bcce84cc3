// The talk's secure policy as a bench treatment: `dist/ward agent --policy` with the policy
// test/lib/talk-policies.ts builds, protecting a secret file and allowing one binary. The
// talk's policy as written (Override -1 plus Sigkill: the open is refused and the opener
// dies) is tried first; where the agent refuses Override (no BPF LSM and no fanotify) the
// Sigkill variant runs, and the refusal is kept for the report. Every start proves the rule is in effect before anything is measured: cat of the
// secret fails or dies, the allowed binary still reads it.
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { secureOpenPolicy } from "../../test/lib/talk-policies.ts";
import { AgentTreatment, type BenchAgent } from "./agent.ts";
import { waitFor } from "./host.ts";

export class SecureTreatmentError extends Error {
  override name = "SecureTreatmentError";
}

export const SECRET_TEXT = "I love pizza!\n";
export const SECURE_POLICY = "bench-secure-open";

/** How `cat PATH` ends: "killed" (SIGKILL), "read" (printed the content), or what else happened. */
export function catOutcome(path: string): string {
  const r = spawnSync("cat", [path], { encoding: "utf8", timeout: 10_000 });
  if (r.signal === "SIGKILL") return r.stdout.includes("pizza") ? "killed after printing" : "killed";
  if (r.status === 0 && r.stdout === SECRET_TEXT) return "read";
  return `exit ${r.status ?? r.signal}: ${r.stderr.trim()}`;
}

export async function assertKills(what: string, secret: string, timeoutMs: number, alive?: () => void): Promise<void> {
  let last = "";
  const ok = await waitFor(() => {
    alive?.();
    last = catOutcome(secret);
    return last === "killed";
  }, timeoutMs);
  if (!ok) throw new SecureTreatmentError(`${what}: cat of the secret was not killed within ${timeoutMs} ms (last: ${last})`);
}

/** The mechanism /v1/status names for the policy's hooks; throws unless it is enforcing. */
export async function policyMechanism(agent: BenchAgent, policy: string): Promise<string> {
  const st = await agent.status();
  const p = st.policies.find((x) => x.name === policy);
  if (p?.state !== "enforcing") throw new SecureTreatmentError(`policy ${policy} is ${p?.state ?? "missing"} in /v1/status`);
  return p.hooks?.map((h) => h.mechanism).join("; ") ?? "(no hook reported)";
}

export interface SecureSetup {
  treatment: AgentTreatment;
  variant: "Override + Sigkill" | "Sigkill";
  /** why Override did not run, when it did not */
  refusal?: string;
  /** the guard mechanism /v1/status reported at the last start */
  mechanism(): string;
}

/**
 * Writes the secret (with SECRET_TEXT) and picks the variant. `allowedReads` must open the
 * secret through the allowed binary and throw when that fails.
 */
export async function secureTreatment(dir: string, secret: string, allowed: string, allowedReads: () => void, extraPolicies: string[] = []): Promise<SecureSetup> {
  mkdirSync(dirname(secret), { recursive: true });
  writeFileSync(secret, SECRET_TEXT);
  let mechanism = "";
  const make = (variant: SecureSetup["variant"]): AgentTreatment => {
    const file = join(dir, `secure-${variant === "Sigkill" ? "sigkill" : "override"}.yaml`);
    const action = variant === "Sigkill" ? "Sigkill" : "Override\n        argError: -1\n      - action: Sigkill";
    writeFileSync(file, secureOpenPolicy({ name: SECURE_POLICY, file: secret, allowed, action }));
    return new AgentTreatment(`ward agent --policy secure (${variant})`, dir, { policies: [file, ...extraPolicies] }, async (a) => {
      await assertKills(`secure ${variant}`, secret, 10_000, () => a.assertRunning());
      allowedReads();
      mechanism = await policyMechanism(a, SECURE_POLICY);
    });
  };
  const override = make("Override + Sigkill");
  try {
    await override.start();
    await override.stop();
    return { treatment: override, variant: "Override + Sigkill", mechanism: () => mechanism };
  } catch (e) {
    await override.stop();
    // The agent refuses a policy it cannot honour and exits; the line naming Override says why.
    const msg = e instanceof Error ? e.message : String(e);
    const line = msg.split("\n").filter((l) => /override/i.test(l)).slice(-1)[0] ?? msg.split("\n")[0] ?? "";
    const refusal = line.trim().replace(/^.*?: spec\./, "spec.").slice(0, 400);
    return { treatment: make("Sigkill"), variant: "Sigkill", refusal, mechanism: () => mechanism };
  }
}
