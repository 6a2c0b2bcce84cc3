// One system call per subcommand, for the VM tests of BPF LSM policies through the agent
// (test/vm/agent-lsm.test.ts). Built static by the harness (test/vm/agent-image.ts), so it
// runs in the busybox initramfs. Prints "OK <call>" and exits 0, or "ERR <call> <errno>" and
// exits 3; a process the policy kills prints nothing.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int result(const char *call, long r)
{
	if (r < 0) {
		printf("ERR %s %d\n", call, errno);
		fflush(stdout);
		return 3;
	}
	printf("OK %s\n", call);
	fflush(stdout);
	return 0;
}

/* connect/bind a TCP socket of family inet or inet6 to ADDR PORT */
static int sock_call(const char *call, int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int v6 = strchr(argv[2], ':') != NULL;
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return result("socket", -1);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(atoi(argv[3]));
		inet_pton(AF_INET6, argv[2], &a->sin6_addr);
		len = sizeof *a;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(atoi(argv[3]));
		inet_pton(AF_INET, argv[2], &a->sin_addr);
		len = sizeof *a;
	}
	long r = !strcmp(call, "connect") ? connect(fd, (struct sockaddr *)&ss, len) : bind(fd, (struct sockaddr *)&ss, len);
	return result(call, r);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: lsm-helper exec|connect|bind|unlink|rename|truncate|chmod|mkdir|kill|bpf ARGS\n");
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "exec") && argc >= 3) {
		execv(argv[2], &argv[2]);
		return result("execve", -1);
	}
	if (!strcmp(cmd, "connect") || !strcmp(cmd, "bind"))
		return sock_call(cmd, argc, argv);
	if (!strcmp(cmd, "unlink") && argc >= 3)
		return result("unlink", unlink(argv[2]));
	if (!strcmp(cmd, "rename") && argc >= 4)
		return result("rename", rename(argv[2], argv[3]));
	if (!strcmp(cmd, "truncate") && argc >= 3)
		return result("truncate", truncate(argv[2], 0));
	if (!strcmp(cmd, "chmod") && argc >= 4)
		return result("chmod", chmod(argv[2], strtol(argv[3], NULL, 8)));
	if (!strcmp(cmd, "mkdir") && argc >= 3)
		return result("mkdir", mkdir(argv[2], 0755));
	if (!strcmp(cmd, "kill") && argc >= 4)
		return result("kill", kill(atoi(argv[2]), atoi(argv[3])));
	if (!strcmp(cmd, "bpf") && argc >= 3) {
		/* an all-zero attribute: the command's own checks refuse it (EINVAL), a policy
		 * on the bpf hook refuses it before them (EPERM) */
		char attr[128];
		memset(attr, 0, sizeof attr);
		return result("bpf", syscall(SYS_bpf, atoi(argv[2]), attr, sizeof attr));
	}
	fprintf(stderr, "lsm-helper: unknown subcommand %s\n", cmd);
	return 2;
}
