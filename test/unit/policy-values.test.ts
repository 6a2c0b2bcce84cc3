// Value formats inside policy strings (src/policy/values.ts), and the
// operator/type table (src/policy/operators.ts).
import { describe, expect, test } from "bun:test";
import {
  checkDns1123Subdomain, checkFqdn, checkUrl, parseAddrOrCidr, parseCapabilityName, parseGoInt, parseIntValue,
  parseNamedNumber, parsePortOrRange, parseRange, parseRateLimit, IPPROTO,
} from "../../src/policy/values.ts";
import { operatorsFor } from "../../src/policy/operators.ts";
import { ARG_TYPES } from "../../src/policy/types.ts";

describe("integers (Go strconv syntax)", () => {
  test("base 0 accepts prefixes like Go's ParseInt(s, 0, n)", () => {
    expect(parseGoInt("0x1f", 0)).toBe(31n);
    expect(parseGoInt("0X1F", 0)).toBe(31n);
    expect(parseGoInt("017", 0)).toBe(15n);
    expect(parseGoInt("0o17", 0)).toBe(15n);
    expect(parseGoInt("0b101", 0)).toBe(5n);
    expect(parseGoInt("-42", 0)).toBe(-42n);
    expect(parseGoInt("0x_1f", 0)).toBe(31n);
    expect(parseGoInt("1_000", 0)).toBe(1000n);
    expect(parseGoInt("0", 0)).toBe(0n);
  });
  test("rejects what Go rejects", () => {
    for (const s of ["", "-", "0x", "08", "1e3", "0x1g", " 1", "1 ", "__1", "0x1__f", "1_"]) expect(parseGoInt(s, 0)).toBeUndefined();
    expect(parseGoInt("0x10", 10)).toBeUndefined();
  });
  test("width limits", () => {
    expect(parseIntValue("2147483647", "s32").ok).toBe(true);
    expect(parseIntValue("2147483648", "s32").ok).toBe(false);
    expect(parseIntValue("-1", "u32").ok).toBe(false);
    expect(parseIntValue("0xffffffffffffffff", "u64").ok).toBe(true);
    expect(parseIntValue("0x10000000000000000", "u64").ok).toBe(false);
  });
  test("ranges", () => {
    expect(parseRange("1:5", "s64")).toEqual({ ok: true, value: [1n, 5n] });
    expect(parseRange("7", "s64")).toEqual({ ok: true, value: [7n, 7n] });
    expect(parseRange("5:1", "s64").ok).toBe(false);
    expect(parseRange("1:2:3", "s64").ok).toBe(false);
  });
});

describe("network values", () => {
  test("addresses and CIDRs", () => {
    for (const s of ["10.0.0.1", "10.0.0.0/8", "0.0.0.0/0", "::1", "::", "fd00::/8", "2001:db8::1/128", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8"]) {
      expect([s, parseAddrOrCidr(s).ok]).toEqual([s, true]);
    }
    for (const s of ["10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.0/33", "::/129", "1::2::3", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "host", "10.0.0.0/", "10.0.0.0/08"]) {
      expect([s, parseAddrOrCidr(s).ok]).toEqual([s, false]);
    }
  });
  test("ports", () => {
    expect(parsePortOrRange("80")).toEqual({ ok: true, value: [80, 80] });
    expect(parsePortOrRange("0:1023")).toEqual({ ok: true, value: [0, 1023] });
    for (const s of ["65536", "-1", "80:70", "a", "1:2:3", ""]) expect(parsePortOrRange(s).ok).toBe(false);
  });
  test("protocol names and numbers", () => {
    expect(parseNamedNumber("IPPROTO_TCP", IPPROTO, "protocol", "IPPROTO_TCP")).toEqual({ ok: true, value: 6 });
    expect(parseNamedNumber("17", IPPROTO, "protocol", "IPPROTO_TCP")).toEqual({ ok: true, value: 17 });
    expect(parseNamedNumber("TCP", IPPROTO, "protocol", "IPPROTO_TCP").ok).toBe(false);
  });
});

describe("names and formats", () => {
  test("capabilities", () => {
    expect(parseCapabilityName("cap_sys_admin")).toEqual({ ok: true, value: { name: "CAP_SYS_ADMIN" } });
    expect(parseCapabilityName("DAC_OVERRIDE")).toEqual({ ok: true, value: { name: "DAC_OVERRIDE" } });
    const alias = parseCapabilityName("CAP_DAC_OVERRIDE");
    expect(alias.ok && alias.value.name).toBe("DAC_OVERRIDE");
    expect(alias.ok && alias.value.note !== undefined).toBe(true);
    expect(parseCapabilityName("CAP_NOPE").ok).toBe(false);
  });
  test("rate limits", () => {
    expect(parseRateLimit("10")).toEqual({ ok: true, value: 10_000 });
    expect(parseRateLimit("5s")).toEqual({ ok: true, value: 5_000 });
    expect(parseRateLimit("1m")).toEqual({ ok: true, value: 60_000 });
    expect(parseRateLimit("2H")).toEqual({ ok: true, value: 7_200_000 });
    expect(parseRateLimit("4294967295h")).toEqual({ ok: true, value: 0xffffffff });
    for (const s of ["", "m", "1d", "-1", "1.5s", "4294967296"]) expect(parseRateLimit(s).ok).toBe(false);
  });
  test("names, URLs, FQDNs", () => {
    expect(checkDns1123Subdomain("block-secret-read")).toBeUndefined();
    expect(checkDns1123Subdomain("a.b-c")).toBeUndefined();
    expect(checkDns1123Subdomain("Upper")).toBeDefined();
    expect(checkDns1123Subdomain("-x")).toBeDefined();
    expect(checkDns1123Subdomain("x".repeat(254))).toBeDefined();
    expect(checkUrl("http://example.com/a")).toBeUndefined();
    expect(checkUrl("file:///etc/passwd")).toBeDefined();
    expect(checkUrl("not a url")).toBeDefined();
    expect(checkFqdn("ebpf.io")).toBeUndefined();
    expect(checkFqdn("example.com.")).toBeUndefined();
    expect(checkFqdn("-bad.com")).toBeDefined();
    expect(checkFqdn("a..b")).toBeDefined();
  });
});

describe("operator table", () => {
  test("every argument type allows CelExpr and only known operators", () => {
    for (const t of ARG_TYPES) expect(operatorsFor(t)).toContain("CelExpr");
  });
  test("spot checks against Tetragon's rules", () => {
    expect(operatorsFor("sockaddr")).not.toContain("DAddr");
    expect(operatorsFor("sockaddr")).toContain("SAddr");
    expect(operatorsFor("sock")).toContain("State");
    expect(operatorsFor("file")).toContain("FileType");
    expect(operatorsFor("fd")).not.toContain("FileType");
    expect(operatorsFor("int")).toContain("InMap");
    expect(operatorsFor("int")).not.toContain("Prefix");
    expect(operatorsFor("string")).not.toContain("Mask");
    expect(operatorsFor("kernel_cap_t")).toContain("CapabilitiesGained");
    expect(operatorsFor("cred")).toEqual(["CelExpr"]);
  });
});
