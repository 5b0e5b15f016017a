/* The request body as the core reads it: Content-Length or chunked (decoded here, so
 * modules only ever see data), limits, 100-continue, and dropping unread bodies.
 * Body bytes live in the connection buffer after the head ([body_base, end)); the head
 * before them stays put because the request's strings point into it. */
#include <stdio.h>
#include <sys/socket.h>

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "http_core.h"

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

void pt_http_tunnel(pt_request *r)
{
    r->body_state = PT_RB_TUNNEL;
    r->no_body = false;
    r->resp_length = -1;
    r->resp_chunked = false;
    r->keepalive = false;
}

void pt_http_tunnel_shutdown(pt_request *r)
{
    pt_conn *c = r->conn;
    if (c->out.pending) {
        r->shut_wr = true;              /* done by conn_event once drained */
        return;
    }
    shutdown(c->io.fd, SHUT_WR);
}

bool pt_http_body_pending(pt_request *r)
{
    return r->body_state == PT_RB_PENDING || r->body_state == PT_RB_READING
           || r->body_state == PT_RB_ERROR;
}

/* Makes room after the head for more body bytes. */
static int body_room(pt_conn *c)
{
    if (c->in.pos == c->in.last)
        c->in.pos = c->in.last = c->body_base;
    if (pt_buf_free(&c->in) > 0)
        return PT_OK;
    if (c->in.pos > c->body_base) {
        size_t n = pt_buf_len(&c->in);
        memmove(c->body_base, c->in.pos, n);
        c->in.pos = c->body_base;
        c->in.last = c->body_base + n;
        return PT_OK;
    }
    /* the head filled the buffer: grow so the body has room */
    size_t want = (size_t) (c->body_base - c->in.start) + PT_BODY_MIN_ROOM;
    if (want < pt_buf_size(&c->in) + PT_BODY_MIN_ROOM)
        want = pt_buf_size(&c->in) + PT_BODY_MIN_ROOM;
    return pt_conn_grow_in(c, want);
}

static int body_fail(pt_request *r, unsigned status, const char *why)
{
    r->body_state = PT_RB_ERROR;
    r->status = status;
    r->error_reason = why;
    pt_log(PT_LOG_INFO, "refused request from %s: %s (%s)", r->conn->peer_ip,
           pt_http_status_line(status), why);
    return PT_ERROR;
}

/* Raw bytes from a tunnelled (upgraded) connection. */
static int tunnel_read(pt_request *r, const char **data, size_t *len)
{
    pt_conn *c = r->conn;
    for (;;) {
        if (c->in.pos < c->in.last) {
            *data = c->in.pos;
            *len = pt_buf_len(&c->in);
            c->in.pos = c->in.last;
            return PT_OK;
        }
        if (c->peer_closed && !c->readable)
            return PT_DONE;
        if (!c->readable)
            return PT_AGAIN;
        if (body_room(c) != PT_OK)
            return PT_ERROR;
        ssize_t n = pt_conn_read(c);
        if (n > 0)
            continue;
        if (n == -2)
            return PT_AGAIN;
        if (n == 0)
            return PT_DONE;
        return PT_ERROR;
    }
}

/* The client's body must average client_body_min_rate bytes/s over the time portico
 * spent waiting for it, after a first client_body_timeout_ms: a trickle is cut with 408.
 * Only waiting counts (from a PT_AGAIN to the next bytes), so a body held back by a slow
 * origin (back-pressure) is not blamed on the client. */
static void body_wait_begin(pt_request *r)
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
    pt_conn_set_timer(r->conn, ms);
}

static void body_wait_end(pt_request *r)
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

/* The body as it comes off the connection. */
static int read_wire(pt_request *r, const char **data, size_t *len)
{
    pt_conn *c = r->conn;
    const uint64_t max = pt_wconf->limits.max_body_size;

    switch (r->body_state) {
    case PT_RB_NONE:
    case PT_RB_DONE:
        return PT_DONE;
    case PT_RB_ERROR:
        return PT_ERROR;
    case PT_RB_PENDING:
        /* a client that sent body bytes with its head does not wait for a 100: none is
         * needed (RFC 9110 §10.1.1 lets a server omit it) */
        if (r->info.expect_continue && !r->continue_sent && !r->header_sent
            && c->in.pos == c->in.last) {
            r->continue_sent = true;
            if (pt_out_add(c, continue_line, sizeof(continue_line) - 1) != PT_OK
                || pt_conn_flush(c) == PT_ERROR)
                return body_fail(r, 400, "client connection failed");
        }
        r->body_state = PT_RB_READING;
        break;
    case PT_RB_READING:
        break;
    case PT_RB_TUNNEL:
        return tunnel_read(r, data, len);
    }

    for (;;) {
        if (c->in.pos < c->in.last) {
            body_wait_end(r);
            if (!r->info.chunked) {
                size_t n = pt_buf_len(&c->in);
                if (n > r->body_remaining)
                    n = (size_t) r->body_remaining;   /* the rest is the next request */
                *data = c->in.pos;
                *len = n;
                c->in.pos += n;
                r->body_remaining -= n;
                r->body_received += n;
                if (r->body_remaining == 0)
                    r->body_state = PT_RB_DONE;
                return PT_OK;
            }
            const char *p = c->in.pos;
            int rc = pt_h1_chunked_decode(&r->chunked, &p, c->in.last, data, len);
            c->in.pos = (char *) p;
            if (rc == PT_OK) {
                r->body_received += *len;
                if (max && r->body_received > max)
                    return body_fail(r, 413, "chunked body exceeds max_body_size");
                return PT_OK;
            }
            if (rc == PT_DONE) {
                r->body_state = PT_RB_DONE;
                return PT_DONE;
            }
            if (rc == PT_ERROR)
                return body_fail(r, 400, r->chunked.error ? r->chunked.error
                                                          : "invalid chunked body");
            /* PT_AGAIN: all framing bytes consumed */
        }
        if (r->body_state == PT_RB_DONE)
            return PT_DONE;
        if (!c->readable)
            break;
        if (body_room(c) != PT_OK)
            return body_fail(r, 500, "out of memory for the request body");
        ssize_t n = pt_conn_read(c);
        if (n > 0)
            continue;
        if (n == -2)
            break;
        return body_fail(r, 400, "client closed the connection before sending the whole body");
    }
    body_wait_begin(r);
    return PT_AGAIN;
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
    return read_wire(r, data, len);
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
    if (r->body_buf_len == 0 && r->body_buf_cap == 0 && !r->info.chunked
        && r->body_state == PT_RB_DONE) {
        /* the whole body in one slice of the connection buffer: keep it where it is (it
         * stays put until the request ends) */
        r->body_buf = (char *) d;
        r->body_buf_len = n;
        return PT_OK;
    }
    if (r->body_buf_len + n > r->body_buf_cap) {
        size_t cap = r->info.chunked ? pt_max(r->body_buf_cap * 2, (size_t) 16384)
                                     : (size_t) r->info.content_length;
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

/* Reads on until the body is in memory or over the limit. PT_OK: whole (or too big: then
 * r->body_buffered stays false and read_body goes on with the wire); PT_AGAIN; PT_ERROR. */
static int buffer_step(pt_request *r)
{
    for (;;) {
        const char *d;
        size_t n;
        int rc = read_wire(r, &d, &n);
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
            return body_fail(r, 500, "out of memory for the request body");
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
    pt_conn_set_timer(r->conn, 0);
    r->body_buffered_fn(r, rc);
}

int pt_http_buffer_body(pt_request *r, size_t max, void (*done)(pt_request *r, int rc))
{
    if (r->body_state == PT_RB_NONE || r->body_state == PT_RB_DONE) {
        r->body_buffered = true;
        return PT_OK;
    }
    if (r->body_state != PT_RB_PENDING || max == 0
        || (!r->info.chunked && (uint64_t) r->info.content_length > max))
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
    pt_conn_set_timer(r->conn, 0);
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
