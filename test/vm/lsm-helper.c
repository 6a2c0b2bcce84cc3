// One system call per subcommand, for the VM tests of BPF LSM policies through the agent
// (test/vm/agent-lsm.test.ts). Built static by the harness (test/vm/agent-image.ts), so it
// runs in the busybox initramfs. Prints "OK <call>" and exits 0, or "ERR <call> <errno>" and
// exits 3; a process the policy kills prints nothing.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

/* Listen on [::]:PORT (IPv4 too) and append "PORT\n" to FILE per accepted connection, for ever:
 * the count says which connects reached a listener. Prints "LISTEN PORT" once it listens. */
static int serve(const char *port, const char *file)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0), off = 0, on = 1;
	struct sockaddr_in6 a;
	if (fd < 0)
		return result("socket", -1);
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	memset(&a, 0, sizeof a);
	a.sin6_family = AF_INET6;
	a.sin6_port = htons(atoi(port));
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		return result("bind", -1);
	if (listen(fd, 16) < 0)
		return result("listen", -1);
	printf("LISTEN %s\n", port);
	fflush(stdout);
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		int out = open(file, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (out >= 0) {
			dprintf(out, "%s\n", port);
			close(out);
		}
		close(c);
	}
}

/* finit_module on an open fd of PATH, or init_module on its bytes: the LSM hooks decide
 * before the module's ELF is looked at, so any file longer than an ELF header tells a refusal (EPERM) from the
 * kernel's own checks (ENOEXEC for a file that is no module) */
static int module_call(const char *call, const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return result("open", -1);
	if (!strcmp(call, "finit"))
		return result("finit", syscall(SYS_finit_module, fd, "", 0));
	static char buf[65536];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n < 0)
		return result("read", -1);
	return result("init", syscall(SYS_init_module, buf, (unsigned long)n, ""));
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: lsm-helper exec|connect|bind|serve|finit|init|unlink|rename|truncate|chmod|mkdir|kill|bpf ARGS\n");
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "exec") && argc >= 3) {
		execv(argv[2], &argv[2]);
		return result("execve", -1);
	}
	if (!strcmp(cmd, "connect") || !strcmp(cmd, "bind"))
		return sock_call(cmd, argc, argv);
	if (!strcmp(cmd, "serve") && argc >= 4)
		return serve(argv[2], argv[3]);
	if ((!strcmp(cmd, "finit") || !strcmp(cmd, "init")) && argc >= 3)
		return module_call(cmd, argv[2]);
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
