// SPDX-License-Identifier: GPL-2.0
/*
 * generic_kprobe.c: the generic sensor's kernel-function programs (kprobes, kretprobes,
 * kprobe.multi, Override through bpf_override_return). The evaluation is generic.c's, built
 * with GEN_KPROBES; the maps are generic.o's, handed in by userspace (src/sensors/generic.ts),
 * so both objects see the same hook slots, value sets and ring buffer.
 */
#define GEN_KPROBES 1
#include "generic.c"
