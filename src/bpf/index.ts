// The loader's public API (see CONTRACT.md). Other folders import from here, not from the
// individual modules, so the split between modules can change without touching them.
// attr.ts (bpf_attr builder) and insn.ts (instruction access) are internal.
export * from "./sys.ts";
export * from "./constants.ts";
export * from "./fd.ts";
export * from "./map.ts";
export * from "./program.ts";
export * from "./btf-load.ts";
export * from "./link.ts";
export * from "./perf.ts";
export * from "./ringbuf.ts";
export * from "./pin.ts";
export * from "./features.ts";
export * from "./asm.ts";
export * from "./objects.ts";
export * from "./btf.ts";
export * from "./btf-ext.ts";
export * from "./elf.ts";
export * from "./core.ts";
export * from "./linker.ts";
export * from "./collection.ts";
