// PolicySink over the agent's PolicyStore: how TracingPolicy CRs become policies. A CR is
// added with source "k8s:<kind>/[<namespace>/]<name>" (not "api", so it is not written to
// the policy store directory: the API server is its record). A changed CR replaces the
// policy it applied before; if the new version is refused, the old one is put back and the
// refusal is thrown (the watcher reports it), so a bad edit never leaves the workload
// unprotected for longer than the swap. A name already used by a policy from another
// source (a file, the API, a namespaced CR in another namespace: the store is keyed by
// metadata.name) is refused rather than overwritten.
import type { PolicyStore } from "../../agent/policy-store.ts";
import type { K8sObject } from "./client.ts";
import type { PolicyRef, PolicySink } from "./policies.ts";

export class PolicyNameConflictError extends Error {
  override name = "PolicyNameConflictError";
  readonly code = "policy_name_conflict";
  constructor(
    readonly policy: string,
    readonly source: string,
    readonly holder: string,
  ) {
    super(`policy "${policy}" from ${source} is not applied: the name is taken by ${holder}; rename one`);
  }
}

export function policyStoreSink(store: Pick<PolicyStore, "add" | "delete" | "get">): PolicySink {
  return {
    async apply(doc: K8sObject, ref: PolicyRef, source: string): Promise<void> {
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      const old = store.get(ref.name);
      if (old !== undefined && old.source !== source) throw new PolicyNameConflictError(ref.name, source, old.source);
      if (old === undefined) {
        store.add(text, { source, file: source });
        return;
      }
      store.delete(ref.name);
      try {
        store.add(text, { source, file: source });
      } catch (err) {
        // Put the previous version back (it was valid and applied a moment ago).
        store.add(old.text, { source, file: source, mode: old.mode });
        throw err;
      }
    },
    async remove(ref: PolicyRef, source: string): Promise<void> {
      if (store.get(ref.name)?.source === source) store.delete(ref.name);
    },
  };
}
