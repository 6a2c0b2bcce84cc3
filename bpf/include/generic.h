/* SPDX-License-Identifier: Apache-2.0 */
/*
 * generic.h: the layouts bpf/generic.c shares with src/sensors/generic.ts that are not the
 * engine's (those are in ward_filter.h): where each argument slot is read from, the
 * dispatch from a syscall or tracepoint to hook slots, the per-slot switch, the ring buffer
 * record and the counters. Userspace reads member offsets from the object's BTF, so this
 * header is the only definition. Fixed-width types, natural alignment, explicit padding.
 */
#ifndef WARD_GENERIC_H
#define WARD_GENERIC_H

#define GEN_MAX_HOOKS 128      /* hook slots (every policy's hooks together) */
#define GEN_DISPATCH_MAX 16    /* hook slots on one syscall / tracepoint */
#define GEN_STR_MAX 4096       /* bytes of a string/buffer argument read (Tetragon's char_buf) */
#define GEN_ARG_SLOTS 5        /* argument slots with bytes (slot 5 is the return value) */
#define GEN_DATA_MAX (GEN_STR_MAX * GEN_ARG_SLOTS)
#define GEN_ALL_SYSCALLS 0xffffffffu /* dispatch key for raw_syscalls: every syscall */

/* Where a slot's raw value comes from (gen_src.from). */
enum gen_from {
	GEN_FROM_NONE = 0,
	GEN_FROM_SYSCALL_ARG = 1, /* syscall argument `index` from pt_regs (di si dx r10 r8 r9) */
	GEN_FROM_SYSCALL_NR = 2,  /* the syscall number (orig_ax) */
	GEN_FROM_RETURN = 3,      /* the syscall's return value (sys_exit only) */
	GEN_FROM_TP_FIELD = 4,    /* tracepoint record field at `offset`, `size` bytes */
	GEN_FROM_TP_DATALOC = 5,  /* tracepoint __data_loc string at `offset` */
	GEN_FROM_TP_ARRAY = 6,    /* tracepoint char array at `offset` (comm[16], ...), read as a string */
	GEN_FROM_LSM_ARG = 7,     /* BPF LSM hook argument `offset` (ctx[offset]), `size` bytes of it */
	GEN_FROM_FUNC_ARG = 8,    /* kernel function argument `index` from the kprobe's pt_regs (di si dx cx r8 r9) */
};
#define GEN_SRC_SIGNED 0x1     /* sign-extend a TP field */
#define GEN_SRC_USER 0x2       /* pointer is a user pointer (syscall args, syscalls/ tracepoints) */
#define GEN_SRC_IOVEC 0x8      /* a buffer argument that is an iovec array (char_iovec), count from sizeArgIndex */
#define GEN_SRC_FD 0x4         /* a file argument given as an fd number (tracepoints; syscall file args always are) */
#define GEN_SRC_DENTRY 0x10    /* LSM: a struct dentry *, its mount from the struct path * at ctx[aux] (path_unlink, ...) */
#define GEN_SRC_TASK_TGID 0x20 /* LSM: a struct task_struct *, read as its tgid (task_kill's target) */

/* What a pointer argument points at, for the types one ward_arg_type stands for (gen_src.obj):
 * WARD_ARG_SOCK is sock, socket or skb; WARD_ARG_OPAQUE is cred (and others not read). */
enum gen_obj {
	GEN_OBJ_NONE = 0,
	GEN_OBJ_SOCK = 1,    /* struct sock *: gen_sock_rec */
	GEN_OBJ_SOCKET = 2,  /* struct socket *: its ->sk, as GEN_OBJ_SOCK */
	GEN_OBJ_SKB = 3,     /* struct sk_buff *: gen_skb_rec */
	GEN_OBJ_CRED = 4,    /* struct cred *: gen_cred_rec */
};

struct gen_src {
	__u8 from;     /* enum gen_from */
	__u8 size;     /* TP field bytes (1, 2, 4, 8) */
	__u16 offset;  /* TP field offset / syscall argument index */
	__u8 flags;    /* GEN_SRC_* */
	__u8 aux;      /* GEN_SRC_DENTRY: the LSM argument holding the directory's struct path */
	__u8 pad[1];
	__u8 obj;      /* enum gen_obj (kprobe object arguments) */
};

/* Which attach point a dispatch key names. */
enum gen_point {
	GEN_POINT_SYS_ENTER = 1, /* tp_btf/sys_enter, key = syscall number */
	GEN_POINT_SYS_EXIT = 2,  /* tp_btf/sys_exit, key = syscall number */
	GEN_POINT_TP = 3,        /* tracepoint/ generic program, key = tracefs event id */
	GEN_POINT_OPEN_EXIT = 4, /* gen_open_exit on syscalls/sys_exit_<open family>, key = syscall
	                            number; evaluated as GEN_POINT_SYS_EXIT. A key of its own so
	                            tp_btf/sys_exit (other return hooks) never runs these slots too */
	GEN_POINT_UPROBE = 5,    /* gen_uprobe on a user function, key = the link's cookie (one id
	                            per attached path:offset, userspace maps it to the symbol);
	                            evaluated as GEN_POINT_SYS_ENTER on the function's registers */
	GEN_POINT_LSM = 6,       /* a gen_lsm_* BPF LSM program, key = enum gen_lsm_hook */
	GEN_POINT_KPROBE = 7,    /* gen_kprobe* at a kernel function's entry, key = the probe id
	                            (the link's cookie; GEN_PROBE_SYSCALL set: a syscall wrapper) */
	GEN_POINT_KRETPROBE = 8, /* gen_kretprobe* at its return, same key */
};

/* The BPF LSM hooks the generic sensor has programs for (dispatch ids of GEN_POINT_LSM). */
enum gen_lsm_hook {
	GEN_LSM_SOCKET_CONNECT = 1,
	GEN_LSM_SOCKET_BIND = 2,
	GEN_LSM_PATH_UNLINK = 3,
	GEN_LSM_PATH_RENAME = 4,
	GEN_LSM_PATH_TRUNCATE = 5,
	GEN_LSM_PATH_CHMOD = 6,
	GEN_LSM_PATH_MKDIR = 7,
	GEN_LSM_TASK_KILL = 8,
	GEN_LSM_BPF = 9,
	GEN_LSM_KERNEL_READ_FILE = 10,
	GEN_LSM_KERNEL_LOAD_DATA = 11,
};

/* Probe ids (kprobe cookies): bit 30 says the function is a syscall wrapper (__x64_sys_X)
 * whose one argument is the user pt_regs the syscall arguments are read from. */
#define GEN_PROBE_SYSCALL 0x40000000u
#define GEN_PROBE_ID_MASK 0x3fffffffu

struct gen_dispatch_key {
	__u32 point;  /* enum gen_point */
	__u32 id;     /* syscall number, GEN_ALL_SYSCALLS, or tracepoint id */
};
struct gen_dispatch_val {
	__u32 n;
	__u32 slots[GEN_DISPATCH_MAX];
	__u32 pad;
};

#define GEN_SLOT_ACTIVE 0x1   /* switched on: written last by apply(), cleared first by remove() */
#define GEN_SLOT_MONITOR 0x2  /* policy mode monitor: Sigkill/Signal become Post */
#define GEN_SLOT_RETURN 0x4   /* evaluate at sys_exit (matchReturnArgs / return: true) */
/* security_file_open without BPF LSM: evaluate at sys_exit of an open-family syscall only
 * when it returned an fd of a real open (not O_PATH, which file_open never sees); the file
 * argument is read from that fd (a GEN_FROM_RETURN source with GEN_SRC_FD) */
#define GEN_SLOT_OPENED_FD 0x8

/* Per hook slot, next to its ward_hook_config in gen_hooks. */
struct gen_slot {
	__u32 flags;      /* GEN_SLOT_* */
	__u32 policy;     /* userspace policy number, for the record */
	struct gen_src src[6]; /* by argument slot (5 = return value) */
	__u32 scope;      /* workload scope id (scope.h), 0: every process */
};

/* Host namespace inodes (from /proc/1/ns), for matchNamespaces host_ns values. */
struct gen_globals {
	__u32 host_ns[10];
};

/* Record flags. */
#define GEN_EF_RETURN 0x1      /* evaluated at the call's return */
#define GEN_EF_MONITOR 0x2     /* an enforcing action was turned into Post (monitor mode) */
#define GEN_EF_KILLED 0x4      /* SIGKILL was queued */
#define GEN_EF_SIGNALED 0x8    /* Signal(argSig) was queued */
#define GEN_EF_NO_SELECTORS 0x10
#define GEN_EF_OVERRIDE 0x20   /* the call was failed: bpf_override_return at a kprobe, or a BPF LSM program (Override, or Sigkill there) */
#define GEN_EF_DEFER_POST 0x40 /* a return hook's entry matched: post at the return (saved record) */

/* Per argument in the record: arg_state values. */
#define GEN_ARG_ABSENT 0       /* slot not declared by the hook */
#define GEN_ARG_INT 1          /* value in arg_int */
#define GEN_ARG_BYTES 2        /* arg_len bytes at data[arg_off] */
#define GEN_ARG_ERROR 3        /* the read failed (value unknown; matchers on it fail) */
#define GEN_ARG_TRUNC 4        /* bytes, truncated at GEN_STR_MAX */

/*
 * One ring buffer record per posted match. The bytes of string/buffer arguments follow
 * the fixed part back to back (data[arg_off[i]], arg_len[i] bytes); only `size` bytes are
 * sent.
 */
struct gen_event {
	__u32 size;
	__u32 slot;        /* hook slot (userspace maps it to policy + hook index) */
	__u32 hook_id;     /* ward_hook_config.hook_id */
	__s32 selector;    /* matching selector, -1: the hook has no selectors */
	__u32 policy;      /* gen_slot.policy */
	__u32 pid;         /* thread id */
	__u32 tgid;
	__u32 nspid;       /* tgid in its own pid namespace */
	__u64 ktime;       /* bpf_ktime_get_boot_ns() */
	__u32 actions;     /* bit (1 << ward_action_kind) per action of the selector that ran */
	__u32 flags;       /* GEN_EF_* */
	__s64 ret;         /* return value (GEN_EF_RETURN) */
	__s32 signal_err;  /* bpf_send_signal's return for Sigkill/Signal, 0 = queued */
	__u32 syscall;     /* syscall number for syscall hooks, tracepoint id or uprobe id otherwise */
	__u8 arg_state[6]; /* GEN_ARG_* by slot */
	__u16 arg_type[6]; /* enum ward_arg_type by slot */
	__u16 arg_len[6];
	__u16 arg_off[6];
	__u16 pad;
	__u64 arg_int[6];
	char data[GEN_DATA_MAX + GEN_STR_MAX];
};

/* Per-CPU counters (gen_counters index). */
enum gen_counter {
	GEN_CNT_EVALS = 0,      /* hook slots evaluated */
	GEN_CNT_MATCHES = 1,    /* a selector matched (or the hook has none) */
	GEN_CNT_POSTS = 2,      /* records sent */
	GEN_CNT_RB_DROPS = 3,   /* ring buffer full: record lost (the action still happened) */
	GEN_CNT_KILLS = 4,
	GEN_CNT_SIGNALS = 5,
	GEN_CNT_EXEMPT = 6,     /* a match on an exempt tgid: nothing done */
	GEN_CNT_RATE_LIMITED = 7,
	GEN_CNT_READ_ERRORS = 8,
	GEN_CNT_MONITOR = 9,    /* enforcing actions turned into Post */
	GEN_CNT_NOT_TAKEN = 10, /* an action this program cannot take (Override, ...): userspace rejects them */
	GEN_CNT_OVERRIDES = 11, /* Override at a kprobe: the call returned argError without running */
	GEN_CNT_RET_LOST = 12,  /* a kretprobe hook's entry record could not be kept (map full) */
	GEN_CNT_MAX = 16,
};

/* A kretprobe hook's entry, kept from the entry to the return of the call (per thread and slot). */
struct gen_ret_key {
	__u64 pid_tgid;
	__u32 slot;
	__u32 pad;
};

/*
 * Kernel objects as the record carries them, in data[slot * GEN_STR_MAX] (arg_len bytes),
 * read with CO-RE so they hold on any kernel's layout. Addresses in network order (IPv4 in
 * the first 4 bytes), ports in host order.
 */
struct gen_sock_rec {
	__u16 family;
	__u16 type;
	__u16 protocol;
	__u8 state;
	__u8 pad;
	__u32 mark;
	__u32 priority;
	__u16 sport;
	__u16 dport;
	__u32 pad2;
	__u64 cookie;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The network facts of a sock or skb argument, as the socket operators compare them. */
struct gen_net {
	__u16 family;
	__u16 proto;
	__u16 sport;
	__u16 dport;
	__u32 state;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct gen_skb_rec {
	__u32 hash;
	__u32 len;
	__u32 priority;
	__u32 mark;
	__u16 family;   /* AF_INET / AF_INET6 from the IP header's version, 0 if neither */
	__u16 protocol; /* skb->protocol (ethertype, host order) */
	__u8 proto;     /* IP protocol (TCP 6, UDP 17, ...) */
	__u8 pad[3];
	__u16 sport;
	__u16 dport;
	__u32 sec_path_len;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct gen_cred_rec {
	__u32 uid, gid, suid, sgid, euid, egid, fsuid, fsgid;
	__u32 securebits;
	__u32 userns_level;
	__u32 userns_uid;
	__u32 userns_gid;
	__u32 userns_inum;
	__u32 pad;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_inheritable;
};

#endif /* WARD_GENERIC_H */
