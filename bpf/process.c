// SPDX-License-Identifier: GPL-2.0-only
/*
 * process.c: in-kernel process tracking. Three tp_btf programs keep ward_procs (tgid ->
 * struct ward_proc) current and send one record per clone, exec and thread-group exit to
 * the ward_events ring buffer. Layouts: include/process.h.
 *
 * Identity is (pid, ktime) with ktime from bpf_ktime_get_boot_ns(), the clock of
 * /proc/<pid>/stat starttime, so processes seeded from /proc and processes seen here agree.
 */
#include "vmlinux.h"
#include "ward_bpf.h"
#include "process.h"

char _license[] SEC("license") = "GPL";

WARD_PROCS_MAP;

struct {
	__uint(type, WARD_MAP_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} ward_events SEC(".maps");

/*
 * Wakeup control, shared with the consumer (struct ward_ring_ctl). A wakeup per record
 * (the ring buffer's default whenever the consumer has caught up) costs the traced
 * process an irq_work and a cross-thread wakeup for every clone, exec and exit, and
 * makes the consumer run once per record. Instead records are committed without a
 * wakeup while the consumer polls (it drains at least every few ms while records come),
 * and force one when it said it is about to block (sleeping) or the ring fills up.
 */
struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ward_ring_ctl);
} ward_events_ctl SEC(".maps");

/* Records the ring buffer refused (full), per CPU, indexed by enum ward_proc_op. */
struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, WARD_LOST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} ward_proc_lost SEC(".maps");

/* Per-CPU scratch: records are too large for the 512-byte stack. */
struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ward_exec_event);
} ward_exec_scratch SEC(".maps");

struct ward_path_buf {
	/* A path is built backwards ending at WARD_PATH_MAX; the rest is verifier slack. */
	char buf[WARD_PATH_MAX * 3];
	__u32 pos;
};

struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ward_path_buf);
} ward_path_scratch SEC(".maps");

struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ward_proc);
} ward_proc_scratch SEC(".maps");

/*
 * Never read or written: its value type puts the records and enums userspace decodes into
 * the object's BTF (types only used on the stack, or only as constants, would not be
 * there). One small entry, no global data section.
 */
struct ward_proc_layouts {
	struct ward_clone_event clone;
	struct ward_exit_event exit;
	enum ward_proc_op op;
	enum ward_proc_flag flag;
	enum ward_ns_index ns;
};

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ward_proc_layouts);
} ward_proc_layouts SEC(".maps");

/*
 * Relocated read into a typed lvalue. Unlike BPF_CORE_READ it works for const members
 * and never nests __builtin_preserve_access_index (clang refuses nesting).
 */
#define RD(dst, src, field) ward_core_read(&(dst), sizeof(dst), &(src)->field)

/* Hide a value from the optimizer so a following mask stays in the code for the verifier. */
#define OPAQUE(x) asm volatile("" : "+r"(x))

static __always_inline __u32 parent_tgid(struct task_struct *task)
{
	struct task_struct *parent = 0;
	__u32 tgid = 0;
	RD(parent, task, real_parent);
	if (parent)
		RD(tgid, parent, tgid);
	return tgid;
}

static __always_inline void count_lost(__u32 op)
{
	__u64 *n = bpf_map_lookup_elem(&ward_proc_lost, &op);
	if (n)
		*n += 1;
}

/*
 * Flags for the ring buffer commit of one record. The consumer sets sleeping and then looks
 * at the ring once more before it blocks (epoll on a ring buffer is level triggered), so a
 * record committed before it sees the flag is drained by that look and every later one
 * finds the flag: no record waits for a wakeup that never comes. Clearing it here races
 * with other CPUs only towards an extra wakeup.
 */
static __always_inline __u64 wake_flags(__u64 size)
{
	__u32 zero = 0;
	struct ward_ring_ctl *ctl = bpf_map_lookup_elem(&ward_events_ctl, &zero);
	if (!ctl || ctl->sleeping) {
		if (ctl)
			ctl->sleeping = 0;
		return WARD_RB_FORCE_WAKEUP;
	}
	/*
	 * Only the record that takes the backlog past the mark wakes: a wakeup is an irq_work
	 * (a self-IPI, a VM exit under a hypervisor), microseconds each, and a reader that is
	 * behind and busy gains nothing from one per record.
	 */
	__u64 avail = bpf_ringbuf_query(&ward_events, WARD_RB_AVAIL_DATA);
	if (avail <= WARD_RB_WAKE_BYTES && avail + size > WARD_RB_WAKE_BYTES)
		return WARD_RB_FORCE_WAKEUP;
	return WARD_RB_NO_WAKEUP;
}

static __always_inline __u32 ns_inum(void *ns_common_ptr)
{
	struct ns_common *ns = ns_common_ptr;
	if (!ns)
		return 0;
	return BPF_CORE_READ(ns, inum);
}

/*
 * task is a tp_btf argument, a BTF-typed pointer: the verifier lets the program load its
 * members, and the members of what they point to, directly (a load that faults reads 0,
 * like a failed probe read), one instruction each instead of a bpf_probe_read_kernel call:
 * 0.45 us less of every fork and exec here. The capability sets stay probe reads, read
 * whole across the two shapes of kernel_cap_t, and so does the pid array entry at a
 * variable index (typed loads take constant offsets only).
 */
static __always_inline void read_creds(struct task_struct *task, struct ward_creds_ns *c)
{
	const struct cred *cred = task->cred;
	struct nsproxy *nsp = task->nsproxy;
	struct pid *tpid = task->thread_pid;

	c->uid = cred->uid.val;
	c->gid = cred->gid.val;
	c->suid = cred->suid.val;
	c->sgid = cred->sgid.val;
	c->euid = cred->euid.val;
	c->egid = cred->egid.val;
	c->fsuid = cred->fsuid.val;
	c->fsgid = cred->fsgid.val;
	/* kernel_cap_t is { u64 val } from 6.3 and { u32 cap[2] } before: the same 8 bytes,
	 * low word first, so the whole field is read (no member name to relocate). */
	BPF_CORE_READ_INTO(&c->cap_permitted, cred, cap_permitted);
	BPF_CORE_READ_INTO(&c->cap_effective, cred, cap_effective);
	BPF_CORE_READ_INTO(&c->cap_inheritable, cred, cap_inheritable);
	/* Optional kernel features (CONFIG_AUDIT, CONFIG_TIME_NS): their fields may not exist. */
	c->auid = 4294967295U;
	if (bpf_core_field_exists(task->loginuid))
		c->auid = task->loginuid.val;
	struct css_set *cgroups = task->cgroups;
	struct cgroup *dfl = cgroups ? cgroups->dfl_cgrp : 0;
	struct kernfs_node *kn = dfl ? dfl->kn : 0;
	if (kn)
		c->cgroup_id = kn->id;

	struct user_namespace *user_ns = cred->user_ns;
	if (user_ns)
		c->ns[WARD_NS_USER] = user_ns->ns.inum;
	if (tpid) {
		/* The task's own pid namespace is the one at its pid's deepest level. */
		unsigned int level = tpid->level;
		struct upid up = {};
		__u64 at = (__u64)tpid + bpf_core_field_offset(tpid->numbers) +
			   (__u64)(level & 31) * sizeof(struct upid);
		bpf_probe_read_kernel(&up, sizeof(up), (void *)at);
		if (up.ns)
			c->ns[WARD_NS_PID] = ns_inum(&up.ns->ns);
	}
	if (!nsp)
		return; /* already detached (exiting) */
	c->ns[WARD_NS_UTS] = nsp->uts_ns->ns.inum;
	c->ns[WARD_NS_IPC] = nsp->ipc_ns->ns.inum;
	c->ns[WARD_NS_MNT] = nsp->mnt_ns->ns.inum;
	c->ns[WARD_NS_PID_FOR_CHILDREN] = nsp->pid_ns_for_children->ns.inum;
	c->ns[WARD_NS_NET] = nsp->net_ns->ns.inum;
	if (bpf_core_field_exists(nsp->time_ns)) {
		c->ns[WARD_NS_TIME] = nsp->time_ns->ns.inum;
		c->ns[WARD_NS_TIME_FOR_CHILDREN] = nsp->time_ns_for_children->ns.inum;
	}
	c->ns[WARD_NS_CGROUP] = nsp->cgroup_ns->ns.inum;
}

/*
 * Resolve (dentry, vfsmnt) to an absolute path the way the kernel's d_path does: walk
 * d_parent up to the mount root, cross to the parent mount at its mountpoint, stop at the
 * task's root or at the top of a mount tree (a detached or internal mount, like memfd's).
 * Builds backwards into b->buf ending at WARD_PATH_MAX and returns the start offset.
 * *trunc is set when the depth or the buffer ran out.
 */
static __always_inline __u32 resolve_path(struct ward_path_buf *b, struct dentry *dentry,
					  struct vfsmount *vfsmnt, struct dentry *root_dentry,
					  struct vfsmount *root_mnt, __u32 *trunc)
{
	__u64 mnt_off = bpf_core_field_offset(((struct mount *)0)->mnt);
	struct mount *mnt = (struct mount *)((__u64)vfsmnt - mnt_off);
	int done = 0;

	/*
	 * The write position lives in the map value, not in a register: a value loaded from
	 * memory is an unknown scalar to the verifier, so every iteration's state looks alike
	 * and the bounded loop is verified in linear, not exponential, work.
	 */
	b->pos = WARD_PATH_MAX;
	for (int i = 0; i < WARD_PATH_DEPTH; i++) {
		if (dentry == root_dentry && vfsmnt == root_mnt) {
			done = 1;
			break;
		}
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		if (dentry == mnt_root) {
			struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
			if (parent == mnt || !parent) {
				done = 1; /* top of this mount tree */
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = parent;
			vfsmnt = (struct vfsmount *)((__u64)parent + mnt_off);
			continue;
		}
		struct dentry *up = BPF_CORE_READ(dentry, d_parent);
		if (up == dentry || !up) {
			done = 1;
			break;
		}
		__u32 len = 0;
		const unsigned char *name = 0;
		RD(len, dentry, d_name.len);
		RD(name, dentry, d_name.name);
		if (len > WARD_NAME_MAX)
			len = WARD_NAME_MAX;
		__u32 pos = b->pos;
		if (pos > WARD_PATH_MAX || pos < len + 1) {
			*trunc = 1;
			done = 1;
			break;
		}
		pos -= len;
		bpf_probe_read_kernel(&b->buf[pos & (WARD_PATH_MAX - 1)], len & WARD_NAME_MAX, name);
		pos -= 1;
		b->buf[pos & (WARD_PATH_MAX - 1)] = '/';
		b->pos = pos;
		dentry = up;
	}
	if (!done)
		*trunc = 1;
	__u32 pos = b->pos;
	if (pos >= WARD_PATH_MAX) {
		pos = WARD_PATH_MAX - 1;
		b->buf[pos & (WARD_PATH_MAX - 1)] = '/';
	}
	return pos;
}

/* d_unlinked(): not hashed any more and not a root. What d_path marks " (deleted)". */
static __always_inline int dentry_unlinked(struct dentry *d)
{
	void *pprev = BPF_CORE_READ(d, d_hash.pprev);
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	return !pprev && up != d;
}

/* Copy a resolved path from the path scratch into the record at off; returns its length. */
static __always_inline __u32 copy_path(struct ward_exec_event *e, __u32 off, struct ward_path_buf *b,
				       __u32 pos)
{
	__u32 len = WARD_PATH_MAX - pos;
	/* clang proves the masks redundant (pos < WARD_PATH_MAX here) and drops them; 6.1's
	 * verifier loses that bound on the way, so the masks are kept opaque to the compiler. */
	__u64 n = len, at = pos;
	OPAQUE(n);
	OPAQUE(at);
	bpf_probe_read_kernel(&e->data[off & (WARD_PATH_MAX * 4 - 1)], n & (WARD_PATH_MAX * 2 - 1),
			      &b->buf[at & (WARD_PATH_MAX - 1)]);
	return n & (WARD_PATH_MAX * 2 - 1);
}

SEC("tp_btf/sched_process_fork")
int ward_process_fork(unsigned long long *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx[0];
	struct task_struct *child = (struct task_struct *)ctx[1];
	__u32 zero = 0;

	__u32 cpid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != cpid)
		return 0; /* a new thread, not a new process */
	__u32 ppid = BPF_CORE_READ(parent, tgid);

	struct ward_proc *p = bpf_map_lookup_elem(&ward_proc_scratch, &zero);
	if (!p)
		return 0;
	struct ward_proc *pp = bpf_map_lookup_elem(&ward_procs, &ppid);
	if (pp) {
		/* The child runs its parent's image until it execs. */
		bpf_probe_read_kernel(p, sizeof(*p), pp);
		p->parent_ktime = pp->ktime;
		p->flags = WARD_F_CLONE;
	} else {
		__builtin_memset(p, 0, sizeof(*p));
		p->flags = WARD_F_CLONE | WARD_F_MISS;
	}
	p->ktime = bpf_ktime_get_boot_ns();
	p->pid = cpid;
	p->ppid = ppid;
	__builtin_memset(&p->creds, 0, sizeof(p->creds));
	read_creds(child, &p->creds);
	bpf_map_update_elem(&ward_procs, &cpid, p, 0);

	struct ward_clone_event ev = {};
	ev.hdr.op = WARD_OP_CLONE;
	ev.hdr.size = sizeof(ev);
	ev.hdr.time = p->ktime;
	ev.ktime = p->ktime;
	ev.parent_ktime = p->parent_ktime;
	ev.pid = cpid;
	ev.tid = cpid;
	ev.ppid = ppid;
	ev.flags = p->flags;
	bpf_probe_read_kernel(&ev.creds, sizeof(ev.creds), &p->creds);
	if (bpf_ringbuf_output(&ward_events, &ev, sizeof(ev), wake_flags(sizeof(ev))))
		count_lost(WARD_OP_CLONE);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int ward_process_exec(unsigned long long *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	__u32 zero = 0, trunc = 0;

	struct ward_exec_event *e = bpf_map_lookup_elem(&ward_exec_scratch, &zero);
	struct ward_path_buf *b = bpf_map_lookup_elem(&ward_path_scratch, &zero);
	struct ward_proc *p = bpf_map_lookup_elem(&ward_proc_scratch, &zero);
	if (!e || !b || !p)
		return 0;

	__u32 pid = BPF_CORE_READ(task, tgid);
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 flags = WARD_F_EXECVE;

	e->hdr.op = WARD_OP_EXEC;
	e->hdr.time = now;
	e->ktime = now;
	e->pid = pid;
	e->tid = pid;

	struct ward_proc *prev = bpf_map_lookup_elem(&ward_procs, &pid);
	if (prev) {
		if ((prev->flags & WARD_F_CLONE) && !(prev->flags & WARD_F_EXECVE)) {
			/* First exec after fork: the parent is whoever forked us. */
			e->ppid = prev->ppid;
			e->parent_ktime = prev->parent_ktime;
			flags |= WARD_F_CLONE | (prev->flags & WARD_F_MISS);
		} else {
			/* Exec replacing an image: the replaced image is the parent. */
			e->ppid = pid;
			e->parent_ktime = prev->ktime;
		}
	} else {
		__u32 ppid = parent_tgid(task);
		struct ward_proc *pp = bpf_map_lookup_elem(&ward_procs, &ppid);
		e->ppid = ppid;
		e->parent_ktime = pp ? pp->ktime : 0;
		flags |= WARD_F_MISS;
	}

	/* Binary: the file being executed, resolved against the task's root. */
	struct file *file = BPF_CORE_READ(bprm, file);
	struct dentry *fdentry = 0;
	struct vfsmount *fmnt = 0;
	RD(fdentry, file, f_path.dentry);
	RD(fmnt, file, f_path.mnt);
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	struct dentry *root_dentry = BPF_CORE_READ(fs, root.dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(fs, root.mnt);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->nlink = BPF_CORE_READ(inode, __i_nlink);

	__u32 pos, bl;
	struct dentry *fparent = BPF_CORE_READ(fdentry, d_parent);
	struct dentry *fmnt_root = BPF_CORE_READ(fmnt, mnt_root);
	int pseudo = fparent == fdentry && fdentry != fmnt_root;
	if (pseudo) {
		/*
		 * A pseudo file is its own root (alloc_file_pseudo: memfd, MAP_SHARED shm); the
		 * kernel names it with simple_dname(): "/<name> (deleted)".
		 */
		__u32 len = 0;
		const unsigned char *name = 0;
		RD(len, fdentry, d_name.len);
		RD(name, fdentry, d_name.name);
		e->data[0] = '/';
		bpf_probe_read_kernel(&e->data[1], len & WARD_NAME_MAX, name);
		bl = 1 + (len & WARD_NAME_MAX);
	} else {
		pos = resolve_path(b, fdentry, fmnt, root_dentry, root_mnt, &trunc);
		bl = copy_path(e, 0, b, pos);
	}
	if (trunc)
		flags |= WARD_F_TRUNC_FILENAME;
	/* bl <= WARD_PATH_MAX + 1 always (copy_path, or a pseudo name of at most 256): no bound
	 * check here, 6.1's verifier follows its impossible branch with contradictory bounds. */
	if (pseudo || dentry_unlinked(fdentry)) {
		__u64 at = bl;
		OPAQUE(at);
		char *s = &e->data[at & (WARD_PATH_MAX * 2 - 1)];
		s[0] = ' ';
		s[1] = '(';
		s[2] = 'd';
		s[3] = 'e';
		s[4] = 'l';
		s[5] = 'e';
		s[6] = 't';
		s[7] = 'e';
		s[8] = 'd';
		s[9] = ')';
		bl += 10;
	}

	/* Arguments: the argv block exec just copied onto the new stack. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	__u64 astart = BPF_CORE_READ(mm, arg_start);
	__u64 aend = BPF_CORE_READ(mm, arg_end);
	__u32 al = 0;
	if (aend > astart) {
		__u64 n = aend - astart;
		if (n > WARD_ARGS_MAX - 1) {
			n = WARD_ARGS_MAX - 1;
			flags |= WARD_F_TRUNC_ARGS;
		}
		al = n;
		if (bpf_probe_read_user(&e->data[bl & (WARD_PATH_MAX * 2 - 1)], al & (WARD_ARGS_MAX - 1),
					(void *)astart)) {
			al = 0;
			flags |= WARD_F_ERROR_ARGS;
		}
	}

	/* Working directory. */
	trunc = 0;
	struct dentry *cwd_dentry = BPF_CORE_READ(fs, pwd.dentry);
	struct vfsmount *cwd_mnt = BPF_CORE_READ(fs, pwd.mnt);
	__u32 cl = 0;
	if (cwd_dentry) {
		pos = resolve_path(b, cwd_dentry, cwd_mnt, root_dentry, root_mnt, &trunc);
		cl = copy_path(e, (bl & (WARD_PATH_MAX * 2 - 1)) + (al & (WARD_ARGS_MAX - 1)), b, pos);
		if (trunc)
			flags |= WARD_F_TRUNC_CWD;
		if (cl == 1)
			flags |= WARD_F_ROOTCWD;
	} else {
		flags |= WARD_F_NOCWD;
	}

	__builtin_memset(&e->creds, 0, sizeof(e->creds));
	read_creds(task, &e->creds);
	e->flags = flags;
	e->binary_len = bl;
	e->args_len = al;
	e->cwd_len = cl;

	/* The map entry now describes the new image. */
	__builtin_memset(p, 0, sizeof(*p));
	p->ktime = now;
	p->parent_ktime = e->parent_ktime;
	p->pid = pid;
	p->ppid = e->ppid;
	p->flags = flags;
	p->bin_len = bl;
	bpf_probe_read_kernel(&p->creds, sizeof(p->creds), &e->creds);
	__u32 keep = bl < WARD_BIN_KEEP - 1 ? bl : WARD_BIN_KEEP - 1;
	OPAQUE(keep);
	bpf_probe_read_kernel(p->bin, keep & (WARD_BIN_KEEP - 1), e->data);
	bpf_map_update_elem(&ward_procs, &pid, p, 0);

	/* opaque for the same reason as in copy_path: the masks must reach the verifier */
	__u64 sb = bl, sa = al, sc = cl;
	OPAQUE(sb);
	OPAQUE(sa);
	OPAQUE(sc);
	__u64 size = __builtin_offsetof(struct ward_exec_event, data) + (sb & (WARD_PATH_MAX * 2 - 1)) +
		     (sa & (WARD_ARGS_MAX - 1)) + (sc & (WARD_PATH_MAX * 2 - 1));
	e->hdr.size = size;
	if (bpf_ringbuf_output(&ward_events, e, size, wake_flags(size)))
		count_lost(WARD_OP_EXEC);
	return 0;
}

/* The exit record of the last thread of a thread group. */
static __always_inline int emit_exit(struct task_struct *task)
{
	__u32 pid = BPF_CORE_READ(task, tgid);
	struct ward_exit_event ev = {};
	ev.hdr.op = WARD_OP_EXIT;
	ev.hdr.size = sizeof(ev);
	ev.hdr.time = bpf_ktime_get_boot_ns();
	ev.pid = pid;
	ev.tid = BPF_CORE_READ(task, pid);
	ev.code = BPF_CORE_READ(task, exit_code);

	struct ward_proc *p = bpf_map_lookup_elem(&ward_procs, &pid);
	if (p) {
		ev.ktime = p->ktime;
		ev.ppid = p->ppid;
		ev.flags = p->flags;
		bpf_map_delete_elem(&ward_procs, &pid);
	} else {
		ev.ppid = parent_tgid(task);
		ev.flags = WARD_F_MISS;
	}
	if (bpf_ringbuf_output(&ward_events, &ev, sizeof(ev), wake_flags(sizeof(ev))))
		count_lost(WARD_OP_EXIT);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int ward_process_exit(unsigned long long *ctx)
{
	/* group_dead (the second argument on newer kernels, 6.18 has it): the last thread of the group. */
	if (!(ctx[1] & 0xff))
		return 0;
	return emit_exit((struct task_struct *)ctx[0]);
}

/*
 * Kernels whose sched_process_exit has only the task (6.1, say): do_exit() has already
 * decremented signal->live when the tracepoint fires, so 0 means this is the last thread.
 * The sensor loads this one or the one above, after the tracepoint's prototype in the
 * kernel's BTF (the verifier refuses a read of an argument the tracepoint does not have).
 */
SEC("tp_btf/sched_process_exit")
int ward_process_exit_live(unsigned long long *ctx)
{
	struct task_struct *task = (struct task_struct *)ctx[0];
	if (BPF_CORE_READ2(task, signal, live.counter) != 0)
		return 0;
	return emit_exit(task);
}
