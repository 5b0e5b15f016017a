/* Smooth weighted round robin, in O(log n): every server has a virtual finish time
 * ("pass") that grows by 1/weight each time it is picked; the server with the earliest
 * pass is next. A server entering the set starts half a step after the current virtual
 * time, so weights 1:2:3 give c b a c b c (each one spread over the cycle, never a burst)
 * and a server coming back neither floods nor starves. A binary heap keyed by pass holds
 * the set; skipped servers (tried, or full) are set aside during a pick and put back.
 *
 * Passes are compared by their signed difference, so they may wrap. */
#include <stdlib.h>

#include "portico/upstream.h"

#define RR_SCALE (1ull << 40)       /* pass units per pick of a weight-1 server (x256) */

typedef struct rr_state {
    unsigned *heap;     /* server indices, heap-ordered by pass */
    unsigned  n;
    uint64_t *pass;     /* per server */
    uint8_t  *in;       /* per server: in the heap */
    unsigned *aside;    /* skipped during a pick */
    uint64_t  vt;       /* the pass of the last pick: virtual time */
} rr_state;

static inline uint64_t stride(const pt_upstream_rt *rt, unsigned s)
{
    return RR_SCALE / rt->eweight[s];
}

static inline bool before(const rr_state *st, unsigned a, unsigned b)
{
    int64_t d = (int64_t) (st->pass[a] - st->pass[b]);
    return d < 0 || (d == 0 && a < b);
}

static void sift_down(rr_state *st, unsigned i)
{
    unsigned *h = st->heap, n = st->n, v = h[i];
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(st, h[c + 1], h[c]))
            c++;
        if (!before(st, h[c], v))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static void sift_up(rr_state *st, unsigned i)
{
    unsigned *h = st->heap, v = h[i];
    while (i > 0) {
        unsigned p = (i - 1) / 2;
        if (!before(st, v, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static int rr_init(pt_upstream_rt *rt, void *state)
{
    rr_state *st = state;
    unsigned n = rt->up->nservers;
    st->heap = calloc(n, sizeof(unsigned));
    st->aside = calloc(n, sizeof(unsigned));
    st->pass = calloc(n, sizeof(uint64_t));
    st->in = calloc(n, 1);
    return st->heap && st->aside && st->pass && st->in ? PT_OK : PT_ERROR;
}

static void rr_exit(pt_upstream_rt *rt, void *state)
{
    rr_state *st = state;
    free(st->heap);
    free(st->aside);
    free(st->pass);
    free(st->in);
}

static void rr_update(pt_upstream_rt *rt, void *state)
{
    rr_state *st = state;
    for (unsigned i = 0; i < rt->up->nservers; i++) {
        if (rt->eligible[i] && !st->in[i])
            st->pass[i] = st->vt + stride(rt, i) / 2;
        st->in[i] = rt->eligible[i];
    }
    st->n = rt->nset;
    for (unsigned k = 0; k < rt->nset; k++)
        st->heap[k] = rt->set[k];
    for (unsigned i = st->n / 2; i-- > 0;)
        sift_down(st, i);
}

static int rr_pick(pt_upstream_rt *rt, void *state, const pt_balance_ctx *ctx)
{
    rr_state *st = state;
    const pt_upstream *up = rt->up;
    unsigned naside = 0;
    int best = -1;
    while (st->n) {
        unsigned s = st->heap[0];
        if (!pt_balance_skipped(ctx, s) && !pt_upstream_full(&up->servers[s])) {
            st->vt = st->pass[s];
            st->pass[s] += stride(rt, s);
            sift_down(st, 0);
            best = (int) s;
            break;
        }
        st->aside[naside++] = s;
        st->heap[0] = st->heap[--st->n];
        sift_down(st, 0);
    }
    while (naside) {
        st->heap[st->n++] = st->aside[--naside];
        sift_up(st, st->n - 1);
    }
    return best;
}

const pt_balancer pt_balance_round_robin = {
    .name = "round_robin",
    .rt_size = sizeof(rr_state),
    .worker_init = rr_init,
    .worker_exit = rr_exit,
    .update = rr_update,
    .pick = rr_pick,
};
