// The load generator the benches time, so the measured process is a small C loop and not
// our runtime: a tight loop of one kind of work, with no allocation or I/O inside the loop.
// CPU-bound loops are timed by their own CLOCK_PROCESS_CPUTIME_ID (user + kernel, including
// any BPF program run on their behalf), not wall time, which swings by 15% on these VMs.
//   loadgen open N PATH          N x (open(PATH, O_RDONLY) + close): glibc's open is openat(2);
//                                prints CPU ns
//   loadgen getppid N            N x getppid(2), a syscall no file rule looks at; prints CPU ns
//   loadgen forkexec N PATH      N x (fork, execv(PATH), waitpid); prints CPU ns of this
//                                process and its reaped children (getrusage), since the
//                                exec and exit programs run in the child
//   loadgen run CMD [ARG...]     runs CMD once, waits; prints "WALL_NS CPU_NS" (CPU of the
//                                whole reaped tree, from RUSAGE_CHILDREN)
//   loadgen openfor SECS PATH    open+close PATH as fast as it can for SECS of wall time;
//                                prints the count
//   loadgen openrate RATE SECS PATH
//                                open+close PATH at RATE per second (paced per millisecond
//                                against CLOCK_MONOTONIC) for SECS; prints the count done
//   loadgen probe PATH           open+close PATH every 100 us until killed (the policy-add
//                                bench's probe: its death says the rule is in force)
// A failing call prints "ERR <call> <errno>" on stderr and exits 3.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long ts_ns(const struct timespec *ts)
{
	return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static long long clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts_ns(&ts);
}

static long long tv_ns(const struct timeval *tv)
{
	return (long long)tv->tv_sec * 1000000000LL + (long long)tv->tv_usec * 1000LL;
}

static long long rusage_ns(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime);
}

static int open_close(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "ERR open %d\n", errno);
		return -1;
	}
	close(fd);
	return 0;
}

static int spawn_wait(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "ERR fork %d\n", errno);
		return -1;
	}
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0) {
		fprintf(stderr, "ERR waitpid %d\n", errno);
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "ERR child status %d\n", st);
		return -1;
	}
	return 0;
}

static int usage(const char *me)
{
	fprintf(stderr,
		"usage: %s open N PATH | getppid N | forkexec N PATH | run CMD [ARG...] |\n"
		"       openfor SECS PATH | openrate RATE SECS PATH | probe PATH\n",
		me);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage(argv[0]);
	const char *mode = argv[1];
	if (strcmp(mode, "open") == 0 && argc == 4) {
		long n = strtol(argv[2], NULL, 10);
		long long t0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		for (long i = 0; i < n; i++)
			if (open_close(argv[3]) < 0)
				return 3;
		printf("%lld\n", clock_ns(CLOCK_PROCESS_CPUTIME_ID) - t0);
	} else if (strcmp(mode, "getppid") == 0) {
		long n = strtol(argv[2], NULL, 10);
		volatile pid_t sink = 0;
		long long t0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		for (long i = 0; i < n; i++)
			sink += getppid();
		printf("%lld\n", clock_ns(CLOCK_PROCESS_CPUTIME_ID) - t0);
		(void)sink;
	} else if (strcmp(mode, "forkexec") == 0 && argc == 4) {
		long n = strtol(argv[2], NULL, 10);
		char *child[] = { argv[3], NULL };
		long long t0 = rusage_ns(RUSAGE_SELF) + rusage_ns(RUSAGE_CHILDREN);
		for (long i = 0; i < n; i++)
			if (spawn_wait(child) < 0)
				return 3;
		printf("%lld\n", rusage_ns(RUSAGE_SELF) + rusage_ns(RUSAGE_CHILDREN) - t0);
	} else if (strcmp(mode, "run") == 0) {
		long long w0 = clock_ns(CLOCK_MONOTONIC);
		long long c0 = rusage_ns(RUSAGE_CHILDREN);
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "ERR fork %d\n", errno);
			return 3;
		}
		if (pid == 0) {
			execvp(argv[2], argv + 2);
			fprintf(stderr, "ERR exec %d\n", errno);
			_exit(127);
		}
		int st;
		if (waitpid(pid, &st, 0) < 0) {
			fprintf(stderr, "ERR waitpid %d\n", errno);
			return 3;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "ERR child status %d\n", st);
			return 3;
		}
		printf("%lld %lld\n", clock_ns(CLOCK_MONOTONIC) - w0, rusage_ns(RUSAGE_CHILDREN) - c0);
	} else if (strcmp(mode, "openfor") == 0 && argc == 4) {
		long long end = clock_ns(CLOCK_MONOTONIC) + (long long)(atof(argv[2]) * 1e9);
		long n = 0;
		while (clock_ns(CLOCK_MONOTONIC) < end) {
			// a batch between clock reads keeps the clock's cost out of the rate
			for (int j = 0; j < 64; j++, n++)
				if (open_close(argv[3]) < 0)
					return 3;
		}
		printf("%ld\n", n);
	} else if (strcmp(mode, "openrate") == 0 && argc == 5) {
		double rate = atof(argv[2]);
		long long start = clock_ns(CLOCK_MONOTONIC);
		long long end = start + (long long)(atof(argv[3]) * 1e9);
		long n = 0;
		for (long long tick = start; tick < end; tick += 1000000LL) {
			// due by the end of this millisecond: rate * elapsed, so rounding never drifts
			long due = (long)(rate * (double)(tick + 1000000LL - start) / 1e9);
			for (; n < due; n++)
				if (open_close(argv[4]) < 0)
					return 3;
			struct timespec ts = { .tv_sec = (tick + 1000000LL) / 1000000000LL, .tv_nsec = (tick + 1000000LL) % 1000000000LL };
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		printf("%ld\n", n);
	} else if (strcmp(mode, "probe") == 0) {
		struct timespec gap = { .tv_sec = 0, .tv_nsec = 100000 };
		for (;;) {
			if (open_close(argv[2]) < 0)
				return 3;
			nanosleep(&gap, NULL);
		}
	} else {
		return usage(argv[0]);
	}
	return 0;
}
