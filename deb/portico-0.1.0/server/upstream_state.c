/* The state of upstream servers shared by every worker: the published state (up, slow
 * start, down, draining) derived from the reasons a server is out, passive health (failures
 * within a window), active health verdicts, requests in flight and response times, and
 * each worker's view of it: the set of servers its policy picks from.
 *
 * Everything lives in the server's slot of the "upstreams" zone and changes only through
 * single atomic operations, so a worker dying anywhere leaves every field valid. The
 * reasons (down_why bits) are the authority; `state` is derived from them by whoever
 * changes one (pt_upstream_publish), with a compare-and-swap so that each transition is
 * made, logged and announced (state_gen) exactly once for the whole instance. Workers
 * compare state_gen with the one their view was built from on every pick: a transition
 * reaches every worker at its next request. */
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "portico/event.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/timer.h"
#include "portico/upstream.h"

#define LOAD(p)        __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)    __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v)      __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define SUB(p, v)      __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)
#define CAS(p, o, n)   __atomic_compare_exchange_n((p), (o), (n), false, __ATOMIC_ACQ_REL, \
                                                   __ATOMIC_ACQUIRE)

#define SLOW_START_MIN_DIV 20   /* a slow start begins at 1/20 of the weight */
#define SLOW_START_STEPS   20   /* and the worker's view follows it in 20 steps */

uint64_t pt_upstream_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

uint64_t pt_upstream_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* The event loop's clock where there is one (a worker), else the system's (the master). */
static uint64_t now_ms(void)
{
    return pt_loop_cur ? pt_loop_cur->now : pt_upstream_now_ms();
}

static uint64_t now_real(void)
{
    if (pt_loop_cur)
        return pt_loop_cur->now_real;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

const char *pt_server_state_name(unsigned state)
{
    static const char *const names[] = { "up", "slow start", "down", "draining" };
    return state < pt_nelems(names) ? names[state] : "?";
}

/* ------------------------------------------------------------------ transitions */

static void publish_slot(pt_upstream_shared *sh, uint64_t *state_gen, const char *why)
{
    uint64_t now = now_ms();
    for (;;) {
        uint32_t old = LOAD(&sh->state), bits = LOAD(&sh->down_why), next;
        if (bits & PT_SV_DOWN_DRAINS)
            next = LOAD(&sh->active) > 0 ? PT_SV_DRAINING : PT_SV_DOWN;
        else if (bits)
            next = PT_SV_DOWN;
        else if (old == PT_SV_DOWN || old == PT_SV_DRAINING)
            next = LOAD(&sh->slow_start_ms) ? PT_SV_SLOW_START : PT_SV_UP;
        else if (old == PT_SV_SLOW_START
                 && now - LOAD(&sh->up_since) >= LOAD(&sh->slow_start_ms))
            next = PT_SV_UP;
        else
            next = old;
        if (next == old)
            return;
        if (next == PT_SV_SLOW_START)
            STORE(&sh->up_since, now);      /* before the state: readers ramp from here */
        if (!CAS(&sh->state, &old, next))
            continue;                       /* someone else moved it: derive again */
        STORE(&sh->state_since, now_real());
        ADD(&sh->transitions, 1);
        if (state_gen)
            ADD(state_gen, 1);
        const char *group = sh->key, *addr = sh->key + strlen(sh->key) + 1;
        pt_log(next == PT_SV_DOWN || next == PT_SV_DRAINING ? PT_LOG_WARN : PT_LOG_NOTICE,
               "upstream \"%s\" server %s: %s -> %s (%s)", group, addr,
               pt_server_state_name(old), pt_server_state_name(next), why);
        return;
    }
}

void pt_upstream_publish(const pt_upstream *up, const pt_upstream_server *sv, const char *why)
{
    publish_slot(sv->shared, up->state_gen, why);
}

static void set_why(pt_upstream_shared *sh, uint32_t bit, bool on)
{
    if (on)
        __atomic_fetch_or(&sh->down_why, bit, __ATOMIC_ACQ_REL);
    else
        __atomic_fetch_and(&sh->down_why, ~bit, __ATOMIC_ACQ_REL);
}

void pt_upstream_state_load(const pt_upstream *up, const pt_upstream_server *sv)
{
    pt_upstream_shared *sh = sv->shared;
    STORE(&sh->weight, sv->weight);
    STORE(&sh->max_conns, sv->max_conns);
    STORE(&sh->slow_start_ms, sv->slow_start_ms);
    STORE(&sh->backup, sv->backup ? 1u : 0u);
    uint32_t bits = LOAD(&sh->down_why);
    const char *why = NULL;
    if (sv->down && !(bits & PT_SV_DOWN_ADMIN))
        why = "down = true in the configuration";
    else if (!sv->down && (bits & PT_SV_DOWN_ADMIN))
        why = "no longer down = true in the configuration";
    else if (bits & PT_SV_DOWN_REMOVED)
        why = "back in the configuration";
    if (bits & (PT_SV_DOWN_API | PT_SV_DOWN_API_DRAIN))
        why = "the configuration again after a change through the admin API";
    set_why(sh, PT_SV_DOWN_ADMIN, sv->down);
    set_why(sh, PT_SV_DOWN_REMOVED, false);
    set_why(sh, PT_SV_DOWN_API | PT_SV_DOWN_API_DRAIN, false);
    if (up->health.type == PT_HEALTH_NONE && (bits & PT_SV_DOWN_CHECK)) {
        /* nothing would ever bring it back */
        set_why(sh, PT_SV_DOWN_CHECK, false);
        STORE(&sh->check_ok_run, 0);
        STORE(&sh->check_fail_run, 0);
        why = "no health check in the configuration any more";
    }
    if (why)
        publish_slot(sh, up->state_gen, why);
}

void pt_upstream_state_removed(pt_upstream_shared *sh, uint64_t *state_gen)
{
    if (LOAD(&sh->down_why) & PT_SV_DOWN_REMOVED)
        return;
    set_why(sh, PT_SV_DOWN_REMOVED, true);
    publish_slot(sh, state_gen, "removed from the configuration");
}

/* ------------------------------------------------------------------ the admin API */

int pt_upstream_admin_set(const pt_upstream *up, const pt_upstream_server *sv, int state,
                          unsigned weight, const char *who)
{
    pt_upstream_shared *sh = sv->shared;
    char why[160];
    if (sh == NULL)
        return PT_ERROR;
    if (weight) {
        uint32_t old = __atomic_exchange_n(&sh->weight, weight, __ATOMIC_ACQ_REL);
        if (old != weight) {
            pt_log(PT_LOG_NOTICE, "upstream \"%s\" server %s: weight %u -> %u (admin API, %s)",
                   up->name, sv->addr_text, old, weight, who);
            ADD(up->state_gen, 1);      /* every worker takes the new weight */
        }
    }
    if (state < 0)
        return PT_OK;
    snprintf(why, sizeof(why), "%s through the admin API, %s",
             state == PT_SV_ADMIN_DRAIN ? "drain" : state == PT_SV_ADMIN_DOWN ? "down" : "up",
             who);
    if (state == PT_SV_ADMIN_DRAIN) {
        set_why(sh, PT_SV_DOWN_API, false);
        set_why(sh, PT_SV_DOWN_API_DRAIN, true);
    } else if (state == PT_SV_ADMIN_DOWN) {
        set_why(sh, PT_SV_DOWN_API_DRAIN, false);
        set_why(sh, PT_SV_DOWN_API, true);
    } else {
        /* back to what health says: an operator's "up" lifts every administrative
         * reason, down = true of the configuration too (until the next reload) */
        set_why(sh, PT_SV_DOWN_API | PT_SV_DOWN_API_DRAIN | PT_SV_DOWN_ADMIN, false);
    }
    uint32_t before = LOAD(&sh->state);
    publish_slot(sh, up->state_gen, why);
    if (LOAD(&sh->state) == before)
        pt_log(PT_LOG_NOTICE, "upstream \"%s\" server %s: stays %s (%s)", up->name,
               sv->addr_text, pt_server_state_name(before), why);
    return PT_OK;
}

/* ------------------------------------------------------------------ passive health */

static bool status_fails(const pt_upstream *up, unsigned status)
{
    return status < 640 && (up->fail_status[status >> 6] >> (status & 63)) & 1;
}

/* A failure: max_fails of them within fail_timeout_ms take the server out for
 * fail_timeout_ms. The window is the first failure's time + fail_timeout_ms; a lone server
 * is never taken out this way (there would be nothing else to send its requests to). */
static void passive_failure(const pt_upstream *up, const pt_upstream_server *sv, const char *what)
{
    pt_upstream_shared *sh = sv->shared;
    if (up->max_fails == 0 || up->nservers == 1)
        return;
    uint64_t now = now_ms();
    uint64_t since = LOAD(&sh->fails_since);
    if (now - since >= up->fail_timeout_ms && CAS(&sh->fails_since, &since, now))
        STORE(&sh->fails, 0);
    uint32_t n = ADD(&sh->fails, 1);
    if (n < up->max_fails)
        return;
    uint32_t bits = LOAD(&sh->down_why);
    if (bits & PT_SV_DOWN_FAILS)
        return;
    STORE(&sh->fails_until, now + up->fail_timeout_ms);
    while (!(bits & PT_SV_DOWN_FAILS)) {
        if (CAS(&sh->down_why, &bits, bits | PT_SV_DOWN_FAILS)) {
            char why[256];
            snprintf(why, sizeof(why), "max_fails %u reached within fail_timeout_ms %u, the "
                     "last failure: %s; out for %u ms", up->max_fails, up->fail_timeout_ms,
                     what ? what : "?", up->fail_timeout_ms);
            publish_slot(sh, up->state_gen, why);
            return;
        }
    }
}

/* fail_timeout_ms has passed: the server is tried again, on probation: one more failure
 * within fail_timeout_ms takes it out again. */
static void passive_return(const pt_upstream *up, const pt_upstream_server *sv, uint64_t now)
{
    pt_upstream_shared *sh = sv->shared;
    uint64_t until = LOAD(&sh->fails_until);
    if (until == 0 || now < until || !CAS(&sh->fails_until, &until, 0))
        return;
    STORE(&sh->fails_since, now);
    STORE(&sh->fails, up->max_fails ? up->max_fails - 1 : 0);
    set_why(sh, PT_SV_DOWN_FAILS, false);
    char why[128];
    snprintf(why, sizeof(why), "fail_timeout_ms %u passed: trying it again", up->fail_timeout_ms);
    publish_slot(sh, up->state_gen, why);
}

void pt_upstream_report(const pt_upstream *up, unsigned server, const pt_upstream_result *res)
{
    const pt_upstream_server *sv = &up->servers[server];
    pt_upstream_shared *sh = sv->shared;
    bool failed = res->outcome != PT_UP_OK || status_fails(up, res->status);
    if (res->outcome == PT_UP_OK)
        pt_metrics_upstream_time(up, server, res->us);
    if (res->outcome == PT_UP_OK || res->outcome == PT_UP_TIMEOUT) {
        /* a moving average with weight 1/8: a lost update between two workers only
         * drops one sample */
        uint64_t old = LOAD(&sh->resp_ewma_us);
        int64_t d = (int64_t) res->us - (int64_t) old;
        STORE(&sh->resp_ewma_us, old ? (uint64_t) ((int64_t) old + d / 8) : res->us + 1);
    }
    if (failed) {
        ADD(&sh->failures, 1);
        STORE(&sh->last_failure_ms, now_real());
        char what[160];
        if (res->outcome == PT_UP_OK)
            snprintf(what, sizeof(what), "status %u", res->status);
        passive_failure(up, sv, res->outcome == PT_UP_OK ? what : res->why);
    }
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt && up->balancer->report)
        up->balancer->report(rt, rt->balance, server, res);
}

/* ------------------------------------------------------------------ active health */

void pt_upstream_check_result(const pt_upstream *up, const pt_upstream_server *sv, bool ok,
                              unsigned status, const char *why)
{
    pt_upstream_shared *sh = sv->shared;
    const pt_health_conf *hc = &up->health;
    ADD(&sh->checks, 1);
    STORE(&sh->check_last, now_real());
    STORE(&sh->check_status, status);
    STORE(&sh->check_pid, (uint32_t) getpid());
    uint32_t bits = LOAD(&sh->down_why);
    char text[320];
    if (ok) {
        STORE(&sh->check_fail_run, 0);
        uint32_t n = ADD(&sh->check_ok_run, 1);
        pt_log(PT_LOG_DEBUG, "upstream \"%s\" server %s: health check passed (%u in a row)",
               up->name, sv->addr_text, n);
        if ((bits & PT_SV_DOWN_CHECK) && n >= hc->rise) {
            set_why(sh, PT_SV_DOWN_CHECK, false);
            snprintf(text, sizeof(text), "health check passed %u times in a row", n);
            publish_slot(sh, up->state_gen, text);
        }
        return;
    }
    ADD(&sh->checks_failed, 1);
    STORE(&sh->check_ok_run, 0);
    uint32_t n = ADD(&sh->check_fail_run, 1);
    pt_log(PT_LOG_INFO, "upstream \"%s\" server %s: health check failed (%u in a row): %s",
           up->name, sv->addr_text, n, why);
    if (!(bits & PT_SV_DOWN_CHECK) && n >= hc->fall) {
        set_why(sh, PT_SV_DOWN_CHECK, true);
        snprintf(text, sizeof(text), "health check failed %u times in a row, the last: %s",
                 n, why);
        publish_slot(sh, up->state_gen, text);
    }
}

/* ------------------------------------------------------------------ the worker's view */

/* When a server that is out may be back, in ms from now (for Retry-After). */
static uint64_t back_in(const pt_upstream *up, const pt_upstream_shared *sh, uint64_t now)
{
    uint32_t bits = LOAD(&sh->down_why);
    if (bits & (PT_SV_DOWN_DRAINS | PT_SV_DOWN_API))
        return UINT64_MAX;
    uint64_t t = 0;
    if (bits & PT_SV_DOWN_FAILS) {
        uint64_t until = LOAD(&sh->fails_until);
        t = until > now ? until - now : 0;
    }
    if (bits & PT_SV_DOWN_CHECK)
        t = pt_max(t, (uint64_t) up->health.rise * up->health.interval_ms);
    return t;
}

void pt_upstream_refresh(pt_upstream_rt *rt)
{
    const pt_upstream *up = rt->up;
    uint64_t now = now_ms();
    uint64_t next = UINT64_MAX, back = UINT64_MAX;
    unsigned nprim = 0;
    rt->seen_gen = LOAD(up->state_gen);
    for (unsigned i = 0; i < up->nservers; i++) {
        const pt_upstream_server *sv = &up->servers[i];
        pt_upstream_shared *sh = sv->shared;
        uint32_t bits = LOAD(&sh->down_why);
        if (bits & PT_SV_DOWN_FAILS) {
            passive_return(up, sv, now);
            uint64_t until = LOAD(&sh->fails_until);
            if (until)
                next = pt_min(next, until);
        }
        uint32_t st = LOAD(&sh->state);
        /* the shared weight: the configuration's, or what the admin API set */
        uint64_t w = (uint64_t) pt_max(LOAD(&sh->weight), 1) * 256;
        if (st == PT_SV_SLOW_START) {
            uint64_t ss = LOAD(&sh->slow_start_ms), el = now - LOAD(&sh->up_since);
            if (el >= ss) {
                publish_slot(sh, up->state_gen, "slow start over");
                st = LOAD(&sh->state);
            } else {
                w = pt_max(w / SLOW_START_MIN_DIV, w * el / ss);
                next = pt_min(next, now + pt_max(ss / SLOW_START_STEPS, 1));
            }
        }
        rt->eweight[i] = (uint32_t) pt_max(w, 1);
        bool live = st == PT_SV_UP || st == PT_SV_SLOW_START;
        rt->eligible[i] = live;
        if (!live)
            pt_upstream_pool_close(rt, i);      /* a drained server's idle connections */
        if (live && !sv->backup)
            nprim++;
        else if (!live)
            back = pt_min(back, back_in(up, sh, now));
    }
    /* the live primaries, or the live backups when no primary is live */
    rt->backup_set = nprim == 0;
    rt->nset = 0;
    for (unsigned i = 0; i < up->nservers; i++) {
        if (rt->eligible[i] && up->servers[i].backup == rt->backup_set)
            rt->set[rt->nset++] = i;
        else
            rt->eligible[i] = 0;
    }
    /* the timed changes happen on time, with or without traffic: the shared state (and
     * the log) say when a server is tried again, not the next request */
    rt->refresh_at = next;
    if (next == UINT64_MAX)
        pt_timer_del(&pt_loop_cur->timers, &rt->refresh_timer);
    else
        pt_loop_timer(pt_loop_cur, &rt->refresh_timer, next > now ? next - now : 0);
    rt->retry_after = back == UINT64_MAX ? 10 : (unsigned) pt_max((back + 999) / 1000, 1);
    up->balancer->update(rt, rt->balance);
}

/* ------------------------------------------------------------------ load */

bool pt_upstream_acquire(const pt_upstream *up, unsigned s, bool force)
{
    const pt_upstream_server *sv = &up->servers[s];
    pt_upstream_shared *sh = sv->shared;
    int64_t n = ADD(&sh->active, 1);
    if (!force && sv->max_conns && n > (int64_t) sv->max_conns) {
        SUB(&sh->active, 1);
        return false;
    }
    __atomic_add_fetch(&sh->requests, 1, __ATOMIC_RELAXED);
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt && up->balancer->load)
        up->balancer->load(rt, rt->balance, s);
    return true;
}

void pt_upstream_release(const pt_upstream *up, unsigned s)
{
    pt_upstream_shared *sh = up->servers[s].shared;
    int64_t n = SUB(&sh->active, 1);
    if (n == 0 && (LOAD(&sh->down_why) & PT_SV_DOWN_DRAINS))
        publish_slot(sh, up->state_gen, "its last request in flight ended");
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL)
        return;
    if (up->balancer->load)
        up->balancer->load(rt, rt->balance, s);
    pt_upstream_waiter *w = rt->waiters;
    if (w) {
        pt_upstream_wait_cancel(up, w);
        w->fn(w);
    }
}

void pt_upstream_wait(const pt_upstream *up, pt_upstream_waiter *w)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL || w->queued)
        return;
    w->queued = true;
    w->next = NULL;
    w->prev = rt->waiters_tail;
    if (rt->waiters_tail)
        rt->waiters_tail->next = w;
    else
        rt->waiters = w;
    rt->waiters_tail = w;
}

void pt_upstream_wait_cancel(const pt_upstream *up, pt_upstream_waiter *w)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL || !w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        rt->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        rt->waiters_tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
}
