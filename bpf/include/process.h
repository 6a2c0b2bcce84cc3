/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * process.h: the records bpf/process.c keeps and sends. This header is the single source
 * of these layouts: userspace reads member offsets by name from the compiled object's BTF
 * (src/events/layout.ts), so a member may move or grow here without touching TypeScript,
 * as long as its name and meaning stay.
 *
 * Only fixed-width types, so the layout is the same for clang -target bpf and for any
 * reader of the BTF.
 */
#ifndef WARD_PROCESS_H
#define WARD_PROCESS_H

/* Sizes. Paths and the argument block may be truncated at these; a flag says so. */
#define WARD_PATH_MAX 4096     /* bytes of a resolved path, like the kernel's PATH_MAX */
#define WARD_ARGS_MAX 4096     /* bytes of the argv block (argv[0] included, NUL separated) */
#define WARD_NAME_MAX 255      /* one path component, like NAME_MAX */
#define WARD_PATH_DEPTH 128    /* path components walked (mount crossings count too) */
#define WARD_BIN_KEEP 256      /* bytes of the binary path kept in the process map */
#define WARD_PROC_ENTRIES 32768 /* like Tetragon's execve_map; ~13 MiB of kernel memory (LRU: stale entries age out) */

/* Record kinds (ward_event_hdr.op). */
enum ward_proc_op {
	WARD_OP_EXEC = 1,
	WARD_OP_CLONE = 2,
	WARD_OP_EXIT = 3,
};

/*
 * Process flags. The low bits are Tetragon's values (pkg/api/flags.go) so the "flags"
 * string of an event means the same; the high bits are ward's own.
 */
enum ward_proc_flag {
	WARD_F_EXECVE = 0x1,
	WARD_F_PROCFS = 0x4,
	WARD_F_TRUNC_ARGS = 0x10,
	WARD_F_MISS = 0x40,
	WARD_F_ERROR_FILENAME = 0x100,
	WARD_F_ERROR_ARGS = 0x200,
	WARD_F_NOCWD = 0x800,
	WARD_F_ROOTCWD = 0x1000,
	WARD_F_ERROR_CWD = 0x2000,
	WARD_F_CLONE = 0x4000,
	WARD_F_TRUNC_FILENAME = 0x10000000,
	WARD_F_TRUNC_CWD = 0x20000000,
};

/* Namespace slots in ward_creds_ns.ns[], in Tetragon's Namespaces field order. */
enum ward_ns_index {
	WARD_NS_UTS = 0,
	WARD_NS_IPC = 1,
	WARD_NS_MNT = 2,
	WARD_NS_PID = 3,
	WARD_NS_PID_FOR_CHILDREN = 4,
	WARD_NS_NET = 5,
	WARD_NS_TIME = 6,
	WARD_NS_TIME_FOR_CHILDREN = 7,
	WARD_NS_CGROUP = 8,
	WARD_NS_USER = 9,
	WARD_NS_COUNT = 10,
};

/* Reservation-failure counter slots (per-CPU array ward_proc_lost, index = op). */
#define WARD_LOST_SLOTS 4

/* Credentials, capabilities, namespaces and cgroup, as seen at exec/clone time. */
struct ward_creds_ns {
	__u32 uid;
	__u32 gid;
	__u32 suid;
	__u32 sgid;
	__u32 euid;
	__u32 egid;
	__u32 fsuid;
	__u32 fsgid;
	__u32 auid;		/* loginuid; 4294967295 when unset */
	__u32 pad;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_inheritable;
	__u64 cgroup_id;	/* cgroup v2 id (the cgroup directory's inode number) */
	__u32 ns[WARD_NS_COUNT];	/* namespace inode numbers, by enum ward_ns_index */
};

/*
 * The record that takes the backlog past this forces a wakeup, whatever the consumer said: it polls
 * every few ms while records come, and a burst that fills this much of the 8 MiB ring
 * between two polls gets a consumer that is not waiting for its timer.
 */
#define WARD_RB_WAKE_BYTES (256 * 1024)

/* The value of ward_events_ctl (one entry): how records wake the ring buffer's consumer. */
struct ward_ring_ctl {
	__u32 sleeping;		/* 1: the consumer blocks until woken; the next record wakes it (and clears this) */
	__u32 pad;
};

/* The in-kernel process map value, keyed by tgid (__u32). */
struct ward_proc {
	__u64 ktime;		/* exec (or clone) time, bpf_ktime_get_boot_ns(); with pid the identity */
	__u64 parent_ktime;	/* the parent's ktime, 0 when unknown */
	__u32 pid;		/* tgid */
	__u32 ppid;		/* parent tgid (the parent image, which for an exec without clone is the same pid) */
	__u32 flags;		/* enum ward_proc_flag */
	__u32 bin_len;
	struct ward_creds_ns creds;
	char bin[WARD_BIN_KEEP];	/* binary path prefix, for in-kernel binary matching */
};

/* Common header of every ring buffer record. */
struct ward_event_hdr {
	__u8 op;		/* enum ward_proc_op */
	__u8 pad[3];
	__u32 size;		/* bytes of the whole record */
	__u64 time;		/* bpf_ktime_get_boot_ns() when the record was made */
};

/*
 * WARD_OP_CLONE: a new thread group (fork/vfork/clone without CLONE_THREAD). Userspace
 * copies binary, arguments and cwd from the parent it already knows.
 */
struct ward_clone_event {
	struct ward_event_hdr hdr;
	__u64 ktime;
	__u64 parent_ktime;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 flags;
	struct ward_creds_ns creds;
};

/*
 * WARD_OP_EXEC: a successful execve/execveat. data[] holds, back to back and without
 * terminators: the binary path (binary_len bytes), the argv block (args_len bytes, argv[0]
 * first, each argument NUL terminated as in the process's memory) and the cwd (cwd_len).
 */
struct ward_exec_event {
	struct ward_event_hdr hdr;
	__u64 ktime;
	__u64 parent_ktime;
	__u32 pid;
	__u32 tid;		/* the thread that called exec (it becomes the leader) */
	__u32 ppid;
	__u32 flags;
	struct ward_creds_ns creds;
	__u64 ino;		/* the executed file's inode number */
	__u32 nlink;		/* its link count (0 for deleted files and memfds) */
	__u16 binary_len;
	__u16 args_len;
	__u16 cwd_len;
	__u16 pad;
	/* Sized for the verifier's view of the masked offsets (binary, args, cwd), not for use:
	 * only hdr.size bytes are sent. */
	char data[WARD_PATH_MAX * 6];
};

/* WARD_OP_EXIT: the last thread of a thread group exited. */
struct ward_exit_event {
	struct ward_event_hdr hdr;
	__u64 ktime;		/* the exiting image's ktime (0 if the process was never seen) */
	__u32 pid;
	__u32 tid;		/* the last thread to exit */
	__u32 ppid;
	__u32 flags;		/* WARD_F_MISS when the process was not in the map */
	__u32 code;		/* wait status: signal in bits 0-6, exit status in bits 8-15 */
	__u32 pad;
};

/*
 * The process map, declared once. bpf/process.c owns it; the other sensors declare the same
 * map and userspace hands them the process sensor's (replaceMaps), so they judge binaries
 * by what that sensor saw at exec. A replacing map must match the declaration exactly, so
 * every object takes it from here. (WARD_MAP_LRU_HASH comes from ward_bpf.h.)
 */
#define WARD_PROCS_MAP                                  \
	struct {                                        \
		__uint(type, WARD_MAP_LRU_HASH);        \
		__uint(max_entries, WARD_PROC_ENTRIES); \
		__type(key, __u32);                     \
		__type(value, struct ward_proc);        \
	} ward_procs SEC(".maps")

#endif /* WARD_PROCESS_H */
