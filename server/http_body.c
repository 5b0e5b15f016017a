/* The request body as the core reads it: Content-Length or chunked (decoded here, so
 * modules only ever see data), limits, 100-continue, and dropping unread bodies.
 * Body bytes live in the connection buffer after the head ([body_base, end)); the head
 * before them stays put because the request's strings point into it. */
#include <stdio.h>
#include <sys/socket.h>

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
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

int pt_http_read_body(pt_request *r, const char **data, size_t *len)
{
    pt_conn *c = r->conn;
    const uint64_t max = pt_wconf->limits.max_body_size;

    if (r->body_unread_len) {
        *data = r->body_unread;
        *len = r->body_unread_len;
        r->body_unread_len = 0;
        return PT_OK;
    }
    switch (r->body_state) {
    case PT_RB_NONE:
    case PT_RB_DONE:
        return PT_DONE;
    case PT_RB_ERROR:
        return PT_ERROR;
    case PT_RB_PENDING:
        if (r->info.expect_continue && !r->continue_sent && !r->header_sent) {
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
    pt_conn_set_timer(c, pt_wconf->limits.client_body_timeout_ms);
    return PT_AGAIN;
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
