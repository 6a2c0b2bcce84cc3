// The load generator the benches time: a tight loop of one kind of syscall, with no
// allocation or I/O inside the loop, timed by its own CLOCK_PROCESS_CPUTIME_ID so the
// measure is the CPU it spent (user + kernel, including any BPF program run on its
// behalf), not wall time, which swings by 15% on these VMs.
//   loadgen open N PATH   N x (open(PATH, O_RDONLY) + close): glibc's open is openat(2)
//   loadgen getppid N     N x getppid(2): a syscall no file rule looks at (the control)
// Prints the CPU time in nanoseconds and exits 0; on a failing call prints
// "ERR <call> <errno>" on stderr and exits 3.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s open N PATH | getppid N\n", argv[0]);
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	long long t0, t1;
	if (strcmp(argv[1], "open") == 0 && argc == 4) {
		const char *path = argv[3];
		t0 = cpu_ns();
		for (long i = 0; i < n; i++) {
			int fd = open(path, O_RDONLY);
			if (fd < 0) {
				fprintf(stderr, "ERR open %d\n", errno);
				return 3;
			}
			close(fd);
		}
		t1 = cpu_ns();
	} else if (strcmp(argv[1], "getppid") == 0) {
		volatile pid_t sink = 0;
		t0 = cpu_ns();
		for (long i = 0; i < n; i++)
			sink += getppid();
		t1 = cpu_ns();
		(void)sink;
	} else {
		fprintf(stderr, "unknown mode %s\n", argv[1]);
		return 2;
	}
	printf("%lld\n", t1 - t0);
	return 0;
}
