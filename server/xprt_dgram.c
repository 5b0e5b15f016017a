/* Datagram sockets for log outputs (syslog over a unix socket or UDP): the only place
 * where they are opened and written. A datagram is one log line; a lost one is lost
 * (syslog's own contract), so a full socket buffer or an absent receiver never blocks a
 * worker. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/xprt.h"

int pt_xprt_dgram_connect(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, sa, len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int pt_xprt_dgram_send(int fd, const struct iovec *iov, int n)
{
    struct msghdr mh = { .msg_iov = (struct iovec *) iov, .msg_iovlen = (size_t) n };
    for (;;) {
        ssize_t w = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0)
            return PT_OK;
        if (errno != EINTR)
            return PT_ERROR;
    }
}

int pt_xprt_dgram_reconnect(int fd, const struct sockaddr *sa, socklen_t len)
{
    int nfd = pt_xprt_dgram_connect(sa, len);
    if (nfd < 0)
        return PT_ERROR;
    /* the same descriptor number: whoever holds fd (the log tables) keeps using it */
    int rc = dup3(nfd, fd, O_CLOEXEC) < 0 ? PT_ERROR : PT_OK;
    close(nfd);
    return rc;
}

void pt_xprt_dgram_close(int fd)
{
    if (fd > STDERR_FILENO)
        close(fd);
}
