/* Upstream groups in a worker: the balancing policy's state, the pool of idle keep-alive
 * connections, and connections to origins (over a transport, like client connections). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/pool.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "portico/xprt.h"

static pt_upconn      *all_conns;      /* every open connection: pooled or in use */
static pt_upstream_rt *rts;
static unsigned        nrts;

/* ------------------------------------------------------------------ picking */

static void skip_set(uint64_t *skip, unsigned s)
{
    skip[s >> 6] |= 1ull << (s & 63);
}

static bool skip_has(const uint64_t *skip, unsigned s)
{
    return (skip[s >> 6] >> (s & 63)) & 1;
}

/* Every primary was tried by this exchange: a live backup is the last resort (a linear
 * scan, on this failure path only). */
static int pick_backup(const pt_upstream *up, const uint64_t *tried)
{
    for (unsigned i = 0; i < up->nservers; i++) {
        const pt_upstream_server *sv = &up->servers[i];
        uint32_t st = __atomic_load_n(&sv->shared->state, __ATOMIC_ACQUIRE);
        if (sv->backup && !skip_has(tried, i) && (st == PT_SV_UP || st == PT_SV_SLOW_START)
            && pt_upstream_acquire(up, i, false))
            return (int) i;
    }
    return PT_PICK_NONE_LEFT;
}

int pt_upstream_pick(const pt_upstream *up, const pt_request *r, const uint64_t *tried)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL)
        return PT_PICK_NONE_LEFT;
    if (__atomic_load_n(up->state_gen, __ATOMIC_ACQUIRE) != rt->seen_gen
        || pt_loop_cur->now >= rt->refresh_at)
        pt_upstream_refresh(rt);
    if (rt->nset == 0)
        return PT_PICK_ALL_DOWN;
    pt_balance_ctx ctx = { tried, r };
    uint64_t skip[PT_UPSTREAM_SKIP_WORDS];
    for (unsigned n = 0; n <= rt->nset; n++) {
        int s = up->balancer->pick(rt, rt->balance, &ctx);
        if (s < 0)
            break;
        if (pt_upstream_acquire(up, (unsigned) s, false))
            return s;
        /* another worker took its last slot since the policy looked */
        if (ctx.skip != skip) {
            memcpy(skip, tried, sizeof(skip));
            ctx.skip = skip;
        }
        skip_set(skip, (unsigned) s);
    }
    for (unsigned k = 0; k < rt->nset; k++)
        if (!skip_has(tried, rt->set[k]))
            return PT_PICK_ALL_FULL;        /* not tried, so passed over for having no room */
    return rt->backup_set ? PT_PICK_NONE_LEFT : pick_backup(up, tried);
}

/* ------------------------------------------------------------------ worker state */

static void refresh_fire(pt_timer *t)
{
    pt_upstream_refresh(t->data);
}

/* A worker with no requests to pick for still follows the shared state within
 * WATCH_MS: a server drained through the admin API has its idle pooled connections
 * closed everywhere, not only in the workers that pick next. */
#define WATCH_MS 1000
static pt_timer watch_timer;

static void watch_fire(pt_timer *t)
{
    for (unsigned i = 0; i < nrts; i++)
        if (__atomic_load_n(rts[i].up->state_gen, __ATOMIC_ACQUIRE) != rts[i].seen_gen)
            pt_upstream_refresh(&rts[i]);
    pt_loop_timer(pt_loop_cur, &watch_timer, WATCH_MS);
}

int pt_upstream_worker_init(const pt_conf *conf)
{
    nrts = conf->nupstreams;
    rts = calloc(nrts ? nrts : 1, sizeof(*rts));
    if (rts == NULL)
        return PT_ERROR;
    for (unsigned i = 0; i < nrts; i++) {
        const pt_upstream *up = &conf->upstreams[i];
        pt_upstream_rt *rt = &rts[i];
        rt->up = up;
        rt->idle = calloc(up->nservers, sizeof(pt_upconn *));
        rt->set = calloc(up->nservers, sizeof(unsigned));
        rt->eligible = calloc(up->nservers, 1);
        rt->eweight = calloc(up->nservers, sizeof(uint32_t));
        rt->balance = calloc(1, up->balancer->rt_size ? up->balancer->rt_size : 1);
        if (rt->idle == NULL || rt->set == NULL || rt->eligible == NULL || rt->eweight == NULL
            || rt->balance == NULL || up->balancer->worker_init(rt, rt->balance) != PT_OK)
            return PT_ERROR;
        pt_timer_init(&rt->refresh_timer, refresh_fire, rt);
        pt_upstream_refresh(rt);
    }
    if (nrts) {
        pt_timer_init(&watch_timer, watch_fire, NULL);
        pt_loop_timer(pt_loop_cur, &watch_timer, WATCH_MS);
    }
    return pt_upstream_check_start(conf);
}

pt_upstream_rt *pt_upstream_rt_of(const pt_upstream *up)
{
    return up->index < nrts && rts[up->index].up == up ? &rts[up->index] : NULL;
}

/* ------------------------------------------------------------------ connections */

static void pool_unlink(pt_upstream_rt *rt, pt_upconn *uc)
{
    if (uc->prev)
        uc->prev->next = uc->next;
    else
        rt->idle[uc->server->index] = uc->next;
    if (uc->next)
        uc->next->prev = uc->prev;
    rt->nidle--;
    uc->pooled = false;
    uc->next = uc->prev = NULL;
}

static void upconn_event(pt_io *io, uint32_t events)
{
    pt_upconn *uc = io->data;
    pt_xprt_events(&uc->x, events);
    uc->handler(uc, events);
}

static void upconn_timer(pt_timer *t)
{
    pt_upconn *uc = t->data;
    uc->handler(uc, 0);
}

static void upconn_free(pt_defer *d)
{
    free(pt_container_of(d, pt_upconn, free_later));
}

int pt_upconn_alloc_in(pt_upconn *uc)
{
    if (uc->in.start)
        return PT_OK;
    size_t size = uc->up->buffer_size;
    pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
    char *b = rt && rt->nfree ? rt->free_bufs[--rt->nfree] : malloc(size);
    if (b == NULL)
        return PT_ERROR;
    uc->in.start = uc->in.pos = uc->in.last = b;
    uc->in.end = b + size;
    return PT_OK;
}

static void release_in(pt_upconn *uc)
{
    if (uc->in.start == NULL)
        return;
    /* buffers are recycled per group (one size per group) */
    pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
    if (rt && rt->nfree < PT_UPSTREAM_FREE_BUFS)
        rt->free_bufs[rt->nfree++] = uc->in.start;
    else
        free(uc->in.start);
    uc->in.start = uc->in.pos = uc->in.last = uc->in.end = NULL;
}

pt_upconn *pt_upstream_connect(const pt_upstream *up, unsigned server, pt_upconn_fn fn,
                               void *owner)
{
    const pt_upstream_server *sv = &up->servers[server];
    pt_upconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = pt_xprt_tcp_connect(&uc->x, (const struct sockaddr *) &sv->addr, sv->addrlen);
    if (rc == PT_ERROR) {
        int e = errno;
        free(uc);
        errno = e;
        return NULL;
    }
    uc->x.io.fn = upconn_event;
    uc->x.io.data = uc;
    uc->up = up;
    uc->server = sv;
    uc->handler = fn;
    uc->owner = owner;
    uc->free_later.fn = upconn_free;
    pt_timer_init(&uc->timer, upconn_timer, uc);
    if (pt_io_add(pt_loop_cur, &uc->x.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != PT_OK) {
        int e = errno;
        pt_xprt_close(&uc->x);
        free(uc);
        errno = e;
        return NULL;
    }
    uc->all_next = all_conns;
    if (all_conns)
        all_conns->all_prev = uc;
    all_conns = uc;
    return uc;
}

int pt_upconn_connected(pt_upconn *uc, const char **why)
{
    int rc = pt_xprt_connect_result(&uc->x);
    if (rc != PT_OK || uc->up->tls == NULL)
        return rc;
    /* to a TLS origin, connecting includes the handshake (and its connect timeout) */
    if (uc->x.ops != &pt_xprt_tls
        && pt_xprt_tls_connect(&uc->x, uc->up->tls, uc->server->index) != PT_OK) {
        *why = "no memory for a TLS session";
        errno = ENOMEM;
        return PT_ERROR;
    }
    rc = pt_xprt_tls_handshake(&uc->x, why);
    if (rc != PT_AGAIN)
        pt_metrics_upstream_tls(uc->up, uc->server->index, rc == PT_OK,
                                rc == PT_OK && pt_xprt_tls_resumed(&uc->x));
    if (rc == PT_ERROR)
        errno = 0;                      /* *why says it all */
    return rc;
}

void pt_upconn_set_timer(pt_upconn *uc, uint32_t ms)
{
    if (ms == 0)
        pt_timer_del(&pt_loop_cur->timers, &uc->timer);
    else
        pt_loop_timer(pt_loop_cur, &uc->timer, ms);
}

void pt_upconn_close(pt_upconn *uc)
{
    if (uc->x.io.fd < 0)
        return;
    if (uc->pooled) {
        pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
        if (rt)
            pool_unlink(rt, uc);
        uc->pooled = false;
    }
    if (uc->all_prev)
        uc->all_prev->all_next = uc->all_next;
    else
        all_conns = uc->all_next;
    if (uc->all_next)
        uc->all_next->all_prev = uc->all_prev;
    uc->all_prev = uc->all_next = NULL;
    pt_timer_del(&pt_loop_cur->timers, &uc->timer);
    pt_xprt_close(&uc->x);
    release_in(uc);
    pt_defer_add(pt_loop_cur, &uc->free_later);
}

/* Bytes (or a close) waiting on an idle connection: the origin sent more than its last
 * response, or gave up on the connection. */
static bool idle_conn_dirty(pt_upconn *uc)
{
    int n = uc->x.ops->probe(&uc->x);
    if (n == 1)
        pt_log(PT_LOG_INFO, "upstream \"%s\" server %s: bytes after a complete response; "
               "connection not reused", uc->up->name, uc->server->addr_text);
    return n != PT_AGAIN;
}

/* An idle pooled connection: input means the origin closed it or misbehaves. A bare
 * EPOLLOUT only says the send buffer drained (late ACKs of a large request): keep it.
 * Input that is no data (a TLS session ticket or key update, which the transport's probe
 * takes in) keeps it too. */
static void idle_event(pt_upconn *uc, uint32_t events)
{
    if (events != 0 && !(events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        return;
    if (events == 0) {
        pt_log(PT_LOG_DEBUG, "closing idle connection to %s", uc->server->addr_text);
    } else if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) == EPOLLIN
               && !idle_conn_dirty(uc)) {
        uc->x.readable = false;
        return;
    }
    pt_upconn_close(uc);
}

void pt_upconn_release(pt_upconn *uc, bool reuse)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
    if (!reuse || rt == NULL || uc->up->keepalive == 0 || rt->nidle >= uc->up->keepalive
        || uc->x.eof || uc->in.pos != uc->in.last) {
        pt_upconn_close(uc);
        return;
    }
    release_in(uc);
    uc->handler = idle_event;
    uc->owner = NULL;
    uc->pooled = true;
    uc->prev = NULL;
    uc->next = rt->idle[uc->server->index];
    if (uc->next)
        uc->next->prev = uc;
    rt->idle[uc->server->index] = uc;
    rt->nidle++;
    pt_upconn_set_timer(uc, uc->up->idle_timeout_ms);
    /* EPOLLIN may already be pending from a close we have not seen yet: the ET event for
     * it arrives later and idle_event closes the connection then. */
    if (uc->x.readable) {
        if (uc->x.ops->probe(&uc->x) != PT_AGAIN)
            pt_upconn_close(uc);
        else
            uc->x.readable = false;
    }
}

/* The most recently used idle connection that can take a request. The readiness flags
 * tell of bytes that arrived while it was pooled (epoll reported them); a connection
 * whose last response had no body (HEAD, 204, 304: where origins most often send bytes
 * they should not) is also asked directly right before its reuse, and after a HEAD it
 * rests PT_UPCONN_SETTLE_MS first, so that a body sent late to a HEAD is seen before
 * another request goes out on the connection. */
pt_upconn *pt_upstream_pool_get(const pt_upstream *up, unsigned server)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL)
        return NULL;
    for (pt_upconn *uc = rt->idle[server], *next; uc; uc = next) {
        next = uc->next;
        if (uc->settle_until > pt_loop_cur->now && !uc->x.eof && !uc->x.readable)
            continue;
        pool_unlink(rt, uc);
        if (uc->x.eof || uc->x.readable || (uc->check_reuse && idle_conn_dirty(uc))) {
            pt_upconn_close(uc);
            continue;
        }
        uc->check_reuse = false;
        uc->settle_until = 0;
        pt_timer_del(&pt_loop_cur->timers, &uc->timer);
        return uc;
    }
    return NULL;
}

ssize_t pt_upconn_read(pt_upconn *uc, size_t max)
{
    return pt_xprt_read(&uc->x, &uc->in, max);
}

void pt_upstream_pool_close(pt_upstream_rt *rt, unsigned s)
{
    while (rt->idle && rt->idle[s])
        pt_upconn_close(rt->idle[s]);
}

void pt_upstream_worker_exit(void)
{
    pt_upstream_check_stop();
    pt_timer_del(&pt_loop_cur->timers, &watch_timer);
    for (unsigned i = 0; i < nrts; i++)
        for (unsigned s = 0; s < rts[i].up->nservers; s++)
            while (rts[i].idle[s])
                pt_upconn_close(rts[i].idle[s]);
    /* Connections of requests still running (drain timeout, fast stop): the worker exits
     * without aborting them, so close them here; nothing runs their handlers any more. */
    while (all_conns)
        pt_upconn_close(all_conns);
    for (unsigned i = 0; i < nrts; i++) {
        pt_timer_del(&pt_loop_cur->timers, &rts[i].refresh_timer);
        if (rts[i].up->balancer->worker_exit)
            rts[i].up->balancer->worker_exit(&rts[i], rts[i].balance);
        free(rts[i].idle);
        free(rts[i].set);
        free(rts[i].eligible);
        free(rts[i].eweight);
        free(rts[i].balance);
        while (rts[i].nfree)
            free(rts[i].free_bufs[--rts[i].nfree]);
    }
    free(rts);
    rts = NULL;
    nrts = 0;
    pt_pipe_cache_clear();
}
