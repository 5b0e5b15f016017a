/* least_conn and least_time, in O(log n).
 *
 * least_conn picks the server with the fewest requests in flight per unit of weight,
 * counted across all workers (the shared `active`); least_time multiplies that by the
 * server's moving average of the time to the response head (all workers' too). Ties go
 * round robin: each server has a virtual pass that grows by 1/weight when it is picked,
 * and the earlier pass wins.
 *
 * Each worker keeps a tournament tree over its set: every leaf holds a server's score as
 * last seen, every inner node the better of its two children, so the root is the best
 * server. Other workers change the shared counts without telling us, so the tree is kept
 * honest three ways: the root's score is read again from shared memory before it is
 * used (if it changed, the leaf is replayed and the root looked at again); this worker's
 * own starts, ends and responses replay their leaf at once; and every pick refreshes a
 * few more leaves in turn (SWEEP), so a server another worker relieved is seen again
 * within n / SWEEP picks. The root is therefore exact about itself and at most a little
 * late about servers that became better elsewhere. */
#include <math.h>
#include <stdlib.h>

#include "portico/upstream.h"

#define NONE      0xffffffffu
#define SWEEP     4
#define MAX_FIXES 8             /* root re-reads per pick before taking the best seen */
#define PASS_SCALE (1ull << 40)

typedef struct least_state {
    bool      time;             /* least_time */
    unsigned  cap;              /* leaves: a power of two >= servers */
    unsigned  nleaf;            /* leaves in use: the set */
    unsigned *win;              /* [2 cap]: node -> winning leaf (NONE); [cap + k] = leaf k */
    double   *key;              /* per leaf: the score as last read */
    uint8_t  *held;             /* per leaf: out for the current pick (skipped) */
    unsigned *srv;              /* per leaf: its server */
    unsigned *leaf;             /* per server: its leaf, NONE when not in the set */
    uint64_t *pass;             /* per server: round-robin tie break */
    uint64_t  vt;
    double    avg_us;           /* least_time: this worker's recent response times, for a
                                 * server with none measured yet (neither a magnet nor
                                 * shunned) */
    unsigned  sweep;
    unsigned *aside;
} least_state;

static double score(const pt_upstream_rt *rt, const least_state *st, unsigned s)
{
    const pt_upstream_shared *sh = rt->up->servers[s].shared;
    int64_t a = __atomic_load_n(&sh->active, __ATOMIC_RELAXED);
    double load = (double) (a > 0 ? a + 1 : 1) / rt->eweight[s];
    if (!st->time)
        return load;
    uint64_t t = __atomic_load_n(&sh->resp_ewma_us, __ATOMIC_RELAXED);
    return load * (t ? (double) t : st->avg_us + 1);
}

static inline bool better(const least_state *st, unsigned a, unsigned b)
{
    if (b == NONE || st->held[b])
        return a != NONE && !st->held[a];
    if (a == NONE || st->held[a])
        return false;
    if (st->key[a] != st->key[b])
        return st->key[a] < st->key[b];
    int64_t d = (int64_t) (st->pass[st->srv[a]] - st->pass[st->srv[b]]);
    return d < 0 || (d == 0 && a < b);
}

static void replay(least_state *st, unsigned k)
{
    for (unsigned node = (st->cap + k) >> 1; node; node >>= 1) {
        unsigned l = st->win[2 * node], r = st->win[2 * node + 1];
        st->win[node] = better(st, r, l) ? r : l;
    }
}

/* Reads leaf k's score again; true if it changed (and the tree was replayed). */
static bool reread(const pt_upstream_rt *rt, least_state *st, unsigned k)
{
    double v = score(rt, st, st->srv[k]);
    if (v == st->key[k])
        return false;
    st->key[k] = v;
    replay(st, k);
    return true;
}

static int least_init_common(pt_upstream_rt *rt, least_state *st, bool time)
{
    unsigned n = rt->up->nservers, cap = 1;
    while (cap < n)
        cap <<= 1;
    st->time = time;
    st->cap = cap;
    st->win = malloc(2 * cap * sizeof(unsigned));
    st->key = calloc(cap, sizeof(double));
    st->held = calloc(cap, 1);
    st->srv = calloc(cap, sizeof(unsigned));
    st->leaf = malloc(n * sizeof(unsigned));
    st->pass = calloc(n, sizeof(uint64_t));
    st->aside = calloc(n, sizeof(unsigned));
    if (!st->win || !st->key || !st->held || !st->srv || !st->leaf || !st->pass || !st->aside)
        return PT_ERROR;
    for (unsigned i = 0; i < n; i++)
        st->leaf[i] = NONE;
    return PT_OK;
}

static int lc_init(pt_upstream_rt *rt, void *state)
{
    return least_init_common(rt, state, false);
}

static int lt_init(pt_upstream_rt *rt, void *state)
{
    return least_init_common(rt, state, true);
}

static void least_exit(pt_upstream_rt *rt, void *state)
{
    least_state *st = state;
    free(st->win);
    free(st->key);
    free(st->held);
    free(st->srv);
    free(st->leaf);
    free(st->pass);
    free(st->aside);
}

static void least_update(pt_upstream_rt *rt, void *state)
{
    least_state *st = state;
    for (unsigned i = 0; i < rt->up->nservers; i++) {
        uint64_t half = PASS_SCALE / rt->eweight[i] / 2;
        /* a server entering, or one left far behind (passed over while it was loaded),
         * starts half a step from now: ties then go round robin, not to it in a burst */
        if (rt->eligible[i]
            && (st->leaf[i] == NONE || (int64_t) (st->pass[i] - (st->vt - half)) < 0))
            st->pass[i] = st->vt + half;
        st->leaf[i] = NONE;
    }
    st->nleaf = rt->nset;
    for (unsigned k = 0; k < st->cap; k++) {
        st->held[k] = 0;
        if (k < rt->nset) {
            unsigned s = rt->set[k];
            st->srv[k] = s;
            st->leaf[s] = k;
            st->key[k] = score(rt, st, s);
            st->win[st->cap + k] = k;
        } else {
            st->win[st->cap + k] = NONE;
        }
    }
    for (unsigned node = st->cap; --node > 0;) {
        unsigned l = st->win[2 * node], r = st->win[2 * node + 1];
        st->win[node] = better(st, r, l) ? r : l;
    }
    if (st->sweep >= st->nleaf)
        st->sweep = 0;
}

static int least_pick(pt_upstream_rt *rt, void *state, const pt_balance_ctx *ctx)
{
    least_state *st = state;
    const pt_upstream *up = rt->up;
    if (st->nleaf == 0)
        return -1;
    for (unsigned j = 0; j < SWEEP && j < st->nleaf; j++) {
        reread(rt, st, st->sweep);
        if (++st->sweep >= st->nleaf)
            st->sweep = 0;
    }
    unsigned naside = 0, fixes = 0;
    int best = -1;
    for (;;) {
        unsigned k = st->win[1];
        if (k == NONE || st->held[k])
            break;
        unsigned s = st->srv[k];
        if (fixes < MAX_FIXES && reread(rt, st, k)) {
            fixes++;
            continue;
        }
        if (!pt_balance_skipped(ctx, s) && !pt_upstream_full(&up->servers[s])) {
            if ((int64_t) (st->pass[s] - st->vt) > 0)
                st->vt = st->pass[s];       /* virtual time never goes back */
            st->pass[s] += PASS_SCALE / rt->eweight[s];
            replay(st, k);
            best = (int) s;
            break;
        }
        st->held[k] = 1;
        st->aside[naside++] = k;
        replay(st, k);
    }
    while (naside) {
        unsigned k = st->aside[--naside];
        st->held[k] = 0;
        replay(st, k);
    }
    return best;
}

/* This worker started or ended a request on s, or got its response: its score moved. */
static void least_load(pt_upstream_rt *rt, void *state, unsigned s)
{
    least_state *st = state;
    if (st->leaf[s] != NONE)
        reread(rt, st, st->leaf[s]);
}

static void least_report(pt_upstream_rt *rt, void *state, unsigned s,
                         const pt_upstream_result *res)
{
    least_state *st = state;
    if (!st->time)
        return;
    if (res->outcome == PT_UP_OK)
        st->avg_us = st->avg_us ? st->avg_us + ((double) res->us - st->avg_us) / 16 : res->us;
    if (st->leaf[s] != NONE)
        reread(rt, st, st->leaf[s]);
}

const pt_balancer pt_balance_least_conn = {
    .name = "least_conn",
    .rt_size = sizeof(least_state),
    .worker_init = lc_init,
    .worker_exit = least_exit,
    .update = least_update,
    .pick = least_pick,
    .load = least_load,
};

const pt_balancer pt_balance_least_time = {
    .name = "least_time",
    .rt_size = sizeof(least_state),
    .worker_init = lt_init,
    .worker_exit = least_exit,
    .update = least_update,
    .pick = least_pick,
    .load = least_load,
    .report = least_report,
};
