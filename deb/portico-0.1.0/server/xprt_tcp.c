/* The plain TCP transport: the only place where connection sockets are read, written,
 * spliced, shut down and closed. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/xprt.h"

static ssize_t tcp_recv(pt_xprt *x, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(x->io.fd, buf, len, 0);
        if (n > 0) {
            /* a short read drained the socket: the next edge says when there is more */
            if ((size_t) n < len && !x->eof)
                x->readable = false;
            return n;
        }
        if (n == 0) {
            x->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            x->readable = false;
            return PT_AGAIN;
        }
        x->eof = true;
        return PT_ERROR;
    }
}

static ssize_t tcp_writev(pt_xprt *x, const struct iovec *iov, int n)
{
    for (;;) {
        ssize_t w = writev(x->io.fd, iov, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            x->writable = false;
            return PT_AGAIN;
        }
        x->eof = true;
        return PT_ERROR;
    }
}

static ssize_t tcp_splice_in(pt_xprt *x, int pipe_wr, size_t len)
{
    for (;;) {
        ssize_t n = splice(x->io.fd, NULL, pipe_wr, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0)
            return n;
        if (n == 0) {
            x->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            /* the socket is empty, or the pipe full: the caller knows which (it only
             * splices into an empty pipe) */
            x->readable = false;
            return PT_AGAIN;
        }
        x->eof = true;
        return PT_ERROR;
    }
}

static ssize_t tcp_splice_out(pt_xprt *x, int pipe_rd, size_t len, bool more)
{
    unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0);
    for (;;) {
        ssize_t n = splice(pipe_rd, NULL, x->io.fd, NULL, len, flags);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            x->writable = false;
            return PT_AGAIN;
        }
        x->eof = true;
        return PT_ERROR;
    }
}

static int tcp_probe(pt_xprt *x)
{
    char b;
    ssize_t n = recv(x->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return 1;
    if (n < 0 && errno == EAGAIN)
        return PT_AGAIN;
    return 0;
}

static int tcp_shutdown(pt_xprt *x)
{
    return shutdown(x->io.fd, SHUT_WR) == 0 ? PT_OK : PT_ERROR;
}

static void tcp_close(pt_xprt *x)
{
    close(x->io.fd);            /* also takes it out of the epoll set */
    x->io.fd = -1;
}

static size_t tcp_pending(pt_xprt *x)
{
    return 0;
}

const pt_xprt_ops pt_xprt_tcp = {
    .name = "tcp",
    .scheme = "http",
    .recv = tcp_recv,
    .writev = tcp_writev,
    .splice_in = tcp_splice_in,
    .splice_out = tcp_splice_out,
    .probe = tcp_probe,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .pending = tcp_pending,
};

void pt_xprt_tcp_init(pt_xprt *x, int fd)
{
    x->io.fd = fd;
    x->ops = &pt_xprt_tcp;
    x->ctx = NULL;
    x->readable = x->writable = x->eof = false;
    x->read_wants_write = x->write_wants_read = false;
    x->connected = true;
}

int pt_xprt_tcp_accept(int lfd, struct sockaddr_storage *ss, socklen_t *len)
{
    /* TCP_NODELAY comes from the listening socket (listen.c) */
    return accept4(lfd, (struct sockaddr *) ss, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int pt_xprt_tcp_connect(pt_xprt *x, const struct sockaddr *sa, socklen_t len)
{
    pt_xprt_tcp_init(x, -1);
    x->connected = false;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return PT_ERROR;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, sa, len);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return PT_ERROR;
    }
    x->io.fd = fd;
    x->connected = rc == 0;
    return rc == 0 ? PT_OK : PT_AGAIN;
}

int pt_xprt_connect_result(pt_xprt *x)
{
    if (x->connected)
        return PT_OK;
    /* A failed connect is reported with EPOLLERR (eof): only then ask why. Not asking on
     * success saves a getsockopt() per new origin connection. */
    if (x->eof) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(x->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            errno = err;
            return PT_ERROR;
        }
    }
    if (!x->writable)
        return PT_AGAIN;
    x->connected = true;
    return PT_OK;
}

ssize_t pt_xprt_tcp_peek(pt_xprt *x, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(x->io.fd, buf, len, MSG_PEEK);
        if (n > 0)
            return n;
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            x->readable = false;
            return PT_AGAIN;
        }
        return PT_ERROR;
    }
}
