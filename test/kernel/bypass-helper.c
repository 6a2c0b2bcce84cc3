// Bypass attempts for test/kernel/bypass-*.test.ts (the ones test/kernel/guard-helper.c does
// not already make). Built statically by the tests with the system cc, so it also runs
// inside a chroot that holds nothing else. On success a subcommand prints what it read to
// stdout and exits 0; on a failing call it prints "ERR <call> <errno>" and exits 3. A
// process the guard kills prints nothing.
//
// Built with -DPRELOAD_LIB -shared -fPIC instead, this file is an LD_PRELOAD library whose
// constructor prints the file named by $WARD_PRELOAD_READ from inside whatever program it
// was preloaded into.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
		if (write(1, buf, (size_t)n) != n)
			return fail("write");
	return n < 0 ? fail("read") : 0;
}

#ifdef PRELOAD_LIB
__attribute__((constructor)) static void preload_read(void)
{
	const char *path = getenv("WARD_PRELOAD_READ");
	if (!path)
		return;
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fail("preload-open");
		return;
	}
	dump(fd);
	close(fd);
}
#else

/* Read the whole of fd by one of the routes that need no read(2) on it. */
static int access_by(const char *mode, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return fail("fstat");
	if (strcmp(mode, "read") == 0)
		return dump(fd);
	if (strcmp(mode, "mmap") == 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			return fail("mmap");
		if (write(1, p, (size_t)st.st_size) != st.st_size)
			return fail("write");
		return 0;
	}
	if (strcmp(mode, "sendfile") == 0) {
		off_t off = 0;
		if (sendfile(1, fd, &off, (size_t)st.st_size) != st.st_size)
			return fail("sendfile");
		return 0;
	}
	if (strcmp(mode, "splice") == 0) {
		int p[2];
		if (pipe(p) < 0)
			return fail("pipe");
		ssize_t n = splice(fd, NULL, p[1], NULL, (size_t)st.st_size, 0);
		if (n != st.st_size)
			return fail("splice");
		close(p[1]);
		return dump(p[0]);
	}
	errno = EINVAL;
	return fail(mode);
}

static int wait_go(void)
{
	char line[16];
	printf("ready\n");
	fflush(stdout);
	return fgets(line, sizeof line, stdin) ? 0 : -1;
}

/* Open now, wait for a line on stdin (the rule is set meanwhile), then use the old fd. */
static int do_hold(const char *mode, const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail("open");
	if (wait_go() < 0)
		return fail("stdin");
	return access_by(mode, fd);
}

/* Wait for a line on stdin first, then open (a process that predates the rule or guard). */
static int do_late(const char *path)
{
	if (wait_go() < 0)
		return fail("stdin");
	int fd = open(path, O_RDONLY);
	return fd < 0 ? fail("open") : dump(fd);
}

static int do_fresh(const char *mode, const char *path)
{
	int fd = open(path, O_RDONLY);
	return fd < 0 ? fail("open") : access_by(mode, fd);
}

/* O_PATH (not checked: no access to the content), then a real open of the magic link. */
static int do_opath_reopen(const char *path)
{
	char proc[64];
	int fd = open(path, O_PATH);
	if (fd < 0)
		return fail("open-o_path");
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	int again = open(proc, O_RDONLY);
	return again < 0 ? fail("open-proc") : dump(again);
}

/* execveat(O_PATH fd, "", AT_EMPTY_PATH): an exec with no path at all. */
static int do_fexec(const char *path, char **argv)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return fail("open-o_path");
	syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
	return fail("execveat");
}

/* Copy a binary into a memfd and exec that (fileless, B8). */
static int do_memfd_exec(const char *path, char **argv)
{
	char buf[65536];
	ssize_t n;
	int in = open(path, O_RDONLY);
	int m = memfd_create("fileless", MFD_CLOEXEC);
	if (in < 0 || m < 0)
		return fail("open-memfd");
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(m, buf, (size_t)n) != n)
			return fail("write");
	close(in);
	syscall(SYS_execveat, m, "", argv, environ, AT_EMPTY_PATH);
	return fail("execveat");
}

/* Copy a binary into an O_TMPFILE in dir (anonymous, never named) and exec that (B9). */
static int do_tmpfile_exec(const char *dir, const char *path, char **argv)
{
	char buf[65536], proc[64];
	ssize_t n;
	int in = open(path, O_RDONLY);
	int t = open(dir, O_TMPFILE | O_RDWR, 0700);
	if (in < 0 || t < 0)
		return fail("open-tmpfile");
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(t, buf, (size_t)n) != n)
			return fail("write");
	close(in);
	/* exec refuses a file open for writing (ETXTBSY): re-open it read-only, drop the writer */
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", t);
	int ro = open(proc, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		return fail("reopen");
	close(t);
	syscall(SYS_execveat, ro, "", argv, environ, AT_EMPTY_PATH);
	return fail("execveat");
}

/* B1 for exec: a thread flips the path buffer between two same-length names while the main
 * thread execs it; whichever file the kernel resolved is the one that is judged. */
static char race_path[4096];
static const char *race_a, *race_b;

static void *exec_flipper(void *arg)
{
	(void)arg;
	for (;;) {
		memcpy(race_path, race_a, strlen(race_a) + 1);
		memcpy(race_path, race_b, strlen(race_b) + 1);
	}
	return NULL;
}

static int do_execrace(const char *a, const char *b, const char *arg)
{
	pthread_t t;
	char *argv[] = { race_path, (char *)arg, NULL };
	if (strlen(a) != strlen(b) || strlen(a) >= sizeof race_path) {
		errno = EINVAL;
		return fail("execrace-lengths");
	}
	race_a = a;
	race_b = b;
	memcpy(race_path, a, strlen(a) + 1);
	if (pthread_create(&t, NULL, exec_flipper, NULL))
		return fail("pthread_create");
	usleep(1000);
	execve(race_path, argv, environ);
	return fail("execve");
}

/*
 * SCM_RIGHTS: fork; the child execs RECEIVER (another binary) which waits for an fd on a
 * unix socket; this process opens PATH and sends the fd. Exits with the receiver's status.
 */
static int do_sendfd(const char *path, const char *receiver)
{
	int sv[2];
	char num[16];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return fail("socketpair");
	pid_t pid = fork();
	if (pid < 0)
		return fail("fork");
	if (pid == 0) {
		close(sv[0]);
		snprintf(num, sizeof num, "%d", sv[1]);
		execl(receiver, receiver, "recvfd", num, (char *)NULL);
		_exit(fail("exec-receiver"));
	}
	close(sv[1]);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail("open");
	char byte = 'f';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	if (sendmsg(sv[0], &msg, 0) != 1)
		return fail("sendmsg");
	int status = 0;
	if (waitpid(pid, &status, 0) < 0)
		return fail("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int do_recvfd(const char *sock)
{
	int s = atoi(sock), fd;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space };
	if (recvmsg(s, &msg, 0) != 1)
		return fail("recvmsg");
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return fail("cmsg");
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return dump(fd);
}

static int do_truncate(const char *path)
{
	if (truncate(path, 0) < 0)
		return fail("truncate");
	printf("truncated\n");
	return 0;
}

/* N open+close of PATH: floods the guard's ring buffer when PATH is under a report rule. */
static int do_loop(const char *count, const char *path)
{
	long n = strtol(count, NULL, 10);
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return fail("open");
		close(fd);
	}
	printf("looped %ld\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: %s read|late|opath-reopen|truncate PATH | hold|fresh MODE PATH | fexec|memfd-exec PATH ARGV... |\n"
			"       tmpfile-exec DIR PATH ARGV... | execrace PATH_A PATH_B ARG |\n"
			"       sendfd PATH RECEIVER | recvfd SOCKFD | loop N PATH\n",
			argv[0]);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "read") == 0)
		return do_fresh("read", argv[2]);
	if (strcmp(cmd, "late") == 0)
		return do_late(argv[2]);
	if (strcmp(cmd, "opath-reopen") == 0)
		return do_opath_reopen(argv[2]);
	if (strcmp(cmd, "truncate") == 0)
		return do_truncate(argv[2]);
	if (strcmp(cmd, "recvfd") == 0)
		return do_recvfd(argv[2]);
	if (strcmp(cmd, "fexec") == 0)
		return do_fexec(argv[2], argv + 2);
	if (strcmp(cmd, "memfd-exec") == 0)
		return do_memfd_exec(argv[2], argv + 2);
	if (argc < 4)
		return fail("usage");
	if (strcmp(cmd, "execrace") == 0 && argc == 5)
		return do_execrace(argv[2], argv[3], argv[4]);
	if (strcmp(cmd, "tmpfile-exec") == 0)
		return do_tmpfile_exec(argv[2], argv[3], argv + 3);
	if (strcmp(cmd, "hold") == 0)
		return do_hold(argv[2], argv[3]);
	if (strcmp(cmd, "fresh") == 0)
		return do_fresh(argv[2], argv[3]);
	if (strcmp(cmd, "sendfd") == 0)
		return do_sendfd(argv[2], argv[3]);
	if (strcmp(cmd, "loop") == 0)
		return do_loop(argv[2], argv[3]);
	errno = EINVAL;
	return fail(cmd);
}
#endif
