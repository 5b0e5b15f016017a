/* The worker's epoll loop. */
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include "portico/event.h"
#include "portico/log.h"

#define PT_EVENTS_PER_WAIT 512

pt_loop *pt_loop_cur;

void pt_loop_update_time(pt_loop *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->now = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
    clock_gettime(CLOCK_REALTIME, &ts);
    l->now_real = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int pt_loop_init(pt_loop *l)
{
    memset(l, 0, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        pt_log_errno(PT_LOG_ALERT, errno, "epoll_create1() failed");
        return PT_ERROR;
    }
    if (pt_timer_heap_init(&l->timers, 1024) != PT_OK) {
        close(l->epfd);
        return PT_ERROR;
    }
    pt_loop_update_time(l);
    return PT_OK;
}

void pt_loop_free(pt_loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
    pt_timer_heap_free(&l->timers);
}

static int ctl(pt_loop *l, int op, pt_io *io, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = io };
    if (epoll_ctl(l->epfd, op, io->fd, &ev) < 0) {
        if (op != EPOLL_CTL_DEL)
            pt_log_errno(PT_LOG_ERR, errno, "epoll_ctl(%d, fd %d) failed", op, io->fd);
        return PT_ERROR;
    }
    return PT_OK;
}

int pt_io_add(pt_loop *l, pt_io *io, uint32_t events) { return ctl(l, EPOLL_CTL_ADD, io, events); }
int pt_io_mod(pt_loop *l, pt_io *io, uint32_t events) { return ctl(l, EPOLL_CTL_MOD, io, events); }
int pt_io_del(pt_loop *l, pt_io *io) { return ctl(l, EPOLL_CTL_DEL, io, 0); }

void pt_defer_add(pt_loop *l, pt_defer *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = l->deferred;
    l->deferred = d;
}

/* Takes d off the queue: its owner is about to free it (a session whose connection
 * closed with a step still queued). */
void pt_defer_cancel(pt_loop *l, pt_defer *d)
{
    if (!d->queued)
        return;
    for (pt_defer **pp = &l->deferred; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    d->queued = false;
}

static void run_deferred(pt_loop *l)
{
    while (l->deferred) {
        pt_defer *d = l->deferred;
        l->deferred = d->next;
        d->queued = false;
        d->fn(d);
    }
}

void pt_loop_once(pt_loop *l, int max_wait)
{
    struct epoll_event evs[PT_EVENTS_PER_WAIT];
    int wait = pt_timer_next(&l->timers, l->now);
    if (max_wait >= 0 && (wait < 0 || wait > max_wait))
        wait = max_wait;
    if (l->deferred)
        wait = 0;

    int n = epoll_wait(l->epfd, evs, PT_EVENTS_PER_WAIT, wait);
    int err = errno;
    pt_loop_update_time(l);
    if (n < 0 && err != EINTR)
        pt_log_errno(PT_LOG_ALERT, err, "epoll_wait() failed");

    for (int i = 0; i < n; i++) {
        pt_io *io = evs[i].data.ptr;
        if (io->fd < 0)
            continue;               /* closed by an earlier handler in this batch */
        io->fn(io, evs[i].events);
    }
    pt_timer_expire(&l->timers, l->now);
    run_deferred(l);
}
