/* Background refreshes (stale-while-revalidate): the stale response was already served,
 * and one request, for every worker (the entry's update mark), goes to the origin with no
 * client behind it, on the route's upstream exchange (pt_upx with r = NULL). Its request
 * is the one the stored object records (target and Host), with the request fields the
 * object's variant was chosen by and the stored validators; its response is stored as a
 * miss's would be: a 304 refreshes the stored head, a storable answer replaces the
 * object, anything else leaves the stale one to age out. */
#include <stdio.h>
#include <stdlib.h>

#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/proxy.h"
#include "portico/str.h"
#include "portico/upstream.h"
#include "cache.h"

typedef struct cache_fetch {
    pt_upx                  x;
    pt_pool                *pool;
    const cache_route_conf *rc;
    const pt_route         *rt;
    cache_snap              stale;
    pt_str                  key, vary, req, head;
    pt_str                  target;     /* for logs */
    cache_writer            w;
    pt_str                  names;
    uint64_t                req_ms;
    const char             *outcome;    /* when nothing is being stored */
    struct cache_fetch     *prev, *next;
} cache_fetch;

static cache_fetch *fetches;        /* this worker's refreshes under way */

static void fetch_free(cache_fetch *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else if (fetches == f)
        fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    if (f->w.open)
        cache_write_abort(&f->w);
    cache_unmark(&f->stale);
    cache_wake_waiters(f->stale.e.hash);
    pt_pool_destroy(f->pool);
    free(f);
}

static void fetch_end(cache_fetch *f, const char *outcome)
{
    pt_log(PT_LOG_INFO, "cache: background refresh of %.*s: %s",
           (int) pt_min(f->target.len, 256), f->target.data, outcome);
    fetch_free(f);
}

/* The request fields a variant was chosen by ("name:v1,v2\n"...), to send again. */
static pt_header *variant_fields(pt_pool *pool, pt_str vary, uint32_t extra, uint32_t *n)
{
    uint32_t lines = 0;
    for (size_t i = 0; i < vary.len; i++)
        lines += vary.data[i] == '\n';
    pt_header *hs = pt_palloc(pool, (lines + extra + 1) * sizeof(*hs));
    if (hs == NULL)
        return NULL;
    uint32_t k = 0;
    const char *p = vary.data, *end = vary.data + vary.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL)
            break;
        const char *colon = memchr(p, ':', (size_t) (nl - p));
        if (colon) {                    /* a name without ':' was absent from the request */
            hs[k].name = (pt_str) { (size_t) (colon - p), p };
            hs[k].value = (pt_str) { (size_t) (nl - colon - 1), colon + 1 };
            k++;
        }
        p = nl + 1;
    }
    *n = k;
    return hs;
}

static int fetch_body(pt_upx *x, const char **d, size_t *n)
{
    return PT_DONE;
}

/* Reads the response body: into the store when it is being stored, else dropped. */
static void fetch_data(pt_upx *x)
{
    cache_fetch *f = x->owner;
    for (;;) {
        const char *d;
        size_t n;
        int rc = pt_upx_read(x, &d, &n);
        if (rc == PT_AGAIN || rc == PT_ERROR)
            return;                     /* more later, or fetch_fail ran */
        uint64_t now = cache_now_ms();
        if (n && f->w.open && cache_write(&f->w, d, n, now) != PT_OK)
            pt_log(PT_LOG_DEBUG, "cache: background refresh not stored: too big or no room");
        if (rc == PT_DONE) {
            const char *outcome = f->outcome;
            if (f->w.open)
                outcome = cache_write_commit(&f->w, f->key, f->vary, f->names, now) == PT_OK
                          ? "stored" : "not stored (purged meanwhile, or no room)";
            pt_upx_finish(x);
            fetch_end(f, outcome);
            return;
        }
    }
}

static void fetch_head(pt_upx *x)
{
    cache_fetch *f = x->owner;
    pt_header *hs;
    uint32_t n;
    f->outcome = "not stored";
    unsigned status = x->ri.status;
    uint64_t now = cache_now_ms();
    if (pt_proxy_response_fields(f->rt, f->pool, x->resp.headers, x->resp.nheaders, &hs, &n)
        != PT_OK) {
        pt_upx_abort(x);
        fetch_end(f, "no memory");
        return;
    }
    cache_reqinfo q = { .get = true, .req_ms = f->req_ms };
    cache_meta m;
    const char *why = NULL;
    if (status == 304) {
        pt_str head = cache_merge_head(f->pool, f->head, hs, n);
        uint32_t nm = 0;
        pt_header *mh = head.data ? cache_head_fields(f->pool, head, &nm) : NULL;
        f->outcome = "revalidated (304), not stored again";
        if (mh && cache_response_meta(&q, f->rc, f->stale.e.status, mh, nm, now, f->pool, &m,
                                      &f->names, &why)
            && cache_store_refreshed(&f->stale, f->pool, head, &m, f->names, f->rc->max_object)
               == PT_OK)
            f->outcome = "revalidated (304)";
        fetch_data(x);                  /* the (empty) body, then the end */
        return;
    }
    if (!cache_response_meta(&q, f->rc, status, hs, n, now, f->pool, &m, &f->names, &why)) {
        pt_log(PT_LOG_DEBUG, "cache: background refresh: response %u not stored: %s", status,
               why);
    } else {
        pt_str head = cache_head_text(f->pool, hs, n);
        uint64_t len = x->ri.body == PT_BODY_LENGTH ? (uint64_t) x->ri.content_length
                                                    : UINT64_MAX;
        if (head.data && (len == UINT64_MAX || len <= f->rc->max_object))
            cache_write_begin(&f->w, &m, f->key, f->vary, f->req, head, len,
                              f->rc->max_object, now);
    }
    fetch_data(x);
}

static void fetch_fail(pt_upx *x)
{
    cache_fetch *f = x->owner;
    pt_log(PT_LOG_INFO, "cache: background refresh of %.*s failed: %s (the stale response "
           "stays)", (int) pt_min(f->target.len, 256), f->target.data, x->why ? x->why : "failed");
    fetch_free(f);
}

static const pt_upx_handler fetch_handler = {
    .body = fetch_body,
    .head = fetch_head,
    .data = fetch_data,
    .fail = fetch_fail,
};

int cache_fetch_start(const cache_route_conf *rc, const pt_route *rt, const cache_snap *s,
                      pt_str names)
{
    cache_fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return PT_ERROR;
    f->pool = pt_pool_create(4096);
    if (f->pool == NULL) {
        free(f);
        return PT_ERROR;
    }
    f->rc = rc;
    f->rt = rt;
    f->stale = *s;
    const cache_entry *e = &s->e;
    pt_str pre = cache_copy(f->pool, s, 0, CACHE_BODY_AT(e));
    if (pre.data == NULL)
        goto failed;
    f->key = (pt_str) { e->key_len, pre.data };
    f->vary = (pt_str) { e->vary_len, pre.data + e->key_len };
    f->req = (pt_str) { e->req_len, pre.data + e->key_len + e->vary_len };
    f->head = (pt_str) { e->head_len, pre.data + CACHE_HEAD_AT(e) };
    const char *nl = memchr(f->req.data, '\n', f->req.len);
    if (nl == NULL)
        goto failed;
    pt_str target = { (size_t) (nl - f->req.data), f->req.data };
    f->target = target;
    pt_str authority = { f->req.len - target.len - 1, nl + 1 };
    uint32_t nh = 0, ns = 0;
    pt_header *hs = variant_fields(f->pool, f->vary, 2, &nh);
    pt_header *stored = cache_head_fields(f->pool, f->head, &ns);
    if (hs == NULL || stored == NULL)
        goto failed;
    const pt_header *et = pt_h1_find(stored, ns, PT_STR("ETag"));
    const pt_header *lm = pt_h1_find(stored, ns, PT_STR("Last-Modified"));
    if (et)
        hs[nh++] = (pt_header) { PT_STR("If-None-Match"), et->value };
    if (lm)
        hs[nh++] = (pt_header) { PT_STR("If-Modified-Since"), lm->value };
    pt_upx_init(&f->x, rc->up, &fetch_handler, f, NULL);
    f->x.pool = f->pool;
    if (pt_proxy_detached_request(rt, f->pool, &f->x.req, PT_STR("GET"), target, authority,
                                  hs, nh) != PT_OK)
        goto failed;
    f->req_ms = cache_now_ms();
    f->next = fetches;
    if (fetches)
        fetches->prev = f;
    fetches = f;
    (void) names;
    pt_log(PT_LOG_DEBUG, "cache: background refresh of %.*s", (int) pt_min(f->target.len, 256),
           f->target.data);
    pt_upx_start(&f->x);                /* may fail at once: fetch_fail frees f */
    return PT_OK;

failed:
    pt_pool_destroy(f->pool);
    free(f);
    return PT_ERROR;
}

void cache_fetch_stop_all(void)
{
    while (fetches) {
        cache_fetch *f = fetches;
        pt_upx_abort(&f->x);
        fetch_free(f);
    }
}
