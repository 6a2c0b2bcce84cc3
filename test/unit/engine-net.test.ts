// Socket operators: ports (single, ranges, privileged), addresses and CIDRs (v4/v6,
// /0 and host routes), protocol, family, state; sock vs sockaddr arguments.
import { describe, expect, test } from "bun:test";
import { argMatcher, compileMutated, firstSelector, hits, kprobePolicy } from "./engine-helpers.ts";

const tcp4 = (over: Record<string, unknown> = {}) => ({ sock: { family: 2, protocol: 6, state: 1, saddr: "10.0.0.1", daddr: "192.168.1.10", sport: 40000, dport: 443, ...over } });
const tcp6 = (over: Record<string, unknown> = {}) => ({ sock: { family: 10, protocol: 6, state: 1, saddr: "fd00::1", daddr: "2001:db8::5", sport: 40000, dport: 443, ...over } });

describe("ports", () => {
  test("DPort with single ports and an inclusive range", () => {
    const c = argMatcher("sock", "DPort", ["80", "443", "8000:8080"]);
    for (const p of [80, 443, 8000, 8042, 8080]) expect(hits(c, tcp4({ dport: p }))).toBe(true);
    for (const p of [79, 81, 7999, 8081]) expect(hits(c, tcp4({ dport: p }))).toBe(false);
  });

  test("NotSPort: none of the ports", () => {
    const c = argMatcher("sock", "NotSPort", ["22"]);
    expect(hits(c, tcp4({ sport: 22 }))).toBe(false);
    expect(hits(c, tcp4({ sport: 23 }))).toBe(true);
  });

  test("more than four ranges go to the int set and still match exactly", () => {
    const c = argMatcher("sock", "DPort", ["1", "2", "3", "4", "10:12"]);
    expect(c.tables.intSet.count).toBe(7);
    for (const p of [1, 2, 3, 4, 10, 11, 12]) expect(hits(c, tcp4({ dport: p }))).toBe(true);
    for (const p of [0, 5, 9, 13]) expect(hits(c, tcp4({ dport: p }))).toBe(false);
  });

  test("DPortPriv / NotDPortPriv: privileged is below 1024", () => {
    const c = argMatcher("sock", "DPortPriv", []);
    expect(hits(c, tcp4({ dport: 1023 }))).toBe(true);
    expect(hits(c, tcp4({ dport: 1024 }))).toBe(false);
    const n = argMatcher("sock", "NotDPortPriv", []);
    expect(hits(n, tcp4({ dport: 0 }))).toBe(false);
    expect(hits(n, tcp4({ dport: 65535 }))).toBe(true);
  });

  test("SPort on a sockaddr argument uses its port", () => {
    const c = argMatcher("sockaddr", "SPort", ["53"]);
    expect(hits(c, { sock: { family: 2, saddr: "8.8.8.8", sport: 53 } })).toBe(true);
    expect(hits(c, { sock: { family: 2, saddr: "8.8.8.8", sport: 54 } })).toBe(false);
  });
});

describe("addresses", () => {
  test("DAddr with a v4 CIDR and a host address (/32)", () => {
    const c = argMatcher("sock", "DAddr", ["192.168.0.0/16", "8.8.8.8/32"]);
    expect(hits(c, tcp4({ daddr: "192.168.255.1" }))).toBe(true);
    expect(hits(c, tcp4({ daddr: "8.8.8.8" }))).toBe(true);
    expect(hits(c, tcp4({ daddr: "8.8.8.9" }))).toBe(false);
    expect(hits(c, tcp4({ daddr: "192.169.0.1" }))).toBe(false);
  });

  test("0.0.0.0/0 matches every IPv4 address and no IPv6 address", () => {
    const c = argMatcher("sock", "DAddr", ["0.0.0.0/0"]);
    expect(hits(c, tcp4({ daddr: "1.2.3.4" }))).toBe(true);
    expect(hits(c, tcp4({ daddr: "255.255.255.255" }))).toBe(true);
    expect(hits(c, tcp6())).toBe(false);
  });

  test("::/0 matches every IPv6 address and no IPv4 address", () => {
    const c = argMatcher("sock", "SAddr", ["::/0"]);
    expect(hits(c, tcp6({ saddr: "::1" }))).toBe(true);
    expect(hits(c, tcp4())).toBe(false);
  });

  test("IPv6 CIDRs and host addresses (/128), compressed and mapped forms", () => {
    const c = argMatcher("sock", "DAddr", ["2001:db8::/32", "::ffff:10.1.2.3", "fe80::1/128"]);
    expect(hits(c, tcp6({ daddr: "2001:db8:ffff::1" }))).toBe(true);
    expect(hits(c, tcp6({ daddr: "2001:db9::1" }))).toBe(false);
    expect(hits(c, tcp6({ daddr: "::ffff:10.1.2.3" }))).toBe(true);
    expect(hits(c, tcp6({ daddr: "fe80::1" }))).toBe(true);
    expect(hits(c, tcp6({ daddr: "fe80::2" }))).toBe(false);
  });

  test("a CIDR with host bits set is masked (10.1.2.3/8 means 10.0.0.0/8)", () => {
    const c = argMatcher("sock", "DAddr", ["10.1.2.3/8"]);
    expect(hits(c, tcp4({ daddr: "10.200.0.1" }))).toBe(true);
  });

  test("NotDAddr: outside every CIDR; a non-IP socket is outside too", () => {
    const c = argMatcher("sock", "NotDAddr", ["127.0.0.0/8", "10.0.0.0/8"]);
    expect(hits(c, tcp4({ daddr: "127.0.0.1" }))).toBe(false);
    expect(hits(c, tcp4({ daddr: "1.1.1.1" }))).toBe(true);
    expect(hits(c, { sock: { family: 1 } })).toBe(true);
  });

  test("SAddr on sockaddr", () => {
    const c = argMatcher("sockaddr", "SAddr", ["127.0.0.1"]);
    expect(hits(c, { sock: { family: 2, saddr: "127.0.0.1", sport: 80 } })).toBe(true);
    expect(hits(c, { sock: { family: 2, saddr: "127.0.0.2", sport: 80 } })).toBe(false);
  });
});

describe("protocol, family, state", () => {
  test("Protocol by name and number", () => {
    const c = argMatcher("sock", "Protocol", ["IPPROTO_UDP", "6"]);
    expect(hits(c, tcp4({ protocol: 17 }))).toBe(true);
    expect(hits(c, tcp4({ protocol: 6 }))).toBe(true);
    expect(hits(c, tcp4({ protocol: 1 }))).toBe(false);
  });

  test("Family by name", () => {
    const c = argMatcher("sock", "Family", ["AF_INET6"]);
    expect(hits(c, tcp6())).toBe(true);
    expect(hits(c, tcp4())).toBe(false);
  });

  test("State by TCP_* name", () => {
    const c = argMatcher("sock", "State", ["TCP_LISTEN", "TCP_SYN_SENT"]);
    expect(hits(c, tcp4({ state: 10 }))).toBe(true);
    expect(hits(c, tcp4({ state: 2 }))).toBe(true);
    expect(hits(c, tcp4({ state: 1 }))).toBe(false);
  });
});

describe("all matchers of a selector must hold", () => {
  test("Protocol AND DAddr AND DPort", () => {
    const c = compileMutated(kprobePolicy(`    - index: 0\n      type: "sock"`, `    - matchArgs:\n      - index: 0\n        operator: "Protocol"\n        values: ["IPPROTO_TCP"]\n      - index: 0\n        operator: "DAddr"\n        values: ["10.0.0.0/8"]\n      - index: 0\n        operator: "DPort"\n        values: ["22"]`), (p) => void firstSelector(p));
    expect(hits(c, tcp4({ daddr: "10.9.9.9", dport: 22 }))).toBe(true);
    expect(hits(c, tcp4({ daddr: "10.9.9.9", dport: 23 }))).toBe(false);
    expect(hits(c, tcp4({ daddr: "11.9.9.9", dport: 22 }))).toBe(false);
    expect(hits(c, tcp4({ daddr: "10.9.9.9", dport: 22, protocol: 17 }))).toBe(false);
  });
});
