#ifndef PT_COUNTERS_H
#define PT_COUNTERS_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/counters-t.h"

/* While loading a configuration: the counter "kind:name" (kind "acl", "rule",
 * "rate_limit", ...). *where is set in the master once the "counters" zone is mapped (the
 * slot that counter had, or a free one); it stays NULL if every slot is taken or the name
 * is too long, and pt_counter_add() then does nothing. PT_OK or PT_ERROR (no memory). */
int pt_counter_declare(pt_conf_ctx *cx, const char *kind, const char *name,
                       pt_counter **where);

static inline void pt_counter_add(pt_counter *c, uint64_t n)
{
    if (c)
        __atomic_fetch_add(&c->value, n, __ATOMIC_RELAXED);
}

static inline uint64_t pt_counter_get(const pt_counter *c)
{
    return c ? __atomic_load_n(&c->value, __ATOMIC_RELAXED) : 0;
}

#endif
