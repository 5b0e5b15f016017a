/* The request body as modules see it, whatever the session: decoded data from the
 * session (pt_session_ops.read_body), a slice given back, or the whole body held in
 * memory (request buffering); limits on how slowly it may come; tunnels after a 101. */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "http_core.h"

bool pt_http_body_pending(pt_request *r)
{
    return r->body_state == PT_RB_PENDING || r->body_state == PT_RB_READING
           || r->body_state == PT_RB_ERROR;
}

int pt_http_body_fail(pt_request *r, unsigned status, const char *why)
{
    r->body_state = PT_RB_ERROR;
    r->status = status;
    r->error_reason = why;
    pt_log(PT_LOG_INFO, "refused request from %s: %s (%s)", r->conn->peer_ip,
           pt_http_status_line(status), why);
    return PT_ERROR;
}

bool pt_http_input_pending(const pt_request *r)
{
    return r->sess->input_pending(r);
}

void pt_http_tunnel(pt_request *r)
{
    r->sess->tunnel(r);
}

void pt_http_tunnel_shutdown(pt_request *r)
{
    r->sess->tunnel_shutdown(r);
}

/* The client's body must average client_body_min_rate bytes/s over the time portico
 * spent waiting for it, after a first client_body_timeout_ms: a trickle is cut with 408.
 * Only waiting counts (from a PT_AGAIN to the next bytes), so a body held back by a slow
 * origin (back-pressure) is not blamed on the client. */
void pt_http_body_wait_begin(pt_request *r)
{
    const pt_limits *lim = &pt_wconf->limits;
    uint64_t now = pt_loop_cur->now;
    uint32_t ms = lim->client_body_timeout_ms;

    if (r->body_wait_since == 0)
        r->body_wait_since = now ? now : 1;
    if (lim->client_body_min_rate) {
        uint64_t allowed = lim->client_body_timeout_ms
                           + r->body_received * 1000 / lim->client_body_min_rate;
        uint64_t waited = r->body_wait_ms + (now - r->body_wait_since);
        uint64_t left = allowed > waited ? allowed - waited : 1;
        if (left < ms)
            ms = (uint32_t) left;
    }
    r->sess->body_timer(r, ms);
}

void pt_http_body_wait_end(pt_request *r)
{
    if (r->body_wait_since) {
        r->body_wait_ms += pt_loop_cur->now - r->body_wait_since;
        r->body_wait_since = 0;
    }
}

bool pt_http_body_too_slow(const pt_request *r)
{
    const pt_limits *lim = &pt_wconf->limits;
    uint64_t waited = r->body_wait_ms
                      + (r->body_wait_since ? pt_loop_cur->now - r->body_wait_since : 0);
    return lim->client_body_min_rate
           && waited >= lim->client_body_timeout_ms
                        + r->body_received * 1000 / lim->client_body_min_rate;
}

int pt_http_read_body(pt_request *r, const char **data, size_t *len)
{
    /* a body held in memory comes first, then a slice given back, then the wire */
    if (r->body_buf_off < r->body_buf_len && !r->body_buffering) {
        *data = r->body_buf + r->body_buf_off;
        *len = r->body_buf_len - r->body_buf_off;
        r->body_buf_off = r->body_buf_len;
        return PT_OK;
    }
    if (r->body_unread_len) {
        *data = r->body_unread;
        *len = r->body_unread_len;
        r->body_unread_len = 0;
        return PT_OK;
    }
    return r->sess->read_body(r, data, len);
}

bool pt_http_body_rewind(pt_request *r)
{
    if (!r->body_buffered)
        return false;
    r->body_buf_off = 0;
    r->body_unread_len = 0;
    return true;
}

/* Appends a slice to the body held in memory, growing it within body_buf_max. */
static int buffer_append(pt_request *r, const char *d, size_t n)
{
    if (r->body_buf_len + n > r->body_buf_max)
        return PT_DECLINED;
    if (r->body_buf_len == 0 && r->body_buf_cap == 0 && !r->head.chunked
        && r->body_state == PT_RB_DONE) {
        /* the whole body in one slice of the connection buffer: keep it where it is (it
         * stays put until the request ends) */
        r->body_buf = (char *) d;
        r->body_buf_len = n;
        return PT_OK;
    }
    if (r->body_buf_len + n > r->body_buf_cap) {
        size_t cap = r->head.chunked ? pt_max(r->body_buf_cap * 2, (size_t) 16384)
                                     : (size_t) r->head.content_length;
        while (cap < r->body_buf_len + n)
            cap *= 2;
        cap = pt_min(cap, r->body_buf_max);
        char *nb = pt_palloc(r->pool, cap);
        if (nb == NULL)
            return PT_ERROR;
        if (r->body_buf_len)
            memcpy(nb, r->body_buf, r->body_buf_len);
        r->body_buf = nb;
        r->body_buf_cap = cap;
    }
    memcpy(r->body_buf + r->body_buf_len, d, n);
    r->body_buf_len += n;
    return PT_OK;
}

/* The next slice for buffering or peeking: one given back first (it lies before the
 * session's read position, which must not move until it is taken), then the session's. */
static int next_slice(pt_request *r, const char **d, size_t *n)
{
    if (r->body_unread_len) {
        *d = r->body_unread;
        *n = r->body_unread_len;
        r->body_unread_len = 0;
        return PT_OK;
    }
    return r->sess->read_body(r, d, n);
}

/* Reads on until the body is in memory or over the limit. PT_OK: whole (or too big: then
 * r->body_buffered stays false and read_body goes on with the wire); PT_AGAIN; PT_ERROR. */
static int buffer_step(pt_request *r)
{
    for (;;) {
        const char *d;
        size_t n;
        int rc = next_slice(r, &d, &n);
        if (rc == PT_AGAIN)
            return PT_AGAIN;
        if (rc == PT_ERROR)
            return PT_ERROR;
        if (rc == PT_DONE) {
            r->body_buffered = true;
            return PT_OK;
        }
        int a = buffer_append(r, d, n);
        if (a == PT_ERROR)
            return pt_http_body_fail(r, 500, "out of memory for the request body");
        if (a == PT_DECLINED) {
            pt_http_unread_body(r, d, n);   /* after what is held: read_body's order */
            return PT_OK;
        }
    }
}

static void buffer_on_body(pt_request *r)
{
    int rc = buffer_step(r);
    if (rc == PT_AGAIN)
        return;
    r->body_buffering = false;
    r->on_body = NULL;
    r->sess->body_timer(r, 0);
    r->body_buffered_fn(r, rc);
}

int pt_http_buffer_body(pt_request *r, size_t max, void (*done)(pt_request *r, int rc))
{
    /* a prefix may be held already (pt_http_peek_body): buffering goes on after it */
    bool held = r->body_buf_len > 0 || r->body_unread_len > 0;
    if (r->body_buffered)
        return PT_OK;
    if (!held && (r->body_state == PT_RB_NONE || r->body_state == PT_RB_DONE)) {
        r->body_buffered = true;
        return PT_OK;
    }
    if (max == 0 || (!r->head.chunked && (uint64_t) r->head.content_length > max)
        || (!held && r->body_state != PT_RB_PENDING) || r->body_buf_off > 0
        || r->body_buf_len > max)
        return PT_DECLINED;
    r->body_buf_max = max;
    r->body_buffering = true;
    int rc = buffer_step(r);
    if (rc == PT_AGAIN) {
        r->body_buffered_fn = done;
        r->on_body = buffer_on_body;
        return PT_AGAIN;
    }
    r->body_buffering = false;
    r->sess->body_timer(r, 0);
    return rc;
}

/* Peeking: the first body_peek bytes (or the whole body when shorter) held in body_buf,
 * not consumed: read_body hands them out first. Only what is still missing is read, and
 * a slice that goes past the prefix is split: its rest is given back, so nothing after
 * the prefix is copied or waited for. */
static int peek_step(pt_request *r)
{
    size_t want = r->body_buf_max;
    while (r->body_buf_len < want) {
        const char *d;
        size_t n;
        int rc = next_slice(r, &d, &n);
        if (rc == PT_AGAIN || rc == PT_ERROR)
            return rc;
        if (rc == PT_DONE)
            break;
        if (r->body_buf_len == 0 && r->body_state == PT_RB_DONE && !r->head.chunked) {
            /* the whole body in one slice of the connection buffer: held where it is */
            r->body_buf = (char *) d;
            r->body_buf_len = n;
            r->body_buf_cap = 0;
            break;
        }
        if (r->body_buf_cap == 0) {
            r->body_buf = pt_palloc(r->pool, want);
            if (r->body_buf == NULL)
                return pt_http_body_fail(r, 500, "out of memory for the request body");
            r->body_buf_cap = want;
        }
        size_t take = pt_min(n, want - r->body_buf_len);
        memcpy(r->body_buf + r->body_buf_len, d, take);
        r->body_buf_len += take;
        if (take < n)
            pt_http_unread_body(r, d + take, n - take);
    }
    if (r->body_state == PT_RB_DONE && r->body_unread_len == 0)
        r->body_buffered = true;        /* the prefix is the whole body */
    return PT_OK;
}

static void peek_on_body(pt_request *r)
{
    int rc = peek_step(r);
    if (rc == PT_AGAIN)
        return;
    r->body_buffering = false;
    r->on_body = NULL;
    r->sess->body_timer(r, 0);
    r->body_buffered_fn(r, rc);
}

int pt_http_peek_body(pt_request *r, size_t size, void (*done)(pt_request *r, int rc))
{
    if (r->body_buffered || size == 0 || r->body_state == PT_RB_NONE)
        return PT_OK;
    if (r->body_buf_off > 0 || (r->body_buf_len == 0 && r->body_state == PT_RB_DONE))
        return PT_DECLINED;             /* someone read it already */
    if (r->body_buf_len >= size)
        return PT_OK;                   /* held by an earlier peek */
    if (r->body_buf_len && r->body_buf_cap < size)
        return PT_DECLINED;             /* a smaller prefix is held: not grown */
    r->body_buf_max = size;
    r->body_buffering = true;
    int rc = peek_step(r);
    if (rc == PT_AGAIN) {
        r->body_buffered_fn = done;
        r->on_body = peek_on_body;
        return PT_AGAIN;
    }
    r->body_buffering = false;
    r->sess->body_timer(r, 0);
    return rc;
}

void pt_http_unread_body(pt_request *r, const char *data, size_t n)
{
    /* The slice lies before in.pos; nothing moves bytes there until it is read again,
     * because read_body returns it before touching the buffer. */
    r->body_unread = data;
    r->body_unread_len = n;
}

int pt_http_discard_body(pt_request *r)
{
    const char *d;
    size_t n;
    for (;;) {
        int rc = pt_http_read_body(r, &d, &n);
        if (rc == PT_OK)
            continue;
        if (rc == PT_DONE)
            return PT_OK;
        return rc;
    }
}

void pt_http_req_trailers(pt_request *r, const char *buf, size_t len)
{
    pt_header *hs;
    uint32_t n = pt_h1_trailer_fields(r->pool, buf, len, &hs), w = 0;
    for (uint32_t i = 0; i < n; i++)
        if (pt_h1_trailer_allowed(hs[i].name))
            hs[w++] = hs[i];
    r->req_trailers = hs;
    r->req_ntrailers = w;
}
