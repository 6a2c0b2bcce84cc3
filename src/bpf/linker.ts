// Turn one entry program plus the functions it calls into the flat instruction array that
// PROG_LOAD takes (loader.md §4.8): append callees (breadth first, each once), apply CO-RE to
// each function's copy, patch call offsets, map fds (PSEUDO_MAP_FD) and global data
// (PSEUDO_MAP_VALUE + offset), and rebase func_info/line_info to the flat program.
import type { FuncInfoRecord, LineInfoRecord } from "./btf-ext.ts";
import type { Btf } from "./btf.ts";
import { applyCoreRelocations, type CoreFixup, type CoreTarget } from "./core.ts";
import type { FunctionSpec, ProgramSpec } from "./elf.ts";
import { INSN_SIZE, Insns, PSEUDO_FUNC, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE } from "./insn.ts";

/** The program cannot be flattened or relocated (bad call target, missing map, extern). */
export class LinkerError extends Error {
  override name = "LinkerError";
}

export interface LinkOptions {
  /** fd of a map of the object by name (BTF maps and data sections such as ".rodata"). */
  mapFd: (name: string) => number;
  /** Object BTF (for CO-RE; func_info type ids refer to it). */
  btf?: Btf;
  /** Kernel BTF wrapper for CO-RE; required when any linked function has CO-RE relocations. */
  core?: CoreTarget;
}

export interface LinkedProgram {
  insns: Uint8Array;
  /** Instruction offsets into `insns`, sorted, [0] at 0 when present. */
  funcInfo: FuncInfoRecord[];
  lineInfo: LineInfoRecord[];
  /** Function name -> start instruction in `insns`. */
  layout: Map<string, number>;
  /** CO-RE results, with `insn` rebased to `insns` (poisoned ones explain verifier failures). */
  coreFixups: CoreFixup[];
}

/** Flatten and relocate `prog` for loading. Map fds must already exist. */
export function linkProgram(prog: ProgramSpec, opts: LinkOptions): LinkedProgram {
  const order: FunctionSpec[] = [prog];
  const seen = new Set([prog.name]);
  for (let k = 0; k < order.length; k++) {
    for (const r of order[k]!.relocations) {
      if (r.kind !== "call" && r.kind !== "func") continue;
      if (seen.has(r.target)) continue;
      const callee = prog.functions[r.target];
      if (!callee) throw new LinkerError(`link ${prog.name}: ${order[k]!.name} calls ${r.target}, which is not in the object`);
      seen.add(r.target);
      order.push(callee);
    }
  }

  const layout = new Map<string, number>();
  let total = 0;
  for (const f of order) {
    layout.set(f.name, total);
    total += f.insns.length / INSN_SIZE;
  }
  const out = new Uint8Array(total * INSN_SIZE);
  const ins = new Insns(out);
  const funcInfo: FuncInfoRecord[] = [];
  const lineInfo: LineInfoRecord[] = [];
  const coreFixups: CoreFixup[] = [];

  for (const f of order) {
    const start = layout.get(f.name)!;
    const copy = f.insns.slice();
    if (f.coreRelos.length > 0) {
      if (!opts.btf || !opts.core) throw new LinkerError(`link ${prog.name}: ${f.name} has CO-RE relocations but no kernel BTF was given`);
      for (const fx of applyCoreRelocations(copy, f.coreRelos, opts.btf, opts.core, `${prog.name}/${f.name}`)) coreFixups.push({ ...fx, insn: fx.insn + start });
    }
    out.set(copy, start * INSN_SIZE);
    for (const r of f.relocations) {
      const i = start + r.insn;
      const where = `link ${prog.name}: ${f.name}+${r.insn}`;
      switch (r.kind) {
        case "map":
        case "data": {
          if (!ins.isLdImm64(i) || i + 1 >= total) throw new LinkerError(`${where}: map reference on a non-ld_imm64 instruction`);
          let fd: number;
          try {
            fd = opts.mapFd(r.map);
          } catch (e) {
            throw new LinkerError(`${where}: map ${r.map}: ${(e as Error).message}`);
          }
          ins.setSrc(i, r.kind === "map" ? PSEUDO_MAP_FD : PSEUDO_MAP_VALUE);
          ins.setImm(i, fd);
          ins.setImm(i + 1, r.kind === "data" ? r.offset : 0);
          break;
        }
        case "call":
          ins.setImm(i, layout.get(r.target)! - i - 1);
          break;
        case "func":
          ins.setSrc(i, PSEUDO_FUNC);
          ins.setImm(i, layout.get(r.target)! - i - 1);
          ins.setImm(i + 1, 0);
          break;
        case "extern":
          throw new LinkerError(`${where}: extern symbol ${r.symbol} (kfunc/ksym/kconfig) is not supported by this loader`);
      }
    }
    for (const fi of f.funcInfo) funcInfo.push({ insnOff: fi.insnOff + start, typeId: fi.typeId });
    for (const li of f.lineInfo) lineInfo.push({ ...li, insnOff: li.insnOff + start });
  }
  funcInfo.sort((a, b) => a.insnOff - b.insnOff);
  lineInfo.sort((a, b) => a.insnOff - b.insnOff);
  if (funcInfo.length > 0 && funcInfo[0]!.insnOff !== 0) throw new LinkerError(`link ${prog.name}: func_info does not start at instruction 0`);
  if (funcInfo.length > 0 && funcInfo.length !== order.length) throw new LinkerError(`link ${prog.name}: ${order.length} functions but ${funcInfo.length} func_info records`);
  return { insns: out, funcInfo, lineInfo, layout, coreFixups };
}
