// Malformed policies: each case asserts the exact line, column and field path
// of the diagnostic, and a fragment of its message, so a regression in
// positions or wording shows up here.
import { describe, expect, test } from "bun:test";
import { formatDiagnostic, validatePolicyText } from "../../src/policy/validate.ts";
import type { PolicyError } from "../../src/policy/types.ts";

// Line numbers of BASE are referred to below; keep it stable.
const BASE = [
  /* 1 */ "apiVersion: cilium.io/v1alpha1",
  /* 2 */ "kind: TracingPolicy",
  /* 3 */ "metadata:",
  /* 4 */ "  name: test",
  /* 5 */ "spec:",
  /* 6 */ "  kprobes:",
  /* 7 */ "  - call: security_file_open",
  /* 8 */ "    syscall: false",
  /* 9 */ "    args:",
  /* 10 */ "    - index: 0",
  /* 11 */ "      type: file",
  /* 12 */ "    selectors:",
  /* 13 */ "    - matchArgs:",
  /* 14 */ "      - index: 0",
  /* 15 */ "        operator: Prefix",
  /* 16 */ "        values:",
  /* 17 */ "        - /etc/",
  /* 18 */ "      matchActions:",
  /* 19 */ "      - action: Sigkill",
];

/** BASE with line N (1-based) replaced by one or more lines. */
function edit(edits: Record<number, string | string[]>): string {
  const out: string[] = [];
  BASE.forEach((l, i) => {
    const e = edits[i + 1];
    if (e === undefined) out.push(l);
    else out.push(...(Array.isArray(e) ? e : [e]));
  });
  return out.join("\n") + "\n";
}

// A socket policy for network operators.
const SOCK = (matchArg: string[], extra: string[] = []): string =>
  [
    "apiVersion: cilium.io/v1alpha1", // 1
    "kind: TracingPolicy", // 2
    "metadata:", // 3
    "  name: net", // 4
    "spec:", // 5
    "  kprobes:", // 6
    "  - call: tcp_connect", // 7
    "    syscall: false", // 8
    "    args:", // 9
    "    - index: 0", // 10
    "      type: sock", // 11
    "    selectors:", // 12
    "    - matchArgs:", // 13
    ...matchArg, // 14..
    ...extra,
  ].join("\n") + "\n";

function check(text: string): PolicyError[] {
  return validatePolicyText(text, "p.yaml").diagnostics;
}

interface Want {
  line: number;
  column: number;
  path: string;
  message: string;
  severity?: "error" | "warning";
  /** Other policies in the same file may still be valid. */
  othersValid?: boolean;
}

function expectDiag(text: string, want: Want): void {
  const diags = check(text);
  const sev = want.severity ?? "error";
  const hit = diags.find((d) => d.line === want.line && d.column === want.column && d.path === want.path && d.severity === sev);
  if (hit === undefined) {
    throw new Error(`no ${sev} at ${want.line}:${want.column} ${want.path}; got:\n${diags.map((d) => `${d.severity} ${d.line}:${d.column} ${d.path}: ${d.message}`).join("\n")}`);
  }
  expect(hit.message).toContain(want.message);
  expect(hit.file).toBe("p.yaml");
  if (sev === "error" && want.othersValid !== true) expect(validatePolicyText(text, "p.yaml").policies).toHaveLength(0);
}

describe("baseline", () => {
  test("the base policy is valid and has no diagnostics", () => {
    const r = validatePolicyText(edit({}), "p.yaml");
    expect(r.diagnostics).toEqual([]);
    expect(r.valid).toBe(true);
    expect(r.policies).toHaveLength(1);
    const k = r.policies[0]?.policy.spec.kprobes[0];
    expect(k?.syscall).toBe(false);
    expect(k?.selectors[0]?.matchArgs[0]?.operator).toBe("Prefix");
    expect(r.policies[0]?.sourceMap.get("spec.kprobes[0].selectors[0].matchArgs[0].operator")).toEqual({ line: 15, column: 19 });
  });
});

const cases: [string, string, Want][] = [
  ["YAML syntax: unterminated quote (reported where it opened)", edit({ 17: '        - "/etc/' }), { line: 17, column: 11, path: "", message: 'YAML syntax error: Missing closing "quote' }],
  ["YAML syntax: bad indentation", edit({ 11: "     type: file" }), { line: 11, column: 1, path: "", message: "YAML syntax error: Sequence item without - indicator" }],
  ["duplicate key in a hook: both positions", edit({ 8: "    call: other" }), { line: 8, column: 5, path: "spec.kprobes[0].call", message: 'duplicate key "call" (first at p.yaml:7:5)' }],
  ["duplicate key nested in a selector", edit({ 15: ["        operator: Prefix", "        operator: Equal"] }), { line: 16, column: 9, path: "spec.kprobes[0].selectors[0].matchArgs[0].operator", message: 'duplicate key "operator" (first at p.yaml:15:9)' }],
  ["duplicate top-level key", edit({ 3: ["metadata:", "  name: first", "metadata:"] }), { line: 5, column: 1, path: "metadata", message: 'duplicate key "metadata" (first at p.yaml:3:1)' }],
  ["duplicate key in JSON", '{"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",\n "metadata": {"name": "j", "name": "k"},\n "spec": {}}\n', { line: 2, column: 28, path: "metadata.name", message: 'duplicate key "name" (first at p.yaml:2:15)' }],
  ["unknown field with suggestion", edit({ 8: "    syscal: false" }), { line: 8, column: 5, path: "spec.kprobes[0].syscal", message: 'unknown field "syscal" in KProbeSpec (did you mean "syscall"?)' }],
  ["unknown selector field", edit({ 13: "    - matchArg:" }), { line: 13, column: 7, path: "spec.kprobes[0].selectors[0].matchArg", message: 'did you mean "matchArgs"' }],
  ["bool field given a string", edit({ 8: '    syscall: "no"' }), { line: 8, column: 14, path: "spec.kprobes[0].syscall", message: 'expected true or false, found the string "no"' }],
  ["int field given a string", edit({ 10: '    - index: "0"' }), { line: 10, column: 14, path: "spec.kprobes[0].args[0].index", message: "expected an integer" }],
  ["negative index", edit({ 10: "    - index: -1" }), { line: 10, column: 14, path: "spec.kprobes[0].args[0].index", message: "out of range (0..4294967295)" }],
  ["unknown argument type", edit({ 11: "      type: filee" }), { line: 11, column: 13, path: "spec.kprobes[0].args[0].type", message: '"filee" is not allowed here (did you mean "file"?)' }],
  ["unknown operator", edit({ 15: "        operator: StartsWith" }), { line: 15, column: 19, path: "spec.kprobes[0].selectors[0].matchArgs[0].operator", message: '"StartsWith" is not allowed here' }],
  ["operator on the wrong argument type", edit({ 15: "        operator: DPort" }), { line: 15, column: 19, path: "spec.kprobes[0].selectors[0].matchArgs[0].operator", message: "operator DPort cannot be applied to argument 0 of type file" }],
  ["matchArgs index not declared", edit({ 14: "      - index: 3" }), { line: 14, column: 16, path: "spec.kprobes[0].selectors[0].matchArgs[0].index", message: "matchArgs index 3 does not name a declared argument (declared indexes: 0)" }],
  ["kprobe argument index out of range", edit({ 10: "    - index: 5", 14: "      - index: 5" }), { line: 10, column: 14, path: "spec.kprobes[0].args[0].index", message: "argument index 5 is out of range" }],
  ["missing required field", edit({ 7: '  - message: "hello"' }), { line: 7, column: 5, path: "spec.kprobes[0].call", message: 'missing required field "call" in KProbeSpec' }],
  ["missing metadata.name", edit({ 4: "  labels: {a: b}" }), { line: 4, column: 3, path: "metadata.name", message: 'missing required field "name" in ObjectMeta' }],
  ["name not DNS-1123", edit({ 4: "  name: Test_Policy" }), { line: 4, column: 9, path: "metadata.name", message: "must be a DNS-1123 subdomain" }],
  ["unknown kind", edit({ 2: "kind: TracingPolicies" }), { line: 2, column: 7, path: "kind", message: '"TracingPolicies" is not allowed here (did you mean "TracingPolicy"?)' }],
  ["spec is not a map", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: x\nspec: []\n", { line: 5, column: 7, path: "spec", message: "expected a TracingPolicySpec (a map), found a list" }],
  ["unknown action", edit({ 19: "      - action: Kill" }), { line: 19, column: 17, path: "spec.kprobes[0].selectors[0].matchActions[0].action", message: '"Kill" is not allowed here' }],
  ["Signal without argSig", edit({ 19: "      - action: Signal" }), { line: 19, column: 9, path: "spec.kprobes[0].selectors[0].matchActions[0]", message: "Signal needs argSig" }],
  ["Signal with a bad signal number", edit({ 19: ["      - action: Signal", "        argSig: 99"] }), { line: 20, column: 17, path: "spec.kprobes[0].selectors[0].matchActions[0].argSig", message: "argSig 99 is not a signal number" }],
  ["Override without argError", edit({ 19: "      - action: Override" }), { line: 19, column: 9, path: "spec.kprobes[0].selectors[0].matchActions[0]", message: "Override needs argError" }],
  ["Override on a non-syscall, non-security function", edit({ 7: "  - call: fd_install", 19: ["      - action: Override", "        argError: -1"] }), { line: 19, column: 17, path: "spec.kprobes[0].selectors[0].matchActions[0].action", message: 'Override on kprobe "fd_install" is not possible' }],
  ["GetUrl with a bad URL", edit({ 19: ["      - action: GetUrl", "        argUrl: ftp://x"] }), { line: 20, column: 17, path: "spec.kprobes[0].selectors[0].matchActions[0].argUrl", message: "only http and https" }],
  ["removed FollowFD action", edit({ 19: ["      - action: FollowFD", "        argFd: 0", "        argName: 1"] }), { line: 19, column: 17, path: "spec.kprobes[0].selectors[0].matchActions[0].action", message: "action FollowFD was removed from Tetragon after v1.7.0" }],
  ["removed argFd parameter", edit({ 19: ["      - action: Post", "        argFd: 0"] }), { line: 20, column: 9, path: "spec.kprobes[0].selectors[0].matchActions[0].argFd", message: "argFd belonged to the FollowFD/UnfollowFD/CopyFD actions" }],
  ["DnsLookup without argFqdn", edit({ 19: "      - action: DnsLookup" }), { line: 19, column: 9, path: "spec.kprobes[0].selectors[0].matchActions[0]", message: "DnsLookup needs argFqdn" }],
  ["rateLimit with a bad format", edit({ 19: ["      - action: Post", '        rateLimit: "5x"'] }), { line: 20, column: 20, path: "spec.kprobes[0].selectors[0].matchActions[0].rateLimit", message: '"5x" is not a rate limit' }],
  ["rateLimit on Sigkill", edit({ 19: ["      - action: Sigkill", '        rateLimit: "1m"'] }), { line: 20, column: 20, path: "spec.kprobes[0].selectors[0].matchActions[0].rateLimit", message: "rateLimit only applies to the Post action" }],
  ["too many actions", edit({ 19: ["      - action: Post", "      - action: Post", "      - action: Post", "      - action: Sigkill"] }), { line: 22, column: 9, path: "spec.kprobes[0].selectors[0].matchActions[3]", message: "4 actions; at most 3" }],
  ["too many selectors", edit({ 12: ["    selectors:", "    - {}", "    - {}", "    - {}", "    - {}", "    - {}"] }), { line: 18, column: 7, path: "spec.kprobes[0].selectors[5]", message: "6 selectors; at most 5 per hook" }],
  ["two matchBinaries items", edit({ 18: ["      matchBinaries:", "      - {operator: In, values: [/bin/cat]}", "      - {operator: In, values: [/bin/dd]}", "      matchActions:"] }), { line: 20, column: 9, path: "spec.kprobes[0].selectors[0].matchBinaries[1]", message: "matchBinaries takes at most 1 item" }],
  ["matchBinaries with a bad operator", edit({ 18: ["      matchBinaries:", "      - {operator: Equal, values: [/bin/cat]}", "      matchActions:"] }), { line: 19, column: 20, path: "spec.kprobes[0].selectors[0].matchBinaries[0].operator", message: "allowed: In, NotIn, Prefix, NotPrefix, Postfix, NotPostfix" }],
  ["too many PIDs", edit({ 18: ["      matchPIDs:", "      - operator: In", "        values: [1, 2, 3, 4, 5]", "      matchActions:"] }), { line: 20, column: 30, path: "spec.kprobes[0].selectors[0].matchPIDs[0].values[4]", message: "5 PIDs; at most 4" }],
  ["bad capability", edit({ 18: ["      matchCapabilities:", "      - operator: In", "        values: [CAP_SYS_ADMINN]", "      matchActions:"] }), { line: 20, column: 18, path: "spec.kprobes[0].selectors[0].matchCapabilities[0].values[0]", message: '"CAP_SYS_ADMINN" is not a capability name' }],
  ["capability without CAP_ prefix", edit({ 18: ["      matchCapabilities:", "      - operator: In", "        values: [SYS_ADMIN]", "      matchActions:"] }), { line: 20, column: 18, path: "spec.kprobes[0].selectors[0].matchCapabilities[0].values[0]", message: "did you mean CAP_SYS_ADMIN?" }],
  ["bad namespace value", edit({ 18: ["      matchNamespaces:", "      - namespace: Pid", "        operator: In", "        values: [abc]", "      matchActions:"] }), { line: 21, column: 18, path: "spec.kprobes[0].selectors[0].matchNamespaces[0].values[0]", message: 'only be a decimal inode number (uint32) or "host_ns"' }],
  ["unknown namespace type", edit({ 18: ["      matchNamespaces:", "      - namespace: Pidd", "        operator: In", "        values: [host_ns]", "      matchActions:"] }), { line: 19, column: 20, path: "spec.kprobes[0].selectors[0].matchNamespaces[0].namespace", message: '"Pidd" is not allowed here' }],
  ["call refers to a missing list", edit({ 7: '  - call: "list:nope"', 8: "    syscall: true" }), { line: 7, column: 11, path: "spec.kprobes[0].call", message: 'refers to list "nope", which is not defined' }],
  ["return without returnArg", edit({ 8: ["    syscall: false", "    return: true"] }), { line: 9, column: 13, path: "spec.kprobes[0].return", message: "ReturnArg not specified with Return=true" }],
  ["matchReturnArgs without return", edit({ 13: ["    - matchReturnArgs:", "      - {index: 0, operator: Equal, values: ['0']}", "      matchArgs:"] }), { line: 14, column: 7, path: "spec.kprobes[0].selectors[0].matchReturnArgs", message: "needs return: true" }],
  ["message too short", edit({ 8: ["    syscall: false", '    message: "x"'] }), { line: 9, column: 14, path: "spec.kprobes[0].message", message: "at least 2 characters" }],
  ["Prefix value too long", edit({ 17: `        - /${"a".repeat(300)}` }), { line: 17, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "prefix is 301 bytes; at most 252" }],
  // The limit is the kernel's LPM key (256 bytes after prefixlen, 4 are the set id), in bytes.
  ["Prefix value one byte over the LPM key limit", edit({ 17: `        - /${"a".repeat(252)}` }), { line: 17, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "prefix is 253 bytes; at most 252 (the kernel's LPM trie key holds 256 bytes" }],
  ["Prefix value over the limit in bytes, not characters", edit({ 17: `        - /${"é".repeat(130)}` }), { line: 17, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "prefix is 261 bytes; at most 252" }],
  ["unsubstituted placeholder", edit({ 17: "        - ${SECRET_DIR}" }), { line: 17, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "unsubstituted placeholder ${SECRET_DIR}" }],
  ["bad CIDR", SOCK(["      - {index: 0, operator: DAddr, values: [10.0.0.0/33]}"]), { line: 14, column: 46, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "invalid prefix length (0..32 for IPv4)" }],
  ["bad IP address", SOCK(["      - {index: 0, operator: SAddr, values: [300.1.1.1]}"]), { line: 14, column: 46, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "is not an IPv4/IPv6 address or CIDR" }],
  ["bad port range", SOCK(["      - index: 0", "        operator: DPort", "        values:", '        - "80"', '        - "90:70"']), { line: 18, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[1]", message: 'port range "90:70" has min > max' }],
  ["port out of range", SOCK(["      - {index: 0, operator: SPort, values: ['70000']}"]), { line: 14, column: 46, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "port 70000 is out of range" }],
  ["unknown protocol name", SOCK(["      - {index: 0, operator: Protocol, values: [IPPROTO_TCPP]}"]), { line: 14, column: 49, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: "is not a protocol" }],
  ["Priv operator with values", SOCK(["      - {index: 0, operator: DPortPriv, values: ['22']}"]), { line: 14, column: 49, path: "spec.kprobes[0].selectors[0].matchArgs[0].values", message: "takes no values" }],
  ["too many integer values", edit({ 11: "      type: int", 15: "        operator: Equal", 16: "        values: ['1', '2', '3', '4', '5']", 17: [] }), { line: 16, column: 38, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[4]", message: "5 values; Equal on integers takes at most 4" }],
  ["integer value that is not a number", edit({ 11: "      type: int", 15: "        operator: Equal", 17: "        - abc" }), { line: 17, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]", message: '"abc" is not an integer' }],
  ["uprobe with both symbols and offsets", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: u\nspec:\n  uprobes:\n  - path: /bin/bash\n    symbols: [readline]\n    offsets: [16]\n", { line: 9, column: 14, path: "spec.uprobes[0].offsets", message: "at most one of symbols, addrs or offsets" }],
  ["namespaced policy with hostSelector", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicyNamespaced\nmetadata:\n  name: n\n  namespace: default\nspec:\n  hostSelector: {}\n  lsmhooks:\n  - hook: file_open\n", { line: 7, column: 17, path: "spec.hostSelector", message: "should have a null spec.hostSelector" }],
  ["bad label value in podSelector", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: l\nspec:\n  podSelector:\n    matchLabels:\n      app: \"my app\"\n  lsmhooks:\n  - hook: file_open\n", { line: 8, column: 12, path: "spec.podSelector.matchLabels.app", message: 'label value "my app" is not valid' }],
  ["LSM hook with security_ prefix", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: l\nspec:\n  lsmhooks:\n  - hook: security_file_open\n", { line: 7, column: 11, path: "spec.lsmhooks[0].hook", message: 'write "file_open"' }],
  ["InMap with a missing list", "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: t\nspec:\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n    args:\n    - {index: 4, type: syscall64}\n    selectors:\n    - matchArgs:\n      - {index: 0, operator: InMap, values: ['list:dups']}\n", { line: 13, column: 46, path: "spec.tracepoints[0].selectors[0].matchArgs[0].values[0]", message: 'refers to list "dups"' }],
  ["NotifyEnforcer without enforcers", edit({ 19: ["      - action: NotifyEnforcer", "        argSig: 9"] }), { line: 19, column: 17, path: "spec.kprobes[0].selectors[0].matchActions[0].action", message: "NotifyEnforcer needs spec.enforcers" }],
  ["unknown policy-mode option value", edit({ 5: ["spec:", "  options:", "  - {name: policy-mode, value: enforcing}"] }), { line: 7, column: 32, path: "spec.options[0].value", message: 'policy-mode takes "enforce" or "monitor"' }],
  ["JSON input", '{"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicy",\n "metadata": {"name": "j"},\n "spec": {"kprobes": [{"call": "x", "syscal": true}]}}\n', { line: 3, column: 37, path: "spec.kprobes[0].syscal", message: 'unknown field "syscal"' }],
];

describe("malformed policies", () => {
  test("there are at least 30 cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });
  for (const [name, text, want] of cases) {
    test(name, () => expectDiag(text, want));
  }
});

describe("file-level", () => {
  test("duplicate policy names within a file", () => {
    const doc = edit({});
    const text = doc + "---\n" + doc;
    // Second document starts at line 21 (19 lines + "---"); its name is on line 24.
    expectDiag(text, { line: 24, column: 9, path: "metadata.name", message: 'duplicate policy name "test" in this file (first defined at 4:9)', othersValid: true });
    // The first one is still valid.
    expect(validatePolicyText(text, "p.yaml").policies).toHaveLength(1);
  });

  test("duplicate keys print as file:line:col: path: message with the first position; each is reported, other documents still load", () => {
    const dup = edit({ 8: "    call: other", 15: ["        operator: Prefix", "        operator: Equal"] });
    const good = edit({ 4: "  name: good" });
    const r = validatePolicyText(dup + "---\n" + good, "/etc/ward/p.yaml");
    expect(r.diagnostics.map(formatDiagnostic)).toEqual([
      '/etc/ward/p.yaml:8:5: spec.kprobes[0].call: duplicate key "call" (first at /etc/ward/p.yaml:7:5)',
      '/etc/ward/p.yaml:16:9: spec.kprobes[0].selectors[0].matchArgs[0].operator: duplicate key "operator" (first at /etc/ward/p.yaml:15:9)',
    ]);
    expect(r.valid).toBe(false);
    expect(r.policies.map((p) => p.policy.metadata.name)).toEqual(["good"]);
  });

  test("all errors of a file are reported at once", () => {
    const text = edit({ 8: '    syscall: "no"', 11: "      type: filee", 19: "      - action: Kill" });
    const errors = check(text).filter((d) => d.severity === "error");
    expect(errors.map((e) => `${e.line}:${e.column}`)).toEqual(["8:14", "11:13", "19:17"]);
  });

  test("semantic errors in one hook are reported alongside type errors in another", () => {
    const text = edit({}) + [
      "  - call: fd_install",
      "    syscall: false",
      "    args:",
      "    - {index: 0, type: int}",
      "    selectors:",
      "    - matchArgs:",
      "      - {index: 0, operator: Prefix, values: [x]}",
      "  - call: [not, a, string]",
    ].join("\n") + "\n";
    const errors = check(text).filter((d) => d.severity === "error");
    expect(errors.map((e) => `${e.line}:${e.column} ${e.path}`)).toEqual([
      "26:30 spec.kprobes[1].selectors[0].matchArgs[0].operator",
      "27:11 spec.kprobes[2].call",
    ]);
  });

  test("an error in a list does not cascade into 'list not defined' errors where it is used", () => {
    const text = edit({ 5: ["spec:", "  lists:", "  - name: dups", "    type: syscall", "    values: [sys_dup]"], 7: '  - call: "list:dups"', 8: "    syscall: true" });
    const errors = check(text).filter((d) => d.severity === "error");
    expect(errors.map((e) => `${e.line}:${e.column} ${e.path}`)).toEqual(["8:11 spec.lists[0].type"]);
  });

  test("placeholders are substituted when asked", () => {
    const text = edit({ 17: "        - ${SECRET_DIR}" });
    const r = validatePolicyText(text, "p.yaml", { substitute: { SECRET_DIR: "/srv/secret/" } });
    expect(r.valid).toBe(true);
    expect(r.policies[0]?.policy.spec.kprobes[0]?.selectors[0]?.matchArgs[0]?.values).toEqual(["/srv/secret/"]);
  });

  test("an empty file is an error", () => {
    expectDiag("", { line: 1, column: 1, path: "", message: "no TracingPolicy found" });
  });

  test("non-policy documents are skipped with a warning", () => {
    const text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n---\n" + edit({});
    const r = validatePolicyText(text, "p.yaml");
    expect(r.valid).toBe(true);
    expect(r.policies).toHaveLength(1);
    expect(r.diagnostics).toEqual([{ file: "p.yaml", line: 1, column: 1, path: "", message: "document 0 is a Pod (apiVersion v1), not a TracingPolicy; skipped", severity: "warning" }]);
  });
});

describe("normalization", () => {
  test("aliases become canonical; Tetragon-rejected spellings warn", () => {
    const text = SOCK(
      ["      - {index: 0, operator: NotSPortPriv}", "      - {index: 0, operator: dport, values: ['443']}"],
      ["      matchActions:", "      - action: sigkill"],
    );
    const r = validatePolicyText(text, "p.yaml");
    expect(r.valid).toBe(true);
    const sel = r.policies[0]?.policy.spec.kprobes[0]?.selectors[0];
    expect(sel?.matchArgs.map((m) => m.operator)).toEqual(["NotSportPriv", "DPort"]);
    expect(sel?.matchActions[0]?.action).toBe("Sigkill");
    expect(r.diagnostics.map((d) => `${d.severity} ${d.line}:${d.column} ${d.path}`)).toEqual([
      "warning 15:30 spec.kprobes[0].selectors[0].matchArgs[1].operator",
    ]);
  });

  test("GT and SubStringIgnoreCase are normalized", () => {
    const text = edit({ 11: "      type: int", 15: "        operator: GT", 17: "        - 0x10" });
    const r = validatePolicyText(text, "p.yaml");
    expect(r.valid).toBe(true);
    const m = r.policies[0]?.policy.spec.kprobes[0]?.selectors[0]?.matchArgs[0];
    expect(m?.operator).toBe("GreaterThan");
    // A plain YAML number keeps its source spelling as the string value.
    expect(m?.values).toEqual(["0x10"]);
    const t2 = edit({ 15: "        operator: SubStringIgnoreCase" });
    const r2 = validatePolicyText(t2, "p.yaml");
    expect(r2.policies[0]?.policy.spec.kprobes[0]?.selectors[0]?.matchArgs[0]?.operator).toBe("SubStringIgnCase");
    expect(r2.diagnostics[0]?.severity).toBe("warning");
  });

  test("defaults are filled in", () => {
    const text = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: d\nspec:\n  kprobes:\n  - call: sys_write\n    args:\n    - index: 0\n      type: int\n";
    const r = validatePolicyText(text, "p.yaml");
    const k = r.policies[0]?.policy.spec.kprobes[0];
    expect(k).toEqual({
      call: "sys_write", syscall: true, return: false, args: [{ index: 0, type: "int", resolve: "", sizeArgIndex: 0, returnCopy: false, maxData: false, label: "" }],
      data: [], selectors: [], tags: [], ignore: { callNotFound: false },
    });
    expect(r.policies[0]?.policy.spec.lists).toEqual([]);
  });

  test("CAP_DAC_OVERRIDE becomes DAC_OVERRIDE with a warning", () => {
    const text = edit({ 18: ["      matchCapabilities:", "      - operator: In", "        values: [cap_dac_override, cap_sys_admin]", "      matchActions:"] });
    const r = validatePolicyText(text, "p.yaml");
    expect(r.valid).toBe(true);
    expect(r.policies[0]?.policy.spec.kprobes[0]?.selectors[0]?.matchCapabilities[0]?.values).toEqual(["DAC_OVERRIDE", "CAP_SYS_ADMIN"]);
    expect(r.diagnostics.filter((d) => d.severity === "warning")).toHaveLength(1);
  });
});

describe("selectorsMacros", () => {
  const withMacro = (selector: string[]): string => edit({
    5: ["spec:", "  selectorsMacros:", "    secrets:", "      matchArgs:", "      - {index: 0, operator: Prefix, values: [/etc/]}"],
    13: selector,
    14: [], 15: [], 16: [], 17: [],
  });

  test("a macro's filters are merged into the selector", () => {
    const r = validatePolicyText(withMacro(["    - macros: [secrets]"]), "p.yaml");
    expect(r.diagnostics).toEqual([]);
    const sel = r.policies[0]?.policy.spec.kprobes[0]?.selectors[0];
    expect(sel?.matchArgs).toEqual([{ index: 0, args: [], operator: "Prefix", values: ["/etc/"] }]);
    expect(sel?.matchActions[0]?.action).toBe("Sigkill");
  });

  test("an unknown macro and a field set twice are errors", () => {
    expectDiag(withMacro(["    - macros: [secret]"]), { line: 17, column: 16, path: "spec.kprobes[0].selectors[0].macros[0]", message: 'macro "secret" is not defined' });
    expectDiag(withMacro(["    - macros: [secrets]", "      matchArgs:", "      - {index: 0, operator: Postfix, values: [.key]}"]), {
      line: 17, column: 16, path: "spec.kprobes[0].selectors[0].macros[0]", message: 'matchArgs is set both in the selector and in macro "secrets"',
    });
  });
});

describe("lint", () => {
  test("string filter on openat at syscall entry warns and names the bypasses and the alternative", () => {
    const text = [
      "apiVersion: cilium.io/v1alpha1", "kind: TracingPolicy", "metadata:", "  name: o", "spec:", "  kprobes:",
      "  - call: sys_openat", "    syscall: true", "    args:", "    - {index: 1, type: string}", "    selectors:",
      "    - matchArgs:", "      - {index: 1, operator: Equal, values: [/etc/shadow]}",
    ].join("\n") + "\n";
    const r = validatePolicyText(text, "p.yaml");
    expect(r.valid).toBe(true);
    const w = r.diagnostics.find((d) => d.severity === "warning");
    expect(w).toMatchObject({ line: 13, column: 9, path: "spec.kprobes[0].selectors[0].matchArgs[0]" });
    for (const word of ["relative paths", "openat2", "open_by_handle_at", "io_uring", "TOCTOU", "security_file_open", "`file` argument"]) {
      expect(w?.message).toContain(word);
    }
  });

  test("Equal/Prefix values that are not absolute paths on a file argument warn", () => {
    const r = validatePolicyText(edit({ 17: "        - .bashrc" }), "p.yaml");
    expect(r.valid).toBe(true);
    expect(r.diagnostics).toMatchObject([{ severity: "warning", line: 17, column: 11, path: "spec.kprobes[0].selectors[0].matchArgs[0].values[0]" }]);
    expect(r.diagnostics[0]?.message).toContain("use Postfix");
  });

  test("syscall tracepoints warn too; security_file_open does not", () => {
    const tp = [
      "apiVersion: cilium.io/v1alpha1", "kind: TracingPolicy", "metadata:", "  name: o", "spec:", "  tracepoints:",
      "  - subsystem: syscalls", "    event: sys_enter_openat", "    args:", "    - {index: 6, type: string}", "    selectors:",
      "    - matchArgs:", "      - {index: 6, operator: Prefix, values: [/etc/]}",
    ].join("\n") + "\n";
    expect(validatePolicyText(tp, "p.yaml").diagnostics.some((d) => d.severity === "warning" && d.message.includes("TOCTOU"))).toBe(true);
    expect(validatePolicyText(edit({}), "p.yaml").diagnostics).toEqual([]);
  });
});
