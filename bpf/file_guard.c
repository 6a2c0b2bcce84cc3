// SPDX-License-Identifier: GPL-2.0
/*
 * file_guard: enforcement on the object the kernel acts on, never on a path string.
 *
 * The protected set is a hash of (s_dev, i_ino) -> rule id, filled by userspace from stat().
 * Every hook below resolves the real `struct file` and looks its inode up there, so relative
 * paths, symlinks, hardlinks, /proc/self/fd re-opens, openat2, creat and open_by_handle_at
 * all arrive at the same key (B4-B7, B14 in reference/peers.md).
 *
 * Programs (userspace attaches the ones this kernel and the policy need):
 *   guard_open_exit     tracepoint/syscalls/sys_exit_{open,openat,openat2,creat,open_by_handle_at}
 *                                                 open family, kill before the caller returns;
 *                                                 runs only at the exit of those syscalls
 *   guard_sys_exit      tp_btf/sys_exit           the same check where tracefs is missing; runs at
 *                                                 the exit of every syscall (measurably slower)
 *   guard_exec          tp_btf/sched_process_exec exec of a protected file, kill before the new image runs
 *   guard_io_uring      tp_btf/io_uring_complete  IORING_OP_OPENAT/OPENAT2 into the fd table (see below)
 *   guard_module        tp_btf/sys_enter          init_module/finit_module (see below)
 *   guard_lsm_open      lsm/file_open             -EPERM where BPF LSM is active (every open path)
 *   guard_lsm_exec      lsm/bprm_check_security   -EPERM on exec
 *   guard_lsm_read_file lsm/kernel_read_file      -EPERM on finit_module's read
 *   guard_lsm_load_data lsm/kernel_load_data      -EPERM on init_module's blob
 *
 * Timing of SIGKILL (what "sigkill" means here): bpf_send_signal() from these tracepoints
 * runs with interrupts on, so the signal is queued at once and SIGKILL is fatal-pending for
 * the whole thread group before the hook returns. The thread dies on its way back to user
 * space, so the open's caller never sees the fd. Another thread of the same process can
 * still race a read() on the guessed fd number between fd_install and the kill: measured on
 * the 6.18 host, a sibling thread spinning pread()+write() leaked the content in 8 of 300
 * runs (every run was killed). The LSM programs and the fanotify backend have no such
 * window, which is why they are preferred where they are available.
 */
#include "vmlinux.h"
#include "ward_bpf.h"
#include "guard.h"
#include "scope.h"

/* CO-RE read: the field's offset is relocated against the running kernel's BTF. */
#define KREAD(dst, expr) \
	bpf_probe_read_kernel(&(dst), sizeof(dst), __builtin_preserve_access_index(&(expr)))

#define O_PATH 010000000 /* x86 (include/uapi/asm-generic/fcntl.h) */
#define SIGKILL 9
#define EPERM 1

/* x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
#define NR_open 2
#define NR_creat 85
#define NR_init_module 175
#define NR_openat 257
#define NR_open_by_handle_at 304
#define NR_finit_module 313
#define NR_openat2 437

/*
 * i386 numbers (arch/x86/entry/syscalls/syscall_32.tbl): a compat syscall (a 32-bit process,
 * or int 0x80 from a 64-bit one) leaves these in orig_ax. The syscalls/ tracepoints never
 * fire for compat syscalls on x86 (ARCH_TRACE_IGNORE_COMPAT_SYSCALLS), so only the tp_btf
 * fallback can see them.
 */
#define NR32_open 5
#define NR32_creat 8
#define NR32_openat 295
#define NR32_open_by_handle_at 342
#define NR32_openat2 437
#define TS_COMPAT 0x0002 /* thread_info.status bit set for a compat syscall (asm/thread_info.h) */

/* io_uring opcodes (include/uapi/linux/io_uring.h). */
#define IORING_OP_OPENAT 18
#define IORING_OP_OPENAT2 28

#define MODULE_RULE 0

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct guard_file_key);
	__type(value, __u32); /* rule id */
} guard_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct guard_rule);
} guard_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct guard_bin_key);
	__type(value, __u32);
} guard_binaries SEC(".maps");

/*
 * The path match of matchBinaries entries that did not exist when the rule was written.
 *
 * Why the process sensor's map and not a path resolved here: ward_procs holds the binary path
 * bpf/process.c resolved from bprm->file at exec (against the task's root, like d_path), the
 * same string the generic sensor's matchBinaries and every event use, so an entry means one
 * thing across the agent and the same thing as in Tetragon (whose execve_map holds the exec
 * path). Resolving mm->exe_file again here would cost a dentry walk per check and a second
 * copy of that walk, and could disagree with the exec record after a rename. The guard keeps
 * its own interning (guard_bin_names) rather than the generic sensor's gen_bin_names so it
 * does not depend on that sensor being loaded. Userspace passes the process sensor's map in
 * (replaceMaps); without it this is a 1-entry stub and rules with path entries are refused.
 */
WARD_PROCS_MAP;

/* Path (zero padded to WARD_BIN_KEEP, as ward_proc.bin) -> path id, for every rule. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct guard_bin_path);
	__type(value, __u32);
} guard_bin_names SEC(".maps");

/* (rule, path id): the rule's binary set holds the executable with this path. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct guard_bin_path_key);
	__type(value, __u32);
} guard_bin_paths SEC(".maps");

/* tgids no rule may touch: the agent itself and whoever it vouches for (the test runner). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} guard_exempt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} guard_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GUARD_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} guard_counters SEC(".maps");

/*
 * Never read or written: its value type puts the ring buffer record and the enums userspace
 * decodes into the object's BTF (a type only used through a ring buffer pointer would not be
 * there), so guard.ts reads every layout from the object.
 */
struct guard_layouts {
	struct guard_event event;
	enum guard_hook hook;
	enum guard_action action;
	enum guard_bin_op bin_op;
	enum guard_counter counter;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_layouts);
} guard_layouts SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&guard_counters, &idx);
	if (c)
		*c += 1; /* per-CPU slot: no other writer */
}

/* (s_dev, i_ino) of a file; 0 when the file or a pointer on the way is NULL. */
static __always_inline int file_key(struct file *file, struct guard_file_key *key)
{
	struct inode *inode = 0;
	struct super_block *sb = 0;
	__u64 ino = 0;
	__u32 dev = 0;

	if (!file)
		return -1;
	if (KREAD(inode, file->f_inode) || !inode)
		return -1;
	if (KREAD(sb, inode->i_sb) || !sb)
		return -1;
	if (KREAD(dev, sb->s_dev) || KREAD(ino, inode->i_ino))
		return -1;
	key->dev = dev;
	key->pad = 0;
	key->ino = ino;
	return 0;
}

/* The executable of a task (mm->exe_file): the binary a matchBinaries selector names. */
static __always_inline void task_exe_key(struct task_struct *task, struct guard_file_key *key)
{
	struct mm_struct *mm = 0;
	struct file *exe = 0;

	key->dev = 0;
	key->pad = 0;
	key->ino = 0;
	if (KREAD(mm, task->mm) || !mm)
		return;
	if (KREAD(exe, mm->exe_file) || !exe)
		return;
	file_key(exe, key);
}

/* current->files->fdt->fd[fd]; NULL when out of range or unreadable. */
static __always_inline struct file *fd_file(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct files_struct *files = 0;
	struct fdtable *fdt = 0;
	struct file **fds = 0;
	struct file *file = 0;
	unsigned int max_fds = 0;

	if (KREAD(files, task->files) || !files)
		return 0;
	if (KREAD(fdt, files->fdt) || !fdt)
		return 0;
	if (KREAD(max_fds, fdt->max_fds) || KREAD(fds, fdt->fd) || !fds)
		return 0;
	if (fd < 0 || (unsigned long)fd >= max_fds)
		return 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return 0;
	return file;
}

/*
 * Is the executable of `tgid` one of the rule's path entries? Only the first WARD_BIN_KEEP - 1
 * bytes of a path are kept in ward_procs: a longer one is never listed (userspace refuses
 * entries that long, so an In entry is never silently missed).
 */
static __always_inline int path_listed(__u32 rule_id, __u32 tgid)
{
	struct guard_bin_path_key pk = { .rule = rule_id };
	struct ward_proc *p = bpf_map_lookup_elem(&ward_procs, &tgid);
	__u32 *id;

	if (!p || p->bin_len >= WARD_BIN_KEEP)
		return 0;
	id = bpf_map_lookup_elem(&guard_bin_names, p->bin);
	if (!id)
		return 0;
	pk.path_id = *id;
	return bpf_map_lookup_elem(&guard_bin_paths, &pk) != 0;
}

/*
 * Does the rule apply to this process's binary? An entry is listed by its inode (it existed
 * when written, or appeared since) or, while it has path entries, by the executable's path.
 */
static __always_inline int binary_matches(__u32 rule_id, const struct guard_rule *rule,
					  const struct guard_file_key *exe, __u32 exe_tgid)
{
	struct guard_bin_key bk = { .rule = rule_id, .dev = exe->dev, .ino = exe->ino };
	int listed;

	if (rule->bin_op == GUARD_BIN_ANY)
		return 1;
	listed = bpf_map_lookup_elem(&guard_binaries, &bk) != 0;
	if (!listed && rule->bin_paths)
		listed = path_listed(rule_id, exe_tgid);
	if (rule->bin_op == GUARD_BIN_IN)
		return listed;
	return !listed; /* GUARD_BIN_NOT_IN */
}

static __always_inline int exempt(__u32 tgid)
{
	return bpf_map_lookup_elem(&guard_exempt, &tgid) != 0;
}

static __always_inline void emit(__u32 rule_id, __u32 hook, __u32 action, long result,
				 const struct guard_file_key *obj, const struct guard_file_key *exe,
				 long signal_err)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct guard_event *e = bpf_ringbuf_reserve(&guard_events, sizeof(*e), 0);

	if (!e) {
		count(GUARD_CNT_RB_DROPS);
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	e->rule = rule_id;
	e->hook = hook;
	e->action = action;
	e->result = (__s32)result;
	e->dev = obj->dev;
	e->ino = obj->ino;
	e->exe_dev = exe->dev;
	e->exe_ino = exe->ino;
	e->signal_err = (__s32)signal_err;
	e->pad = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

/*
 * The decision shared by every hook. `exe_task` is whose binary the selector compares.
 * Returns the action taken: report (0), kill (1) or deny (2, LSM only); -1 when no rule matched.
 */
static __always_inline int decide(__u32 rule_id, __u32 hook, long result,
				  const struct guard_file_key *obj, struct task_struct *exe_task,
				  int can_deny)
{
	struct guard_file_key exe;
	struct guard_rule *rule;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 exe_tgid = 0;
	__u32 action;
	long sig = 0;

	rule = bpf_map_lookup_elem(&guard_rules, &rule_id);
	if (!rule || !rule->active || !(rule->hooks & (1u << hook)))
		return -1;
	if (!ward_in_scope(rule->scope))
		return -1;
	task_exe_key(exe_task, &exe);
	KREAD(exe_tgid, exe_task->tgid);
	if (!binary_matches(rule_id, rule, &exe, exe_tgid))
		return -1;
	if (exempt(tgid)) {
		count(GUARD_CNT_EXEMPT);
		return -1;
	}
	count(GUARD_CNT_MATCHES);
	action = rule->action;
	if (action == GUARD_ACTION_DENY && !can_deny)
		action = GUARD_ACTION_KILL; /* a tracepoint cannot fail the call: the process dies instead */
	if (action == GUARD_ACTION_KILL) {
		sig = bpf_send_signal(SIGKILL);
		if (sig == 0)
			count(GUARD_CNT_KILLS);
	} else if (action == GUARD_ACTION_DENY) {
		count(GUARD_CNT_DENIES);
	}
	emit(rule_id, hook, action, result, obj, &exe, sig);
	return action;
}

/*
 * An O_PATH fd gives no access to the content (no read, write, mmap or exec through it), and
 * the LSM file_open hook never sees one; the syscall-exit programs skip it too, so both
 * backends mean the same thing. Re-opening an O_PATH fd through /proc/self/fd is a real open
 * and is checked.
 */
static __always_inline int is_path_only(struct file *file)
{
	unsigned int flags = 0;

	KREAD(flags, file->f_flags);
	return (flags & O_PATH) != 0;
}

/* Look a file up in the protected set and decide; -1 when it is not protected. */
static __always_inline int check_file(struct file *file, __u32 hook, long result,
				      struct task_struct *exe_task, int can_deny)
{
	struct guard_file_key key;
	__u32 *rule_id;

	if (file_key(file, &key)) {
		count(GUARD_CNT_READ_ERR);
		return -1;
	}
	count(GUARD_CNT_CHECKS);
	rule_id = bpf_map_lookup_elem(&guard_files, &key);
	if (!rule_id)
		return -1;
	return decide(*rule_id, hook, result, &key, exe_task, can_deny);
}

/* The open-family check once the syscall returned `ret` (an fd when >= 0). */
static __always_inline void open_exit(long ret)
{
	struct file *file;

	if (ret < 0)
		return;
	file = fd_file(ret);
	if (!file || is_path_only(file))
		return;
	check_file(file, GUARD_HOOK_OPEN, ret, (struct task_struct *)bpf_get_current_task(), 0);
}

/*
 * The record of every syscalls/sys_exit_* tracepoint (tracefs events/syscalls/<name>/format:
 * the 8 bytes of common fields, int __syscall_nr, long ret at offset 16). It is a stable ABI
 * read straight from ctx; guard.ts checks the format files agree before it attaches here.
 */
struct syscall_exit_record {
	__u64 common;
	int syscall_nr;
	int pad;
	long ret;
};

/*
 * Attached by userspace to sys_exit_open, sys_exit_openat, sys_exit_openat2, sys_exit_creat
 * and sys_exit_open_by_handle_at (whichever exist): no other syscall ever runs it, so it
 * costs nothing for them. bpf_send_signal is allowed in TRACEPOINT programs
 * (bpf_tracing_func_proto) and runs here in the caller's context, as in tp_btf.
 */
SEC("tracepoint/syscalls/sys_exit_openat")
int guard_open_exit(struct syscall_exit_record *ctx)
{
	open_exit(ctx->ret);
	return 0;
}

static __always_inline int is_compat_syscall(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 status = 0;

	KREAD(status, task->thread_info.status);
	return (status & TS_COMPAT) != 0;
}

/*
 * The fallback when syscall tracepoints are unavailable (no tracefs): runs at the exit of
 * every syscall and filters on the number. It also covers compat syscalls, whose numbers are
 * the i386 ones (the old check compared only the 64-bit numbers, so it missed a 32-bit open
 * and took fork's or readlink's return for an fd).
 */
SEC("tp_btf/sys_exit")
int guard_sys_exit(unsigned long long *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long ret = (long)ctx[1];
	long nr = 0;
	int native, compat;

	if (ret < 0)
		return 0;
	if (KREAD(nr, regs->orig_ax))
		return 0;
	native = nr == NR_openat || nr == NR_open || nr == NR_openat2 || nr == NR_creat ||
		 nr == NR_open_by_handle_at;
	compat = nr == NR32_openat || nr == NR32_open || nr == NR32_openat2 || nr == NR32_creat ||
		 nr == NR32_open_by_handle_at;
	if (!native && !compat)
		return 0;
	/* 437 (openat2) is the same in both tables; every other number means one or the other. */
	if (native != compat && is_compat_syscall() != compat)
		return 0;
	open_exit(ret);
	return 0;
}

/*
 * After exec's point of no return: current already runs the new image's mm, so the binary
 * selector is compared with the parent's executable (the process that asked for the exec).
 * bprm->file is what is being loaded (the interpreter for a script); bprm->executable is the
 * script itself when there is one, so a protected script is caught too.
 */
SEC("tp_btf/sched_process_exec")
int guard_exec(unsigned long long *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	struct task_struct *parent = 0;
	struct file *file = 0;
	struct file *script = 0;

	KREAD(parent, task->real_parent);
	if (!parent)
		parent = task;
	KREAD(file, bprm->file);
	if (check_file(file, GUARD_HOOK_EXEC, 0, parent, 0) >= 0)
		return 0;
	if (bpf_core_field_exists(bprm->executable)) {
		KREAD(script, bprm->executable);
		if (script && script != file)
			check_file(script, GUARD_HOOK_EXEC, 0, parent, 0);
	}
	return 0;
}

/*
 * The ring's fixed-file table before 6.7 (an array of tagged file pointers); from 6.7 on it
 * is io_rsrc_data's node array (struct io_rsrc_node in vmlinux.h). Local flavors, matched by
 * CO-RE on the name before "___", so one object reads whichever the kernel has.
 */
struct io_fixed_file___old {
	unsigned long file_ptr;
} __attribute__((preserve_access_index));

struct io_file_table___old {
	struct io_fixed_file___old *files;
} __attribute__((preserve_access_index));

struct io_ring_ctx___old {
	struct io_file_table___old file_table;
} __attribute__((preserve_access_index));

#define IORING_FILE_INDEX_ALLOC (~0U)
#define FFS_MASK (~3UL) /* low bits of file_ptr are flags (FFS_NOWAIT, FFS_ISREG) */

/* The file an io_uring open put into the ring's fixed-file table (a direct descriptor). */
static __always_inline struct file *fixed_file(struct io_ring_ctx *ctx, __u32 slot)
{
	unsigned long ptr = 0;

	if (slot >= 1u << 20) /* IORING_MAX_FIXED_FILES */
		return 0;
	if (bpf_core_field_exists(ctx->file_table.data)) {
		struct io_rsrc_node **nodes = 0;
		struct io_rsrc_node *node = 0;
		unsigned int nr = 0;

		if (KREAD(nr, ctx->file_table.data.nr) || slot >= nr)
			return 0;
		if (KREAD(nodes, ctx->file_table.data.nodes) || !nodes)
			return 0;
		if (bpf_probe_read_kernel(&node, sizeof(node), &nodes[slot]) || !node)
			return 0;
		if (KREAD(ptr, node->file_ptr))
			return 0;
	} else {
		struct io_ring_ctx___old *old = (void *)ctx;
		struct io_fixed_file___old *files = 0;

		if (KREAD(files, old->file_table.files) || !files)
			return 0;
		if (bpf_probe_read_kernel(&ptr, sizeof(ptr), &files[slot].file_ptr))
			return 0;
	}
	return (struct file *)(ptr & FFS_MASK);
}

/*
 * io_uring opens never pass sys_exit of an open syscall (B3). The completion tracepoint
 * fires in the submitter's context or in an io-wq worker, which is a thread of the same
 * process sharing its fd table, so SIGKILL hits the submitter's thread group. An open into
 * the fd table is found at fdt->fd[res]; an open into the ring's fixed-file table (a direct
 * descriptor: io_open.file_slot set, res 0 or the allocated slot) is found in that table.
 * The request is read as an io_kiocb (its open command overlays the start of it), whose
 * opcode, cqe.res and io_open.file_slot exist with these names on 6.1 and 6.18; the
 * tracepoint's own argument list changed between them, the request did not.
 *
 * Measured limit: requests linked after the open (IOSQE_IO_LINK: read the fixed slot, write
 * the bytes to stdout) never return to user space in between. On 6.18 the pending SIGKILL
 * cancels them (nothing leaked in 70 runs); on Debian's 6.1 they still run before the task
 * exits and the content is written (10 of 10 runs). There only lsm/file_open (or fanotify)
 * stops it; see test/vm/guard-vm.test.ts.
 */
SEC("tp_btf/io_uring_complete")
int guard_io_uring(unsigned long long *ctx)
{
	struct io_kiocb *req = (struct io_kiocb *)ctx[1];
	struct io_open *open = (struct io_open *)req;
	struct io_ring_ctx *ring = 0;
	struct file *file;
	__u32 file_slot = 0;
	__u8 opcode = 0;
	int res = -1;

	if (KREAD(opcode, req->opcode))
		return 0;
	if (opcode != IORING_OP_OPENAT && opcode != IORING_OP_OPENAT2)
		return 0;
	if (KREAD(res, req->cqe.res) || res < 0)
		return 0;
	if (KREAD(file_slot, open->file_slot))
		return 0;
	if (file_slot == 0) {
		file = fd_file(res);
	} else {
		if (KREAD(ring, req->ctx) || !ring)
			return 0;
		file = fixed_file(ring, file_slot == IORING_FILE_INDEX_ALLOC ? (__u32)res : file_slot - 1);
	}
	if (!file || is_path_only(file))
		return 0;
	check_file(file, GUARD_HOOK_IO_URING, res, (struct task_struct *)bpf_get_current_task(), 0);
	return 0;
}

/*
 * Module loading: the signal is queued at syscall entry, before load_module() runs. The
 * module body still runs unless the kernel checks for a fatal signal on the way (measured
 * and reported in test/vm); the LSM programs below deny the load outright where they load.
 */
SEC("tp_btf/sys_enter")
int guard_module(unsigned long long *ctx)
{
	long nr = (long)ctx[1];
	struct guard_file_key none = {};

	if (nr != NR_init_module && nr != NR_finit_module)
		return 0;
	decide(MODULE_RULE, GUARD_HOOK_MODULE, nr, &none,
	       (struct task_struct *)bpf_get_current_task(), 0);
	return 0;
}

/*
 * In the LSM programs a kill also fails the call (the >= GUARD_ACTION_KILL tests below):
 * the process dies on its way back to user space either way, and refusing the call first
 * means the open, O_TRUNC, exec or module load never happens (Override + Sigkill, and a plain
 * Sigkill made exact). GUARD_ACTION_DENY is 2, GUARD_ACTION_KILL 1, report 0, no match -1.
 */
SEC("lsm/file_open")
int guard_lsm_open(unsigned long long *ctx)
{
	struct file *file = (struct file *)ctx[0];

	if (check_file(file, GUARD_HOOK_LSM_OPEN, 0,
		       (struct task_struct *)bpf_get_current_task(), 1) >= GUARD_ACTION_KILL)
		return -EPERM;
	return 0;
}

SEC("lsm/bprm_check_security")
int guard_lsm_exec(unsigned long long *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[0];
	struct file *file = 0;

	/* Before the point of no return: current still runs the caller's binary. */
	KREAD(file, bprm->file);
	if (check_file(file, GUARD_HOOK_LSM_EXEC, 0,
		       (struct task_struct *)bpf_get_current_task(), 1) >= GUARD_ACTION_KILL)
		return -EPERM;
	return 0;
}

SEC("lsm/kernel_read_file")
int guard_lsm_read_file(unsigned long long *ctx)
{
	int id = (int)ctx[1];
	struct guard_file_key none = {};

	if (id != READING_MODULE)
		return 0;
	if (decide(MODULE_RULE, GUARD_HOOK_LSM_MODULE, id, &none,
		   (struct task_struct *)bpf_get_current_task(), 1) >= GUARD_ACTION_KILL)
		return -EPERM;
	return 0;
}

SEC("lsm/kernel_load_data")
int guard_lsm_load_data(unsigned long long *ctx)
{
	int id = (int)ctx[0];
	struct guard_file_key none = {};

	if (id != LOADING_MODULE)
		return 0;
	if (decide(MODULE_RULE, GUARD_HOOK_LSM_MODULE, id, &none,
		   (struct task_struct *)bpf_get_current_task(), 1) >= GUARD_ACTION_KILL)
		return -EPERM;
	return 0;
}
