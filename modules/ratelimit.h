/* ratelimit: the bucket arithmetic (GCRA), apart so that t/unit/test_ratelimit.c can run it
 * against a clock of its own. */
#ifndef PT_MODULES_RATELIMIT_H
#define PT_MODULES_RATELIMIT_H

#include <stdint.h>

/* One request at time now (µs) for a bucket whose state is *tat (the time at which it is
 * full again; 0 for a new bucket), `interval` µs per request (period / rate), `burst`
 * requests at most at once. 0: the request passes (*tat advanced by one interval); else
 * the µs until one would pass (*tat unchanged). */
static inline int64_t ratelimit_gcra(uint64_t *tat, uint64_t now, uint64_t interval,
                                     uint32_t burst)
{
    uint64_t next = (*tat > now ? *tat : now) + interval;
    uint64_t horizon = now + (uint64_t) burst * interval;
    if (next > horizon)
        return (int64_t) (next - horizon);
    *tat = next;
    return 0;
}

#endif
