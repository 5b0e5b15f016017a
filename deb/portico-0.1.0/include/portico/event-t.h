/* The worker's event loop: one epoll instance, one timer heap.
 * Sockets are registered once, edge-triggered, for both directions; handlers keep their
 * own "ready" flags, so a request costs no epoll_ctl call. */
#ifndef PT_EVENT_T_H
#define PT_EVENT_T_H

#include <stdbool.h>
#include <stdint.h>
#include "portico/timer-t.h"

typedef struct pt_io pt_io;
typedef void (*pt_io_fn)(pt_io *io, uint32_t events);

struct pt_io {
    int      fd;        /* -1 once closed: events still queued for it are dropped */
    pt_io_fn fn;
    void    *data;
};

/* Work deferred to the end of the current loop iteration (frees after the event batch,
 * so that no handler in the batch can see freed memory). */
typedef struct pt_defer pt_defer;
struct pt_defer {
    void    (*fn)(pt_defer *d);
    pt_defer *next;
    bool      queued;
};

typedef struct pt_loop {
    int            epfd;
    uint64_t       now;       /* monotonic ms, refreshed after each epoll_wait */
    uint64_t       now_real;  /* realtime ms, same refresh (log timestamps, Date) */
    pt_timer_heap  timers;
    pt_defer      *deferred;
    bool           stop;
} pt_loop;

#endif
