// Bypass attempts for the file guard tests, one per subcommand. Built by the tests with the
// system cc (-static, so the same binary also runs in the qemu VM's busybox initramfs).
// On success each subcommand prints what it read to stdout and exits 0; on a failing call
// it prints "ERR <call> <errno>" and exits 3. A process the guard kills prints nothing.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fail(const char *call)
{
	printf("ERR %s %d\n", call, errno);
	fflush(stdout);
	return 3;
}

static int dump(int fd)
{
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	fflush(stdout);
	return n < 0 ? fail("read") : 0;
}

static int do_read(const char *path)
{
	int fd = open(path, O_RDONLY);
	return fd < 0 ? fail("open") : dump(fd);
}

/* O_PATH: a handle on the name, no access to the content. */
static int do_opath(const char *path)
{
	struct stat st;
	int fd = open(path, O_PATH);
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail("open-o_path");
	printf("opened ino %lu\n", (unsigned long)st.st_ino);
	return 0;
}

static int do_openat2(const char *path)
{
	struct open_how how = { .flags = O_RDONLY, .resolve = RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
	return fd < 0 ? fail("openat2") : dump(fd);
}

static int do_handle(const char *path)
{
	struct file_handle *fh = malloc(sizeof *fh + MAX_HANDLE_SZ);
	int mount_id, mfd, fd;
	fh->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(AT_FDCWD, path, fh, &mount_id, 0) < 0)
		return fail("name_to_handle_at");
	mfd = open("/", O_RDONLY | O_DIRECTORY); /* any fd on the same mount */
	fd = open_by_handle_at(mfd, fh, O_RDONLY);
	return fd < 0 ? fail("open_by_handle_at") : dump(fd);
}

static int do_creat(const char *path)
{
	int fd = creat(path, 0644);
	if (fd < 0)
		return fail("creat");
	printf("created\n");
	return 0;
}

/* Opens the file now (before the rule exists), waits for a line on stdin, then re-opens it
 * through the /proc/self/fd magic link. */
static int do_procfd(const char *path)
{
	char line[16], proc[64];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail("open");
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return fail("stdin");
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	int again = open(proc, O_RDONLY);
	return again < 0 ? fail("open-proc") : dump(again);
}

/* A minimal io_uring: the three mappings and one-SQE-at-a-time submission. */
struct ring {
	int fd;
	struct io_uring_params p;
	char *sq, *cq;
	struct io_uring_sqe *sqes;
};

static int ring_setup(struct ring *r)
{
	memset(r, 0, sizeof *r);
	r->fd = (int)syscall(SYS_io_uring_setup, 4, &r->p);
	if (r->fd < 0)
		return -1;
	size_t sq_len = r->p.sq_off.array + r->p.sq_entries * sizeof(__u32);
	size_t cq_len = r->p.cq_off.cqes + r->p.cq_entries * sizeof(struct io_uring_cqe);
	size_t len = sq_len > cq_len ? sq_len : cq_len;
	r->sq = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (r->sq == MAP_FAILED)
		return -1;
	r->cq = (r->p.features & IORING_FEAT_SINGLE_MMAP)
			? r->sq
			: mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(0, r->p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	return r->cq == MAP_FAILED || r->sqes == MAP_FAILED ? -1 : 0;
}

/* Submit one SQE, wait for its completion, return cqe.res (or -errno of io_uring_enter). */
static int ring_run(struct ring *r, const struct io_uring_sqe *sqe)
{
	__u32 *tail = (__u32 *)(r->sq + r->p.sq_off.tail);
	__u32 mask = *(__u32 *)(r->sq + r->p.sq_off.ring_mask);
	__u32 t = *tail;
	r->sqes[t & mask] = *sqe;
	((__u32 *)(r->sq + r->p.sq_off.array))[t & mask] = t & mask;
	__atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) < 0)
		return -errno;
	__u32 *headp = (__u32 *)(r->cq + r->p.cq_off.head);
	__u32 head = __atomic_load_n(headp, __ATOMIC_ACQUIRE);
	struct io_uring_cqe *cqe = (struct io_uring_cqe *)(r->cq + r->p.cq_off.cqes) +
				   (head & *(__u32 *)(r->cq + r->p.cq_off.ring_mask));
	int res = cqe->res;
	__atomic_store_n(headp, head + 1, __ATOMIC_RELEASE);
	return res;
}

/* IORING_OP_OPENAT into the fd table: never passes sys_exit of an open syscall. */
static int do_uring(const char *path)
{
	struct ring r;
	struct io_uring_sqe sqe;
	if (ring_setup(&r) < 0)
		return fail("io_uring_setup");
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_OPENAT;
	sqe.fd = AT_FDCWD;
	sqe.addr = (unsigned long)path;
	sqe.open_flags = O_RDONLY;
	int res = ring_run(&r, &sqe);
	if (res < 0) {
		errno = -res;
		return fail("io_uring-openat");
	}
	return dump(res);
}

/* IORING_OP_OPENAT into the ring's fixed-file table (a direct descriptor, no fd at all),
 * then IORING_OP_READ through that slot. */
static int do_uring_direct(const char *path)
{
	struct ring r;
	struct io_uring_sqe sqe;
	char buf[4096];
	int sparse[1] = { -1 };
	if (ring_setup(&r) < 0)
		return fail("io_uring_setup");
	if (syscall(SYS_io_uring_register, r.fd, IORING_REGISTER_FILES, sparse, 1) < 0)
		return fail("io_uring_register");
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_OPENAT;
	sqe.fd = AT_FDCWD;
	sqe.addr = (unsigned long)path;
	sqe.open_flags = O_RDONLY;
	sqe.file_index = 1; /* slot 0 */
	int res = ring_run(&r, &sqe);
	if (res < 0) {
		errno = -res;
		return fail("io_uring-openat-direct");
	}
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_READ;
	sqe.flags = IOSQE_FIXED_FILE;
	sqe.fd = 0;
	sqe.addr = (unsigned long)buf;
	sqe.len = sizeof buf;
	res = ring_run(&r, &sqe);
	if (res < 0) {
		errno = -res;
		return fail("io_uring-read-fixed");
	}
	fwrite(buf, 1, (size_t)res, stdout);
	fflush(stdout);
	return 0;
}

/* B1: a second thread flips the path buffer between a harmless file and PATH while the main
 * thread opens whatever the buffer names, 2000 times, copying what it read to stdout. */
static char race_path[4096];
static const char *race_a, *race_b;
static volatile int race_stop;

static void *race_flipper(void *arg)
{
	(void)arg;
	while (!race_stop) {
		strcpy(race_path, race_a);
		strcpy(race_path, race_b);
	}
	return 0;
}

static int do_pathrace(const char *path)
{
	pthread_t t;
	race_a = "/etc/hostname";
	race_b = path;
	strcpy(race_path, race_a);
	pthread_create(&t, 0, race_flipper, 0);
	for (int i = 0; i < 2000; i++) {
		int fd = open(race_path, O_RDONLY);
		if (fd >= 0) {
			dump(fd);
			close(fd);
		}
	}
	race_stop = 1;
	pthread_join(t, 0);
	printf("race done\n");
	return 0;
}

/* One submission of three linked SQEs that never return to user space in between: open the
 * file into fixed slot 0, read it through the slot, write what was read to stdout. */
static int do_uring_chain(const char *path)
{
	struct ring r;
	static char buf[64];
	int sparse[1] = { -1 };
	if (ring_setup(&r) < 0)
		return fail("io_uring_setup");
	if (syscall(SYS_io_uring_register, r.fd, IORING_REGISTER_FILES, sparse, 1) < 0)
		return fail("io_uring_register");
	struct io_uring_sqe sqe[3];
	memset(sqe, 0, sizeof sqe);
	sqe[0].opcode = IORING_OP_OPENAT;
	sqe[0].flags = IOSQE_IO_LINK;
	sqe[0].fd = AT_FDCWD;
	sqe[0].addr = (unsigned long)path;
	sqe[0].open_flags = O_RDONLY;
	sqe[0].file_index = 1;
	sqe[1].opcode = IORING_OP_READ;
	sqe[1].flags = IOSQE_IO_LINK | IOSQE_FIXED_FILE;
	sqe[1].fd = 0;
	sqe[1].addr = (unsigned long)buf;
	sqe[1].len = 14; /* "I love pizza!\n" */
	sqe[2].opcode = IORING_OP_WRITE;
	sqe[2].fd = 1;
	sqe[2].addr = (unsigned long)buf;
	sqe[2].len = 14;
	sqe[2].off = (__u64)-1; /* at the current position: stdout may be a file */
	__u32 *tail = (__u32 *)(r.sq + r.p.sq_off.tail);
	__u32 mask = *(__u32 *)(r.sq + r.p.sq_off.ring_mask);
	__u32 t = *tail;
	for (int i = 0; i < 3; i++) {
		r.sqes[(t + i) & mask] = sqe[i];
		((__u32 *)(r.sq + r.p.sq_off.array))[(t + i) & mask] = (t + i) & mask;
	}
	__atomic_store_n(tail, t + 3, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, r.fd, 3, 3, IORING_ENTER_GETEVENTS, 0, 0) < 0)
		return fail("io_uring_enter");
	__u32 *headp = (__u32 *)(r.cq + r.p.cq_off.head);
	__u32 head = __atomic_load_n(headp, __ATOMIC_ACQUIRE);
	__u32 ctail = __atomic_load_n((__u32 *)(r.cq + r.p.cq_off.tail), __ATOMIC_ACQUIRE);
	printf("\nchain done:");
	for (; head != ctail; head++)
		printf(" %d", ((struct io_uring_cqe *)(r.cq + r.p.cq_off.cqes))[head & *(__u32 *)(r.cq + r.p.cq_off.ring_mask)].res);
	printf("\n");
	return 0;
}

static int do_finit(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail("open");
	long r = syscall(SYS_finit_module, fd, "", 0);
	printf("finit_module returned %ld errno %d\n", r, r < 0 ? errno : 0);
	return 0;
}

static int do_init(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail("open");
	char *image = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (read(fd, image, (size_t)st.st_size) != st.st_size)
		return fail("read");
	long r = syscall(SYS_init_module, image, (unsigned long)st.st_size, "");
	printf("init_module returned %ld errno %d\n", r, r < 0 ? errno : 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s read|pathrace|opath|openat2|handle|creat|procfd|uring|uring-direct|uring-chain|finit|init PATH\n", argv[0]);
		return 2;
	}
	const char *cmd = argv[1], *path = argv[2];
	if (!strcmp(cmd, "read"))
		return do_read(path);
	if (!strcmp(cmd, "opath"))
		return do_opath(path);
	if (!strcmp(cmd, "openat2"))
		return do_openat2(path);
	if (!strcmp(cmd, "handle"))
		return do_handle(path);
	if (!strcmp(cmd, "creat"))
		return do_creat(path);
	if (!strcmp(cmd, "procfd"))
		return do_procfd(path);
	if (!strcmp(cmd, "uring"))
		return do_uring(path);
	if (!strcmp(cmd, "pathrace"))
		return do_pathrace(path);
	if (!strcmp(cmd, "uring-chain"))
		return do_uring_chain(path);
	if (!strcmp(cmd, "uring-direct"))
		return do_uring_direct(path);
	if (!strcmp(cmd, "finit"))
		return do_finit(path);
	if (!strcmp(cmd, "init"))
		return do_init(path);
	fprintf(stderr, "unknown subcommand %s\n", cmd);
	return 2;
}
