/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * ward_bpf.h: the few definitions every ward BPF program needs, written for ward
 * (no libbpf headers here). Include it after the type header (vmlinux.h, or a small
 * hand-written one in tests): it uses only built-in C types itself, so it does not care
 * which one.
 *
 * What lives here and why:
 *  - SEC(): puts a function or variable in the ELF section the loader classifies by name.
 *  - __uint/__type/__array/__ulong: the BTF map-definition grammar the loader parses from
 *    `.maps` (member name + an encoded number or type; see reference/loader.md 4.6).
 *  - helper declarations: a helper is called through a function pointer whose value is the
 *    helper id; clang turns the call into `call <id>`.
 *  - CO-RE read macros built on __builtin_preserve_access_index, so field offsets are
 *    relocated against the running kernel's BTF at load time.
 */
#ifndef WARD_BPF_H
#define WARD_BPF_H

#define SEC(name) __attribute__((section(name), used))

/* Always-inline for small helpers: keeps the verifier's view simple. */
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define __noinline __attribute__((noinline))
#define __weak __attribute__((weak))
#define __hidden __attribute__((visibility("hidden")))

/* Map definition grammar. `int (*name)[N]` carries N as the array length in BTF. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __array(name, val) __typeof__(val) *name[]
#define ___ward_concat(a, b) a##b
#define __ward_concat(a, b) ___ward_concat(a, b)
#define __ulong(name, val) enum { __ward_concat(__ward_ulong_, __COUNTER__) = val } name

/* Map types and flags used with __uint(type, ...) and __uint(map_flags, ...), numbers from
 * the kernel UAPI (enum bpf_map_type). Spelled out so headers without vmlinux.h work. */
#define WARD_MAP_HASH 1
#define WARD_MAP_ARRAY 2
#define WARD_MAP_PROG_ARRAY 3
#define WARD_MAP_PERF_EVENT_ARRAY 4
#define WARD_MAP_PERCPU_HASH 5
#define WARD_MAP_PERCPU_ARRAY 6
#define WARD_MAP_LRU_HASH 9
#define WARD_MAP_LPM_TRIE 11
#define WARD_MAP_ARRAY_OF_MAPS 12
#define WARD_MAP_HASH_OF_MAPS 13
#define WARD_MAP_RINGBUF 27
#define WARD_F_NO_PREALLOC 1
#define WARD_PIN_BY_NAME 1

/* Helper ids (enum bpf_func_id). Each declaration's value is the id; the return and
 * argument types follow the kernel's helper prototypes. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, unsigned long long flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_probe_read)(void *dst, unsigned int size, const void *unsafe_ptr) = (void *)4;
static unsigned long long (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, unsigned int fmt_size, ...) = (void *)6;
static unsigned int (*bpf_get_prandom_u32)(void) = (void *)7;
static unsigned int (*bpf_get_smp_processor_id)(void) = (void *)8;
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, unsigned int index) = (void *)12;
static unsigned long long (*bpf_get_current_pid_tgid)(void) = (void *)14;
static unsigned long long (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, unsigned int size_of_buf) = (void *)16;
static long (*bpf_perf_event_output)(void *ctx, void *map, unsigned long long flags, void *data, unsigned long long size) = (void *)25;
static long (*bpf_skb_load_bytes)(const void *skb, unsigned int offset, void *to, unsigned int len) = (void *)26;
static unsigned long long (*bpf_get_current_task)(void) = (void *)35;
static long (*bpf_probe_read_str)(void *dst, unsigned int size, const void *unsafe_ptr) = (void *)45;
static unsigned long long (*bpf_get_socket_cookie)(void *ctx) = (void *)46;
static long (*bpf_get_stack)(void *ctx, void *buf, unsigned int size, unsigned long long flags) = (void *)67;
static unsigned long long (*bpf_get_current_cgroup_id)(void) = (void *)80;
static long (*bpf_send_signal)(unsigned int sig) = (void *)109;
static long (*bpf_probe_read_user)(void *dst, unsigned int size, const void *unsafe_ptr) = (void *)112;
static long (*bpf_probe_read_kernel)(void *dst, unsigned int size, const void *unsafe_ptr) = (void *)113;
static long (*bpf_probe_read_user_str)(void *dst, unsigned int size, const void *unsafe_ptr) = (void *)114;
static long (*bpf_probe_read_kernel_str)(void *dst, unsigned int size, const void *unsafe_ptr) = (void *)115;
static long (*bpf_send_signal_thread)(unsigned int sig) = (void *)117;
static unsigned long long (*bpf_jiffies64)(void) = (void *)118;
static unsigned long long (*bpf_get_current_ancestor_cgroup_id)(int ancestor_level) = (void *)123;
static unsigned long long (*bpf_ktime_get_boot_ns)(void) = (void *)125;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, unsigned long long size, unsigned long long flags) = (void *)130;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, unsigned long long size, unsigned long long flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, unsigned long long flags) = (void *)132;
static void (*bpf_ringbuf_discard)(void *data, unsigned long long flags) = (void *)133;
static unsigned long long (*bpf_ringbuf_query)(void *ringbuf, unsigned long long flags) = (void *)134;
static long (*bpf_d_path)(void *path, char *buf, unsigned int sz) = (void *)147;
static long (*bpf_copy_from_user)(void *dst, unsigned int size, const void *user_ptr) = (void *)148;
static void *(*bpf_get_current_task_btf)(void) = (void *)158;
static unsigned long long (*bpf_get_func_ip)(void *ctx) = (void *)173;
static unsigned long long (*bpf_get_attach_cookie)(void *ctx) = (void *)174;
static long (*bpf_loop)(unsigned int nr_loops, void *callback_fn, void *callback_ctx, unsigned long long flags) = (void *)181;

/* Ring buffer flags (BPF_RB_*). */
#define WARD_RB_NO_WAKEUP 1
#define WARD_RB_FORCE_WAKEUP 2
/* bpf_ringbuf_query() what: bytes committed and not yet consumed. */
#define WARD_RB_AVAIL_DATA 0

/* Byte order: BPF targets here are little endian; ports and addresses are big endian. */
#define ward_htons(x) __builtin_bswap16(x)
#define ward_ntohs(x) __builtin_bswap16(x)
#define ward_htonl(x) __builtin_bswap32(x)
#define ward_ntohl(x) __builtin_bswap32(x)

/*
 * CO-RE. __builtin_preserve_access_index records the field path in .BTF.ext so the loader
 * can rewrite the offset for the running kernel; the read itself goes through
 * bpf_probe_read_kernel because a plain load from a kernel pointer is not allowed
 * outside BTF-typed contexts.
 */
#define ward_core_read(dst, sz, src) \
	bpf_probe_read_kernel((void *)(dst), (sz), (const void *)__builtin_preserve_access_index(src))

/*
 * BPF_CORE_READ(ptr, field): one relocated read of ptr->field, as an rvalue. The union
 * gives a writable byte view of a possibly const-qualified field type (typeof keeps
 * qualifiers); on a failed read the helper zeroes the destination, so no initializer.
 */
#define BPF_CORE_READ(src, field) ({ \
	__typeof__(src) __ward_s = (src); \
	union { \
		__typeof__(__ward_s->field) v; \
		char b[sizeof(__ward_s->field)]; \
	} __ward_u; \
	ward_core_read(__ward_u.b, sizeof(__ward_u.b), &__ward_s->field); \
	__ward_u.v; })
/* Chains: BPF_CORE_READ2(task, mm, exe_file) reads task->mm, then ->exe_file. BPF_CORE_READ
 * first copies its source into a temporary, so a read can take another read as its source:
 * clang rejects a statement expression nested inside __builtin_preserve_access_index. */
#define BPF_CORE_READ2(src, a, b) BPF_CORE_READ(BPF_CORE_READ(src, a), b)
#define BPF_CORE_READ3(src, a, b, c) BPF_CORE_READ(BPF_CORE_READ2(src, a, b), c)
#define BPF_CORE_READ4(src, a, b, c, d) BPF_CORE_READ(BPF_CORE_READ3(src, a, b, c), d)
/* Read into an lvalue: BPF_CORE_READ_INTO(&dst, src, field). */
#define BPF_CORE_READ_INTO(dst, src, field) ward_core_read((dst), sizeof(*(dst)), &(src)->field)

/* Field and type queries (relocation kinds from reference/loader.md, CO-RE section). */
#define bpf_core_field_exists(field) __builtin_preserve_field_info(field, 2)
#define bpf_core_field_size(field) __builtin_preserve_field_info(field, 1)
#define bpf_core_field_offset(field) __builtin_preserve_field_info(field, 0)
#define bpf_core_type_exists(type) __builtin_preserve_type_info(*(__typeof__(type) *)0, 0)
#define bpf_core_type_size(type) __builtin_preserve_type_info(*(__typeof__(type) *)0, 1)
#define bpf_core_enum_value_exists(enum_type, enumerator) \
	__builtin_preserve_enum_value(*(__typeof__(enum_type) *)enumerator, 0)
#define bpf_core_enum_value(enum_type, enumerator) \
	__builtin_preserve_enum_value(*(__typeof__(enum_type) *)enumerator, 1)

/* tp_btf/fentry/lsm programs receive their arguments as an array of u64. */
#define WARD_CTX_ARG(ctx, n) (((unsigned long long *)(ctx))[n])

#endif /* WARD_BPF_H */
