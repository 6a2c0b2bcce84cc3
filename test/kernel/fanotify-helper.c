// Load and bypass shapes for the fanotify tests (test/kernel/fanotify-*.test.ts). Built by
// the tests with the system cc, -static -pthread.
//   concurrent N PATH   N threads open PATH at once (released together); prints
//                       "ok A eperm B other C maxus M" (M: the slowest open, microseconds)
//   dirfd DIR NAME      openat(open(DIR), NAME) and print the content
//   flood SECONDS PATH  open/close PATH in a loop for SECONDS; prints "opens N cpu_us U"
//                       (U: this process's user+system CPU time, for per-open CPU figures)
//   newdir N DIR        N times: mkdir DIR/nd<i>, then open(DIR/nd<i>/f, O_CREAT) in a loop
//                       until it fails with EPERM (the new directory's mark landed); prints
//                       "dirs N held H max_us M mean_us A leaked L" (the unheld window per
//                       directory, and the opens that got through in it)
//   after CHANGE PATH   change something the process map recorded at exec, without an exec
//                       (CHANGE: none, mnt = unshare(CLONE_NEWNS), capdrop = drop
//                       CAP_SYS_ADMIN from the effective set), then open PATH and print the
//                       content ("ERR change E" / "ERR open E" on failure)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

static const char *target;
static pthread_barrier_t barrier;
static long results[3];
static long max_us;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void *opener(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&barrier);
	long t0 = now_us();
	int fd = open(target, O_RDONLY);
	int err = errno;
	long us = now_us() - t0;
	pthread_mutex_lock(&lock);
	results[fd >= 0 ? 0 : err == EPERM ? 1 : 2]++;
	if (us > max_us)
		max_us = us;
	pthread_mutex_unlock(&lock);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int do_concurrent(long n, const char *path)
{
	pthread_t *t = calloc((size_t)n, sizeof *t);
	target = path;
	pthread_barrier_init(&barrier, NULL, (unsigned)n);
	for (long i = 0; i < n; i++) {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 * 1024);
		if (pthread_create(&t[i], &a, opener, NULL) != 0) {
			printf("ERR pthread_create %d\n", errno);
			return 3;
		}
	}
	for (long i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("ok %ld eperm %ld other %ld maxus %ld\n", results[0], results[1], results[2], max_us);
	return 0;
}

static int do_dirfd(const char *dir, const char *name)
{
	int d = open(dir, O_RDONLY | O_DIRECTORY);
	if (d < 0) {
		printf("ERR open-dir %d\n", errno);
		return 3;
	}
	int fd = openat(d, name, O_RDONLY);
	if (fd < 0) {
		printf("ERR openat %d\n", errno);
		return 3;
	}
	char buf[4096];
	ssize_t r;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)r, stdout);
	return 0;
}

static int do_after(const char *change, const char *path)
{
	int rc = 0;
	if (!strcmp(change, "mnt")) {
		rc = unshare(CLONE_NEWNS);
	} else if (!strcmp(change, "capdrop")) {
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct d[2];
		memset(d, 0, sizeof d);
		rc = (int)syscall(SYS_capget, &h, d);
		if (rc == 0) {
			d[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
			rc = (int)syscall(SYS_capset, &h, d);
		}
	} else if (strcmp(change, "none")) {
		printf("ERR change %d\n", EINVAL);
		return 2;
	}
	if (rc != 0) {
		printf("ERR change %d\n", errno);
		return 3;
	}
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("ERR open %d\n", errno);
		return 3;
	}
	char buf[4096];
	ssize_t r;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, (size_t)r, stdout);
	return 0;
}

static int do_flood(double seconds, const char *path)
{
	long end = now_us() + (long)(seconds * 1e6);
	long n = 0;
	while (now_us() < end) {
		int fd = open(path, O_RDONLY);
		if (fd >= 0)
			close(fd);
		n++;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
	printf("opens %ld cpu_us %ld\n", n, cpu);
	return 0;
}

static int do_newdir(long n, const char *dir)
{
	long held = 0, leaked = 0, max_us = 0, sum_us = 0;
	char d[4096], f[4200];
	for (long i = 0; i < n; i++) {
		snprintf(d, sizeof d, "%s/nd%ld-%d", dir, i, (int)getpid());
		snprintf(f, sizeof f, "%s/f", d);
		if (mkdir(d, 0755) != 0) {
			printf("ERR mkdir %d\n", errno);
			return 3;
		}
		long t0 = now_us();
		for (;;) {
			int fd = open(f, O_RDONLY | O_CREAT, 0644);
			if (fd >= 0) {
				close(fd);
				leaked++;
			} else if (errno == EPERM) {
				held++;
				break;
			} else {
				printf("ERR open %d\n", errno);
				return 3;
			}
			if (now_us() - t0 > 1000000)
				break;
		}
		long us = now_us() - t0;
		sum_us += us;
		if (us > max_us)
			max_us = us;
	}
	printf("dirs %ld held %ld max_us %ld mean_us %ld leaked %ld\n", n, held, max_us, n ? sum_us / n : 0, leaked);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "concurrent"))
		return do_concurrent(strtol(argv[2], NULL, 10), argv[3]);
	if (argc == 4 && !strcmp(argv[1], "dirfd"))
		return do_dirfd(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "newdir"))
		return do_newdir(strtol(argv[2], NULL, 10), argv[3]);
	if (argc == 4 && !strcmp(argv[1], "flood"))
		return do_flood(strtod(argv[2], NULL), argv[3]);
	if (argc == 4 && !strcmp(argv[1], "after"))
		return do_after(argv[2], argv[3]);
	fprintf(stderr, "usage: %s concurrent N PATH | dirfd DIR NAME | flood SECONDS PATH | newdir N DIR | after none|mnt|capdrop PATH\n", argv[0]);
	return 2;
}
