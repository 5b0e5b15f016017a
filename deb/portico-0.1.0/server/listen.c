/* Listening sockets: created by the master, inherited by every worker.
 *
 * One socket per listener, shared by all workers, which accept on it with EPOLLEXCLUSIVE
 * (only one worker is woken per connection). We chose this over SO_REUSEPORT groups: a
 * reuseport socket has its own accept queue, and when the worker owning it exits (every
 * reload) the connections queued there are reset. A shared socket outlives any worker, and
 * across a reload the new generation gets the very same socket, so nothing is refused.
 *
 * Ownership: every generation owns its array of descriptors. A listener kept by a reload
 * gets a dup() of the old descriptor (same socket, new number), so closing one
 * generation's array with pt_listen_close() never closes a socket another still uses; the
 * kernel closes the socket with its last descriptor. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/process.h"
#include "portico/upgrade.h"

static bool sockaddr_equal(const struct sockaddr_storage *a, socklen_t alen,
                           const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->ss_family != b->ss_family)
        return false;

    switch (a->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *) a, *y = (const void *) b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *) a, *y = (const void *) b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id
               && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    default:
        return alen == blen && memcmp(a, b, alen) == 0;
    }
}

static int open_one(const pt_listener_conf *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "socket() for %s failed", l->address);
        return -1;
    }

    /* SO_REUSEADDR: a restart must not wait for TIME_WAIT connections of the last run. */
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "setsockopt(SO_REUSEADDR) on %s failed",
                     l->address);
        goto fail;
    }
    /* IPv6 sockets take IPv6 only, so "[::]:80" and "0.0.0.0:80" can both be listed. */
    if (l->addr.ss_family == AF_INET6
        && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "setsockopt(IPV6_V6ONLY) on %s failed",
                     l->address);
        goto fail;
    }
    /* TCP_NODELAY: responses go out in one writev, Nagle would only delay pipelined and
     * streamed ones. Accepted sockets inherit it, which saves a setsockopt() per
     * connection. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "setsockopt(TCP_NODELAY) on %s failed", l->address);
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *) &l->addr, l->addrlen) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "bind() to %s failed", l->address);
        goto fail;
    }
    if (listen(fd, l->backlog) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "listen() on %s failed", l->address);
        goto fail;
    }
    return fd;

fail:
    close(fd);
    return -1;
}

int *pt_listen_open(pt_conf *conf, pt_conf *old, int *old_fds)
{
    unsigned n = conf->nlisteners;
    int *fds = malloc(sizeof(int) * (n ? n : 1));
    int *old_backlog = malloc(sizeof(int) * (n ? n : 1));  /* of kept sockets, else -1 */
    unsigned applied = 0;

    if (fds == NULL || old_backlog == NULL) {
        pt_log(PT_LOG_EMERG, "out of memory opening listeners");
        free(fds);
        free(old_backlog);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        fds[i] = -1;
        old_backlog[i] = -1;
    }

    for (unsigned i = 0; i < n; i++) {
        const pt_listener_conf *l = &conf->listeners[i];
        int ofd = -1;

        for (unsigned j = 0; old && old_fds && j < old->nlisteners; j++) {
            if (old_fds[j] >= 0 && sockaddr_equal(&l->addr, l->addrlen,
                                                  &old->listeners[j].addr,
                                                  old->listeners[j].addrlen)) {
                ofd = old_fds[j];
                old_backlog[i] = old->listeners[j].backlog;
                break;
            }
        }

        if (old == NULL) {
            /* first start of a binary upgrade: the old master's socket, as it is */
            fds[i] = pt_upgrade_take(&l->addr, l->addrlen, sockaddr_equal);
            if (fds[i] >= 0) {
                pt_log(PT_LOG_NOTICE, "listener %s: socket %d inherited from the old master",
                       l->address, fds[i]);
                /* what open_one() would have set: a blocking socket would hang a worker
                 * in accept4() once another worker took the connection */
                int on = 1, fl = fcntl(fds[i], F_GETFL);
                if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0
                    || setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0
                    || listen(fds[i], l->backlog) < 0) {
                    pt_log_errno(PT_LOG_EMERG, errno, "inherited socket for %s: cannot set "
                                 "it up (non-blocking, TCP_NODELAY, backlog %d)", l->address,
                                 l->backlog);
                    goto fail;
                }
                continue;
            }
        }

        if (ofd >= 0) {
            fds[i] = fcntl(ofd, F_DUPFD_CLOEXEC, 0);
            if (fds[i] < 0) {
                pt_log_errno(PT_LOG_EMERG, errno, "dup() of the socket for %s failed",
                             l->address);
                goto fail;
            }
            pt_debug("listener %s: kept socket %d as %d", l->address, ofd, fds[i]);
            continue;
        }

        fds[i] = open_one(l);
        if (fds[i] < 0)
            goto fail;
        pt_debug("listener %s: socket %d", l->address, fds[i]);
    }

    /* Kept sockets are shared with the running generation: change their backlog (listen()
     * again; the queue stays) only once nothing else can fail. */
    for (applied = 0; applied < n; applied++) {
        const pt_listener_conf *l = &conf->listeners[applied];
        if (old_backlog[applied] >= 0 && old_backlog[applied] != l->backlog
            && listen(fds[applied], l->backlog) < 0) {
            pt_log_errno(PT_LOG_EMERG, errno, "listen() on %s with backlog %d failed",
                         l->address, l->backlog);
            goto fail;
        }
    }
    free(old_backlog);
    if (old == NULL)
        pt_upgrade_close_unused();
    return fds;

fail:
    for (unsigned i = 0; i < applied; i++)
        if (old_backlog[i] >= 0 && old_backlog[i] != conf->listeners[i].backlog)
            listen(fds[i], old_backlog[i]);
    free(old_backlog);
    /* Only this call's descriptors: dups of kept sockets close as dups, the old
     * generation's stay open. */
    pt_listen_close(conf, fds);
    return NULL;
}

void pt_listen_close(pt_conf *conf, int *fds)
{
    if (fds == NULL)
        return;
    for (unsigned i = 0; conf && i < conf->nlisteners; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
}
