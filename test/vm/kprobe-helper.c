// Triggers for the kprobe VM tests (test/vm/kprobe-vm.test.ts, agent-kprobe.test.ts), static, one action per run:
//   open PATH     open PATH read-only (fd_install, security_file_permission), print "fd N"
//   setuid UID    setresuid(UID) as root (commit_creds with the new uid), print "uid N"
//   connect       listen on 127.0.0.1, connect to it, send, close (tcp_connect, tcp_sendmsg,
//                 tcp_close), print "sport S dport D"
//   udp PORT      send one datagram from 127.0.0.1 to 127.0.0.1:PORT (ip_output's skb), print
//                 "sport S"
//   truncate PATH truncate(PATH, 3) (vfs_truncate's struct path), print "size 3"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what) {
	perror(what);
	return 2;
}

int main(int argc, char **argv) {
	if (argc >= 3 && strcmp(argv[1], "open") == 0) {
		char buf[64];
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0) return fail("open");
		if (read(fd, buf, sizeof buf) < 0) return fail("read");
		printf("fd %d\n", fd);
		close(fd);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "setuid") == 0) {
		uid_t u = (uid_t)atoi(argv[2]);
		if (setresuid(u, u, u) != 0) return fail("setresuid");
		printf("uid %d\n", (int)getuid());
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "connect") == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
		socklen_t len = sizeof a;
		int l = socket(AF_INET, SOCK_STREAM, 0), c, s;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) return fail("listen");
		c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) return fail("connect");
		s = accept(l, NULL, NULL);
		if (s < 0) return fail("accept");
		if (write(c, "hello", 5) != 5) return fail("write");
		struct sockaddr_in me;
		len = sizeof me;
		getsockname(c, (struct sockaddr *)&me, &len);
		printf("sport %d dport %d\n", ntohs(me.sin_port), ntohs(a.sin_port));
		close(c);
		close(s);
		close(l);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "udp") == 0) {
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
		struct sockaddr_in me = { .sin_family = AF_INET };
		socklen_t len = sizeof me;
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (u < 0 || bind(u, (struct sockaddr *)&me, sizeof me) || getsockname(u, (struct sockaddr *)&me, &len)) return fail("udp socket");
		if (sendto(u, "ping", 4, 0, (struct sockaddr *)&to, sizeof to) != 4) return fail("sendto");
		printf("sport %d\n", ntohs(me.sin_port));
		close(u);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "truncate") == 0) {
		if (truncate(argv[2], 3) != 0) return fail("truncate");
		printf("size 3\n");
		return 0;
	}
	fprintf(stderr, "usage: %s open PATH | setuid UID | connect | udp PORT | truncate PATH\n", argv[0]);
	return 64;
}
