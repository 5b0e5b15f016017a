/* Timers: one binary min-heap per worker carries every timeout.
 * Deadlines are pushed back lazily: moving a deadline later only stores it, and the
 * heap entry is re-sorted when it fires early. Per-read re-arming thus costs nothing. */
#ifndef PT_TIMER_T_H
#define PT_TIMER_T_H

#include <stdint.h>

typedef struct pt_timer pt_timer;
typedef void (*pt_timer_fn)(pt_timer *t);

struct pt_timer {
    uint64_t    key;        /* heap position key (ms); <= deadline */
    uint64_t    deadline;   /* when it really fires (ms, monotonic) */
    uint32_t    slot;       /* index in the heap + 1; 0 = not armed */
    pt_timer_fn fn;
    void       *data;
};

typedef struct pt_timer_heap {
    pt_timer **heap;
    uint32_t   n;
    uint32_t   cap;
} pt_timer_heap;

#endif
