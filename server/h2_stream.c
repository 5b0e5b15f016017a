/* The HTTP/2 session, stream side: each stream is a pt_request of its own (its own pool,
 * freed when the stream closes), run by the same engine and modules as HTTP/1.
 *
 * Request head: the pseudo-header fields become the method, authority, path and query
 * (RFC 9113 8.3.1); cookie fields are joined into one (8.2.3); a Host field is added
 * from :authority when there is none, which is what an HTTP/1.1 origin needs.
 * libnghttp2 has already refused what 8.2.2 forbids (connection-specific fields, te
 * other than "trailers", upper-case names, a wrong content-length) with a stream error.
 *
 * Request body: DATA payloads are held per stream until the reader takes them, and the
 * flow-control window is given back (nghttp2_session_consume) only for bytes the reader
 * is done with, so a stream holds at most its window whatever the client does.
 *
 * Response: the head becomes a HEADERS frame (hop-by-hop fields dropped, names in lower
 * case); body slices are framed straight from the producer's memory. */
#include <stdio.h>

#ifdef PT_HAVE_NGHTTP2

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/str.h"
#include "h2_session.h"

#define H2_STREAM_POOL 4096

static void stream_timeout(pt_timer *t);

h2_stream *h2_stream_new(h2_session *s, int32_t id)
{
    pt_pool *pool = pt_pool_create(H2_STREAM_POOL);
    if (pool == NULL)
        return NULL;
    pt_request *r = pt_http_request_new(s->c, pool, &pt_h2_session, sizeof(h2_stream),
                                        sizeof(h2_stream));
    if (r == NULL) {
        pt_pool_destroy(pool);
        return NULL;
    }
    h2_stream *st = r->stream;
    st->s = s;
    st->r = r;
    st->id = id;
    pt_timer_init(&st->timer, stream_timeout, st);
    /* the header block (HEADERS and its CONTINUATIONs) within client_header_timeout_ms:
     * a client that starts one and stops would hold the connection (nothing else may come
     * on it meanwhile) */
    pt_loop_timer(pt_loop_cur, &st->timer, pt_wconf->limits.client_header_timeout_ms);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->nstreams++;
    s->nopen++;
    return st;
}

void h2_stream_release(h2_stream *st)
{
    h2_session *s = st->s;
    pt_request *r = st->r;

    if (st->started && !r->finalized)
        pt_http_abort(r, st->close_code == NGHTTP2_NO_ERROR
                             ? "HTTP/2 stream closed before the response was complete"
                             : "client reset the HTTP/2 stream");
    pt_timer_del(&pt_loop_cur->timers, &st->timer);
    nghttp2_session_set_stream_user_data(s->ng, st->id, NULL);
    if (st->started) {
        r->bytes_sent = st->bytes;
        pt_http_request_log(r);
    }
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->nstreams--;
    pt_pool_destroy(r->pool);
}

/* ------------------------------------------------------------------ the request head */

static pt_str pool_str(pt_pool *p, const uint8_t *d, size_t n)
{
    char *c = pt_pstrndup(p, (const char *) d, n);
    return c ? (pt_str) { n, c } : PT_STR_NULL;
}

int h2_stream_header(h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen)
{
    pt_pool *pool = st->r->pool;
    st->hsize += nlen + vlen + 32;              /* RFC 9113 6.5.2 */
    if (st->refuse)
        return 0;
    if (st->hsize > st->s->lim->max_header_list_size) {
        st->refuse = "request header fields larger than h2_max_header_list_size";
        return 0;
    }
    if (nlen && name[0] == ':') {
        pt_str v = pool_str(pool, value, vlen);
        pt_str n = { nlen, (const char *) name };
        if (v.data == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (pt_str_eq(n, PT_STR(":method")))
            st->method = v;
        else if (pt_str_eq(n, PT_STR(":scheme")))
            st->scheme = v;
        else if (pt_str_eq(n, PT_STR(":authority")))
            st->authority = v;
        else if (pt_str_eq(n, PT_STR(":path")))
            st->path = v;
        return 0;
    }
    if (st->nhdrs == pt_wconf->limits.max_headers) {
        st->refuse = "more request header fields than max_headers";
        return 0;
    }
    if (st->nhdrs == st->hcap) {
        uint32_t ncap = st->hcap ? st->hcap * 2 : 16;
        pt_header *nh = pt_palloc(pool, ncap * sizeof(*nh));
        if (nh == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (st->nhdrs)
            memcpy(nh, st->hdrs, st->nhdrs * sizeof(*nh));
        st->hdrs = nh;
        st->hcap = ncap;
    }
    pt_header *h = &st->hdrs[st->nhdrs];
    h->name = pool_str(pool, name, nlen);
    h->value = pool_str(pool, value, vlen);
    if (h->name.data == NULL || h->value.data == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (pt_str_eq(h->name, PT_STR("cookie"))) {
        st->cookie_len += vlen;
        st->ncookies++;
    }
    st->nhdrs++;
    return 0;
}

void h2_stream_closed(h2_stream *st)
{
    if (!st->closed && st->s->nopen)
        st->s->nopen--;
    st->closed = true;
}

int h2_stream_trailer(h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen)
{
    pt_request *r = st->r;
    pt_str n = { nlen, (const char *) name };
    st->hsize += nlen + vlen + 32;
    /* nghttp2 refused pseudo-headers and connection fields already; past the limits of a
     * head, or not for passing on: dropped */
    if (st->hsize > st->s->lim->max_header_list_size || !pt_h1_trailer_allowed(n)
        || r->req_ntrailers == pt_wconf->limits.max_headers)
        return 0;
    if (r->req_ntrailers == st->tcap) {
        uint32_t ncap = st->tcap ? st->tcap * 2 : 4;
        pt_header *nt = pt_palloc(r->pool, ncap * sizeof(*nt));
        if (nt == NULL)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (r->req_ntrailers)
            memcpy(nt, r->req_trailers, r->req_ntrailers * sizeof(*nt));
        r->req_trailers = nt;
        st->tcap = ncap;
    }
    pt_header *h = &r->req_trailers[r->req_ntrailers];
    h->name = pool_str(r->pool, name, nlen);
    h->value = pool_str(r->pool, value, vlen);
    if (h->name.data == NULL || h->value.data == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    r->req_ntrailers++;
    return 0;
}

/* Cookie fields come one crumb each (RFC 9113 8.2.3); HTTP/1.1 wants one field, "; "
 * between them. The first keeps its place. */
static int join_cookies(h2_stream *st)
{
    size_t len = st->cookie_len + 2 * (st->ncookies - 1);
    char *v = pt_palloc(st->r->pool, len), *p = v;
    if (v == NULL)
        return PT_ERROR;
    uint32_t j = 0, first = UINT32_MAX;
    for (uint32_t i = 0; i < st->nhdrs; i++) {
        pt_header *h = &st->hdrs[i];
        if (pt_str_eq(h->name, PT_STR("cookie"))) {
            if (p != v) {
                *p++ = ';';
                *p++ = ' ';
            }
            memcpy(p, h->value.data, h->value.len);
            p += h->value.len;
            if (first != UINT32_MAX)
                continue;
            first = j;
        }
        st->hdrs[j++] = *h;
    }
    st->nhdrs = j;
    st->hdrs[first].value = (pt_str) { (size_t) (p - v), v };
    return PT_OK;
}

/* underscores_in_headers, as for HTTP/1: drop, pass or reject such names. */
static const char *underscores(h2_stream *st)
{
    int policy = pt_wconf->underscores_in_headers;
    uint32_t j = 0, dropped = 0;
    for (uint32_t i = 0; i < st->nhdrs; i++) {
        pt_header *h = &st->hdrs[i];
        if (memchr(h->name.data, '_', h->name.len)) {
            if (policy == PT_H1_US_REJECT)
                return "header field name with '_'";
            if (policy == PT_H1_US_DROP || pt_h1_managed_twin(h->name)) {
                dropped++;
                continue;
            }
            st->r->head.underscore = true;
        }
        st->hdrs[j++] = *h;
    }
    st->nhdrs = j;
    if (dropped)
        pt_log(PT_LOG_INFO, "dropped %u request header field%s with '_' in the name from %s",
               dropped, dropped == 1 ? "" : "s", st->s->c->peer_ip);
    return NULL;
}

void h2_stream_start(h2_stream *st)
{
    pt_request *r = st->r;
    pt_conn *c = st->s->c;
    pt_req_head *h = &r->head;

    st->started = true;
    pt_timer_del(&pt_loop_cur->timers, &st->timer);
    if (pt_stats_mine)
        pt_stats_mine->requests++;
    h->version = 20;
    h->method_name = st->method;
    h->method = pt_h1_method_id(st->method);
    h->scheme = (pt_str) { strlen(c->x.ops->scheme), c->x.ops->scheme };
    h->target = st->path;
    h->keepalive = true;
    r->keepalive = true;            /* the connection's fate is the session's */
    r->no_body = h->method == PT_M_HEAD;
    if (st->refuse) {
        pt_http_refuse(r, 431, st->refuse);
        return;
    }
    const char *q = memchr(st->path.data, '?', st->path.len);
    if (q) {
        h->path = (pt_str) { (size_t) (q - st->path.data), st->path.data };
        h->query = (pt_str) { st->path.len - h->path.len - 1, q + 1 };
    } else {
        h->path = st->path;
    }
    if (st->ncookies > 1 && join_cookies(st) != PT_OK) {
        pt_http_refuse(r, 500, "out of memory");
        return;
    }
    const char *why = NULL;
    for (uint32_t i = 0; i < st->nhdrs; i++) {
        if (memchr(st->hdrs[i].name.data, '_', st->hdrs[i].name.len)) {
            why = underscores(st);
            break;
        }
    }
    if (why) {
        pt_http_refuse(r, 400, why);
        return;
    }
    h->headers = st->hdrs;
    h->nheaders = st->nhdrs;
    h->cap = st->hcap;
    const pt_header *host = pt_h1_find(st->hdrs, st->nhdrs, PT_STR("host"));
    h->authority = st->authority.len ? st->authority : host ? host->value : PT_STR_NULL;
    if (h->authority.len == 0 && h->method != PT_M_CONNECT) {
        pt_http_refuse(r, 400, "HTTP/2 request without :authority or Host");
        return;
    }
    if (host == NULL && pt_http_req_header_add(r, PT_STR("host"), h->authority) != PT_OK) {
        pt_http_refuse(r, 500, "out of memory");
        return;
    }
    const pt_header *cl = pt_h1_find(h->headers, h->nheaders, PT_STR("content-length"));
    if (cl) {
        uint64_t v = 0;
        for (size_t i = 0; i < cl->value.len; i++)
            v = v * 10 + (uint64_t) (cl->value.data[i] - '0');   /* digits: nghttp2 checked */
        h->content_length = (int64_t) v;
    }
    const pt_header *ex = pt_h1_find(h->headers, h->nheaders, PT_STR("expect"));
    h->expect_continue = ex && pt_str_caseeq(ex->value, PT_STR("100-continue"));
    if (st->body_eof && st->body_len == 0) {
        r->body_state = PT_RB_NONE;
    } else {
        r->body_state = PT_RB_PENDING;
        h->chunked = h->content_length < 0;     /* a body of unknown length */
    }
    pt_http_process(r);
}

/* ------------------------------------------------------------------ the request body */

int h2_stream_data(h2_stream *st, const uint8_t *data, size_t len)
{
    if (st->body_len + len > st->body_cap) {
        if (st->body == NULL) {
            /* the window before our SETTINGS is acknowledged is the protocol's 65535 */
            size_t cap = st->s->lim->initial_window_size;
            if (cap < NGHTTP2_INITIAL_WINDOW_SIZE)
                cap = NGHTTP2_INITIAL_WINDOW_SIZE;
            st->body = pt_palloc(st->r->pool, cap);
            if (st->body == NULL)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            st->body_cap = cap;
        }
        if (st->body_len + len > st->body_cap)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* past the window: cannot be */
    }
    memcpy(st->body + st->body_len, data, len);
    st->body_len += len;
    st->body_new = true;
    return 0;
}

void h2_stream_body_end(h2_stream *st)
{
    st->body_eof = true;
    st->body_new = true;
}

void h2_stream_on_body(h2_stream *st)
{
    pt_request *r = st->r;
    if (!st->body_new || !st->started || st->closed)
        return;
    st->body_new = false;
    if (r->on_body && (r->body_state == PT_RB_PENDING || r->body_state == PT_RB_READING))
        r->on_body(r);
}

void h2_stream_drop_body(h2_stream *st)
{
    h2_session *s = st->s;
    st->discard = true;
    if (st->body_len && !st->closed)
        nghttp2_session_consume(s->ng, st->id, st->body_len);
    st->body_len = st->body_given = 0;
}

int h2_read_body(pt_request *r, const char **data, size_t *len)
{
    h2_stream *st = r->stream;
    h2_session *s = st->s;
    const uint64_t max = r->body_max;       /* max_body_size, or a route's lower one */

    switch (r->body_state) {
    case PT_RB_NONE:
    case PT_RB_DONE:
    case PT_RB_TUNNEL:
        return PT_DONE;
    case PT_RB_ERROR:
        return PT_ERROR;
    case PT_RB_PENDING:
        if (r->head.expect_continue && !r->continue_sent && !r->header_sent
            && st->body_len == 0 && !st->body_eof && !st->closed) {
            static const nghttp2_nv cont[] = {
                { (uint8_t *) ":status", (uint8_t *) "100", 7, 3, NGHTTP2_NV_FLAG_NONE } };
            r->continue_sent = true;
            nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, st->id, NULL, cont, 1, NULL);
            h2_kick(s);
        }
        r->body_state = PT_RB_READING;
        break;
    case PT_RB_READING:
        break;
    }
    if (st->body_given) {
        /* the reader is done with the last slice: its bytes open the window again */
        size_t g = st->body_given;
        memmove(st->body, st->body + g, st->body_len - g);
        st->body_len -= g;
        st->body_given = 0;
        if (!st->closed) {
            nghttp2_session_consume(s->ng, st->id, g);
            h2_kick(s);
        }
    }
    if (st->body_len) {
        pt_http_body_wait_end(r);
        *data = st->body;
        *len = st->body_len;
        st->body_given = st->body_len;
        r->body_received += st->body_len;
        if (max && r->body_received > max)
            return pt_http_body_fail(r, 413, "request body exceeds max_body_size");
        return PT_OK;
    }
    if (st->body_eof) {
        r->body_state = PT_RB_DONE;
        return PT_DONE;
    }
    if (st->closed)
        return pt_http_body_fail(r, 400, "client reset the HTTP/2 stream before the end "
                                         "of the body");
    pt_http_body_wait_begin(r);
    return PT_AGAIN;
}

bool h2_input_pending(const pt_request *r)
{
    const h2_stream *st = r->stream;
    return st->body_len > st->body_given || st->body_eof;
}

void h2_body_timer(pt_request *r, uint32_t ms)
{
    h2_stream *st = r->stream;
    if (ms)
        pt_loop_timer(pt_loop_cur, &st->timer, ms);
    else
        pt_timer_del(&pt_loop_cur->timers, &st->timer);
}

static void stream_timeout(pt_timer *t)
{
    h2_stream *st = t->data;
    pt_request *r = st->r;
    h2_session *s = st->s;
    if (!st->started && !st->closed && !s->closing) {
        pt_log(PT_LOG_INFO, "closed HTTP/2 connection from %s: no complete header block "
               "within client_header_timeout_ms", s->c->peer_ip);
        s->closing = true;
        s->close_why = "header block timeout";
        nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
        h2_schedule(s);
        return;
    }
    if (st->closed || r->finalized)
        return;
    if (st->want_write || st->out_len) {
        pt_http_abort(r, "client took no response bytes within send_timeout_ms");
    } else if (r->body_state == PT_RB_READING || r->body_state == PT_RB_PENDING) {
        pt_http_refuse(r, 408, pt_http_body_too_slow(r)
                                   ? "client sent the request body below client_body_min_rate"
                                   : "client sent the request body too slowly");
    }
    h2_schedule(st->s);
}

/* ------------------------------------------------------------------ the response */

static bool hop_by_hop(pt_str n)
{
    return pt_str_caseeq(n, PT_STR("connection")) || pt_str_caseeq(n, PT_STR("keep-alive"))
           || pt_str_caseeq(n, PT_STR("proxy-connection"))
           || pt_str_caseeq(n, PT_STR("transfer-encoding"))
           || pt_str_caseeq(n, PT_STR("upgrade")) || pt_str_caseeq(n, PT_STR("te"))
           || pt_str_caseeq(n, PT_STR("content-length"));   /* ours, from resp_length */
}

static nghttp2_nv nv(pt_str n, pt_str v)
{
    return (nghttp2_nv) { (uint8_t *) n.data, (uint8_t *) v.data, n.len, v.len,
                          NGHTTP2_NV_FLAG_NONE };
}

/* Field names go in lower case (RFC 9113 8.2.1): a copy when the module wrote capitals. */
static pt_str lower_name(pt_pool *p, pt_str n)
{
    size_t i;
    for (i = 0; i < n.len; i++)
        if (n.data[i] >= 'A' && n.data[i] <= 'Z')
            break;
    if (i == n.len)
        return n;
    char *d = pt_palloc(p, n.len);
    if (d == NULL)
        return PT_STR_NULL;
    for (i = 0; i < n.len; i++)
        d[i] = (char) pt_tolower(n.data[i]);
    return (pt_str) { n.len, d };
}

int h2_send_head(pt_request *r)
{
    h2_stream *st = r->stream;
    h2_session *s = st->s;
    unsigned status = r->status;

    if (st->closed)
        return PT_ERROR;
    if (status < 200 || status == 204 || status == 304)
        r->no_body = true;
    nghttp2_nv *nva = pt_palloc(r->pool, (r->resp_nheaders + 4) * sizeof(*nva));
    char *num = pt_palloc(r->pool, 28);
    if (nva == NULL || num == NULL)
        return PT_ERROR;
    size_t n = 0;
    num[0] = (char) ('0' + status / 100 % 10);
    num[1] = (char) ('0' + status / 10 % 10);
    num[2] = (char) ('0' + status % 10);
    nva[n++] = nv(PT_STR(":status"), (pt_str) { 3, num });
    pt_str server = pt_http_server();
    if (server.len)
        nva[n++] = nv(PT_STR("server"), server);
    if (pt_http_resp_header(r, PT_STR("Date")) == NULL)
        nva[n++] = nv(PT_STR("date"), pt_http_date());
    if (r->resp_length >= 0 && status >= 200 && status != 204 && status != 304) {
        size_t l = pt_fmt_u64(num + 4, (uint64_t) r->resp_length);
        nva[n++] = nv(PT_STR("content-length"), (pt_str) { l, num + 4 });
    }
    for (uint32_t i = 0; i < r->resp_nheaders; i++) {
        const pt_header *h = &r->resp_headers[i];
        if (h->name.len == 0 || hop_by_hop(h->name))
            continue;
        pt_str ln = lower_name(r->pool, h->name);
        if (ln.data == NULL)
            return PT_ERROR;
        nva[n++] = nv(ln, h->value);
    }
    /* a body-less answer ends the stream with its HEADERS frame */
    st->head_only = r->no_body || r->resp_length == 0;
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = h2_stream_read_data };
    if (nghttp2_submit_response(s->ng, st->id, nva, n, st->head_only ? NULL : &prd) != 0)
        return PT_ERROR;
    /* sent with the first body bytes, or from the step if none come at once */
    h2_schedule(s);
    return PT_OK;
}

/* The end of the body: with trailer fields, a HEADERS frame ends the stream instead of
 * the last DATA frame (RFC 9113 8.1). */
static void body_end(h2_stream *st, nghttp2_session *ng, int32_t id, uint32_t *flags)
{
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    pt_request *r = st->r;
    if (r == NULL || r->resp_ntrailers == 0)
        return;
    nghttp2_nv *nva = pt_palloc(r->pool, r->resp_ntrailers * sizeof(nghttp2_nv));
    if (nva == NULL)
        return;                         /* no memory: the body ends without them */
    size_t n = 0;
    for (uint32_t i = 0; i < r->resp_ntrailers; i++) {
        pt_str ln = lower_name(r->pool, r->resp_trailers[i].name);
        if (ln.data == NULL)
            return;
        nva[n++] = nv(ln, r->resp_trailers[i].value);
    }
    if (nghttp2_submit_trailer(ng, id, nva, n) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
}

ssize_t h2_stream_read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user)
{
    h2_stream *st = src->ptr;
    if (st->out_len == 0) {
        if (st->out_last) {
            body_end(st, ng, id, flags);
            return 0;
        }
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = st->out_len < len ? st->out_len : len;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == st->out_len && st->out_last)
        body_end(st, ng, id, flags);
    return (ssize_t) n;
}

int h2_stream_send_data(h2_stream *st, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length)
{
    h2_session *s = st->s;
    pt_conn *c = s->c;
    char *p = s->outbuf + s->outlen;
    memcpy(p, framehd, 9);
    if (pt_out_add(c, p, 9) != PT_OK)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->outlen += 9;
    size_t left = length;
    while (left) {
        struct iovec *v = &st->out[st->outfirst];
        size_t n = v->iov_len < left ? v->iov_len : left;
        if (pt_out_add(c, v->iov_base, n) != PT_OK)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        v->iov_base = (char *) v->iov_base + n;
        v->iov_len -= n;
        if (v->iov_len == 0)
            st->outfirst++;
        left -= n;
        st->out_len -= n;
    }
    if (st->outfirst == st->nout)
        st->outfirst = st->nout = 0;
    st->bytes += length;            /* payload: the log counts body bytes */
    if (length)
        st->queued_at = s->drains + 1;  /* 0: never */
    return 0;
}

int h2_send_body(pt_request *r, const char *data, size_t len, bool last)
{
    h2_stream *st = r->stream;
    h2_session *s = st->s;

    if (r->resp_body_done)
        return len ? PT_ERROR : PT_OK;
    if (st->closed)
        return PT_ERROR;
    if (st->head_only) {
        if (last)
            r->resp_body_done = true;
        return PT_OK;
    }
    if (len) {
        if (r->resp_length >= 0 && r->resp_body_queued + len > (uint64_t) r->resp_length) {
            pt_log(PT_LOG_ERR, "response body longer than its Content-Length");
            return PT_ERROR;
        }
        if (st->nout == st->outcap) {
            unsigned ncap = st->outcap ? st->outcap * 2 : 4;
            struct iovec *no = pt_palloc(r->pool, ncap * sizeof(*no));
            if (no == NULL)
                return PT_ERROR;
            if (st->nout)
                memcpy(no, st->out, st->nout * sizeof(*no));
            st->out = no;
            st->outcap = ncap;
        }
        st->out[st->nout++] = (struct iovec) { (void *) data, len };
        st->out_len += len;
        r->resp_body_queued += len;
    }
    if (last) {
        st->out_last = true;
        r->resp_body_done = true;
    }
    if (st->deferred && (len || last)) {
        st->deferred = false;
        nghttp2_session_resume_data(s->ng, st->id);
    }
    h2_kick(s);
    if (st->out_len == 0 && s->c->out.pending == 0)
        return PT_OK;
    if (!st->want_write) {
        /* armed once per stall: the client must take bytes within send_timeout_ms */
        st->want_write = true;
        pt_loop_timer(pt_loop_cur, &st->timer, pt_wconf->limits.send_timeout_ms);
    }
    return PT_AGAIN;
}

bool h2_output_pending(const pt_request *r)
{
    const h2_stream *st = r->stream;
    return st->want_write || st->out_len != 0;
}

void h2_tunnel(pt_request *r)
{
    /* no Upgrade over h2 (the session never marks a request as one): nothing to do */
}

void h2_finish(pt_request *r)
{
    h2_stream *st = r->stream;
    h2_session *s = st->s;
    if (!r->resp_body_done) {
        st->out_last = true;
        r->resp_body_done = true;
        if (st->deferred) {
            st->deferred = false;
            nghttp2_session_resume_data(s->ng, st->id);
        }
    }
    h2_stream_drop_body(st);
    h2_kick(s);
}

void h2_abort(pt_request *r)
{
    h2_stream *st = r->stream;
    h2_session *s = st->s;
    /* The stream's producer has let go of its memory (on_abort ran): payload of it still
     * in the connection's queue must not be written. Dropping it would break the
     * framing, so the connection goes (what an HTTP/1 abort does anyway). A stream the
     * client reset is released only after the queue drained, and does not get here. */
    if (s->c->out.pending && st->queued_at == s->drains + 1 && !s->failed) {
        s->failed = true;
        s->close_why = "a stream was aborted with response bytes still queued";
        h2_schedule(s);
    }
    st->nout = st->outfirst = 0;    /* nothing more of the producer's is framed */
    st->out_len = 0;
    h2_stream_drop_body(st);
    if (!st->closed)
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    h2_kick(s);
}

#endif /* PT_HAVE_NGHTTP2 */
