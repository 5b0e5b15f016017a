/* Responses, whatever the session: header fields (and the request's, which modules may
 * edit), the filter chains switched on per request, handing heads and bodies to the
 * session, error pages. How a head or a body looks on the wire is the session's. */
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
static uint64_t   all_bfilters;        /* bits (by module index) of modules with one */

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
    all_bfilters = 0;
    for (unsigned i = 0; i < nbfilters; i++) {
        if (bfilters[i]->index < pt_nelems(bfilter_pos))
            bfilter_pos[bfilters[i]->index] = i + 1;
        all_bfilters |= 1ull << bfilters[i]->index;
    }
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

/* ---- request fields ---- */

pt_header *pt_http_req_header(pt_request *r, pt_str name)
{
    for (uint32_t i = 0; i < r->head.nheaders; i++)
        if (pt_str_caseeq(r->head.headers[i].name, name))
            return &r->head.headers[i];
    return NULL;
}

int pt_http_req_header_add(pt_request *r, pt_str name, pt_str value)
{
    pt_req_head *h = &r->head;
    if (h->nheaders == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 16;
        pt_header *nh = pt_palloc(r->pool, ncap * sizeof(*nh));
        if (nh == NULL)
            return PT_ERROR;
        if (h->nheaders)
            memcpy(nh, h->headers, h->nheaders * sizeof(*nh));
        h->headers = nh;
        h->cap = ncap;
    }
    h->headers[h->nheaders].name = name;
    h->headers[h->nheaders].value = value;
    h->nheaders++;
    return PT_OK;
}

void pt_http_req_header_del(pt_request *r, pt_str name)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < r->head.nheaders; i++)
        if (!pt_str_caseeq(r->head.headers[i].name, name))
            r->head.headers[j++] = r->head.headers[i];
    r->head.nheaders = j;
}

int pt_http_req_header_set(pt_request *r, pt_str name, pt_str value)
{
    pt_header *h = pt_http_req_header(r, name);
    if (h == NULL)
        return pt_http_req_header_add(r, name, value);
    h->value = value;
    /* later fields of the same name go: set means one value */
    uint32_t j = (uint32_t) (h - r->head.headers) + 1;
    for (uint32_t i = j; i < r->head.nheaders; i++)
        if (!pt_str_caseeq(r->head.headers[i].name, name))
            r->head.headers[j++] = r->head.headers[i];
    r->head.nheaders = j;
    return PT_OK;
}

/* ---- filters ---- */

int pt_http_filter_on(pt_request *r, const pt_module *m)
{
    if (r->header_sent || m->index >= 64)
        return PT_ERROR;
    r->filters |= 1ull << m->index;
    return PT_OK;
}

void pt_http_filter_off(pt_request *r, const pt_module *m)
{
    if (m->index < 64)
        r->filters &= ~(1ull << m->index);
}

bool pt_http_filters_active(const pt_request *r)
{
    return (r->filters & all_bfilters) != 0;
}

/* The first body filter switched on for r at or after position pos (0-based). */
static pt_module *next_bfilter(const pt_request *r, unsigned pos)
{
    if ((r->filters & all_bfilters) == 0)
        return NULL;
    for (unsigned i = pos; i < nbfilters; i++)
        if (r->filters & (1ull << bfilters[i]->index))
            return bfilters[i];
    return NULL;
}

int pt_http_send_header(pt_request *r)
{
    if (r->header_sent)
        return PT_ERROR;
    for (unsigned i = 0; i < nhfilters && r->filters; i++) {
        if (!(r->filters & (1ull << hfilters[i]->index)))
            continue;
        int rc = hfilters[i]->header_filter(r);
        if (rc != PT_OK && rc != PT_DECLINED)
            return PT_ERROR;
    }
    if (r->sess->send_head(r) != PT_OK)
        return PT_ERROR;
    r->header_sent = true;
    return PT_OK;
}

int pt_http_body_next(pt_request *r, const pt_module *self, const char *data, size_t len,
                      bool last)
{
    unsigned pos = self && self->index < pt_nelems(bfilter_pos) ? bfilter_pos[self->index] : 0;
    pt_module *f = next_bfilter(r, pos);
    if (f)
        return f->body_filter(r, data, len, last);
    return r->sess->send_body(r, data, len, last);
}

int pt_http_send_body(pt_request *r, const char *data, size_t len, bool last)
{
    if (!r->header_sent)
        return PT_ERROR;
    pt_module *f = next_bfilter(r, 0);
    if (f)
        return f->body_filter(r, data, len, last);
    return r->sess->send_body(r, data, len, last);
}

void pt_http_writable(pt_request *r)
{
    /* filters holding output they could not pass on go first */
    pt_module *f = r->resp_body_done ? NULL : next_bfilter(r, 0);
    if (f && r->header_sent) {
        int rc = f->body_filter(r, NULL, 0, false);
        if (rc == PT_AGAIN)
            return;
        if (rc == PT_ERROR) {
            pt_http_abort(r, "a response filter failed");
            return;
        }
    }
    if (r->on_write)
        r->on_write(r);
}

/* A zero-copy relay needs the session's consent (h2 frames every byte: never) besides
 * the transport's (TLS cannot). */
bool pt_http_splice_ok(pt_request *r)
{
    return !pt_http_filters_active(r) && r->sess->splice_body && r->sess->splice_ok
           && r->sess->splice_ok(r);
}

bool pt_http_output_pending(const pt_request *r)
{
    return r->sess->output_pending(r);
}

ssize_t pt_http_splice_body(pt_request *r, int pipe_rd, size_t len)
{
    return r->sess->splice_body(r, pipe_rd, len);
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
    /* a refusal by a limit (405, 429) says nothing bad about the connection */
    if (status >= 400 && status != 404 && status != 405 && status != 429 && status != 501)
        r->keepalive = false;
    if (pt_http_body_pending(r) && r->head.expect_continue && !r->continue_sent)
        r->keepalive = false;
    bool allow = false;
    for (uint32_t i = 0; i < r->err_nheaders; i++) {
        allow = allow || pt_str_caseeq_lit(r->err_headers[i].name, "allow");
        pt_http_add_header(r, r->err_headers[i].name, r->err_headers[i].value);
    }
    if (status == 405 && !allow)
        pt_http_add_header(r, PT_STR("Allow"), PT_STR("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"));
    if (r->retry_after && (status == 503 || status == 429)) {
        char num[24];
        size_t n = pt_fmt_u64(num, r->retry_after);
        const char *v = pt_pstrndup(r->pool, num, n);     /* headers are not copied */
        if (v)
            pt_http_add_header(r, PT_STR("Retry-After"), (pt_str) { n, v });
    }
    pt_str text = r->error_text;
    if (text.len == 0) {
        const char *line = pt_http_status_line(status);
        size_t n = strlen(line);
        char *body = pt_palloc(r->pool, n + 1);
        if (body == NULL) {
            pt_http_finalize(r, PT_ERROR);
            return PT_ERROR;
        }
        memcpy(body, line, n);
        body[n] = '\n';
        text = (pt_str) { n + 1, body };
    }
    int rc = respond(r, status, PT_STR("text/plain"), text);
    pt_http_finalize(r, rc);
    return rc;
}
