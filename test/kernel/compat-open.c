// Opens a file through the 32-bit (ia32 compat) syscall entry from a 64-bit process, then
// reads it with the native read(2) and prints it. `int $0x80` makes the kernel treat the
// call as a compat syscall (TS_COMPAT), like any call of a 32-bit binary, without needing
// 32-bit libraries. Usage: compat-open open|openat|creat PATH
// Exit: 0 printed the content, 2 the open failed (errno in the message), 1 usage.
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NR32_open 5
#define NR32_creat 8
#define NR32_openat 295
#define AT_FDCWD_32 (-100)

static long compat_syscall3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11"); /* the compat entry zeroes r8-r11 */
	return ret;
}

int main(int argc, char **argv)
{
	if (argc != 3 || strlen(argv[2]) >= 4000)
		return 1;
	/* The compat ABI passes 32-bit pointers: the path must live below 4 GiB. */
	char *path = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (path == MAP_FAILED)
		return 1;
	strcpy(path, argv[2]);
	long fd;
	if (strcmp(argv[1], "open") == 0)
		fd = compat_syscall3(NR32_open, (long)path, 0, 0);
	else if (strcmp(argv[1], "openat") == 0)
		fd = compat_syscall3(NR32_openat, AT_FDCWD_32, (long)path, 0);
	else if (strcmp(argv[1], "creat") == 0)
		fd = compat_syscall3(NR32_creat, (long)path, 0600, 0);
	else
		return 1;
	if (fd < 0) {
		fprintf(stderr, "compat %s: errno %ld\n", argv[1], -fd);
		return 2;
	}
	char buf[4096];
	ssize_t n = read((int)fd, buf, sizeof buf);
	if (n > 0 && write(1, buf, (size_t)n) != n)
		return 3;
	return 0;
}
