/* The request engine: whatever session carried a request, this checks its head, routes
 * it, runs the phase chain and the content handler, and finishes it (answered, refused
 * or aborted) through the session's ops. It knows no protocol. */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/str.h"
#include "http_core.h"

/* Phase handlers, flattened per phase in module-list order at worker start. */
static pt_phase_fn phase_fns[PT_PHASE_MAX][64];
static unsigned    phase_nfns[PT_PHASE_MAX];
static void      (*log_fns[64])(pt_request *r);
static unsigned    nlog_fns;

void pt_http_init_worker(void)
{
    for (unsigned i = 0; i < pt_nmodules; i++) {
        pt_module *m = pt_modules[i];
        bool used = m->phase_used == NULL || m->phase_used(pt_wconf);
        for (unsigned p = 0; p < PT_PHASE_MAX; p++)
            if (used && m->phase[p] && phase_nfns[p] < pt_nelems(phase_fns[p]))
                phase_fns[p][phase_nfns[p]++] = m->phase[p];
        if (m->log && nlog_fns < pt_nelems(log_fns))
            log_fns[nlog_fns++] = m->log;
    }
    pt_http_filters_init();
}

pt_request *pt_http_request_new(pt_conn *c, pt_pool *pool, const pt_session_ops *s,
                                size_t stream_size, size_t stream_zero)
{
    if (pool == NULL)
        return NULL;
    size_t ctx_size = pt_nmodules * sizeof(void *);
    pt_request *r = pt_palloc(pool, sizeof(*r) + ctx_size + stream_size);
    if (r == NULL)
        return NULL;
    /* the session's state past stream_zero is set up by the session itself */
    memset(r, 0, sizeof(*r) + ctx_size + stream_zero);
    r->conn = c;
    r->sess = s;
    r->pool = pool;
    r->ctx = (void **) (r + 1);
    r->stream = stream_size ? (char *) r->ctx + ctx_size : NULL;
    r->start_ms = pt_loop_cur->now_real;
    r->start_mono = pt_loop_cur->now;
    r->body_max = pt_wconf->limits.max_body_size;
    r->upstream_ms = -1;
    r->resp_length = -1;
    r->head.content_length = -1;
    return r;
}

static void lower_host(pt_request *r)
{
    /* the host without its port (IPv6 keeps its brackets) */
    pt_str a = r->head.authority;
    size_t n = a.len;
    if (n == 0) {
        r->host = PT_STR_NULL;
        return;
    }
    if (a.data[0] == '[') {
        const char *rb = memchr(a.data, ']', n);
        n = rb ? (size_t) (rb - a.data) + 1 : n;
    } else {
        const char *colon = memchr(a.data, ':', n);
        if (colon)
            n = (size_t) (colon - a.data);
    }
    if (n == 0) {
        r->host = PT_STR_NULL;
        return;
    }
    char *d = pt_palloc(r->pool, n);
    if (d == NULL) {
        r->host = PT_STR_NULL;
        return;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = (char) pt_tolower(a.data[i]);
    if (n > 1 && d[n - 1] == '.')
        n--;                                    /* "example.com." is example.com */
    r->host = (pt_str) { n, d };
}

void pt_http_process(pt_request *r)
{
    PT_ASSERT(r->sess != NULL && !r->header_sent && !r->finalized);
    if (pt_stats_mine && !r->busy) {
        r->busy = true;             /* the connection is not idle until it is logged */
        pt_stats_mine->busy++;
    }
    lower_host(r);
    if (r->head.path.len == 1 && r->head.path.data[0] == '*') {
        r->path = PT_STR("*");
    } else {
        /* the one routing form of the path: routes and access rules match on r->path */
        const char *why = NULL;
        char *np = pt_palloc(r->pool, r->head.path.len + 1);
        size_t nlen = 0;
        if (np == NULL) {
            pt_log(PT_LOG_ALERT, "out of memory for a request path");
            r->keepalive = false;
            pt_http_refuse(r, 500, "out of memory");
            return;
        }
        if (pt_h1_normalize_path(r->head.path.data, r->head.path.len, np, &nlen, &why)
            != PT_OK) {
            r->keepalive = false;
            pt_http_refuse(r, 400, why);
            return;
        }
        r->path = (pt_str) { nlen, np };
    }
    if (pt_http_request_id(r) != PT_OK) {
        r->keepalive = false;
        pt_http_refuse(r, 500, "out of memory");
        return;
    }
    /* the first phase runs before routing, with the global filters' scope */
    r->route = pt_wconf->filters_global;
    r->phase = 0;
    r->phase_index = 0;
    pt_http_run_phases(r);
}

static void route_request(pt_request *r)
{
    /* a module's own listener (admin) answers everything itself: no route applies */
    const pt_listener_conf *l = r->conn->listener->conf;
    r->route = l->handler ? NULL
               : pt_route_find(pt_wconf, r->host, r->path, r->head.method,
                               r->head.method_name, l->index);
}

/* No route: 405 with the methods allowed by the routes that match all but the method,
 * else 404. */
static void no_route(pt_request *r)
{
    char allow[256];
    size_t n = pt_route_allow(pt_wconf, r->host, r->path, r->conn->listener->conf->index,
                              allow, sizeof(allow));
    if (n == 0) {
        r->error_reason = "no route matches";
        pt_http_finalize(r, 404);
        return;
    }
    char *v = pt_pstrndup(r->pool, allow, n);
    if (v == NULL || pt_http_error_header(r, PT_STR("Allow"), (pt_str) { n, v }) != PT_OK) {
        pt_http_finalize(r, 500);
        return;
    }
    const char *why = "method not allowed";
    char *w = pt_palloc(r->pool, n + 64);
    if (w) {
        snprintf(w, n + 64, "method not allowed: the route allows %s", v);
        why = w;
    }
    pt_counter_add(pt_wconf->route_table.refused_methods, 1);
    pt_http_finalize(r, pt_http_deny(r, 405, why));
}

void pt_http_run_phases(pt_request *r)
{
    while (r->phase < PT_PHASE_MAX) {
        unsigned p = r->phase;
        while (r->phase_index < phase_nfns[p]) {
            int rc = phase_fns[p][r->phase_index](r);
            if (rc == PT_AGAIN)
                return;                 /* the module resumes us */
            if (rc == PT_DONE)
                return;                 /* the module answered */
            if (rc >= 100 || rc == PT_ERROR) {
                pt_http_finalize(r, rc == PT_ERROR ? 500 : rc);
                return;
            }
            r->phase_index++;
        }
        r->phase++;
        r->phase_index = 0;
        if (p == PT_PHASE_REQUEST)
            route_request(r);
    }
    /* checked once the route is known: its max_body_size (modules/restrict.c) may be
     * above or below limits.max_body_size; still before anything reads the body */
    if (r->body_max && r->head.content_length > 0
        && (uint64_t) r->head.content_length > r->body_max) {
        r->keepalive = false;
        pt_http_refuse(r, 413, "Content-Length exceeds max_body_size");
        return;
    }
    const pt_module *content = r->route ? r->route->content : r->conn->listener->conf->handler;
    if (content == NULL) {
        no_route(r);
        return;
    }
    int rc = content->content(r);
    if (rc >= 100)
        pt_http_finalize(r, rc);
    else if (rc == PT_ERROR)
        pt_http_finalize(r, r->header_sent ? PT_ERROR : 500);
}

int pt_http_deny(pt_request *r, unsigned status, const char *why)
{
    const char *copy = why ? pt_pstrndup(r->pool, why, strlen(why)) : NULL;
    r->error_reason = copy ? copy : "refused";
    if (pt_stats_mine)
        pt_stats_mine->refused++;
    pt_log(PT_LOG_INFO, "refused request from %s: %s (%s)", r->conn->peer_ip,
           pt_http_status_line(status), r->error_reason);
    return (int) status;
}

int pt_http_error_header(pt_request *r, pt_str name, pt_str value)
{
    if (r->err_nheaders % 4 == 0) {
        pt_header *h = pt_palloc(r->pool, (r->err_nheaders + 4) * sizeof(pt_header));
        if (h == NULL)
            return PT_ERROR;
        if (r->err_nheaders)
            memcpy(h, r->err_headers, r->err_nheaders * sizeof(pt_header));
        r->err_headers = h;
    }
    r->err_headers[r->err_nheaders++] = (pt_header) { name, value };
    return PT_OK;
}

void pt_http_refuse(pt_request *r, unsigned status, const char *why)
{
    r->error_reason = why ? why : "invalid request";
    r->keepalive = false;
    if (pt_stats_mine)
        pt_stats_mine->refused++;
    pt_log(PT_LOG_INFO, "refused request from %s: %s (%s)", r->conn->peer_ip,
           pt_http_status_line(status), r->error_reason);
    if (r->on_abort) {
        void (*fn)(pt_request *) = r->on_abort;
        r->on_abort = NULL;
        fn(r);
    }
    r->on_write = NULL;
    r->on_body = NULL;
    if (r->header_sent) {
        pt_http_abort(r, why);
        return;
    }
    /* the client may still be sending: whatever it sends is dropped by the session */
    r->body_state = r->body_state == PT_RB_NONE ? PT_RB_NONE : PT_RB_ERROR;
    r->finalized = false;
    pt_http_send_error(r, status);
}

void pt_http_finalize(pt_request *r, int rc)
{
    if (r->finalized)
        return;
    if (rc >= 100) {
        if (!r->header_sent) {
            pt_http_send_error(r, (unsigned) rc);   /* finalizes again with PT_OK */
            return;
        }
        rc = PT_ERROR;
    }
    PT_ASSERT(rc == PT_OK || rc == PT_ERROR);
    r->finalized = true;
    r->on_write = NULL;
    r->on_body = NULL;
    r->on_abort = NULL;
    if (rc == PT_ERROR) {
        pt_http_abort(r, r->error_reason ? r->error_reason : "response failed");
        return;
    }
    r->sess->finish(r);
}

/* The client is gone or the response cannot be completed: log it and close. */
void pt_http_abort(pt_request *r, const char *why)
{
    if (r->aborted)
        return;
    r->aborted = true;
    r->finalized = true;
    r->keepalive = false;
    if (!r->error_reason)
        r->error_reason = why;
    if (r->on_abort) {
        void (*fn)(pt_request *) = r->on_abort;
        r->on_abort = NULL;
        fn(r);
    }
    r->on_write = NULL;
    r->on_body = NULL;
    if (!r->header_sent && r->status == 0)
        r->status = 499;                /* nginx's "client closed request" */
    pt_log(PT_LOG_INFO, "request from %s aborted: %s", r->conn->peer_ip, why);
    r->sess->abort(r);
}

void pt_http_request_log(pt_request *r)
{
    for (unsigned i = 0; i < nlog_fns; i++)
        log_fns[i](r);
    if (pt_stats_mine) {
        unsigned cls = r->status / 100;
        pt_stats_mine->status[cls <= 5 ? cls : 0]++;
        if (r->busy && pt_stats_mine->busy)
            pt_stats_mine->busy--;
        r->busy = false;
    }
    pt_metrics_request(r);
}
