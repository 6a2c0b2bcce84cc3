// Hand-assembled BPF programs for the loader's kernel tests (no ELF objects involved).
import { Asm, AluOp, JmpOp, Reg } from "../../src/bpf/asm.ts";
import { Helper } from "../../src/bpf/constants.ts";
import { BpfMap, MapType } from "../../src/bpf/map.ts";

/**
 * if (pid_tgid >> 32 != tgid) skip; otherwise lock-add 1 to the u64 at key 0 of `counter`.
 * `ret` is the program's return value (cgroup programs care).
 */
export function counterInsns(counterFd: number, tgid: number, ret = 0): Uint8Array {
  return new Asm()
    .call(Helper.get_current_pid_tgid)
    .alu64Imm(AluOp.RSH, Reg.R0, 32)
    .jmpImm(JmpOp.JNE, Reg.R0, tgid, "out")
    .st("w", Reg.R10, -4, 0)
    .ldMapFd(Reg.R1, counterFd)
    .mov64Reg(Reg.R2, Reg.R10)
    .alu64Imm(AluOp.ADD, Reg.R2, -4)
    .call(Helper.map_lookup_elem)
    .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out")
    .mov64Imm(Reg.R1, 1)
    .atomicAdd("dw", Reg.R0, 0, Reg.R1)
    .label("out")
    .ret(ret)
    .bytes();
}

/** A one-slot u64 array map for counterInsns. */
export function counterMap(name = "counter"): BpfMap {
  return BpfMap.create({ name, type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1 });
}

export function readCounter(m: BpfMap, slot = 0): bigint {
  const v = m.lookup(u32(slot));
  if (v === undefined) throw new Error(`counter ${m.spec.name}: slot ${slot} missing`);
  return new DataView(v.buffer, v.byteOffset, v.byteLength).getBigUint64(0, true);
}

export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

export function u64(n: bigint | number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

export function getU64(b: Uint8Array, off = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off, true);
}

export function getU32(b: Uint8Array, off = 0): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

/** Make `n` getppid(2) calls from this thread (process.ppid is not cached by Bun). */
export function syscalls(n: number): void {
  let s = 0;
  for (let i = 0; i < n; i++) s += process.ppid;
  if (s < 0) throw new Error("unreachable");
}
