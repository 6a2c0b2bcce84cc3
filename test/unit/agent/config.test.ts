// Agent flags and the token file.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../../../src/cli/args.ts";
import { DEFAULT_PORT, isLoopback, listenUrl, parseAgentConfig, parseListen, type AgentConfig } from "../../../src/agent/config.ts";
import { loadOrCreateToken, TokenFileError, tokensEqual } from "../../../src/agent/token.ts";

describe("parseAgentConfig", () => {
  test("defaults: loopback, /run/ward files, stdout JSON, hostname-or-NODE_NAME", () => {
    const c = parseAgentConfig([], { NODE_NAME: "n7" }) as AgentConfig;
    expect(c).toMatchObject({
      listen: { host: "127.0.0.1", port: DEFAULT_PORT },
      tokenFile: "/run/ward/token",
      stateFile: "/run/ward/agent.json",
      exportStdout: true,
      output: "json",
      keepSensorsOnExit: false,
      nodeName: "n7",
      policyFiles: [],
    });
  });

  test("--export-file turns stdout off unless --export-stdout", () => {
    expect((parseAgentConfig(["--export-file", "/x"]) as AgentConfig).exportStdout).toBe(false);
    expect((parseAgentConfig(["--export-file", "/x", "--export-stdout"]) as AgentConfig).exportStdout).toBe(true);
  });

  test("--policy repeats", () => {
    expect((parseAgentConfig(["--policy", "a.yaml", "--policy=b.yaml"]) as AgentConfig).policyFiles).toEqual(["a.yaml", "b.yaml"]);
  });

  test("bad values are UsageErrors", () => {
    for (const argv of [["--listen", "x"], ["--listen", "[zz]:1"], ["--listen", "h:99999"], ["-o", "text"], ["--node-name", ""], ["extra"]]) {
      expect(() => parseAgentConfig(argv)).toThrow(UsageError);
    }
  });
});

describe("listen addresses", () => {
  test("parse v4, names and bracketed v6", () => {
    expect(parseListen("0.0.0.0:1")).toEqual({ host: "0.0.0.0", port: 1 });
    expect(parseListen("localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(parseListen("[::1]:54321")).toEqual({ host: "::1", port: 54321 });
  });
  test("loopback detection and client URLs", () => {
    expect(["127.0.0.1", "127.1.2.3", "::1", "localhost"].every(isLoopback)).toBe(true);
    expect(["0.0.0.0", "::", "10.0.0.1", "example.com"].some(isLoopback)).toBe(false);
    expect(listenUrl({ host: "0.0.0.0", port: 5 })).toBe("http://127.0.0.1:5");
    expect(listenUrl({ host: "::1", port: 5 })).toBe("http://[::1]:5");
  });
});

describe("token file", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("created 0600 with 64 hex chars when missing, then reused", () => {
    dir = mkdtempSync(join(tmpdir(), "ward-token-"));
    const p = join(dir, "sub", "token");
    const a = loadOrCreateToken(p);
    expect(a.created).toBe(true);
    expect(a.token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "sub")).mode & 0o777).toBe(0o700);
    const b = loadOrCreateToken(p);
    expect(b).toEqual({ token: a.token, created: false });
  });

  test("a group/world-readable file is tightened; short tokens are refused", () => {
    dir = mkdtempSync(join(tmpdir(), "ward-token-"));
    const p = join(dir, "token");
    writeFileSync(p, "0123456789abcdef0123\n");
    chmodSync(p, 0o644);
    expect(loadOrCreateToken(p).token).toBe("0123456789abcdef0123");
    expect(statSync(p).mode & 0o777).toBe(0o600);
    writeFileSync(p, "short\n");
    expect(() => loadOrCreateToken(p)).toThrow(TokenFileError);
    expect(readFileSync(p, "utf8")).toBe("short\n");
  });

  test("tokensEqual", () => {
    expect(tokensEqual("abc", "abc")).toBe(true);
    expect(tokensEqual("abd", "abc")).toBe(false);
    expect(tokensEqual("ab", "abc")).toBe(false);
    expect(tokensEqual("abcd", "abc")).toBe(false);
    expect(tokensEqual("", "abc")).toBe(false);
  });
});
