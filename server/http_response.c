/* Responses: header fields, the response head on the wire, framing (Content-Length or
 * chunked, or close-delimited for HTTP/1.0 clients), the filter chains, error pages. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "portico/clock.h"
#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/str.h"
#include "http_core.h"

static char     server_buf[64];
static pt_str   server_str;         /* empty: server_tokens "off", no Server field */
static bool     server_set;

static pt_module *hfilters[64];
static unsigned   nhfilters;
static pt_module *bfilters[64];
static unsigned   nbfilters;
static unsigned   bfilter_pos[256];    /* by module index: position in bfilters + 1 */

static int cmp_header_order(const void *a, const void *b)
{
    const pt_module *x = *(pt_module *const *) a, *y = *(pt_module *const *) b;
    if (x->header_filter_order != y->header_filter_order)
        return x->header_filter_order < y->header_filter_order ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static int cmp_body_order(const void *a, const void *b)
{
    const pt_module *x = *(pt_module *const *) a, *y = *(pt_module *const *) b;
    if (x->body_filter_order != y->body_filter_order)
        return x->body_filter_order < y->body_filter_order ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* Filter order is an explicit number per module, not link order. */
void pt_http_filters_init(void)
{
    nhfilters = nbfilters = 0;
    for (unsigned i = 0; i < pt_nmodules; i++) {
        pt_module *m = pt_modules[i];
        if (m->header_filter && nhfilters < pt_nelems(hfilters))
            hfilters[nhfilters++] = m;
        if (m->body_filter && nbfilters < pt_nelems(bfilters))
            bfilters[nbfilters++] = m;
    }
    qsort(hfilters, nhfilters, sizeof(hfilters[0]), cmp_header_order);
    qsort(bfilters, nbfilters, sizeof(bfilters[0]), cmp_body_order);
    memset(bfilter_pos, 0, sizeof(bfilter_pos));
    for (unsigned i = 0; i < nbfilters; i++)
        if (bfilters[i]->index < pt_nelems(bfilter_pos))
            bfilter_pos[bfilters[i]->index] = i + 1;
    unsigned tokens = pt_wconf ? pt_wconf->server_tokens : PT_SERVER_TOKENS_VERSION;
    int n = snprintf(server_buf, sizeof(server_buf), "%s",
                     tokens == PT_SERVER_TOKENS_OFF ? ""
                     : tokens == PT_SERVER_TOKENS_NAME ? "portico" : "portico/" PT_VERSION);
    server_str = (pt_str) { (size_t) n, server_buf };
    server_set = true;
}

pt_str pt_http_date(void)
{
    return pt_clock_http_date(pt_loop_cur ? pt_loop_cur->now_real : (uint64_t) time(NULL) * 1000);
}

pt_str pt_http_server(void)
{
    if (!server_set)
        return PT_STR("portico/" PT_VERSION);
    return server_str;
}

const char *pt_http_status_line(unsigned status)
{
    /* "NNN Reason" for logs and error bodies; the reason comes from the h1 table */
    static char buf[8][64];
    static unsigned slot;
    char *b = buf[slot++ % 8];
    const char *t = pt_h1_status_text(status);
    snprintf(b, sizeof(buf[0]), "%u%s%s", status, *t ? " " : "", t);
    return b;
}

int pt_http_add_header(pt_request *r, pt_str name, pt_str value)
{
    if (r->resp_nheaders == r->resp_cap) {
        uint32_t ncap = r->resp_cap ? r->resp_cap * 2 : 16;
        pt_header *nh = pt_palloc(r->pool, ncap * sizeof(*nh));
        if (nh == NULL)
            return PT_ERROR;
        if (r->resp_nheaders)
            memcpy(nh, r->resp_headers, r->resp_nheaders * sizeof(*nh));
        r->resp_headers = nh;
        r->resp_cap = ncap;
    }
    /* callers pass config strings or pool copies; both outlive the request */
    r->resp_headers[r->resp_nheaders].name = name;
    r->resp_headers[r->resp_nheaders].value = value;
    r->resp_nheaders++;
    return PT_OK;
}

void pt_http_del_header(pt_request *r, pt_str name)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < r->resp_nheaders; i++)
        if (!pt_str_caseeq(r->resp_headers[i].name, name))
            r->resp_headers[j++] = r->resp_headers[i];
    r->resp_nheaders = j;
}

pt_header *pt_http_resp_header(pt_request *r, pt_str name)
{
    for (uint32_t i = 0; i < r->resp_nheaders; i++)
        if (pt_str_caseeq(r->resp_headers[i].name, name))
            return &r->resp_headers[i];
    return NULL;
}

#define APPEND(p, s, n) do { memcpy((p), (s), (n)); (p) += (n); } while (0)
#define APPEND_LIT(p, lit) APPEND(p, lit, sizeof(lit) - 1)

int pt_http_send_header(pt_request *r)
{
    pt_conn *c = r->conn;
    if (r->header_sent)
        return PT_ERROR;
    for (unsigned i = 0; i < nhfilters; i++) {
        int rc = hfilters[i]->header_filter(r);
        if (rc != PT_OK && rc != PT_DECLINED)
            return PT_ERROR;
    }

    unsigned st = r->status;
    bool bodyless_status = st < 200 || st == 204 || st == 304;
    if (bodyless_status)
        r->no_body = true;
    r->resp_chunked = false;
    if (st == 101) {
        /* the tunnel's framing is the upgraded protocol's */
    } else if (r->resp_length < 0 && !bodyless_status && r->info.method != PT_M_HEAD) {
        if (r->info.version >= 11)
            r->resp_chunked = true;
        else
            r->keepalive = false;       /* HTTP/1.0: the close marks the end */
    }
    if (pt_worker_draining() || c->draining)
        r->keepalive = false;
    /* answered before the client was told to send its body: the connection cannot be
     * reused (the client may send the body anyway, or wait), so say so */
    if (r->info.expect_continue && !r->continue_sent && pt_http_body_pending(r))
        r->keepalive = false;

    const char *reason = pt_h1_status_text(st);
    pt_str date = pt_http_date();
    pt_str server = pt_http_server();
    bool have_date = pt_http_resp_header(r, PT_STR("Date")) != NULL;
    char num[24];
    size_t numlen = 0;
    bool send_length = r->resp_length >= 0 && st != 101 && st >= 200 && st != 204;
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
    *p++ = (char) ('0' + st / 100 % 10);
    *p++ = (char) ('0' + st / 10 % 10);
    *p++ = (char) ('0' + st % 10);
    *p++ = ' ';
    APPEND(p, reason, strlen(reason));
    if (server.len) {
        APPEND_LIT(p, "\r\nServer: ");
        APPEND(p, server.data, server.len);
    }
    if (!have_date) {
        APPEND_LIT(p, "\r\nDate: ");
        APPEND(p, date.data, date.len);
    }
    APPEND_LIT(p, "\r\n");
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
    } else if (r->resp_chunked) {
        APPEND_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    if (st != 101) {
        if (!r->keepalive)
            APPEND_LIT(p, "Connection: close\r\n");
        else if (r->info.version < 11)
            APPEND_LIT(p, "Connection: keep-alive\r\n");
    }
    APPEND_LIT(p, "\r\n");

    r->header_sent = true;
    r->resp_head_len = (size_t) (p - buf);
    return pt_out_add(c, buf, (size_t) (p - buf)) == PT_ERROR ? PT_ERROR : PT_OK;
}

/* The end of the body filter chain: framing and the socket. */
static int write_body(pt_request *r, const char *data, size_t len, bool last)
{
    pt_conn *c = r->conn;
    if (r->resp_body_done)
        return len ? PT_ERROR : PT_OK;
    if (!r->no_body && len) {
        if (r->resp_length >= 0) {
            if (r->resp_body_queued + len > (uint64_t) r->resp_length) {
                pt_log(PT_LOG_ERR, "response body longer than its Content-Length");
                return PT_ERROR;
            }
        }
        if (r->resp_chunked) {
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
        if (r->resp_chunked && !r->no_body && pt_out_add(c, "0\r\n\r\n", 5) != PT_OK)
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

int pt_http_body_next(pt_request *r, const pt_module *self, const char *data, size_t len,
                      bool last)
{
    unsigned pos = self && self->index < pt_nelems(bfilter_pos) ? bfilter_pos[self->index] : 0;
    if (pos < nbfilters)
        return bfilters[pos]->body_filter(r, data, len, last);
    return write_body(r, data, len, last);
}

int pt_http_send_body(pt_request *r, const char *data, size_t len, bool last)
{
    if (!r->header_sent)
        return PT_ERROR;
    if (nbfilters)
        return bfilters[0]->body_filter(r, data, len, last);
    return write_body(r, data, len, last);
}

bool pt_http_splice_ok(pt_request *r)
{
    return nbfilters == 0 && r->header_sent && !r->no_body && !r->resp_chunked
           && r->resp_length >= 0 && !r->resp_body_done && r->conn->out.pending == 0;
}

ssize_t pt_http_splice_body(pt_request *r, int pipe_rd, size_t len)
{
    pt_conn *c = r->conn;
    if (r->resp_body_queued + len > (uint64_t) r->resp_length)
        return PT_ERROR;
    while (c->writable) {
        /* SPLICE_F_MORE while more follows: the kernel may then fill whole segments */
        unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
        if (r->resp_body_queued + len < (uint64_t) r->resp_length)
            flags |= SPLICE_F_MORE;
        ssize_t n = splice(pipe_rd, NULL, c->io.fd, NULL, len, flags);
        if (n > 0) {
            r->resp_body_queued += (uint64_t) n;
            r->bytes_sent += (uint64_t) n;
            if (pt_stats_mine)
                pt_stats_mine->bytes_out += (uint64_t) n;
            pt_conn_set_timer(c, 0);
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->writable = false;
            break;
        }
        c->peer_closed = true;
        return PT_ERROR;
    }
    if (!r->wait_writable) {
        /* armed once per stall: origin events while we wait must not extend it */
        r->wait_writable = true;
        pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
    }
    return PT_AGAIN;
}

static int respond(pt_request *r, unsigned status, pt_str ctype, pt_str body)
{
    r->status = status;
    r->resp_length = (int64_t) body.len;
    if (ctype.len && pt_http_add_header(r, PT_STR("Content-Type"), ctype) != PT_OK)
        return PT_ERROR;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    int rc = pt_http_send_body(r, body.data, body.len, true);
    return rc == PT_ERROR ? PT_ERROR : PT_OK;
}

int pt_http_respond(pt_request *r, unsigned status, pt_str content_type, pt_str body)
{
    int rc = respond(r, status, content_type, body);
    pt_http_finalize(r, rc == PT_OK ? PT_OK : PT_ERROR);
    return PT_DONE;
}

/* The core's error page: "404 Not Found\n". It never names an upstream. */
int pt_http_send_error(pt_request *r, unsigned status)
{
    if (r->header_sent) {
        pt_http_finalize(r, PT_ERROR);
        return PT_ERROR;
    }
    r->resp_nheaders = 0;
    if (status >= 400 && status != 404 && status != 405 && status != 501)
        r->keepalive = false;
    if (pt_http_body_pending(r) && r->info.expect_continue && !r->continue_sent)
        r->keepalive = false;
    if (status == 405)
        pt_http_add_header(r, PT_STR("Allow"), PT_STR("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"));
    const char *line = pt_http_status_line(status);
    size_t n = strlen(line);
    char *body = pt_palloc(r->pool, n + 1);
    if (body == NULL) {
        pt_http_finalize(r, PT_ERROR);
        return PT_ERROR;
    }
    memcpy(body, line, n);
    body[n] = '\n';
    int rc = respond(r, status, PT_STR("text/plain"), (pt_str) { n + 1, body });
    pt_http_finalize(r, rc);
    return rc;
}
