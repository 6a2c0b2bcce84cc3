/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guard.h: the layouts the file/exec/module guard (bpf/file_guard.c) shares with userspace
 * (src/sensors/guard.ts). Userspace reads these layouts from the object's BTF, so this file
 * is the single source; keep every struct naturally aligned and free of implicit padding.
 */
#ifndef WARD_GUARD_H
#define WARD_GUARD_H

#include "process.h" /* struct ward_proc, WARD_BIN_KEEP: the process map the path match reads */

/* Where the decision was taken: which hook saw the protected object. */
enum guard_hook {
	GUARD_HOOK_OPEN = 1,        /* tp_btf/sys_exit after an open-family syscall */
	GUARD_HOOK_EXEC = 2,        /* tp_btf/sched_process_exec on bprm->file */
	GUARD_HOOK_IO_URING = 3,    /* tp_btf/io_uring_complete of IORING_OP_OPENAT/OPENAT2 */
	GUARD_HOOK_MODULE = 4,      /* raw_tracepoint/sys_enter for init_module/finit_module */
	GUARD_HOOK_LSM_OPEN = 5,    /* lsm/file_open */
	GUARD_HOOK_LSM_EXEC = 6,    /* lsm/bprm_check_security */
	GUARD_HOOK_LSM_MODULE = 7,  /* lsm/kernel_read_file + lsm/kernel_load_data */
};

/* What the rule does on a match. */
enum guard_action {
	GUARD_ACTION_REPORT = 0, /* record only (monitor mode) */
	GUARD_ACTION_KILL = 1,   /* bpf_send_signal(SIGKILL) on the current thread group */
	GUARD_ACTION_DENY = 2,   /* LSM programs return -EPERM; syscall-exit programs kill */
};

/* How the binary set of a rule is applied (matchBinaries). */
enum guard_bin_op {
	GUARD_BIN_ANY = 0,    /* no binary selector: every process matches */
	GUARD_BIN_IN = 1,     /* matches only when the process's exe is in the rule's set */
	GUARD_BIN_NOT_IN = 2, /* matches unless the process's exe is in the rule's set */
};

/* A file identity as the kernel sees it: s_dev is the kernel dev_t ((major << 20) | minor). */
struct guard_file_key {
	__u32 dev;
	__u32 pad;
	__u64 ino;
};

/* guard_rules[rule_id]; rule 0 is the module-load rule, file rules start at 1. */
struct guard_rule {
	__u32 active;  /* 0: the rule is ignored */
	__u32 action;  /* enum guard_action */
	__u32 bin_op;  /* enum guard_bin_op */
	__u32 hooks;   /* bit mask of (1 << enum guard_hook) the rule applies at */
	__u32 bin_paths; /* path entries of the rule in guard_bin_paths; 0: the process's path is never looked up */
	__u32 scope;   /* workload scope id (scope.h), 0: every process */
};

/* guard_binaries key: the process's exe (dev, ino) allowed/listed for one rule. */
struct guard_bin_key {
	__u32 rule;
	__u32 dev;
	__u64 ino;
};

/*
 * A matchBinaries entry that did not exist when the rule was written is matched by path: the
 * executable's resolved path as the process sensor recorded it at exec (ward_proc.bin, zero
 * padded), interned to an id in guard_bin_names, and (rule, id) in guard_bin_paths.
 */
struct guard_bin_path {
	char path[WARD_BIN_KEEP];
};

struct guard_bin_path_key {
	__u32 rule;
	__u32 path_id;
};

/* One ring buffer record per match. */
struct guard_event {
	__u64 time_ns;   /* bpf_ktime_get_ns() */
	__u32 pid;       /* thread id */
	__u32 tgid;      /* process id */
	__u32 rule;
	__u32 hook;      /* enum guard_hook */
	__u32 action;    /* enum guard_action actually taken */
	__s32 result;    /* fd / syscall number / helper return: what the hook saw, see hook */
	__u32 dev;       /* the protected object */
	__u32 exe_dev;   /* the process's executable */
	__u64 ino;
	__u64 exe_ino;
	__s32 signal_err; /* bpf_send_signal's return (0 = sent) */
	__u32 pad;
	char comm[16];
};

/* Per-CPU counters, index into guard_counters. */
enum guard_counter {
	GUARD_CNT_CHECKS = 0,    /* objects looked up in guard_files */
	GUARD_CNT_MATCHES = 1,   /* rule matched (binary selector included) */
	GUARD_CNT_KILLS = 2,     /* SIGKILL sent */
	GUARD_CNT_DENIES = 3,    /* LSM -EPERM returned */
	GUARD_CNT_EXEMPT = 4,    /* match skipped because the tgid is exempt */
	GUARD_CNT_RB_DROPS = 5,  /* ring buffer full: record lost (the action still happened) */
	GUARD_CNT_READ_ERR = 6,  /* a kernel read failed: could not decide */
	GUARD_CNT_MAX = 8,
};

#endif
