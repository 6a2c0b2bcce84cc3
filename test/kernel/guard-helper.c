// Bypass attempts for the file guard tests, one per subcommand. Built by the tests with the
// system cc (-static, so the same binary also runs in the qemu VM's busybox initramfs).
// On success each subcommand prints what it read to stdout and exits 0; on a failing call
// it prints "ERR <call> <errno>" and exits 3. A process the guard kills prints nothing.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
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

/* IORING_OP_OPENAT through raw io_uring syscalls: never passes sys_exit of an open syscall. */
static int do_uring(const char *path)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int ring = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (ring < 0)
		return fail("io_uring_setup");
	size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(__u32);
	size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	size_t len = sq_len > cq_len ? sq_len : cq_len;
	char *sq = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return fail("mmap-ring");
	char *cq = (p.features & IORING_FEAT_SINGLE_MMAP)
			   ? sq
			   : mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (cq == MAP_FAILED || sqes == MAP_FAILED)
		return fail("mmap-sqes");
	memset(&sqes[0], 0, sizeof sqes[0]);
	sqes[0].opcode = IORING_OP_OPENAT;
	sqes[0].fd = AT_FDCWD;
	sqes[0].addr = (unsigned long)path;
	sqes[0].open_flags = O_RDONLY;
	sqes[0].user_data = 42;
	__u32 *tail = (__u32 *)(sq + p.sq_off.tail);
	__u32 *array = (__u32 *)(sq + p.sq_off.array);
	array[*tail & *(__u32 *)(sq + p.sq_off.ring_mask)] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) < 0)
		return fail("io_uring_enter");
	__u32 head = __atomic_load_n((__u32 *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
	struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
				   (head & *(__u32 *)(cq + p.cq_off.ring_mask));
	if (cqe->res < 0) {
		errno = -cqe->res;
		return fail("io_uring-openat");
	}
	return dump(cqe->res);
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
		fprintf(stderr, "usage: %s read|openat2|handle|creat|procfd|uring|finit|init PATH\n", argv[0]);
		return 2;
	}
	const char *cmd = argv[1], *path = argv[2];
	if (!strcmp(cmd, "read"))
		return do_read(path);
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
	if (!strcmp(cmd, "finit"))
		return do_finit(path);
	if (!strcmp(cmd, "init"))
		return do_init(path);
	fprintf(stderr, "unknown subcommand %s\n", cmd);
	return 2;
}
