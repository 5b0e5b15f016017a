#ifndef PT_XPRT_H
#define PT_XPRT_H

#include <sys/socket.h>

#include "portico/core.h"
#include "portico/buf-t.h"
#include "portico/xprt-t.h"

extern const pt_xprt_ops pt_xprt_tcp;

/* Reads into b (at most max bytes): > 0 bytes, 0 EOF, PT_ERROR, PT_AGAIN, or -3 when b
 * is full. */
ssize_t pt_xprt_read(pt_xprt *x, pt_buf *b, size_t max);

static inline ssize_t pt_xprt_writev(pt_xprt *x, const struct iovec *iov, int n)
{
    return x->ops->writev(x, iov, n);
}

static inline void pt_xprt_close(pt_xprt *x)
{
    if (x->io.fd >= 0)
        x->ops->close(x);
}

/* Edge-triggered events into readiness flags. */
void pt_xprt_events(pt_xprt *x, uint32_t events);

/* TCP: an accepted connection, or a new outgoing one. */
void pt_xprt_tcp_init(pt_xprt *x, int fd);
int  pt_xprt_tcp_accept(int lfd, struct sockaddr_storage *ss, socklen_t *len);   /* fd or -1 */
/* Starts a non-blocking connect: PT_OK (connected at once), PT_AGAIN (in progress: the
 * handler gets EPOLLOUT or an error), PT_ERROR (errno). x->io.fd is -1 after an error. */
int  pt_xprt_tcp_connect(pt_xprt *x, const struct sockaddr *sa, socklen_t len);
/* After the connect's event: PT_OK, PT_AGAIN, or PT_ERROR with errno. */
int  pt_xprt_connect_result(pt_xprt *x);
/* Reads exactly len bytes already known to be waiting (a PROXY protocol header found by
 * a peek), or peeks up to len: bytes, 0 EOF, PT_AGAIN, PT_ERROR. */
ssize_t pt_xprt_tcp_peek(pt_xprt *x, void *buf, size_t len);

/* Kernel pipes for splice relays, cached per worker (empty pipes only). */
/* Datagram sockets (xprt_dgram.c), for log outputs: socket + connect, non-blocking
 * (the descriptor, or -1 with errno); one datagram per call, never blocking (PT_OK, or
 * PT_ERROR with errno: the datagram is dropped). */
int  pt_xprt_dgram_connect(const struct sockaddr *sa, socklen_t len);
int  pt_xprt_dgram_send(int fd, const struct iovec *iov, int n);
/* A new socket connected to sa put in fd's place (the receiver was restarted): PT_OK, or
 * PT_ERROR with fd as it was. */
int  pt_xprt_dgram_reconnect(int fd, const struct sockaddr *sa, socklen_t len);
void pt_xprt_dgram_close(int fd);

int  pt_pipe_get(int fds[2]);
void pt_pipe_put(int fds[2], bool empty);
void pt_pipe_cache_clear(void);

#endif
