/* The request engine: reading a head, routing, the phase chain, finishing a request,
 * keep-alive and pipelining, refusals and timeouts.
 *
 * Connection states (pt_conn_state):
 *   IDLE   -- keep-alive, no request bytes; buffers released; keepalive timer
 *   HEAD   -- request bytes arriving; header timer (from the first byte)
 *   ACTIVE -- a request runs: the content handler drives it through pt_http_* calls
 *   LINGER -- response sent, write side shut, dropping input until EOF or timeout
 * A finished request is wound up from a deferred step, never from inside a handler, so
 * no handler stack frame outlives the request it points to. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/str.h"
#include "http_core.h"

static pt_h1_limits h1_limits;

/* Phase handlers, flattened per phase in module-list order at worker start. */
static pt_phase_fn phase_fns[PT_PHASE_MAX][64];
static unsigned    phase_nfns[PT_PHASE_MAX];
static void      (*log_fns[64])(pt_request *r);
static unsigned    nlog_fns;

static void conn_step(pt_defer *d);

void pt_http_init_worker(void)
{
    const pt_limits *lim = &pt_wconf->limits;
    h1_limits.max_head = lim->max_header_size;
    h1_limits.max_target = lim->max_target_size;
    h1_limits.max_headers = lim->max_headers;
    for (unsigned i = 0; i < pt_nmodules; i++) {
        pt_module *m = pt_modules[i];
        for (unsigned p = 0; p < PT_PHASE_MAX; p++)
            if (m->phase[p] && phase_nfns[p] < pt_nelems(phase_fns[p]))
                phase_fns[p][phase_nfns[p]++] = m->phase[p];
        if (m->log && nlog_fns < pt_nelems(log_fns))
            log_fns[nlog_fns++] = m->log;
    }
    pt_http_filters_init();
}

static pt_request *request_new(pt_conn *c)
{
    pt_pool *pool = pt_conn_pool(c);
    if (pool == NULL)
        return NULL;
    pt_request *r = pt_pcalloc(pool, sizeof(*r) + pt_nmodules * sizeof(void *));
    pt_header *hs = pt_palloc(pool, h1_limits.max_headers * sizeof(pt_header));
    if (r == NULL || hs == NULL)
        return NULL;
    r->conn = c;
    r->pool = pool;
    r->ctx = (void **) (r + 1);
    r->head.headers = hs;
    r->head.max_headers = h1_limits.max_headers;
    r->start_ms = pt_loop_cur->now_real;
    r->start_mono = pt_loop_cur->now;
    r->upstream_ms = -1;
    r->resp_length = -1;
    r->keepalive = false;
    pt_h1_parser_init(&c->parser, PT_H1_REQUEST, &h1_limits);
    c->req = r;
    c->step.fn = conn_step;
    return r;
}

/* Starts a request with the bytes already buffered (pipelining) or the next ones. */
static void begin_head(pt_conn *c)
{
    c->state = PT_CONN_HEAD;
    if (c->in.start && c->in.pos != c->in.start) {
        size_t n = pt_buf_len(&c->in);
        memmove(c->in.start, c->in.pos, n);   /* a head always starts at the buffer start */
        c->in.pos = c->in.start;
        c->in.last = c->in.start + n;
    }
    pt_conn_set_timer(c, pt_wconf->limits.client_header_timeout_ms);
}

static void process_request(pt_request *r);

void pt_http_read_head(pt_conn *c)
{
    for (;;) {
        if (c->in.start == NULL && pt_conn_alloc_in(c) != PT_OK) {
            pt_log(PT_LOG_ALERT, "out of memory for a connection buffer");
            pt_conn_close(c);
            return;
        }
        if (c->req == NULL && c->in.pos < c->in.last) {
            if (c->state == PT_CONN_IDLE)
                begin_head(c);
            if (request_new(c) == NULL) {
                pt_log(PT_LOG_ALERT, "out of memory for a request");
                pt_conn_close(c);
                return;
            }
        }
        pt_request *r = c->req;
        if (r) {
            int rc = pt_h1_parse_head(&c->parser, c->in.pos, pt_buf_len(&c->in), &r->head);
            if (rc == PT_OK) {
                c->in.pos += r->head.len;
                c->body_base = c->in.pos;
                process_request(r);
                return;
            }
            if (rc == PT_ERROR) {
                pt_http_refuse(c, r, c->parser.status, c->parser.error);
                return;
            }
        }
        if (!c->readable)
            return;
        if (pt_buf_free(&c->in) == 0) {
            /* a head that does not fit the standard buffer, allowed by max_header_size */
            size_t want = (size_t) pt_wconf->limits.max_header_size + PT_BODY_MIN_ROOM;
            if (pt_buf_size(&c->in) >= want || pt_conn_grow_in(c, want) != PT_OK) {
                pt_http_refuse(c, r, 431, "request head does not fit the buffer");
                return;
            }
        }
        ssize_t n = pt_conn_read(c);
        if (n > 0)
            continue;
        if (n == -2)
            return;
        /* EOF or error */
        if (r && pt_buf_len(&c->in) > 0)
            pt_log(PT_LOG_INFO, "client %s closed the connection while sending a request head",
                   c->peer_ip);
        pt_conn_close(c);
        return;
    }
}

static void lower_host(pt_request *r)
{
    pt_str h = r->info.host;
    if (h.len == 0) {
        r->host = h;
        return;
    }
    char *d = pt_palloc(r->pool, h.len);
    size_t n = h.len;
    if (d == NULL) {
        r->host = PT_STR_NULL;
        return;
    }
    for (size_t i = 0; i < h.len; i++)
        d[i] = (char) pt_tolower(h.data[i]);
    if (n > 1 && d[n - 1] == '.')
        n--;                                    /* "example.com." is example.com */
    r->host = (pt_str) { n, d };
}

/* Fields with '_' in their name go (or the request is refused) before anything reads the
 * head: framing analysis, routing, the modules and the proxy's copy all see one list. */
static int underscore_fields(pt_request *r)
{
    pt_conn *c = r->conn;
    pt_str   names[8];
    char     list[600];
    size_t   len = 0;
    int      n, w;

    n = pt_h1_underscore_fields(&r->head, (unsigned) pt_wconf->underscores_in_headers,
                                names, pt_nelems(names));
    if (n < 0) {
        /* names are tokens: nothing in them needs escaping in a log line */
        int nl = (int) pt_min(names[0].len, 64);
        char *why = pt_palloc(r->pool, (size_t) nl + 48);
        if (why)
            snprintf(why, (size_t) nl + 48, "header field name with '_': %.*s%s", nl,
                     names[0].data, names[0].len > 64 ? "..." : "");
        pt_http_refuse(c, r, 400, why ? why : "header field name with '_'");
        return PT_ERROR;
    }
    if (n == 0 || !pt_log_enabled(PT_LOG_INFO))
        return PT_OK;
    for (int i = 0; i < n && i < (int) pt_nelems(names); i++) {
        w = snprintf(list + len, sizeof(list) - len, "%s%.*s", i ? ", " : "",
                     (int) pt_min(names[i].len, 64), names[i].data);
        if (w < 0 || (size_t) w >= sizeof(list) - len)
            break;
        len += (size_t) w;
    }
    pt_log(PT_LOG_INFO,
           "dropped %d request header field%s with '_' in the name from %s: %s%s%s", n,
           n == 1 ? "" : "s", c->peer_ip, list, n > (int) pt_nelems(names) ? ", ..." : "",
           pt_wconf->underscores_in_headers == PT_H1_US_PASS
               ? " (read with '-', a field portico manages)" : "");
    return PT_OK;
}

static void process_request(pt_request *r)
{
    pt_conn *c = r->conn;
    const pt_limits *lim = &pt_wconf->limits;
    unsigned status = 400;
    const char *why = NULL;

    c->state = PT_CONN_ACTIVE;
    pt_conn_set_timer(c, 0);
    if (pt_stats_mine)
        pt_stats_mine->requests++;

    if (r->head.underscore && underscore_fields(r) != PT_OK)
        return;
    if (pt_h1_analyze_request(&r->head, &r->info, &status, &why) != PT_OK) {
        pt_http_refuse(c, r, status, why);
        return;
    }
    lower_host(r);

    if (r->info.asterisk_form) {
        r->path = PT_STR("*");
    } else {
        /* the one routing form of the path: routes and access rules match on r->path */
        char *np = pt_palloc(r->pool, r->info.path.len + 1);
        size_t nlen = 0;
        if (np == NULL) {
            pt_log(PT_LOG_ALERT, "out of memory for a request path");
            pt_http_refuse(c, r, 500, "out of memory");
            return;
        }
        if (pt_h1_normalize_path(r->info.path.data, r->info.path.len, np, &nlen, &why)
            != PT_OK) {
            pt_http_refuse(c, r, 400, why);
            return;
        }
        r->path = (pt_str) { nlen, np };
    }

    if (r->info.chunked) {
        r->body_state = PT_RB_PENDING;
        pt_h1_chunked_init(&r->chunked);
    } else if (r->info.content_length > 0) {
        r->body_state = PT_RB_PENDING;
        r->body_remaining = (uint64_t) r->info.content_length;
        if (lim->max_body_size && (uint64_t) r->info.content_length > lim->max_body_size) {
            pt_http_refuse(c, r, 413, "Content-Length exceeds max_body_size");
            return;
        }
    }
    r->keepalive = r->info.keepalive && lim->keepalive_timeout_ms > 0 && !c->draining
                   && !pt_worker_draining();
    r->no_body = r->info.method == PT_M_HEAD;

    r->route = pt_route_find(pt_wconf, r->host, r->path, r->info.method, r->head.method,
                             c->listener->conf->index);
    r->phase = 0;
    r->phase_index = 0;
    pt_http_run_phases(r);
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
    }
    if (r->route == NULL || r->route->content == NULL) {
        r->error_reason = "no route matches";
        pt_http_finalize(r, 404);
        return;
    }
    int rc = r->route->content->content(r);
    if (rc >= 100)
        pt_http_finalize(r, rc);
    else if (rc == PT_ERROR)
        pt_http_finalize(r, r->header_sent ? PT_ERROR : 500);
}

/* A request the core will not process: answer, log why, close. */
void pt_http_refuse(pt_conn *c, pt_request *r, unsigned status, const char *why)
{
    if (r == NULL)
        r = c->req ? c->req : request_new(c);
    if (r == NULL) {
        pt_conn_close(c);
        return;
    }
    c->state = PT_CONN_ACTIVE;
    pt_conn_set_timer(c, 0);
    r->error_reason = why ? why : "invalid request";
    r->keepalive = false;
    if (pt_stats_mine)
        pt_stats_mine->refused++;
    pt_log(PT_LOG_INFO, "refused request from %s: %s (%s)", c->peer_ip,
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
    /* the client may still be sending: whatever it sends is dropped by the linger */
    r->body_state = r->body_state == PT_RB_NONE ? PT_RB_NONE : PT_RB_ERROR;
    r->finalized = false;
    pt_http_send_error(r, status);
}

void pt_http_finalize(pt_request *r, int rc)
{
    pt_conn *c = r->conn;
    if (r->finalized)
        return;
    if (rc >= 100) {
        if (!r->header_sent) {
            pt_http_send_error(r, (unsigned) rc);   /* finalizes again with PT_OK */
            return;
        }
        rc = PT_ERROR;
    }
    r->finalized = true;
    r->on_write = NULL;
    r->on_body = NULL;
    r->on_abort = NULL;
    if (rc == PT_ERROR) {
        pt_http_abort(r, r->error_reason ? r->error_reason : "response failed");
        return;
    }
    int f = pt_conn_flush(c);
    if (f == PT_ERROR) {
        pt_http_abort(r, "client connection failed");
        return;
    }
    if (f == PT_AGAIN) {
        pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
        return;                         /* conn_event finishes it once drained */
    }
    pt_defer_add(pt_loop_cur, &c->step);
}

/* The client is gone or the response cannot be completed: log it and close. */
void pt_http_abort(pt_request *r, const char *why)
{
    pt_conn *c = r->conn;
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
    pt_log(PT_LOG_INFO, "request from %s aborted: %s", c->peer_ip, why);
    pt_defer_add(pt_loop_cur, &c->step);
}

static void log_request(pt_request *r)
{
    for (unsigned i = 0; i < nlog_fns; i++)
        log_fns[i](r);
    if (pt_stats_mine) {
        unsigned cls = r->status / 100;
        pt_stats_mine->status[cls <= 5 ? cls : 0]++;
    }
}

/* Winds up the finished request (outside any handler) and decides the connection's fate. */
static void conn_step(pt_defer *d)
{
    pt_conn *c = pt_container_of(d, pt_conn, step);
    pt_request *r = c->req;
    if (c->state == PT_CONN_CLOSED || r == NULL)
        return;

    if (r->aborted) {
        log_request(r);
        pt_conn_close(c);
        return;
    }
    if (c->out.pending)
        return;                         /* still writing: conn_event comes back here */

    bool ka = r->keepalive && !c->draining && !pt_worker_draining() && !c->peer_closed;
    if (ka && pt_http_body_pending(r)) {
        /* the handler did not read the body: drop it to reach the next request, unless
         * the client is waiting for a 100 that never came or the body is too big */
        if ((r->info.expect_continue && !r->continue_sent)
            || (!r->info.chunked && r->body_remaining > PT_DISCARD_MAX)
            || r->body_state == PT_RB_ERROR) {
            ka = false;
        } else {
            r->body_discard = true;
            int rc = pt_http_discard_body(r);
            if (rc == PT_AGAIN) {
                pt_conn_set_timer(c, pt_wconf->limits.client_body_timeout_ms);
                return;                 /* conn_event resumes the discard */
            }
            if (rc != PT_OK)
                ka = false;
        }
    }

    log_request(r);
    bool unread = pt_http_body_pending(r) || c->in.pos < c->in.last || r->status >= 400;
    c->req = NULL;
    c->requests++;
    pt_pool_reset(c->pool);

    if (!ka) {
        if (unread)
            pt_conn_linger(c);
        else
            pt_conn_close(c);
        return;
    }
    if (c->in.pos < c->in.last) {
        begin_head(c);                  /* pipelined: the next head is already here */
        pt_http_read_head(c);
        return;
    }
    c->state = PT_CONN_IDLE;
    pt_conn_release_idle(c);
    pt_conn_set_timer(c, pt_wconf->limits.keepalive_timeout_ms);
    if (c->readable)
        pt_http_read_head(c);
}

static void on_timeout(pt_conn *c)
{
    pt_request *r = c->req;
    switch (c->state) {
    case PT_CONN_IDLE:
    case PT_CONN_LINGER:
        pt_conn_close(c);
        return;
    case PT_CONN_HEAD:
        if (r == NULL || pt_buf_len(&c->in) == 0) {
            pt_conn_close(c);           /* nothing was sent: no one to answer */
            return;
        }
        pt_http_refuse(c, r, 408, "client sent the request head too slowly");
        return;
    case PT_CONN_ACTIVE:
        if (r == NULL) {
            pt_conn_close(c);
            return;
        }
        if (c->out.pending || r->wait_writable) {
            pt_http_abort(r, "client took no response bytes within send_timeout_ms");
            return;
        }
        if (r->body_state == PT_RB_READING || r->body_state == PT_RB_PENDING) {
            if (r->body_discard) {
                r->keepalive = false;
                r->body_discard = false;
                r->body_state = PT_RB_ERROR;
                pt_defer_add(pt_loop_cur, &c->step);
                return;
            }
            pt_http_refuse(c, r, 408, "client sent the request body too slowly");
            return;
        }
        return;
    case PT_CONN_CLOSED:
        return;
    }
}

static void linger_read(pt_conn *c)
{
    char buf[4096];
    while (c->readable) {
        ssize_t n = recv(c->io.fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if ((size_t) n < sizeof(buf))
                c->readable = false;
            if ((uint64_t) n >= c->linger_until) {
                pt_conn_close(c);
                return;
            }
            c->linger_until -= (uint64_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->readable = false;
            return;
        }
        pt_conn_close(c);               /* EOF or error: the client is done */
        return;
    }
}

void pt_http_conn_event(pt_conn *c, uint32_t events)
{
    if (events == 0) {
        on_timeout(c);
        return;
    }
    if (events & (EPOLLERR | EPOLLHUP)) {
        c->readable = c->writable = true;   /* let the next I/O call see the error */
        c->peer_closed = true;
    }
    if (events & EPOLLIN)
        c->readable = true;
    if (events & EPOLLOUT)
        c->writable = true;
    if (events & EPOLLRDHUP)
        c->readable = true;

    switch (c->state) {
    case PT_CONN_IDLE:
    case PT_CONN_HEAD:
        if (c->readable)
            pt_http_read_head(c);
        return;
    case PT_CONN_LINGER:
        linger_read(c);
        return;
    case PT_CONN_CLOSED:
        return;
    case PT_CONN_ACTIVE:
        break;
    }

    pt_request *r = c->req;
    if (r == NULL)
        return;
    /* Queued output, or a spliced body waiting for room (nothing queued: the flush is a
     * no-op), can go on once the socket takes more. */
    if ((c->out.pending || r->wait_writable) && c->writable) {
        r->wait_writable = false;
        int f = pt_conn_flush(c);
        if (f == PT_ERROR) {
            pt_http_abort(r, "client connection failed while sending the response");
            return;
        }
        if (f == PT_OK) {
            if (r->finalized) {
                pt_conn_set_timer(c, 0);
                pt_defer_add(pt_loop_cur, &c->step);
                return;
            }
            pt_conn_set_timer(c, 0);
            if (r->shut_wr) {
                r->shut_wr = false;
                shutdown(c->io.fd, SHUT_WR);
            }
            if (r->on_write)
                r->on_write(r);
            if (c->state != PT_CONN_ACTIVE || c->req != r)
                return;
        } else {
            pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
        }
    }
    if (c->readable) {
        if (r->body_discard) {
            int rc = pt_http_discard_body(r);
            if (rc != PT_AGAIN) {
                if (rc != PT_OK)
                    r->keepalive = false;
                r->body_discard = false;
                pt_conn_set_timer(c, 0);
                pt_defer_add(pt_loop_cur, &c->step);
            }
            return;
        }
        if (r->on_body && (r->body_state == PT_RB_READING || r->body_state == PT_RB_PENDING
                           || r->body_state == PT_RB_TUNNEL)) {
            r->on_body(r);
            return;
        }
    }
    /* A client that hangs up once its request is complete, before the response is: abort
     * (nginx does the same), so the module stops the upstream work. */
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !r->finalized
        && r->body_state != PT_RB_TUNNEL
        && !pt_http_body_pending(r) && c->in.pos == c->in.last) {
        /* a FIN after pipelined requests still in the socket is a half-close, not a
         * hang-up: those requests are answered (RST or error: nothing to answer) */
        char b;
        ssize_t n = (events & (EPOLLHUP | EPOLLERR)) ? -1
                    : recv(c->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0)
            pt_http_abort(r, "client closed the connection before the response was complete");
    }
}
