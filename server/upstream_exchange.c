/* The upstream exchange: one HTTP/1.1 request to an origin server and its response, as
 * a core object anyone can run (the proxy for a client; later health checks and cache
 * refreshes, with no client at all). The owner describes the request (pt_upx_req),
 * supplies its body by being pulled, and takes the response through its handler.
 *
 *   CONNECT  -- the group's policy picks a server; a pooled connection or a new one; a
 *               failed connect moves to the next server, up to `retries`
 *   EXCHANGE -- write the head and stream the body (paced by the origin socket); read
 *               the response head (1xx handled, strict parse)
 *   BODY     -- the owner pulls the body (or splices it) at its own pace
 *   TUNNEL   -- after 101: bytes both ways, idle timeout
 * Memory is the connection's response buffer and a fixed request iovec queue: the owner
 * pulls, so nothing is read from one side while the other cannot take it. */
#include <errno.h>
#include <stdio.h>

#include "portico/event.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "portico/xprt.h"

#define UPX_EXPECT_WAIT_MS 1000   /* origin silent after Expect: send the body anyway */
#define UPX_HEAD_READ      16384  /* bytes read while looking for the response head */
#define UPX_QUEUE_POLL_MS  10     /* waiting for room: how often other workers are looked at */

static void upx_event(pt_upconn *uc, uint32_t events);
static void connect_next(pt_upx *x);
static int  upx_send(pt_upx *x);
static void read_head(pt_upx *x);
static void queue_fire(pt_timer *t);
static void queue_wake(pt_upstream_waiter *w);

/* ------------------------------------------------------------------ helpers */

void pt_upx_log(pt_upx *x, int level, int err, const char *what)
{
    char e[128] = "", ctx[384] = "";
    if (x->pinned && level < PT_LOG_INFO)
        level = PT_LOG_INFO;            /* a probe: the health check says what it means */
    if (err)
        snprintf(e, sizeof(e), " (%d: %s)", err, strerror(err));
    if (x->r)
        snprintf(ctx, sizeof(ctx), ", client %s, request \"%.*s %.*s\"", x->r->conn->peer_ip,
                 (int) pt_min(x->r->head.method_name.len, 32), x->r->head.method_name.data,
                 (int) pt_min(x->r->head.target.len, 256), x->r->head.target.data);
    if (x->server)
        pt_log(level, "upstream \"%s\" server %s: %s%s%s", x->up->name, x->server->addr_text,
               what, e, ctx);
    else
        pt_log(level, "upstream \"%s\": %s%s%s", x->up->name, what, e, ctx);
}

static void arm(pt_upx *x)
{
    pt_upconn *uc = x->uc;
    if (uc == NULL)
        return;
    switch (x->state) {
    case PT_UPX_CONNECT:
        pt_upconn_set_timer(uc, x->up->connect_timeout_ms);
        break;
    case PT_UPX_EXCHANGE:
    case PT_UPX_BODY:
        pt_upconn_set_timer(uc, x->uq_pending ? x->up->write_timeout_ms : x->up->read_timeout_ms);
        break;
    case PT_UPX_TUNNEL:
        pt_upconn_set_timer(uc, x->up->tunnel_timeout_ms);
        break;
    case PT_UPX_IDLE:
    case PT_UPX_DONE:
        pt_upconn_set_timer(uc, 0);
        break;
    }
}

/* Requests in flight per server, counted for all workers: pt_upstream_pick counted the
 * attempt already (x->counted); the end of an attempt gives it back. Probes (pinned) are
 * not counted. */
static void attempt_end(pt_upx *x)
{
    if (x->counted) {
        x->counted = false;
        pt_upstream_release(x->up, x->server->index);
    }
}

static void report(pt_upx *x, pt_upstream_outcome o, unsigned status, const char *why)
{
    if (x->pinned || x->server == NULL)
        return;
    pt_upstream_result res = { o, status, pt_upstream_now_us() - x->t_attempt_us, why };
    pt_upstream_report(x->up, x->server->index, &res);
}

static bool tried(const pt_upx *x, unsigned s)
{
    return (x->tried[s >> 6] >> (s & 63)) & 1;
}

static void uq_reset(pt_upx *x)
{
    x->uq_first = x->uq_n = 0;
    x->uq_pending = 0;
}

static void uq_add(pt_upx *x, const void *p, size_t n)
{
    x->uq[x->uq_n].iov_base = (void *) p;
    x->uq[x->uq_n].iov_len = n;
    x->uq_n++;
    x->uq_pending += n;
}

/* The request body's last chunk, with its trailer section when the owner gave one. */
static void last_chunk(pt_upx *x)
{
    size_t len = pt_h1_last_chunk_len(x->req.trailers, x->req.ntrailers);
    char *b = x->req.ntrailers ? pt_palloc(x->pool, len) : NULL;
    if (b == NULL)
        uq_add(x, "0\r\n\r\n", 5);          /* none (or no memory: sent without) */
    else
        uq_add(x, b, pt_h1_last_chunk(b, x->req.trailers, x->req.ntrailers));
}

/* The exchange is over for this connection: reuse it or close it. */
static void stop(pt_upx *x, bool reuse)
{
    x->state = PT_UPX_DONE;
    pt_timer_del(&pt_loop_cur->timers, &x->expect_timer);
    pt_timer_del(&pt_loop_cur->timers, &x->queue_timer);
    pt_upstream_wait_cancel(x->up, &x->waiter);
    attempt_end(x);
    if (x->r) {
        if (x->t_start)
            x->r->upstream_ms = (int64_t) (pt_loop_cur->now - x->t_start);
        if (x->server)
            x->r->upstream_addr = (pt_str) { strlen(x->server->addr_text),
                                             x->server->addr_text };
    }
    if (x->uc) {
        pt_upconn_set_timer(x->uc, 0);
        pt_upconn_release(x->uc, reuse);
        x->uc = NULL;
    }
}

/* Nothing more will come: the owner answers status (502, 504) if it can. */
static void give_up(pt_upx *x, unsigned status, const char *why)
{
    x->status = status;
    x->why = why;
    if (status == 503 && x->r)
        x->r->retry_after = x->retry_after;
    stop(x, false);
    x->h->fail(x);
}

static void fail(pt_upx *x, unsigned status, int err, const char *why)
{
    pt_upx_log(x, PT_LOG_ERR, err, why);
    if (x->state != PT_UPX_DONE)
        report(x, status == 504 ? PT_UP_TIMEOUT : PT_UP_BROKEN, 0, why);
    give_up(x, status, why);
}

/* ------------------------------------------------------------------ connecting */

void pt_upx_init(pt_upx *x, const pt_upstream *up, const pt_upx_handler *h, void *owner,
                 pt_request *r)
{
    /* what each attempt sets up (the parser, the 4 KiB header array) needs no zeroing */
    memset(x, 0, offsetof(pt_upx, parser));
    x->up = up;
    x->h = h;
    x->owner = owner;
    x->r = r;
    x->pool = r ? r->pool : NULL;
    x->req.body_length = PT_UPX_NO_BODY;
}

void pt_upx_pin(pt_upx *x, unsigned server)
{
    PT_ASSERT(x->state == PT_UPX_IDLE && server < x->up->nservers);
    x->pinned = true;
    x->pin = server;
}

static void expect_fire(pt_timer *t)
{
    pt_upx *x = t->data;
    if (x->state != PT_UPX_EXCHANGE || !x->expect_wait)
        return;
    x->expect_wait = false;            /* the origin ignores Expect: send the body */
    upx_send(x);
}

void pt_upx_start(pt_upx *x)
{
    PT_ASSERT(x->state == PT_UPX_IDLE && x->uc == NULL && x->pool != NULL);
    pt_timer_init(&x->expect_timer, expect_fire, x);
    pt_timer_init(&x->queue_timer, queue_fire, x);
    x->waiter.fn = queue_wake;
    x->chunked.error = NULL;
    x->t_start = pt_loop_cur->now;
    x->state = PT_UPX_CONNECT;
    connect_next(x);
}

#define PUT(p, s, n) do { memcpy((p), (s), (n)); (p) += (n); } while (0)
#define PUTS(p, lit) PUT(p, lit, sizeof(lit) - 1)
#define PUTSTR(p, st) PUT(p, (st).data, (st).len)

/* The request head as HTTP/1.1, for this attempt's server (Host may be its address). */
static int build_head(pt_upx *x)
{
    const pt_upx_req *q = &x->req;
    pt_pool *pool = x->pool;
    pt_str host = q->host.len ? q->host : x->server->authority;
    bool close = (x->up->keepalive == 0 || x->pinned) && q->upgrade.len == 0;
    size_t size = q->method.len + q->target.len + host.len + q->connection.len
                  + q->upgrade.len + 160;
    for (uint32_t i = 0; i < q->nheaders; i++)
        size += q->headers[i].name.len + q->headers[i].value.len + 4;
    char *buf = pool ? pt_palloc(pool, size) : NULL;
    if (buf == NULL)
        return PT_ERROR;
    char *p = buf;

    PUTSTR(p, q->method);
    *p++ = ' ';
    PUTSTR(p, q->target);
    PUTS(p, " HTTP/1.1\r\nHost: ");
    PUTSTR(p, host);
    PUTS(p, "\r\n");
    for (uint32_t i = 0; i < q->nheaders; i++) {
        PUTSTR(p, q->headers[i].name);
        PUTS(p, ": ");
        PUTSTR(p, q->headers[i].value);
        PUTS(p, "\r\n");
    }
    x->rechunk = false;
    if (q->body_length == PT_UPX_CHUNKED) {
        PUTS(p, "Transfer-Encoding: chunked\r\n");
        x->rechunk = true;
    } else if (q->body_length >= 0) {
        char num[24];
        size_t nn = pt_fmt_u64(num, (uint64_t) q->body_length);
        PUTS(p, "Content-Length: ");
        PUT(p, num, nn);
        PUTS(p, "\r\n");
    }
    if (q->expect_continue && q->body_length != PT_UPX_NO_BODY) {
        PUTS(p, "Expect: 100-continue\r\n");
        x->expect_wait = true;
    }
    /* Connection names every hop-by-hop field we send (RFC 9110 §7.6.1) */
    if (q->upgrade.len || close || q->connection.len) {
        PUTS(p, "Connection: ");
        if (q->upgrade.len)
            PUTS(p, "upgrade");
        else if (close)
            PUTS(p, "close");
        if (q->connection.len) {
            if (q->upgrade.len || close)
                PUTS(p, ", ");
            PUTSTR(p, q->connection);
        }
        PUTS(p, "\r\n");
    }
    if (q->upgrade.len) {
        PUTS(p, "Upgrade: ");
        PUTSTR(p, q->upgrade);
        PUTS(p, "\r\n");
    }
    PUTS(p, "\r\n");
    x->head = buf;
    x->head_len = (size_t) (p - buf);
    return PT_OK;
}

static void start_exchange(pt_upx *x)
{
    pt_upconn *uc = x->uc;
    PT_ASSERT(uc != NULL && !uc->pooled && x->server == uc->server);
    uc->handler = upx_event;
    uc->owner = x;
    if (pt_upconn_alloc_in(uc) != PT_OK) {
        fail(x, 502, ENOMEM, "no memory for the response buffer");
        return;
    }
    uc->in.pos = uc->in.last = uc->in.start;
    pt_h1_limits lim = { pt_buf_size(&uc->in), 0, pt_nelems(x->rheaders) };
    pt_h1_parser_init(&x->parser, PT_H1_RESPONSE, &lim);
    memset(&x->resp, 0, sizeof(x->resp));
    x->resp.headers = x->rheaders;
    x->resp.max_headers = pt_nelems(x->rheaders);
    x->resp_any = x->head_done = x->req_sent = x->write_failed = false;
    x->extra_bytes = x->body_done = false;
    x->expect_wait = false;
    if (x->body_started && x->h->rewind && x->h->rewind(x))
        x->body_started = false;        /* a retry sends the body held by the owner again */
    uq_reset(x);
    if (build_head(x) != PT_OK) {
        fail(x, 500, ENOMEM, "no memory for the request head");
        return;
    }
    uc->requests++;
    x->state = PT_UPX_EXCHANGE;
    uq_add(x, x->head, x->head_len);
    if (x->expect_wait)
        pt_loop_timer(pt_loop_cur, &x->expect_timer, UPX_EXPECT_WAIT_MS);
    if (upx_send(x) == PT_ERROR || x->state != PT_UPX_EXCHANGE)
        return;
    arm(x);
    if (uc->x.readable)
        read_head(x);
}

/* A connect that failed (refused, unreachable, timed out, a TLS handshake refused):
 * next server or give up. */
static void connect_failed(pt_upx *x, int err, bool timeout, const char *tls_why)
{
    /* TLS failures carry their own reason; errno means nothing for them */
    char what[320];
    bool tls = true;
    if (tls_why)
        snprintf(what, sizeof(what), "TLS handshake failed: %s", tls_why);
    else if (timeout && x->uc && pt_xprt_tls_handshaking(&x->uc->x))
        snprintf(what, sizeof(what), "TLS handshake timed out");
    else
        tls = false;
    if (!tls)
        snprintf(what, sizeof(what), "%s", timeout ? "connect() timed out" : "connect() failed");
    pt_upx_log(x, PT_LOG_ERR, tls ? 0 : err, what);
    x->last_timeout = timeout;
    char why[400];
    if (tls)
        snprintf(why, sizeof(why), "%s", what);
    else
        snprintf(why, sizeof(why), "%s (%d: %s)", what, err, strerror(err));
    report(x, timeout ? PT_UP_TIMEOUT : PT_UP_CONNECT_FAILED, 0, why);
    attempt_end(x);
    if (x->uc) {
        pt_upconn_close(x->uc);
        x->uc = NULL;
    }
    if (x->pinned || x->connects > x->up->retries) {
        give_up(x, timeout ? 504 : 502,
                tls_why ? "upstream TLS handshake failed"
                        : timeout ? "upstream connect timed out" : "upstream connect failed");
        return;
    }
    connect_next(x);
}

/* The connect's events: once the connection is up (to a TLS origin: its handshake done
 * too), the request goes out. */
static void connecting(pt_upx *x)
{
    const char *why = NULL;
    int rc = pt_upconn_connected(x->uc, &why);
    if (rc == PT_AGAIN)
        return;
    if (rc == PT_ERROR) {
        connect_failed(x, errno, false, why);
        return;
    }
    start_exchange(x);
}

static void connect_server(pt_upx *x, unsigned s, bool fresh)
{
    if (!tried(x, s)) {
        x->tried[s >> 6] |= 1ull << (s & 63);
        if (x->attempts && x->server && !x->pinned)
            pt_metrics_upstream_retry(x->up, x->server->index);    /* it failed this one */
        x->attempts++;
    }
    x->server = &x->up->servers[s];
    x->t_attempt_us = pt_upstream_now_us();
    pt_upconn *uc = fresh || x->pinned ? NULL : pt_upstream_pool_get(x->up, s);
    if (uc) {
        x->uc = uc;
        x->reused = true;
        start_exchange(x);
        return;
    }
    x->connects++;
    x->reused = false;
    x->state = PT_UPX_CONNECT;
    uc = pt_upstream_connect(x->up, s, upx_event, x);
    if (uc == NULL) {
        connect_failed(x, errno, false, NULL);
        return;
    }
    x->uc = uc;
    arm(x);
    if (uc->x.connected)
        connecting(x);
}

/* The next server: the policy's pick (counted in its load), or the pinned one. */
static int next_server(pt_upx *x)
{
    if (x->pinned)
        return tried(x, x->pin) ? PT_PICK_NONE_LEFT : (int) x->pin;
    int s = pt_upstream_pick(x->up, x->r, x->tried);
    if (s >= 0)
        x->counted = true;
    if (s == PT_PICK_ALL_DOWN && x->attempts)
        s = PT_PICK_NONE_LEFT;      /* they failed for this request: 502/504 says what */
    if (s == PT_PICK_ALL_DOWN) {
        pt_upstream_rt *rt = pt_upstream_rt_of(x->up);
        x->retry_after = rt ? rt->retry_after : 1;
    }
    return s;
}

static void connect_next(pt_upx *x)
{
    int s = next_server(x);
    if (s >= 0) {
        connect_server(x, (unsigned) s, false);
        return;
    }
    const pt_upstream_server *last = x->server;    /* for the access log */
    x->server = NULL;                   /* the line is about the group */
    if (s == PT_PICK_ALL_FULL) {
        uint64_t now = pt_loop_cur->now;
        if (x->queue_until == 0)
            x->queue_until = now + x->up->queue_timeout_ms;
        if (now < x->queue_until) {
            /* woken when a request of the group ends here; other workers' ends are not
             * seen, so it also looks again every UPX_QUEUE_POLL_MS */
            x->server = last;
            pt_upstream_wait(x->up, &x->waiter);
            pt_loop_timer(pt_loop_cur, &x->queue_timer,
                          (uint32_t) pt_min(x->queue_until - now, UPX_QUEUE_POLL_MS));
            return;
        }
        pt_upx_log(x, PT_LOG_ERR, 0, x->up->queue_timeout_ms
                   ? "every server is at max_conns (waited queue_timeout_ms)"
                   : "every server is at max_conns");
        x->server = last;
        x->retry_after = 1;
        give_up(x, 503, "every upstream server is at max_conns");
        return;
    }
    if (s == PT_PICK_ALL_DOWN) {
        pt_upx_log(x, PT_LOG_ERR, 0, "no live server: every server is down");
        x->server = last;
        give_up(x, 503, "every upstream server is down");
        return;
    }
    pt_upx_log(x, PT_LOG_ERR, 0, "no server left to try");
    x->server = last;
    give_up(x, x->last_timeout ? 504 : 502, "no upstream server left to try");
}

/* A request of the group ended in this worker: look for room again, from the loop. */
static void queue_wake(pt_upstream_waiter *w)
{
    pt_upx *x = pt_container_of(w, pt_upx, waiter);
    pt_loop_timer(pt_loop_cur, &x->queue_timer, 0);
}

static void queue_fire(pt_timer *t)
{
    pt_upx *x = t->data;
    if (x->state != PT_UPX_CONNECT || x->uc != NULL)
        return;
    pt_upstream_wait_cancel(x->up, &x->waiter);
    connect_next(x);
}

/* Idempotent requests whose connection failed before any response byte may go to
 * another server (RFC 9110 9.2.2): the origin cannot have acted on them twice. */
static bool idempotent(const pt_upx *x)
{
    switch (x->req.method_id) {
    case PT_M_GET: case PT_M_HEAD: case PT_M_PUT: case PT_M_DELETE: case PT_M_OPTIONS:
    case PT_M_TRACE:
        return x->req.upgrade.len == 0;
    default:
        return false;
    }
}

/* The origin closed (or reset) a connection before a byte of response. On a pooled
 * connection that is the keep-alive race: retry once on a fresh connection when the
 * request can be repeated: it has no body, or no byte of it went out, or the owner can
 * give it again (held in memory). A streamed body cannot be sent again, whatever the
 * method (a retry would announce a body it no longer has and hang the origin). */
static void closed_early(pt_upx *x, int err)
{
    bool safe = !x->body_started || (x->h->rewind && x->h->rewind(x));
    if (x->reused && !x->stale_retried && safe) {
        unsigned s = x->server->index;
        pt_upx_log(x, PT_LOG_INFO, err, "pooled connection closed by the origin; retrying");
        pt_upconn_close(x->uc);         /* the same server goes on: still counted */
        x->uc = NULL;
        x->stale_retried = true;
        x->body_started = false;
        connect_server(x, s, true);
        return;
    }
    const char *why = x->reused && !x->stale_retried
                      ? "upstream closed the connection before responding (not retried: "
                        "the request body was already sent)"
                      : "upstream closed the connection before responding";
    if (safe && idempotent(x) && !x->pinned && x->attempts <= x->up->retries) {
        /* the server may have died with the request: another one can answer it */
        pt_upx_log(x, PT_LOG_ERR, err, why);
        report(x, PT_UP_BROKEN, 0, why);
        attempt_end(x);
        pt_upconn_close(x->uc);
        x->uc = NULL;
        x->body_started = false;
        x->reused = false;
        int s = next_server(x);
        if (s >= 0) {
            pt_upx_log(x, PT_LOG_INFO, 0, "trying another server");
            connect_server(x, (unsigned) s, false);
            return;
        }
        give_up(x, 502, why);
        return;
    }
    fail(x, 502, err, why);
}

/* ------------------------------------------------------------------ sending */

static int upx_send(pt_upx *x)
{
    pt_upconn *uc = x->uc;
    for (;;) {
        while (x->uq_pending) {
            ssize_t w = pt_xprt_writev(&uc->x, &x->uq[x->uq_first], (int) (x->uq_n - x->uq_first));
            if (w == PT_AGAIN) {
                arm(x);
                return PT_AGAIN;
            }
            if (w < 0) {
                int err = errno;
                x->write_failed = true;
                uq_reset(x);
                if (!x->resp_any && !uc->x.readable) {
                    closed_early(x, err);
                    return PT_ERROR;
                }
                read_head(x);           /* the origin may have answered before closing */
                return PT_ERROR;
            }
            x->uq_pending -= (size_t) w;
            size_t left = (size_t) w;
            while (left) {
                struct iovec *v = &x->uq[x->uq_first];
                if (left >= v->iov_len) {
                    left -= v->iov_len;
                    x->uq_first++;
                } else {
                    v->iov_base = (char *) v->iov_base + left;
                    v->iov_len -= left;
                    left = 0;
                }
            }
        }
        uq_reset(x);
        if (x->req_sent || x->expect_wait || x->write_failed)
            return PT_OK;
        if (x->req.body_length == PT_UPX_NO_BODY) {
            x->req_sent = true;
            arm(x);
            return PT_OK;
        }

        const char *d;
        size_t n;
        int rc = x->h->body(x, &d, &n);
        if (rc == PT_OK) {
            if (n == 0)
                continue;
            x->body_started = true;
            if (x->rechunk) {
                int ln = snprintf(x->chunk_line, sizeof(x->chunk_line), "%zx\r\n", n);
                uq_add(x, x->chunk_line, (size_t) ln);
                uq_add(x, d, n);
                uq_add(x, "\r\n", 2);
            } else {
                uq_add(x, d, n);
            }
            continue;
        }
        if (rc == PT_DONE) {
            if (x->rechunk) {
                last_chunk(x);
                x->rechunk = false;     /* queued the last chunk: done after the flush */
                continue;
            }
            x->req_sent = true;
            arm(x);
            return PT_OK;
        }
        if (rc == PT_AGAIN) {
            arm(x);
            return PT_AGAIN;
        }
        /* the owner's body failed: bad, too big, too slow, or its client left */
        x->client_failed = true;
        pt_upx_log(x, PT_LOG_INFO, 0, x->r && x->r->error_reason ? x->r->error_reason
                                                                 : "request body failed");
        give_up(x, 0, "request body failed");
        return PT_ERROR;
    }
}

void pt_upx_body_ready(pt_upx *x)
{
    if (x->state == PT_UPX_EXCHANGE && x->expect_wait) {
        /* the client sent something (body bytes: it does not wait for 100 Continue) or
         * hung up while we waited for the origin's 100: stop waiting, so the body or its
         * absence is dealt with now */
        x->expect_wait = false;
        pt_timer_del(&pt_loop_cur->timers, &x->expect_timer);
    }
    if (x->state == PT_UPX_EXCHANGE || (x->state == PT_UPX_BODY && !x->req_sent))
        upx_send(x);
}

/* ------------------------------------------------------------------ the response */

/* A complete final response head. */
static void response_head(pt_upx *x)
{
    const char *why = NULL;
    if (pt_h1_analyze_response(&x->resp, x->req.method_id, &x->ri, &why) != PT_OK) {
        fail(x, 502, 0, why ? why : "invalid response head");
        return;
    }
    if (x->ri.status == 101 && x->req.upgrade.len == 0) {
        fail(x, 502, 0, "101 Switching Protocols to a request that asked for no upgrade");
        return;
    }
    x->head_done = true;
    report(x, PT_UP_OK, x->ri.status, NULL);
    if (x->r) {
        x->r->upstream_status = x->ri.status;
        x->r->upstream_ms = (int64_t) (pt_loop_cur->now - x->t_start);
    }
    x->state = PT_UPX_BODY;
    x->trailers = NULL;
    x->ntrailers = 0;
    switch (x->ri.body) {
    case PT_BODY_NONE:
        x->remaining = 0;
        x->body_done = true;
        break;
    case PT_BODY_LENGTH:
        x->remaining = (uint64_t) x->ri.content_length;
        x->body_done = x->remaining == 0;
        break;
    case PT_BODY_CHUNKED:
        pt_h1_chunked_init(&x->chunked);
        /* only for a client that said it takes them: no buffer for the rest */
        if (x->req.keep_trailers)
            x->chunked.keep = pt_palloc(x->pool, PT_H1_MAX_TRAILER);
        break;
    case PT_BODY_CLOSE:
        break;
    }
    if (x->body_done && x->uc->in.pos != x->uc->in.last && x->ri.status != 101)
        x->extra_bytes = true;          /* bytes after a bodiless response: never forward */
    x->h->head(x);      /* body bytes may have come with the head: the owner reads now */
}

static void read_head(pt_upx *x)
{
    pt_upconn *uc = x->uc;
    while (x->state == PT_UPX_EXCHANGE) {
        if (uc->in.pos < uc->in.last) {
            x->resp_any = true;
            int rc = pt_h1_parse_head(&x->parser, uc->in.pos, pt_buf_len(&uc->in), &x->resp);
            if (rc == PT_ERROR) {
                fail(x, 502, 0, x->parser.error ? x->parser.error : "invalid response head");
                return;
            }
            if (rc == PT_OK) {
                uc->in.pos += x->resp.len;
                if (x->resp.status < 200 && x->resp.status != 101) {
                    /* interim response: 100 releases a body held for Expect; others are
                     * dropped. The next head starts at the buffer start again. */
                    size_t rest = pt_buf_len(&uc->in);
                    memmove(uc->in.start, uc->in.pos, rest);
                    uc->in.pos = uc->in.start;
                    uc->in.last = uc->in.start + rest;
                    pt_h1_limits lim = x->parser.lim;
                    pt_h1_parser_init(&x->parser, PT_H1_RESPONSE, &lim);
                    x->resp.nheaders = 0;
                    x->resp_any = false;
                    if (x->resp.status == 100 && x->expect_wait) {
                        x->expect_wait = false;
                        pt_timer_del(&pt_loop_cur->timers, &x->expect_timer);
                        if (upx_send(x) == PT_ERROR || x->state != PT_UPX_EXCHANGE)
                            return;
                    }
                    continue;
                }
                response_head(x);
                return;
            }
            if (pt_buf_free(&uc->in) == 0) {
                fail(x, 502, 0, "upstream response head too big for the buffer");
                return;
            }
        } else {
            uc->in.pos = uc->in.last = uc->in.start;
        }
        /* Reading for the head takes a slice, not the whole buffer: a large body left in
         * the socket can then be spliced to the client without a copy. */
        ssize_t n = pt_upconn_read(uc, UPX_HEAD_READ);
        if (n > 0)
            continue;
        if (n == PT_AGAIN) {
            arm(x);
            return;
        }
        int err = n < 0 ? errno : 0;
        if (!x->resp_any) {
            closed_early(x, err);
            return;
        }
        fail(x, 502, err, "upstream closed the connection in the middle of the response head");
        return;
    }
}

static int tunnel_read(pt_upx *x, const char **data, size_t *len)
{
    pt_upconn *uc = x->uc;
    if (x->tunnel_in_eof)
        return PT_DONE;
    for (;;) {
        if (uc->in.pos < uc->in.last) {
            *data = uc->in.pos;
            *len = pt_buf_len(&uc->in);
            uc->in.pos = uc->in.last;
            return PT_OK;
        }
        uc->in.pos = uc->in.last = uc->in.start;
        ssize_t n = pt_upconn_read(uc, SIZE_MAX);
        if (n > 0)
            continue;
        if (n == PT_AGAIN)
            return PT_AGAIN;
        x->tunnel_in_eof = true;
        return PT_DONE;
    }
}

int pt_upx_read(pt_upx *x, const char **data, size_t *len)
{
    pt_upconn *uc = x->uc;
    *data = NULL;
    *len = 0;
    if (x->state == PT_UPX_TUNNEL)
        return tunnel_read(x, data, len);
    if (x->state != PT_UPX_BODY)
        return PT_ERROR;
    if (x->body_done)
        return PT_DONE;
    for (;;) {
        if (uc->in.pos < uc->in.last) {
            const char *d = NULL;
            size_t n = 0;
            bool last = false;
            size_t avail = pt_buf_len(&uc->in);
            switch (x->ri.body) {
            case PT_BODY_LENGTH:
                n = (size_t) pt_min((uint64_t) avail, x->remaining);
                d = uc->in.pos;
                uc->in.pos += n;
                x->remaining -= n;
                last = x->remaining == 0;
                break;
            case PT_BODY_CHUNKED: {
                const char *p = uc->in.pos;
                int rc = pt_h1_chunked_decode(&x->chunked, &p, uc->in.last, &d, &n);
                uc->in.pos = (char *) p;
                if (rc == PT_ERROR) {
                    fail(x, 502, 0, x->chunked.error ? x->chunked.error
                                                     : "invalid chunked response body");
                    return PT_ERROR;
                }
                if (rc == PT_DONE) {
                    last = true;
                    if (x->chunked.keep_len)
                        x->ntrailers = pt_h1_trailer_fields(x->pool, x->chunked.keep,
                                                            x->chunked.keep_len, &x->trailers);
                } else if (rc == PT_AGAIN) {
                    n = 0;
                }
                break;
            }
            case PT_BODY_CLOSE:
                d = uc->in.pos;
                n = avail;
                uc->in.pos = uc->in.last;
                break;
            case PT_BODY_NONE:
                last = true;
                break;
            }
            if (last && uc->in.pos != uc->in.last)
                x->extra_bytes = true;  /* more than the response: never forwarded */
            if (n == 0 && !last)
                continue;
            *data = d;
            *len = n;
            if (last) {
                x->body_done = true;
                return PT_DONE;
            }
            return PT_OK;
        }
        uc->in.pos = uc->in.last = uc->in.start;
        ssize_t n = pt_upconn_read(uc, SIZE_MAX);
        if (n > 0)
            continue;
        if (n == PT_AGAIN) {
            arm(x);
            return PT_AGAIN;
        }
        if (n == 0 && x->ri.body == PT_BODY_CLOSE) {
            x->body_done = true;
            return PT_DONE;
        }
        fail(x, 502, n < 0 ? errno : 0, "upstream closed the connection in the middle of the body");
        return PT_ERROR;
    }
}

void pt_upx_hold(pt_upx *x)
{
    if (x->uc && x->state != PT_UPX_TUNNEL)
        pt_upconn_set_timer(x->uc, 0);      /* the client's send timeout runs now */
}

bool pt_upx_can_splice(pt_upx *x, uint64_t min)
{
    pt_upconn *uc = x->uc;
    return x->state == PT_UPX_BODY && x->ri.body == PT_BODY_LENGTH && !x->body_done
           && uc->in.pos == uc->in.last && x->remaining >= min && uc->x.ops->splice_in;
}

uint64_t pt_upx_body_left(pt_upx *x)
{
    return x->remaining;
}

ssize_t pt_upx_splice(pt_upx *x, int pipe_wr, size_t max)
{
    pt_upconn *uc = x->uc;
    size_t want = (size_t) pt_min(x->remaining, (uint64_t) max);
    ssize_t n = uc->x.ops->splice_in(&uc->x, pipe_wr, want);
    if (n > 0) {
        x->remaining -= (uint64_t) n;
        if (x->remaining == 0)
            x->body_done = true;
        return n;
    }
    if (n == PT_AGAIN) {
        arm(x);
        return PT_AGAIN;
    }
    fail(x, 502, n < 0 ? errno : 0, "upstream closed the connection in the middle of the body");
    return PT_ERROR;
}

/* ------------------------------------------------------------------ the tunnel */

void pt_upx_tunnel(pt_upx *x)
{
    PT_ASSERT(x->state == PT_UPX_BODY && x->ri.status == 101);
    x->state = PT_UPX_TUNNEL;
    pt_upx_log(x, PT_LOG_DEBUG, 0, "tunnel open");
    arm(x);
}

void pt_upx_tunnel_activity(pt_upx *x)
{
    if (x->state == PT_UPX_TUNNEL)
        arm(x);
}

ssize_t pt_upx_tunnel_write(pt_upx *x, const char *data, size_t len)
{
    struct iovec v = { (void *) data, len };
    ssize_t w = pt_xprt_writev(&x->uc->x, &v, 1);
    if (w == PT_AGAIN || w > 0)
        return w;
    return PT_ERROR;
}

void pt_upx_tunnel_shutdown(pt_upx *x)
{
    if (x->uc)
        x->uc->x.ops->shutdown(&x->uc->x);
}

/* ------------------------------------------------------------------ ending */

void pt_upx_finish(pt_upx *x)
{
    if (x->state == PT_UPX_DONE)
        return;
    if (x->state == PT_UPX_TUNNEL)
        pt_upx_log(x, PT_LOG_DEBUG, 0, "tunnel closed");
    bool reuse = x->ri.keepalive && x->req_sent && !x->extra_bytes && !x->write_failed
                 && x->body_done && x->state == PT_UPX_BODY;
    if (reuse && (x->ri.body == PT_BODY_NONE || x->req.method_id == PT_M_HEAD)) {
        /* no body (HEAD, 204, 304): a late body from a confused origin must not become
         * the next request's response; see pt_upstream_pool_get */
        x->uc->check_reuse = true;
        if (x->req.method_id == PT_M_HEAD)
            x->uc->settle_until = pt_loop_cur->now + PT_UPCONN_SETTLE_MS;
    }
    stop(x, reuse);
}

void pt_upx_abort(pt_upx *x)
{
    if (x->state != PT_UPX_DONE && x->state != PT_UPX_IDLE)
        stop(x, false);             /* mid-exchange: the connection is not reusable */
}

/* ------------------------------------------------------------------ events */

static void upx_event(pt_upconn *uc, uint32_t events)
{
    pt_upx *x = uc->owner;
    if (x == NULL || x->state == PT_UPX_DONE)
        return;

    if (events == 0) {
        switch (x->state) {
        case PT_UPX_CONNECT:
            connect_failed(x, ETIMEDOUT, true, NULL);
            return;
        case PT_UPX_EXCHANGE:
            fail(x, 504, 0, x->uq_pending ? "timed out sending the request"
                                          : "timed out waiting for the response");
            return;
        case PT_UPX_BODY:
            fail(x, 504, 0, "timed out reading the response body");
            return;
        case PT_UPX_TUNNEL:
            pt_upx_log(x, PT_LOG_INFO, 0, "tunnel idle timeout");
            give_up(x, 0, "tunnel idle timeout");
            return;
        case PT_UPX_IDLE:
        case PT_UPX_DONE:
            return;
        }
    }

    switch (x->state) {
    case PT_UPX_CONNECT:
        connecting(x);
        return;
    case PT_UPX_EXCHANGE:
        if (uc->x.writable && x->uq_pending) {
            if (upx_send(x) == PT_ERROR || x->state != PT_UPX_EXCHANGE)
                return;
        }
        if (uc->x.readable)
            read_head(x);
        return;
    case PT_UPX_BODY:
        if (uc->x.writable && x->uq_pending && !x->req_sent) {
            if (upx_send(x) == PT_ERROR || x->state != PT_UPX_BODY)
                return;
        }
        if (uc->x.readable)
            x->h->data(x);
        return;
    case PT_UPX_TUNNEL:
        x->h->data(x);
        return;
    case PT_UPX_IDLE:
    case PT_UPX_DONE:
        return;
    }
}
