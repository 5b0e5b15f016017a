/* The HTTP/1 session, message side: request bodies off the wire (Content-Length or
 * chunked, decoded here so modules only ever see data; 100-continue), the response head
 * on the wire, response framing (Content-Length, chunked, or close-delimited for HTTP/1.0
 * clients), zero-copy relay, and tunnels after a 101.
 * Body bytes live in the connection buffer after the head ([body_base, end)); the head
 * before them stays put because the request's strings point into it. */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/str.h"
#include "h1_session.h"

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---- request bodies ---- */

/* Makes room after the head for more body bytes. */
static int body_room(pt_request *r)
{
    pt_conn *c = r->conn;
    h1_stream *st = r->stream;
    if (c->in.pos == c->in.last)
        c->in.pos = c->in.last = st->body_base;
    if (pt_buf_free(&c->in) > 0)
        return PT_OK;
    if (c->in.pos > st->body_base) {
        size_t n = pt_buf_len(&c->in);
        memmove(st->body_base, c->in.pos, n);
        c->in.pos = st->body_base;
        c->in.last = st->body_base + n;
        return PT_OK;
    }
    /* the head filled the buffer: grow so the body has room */
    size_t want = (size_t) (st->body_base - c->in.start) + PT_BODY_MIN_ROOM;
    if (want < pt_buf_size(&c->in) + PT_BODY_MIN_ROOM)
        want = pt_buf_size(&c->in) + PT_BODY_MIN_ROOM;
    return pt_h1_grow_in(h1_of(c), want);
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
        if (c->x.eof && !c->x.readable)
            return PT_DONE;
        if (!c->x.readable)
            return PT_AGAIN;
        if (body_room(r) != PT_OK)
            return PT_ERROR;
        ssize_t n = pt_conn_read(c);
        if (n > 0)
            continue;
        if (n == PT_AGAIN)
            return PT_AGAIN;
        if (n == 0)
            return PT_DONE;
        return PT_ERROR;
    }
}

int pt_h1_read_body(pt_request *r, const char **data, size_t *len)
{
    pt_conn *c = r->conn;
    PT_ASSERT(r->sess == &pt_h1_session && h1_of(c)->req == r);
    h1_stream *st = r->stream;
    const uint64_t max = r->body_max;

    switch (r->body_state) {
    case PT_RB_NONE:
    case PT_RB_DONE:
        return PT_DONE;
    case PT_RB_ERROR:
        return PT_ERROR;
    case PT_RB_PENDING:
        /* a client that sent body bytes with its head does not wait for a 100: none is
         * needed (RFC 9110 §10.1.1 lets a server omit it) */
        if (r->head.expect_continue && !r->continue_sent && !r->header_sent
            && c->in.pos == c->in.last) {
            r->continue_sent = true;
            if (pt_out_add(c, continue_line, sizeof(continue_line) - 1) != PT_OK
                || pt_conn_flush(c) == PT_ERROR)
                return pt_http_body_fail(r, 400, "client connection failed");
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
            pt_http_body_wait_end(r);
            if (!r->head.chunked) {
                size_t n = pt_buf_len(&c->in);
                if (n > st->body_remaining)
                    n = (size_t) st->body_remaining;   /* the rest is the next request */
                *data = c->in.pos;
                *len = n;
                c->in.pos += n;
                st->body_remaining -= n;
                r->body_received += n;
                if (st->body_remaining == 0)
                    r->body_state = PT_RB_DONE;
                return PT_OK;
            }
            const char *p = c->in.pos;
            int rc = pt_h1_chunked_decode(&st->chunked, &p, c->in.last, data, len);
            c->in.pos = (char *) p;
            if (rc == PT_OK) {
                r->body_received += *len;
                if (max && r->body_received > max)
                    return pt_http_body_fail(r, 413, "chunked body exceeds max_body_size");
                return PT_OK;
            }
            if (rc == PT_DONE) {
                r->body_state = PT_RB_DONE;
                if (st->chunked.keep_len)
                    pt_http_req_trailers(r, st->chunked.keep, st->chunked.keep_len);
                return PT_DONE;
            }
            if (rc == PT_ERROR)
                return pt_http_body_fail(r, 400, st->chunked.error ? st->chunked.error
                                                                  : "invalid chunked body");
            /* PT_AGAIN: all framing bytes consumed */
        }
        if (r->body_state == PT_RB_DONE)
            return PT_DONE;
        if (!c->x.readable)
            break;
        if (body_room(r) != PT_OK)
            return pt_http_body_fail(r, 500, "out of memory for the request body");
        ssize_t n = pt_conn_read(c);
        if (n > 0)
            continue;
        if (n == PT_AGAIN)
            break;
        return pt_http_body_fail(r, 400,
                                 "client closed the connection before sending the whole body");
    }
    pt_http_body_wait_begin(r);
    return PT_AGAIN;
}

/* ---- the response head ---- */

#define APPEND(p, s, n) do { memcpy((p), (s), (n)); (p) += (n); } while (0)
#define APPEND_LIT(p, lit) APPEND(p, lit, sizeof(lit) - 1)

int pt_h1_send_head(pt_request *r)
{
    pt_conn *c = r->conn;
    PT_ASSERT(h1_of(c)->req == r && h1_of(c)->state == H1_ACTIVE && !r->header_sent);
    h1_stream *st = r->stream;
    unsigned status = r->status;
    bool bodyless_status = status < 200 || status == 204 || status == 304;

    if (bodyless_status)
        r->no_body = true;
    st->resp_chunked = false;
    if (status == 101) {
        /* the tunnel's framing is the upgraded protocol's */
    } else if (r->resp_length < 0 && !bodyless_status && r->head.method != PT_M_HEAD) {
        if (r->head.version >= 11)
            st->resp_chunked = true;
        else
            r->keepalive = false;       /* HTTP/1.0: the close marks the end */
    }
    if (pt_worker_draining() || c->draining)
        r->keepalive = false;
    /* answered before the client was told to send its body: the connection cannot be
     * reused (the client may send the body anyway, or wait), so say so */
    if (r->head.expect_continue && !r->continue_sent && pt_http_body_pending(r))
        r->keepalive = false;

    const char *reason = pt_h1_status_text(status);
    pt_str date = pt_http_date();
    pt_str server = pt_http_server();
    bool have_date = pt_http_resp_header(r, PT_STR("Date")) != NULL;
    char num[24];
    size_t numlen = 0;
    bool send_length = r->resp_length >= 0 && status != 101 && status >= 200 && status != 204;
    if (send_length)
        numlen = pt_fmt_u64(num, (uint64_t) r->resp_length);

    size_t n = sizeof("HTTP/1.1 000 \r\n") + strlen(reason)
               + sizeof("Server: \r\n") + server.len
               + sizeof("Date: \r\n") + date.len
               + sizeof("Content-Length: \r\n") + numlen
               + sizeof("Transfer-Encoding: chunked\r\n")
               + sizeof("Connection: keep-alive\r\n") + 2;
    for (uint32_t i = 0; i < r->resp_nheaders; i++)
        n += r->resp_headers[i].name.len + r->resp_headers[i].value.len + 4;
    char *buf = pt_palloc(r->pool, n);
    if (buf == NULL)
        return PT_ERROR;
    char *p = buf;

    APPEND_LIT(p, "HTTP/1.1 ");
    *p++ = (char) ('0' + status / 100 % 10);
    *p++ = (char) ('0' + status / 10 % 10);
    *p++ = (char) ('0' + status % 10);
    *p++ = ' ';
    APPEND(p, reason, strlen(reason));
    APPEND_LIT(p, "\r\n");
    if (server.len) {
        APPEND_LIT(p, "Server: ");
        APPEND(p, server.data, server.len);
        APPEND_LIT(p, "\r\n");
    }
    if (!have_date) {
        APPEND_LIT(p, "Date: ");
        APPEND(p, date.data, date.len);
        APPEND_LIT(p, "\r\n");
    }
    for (uint32_t i = 0; i < r->resp_nheaders; i++) {
        const pt_header *h = &r->resp_headers[i];
        APPEND(p, h->name.data, h->name.len);
        *p++ = ':';
        *p++ = ' ';
        APPEND(p, h->value.data, h->value.len);
        *p++ = '\r';
        *p++ = '\n';
    }
    if (send_length) {
        APPEND_LIT(p, "Content-Length: ");
        APPEND(p, num, numlen);
        APPEND_LIT(p, "\r\n");
    } else if (st->resp_chunked) {
        APPEND_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    if (status != 101) {
        if (!r->keepalive)
            APPEND_LIT(p, "Connection: close\r\n");
        else if (r->head.version < 11)
            APPEND_LIT(p, "Connection: keep-alive\r\n");
    }
    APPEND_LIT(p, "\r\n");

    r->resp_head_len = (size_t) (p - buf);
    return pt_out_add(c, buf, (size_t) (p - buf));
}

/* ---- the response body ---- */

/* The last chunk, with the trailer section when there are trailers (RFC 9112 7.1.2). */
static int last_chunk(pt_request *r, pt_conn *c)
{
    if (r->resp_ntrailers == 0)
        return pt_out_add(c, "0\r\n\r\n", 5);
    char *b = pt_palloc(r->pool, pt_h1_last_chunk_len(r->resp_trailers, r->resp_ntrailers));
    if (b == NULL)
        return PT_ERROR;
    return pt_out_add(c, b, pt_h1_last_chunk(b, r->resp_trailers, r->resp_ntrailers));
}

int pt_h1_send_body(pt_request *r, const char *data, size_t len, bool last)
{
    pt_conn *c = r->conn;
    PT_ASSERT(h1_of(c)->req == r && r->header_sent);
    h1_stream *st = r->stream;
    if (r->resp_body_done)
        return len ? PT_ERROR : PT_OK;
    if (!r->no_body && len) {
        if (r->resp_length >= 0) {
            if (r->resp_body_queued + len > (uint64_t) r->resp_length) {
                pt_log(PT_LOG_ERR, "response body longer than its Content-Length");
                return PT_ERROR;
            }
        }
        if (st->resp_chunked) {
            char *h = pt_out_small(c, 20);
            if (h == NULL)
                return PT_ERROR;
            int hn = snprintf(h, 20, "%zx\r\n", len);
            if (pt_out_add(c, h, (size_t) hn) != PT_OK || pt_out_add(c, data, len) != PT_OK
                || pt_out_add(c, "\r\n", 2) != PT_OK)
                return PT_ERROR;
        } else if (pt_out_add(c, data, len) != PT_OK) {
            return PT_ERROR;
        }
        r->resp_body_queued += len;
    }
    if (last) {
        r->resp_body_done = true;
        if (st->resp_chunked && !r->no_body && last_chunk(r, c) != PT_OK)
            return PT_ERROR;
        if (r->resp_length >= 0 && !r->no_body
            && r->resp_body_queued < (uint64_t) r->resp_length)
            r->keepalive = false;       /* short body: the client cannot find the end */
    }
    int rc = pt_conn_flush(c);
    if (rc == PT_AGAIN)
        pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
    return rc;
}

bool pt_h1_splice_ok(pt_request *r)
{
    h1_stream *st = r->stream;
    return r->header_sent && !r->no_body && !st->resp_chunked && r->resp_length >= 0
           && !r->resp_body_done && r->conn->out.pending == 0
           && r->conn->x.ops->splice_out != NULL;
}

ssize_t pt_h1_splice_body(pt_request *r, int pipe_rd, size_t len)
{
    pt_conn *c = r->conn;
    if (r->resp_body_queued + len > (uint64_t) r->resp_length)
        return PT_ERROR;
    if (c->x.writable) {
        /* "more" while more follows: the kernel may then fill whole segments */
        bool more = r->resp_body_queued + len < (uint64_t) r->resp_length;
        ssize_t n = c->x.ops->splice_out(&c->x, pipe_rd, len, more);
        if (n > 0) {
            r->resp_body_queued += (uint64_t) n;
            c->out.sent += (uint64_t) n;
            if (pt_stats_mine)
                pt_stats_mine->bytes_out += (uint64_t) n;
            pt_conn_set_timer(c, 0);
            return n;
        }
        if (n != PT_AGAIN)
            return PT_ERROR;
    }
    if (!r->wait_writable) {
        /* armed once per stall: origin events while we wait must not extend it */
        r->wait_writable = true;
        pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
    }
    return PT_AGAIN;
}

/* ---- tunnels ---- */

void pt_h1_tunnel(pt_request *r)
{
    h1_stream *st = r->stream;
    r->body_state = PT_RB_TUNNEL;
    r->no_body = false;
    r->resp_length = -1;
    st->resp_chunked = false;
    r->keepalive = false;
}

void pt_h1_tunnel_shutdown(pt_request *r)
{
    pt_conn *c = r->conn;
    h1_stream *st = r->stream;
    if (c->out.pending) {
        st->shut_wr = true;             /* done by the event handler once drained */
        return;
    }
    c->x.ops->shutdown(&c->x);
}
