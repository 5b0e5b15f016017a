/* Answering from the store: a hit (or a stale answer) from the pre-content phase, and a
 * stored response standing in for the origin's (after a 304 to a revalidation, or an
 * error within stale-if-error), sent by the body filter in place of the origin's body.
 *
 * Bytes are copied out of the shared zone before they are sent, and the copy is used
 * only when the entry's generation is still the one found: an object replaced or evicted
 * meanwhile is never sent torn. Small objects (head and body up to SERVE_WHOLE) are
 * copied in one go into the request's pool; bigger ones a piece at a time, pinned so that
 * a replacement retires them instead of freeing them under the reader. */
#include <stdio.h>

#include "portico/clock.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "cache.h"

#define SERVE_WHOLE   (64 * 1024)     /* copied in one piece up to this */
#define SERVE_PIECE   (64 * 1024)

/* ------------------------------------------------------------------ stored heads */

pt_header *cache_head_fields(pt_pool *pool, pt_str head, uint32_t *n)
{
    uint32_t count = 0;
    for (size_t i = 0; i + 1 < head.len; i++)
        if (head.data[i] == '\r' && head.data[i + 1] == '\n')
            count++;
    pt_header *hs = pt_palloc(pool, (count + 1) * sizeof(*hs));
    if (hs == NULL)
        return NULL;
    const char *p = head.data, *end = head.data + head.len;
    uint32_t k = 0;
    while (p < end && k < count) {
        const char *eol = memchr(p, '\r', (size_t) (end - p));
        const char *colon = memchr(p, ':', (size_t) ((eol ? eol : end) - p));
        if (eol == NULL || colon == NULL)
            break;
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        hs[k].name = (pt_str) { (size_t) (colon - p), p };
        hs[k].value = (pt_str) { (size_t) (eol - v), v };
        k++;
        p = eol + 2;
    }
    *n = k;
    return hs;
}

pt_str cache_head_text(pt_pool *pool, const pt_header *hs, uint32_t n)
{
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += hs[i].name.len + hs[i].value.len + 4;
    char *out = pt_palloc(pool, len + 1), *p = out;
    if (out == NULL)
        return PT_STR_NULL;
    for (uint32_t i = 0; i < n; i++) {
        if (cache_field_unstored(hs[i].name) || pt_str_caseeq_lit(hs[i].name, "set-cookie"))
            continue;
        memcpy(p, hs[i].name.data, hs[i].name.len);
        p += hs[i].name.len;
        *p++ = ':';
        *p++ = ' ';
        if (hs[i].value.len)
            memcpy(p, hs[i].value.data, hs[i].value.len);
        p += hs[i].value.len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (pt_str) { (size_t) (p - out), out };
}

/* RFC 9111 4.2.3: current_age = corrected_initial_age + resident_time. */
uint32_t cache_age(const cache_entry *e, uint64_t now_ms)
{
    uint64_t resident = now_ms > e->resp_ms ? (now_ms - e->resp_ms) / 1000 : 0;
    uint64_t age = e->initial_age + resident;
    return age > UINT32_MAX ? UINT32_MAX : (uint32_t) age;
}

/* RFC 9110 13.2.2: If-None-Match first; If-Modified-Since only without it. A GET or HEAD
 * whose condition says "not modified" gets 304 (only ever instead of a 200). */
bool cache_client_not_modified(pt_request *r, pt_str inm, pt_str ims, const pt_header *hs,
                               uint32_t n)
{
    if (r->head.method != PT_M_GET && r->head.method != PT_M_HEAD)
        return false;
    if (inm.len) {
        const pt_header *et = pt_h1_find(hs, n, PT_STR("ETag"));
        return et && cache_etag_match(inm, et->value);
    }
    if (ims.len) {
        const pt_header *lm = pt_h1_find(hs, n, PT_STR("Last-Modified"));
        int64_t since, modified;
        return lm && cache_parse_date(ims, &since) && cache_parse_date(lm->value, &modified)
               && modified <= since;
    }
    return false;
}

/* What a 304 carries (RFC 9110 15.4.5), besides this cache's own fields. */
static bool not_modified_field(pt_str n)
{
    return pt_str_caseeq_lit(n, "cache-control") || pt_str_caseeq_lit(n, "content-location")
           || pt_str_caseeq_lit(n, "date") || pt_str_caseeq_lit(n, "etag")
           || pt_str_caseeq_lit(n, "expires") || pt_str_caseeq_lit(n, "vary")
           || pt_str_caseeq_lit(n, "last-modified");
}

/* ------------------------------------------------------------------ the response head */

static int add_status(cache_req *cr, const char *status)
{
    pt_request *r = cr->r;
    cr->status_text = status;
    r->cache_status = status;
    if (!cr->rc->status_header)
        return PT_OK;
    pt_http_del_header(r, PT_STR("X-Cache-Status"));
    return pt_http_add_header(r, PT_STR("X-Cache-Status"), (pt_str) { strlen(status), status });
}

/* r's response head becomes the stored one (fields hs): status, fields, Age, our status;
 * a 304 when the client's own conditional matches. */
int cache_set_response(cache_req *cr, const cache_entry *e, const pt_header *hs, uint32_t n,
                       const char *status)
{
    pt_request *r = cr->r;
    pt_str inm = cr->inm, ims = cr->ims;
    if (!cr->cond_stripped) {
        pt_header *h = pt_http_req_header(r, PT_STR("If-None-Match"));
        inm = h ? h->value : PT_STR_NULL;
        h = pt_http_req_header(r, PT_STR("If-Modified-Since"));
        ims = h ? h->value : PT_STR_NULL;
    }
    cr->not_modified = e->status == 200 && (inm.len || ims.len)
                       && cache_client_not_modified(r, inm, ims, hs, n);
    r->resp_nheaders = 0;
    r->status = cr->not_modified ? 304 : e->status;
    r->resp_length = cr->not_modified ? -1 : (int64_t) e->body_len;
    for (uint32_t i = 0; i < n; i++) {
        if (cr->not_modified && !not_modified_field(hs[i].name))
            continue;
        if (pt_http_add_header(r, hs[i].name, hs[i].value) != PT_OK)
            return PT_ERROR;
    }
    char *age = pt_palloc(r->pool, 24);
    if (age == NULL)
        return PT_ERROR;
    size_t alen = pt_fmt_u64(age, cache_age(e, cache_now_ms()));
    if (pt_http_add_header(r, PT_STR("Age"), (pt_str) { alen, age }) != PT_OK)
        return PT_ERROR;
    return add_status(cr, status);
}

int cache_add_status(cache_req *cr, const char *status)
{
    return add_status(cr, status);
}

/* ------------------------------------------------------------------ the stored body */

/* Copies the next piece of the stored body into cr->buf: its length, 0 at the end, or
 * -1 when the entry changed under us (nothing of it may be sent). */
static ssize_t next_piece(cache_req *cr, uint64_t end)
{
    if (cr->src_at >= end)
        return 0;
    size_t n = (size_t) pt_min(end - cr->src_at, (uint64_t) SERVE_PIECE);
    if (cr->buf == NULL && (cr->buf = pt_palloc(cr->r->pool, SERVE_PIECE)) == NULL)
        return -1;
    if (!cache_read(&cr->src, &cr->cur, cr->src_at, n, cr->buf))
        return -1;
    if (cr->pinned)
        cache_pin_touch(&cr->src, cache_now_ms());
    cr->src_at += n;
    return (ssize_t) n;
}

static void unpin(cache_req *cr)
{
    if (cr->pinned) {
        cr->pinned = false;
        cache_unpin(&cr->src);
    }
}

static void changed_under_us(cache_req *cr)
{
    pt_log(PT_LOG_INFO, "cache: the stored response changed while it was sent to %s: "
           "connection closed (the client sees an incomplete response)", cr->r->conn->peer_ip);
    cr->r->error_reason = "stored response replaced while being sent";
}

/* A hit sent a piece at a time (on_write: the client took the last one). */
static void serve_more(pt_request *r)
{
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    uint64_t end = CACHE_BODY_AT(&cr->src.e) + cr->src.e.body_len;
    for (;;) {
        ssize_t n = next_piece(cr, end);
        if (n < 0) {
            changed_under_us(cr);
            unpin(cr);
            pt_http_finalize(r, PT_ERROR);
            return;
        }
        bool last = cr->src_at >= end;
        int rc = pt_http_send_body(r, cr->buf, (size_t) n, last);
        if (rc == PT_ERROR) {
            unpin(cr);
            pt_http_finalize(r, PT_ERROR);
            return;
        }
        if (last) {
            unpin(cr);
            pt_http_finalize(r, PT_OK);
            return;
        }
        if (rc == PT_AGAIN)
            return;                     /* the buffer is the queue's until on_write */
    }
}

static void serve_abort(pt_request *r)
{
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    if (cr)
        unpin(cr);
}

int cache_serve(cache_req *cr, const cache_snap *s, const char *status)
{
    pt_request *r = cr->r;
    const cache_entry *e = &s->e;
    bool body = !r->no_body && e->body_len;
    bool whole = e->head_len + e->body_len <= SERVE_WHOLE;
    uint64_t n = e->head_len + (body && whole ? e->body_len : 0);
    char *buf = pt_palloc(r->pool, (size_t) n + 1);
    if (buf == NULL)
        return PT_ERROR;
    if (!cache_read(s, NULL, CACHE_HEAD_AT(e), (size_t) n, buf))
        return PT_DECLINED;             /* replaced or evicted meanwhile: look again */
    cache_touch(s);
    uint32_t nf = 0;
    pt_header *hs = cache_head_fields(r->pool, (pt_str) { e->head_len, buf }, &nf);
    if (hs == NULL || cache_set_response(cr, e, hs, nf, status) != PT_OK)
        return PT_ERROR;
    cr->mode = CR_SERVE;
    cr->src = *s;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    if (!body || cr->not_modified) {
        int rc = pt_http_send_body(r, NULL, 0, true);
        pt_http_finalize(r, rc == PT_ERROR ? PT_ERROR : PT_OK);
        return PT_DONE;
    }
    if (whole) {
        /* the copy lives in the pool until the request ends: queued as it is */
        int rc = pt_http_send_body(r, buf + e->head_len, (size_t) e->body_len, true);
        pt_http_finalize(r, rc == PT_ERROR ? PT_ERROR : PT_OK);
        return PT_DONE;
    }
    cache_pin(s, cache_now_ms());
    cr->pinned = true;
    if (!cache_still(s)) {              /* freed just before the pin took */
        unpin(cr);
        changed_under_us(cr);
        pt_http_finalize(r, PT_ERROR);
        return PT_DONE;
    }
    cr->src_at = CACHE_BODY_AT(e);
    r->on_write = serve_more;
    r->on_abort = serve_abort;
    serve_more(r);
    return PT_DONE;
}

/* ------------------------------------------------------------------ standing in */

/* From the header filter: the response becomes the stored one of s (fields hs), its body
 * sent by cache_substitute_body in place of whatever the origin's was. */
int cache_substitute(cache_req *cr, const cache_snap *s, const pt_header *hs, uint32_t n,
                     const char *status)
{
    pt_request *r = cr->r;
    if (cache_set_response(cr, &s->e, hs, n, status) != PT_OK)
        return PT_ERROR;
    cr->substitute = true;
    cr->src = *s;
    cr->src_at = CACHE_BODY_AT(&s->e);
    if (r->no_body || r->head.method == PT_M_HEAD || cr->not_modified) {
        cr->src_at += s->e.body_len;    /* nothing to send */
    } else if (s->e.body_len > SERVE_WHOLE) {
        cache_pin(s, cache_now_ms());
        cr->pinned = true;
        if (!cache_still(s)) {
            unpin(cr);
            return PT_ERROR;
        }
    } else if (s->e.body_len) {
        /* copied now: the entry may be replaced (by the refreshed one) before the body
         * filter sends it */
        cr->whole = pt_palloc(r->pool, (size_t) s->e.body_len);
        if (cr->whole == NULL || !cache_read(s, NULL, cr->src_at, (size_t) s->e.body_len,
                                             cr->whole))
            return PT_ERROR;
    }
    return PT_OK;
}

/* The body filter while standing in: the origin's body is dropped, the stored one sent,
 * with back-pressure (called again with nothing once the client took what was queued). */
int cache_substitute_body(cache_req *cr, bool last)
{
    pt_request *r = cr->r;
    uint64_t end = CACHE_BODY_AT(&cr->src.e) + cr->src.e.body_len;
    if (last)
        cr->in_last = true;
    if (cr->whole && !cr->whole_sent) {
        cr->whole_sent = true;
        cr->src_at = end;
        int rc = pt_http_body_next(r, &pt_cache_module, cr->whole, (size_t) cr->src.e.body_len,
                                   false);
        if (rc != PT_OK)
            return rc;
    }
    while (!cr->out_last) {
        ssize_t n = next_piece(cr, end);
        if (n < 0) {
            changed_under_us(cr);
            unpin(cr);
            return PT_ERROR;
        }
        if (n > 0) {
            int rc = pt_http_body_next(r, &pt_cache_module, cr->buf, (size_t) n, false);
            if (rc != PT_OK)
                return rc;          /* PT_AGAIN: called again when the client took it */
            continue;
        }
        if (!cr->in_last)
            return PT_OK;           /* the origin's (ignored) body goes on */
        cr->out_last = true;
        unpin(cr);
        return pt_http_body_next(r, &pt_cache_module, NULL, 0, true);
    }
    return PT_OK;
}
