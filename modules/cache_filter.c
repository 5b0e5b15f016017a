/* The response filters of the cache, switched on per request by the pre-content phase
 * (cache.c) for misses, revalidations and requests that may invalidate:
 *
 *   - the header filter sees the response head as the client will get it (r->status,
 *     r->resp_headers: the proxy's hide/set rules applied) and decides: store it (a
 *     PENDING object is begun), stand the stored response in for it (a 304 to our
 *     revalidation: REVALIDATED; an error within stale-if-error: STALE), or leave it
 *     alone, in which case the filter goes off again and the body may still be spliced;
 *   - the body filter writes each piece into the store before passing it on, so the
 *     client gets the miss as it arrives, and commits the object at the last byte. An
 *     object is visible to other requests only from its commit (cache_store.c). */
#include <stdio.h>

#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "cache.h"

/* The request part of a stored object: what a background refresh sends again. */
static pt_str request_text(pt_request *r)
{
    pt_header *h = pt_http_req_header(r, PT_STR("Host"));
    pt_str host = h ? h->value : r->host;
    size_t n = r->head.target.len + 1 + host.len;
    char *p = pt_palloc(r->pool, n + 1);
    if (p == NULL)
        return PT_STR_NULL;
    memcpy(p, r->head.target.data, r->head.target.len);
    p[r->head.target.len] = '\n';
    if (host.len)
        memcpy(p + r->head.target.len + 1, host.data, host.len);
    return (pt_str) { n, p };
}

int cache_store_refreshed(const cache_snap *old, pt_pool *pool, pt_str head,
                          const cache_meta *m, pt_str names, uint64_t max_body)
{
    const cache_entry *e = &old->e;
    uint64_t now = cache_now_ms();
    pt_str pre = cache_copy(pool, old, 0, CACHE_HEAD_AT(e));
    if (pre.data == NULL)
        return PT_ERROR;
    pt_str key = { e->key_len, pre.data };
    pt_str vary = { e->vary_len, pre.data + e->key_len };
    pt_str req = { e->req_len, pre.data + e->key_len + e->vary_len };
    cache_writer w;
    if (cache_write_begin(&w, m, key, vary, req, head, e->body_len, max_body, now) != PT_OK)
        return PT_ERROR;
    char *buf = pt_palloc(pool, 16384);
    if (buf == NULL) {
        cache_write_abort(&w);
        return PT_ERROR;
    }
    cache_cursor cur = { 0, 0 };
    for (uint64_t at = 0; at < e->body_len;) {
        size_t n = (size_t) pt_min(e->body_len - at, (uint64_t) 16384);
        if (!cache_read(old, &cur, CACHE_BODY_AT(e) + at, n, buf)) {
            cache_write_abort(&w);
            return PT_ERROR;
        }
        if (cache_write(&w, buf, n, now) != PT_OK)
            return PT_ERROR;
        at += n;
    }
    return cache_write_commit(&w, key, vary, names, now);
}

/* ------------------------------------------------------------------ the header filter */

static void not_stored(cache_req *cr, const char *why, bool pass)
{
    pt_log(PT_LOG_DEBUG, "cache: response %u not stored: %s", cr->r->status, why);
    if (pass && cr->filling) {
        /* requests for this key go straight to the origin for a while, not waiting for
         * a fetch that will store nothing (the PASS entry replaces our FILL) */
        uint64_t now = cache_now_ms();
        cache_pass(cr->hash, cr->key, cr->vary, now + CACHE_PASS_S * 1000, now);
    }
    cache_release_marks(cr);
}

/* Is the stale entry fit to stand in for an error (stale-if-error)? */
static bool stale_on_error(cache_req *cr)
{
    if (!cr->have_stale || (cr->stale.e.flags & (CE_MUST_REVALIDATE | CE_NO_CACHE)))
        return false;
    uint32_t age = cache_age(&cr->stale.e, cache_now_ms());
    uint32_t stale = age > cr->stale.e.lifetime ? age - cr->stale.e.lifetime : 0;
    return cr->stale.e.sie && stale <= cr->stale.e.sie && cache_still(&cr->stale);
}

static int stand_in(cache_req *cr, const pt_header *hs, uint32_t n, const char *status)
{
    if (cache_substitute(cr, &cr->stale, hs, n, status) != PT_OK)
        return PT_ERROR;
    cache_release_marks(cr);
    return PT_OK;
}

/* Our revalidation came back 304: the stored response, its head refreshed, is stored
 * again and goes to the client. */
static int revalidated(cache_req *cr)
{
    pt_request *r = cr->r;
    pt_str head = cache_merge_head(r->pool, cr->stale_head, r->resp_headers, r->resp_nheaders);
    uint32_t n = 0;
    pt_header *hs = head.data ? cache_head_fields(r->pool, head, &n) : NULL;
    if (hs == NULL)
        return PT_ERROR;
    cache_reqinfo q = { .get = true, .authorization = false, .no_store = cr->req_cc.no_store,
                        .req_ms = cr->req_ms };
    cache_meta m;
    pt_str names;
    const char *why = NULL;
    bool store = cache_response_meta(&q, cr->rc, cr->stale.e.status, hs, n, cache_now_ms(),
                                     r->pool, &m, &names, &why);
    if (cache_substitute(cr, &cr->stale, hs, n, "REVALIDATED") != PT_OK)
        return PT_ERROR;
    if (!store)
        pt_log(PT_LOG_DEBUG, "cache: revalidated response not stored again: %s", why);
    else if (cache_store_refreshed(&cr->stale, r->pool, head, &m, names, cr->rc->max_object)
             != PT_OK)
        pt_log(PT_LOG_DEBUG, "cache: revalidated response could not be stored again");
    cache_release_marks(cr);
    return PT_OK;
}

/* A 304 to the client's own conditional, from a full response being stored: the client
 * gets the head of a 304 (the session drops the body), the store gets everything. */
static void client_not_modified(cache_req *cr)
{
    pt_request *r = cr->r;
    if (r->status != 200 || (!cr->inm.len && !cr->ims.len)
        || !cache_client_not_modified(r, cr->inm, cr->ims, r->resp_headers, r->resp_nheaders))
        return;
    static const char *const keep[] = { "cache-control", "content-location", "date", "etag",
                                        "expires", "vary", "last-modified", NULL };
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->resp_nheaders; i++)
        for (const char *const *n = keep; *n; n++)
            if (pt_str_caseeq_lit(r->resp_headers[i].name, *n)) {
                r->resp_headers[k++] = r->resp_headers[i];
                break;
            }
    r->resp_nheaders = k;
    r->status = 304;
    r->resp_length = -1;
}

static int begin_store(cache_req *cr)
{
    pt_request *r = cr->r;
    const cache_route_conf *rc = cr->rc;
    uint64_t now = cache_now_ms();
    if (cr->head_req || cr->no_store) {
        not_stored(cr, cr->head_req ? "a HEAD request" : "fetched for this request only",
                   false);
        return PT_DECLINED;
    }
    cache_reqinfo q = {
        .get = r->head.method == PT_M_GET,
        .authorization = pt_http_req_header(r, PT_STR("Authorization")) != NULL,
        .no_store = cr->req_cc.no_store,
        .req_ms = cr->req_ms,
    };
    cache_meta m;
    pt_str names;
    const char *why = NULL;
    if (!cache_response_meta(&q, rc, r->status, r->resp_headers, r->resp_nheaders, now,
                             r->pool, &m, &names, &why)) {
        not_stored(cr, why, r->status < 500);
        return PT_DECLINED;
    }
    if (r->resp_length >= 0 && (uint64_t) r->resp_length > rc->max_object) {
        not_stored(cr, "larger than max_object_size", true);
        return PT_DECLINED;
    }
    pt_str vary = names.len ? cache_variant(r, names) : PT_STR_NULL;
    if (names.len && (vary.data == NULL || vary.len > CACHE_MAX_KEY)) {
        not_stored(cr, "the variant is too long", true);
        return PT_DECLINED;
    }
    pt_str head = cache_head_text(r->pool, r->resp_headers, r->resp_nheaders);
    pt_str req = request_text(r);
    if (head.data == NULL || req.data == NULL)
        return PT_ERROR;
    uint64_t len = r->resp_length >= 0 ? (uint64_t) r->resp_length : UINT64_MAX;
    if (cache_write_begin(&cr->w, &m, cr->key, vary, req, head, len, rc->max_object, now)
        != PT_OK) {
        not_stored(cr, "no room in the cache zone", false);
        return PT_DECLINED;
    }
    cr->vary = vary;
    cr->names = names;
    client_not_modified(cr);
    return PT_OK;
}

int cache_header_filter(pt_request *r)
{
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    if (cr == NULL) {
        pt_http_filter_off(r, &pt_cache_module);
        return PT_OK;
    }
    int rc = PT_DECLINED;
    switch (cr->mode) {
    case CR_SERVE:
        return PT_OK;               /* a hit: cache_serve set the head */
    case CR_INVALIDATE:
        /* RFC 9111 4.4: a successful unsafe request makes what is stored outdated */
        if (r->status >= 200 && r->status < 400)
            cache_purge(cr->key, false, cache_now_ms());
        break;
    case CR_FETCH:
    case CR_REVALIDATE:
        if (r->status >= 500 && stale_on_error(cr)) {
            pt_log(PT_LOG_INFO, "cache: origin answered %u: the stale response is served "
                   "(stale-if-error)", r->status);
            if (r->error_reason == NULL)
                r->error_reason = "origin error: stale response served";
            uint32_t n = 0;
            pt_header *hs = cache_head_fields(r->pool, cr->stale_head, &n);
            return hs && stand_in(cr, hs, n, "STALE") == PT_OK ? PT_OK : PT_ERROR;
        }
        if (cr->mode == CR_REVALIDATE && r->status == 304)
            return revalidated(cr);
        rc = begin_store(cr);
        if (rc == PT_ERROR)
            return PT_ERROR;
        break;
    default:
        break;
    }
    if (cache_add_status(cr, cr->status_text ? cr->status_text : "BYPASS") != PT_OK)
        return PT_ERROR;
    if (rc != PT_OK)
        pt_http_filter_off(r, &pt_cache_module);    /* nothing to store: splice may go on */
    return PT_OK;
}

/* ------------------------------------------------------------------ the body filter */

int cache_body_filter(pt_request *r, const char *data, size_t len, bool last)
{
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    if (cr && cr->substitute)
        return cache_substitute_body(cr, last);
    if (cr && cr->w.open && (len || last)) {
        uint64_t now = cache_now_ms();
        if (len && cache_write(&cr->w, data, len, now) != PT_OK)
            not_stored(cr, "larger than max_object_size, or no room", true);
        if (last && cr->w.open) {
            if (cache_write_commit(&cr->w, cr->key, cr->vary, cr->names, now) == PT_OK)
                pt_log(PT_LOG_DEBUG, "cache: stored %llu body bytes",
                       (unsigned long long) cr->w.body);
            else
                pt_log(PT_LOG_DEBUG, "cache: not stored: purged while written, or no room");
            cache_release_marks(cr);
            cache_wake_waiters(cr->hash);
            cache_wake_waiters(cr->base_hash);
        }
    }
    return pt_http_body_next(r, &pt_cache_module, data, len, last);
}
