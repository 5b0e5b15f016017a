#ifndef PT_TIMER_H
#define PT_TIMER_H

#include "portico/core.h"
#include "portico/timer-t.h"

int      pt_timer_heap_init(pt_timer_heap *h, uint32_t cap);
void     pt_timer_heap_free(pt_timer_heap *h);
void     pt_timer_init(pt_timer *t, pt_timer_fn fn, void *data);
/* Arms t to fire at deadline (ms), or moves its deadline. */
int      pt_timer_set(pt_timer_heap *h, pt_timer *t, uint64_t deadline);
void     pt_timer_del(pt_timer_heap *h, pt_timer *t);
static inline int pt_timer_armed(const pt_timer *t) { return t->slot != 0; }
/* Milliseconds until the earliest deadline (-1: none, 0: overdue). */
int      pt_timer_next(pt_timer_heap *h, uint64_t now);
/* Fires every timer whose deadline is <= now; returns how many fired. A callback may
 * set or delete any timer, including itself. */
unsigned pt_timer_expire(pt_timer_heap *h, uint64_t now);

#endif
