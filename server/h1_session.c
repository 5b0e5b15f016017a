/* The HTTP/1 session, connection side: reading request heads, keep-alive and pipelining,
 * refusals at the framing level, timeouts, lingering close, graceful drain.
 *
 * A finished request is wound up from a deferred step, never from inside a handler, so
 * no handler stack frame outlives the request it points to. */
#include <errno.h>
#include <stdio.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/str.h"
#include "h1_session.h"

static pt_h1_limits h1_limits;

static void h1_step(pt_defer *d);
static void read_head(h1_session *s);

/* The head's deadline: client_header_timeout_ms from its start, and sooner when the bytes
 * so far fall short of client_header_min_rate: a head may take client_header_grace_ms
 * plus 1 s per client_header_min_rate bytes received. A trickle (slowloris) is cut once
 * it falls behind, a client that sends at once is never concerned. Returns the ms left
 * (0: the deadline has passed) and, in *rate, whether it is the rate's deadline. */
static uint32_t head_time_left(h1_session *s, bool *rate)
{
    const pt_limits *lim = &pt_wconf->limits;
    uint32_t elapsed = (uint32_t) pt_loop_cur->now - s->head_started;
    uint64_t allowed = lim->client_header_timeout_ms;

    *rate = false;
    if (lim->client_header_min_rate) {
        pt_conn *c = s->c;
        uint64_t got = c->in.start ? (uint64_t) pt_buf_len(&c->in) : 0;
        uint64_t by_rate = lim->client_header_grace_ms
                           + got * 1000 / lim->client_header_min_rate;
        if (by_rate < allowed) {
            allowed = by_rate;
            *rate = true;
        }
    }
    return elapsed >= allowed ? 0 : (uint32_t) (allowed - elapsed);
}

static void arm_head_timer(h1_session *s)
{
    bool rate;
    uint32_t ms = head_time_left(s, &rate);
    pt_conn_set_timer(s->c, ms ? ms : 1);
}

static void h1_start(pt_conn *c)
{
    h1_session *s = h1_of(c);
    PT_ASSERT(c->proto == &pt_h1_session && s->req == NULL);
    s->c = c;
    s->step.fn = h1_step;
    s->state = H1_HEAD;
    if (h1_limits.max_headers == 0) {
        const pt_limits *lim = &pt_wconf->limits;
        h1_limits.max_head = lim->max_header_size;
        h1_limits.max_target = lim->max_target_size;
        h1_limits.max_headers = lim->max_headers;
    }
    /* the first request's head must arrive within the header timeout, counted from the
     * connection's start */
    s->head_started = (uint32_t) pt_loop_cur->now;
    arm_head_timer(s);
    read_head(s);
}

static pt_request *new_request(h1_session *s)
{
    pt_conn *c = s->c;
    pt_request *r = pt_http_request_new(c, pt_conn_pool(c), &pt_h1_session,
                                        sizeof(h1_stream), offsetof(h1_stream, parser));
    if (r == NULL)
        return NULL;
    h1_stream *st = r->stream;
    st->h.headers = pt_palloc(r->pool, h1_limits.max_headers * sizeof(pt_header));
    if (st->h.headers == NULL)
        return NULL;
    st->h.max_headers = h1_limits.max_headers;
    st->sent_at_start = c->out.sent;
    pt_h1_parser_init(&st->parser, PT_H1_REQUEST, &h1_limits);
    s->req = r;
    return r;
}

/* Starts a request with the bytes already buffered (pipelining) or the next ones. */
static void begin_head(h1_session *s)
{
    pt_conn *c = s->c;
    s->state = H1_HEAD;
    if (c->in.start && c->in.pos != c->in.start) {
        size_t n = pt_buf_len(&c->in);
        memmove(c->in.start, c->in.pos, n);   /* a head always starts at the buffer start */
        c->in.pos = c->in.start;
        c->in.last = c->in.start + n;
    }
    s->head_started = (uint32_t) pt_loop_cur->now;
    arm_head_timer(s);
}

/* The buffer moved: the request's strings point into it, so they move along. */
static void relocate(h1_session *s, char *ob, char *oe)
{
    pt_conn *c = s->c;
    char *nb = c->in.start;
    uintptr_t lo = (uintptr_t) ob, hi = (uintptr_t) oe;
#define MOVE(p) do { \
        if ((p) && (uintptr_t) (p) >= lo && (uintptr_t) (p) <= hi) \
            (p) = nb + ((uintptr_t) (p) - lo); \
    } while (0)
    pt_request *r = s->req;
    if (r == NULL)
        return;
    h1_stream *st = r->stream;
    MOVE(st->h.method.data);
    MOVE(st->h.target.data);
    MOVE(st->h.reason.data);
    for (uint32_t i = 0; i < st->h.nheaders; i++) {
        MOVE(st->h.headers[i].name.data);
        MOVE(st->h.headers[i].value.data);
    }
    MOVE(st->info.path.data);
    MOVE(st->info.query.data);
    MOVE(st->info.authority.data);
    MOVE(st->info.host.data);
    MOVE(r->head.method_name.data);
    MOVE(r->head.target.data);
    MOVE(r->head.authority.data);
    MOVE(r->head.path.data);
    MOVE(r->head.query.data);
    MOVE(r->body_unread);
    MOVE(st->body_base);
    if (r->body_buf_cap == 0)
        MOVE(r->body_buf);
#undef MOVE
}

int pt_h1_grow_in(h1_session *s, size_t size)
{
    char *ob, *oe;
    int rc = pt_conn_grow_in(s->c, size, &ob, &oe);
    if (rc == PT_OK)
        relocate(s, ob, oe);
    return rc == PT_ERROR ? PT_ERROR : PT_OK;
}

/* A request refused at the framing level: the engine answers, the connection closes. */
static void refuse(h1_session *s, pt_request *r, unsigned status, const char *why)
{
    pt_conn *c = s->c;
    if (r == NULL)
        r = s->req ? s->req : new_request(s);
    if (r == NULL) {
        pt_conn_close(c);
        return;
    }
    s->state = H1_ACTIVE;
    pt_conn_set_timer(c, 0);
    r->keepalive = false;
    pt_http_refuse(r, status, why);
}

/* Fields with '_' in their name go (or the request is refused) before anything reads the
 * head: framing analysis, routing, the modules and the proxy's copy all see one list. */
static int underscore_fields(h1_session *s, pt_request *r)
{
    h1_stream *st = r->stream;
    pt_str   names[8];
    char     list[600];
    size_t   len = 0;
    int      n, w;

    n = pt_h1_underscore_fields(&st->h, (unsigned) pt_wconf->underscores_in_headers,
                                names, pt_nelems(names));
    if (n < 0) {
        /* names are tokens: nothing in them needs escaping in a log line */
        int nl = (int) pt_min(names[0].len, 64);
        char *why = pt_palloc(r->pool, (size_t) nl + 48);
        if (why)
            snprintf(why, (size_t) nl + 48, "header field name with '_': %.*s%s", nl,
                     names[0].data, names[0].len > 64 ? "..." : "");
        refuse(s, r, 400, why ? why : "header field name with '_'");
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
           n == 1 ? "" : "s", s->c->peer_ip, list, n > (int) pt_nelems(names) ? ", ..." : "",
           pt_wconf->underscores_in_headers == PT_H1_US_PASS
               ? " (read with '-', a field portico manages)" : "");
    return PT_OK;
}

static void process(h1_session *s, pt_request *r)
{
    pt_conn *c = s->c;
    h1_stream *st = r->stream;
    const pt_limits *lim = &pt_wconf->limits;
    unsigned status = 400;
    const char *why = NULL;

    s->state = H1_ACTIVE;
    pt_conn_set_timer(c, 0);
    if (pt_stats_mine)
        pt_stats_mine->requests++;

    if (c->plain_on_tls) {
        /* the accept pipeline saw plain HTTP where a TLS hello belongs: say so in HTTP,
         * which is what this client reads */
        r->error_text = PT_STR("400 Bad Request: plain HTTP request sent to a TLS port "
                               "(use https://)\n");
        refuse(s, r, 400, "plain HTTP request sent to a TLS port");
        return;
    }
    if (st->h.underscore && underscore_fields(s, r) != PT_OK)
        return;
    if (pt_h1_analyze_request(&st->h, &st->info, &status, &why) != PT_OK) {
        refuse(s, r, status, why);
        return;
    }
    const pt_h1_req_info *in = &st->info;
    pt_req_head *h = &r->head;
    h->method = in->method;
    h->method_name = st->h.method;
    h->version = in->version;
    h->scheme = (pt_str) { strlen(c->x.ops->scheme), c->x.ops->scheme };
    h->authority = in->authority;
    h->path = in->asterisk_form ? PT_STR("*") : in->path;
    h->query = in->query;
    h->target = st->h.target;
    h->headers = st->h.headers;
    h->nheaders = st->h.nheaders;
    h->cap = st->h.max_headers;
    h->content_length = in->content_length;
    h->chunked = in->chunked;
    h->expect_continue = in->expect_continue;
    h->upgrade = in->upgrade;
    h->keepalive = in->keepalive;
    h->absolute_form = in->absolute_form;
    h->underscore = st->h.underscore;

    if (in->chunked) {
        r->body_state = PT_RB_PENDING;
        pt_h1_chunked_init(&st->chunked);
        /* its trailer fields go on to the origin (chunked requests are rare: the cost
         * is theirs) */
        st->chunked.keep = pt_palloc(r->pool, PT_H1_MAX_TRAILER);
    } else if (in->content_length > 0) {
        r->body_state = PT_RB_PENDING;
        st->body_remaining = (uint64_t) in->content_length;
    }
    r->keepalive = in->keepalive && lim->keepalive_timeout_ms > 0 && !c->draining
                   && !pt_worker_draining();
    r->no_body = in->method == PT_M_HEAD;
    pt_http_process(r);
}

static void read_head(h1_session *s)
{
    pt_conn *c = s->c;
    for (;;) {
        if (c->in.start == NULL && pt_conn_alloc_in(c) != PT_OK) {
            pt_log(PT_LOG_ALERT, "out of memory for a connection buffer");
            pt_conn_close(c);
            return;
        }
        if (s->req == NULL && c->in.pos < c->in.last) {
            if (s->state == H1_IDLE)
                begin_head(s);
            if (new_request(s) == NULL) {
                pt_log(PT_LOG_ALERT, "out of memory for a request");
                pt_conn_close(c);
                return;
            }
        }
        pt_request *r = s->req;
        if (r) {
            h1_stream *st = r->stream;
            int rc = pt_h1_parse_head(&st->parser, c->in.pos, pt_buf_len(&c->in), &st->h);
            if (rc == PT_OK) {
                c->in.pos += st->h.len;
                st->body_base = c->in.pos;
                process(s, r);
                return;
            }
            if (rc == PT_ERROR) {
                refuse(s, r, st->parser.status, st->parser.error);
                return;
            }
        }
        if (!c->x.readable)
            return;
        if (pt_buf_free(&c->in) == 0) {
            /* a head that does not fit the standard buffer, allowed by max_header_size */
            size_t want = (size_t) pt_wconf->limits.max_header_size + PT_BODY_MIN_ROOM;
            if (pt_buf_size(&c->in) >= want || pt_h1_grow_in(s, want) != PT_OK) {
                refuse(s, r, 431, "request head does not fit the buffer");
                return;
            }
        }
        ssize_t n = pt_conn_read(c);
        if (n > 0)
            continue;
        if (n == PT_AGAIN) {
            /* more bytes of the head may extend its deadline (client_header_min_rate) */
            if (r && s->state == H1_HEAD && pt_wconf->limits.client_header_min_rate)
                arm_head_timer(s);
            return;
        }
        /* EOF or error */
        if (r && pt_buf_len(&c->in) > 0)
            pt_log(PT_LOG_INFO, "client %s closed the connection while sending a request head",
                   c->peer_ip);
        pt_conn_close(c);
        return;
    }
}

/* Closing with unread input makes the kernel send RST, which can destroy the response
 * still in flight to the client. So: half-close, read and drop for a while, then close. */
static void linger_read(h1_session *s)
{
    pt_conn *c = s->c;
    char buf[4096];
    while (c->x.readable) {
        ssize_t n = c->x.ops->recv(&c->x, buf, sizeof(buf));
        if (n > 0) {
            if ((uint64_t) n >= s->linger_left) {
                pt_conn_close(c);
                return;
            }
            s->linger_left -= (uint64_t) n;
            continue;
        }
        if (n == PT_AGAIN)
            return;
        pt_conn_close(c);               /* EOF or error: the client is done */
        return;
    }
}

static void linger(h1_session *s)
{
    pt_conn *c = s->c;
    if (c->x.eof || c->x.io.fd < 0 || c->x.ops->shutdown(&c->x) != PT_OK) {
        pt_conn_close(c);
        return;
    }
    s->state = H1_LINGER;
    s->linger_left = PT_LINGER_BYTES;
    pt_conn_set_timer(c, PT_LINGER_MS);
    c->x.readable = true;
    linger_read(s);
}

/* Winds up the finished request (outside any handler) and decides the connection's fate. */
static void h1_step(pt_defer *d)
{
    h1_session *s = pt_container_of(d, h1_session, step);
    pt_conn *c = s->c;
    pt_request *r = s->req;
    if (c->closed || r == NULL)
        return;
    h1_stream *st = r->stream;

    if (r->aborted) {
        r->bytes_sent = c->out.sent - st->sent_at_start;
        pt_http_request_log(r);
        s->req = NULL;
        pt_conn_close(c);
        return;
    }
    if (c->out.pending)
        return;                         /* still writing: the event handler comes back */

    /* A response that went out before a drain began promised keep-alive: the client may
     * send its next request, which gets Connection: close (see below). */
    bool draining = c->draining || pt_worker_draining();
    bool ka = r->keepalive && !c->x.eof;
    if (ka && pt_http_body_pending(r)) {
        /* the handler did not read the body: drop it to reach the next request, unless
         * the client is waiting for a 100 that never came or the body is too big */
        if ((r->head.expect_continue && !r->continue_sent)
            || (!r->head.chunked && st->body_remaining > PT_DISCARD_MAX)
            || r->body_state == PT_RB_ERROR) {
            ka = false;
        } else {
            r->body_discard = true;
            int rc = pt_http_discard_body(r);
            if (rc == PT_AGAIN) {
                pt_conn_set_timer(c, pt_wconf->limits.client_body_timeout_ms);
                return;                 /* the event handler resumes the discard */
            }
            if (rc != PT_OK)
                ka = false;
        }
    }

    r->bytes_sent = c->out.sent - st->sent_at_start;
    pt_http_request_log(r);
    bool unread = pt_http_body_pending(r) || c->in.pos < c->in.last || r->status >= 400;
    s->req = NULL;
    s->requests++;
    pt_pool_reset(c->pool);

    if (!ka) {
        if (unread)
            linger(s);
        else
            pt_conn_close(c);
        return;
    }
    if (c->in.pos < c->in.last) {
        begin_head(s);                  /* pipelined: the next head is already here */
        read_head(s);
        return;
    }
    s->state = H1_IDLE;
    pt_conn_release_idle(c);
    if (draining) {
        uint32_t ms = pt_worker_drain_idle_ms(pt_loop_cur->now);
        if (ms == 0 && !c->x.readable) {
            pt_conn_close(c);
            return;
        }
        pt_conn_set_timer(c, ms ? ms : 1);
    } else {
        pt_conn_set_timer(c, pt_wconf->limits.keepalive_timeout_ms);
    }
    if (c->x.readable)
        read_head(s);
}

static void h1_timeout(h1_session *s)
{
    pt_conn *c = s->c;
    pt_request *r = s->req;
    switch (s->state) {
    case H1_IDLE:
    case H1_LINGER:
        pt_conn_close(c);
        return;
    case H1_HEAD: {
        bool rate;
        if (head_time_left(s, &rate) > 0) {
            arm_head_timer(s);          /* bytes came meanwhile: a later deadline */
            return;
        }
        if (r == NULL || pt_buf_len(&c->in) == 0) {
            if (rate)
                pt_debug("closed connection from %s: no request head byte within "
                         "client_header_grace_ms", c->peer_ip);
            pt_conn_close(c);           /* nothing was sent: no one to answer */
            return;
        }
        refuse(s, r, 408, rate ? "client sent the request head below client_header_min_rate"
                               : "client sent the request head too slowly");
        return;
    }
    case H1_ACTIVE:
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
                pt_defer_add(pt_loop_cur, &s->step);
                return;
            }
            refuse(s, r, 408, pt_http_body_too_slow(r)
                                  ? "client sent the request body below client_body_min_rate"
                                  : "client sent the request body too slowly");
            return;
        }
        return;
    }
}

static void h1_event(pt_conn *c, uint32_t events)
{
    h1_session *s = h1_of(c);
    if (events == 0) {
        h1_timeout(s);
        return;
    }
    switch (s->state) {
    case H1_IDLE:
    case H1_HEAD:
        if (c->x.readable)
            read_head(s);
        return;
    case H1_LINGER:
        linger_read(s);
        return;
    case H1_ACTIVE:
        break;
    }

    pt_request *r = s->req;
    if (r == NULL)
        return;
    PT_ASSERT(r->conn == c && r->stream != NULL);
    /* Queued output, or a spliced body waiting for room (nothing queued: the flush is a
     * no-op), can go on once the transport takes more. */
    if ((c->out.pending || r->wait_writable) && c->x.writable) {
        r->wait_writable = false;
        int f = pt_conn_flush(c);
        if (f == PT_ERROR) {
            pt_http_abort(r, "client connection failed while sending the response");
            return;
        }
        if (f == PT_OK) {
            pt_conn_set_timer(c, 0);
            if (r->finalized) {
                /* The handler is done, but a body filter may still owe output (a response
                 * sent whole with pt_http_respond, or an error page, through a filter that
                 * transforms it): it goes on before the request is wound up. */
                if (r->header_sent && !r->resp_body_done && !r->aborted
                    && pt_http_filters_active(r)) {
                    pt_http_writable(r);
                    if (s->state != H1_ACTIVE || s->req != r || c->closed || r->aborted
                        || c->out.pending)
                        return;
                }
                pt_defer_add(pt_loop_cur, &s->step);
                return;
            }
            h1_stream *st = r->stream;
            if (st->shut_wr) {
                st->shut_wr = false;
                c->x.ops->shutdown(&c->x);
            }
            pt_http_writable(r);
            if (s->state != H1_ACTIVE || s->req != r || c->closed)
                return;
        } else {
            pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
        }
    }
    if (c->x.readable) {
        if (r->body_discard) {
            int rc = pt_http_discard_body(r);
            if (rc != PT_AGAIN) {
                if (rc != PT_OK)
                    r->keepalive = false;
                r->body_discard = false;
                pt_conn_set_timer(c, 0);
                pt_defer_add(pt_loop_cur, &s->step);
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
        int n = (events & (EPOLLHUP | EPOLLERR)) ? 0 : c->x.ops->probe(&c->x);
        if (n != 1)
            pt_http_abort(r, "client closed the connection before the response was complete");
    }
}

/* Graceful stop. A request being read or served is finished (with Connection: close).
 * An idle keep-alive connection is not closed at once: its client may be sending the
 * next request right now, and a close racing with it fails that request. A request
 * arriving within drain_idle_grace_ms is answered with Connection: close; a connection
 * idle past it is closed, the closes spread over drain_close_spread_ms. */
static void h1_drain(pt_conn *c)
{
    h1_session *s = h1_of(c);
    const pt_limits *lim = &pt_wconf->limits;
    if (s->state != H1_IDLE)
        return;     /* a new connection's request may be unread yet: it is served */
    /* a request that raced with the drain is served now */
    c->x.readable = true;
    read_head(s);
    if (c->closed || s->state != H1_IDLE)
        return;
    /* the keep-alive timer was armed when the connection went idle */
    uint64_t idle_since = c->timer.deadline > lim->keepalive_timeout_ms
                          ? c->timer.deadline - lim->keepalive_timeout_ms : 0;
    uint32_t ms = pt_worker_drain_idle_ms(idle_since);
    if (ms == 0)
        pt_conn_close(c);
    else
        pt_conn_set_timer(c, ms);
}

static void h1_release(pt_conn *c)
{
    h1_session *s = h1_of(c);
    s->req = NULL;
    s->state = H1_IDLE;
}

/* The content handler is done: once the queue drains, the step winds the request up. */
static void h1_finish(pt_request *r)
{
    pt_conn *c = r->conn;
    PT_ASSERT(h1_of(c)->req == r && r->finalized && !r->aborted);
    int f = pt_conn_flush(c);
    if (f == PT_ERROR) {
        pt_http_abort(r, "client connection failed");
        return;
    }
    if (f == PT_AGAIN) {
        pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
        return;                         /* the event handler finishes it once drained */
    }
    pt_defer_add(pt_loop_cur, &h1_of(c)->step);
}

static void h1_abort(pt_request *r)
{
    PT_ASSERT(h1_of(r->conn)->req == r && r->aborted);
    pt_defer_add(pt_loop_cur, &h1_of(r->conn)->step);
}

static bool h1_output_pending(const pt_request *r)
{
    return r->conn->out.pending != 0;
}

static bool h1_input_pending(const pt_request *r)
{
    return r->conn->in.pos < r->conn->in.last;
}

static void h1_body_timer(pt_request *r, uint32_t ms)
{
    pt_conn_set_timer(r->conn, ms);
}

const pt_session_ops pt_h1_session = {
    .name = "h1",
    .size = sizeof(h1_session),
    .start = h1_start,
    .event = h1_event,
    .drain = h1_drain,
    .release = h1_release,
    .send_head = pt_h1_send_head,
    .send_body = pt_h1_send_body,
    .splice_ok = pt_h1_splice_ok,
    .splice_body = pt_h1_splice_body,
    .read_body = pt_h1_read_body,
    .output_pending = h1_output_pending,
    .input_pending = h1_input_pending,
    .body_timer = h1_body_timer,
    .tunnel = pt_h1_tunnel,
    .tunnel_shutdown = pt_h1_tunnel_shutdown,
    .finish = h1_finish,
    .abort = h1_abort,
};
