/* The response cache (RFC 9111), one for all workers, in a shared zone (cache_store.c).
 *
 *   cache = { size_mb = 256; path = "/var/cache/portico/cache.bin";
 *             max_object_size = 1048576; purge_allow = [ "127.0.0.0/8" ]; };
 *   routes = ( { path_prefix = "/static/"; upstream = "app";
 *                cache = { default_ttl_s = 0; key = "$scheme$host$uri$args";
 *                          stale_while_revalidate_s = 30; stale_if_error_s = 300;
 *                          lock_timeout_ms = 5000; }; } );
 *
 * Every request on a cache route is decided in the pre-content phase:
 *   - fresh object: answered from the store (HIT), the proxy never runs;
 *   - stale within stale-while-revalidate: answered at once (STALE, or UPDATING while
 *     another worker's refresh runs) and refreshed once in the background (cache_fetch.c);
 *   - stale otherwise: fetched again with its validators (EXPIRED; a 304 makes it
 *     REVALIDATED and the client gets the stored response), one worker at a time;
 *   - missing: one request goes to the origin (MISS) and is stored while it streams to its
 *     client; concurrent misses for the key, on any worker, wait for it (collapsed) up to
 *     lock_timeout_ms, and are then served from the store;
 *   - PURGE: from purge_allow only.
 * Misses and revalidations switch this module's response filters on for that request
 * (cache_filter.c); a response that is not stored switches them off again, so it still
 * goes by splice. */
#include <stdio.h>

#include "portico/cidr.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/proxy.h"
#include "portico/str.h"
#include "portico/var.h"
#include "cache.h"

#define CACHE_DEFAULT_KEY   "$scheme$host$uri$args"
#define CACHE_MAINTAIN_MS   1000
#define WAIT_FIRST_MS       2       /* polls of another worker's fetch: 2, 4, 8 .. 50 ms */
#define WAIT_MAX_MS         50

static pt_timer   maintain_timer;
static cache_req *waiters;          /* this worker's requests waiting for a fetch */

/* ------------------------------------------------------------------ configuration */

static int set_purge_allow(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    cache_main_conf *mc = base;
    mc->purge_allow_set = true;
    return pt_conf_set_cidr_list(cx, s, k, base);
}

static int set_max_object(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                          void *base)
{
    cache_main_conf *mc = base;
    mc->max_object_set = true;
    return pt_conf_set_uint64(cx, s, k, base);
}

static const pt_conf_key main_keys[] = {
    { "size_mb", 0, pt_conf_set_uint32, offsetof(cache_main_conf, size_mb), 1, 1048576, NULL },
    { "path", 0, pt_conf_set_str, offsetof(cache_main_conf, path), 1, 4095, NULL },
    { "max_object_size", 0, set_max_object, offsetof(cache_main_conf, max_object_size),
      1, 1099511627776LL, NULL },
    { "purge_allow", 0, set_purge_allow, offsetof(cache_main_conf, purge_allow), 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_main(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    cache_main_conf *mc = base;
    if (pt_conf_parse_group(cx, s, main_keys, mc) != PT_OK)
        return PT_ERROR;
    if (mc->size_mb == 0)
        return pt_conf_error(cx, s, "needs size_mb (1..1048576): the size of the shared "
                             "cache zone in MiB");
    uint64_t size = (uint64_t) mc->size_mb << 20;
    if (!mc->max_object_set)
        mc->max_object_size = pt_min((uint64_t) 1048576, size / 8);
    else if (mc->max_object_size > size / 2)
        return pt_conf_error(cx, config_setting_get_member(s, "max_object_size"),
                             "%llu is more than half the cache (size_mb = %u): at most %llu",
                             (unsigned long long) mc->max_object_size, mc->size_mb,
                             (unsigned long long) (size / 2));
    mc->set = true;
    mc->setting = s;
    return PT_OK;
}

static int set_key(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    cache_route_conf *rc = base;
    const char *text = config_setting_get_string(s);
    if (text == NULL)
        return pt_conf_type_error(cx, s, "a string such as \"$host$uri\"");
    if (pt_var_compile(cx, s, text, &rc->key) != PT_OK)
        return PT_ERROR;
    unsigned nvars = 0;
    for (unsigned i = 0; i < rc->key.nparts; i++)
        nvars += rc->key.parts[i].kind != PT_VAR_LITERAL;
    if (nvars == 0)
        return pt_conf_error(cx, s, "\"%s\" has no variable: every request would get the "
                             "same object", text);
    rc->key_set = true;
    return PT_OK;
}

static const pt_conf_key route_keys[] = {
    { "enabled", 0, pt_conf_set_bool, offsetof(cache_route_conf, enabled), 0, 0, NULL },
    { "default_ttl_s", 0, pt_conf_set_uint32, offsetof(cache_route_conf, default_ttl_s),
      0, 315360000, NULL },
    { "key", 0, set_key, 0, 0, 0, NULL },
    { "stale_while_revalidate_s", 0, pt_conf_set_uint32, offsetof(cache_route_conf, swr_s),
      0, 31536000, NULL },
    { "stale_if_error_s", 0, pt_conf_set_uint32, offsetof(cache_route_conf, sie_s),
      0, 31536000, NULL },
    { "lock_timeout_ms", 0, pt_conf_set_uint32, offsetof(cache_route_conf, lock_timeout_ms),
      0, 600000, NULL },
    { "status_header", 0, pt_conf_set_bool, offsetof(cache_route_conf, status_header),
      0, 0, NULL },
    { "store_set_cookie", 0, pt_conf_set_bool, offsetof(cache_route_conf, store_set_cookie),
      0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_route(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    cache_route_conf *rc = base;
    rc->enabled = true;
    rc->lock_timeout_ms = 5000;
    rc->status_header = true;
    if (pt_conf_parse_group(cx, s, route_keys, rc) != PT_OK)
        return PT_ERROR;
    if (!rc->key_set && pt_var_compile(cx, s, CACHE_DEFAULT_KEY, &rc->key) != PT_OK)
        return PT_ERROR;
    rc->set = true;
    rc->setting = s;
    return PT_OK;
}

static const pt_conf_key cache_keys[] = {
    { "cache", PT_SCOPE_MAIN, set_main, 0, 0, 0, NULL },
    { "cache", PT_SCOPE_ROUTE, set_route, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int zone_ready(pt_shm_zone *z, bool reused)
{
    return cache_zone_setup(z, reused, 0);
}

static int cache_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    cache_main_conf *mc = pt_main_conf(conf, pt_cache_module);
    bool used = false;
    for (unsigned i = 0; i < conf->nroutes; i++) {
        pt_route *rt = &conf->routes[i];
        cache_route_conf *rc = pt_route_conf(rt, pt_cache_module);
        if (!rc->set || !rc->enabled)
            continue;
        if (!mc->set)
            return pt_conf_error(cx, rc->setting, "a route's cache needs the top-level "
                                 "cache = { size_mb = ...; } (the shared zone)");
        rc->up = pt_proxy_route_upstream(rt);
        if (rc->up == NULL)
            return pt_conf_error(cx, rc->setting, "the cache stores what an upstream "
                                 "answers: this route has no upstream");
        rc->max_object = mc->max_object_size;
        used = true;
    }
    if (!mc->set)
        return PT_OK;
    if (!used)
        pt_log(PT_LOG_DEBUG, "cache: no route uses the cache");
    size_t size = (size_t) mc->size_mb << 20;
    mc->zone = mc->path ? pt_shm_declare_file(cx, "cache", size, mc->path, zone_ready, mc)
                        : pt_shm_declare(cx, "cache", size, zone_ready, mc);
    return mc->zone ? PT_OK : PT_ERROR;
}

/* ------------------------------------------------------------------ process */

bool cache_alive(int32_t pid)
{
    if (pid <= 0)
        return false;
    if (pt_stats_zone == NULL)
        return true;
    for (unsigned i = 0; i < pt_nelems(pt_stats_zone->worker); i++)
        if (__atomic_load_n(&pt_stats_zone->worker[i].pid, __ATOMIC_RELAXED) == pid)
            return true;
    return false;
}

uint64_t cache_now_ms(void)
{
    return pt_loop_cur ? pt_loop_cur->now_real : 0;
}

static void maintain_fire(pt_timer *t)
{
    cache_maintain(cache_now_ms());
    pt_loop_timer(pt_loop_cur, t, CACHE_MAINTAIN_MS);
}

static int cache_worker_init(pt_cycle *cy)
{
    cache_main_conf *mc = pt_main_conf(cy->conf, pt_cache_module);
    if (!mc->set || mc->zone == NULL || mc->zone->addr == NULL) {
        cache_z = NULL;
        return PT_OK;
    }
    cache_zone_use(mc->zone->addr);
    cache_env_cur.pid = pt_stats_mine ? (int32_t) pt_stats_mine->pid : 0;
    cache_env_cur.alive = cache_alive;
    cache_env_cur.pin_limit_s = cy->conf->limits.send_timeout_ms / 1000 + 10;
    pt_timer_init(&maintain_timer, maintain_fire, NULL);
    pt_loop_timer(pt_loop_cur, &maintain_timer, CACHE_MAINTAIN_MS);
    cache_metrics_init();
    return PT_OK;
}

static void cache_worker_exit(pt_cycle *cy)
{
    if (cache_z == NULL)
        return;
    pt_timer_del(&pt_loop_cur->timers, &maintain_timer);
    cache_fetch_stop_all();
}

/* ------------------------------------------------------------------ helpers */

/* The key: every variable's value followed by a NUL, so that no two requests that differ
 * give the same key ("/a" + "x" is not "/ax" + ""). */
static pt_str make_key(pt_request *r, const cache_route_conf *rc)
{
    size_t len = 0;
    for (unsigned i = 0; i < rc->key.nparts; i++)
        len += pt_var_value(&rc->key.parts[i], r, r->conn).len + 1;
    if (len > CACHE_MAX_KEY)
        return PT_STR_NULL;
    char *k = pt_palloc(r->pool, len + 1), *p = k;
    if (k == NULL)
        return PT_STR_NULL;
    for (unsigned i = 0; i < rc->key.nparts; i++) {
        const pt_var_part *g = &rc->key.parts[i];
        pt_str v = pt_var_value(g, r, r->conn);
        if (v.len)
            memcpy(p, v.data, v.len);
        p += v.len;
        if (g->kind != PT_VAR_LITERAL)
            *p++ = '\0';
    }
    return (pt_str) { (size_t) (p - k), k };
}

pt_str cache_variant(pt_request *r, pt_str names)
{
    size_t len = 0;
    const char *p = names.data, *end = names.data + names.len;
    for (uint32_t i = 0; i < r->head.nheaders; i++)
        len += r->head.headers[i].value.len + 2;
    len += names.len * 2 + 1;
    char *out = pt_palloc(r->pool, len), *o = out;
    if (out == NULL)
        return PT_STR_NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL)
            break;
        pt_str name = { (size_t) (nl - p), p };
        memcpy(o, name.data, name.len);
        o += name.len;
        bool any = false;
        for (uint32_t i = 0; i < r->head.nheaders; i++) {
            if (!pt_str_caseeq(r->head.headers[i].name, name))
                continue;
            *o++ = any ? ',' : ':';
            if (r->head.headers[i].value.len)
                memcpy(o, r->head.headers[i].value.data, r->head.headers[i].value.len);
            o += r->head.headers[i].value.len;
            any = true;
        }
        *o++ = '\n';
        p = nl + 1;
    }
    return (pt_str) { (size_t) (o - out), out };
}

pt_str cache_copy(pt_pool *pool, const cache_snap *s, uint64_t at, uint64_t n)
{
    char *buf = pt_palloc(pool, (size_t) n + 1);
    if (buf == NULL || !cache_read(s, NULL, at, (size_t) n, buf))
        return PT_STR_NULL;
    buf[n] = '\0';
    return (pt_str) { (size_t) n, buf };
}

static pt_header *req_field(pt_request *r, const char *name)
{
    return pt_http_req_header(r, (pt_str) { strlen(name), name });
}

/* ------------------------------------------------------------------ waiting */

static void waiter_unlink(cache_req *cr)
{
    if (!cr->waiting)
        return;
    cr->waiting = false;
    if (cr->wprev)
        cr->wprev->wnext = cr->wnext;
    else
        waiters = cr->wnext;
    if (cr->wnext)
        cr->wnext->wprev = cr->wprev;
    cr->wprev = cr->wnext = NULL;
}

static void wait_resume(pt_timer *t)
{
    cache_req *cr = t->data;
    waiter_unlink(cr);
    pt_http_run_phases(cr->r);          /* the pre-content phase looks again */
}

/* A fetch of this worker ended (stored or not): its waiters look again now rather than at
 * their next poll. Other workers' waiters poll. */
void cache_wake_waiters(uint64_t hash)
{
    for (cache_req *cr = waiters; cr; cr = cr->wnext)
        if (cr->hash == hash || cr->base_hash == hash)
            pt_loop_timer(pt_loop_cur, &cr->timer, 0);
}

static void wait_abort(pt_request *r)
{
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    if (cr) {
        waiter_unlink(cr);
        pt_timer_del(&pt_loop_cur->timers, &cr->timer);
    }
}

static int wait_for_fetch(cache_req *cr)
{
    uint64_t now = pt_loop_cur->now;
    if (cr->wait_until == 0)
        cr->wait_until = now + cr->rc->lock_timeout_ms;
    uint32_t step = WAIT_FIRST_MS << pt_min(cr->waits, 5u);
    cr->waits++;
    cr->mode = CR_WAIT;
    cr->waiting = true;
    cr->wprev = NULL;
    cr->wnext = waiters;
    if (waiters)
        waiters->wprev = cr;
    waiters = cr;
    cr->r->on_abort = wait_abort;
    pt_loop_timer(pt_loop_cur, &cr->timer,
                  pt_min((uint64_t) pt_min(step, (uint32_t) WAIT_MAX_MS), cr->wait_until - now));
    return PT_AGAIN;
}

void cache_release_marks(cache_req *cr)
{
    if (cr->filling) {
        cr->filling = false;
        cache_fill_end(&cr->fill);
        cache_wake_waiters(cr->fill.e.hash);
    }
    if (cr->marked) {
        cr->marked = false;
        cache_unmark(&cr->stale);
        cache_wake_waiters(cr->stale.e.hash);
    }
}

/* ------------------------------------------------------------------ the decision */

/* The origin will be asked: the client's conditionals go (this cache wants the whole
 * response to store, and answers them itself), ours come for a revalidation. */
static int go_to_origin(cache_req *cr, unsigned mode, const char *status)
{
    pt_request *r = cr->r;
    cr->mode = mode;
    cr->status_text = status;
    cr->req_ms = cache_now_ms();
    r->cache_status = status;
    if (mode == CR_FETCH || mode == CR_REVALIDATE) {
        pt_header *h = req_field(r, "if-none-match");
        if (h)
            cr->inm = h->value;
        h = req_field(r, "if-modified-since");
        if (h)
            cr->ims = h->value;
        cr->cond_stripped = true;
        static const char *const cond[] = { "If-None-Match", "If-Modified-Since", "If-Match",
                                            "If-Unmodified-Since", "If-Range", NULL };
        for (const char *const *c = cond; *c; c++)
            pt_http_req_header_del(r, (pt_str) { strlen(*c), *c });
    }
    if (mode == CR_REVALIDATE) {
        uint32_t n = 0;
        pt_header *hs = cache_head_fields(r->pool, cr->stale_head, &n);
        const pt_header *et = hs ? pt_h1_find(hs, n, PT_STR("ETag")) : NULL;
        const pt_header *lm = hs ? pt_h1_find(hs, n, PT_STR("Last-Modified")) : NULL;
        if ((et && pt_http_req_header_set(r, PT_STR("If-None-Match"), et->value) != PT_OK)
            || (lm && pt_http_req_header_set(r, PT_STR("If-Modified-Since"), lm->value) != PT_OK))
            return PT_ERROR;
    }
    if (mode != CR_BYPASS || cr->rc->status_header)
        if (pt_http_filter_on(r, &pt_cache_module) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}

static int bypass(cache_req *cr)
{
    return go_to_origin(cr, CR_BYPASS, "BYPASS");
}

/* Reads what a revalidation or a refresh needs of a stale entry: its head, and the Vary
 * names of its key. */
static bool keep_stale(cache_req *cr, const cache_snap *s)
{
    pt_request *r = cr->r;
    cr->stale = *s;
    cr->stale_head = cache_copy(r->pool, s, CACHE_HEAD_AT(&s->e), s->e.head_len);
    cr->have_stale = cr->stale_head.data != NULL;
    return cr->have_stale;
}

static bool fresh_enough(cache_req *cr, const cache_entry *e, uint32_t age)
{
    const cache_cc *q = &cr->req_cc;
    if (age >= e->lifetime || (e->flags & CE_NO_CACHE) || cr->force_validate)
        return false;
    if (q->max_age >= 0 && age > q->max_age)
        return false;
    if (q->min_fresh >= 0 && (int64_t) (e->lifetime - age) < q->min_fresh)
        return false;
    return true;
}

/* A stored object was found for the request's key and variant. */
static int found_object(cache_req *cr, cache_snap *s, pt_str names)
{
    pt_request *r = cr->r;
    const cache_route_conf *rc = cr->rc;
    uint64_t now = cache_now_ms();
    if (req_field(r, "authorization") && !(s->e.flags & CE_AUTH_OK)) {
        cr->no_store = false;
        return go_to_origin(cr, CR_FETCH, "MISS");  /* stored for others: not for this one */
    }
    uint32_t age = cache_age(&s->e, now);
    if (fresh_enough(cr, &s->e, age)) {
        int rc2 = cache_serve(cr, s, "HIT");
        return rc2 == PT_DECLINED ? PT_DECLINED : rc2;
    }
    uint32_t stale = age > s->e.lifetime ? age - s->e.lifetime : 0;
    bool may_stale = !(s->e.flags & (CE_MUST_REVALIDATE | CE_NO_CACHE)) && !cr->force_validate;
    if (may_stale && cr->req_cc.max_stale >= 0 && stale <= cr->req_cc.max_stale)
        return cache_serve(cr, s, "STALE");     /* the client takes it stale */
    if (may_stale && s->e.swr && stale <= s->e.swr) {
        if (cache_updating(&s->e, now))
            return cache_serve(cr, s, "UPDATING");
        if (cache_mark(s, now + CACHE_UPDATE_S * 1000, now)) {
            if (cache_fetch_start(rc, r->route, s, names) != PT_OK)
                cache_unmark(s);
            return cache_serve(cr, s, "STALE");
        }
        return cache_serve(cr, s, "UPDATING");
    }
    if (cr->req_cc.only_if_cached) {
        r->error_reason = "only-if-cached and the stored response is stale";
        return 504;
    }
    /* to the origin, one worker at a time: the others wait for its answer */
    if (!cr->lock_waited && rc->lock_timeout_ms && cache_updating(&s->e, now))
        return wait_for_fetch(cr);
    if (!keep_stale(cr, s))
        return PT_DECLINED;                 /* gone meanwhile: look again */
    cr->stale_names = names;
    cr->marked = !cr->lock_waited && cache_mark(s, now + CACHE_UPDATE_S * 1000, now);
    bool validators = s->e.flags & (CE_ETAG | CE_LAST_MODIFIED);
    if (r->head.method == PT_M_HEAD)
        return go_to_origin(cr, CR_FETCH, "EXPIRED");
    return go_to_origin(cr, validators ? CR_REVALIDATE : CR_FETCH, "EXPIRED");
}

static int lookup_and_decide(cache_req *cr)
{
    pt_request *r = cr->r;
    const cache_route_conf *rc = cr->rc;
    for (unsigned round = 0; round < 4; round++) {
        cache_snap s;
        uint64_t now = cache_now_ms();
        pt_str names = PT_STR_NULL;
        cr->vary = PT_STR_NULL;
        cr->hash = cr->base_hash;
        int rc2 = cache_lookup(cr->base_hash, cr->key, PT_STR_NULL, &s);
        if (rc2 == PT_OK && s.e.kind == CK_VARY) {
            names = cache_copy(r->pool, &s, CACHE_HEAD_AT(&s.e), s.e.head_len);
            if (names.data == NULL)
                continue;
            cr->vary = cache_variant(r, names);
            if (cr->vary.len > CACHE_MAX_KEY)
                return bypass(cr);
            cr->hash = cache_hash(cr->key, cr->vary);
            rc2 = cache_lookup(cr->hash, cr->key, cr->vary, &s);
        }
        if (rc2 == PT_OK && s.e.kind == CK_OBJECT) {
            int d = found_object(cr, &s, names);
            if (d == PT_DECLINED)
                continue;
            return d;
        }
        if (rc2 == PT_OK && s.e.kind == CK_FILL && cache_env_cur.alive(s.e.owner)
            && s.e.until > now && !cr->lock_waited && rc->lock_timeout_ms)
            return wait_for_fetch(cr);
        /* a miss */
        if (cr->req_cc.only_if_cached) {
            r->error_reason = "only-if-cached and nothing is stored";
            return 504;
        }
        if (r->head.method == PT_M_HEAD || cr->lock_waited
            || (rc2 == PT_OK && s.e.kind == CK_PASS && s.e.until > now)
            || rc->lock_timeout_ms == 0) {
            /* HEAD is not stored; after a wait, or on a key whose responses are not
             * stored, nobody waits for this one */
            return go_to_origin(cr, CR_FETCH, "MISS");
        }
        cache_snap found;
        if (cache_fill_begin(cr->hash, cr->key, cr->vary, now + rc->lock_timeout_ms, now,
                             &cr->fill, &found)) {
            cr->filling = true;
            return go_to_origin(cr, CR_FETCH, "MISS");
        }
        if (found.off == 0)                 /* no room for the fill entry */
            return go_to_origin(cr, CR_FETCH, "MISS");
        /* something arrived meanwhile: decide on it */
    }
    return go_to_origin(cr, CR_FETCH, "MISS");
}

/* ------------------------------------------------------------------ PURGE */

static int purge(cache_req *cr)
{
    pt_request *r = cr->r;
    cache_main_conf *mc = pt_main_conf(pt_cycle_cur->conf, pt_cache_module);
    if (!mc->purge_allow_set || !pt_cidr_list_match(&mc->purge_allow, &r->conn->peer.sa)) {
        r->error_reason = mc->purge_allow_set ? "PURGE from an address not in purge_allow"
                                              : "PURGE with no purge_allow configured";
        pt_log(PT_LOG_INFO, "refused request from %s: 403 Forbidden (%s)", r->conn->peer_ip,
               r->error_reason);
        return 403;
    }
    pt_str key = cr->key;
    bool prefix = false;
    if (r->path.len && r->path.data[r->path.len - 1] == '*') {
        /* the key up to the '*' that ends the path's value */
        for (size_t i = key.len; i-- > 1;) {
            if (key.data[i] == '\0' && key.data[i - 1] == '*') {
                key.len = i - 1;
                prefix = true;
                break;
            }
        }
    }
    uint64_t n = cache_purge(key, prefix, cache_now_ms());
    pt_log(PT_LOG_INFO, "cache: PURGE %.*s from %s: %llu objects removed",
           (int) pt_min(r->head.target.len, 256), r->head.target.data, r->conn->peer_ip,
           (unsigned long long) n);
    char *body = pt_palloc(r->pool, 64);
    if (body == NULL)
        return 500;
    int len = snprintf(body, 64, n ? "purged %llu\n" : "not cached\n", (unsigned long long) n);
    return pt_http_respond(r, n ? 200 : 404, PT_STR("text/plain"), (pt_str) { (size_t) len, body });
}

/* ------------------------------------------------------------------ the phase */

static bool unsafe_method(pt_method m)
{
    return m == PT_M_POST || m == PT_M_PUT || m == PT_M_DELETE || m == PT_M_PATCH
           || m == PT_M_OTHER;
}

static int cache_precontent(pt_request *r)
{
    const cache_route_conf *rc = r->route ? pt_route_conf(r->route, pt_cache_module) : NULL;
    if (rc == NULL || !rc->set || !rc->enabled || cache_z == NULL)
        return PT_DECLINED;
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    if (cr) {
        if (cr->mode != CR_WAIT)
            return PT_OK;
        /* resumed: another worker's fetch ended, or the wait is over */
        r->on_abort = NULL;
        if (pt_loop_cur->now >= cr->wait_until)
            cr->lock_waited = true;
        return lookup_and_decide(cr);
    }
    cr = pt_pcalloc(r->pool, sizeof(*cr));
    if (cr == NULL)
        return PT_ERROR;
    cr->r = r;
    cr->rc = rc;
    pt_timer_init(&cr->timer, wait_resume, cr);
    pt_req_set_ctx(r, pt_cache_module, cr);

    cr->key = make_key(r, rc);
    bool purging = r->head.method == PT_M_OTHER
                   && pt_str_eq(r->head.method_name, PT_STR("PURGE"));
    if (cr->key.data == NULL)
        return purging ? 414 : bypass(cr);
    cr->base_hash = cache_hash(cr->key, PT_STR_NULL);
    cr->hash = cr->base_hash;
    if (purging)
        return purge(cr);
    if (r->head.method != PT_M_GET && r->head.method != PT_M_HEAD) {
        if (unsafe_method(r->head.method)) {
            cr->mode = CR_INVALIDATE;       /* a success makes the stored one outdated */
            cr->status_text = r->cache_status = "BYPASS";
            return pt_http_filter_on(r, &pt_cache_module) == PT_OK ? PT_OK : PT_ERROR;
        }
        return bypass(cr);
    }
    cache_cc_parse(r->head.headers, r->head.nheaders, &cr->req_cc);
    if (cr->req_cc.no_store || req_field(r, "range"))
        return bypass(cr);              /* nothing stored for it; ranges are not kept */
    pt_header *pragma = req_field(r, "pragma");
    cr->force_validate = cr->req_cc.no_cache || cr->req_cc.max_age == 0
                         || (!cr->req_cc.present && pragma
                             && pt_h1_list_has(pragma->value, PT_STR("no-cache")));
    cr->head_req = r->head.method == PT_M_HEAD;
    return lookup_and_decide(cr);
}

static void cache_log(pt_request *r)
{
    cache_req *cr = pt_req_ctx(r, pt_cache_module);
    if (cr == NULL)
        return;
    waiter_unlink(cr);
    pt_timer_del(&pt_loop_cur->timers, &cr->timer);
    if (cr->w.open) {
        cache_write_abort(&cr->w);          /* the response never ended */
        pt_log(PT_LOG_DEBUG, "cache: not stored: the response did not complete");
    }
    cache_release_marks(cr);
    if (cr->pinned) {
        cr->pinned = false;
        cache_unpin(&cr->src);
    }
    if (r->cache_status == NULL)
        r->cache_status = cr->status_text;
    cache_metrics_count(r->cache_status);
}

static bool rconf_used(const void *v)
{
    const cache_route_conf *rc = v;
    return rc && rc->set && rc->enabled;
}

static bool cache_phase_used(const pt_conf *conf)
{
    return pt_conf_any_route(conf, &pt_cache_module, rconf_used);
}

pt_module pt_cache_module = {
    .name = "cache",
    .keys = cache_keys,
    .main_conf_size = sizeof(cache_main_conf),
    .route_conf_size = sizeof(cache_route_conf),
    .conf_check = cache_conf_check,
    .worker_init = cache_worker_init,
    .worker_exit = cache_worker_exit,
    .phase = { [PT_PHASE_PRECONTENT] = cache_precontent },
    .phase_used = cache_phase_used,
    .header_filter_order = 10,
    .header_filter = cache_header_filter,
    .body_filter_order = 10,
    .body_filter = cache_body_filter,
    .log = cache_log,
    .metric_families = cache_metric_families,
    .metrics_collect = cache_metrics_collect,
    .status_collect = cache_status_collect,
};
