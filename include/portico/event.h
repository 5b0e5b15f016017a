#ifndef PT_EVENT_H
#define PT_EVENT_H

#include "portico/core.h"
#include "portico/event-t.h"
#include "portico/timer.h"

#include <sys/epoll.h>

/* The worker's loop; single-threaded workers have exactly one. */
extern pt_loop *pt_loop_cur;

int  pt_loop_init(pt_loop *l);
void pt_loop_free(pt_loop *l);
/* Registers fd for events (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET for connections). */
int  pt_io_add(pt_loop *l, pt_io *io, uint32_t events);
int  pt_io_mod(pt_loop *l, pt_io *io, uint32_t events);
int  pt_io_del(pt_loop *l, pt_io *io);
/* Waits at most max_wait ms (-1: until a timer), dispatches events, fires timers, then
 * runs deferred work. */
void pt_loop_once(pt_loop *l, int max_wait);
void pt_loop_update_time(pt_loop *l);
void pt_defer_add(pt_loop *l, pt_defer *d);
void pt_defer_cancel(pt_loop *l, pt_defer *d);

static inline int pt_loop_timer(pt_loop *l, pt_timer *t, uint64_t after_ms)
{
    return pt_timer_set(&l->timers, t, l->now + after_ms);
}

#endif
