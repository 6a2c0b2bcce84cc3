// Socket helper for test/kernel/sock-*.test.ts: one socket call, its outcome on stdout.
//   sock-helper connect tcp|udp ADDR PORT   connect(2)
//   sock-helper sendto udp ADDR PORT        sendto(2) of 4 bytes on an unconnected socket
//   sock-helper bind tcp|udp ADDR PORT      bind(2)
// ADDR is an IPv4 or IPv6 literal. Prints "ok" or the errno's name (EPERM, ...) and exits 0;
// exit 2 is a usage or setup error. Copies of this binary under other paths let a policy's
// matchBinaries tell the callers apart.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case ENETUNREACH: return "ENETUNREACH";
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, r, v6;

	if (argc != 5) {
		fprintf(stderr, "usage: %s connect|sendto|bind tcp|udp ADDR PORT\n", argv[0]);
		return 2;
	}
	memset(&ss, 0, sizeof(ss));
	v6 = strchr(argv[3], ':') != NULL;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(atoi(argv[4]));
		if (inet_pton(AF_INET6, argv[3], &a->sin6_addr) != 1) return 2;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(atoi(argv[4]));
		if (inet_pton(AF_INET, argv[3], &a->sin_addr) != 1) return 2;
		len = sizeof(*a);
	}
	fd = socket(v6 ? AF_INET6 : AF_INET, strcmp(argv[2], "udp") == 0 ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return 2;
	}
	if (strcmp(argv[1], "connect") == 0)
		r = connect(fd, (struct sockaddr *)&ss, len);
	else if (strcmp(argv[1], "sendto") == 0)
		r = sendto(fd, "ward", 4, 0, (struct sockaddr *)&ss, len) == 4 ? 0 : -1;
	else if (strcmp(argv[1], "bind") == 0)
		r = bind(fd, (struct sockaddr *)&ss, len);
	else
		return 2;
	if (r == 0) {
		puts("ok");
	} else {
		const char *n = errname(errno);
		if (n)
			puts(n);
		else
			printf("errno %d\n", errno);
	}
	close(fd);
	return 0;
}
