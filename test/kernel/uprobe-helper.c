// The uprobe tests' target program (test/kernel/generic-uprobe.test.ts, compiled at test time):
// built as a shared library (-DWARD_LIB) holding ward_probe_target, and as the executable
// that calls it, a function of its own (ward_local_target) and libc's setenv. Each function
// prints what it did after the call returns, so a caller killed at the probe prints nothing.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WARD_LIB
/* Prints "entered" first: killed at the probe, the body never runs. */
__attribute__((noipa)) int ward_probe_target(int n, const char *s, const char *buf, unsigned long len)
{
	fputs("entered\n", stdout);
	fflush(stdout);
	return n + (int)len + (s[0] == buf[0]);
}
#else
int ward_probe_target(int n, const char *s, const char *buf, unsigned long len);

__attribute__((noipa)) long ward_local_target(long x, const char *tag)
{
	__asm__ volatile("" ::: "memory");
	return x * 2 + (tag[0] != 0);
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "lib") == 0) {
		int r = ward_probe_target(atoi(argv[2]), argv[3], argv[3], strlen(argv[3]));
		printf("returned %d\n", r);
	} else if (argc >= 4 && strcmp(argv[1], "local") == 0) {
		printf("returned %ld\n", ward_local_target(atol(argv[2]), argv[3]));
	} else if (argc >= 4 && strcmp(argv[1], "setenv") == 0) {
		printf("returned %d\n", setenv(argv[2], argv[3], 1));
	} else {
		fputs("usage: uprobe-helper lib N STR | local N TAG | setenv NAME VALUE\n", stderr);
		return 2;
	}
	return 0;
}
#endif
