// Socket helper for test/kernel/sock-*.test.ts: one socket call, its outcome on stdout.
//   sock-helper connect tcp|udp ADDR PORT   connect(2)
//   sock-helper sendto udp ADDR PORT        sendto(2) of 4 bytes on an unconnected socket
//   sock-helper bind tcp|udp ADDR PORT      bind(2)
//   sock-helper uring-connect tcp ADDR PORT io_uring IORING_OP_CONNECT (no connect syscall)
//   sock-helper fastopen tcp ADDR PORT      sendto(MSG_FASTOPEN): TCP fast open connects on send
// ADDR is an IPv4 or IPv6 literal. Prints "ok" or the errno's name (EPERM, ...) and exits 0;
// exit 2 is a usage or setup error. Copies of this binary under other paths let a policy's
// matchBinaries tell the callers apart.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

/* One IORING_OP_CONNECT on a fresh ring; 0 or -1 with errno set from the completion. */
static int uring_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct io_uring_params p;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqe;
	char *sq, *cq;
	__u32 *tail, mask, t, *head;
	int ring, res;

	memset(&p, 0, sizeof(p));
	ring = (int)syscall(SYS_io_uring_setup, 2, &p);
	if (ring < 0)
		return -1;
	sq = mmap(0, p.sq_off.array + p.sq_entries * sizeof(__u32), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	cq = mmap(0, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		return -1;
	tail = (__u32 *)(sq + p.sq_off.tail);
	mask = *(__u32 *)(sq + p.sq_off.ring_mask);
	t = *tail;
	memset(&sqes[t & mask], 0, sizeof(struct io_uring_sqe));
	sqes[t & mask].opcode = IORING_OP_CONNECT;
	sqes[t & mask].fd = fd;
	sqes[t & mask].addr = (unsigned long)sa;
	sqes[t & mask].off = len; /* the address length rides in off */
	((__u32 *)(sq + p.sq_off.array))[t & mask] = t & mask;
	__atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) < 0)
		return -1;
	head = (__u32 *)(cq + p.cq_off.head);
	cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) + (*head & *(__u32 *)(cq + p.cq_off.ring_mask));
	res = cqe->res;
	close(ring);
	if (res < 0) {
		errno = -res;
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, r, v6;

	if (argc != 5) {
		fprintf(stderr, "usage: %s connect|sendto|bind|uring-connect|fastopen tcp|udp ADDR PORT\n", argv[0]);
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
	else if (strcmp(argv[1], "uring-connect") == 0)
		r = uring_connect(fd, (struct sockaddr *)&ss, len);
	else if (strcmp(argv[1], "fastopen") == 0)
		r = sendto(fd, "ward", 4, MSG_FASTOPEN, (struct sockaddr *)&ss, len) == 4 ? 0 : -1;
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
