/* random_two: the power of two random choices. Two servers are drawn at random, in
 * proportion to their (effective) weights, and the one with fewer requests in flight per
 * unit of weight (all workers) takes the request. Drawing is a binary search in the
 * running sums of the weights: O(log n). It needs no shared order and herds less than
 * least_conn when many balancers look at the same, slightly stale, counts. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "portico/upstream.h"

#define DRAWS 4         /* pairs drawn before falling back to a scan (all skipped or full) */

typedef struct rnd_state {
    uint64_t *cum;      /* per set position: sum of the weights up to and including it */
    uint64_t  total;
    uint64_t  rng;      /* xorshift64* */
} rnd_state;

static uint64_t next_rand(rnd_state *st)
{
    uint64_t x = st->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static int rnd_init(pt_upstream_rt *rt, void *state)
{
    rnd_state *st = state;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    st->rng = ((uint64_t) getpid() << 32) ^ (uint64_t) ts.tv_nsec ^ (uint64_t) ts.tv_sec
              ^ (uint64_t) rt->up->index * 0x9e3779b97f4a7c15ull;
    if (st->rng == 0)
        st->rng = 1;
    st->cum = calloc(rt->up->nservers, sizeof(uint64_t));
    return st->cum ? PT_OK : PT_ERROR;
}

static void rnd_exit(pt_upstream_rt *rt, void *state)
{
    rnd_state *st = state;
    free(st->cum);
}

static void rnd_update(pt_upstream_rt *rt, void *state)
{
    rnd_state *st = state;
    uint64_t sum = 0;
    for (unsigned k = 0; k < rt->nset; k++) {
        sum += rt->eweight[rt->set[k]];
        st->cum[k] = sum;
    }
    st->total = sum;
}

static unsigned draw(const pt_upstream_rt *rt, rnd_state *st)
{
    uint64_t x = next_rand(st) % st->total;
    unsigned lo = 0, hi = rt->nset - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (st->cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static bool usable(const pt_upstream_rt *rt, const pt_balance_ctx *ctx, unsigned s)
{
    return !pt_balance_skipped(ctx, s) && !pt_upstream_full(&rt->up->servers[s]);
}

/* a has fewer requests in flight per unit of weight than b */
static bool lighter(const pt_upstream_rt *rt, unsigned a, unsigned b)
{
    int64_t la = __atomic_load_n(&rt->up->servers[a].shared->active, __ATOMIC_RELAXED);
    int64_t lb = __atomic_load_n(&rt->up->servers[b].shared->active, __ATOMIC_RELAXED);
    return (la + 1) * (int64_t) rt->eweight[b] < (lb + 1) * (int64_t) rt->eweight[a];
}

static int rnd_pick(pt_upstream_rt *rt, void *state, const pt_balance_ctx *ctx)
{
    rnd_state *st = state;
    if (rt->nset == 0)
        return -1;
    for (unsigned d = 0; d < DRAWS; d++) {
        unsigned ka = draw(rt, st), kb = draw(rt, st);
        for (unsigned r = 0; kb == ka && r < 3 && rt->nset > 1; r++)
            kb = draw(rt, st);          /* two distinct servers, when there are two */
        if (kb == ka && rt->nset > 1)
            kb = (ka + 1) % rt->nset;
        unsigned a = rt->set[ka], b = rt->set[kb];
        bool ua = usable(rt, ctx, a), ub = a != b && usable(rt, ctx, b);
        if (ua && ub)
            return (int) (lighter(rt, b, a) ? b : a);
        if (ua)
            return (int) a;
        if (ub)
            return (int) b;
    }
    /* most of the set is skipped or full: the first usable one from a random place */
    unsigned start = (unsigned) (next_rand(st) % rt->nset);
    for (unsigned k = 0; k < rt->nset; k++) {
        unsigned s = rt->set[(start + k) % rt->nset];
        if (usable(rt, ctx, s))
            return (int) s;
    }
    return -1;
}

const pt_balancer pt_balance_random_two = {
    .name = "random_two",
    .rt_size = sizeof(rnd_state),
    .worker_init = rnd_init,
    .worker_exit = rnd_exit,
    .update = rnd_update,
    .pick = rnd_pick,
};
