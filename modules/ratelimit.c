/* ratelimit: request rates per key, the same for every worker.
 *
 *   filters = { rate_limits = ( { name = "per-ip"; key = "$remote_addr"; rate = "100r/s";
 *                                 burst = 50; status = 429; memory = 1048576; } ); };
 *   routes = ( { ...; rate_limit = "per-ip"; } );      (or [ "a", "b" ]; or in filters.global)
 *
 * Each limit has its own shared zone ("rate_limit:NAME", `memory` bytes) holding a keyed
 * table (server/shm_table.c) of buckets, one per key value (a client address, or any
 * request variable: "$http_x_api_key", "$remote_addr:$host"). A bucket is a GCRA cell: the
 * time at which it would be full again. A request adds one emission interval
 * (period / rate); if that puts the time more than `burst` intervals ahead of now, the
 * request is refused with `status` and Retry-After (seconds until one request fits). So
 * `burst` requests pass at once, the next is refused, and one more fits every interval:
 * a token bucket of `burst` tokens refilled at `rate`, kept as one number. Every check
 * happens under the table's lock, whichever worker takes the request: the limit is exact
 * across workers. A bucket that has refilled is the same as none, so when the zone is full
 * those go first (least recently used first); the table is bounded by `memory`, and the
 * zone (with its buckets) is kept across reloads while name and memory stay the same. An
 * empty key (a header that is missing) is not limited. */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/event.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/shm_table.h"
#include "portico/str.h"
#include "portico/var.h"
#include "ratelimit.h"

#define LIMIT_NAME_MAX 40
#define KEY_MAX        1024

typedef struct {
    uint64_t tat;               /* µs (monotonic): when the bucket is full again */
} bucket;

typedef struct rate_limit {
    const char     *name;
    unsigned        line;
    pt_var          key;
    const char     *key_text;
    uint64_t        interval_us;   /* period / rate */
    uint32_t        rate;
    const char     *rate_text;
    uint32_t        burst;
    uint32_t        status;
    uint64_t        memory;
    pt_shm_table   *table;         /* set in the master once the zone is mapped */
    pt_counter     *refused;
} rate_limit;

typedef struct {
    rate_limit *limits;
    unsigned    nlimits;
} ratelimit_main_conf;

typedef struct {
    config_setting_t  *setting;
    const rate_limit **v;          /* resolved at check */
    unsigned           n;
    const char        *scope;
} ratelimit_route_conf;

pt_module pt_ratelimit_module;

/* ---- configuration ---- */

typedef struct {
    const char *name;
    const char *key;
    const char *rate;
    uint32_t    burst;
    uint32_t    status;
    uint64_t    memory;
} limit_def;

static const pt_conf_key limit_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(limit_def, name), 1, LIMIT_NAME_MAX, NULL },
    { "key", 0, pt_conf_set_str, offsetof(limit_def, key), 1, 1024, NULL },
    { "rate", 0, pt_conf_set_str, offsetof(limit_def, rate), 1, 64, NULL },
    { "burst", 0, pt_conf_set_uint32, offsetof(limit_def, burst), 1, 1000000, NULL },
    { "status", 0, pt_conf_set_uint32, offsetof(limit_def, status), 400, 599, NULL },
    { "memory", 0, pt_conf_set_uint64, offsetof(limit_def, memory), 65536, 1073741824, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool valid_name(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* "100r/s", "10r/m", "2r/h": requests per second, minute or hour. */
static bool parse_rate(const char *s, uint32_t *n, uint64_t *period_ms)
{
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t) (*p - '0');
        if (v > 1000000)
            return false;
    }
    if (p == s || v == 0 || p[0] != 'r' || p[1] != '/' || p[2] == '\0' || p[3] != '\0')
        return false;
    switch (p[2]) {
    case 's': *period_ms = 1000; break;
    case 'm': *period_ms = 60000; break;
    case 'h': *period_ms = 3600000; break;
    default: return false;
    }
    *n = (uint32_t) v;
    return true;
}

static int zone_init(pt_shm_zone *z, bool reused)
{
    rate_limit *l = z->data;
    l->table = pt_shm_table_init(z->addr, z->size, sizeof(bucket), reused);
    if (l->table == NULL) {
        pt_log(PT_LOG_EMERG, "rate_limit \"%s\": cannot lay out its zone", l->name);
        return PT_ERROR;
    }
    return PT_OK;
}

static int parse_limit(pt_conf_ctx *cx, config_setting_t *e, void *arg, void *elem)
{
    ratelimit_main_conf *mc = arg;
    rate_limit *l = elem;
    limit_def d = { .status = 429, .memory = 1048576 };
    if (!config_setting_is_group(e))
        return pt_conf_type_error(cx, e, "a group { name = ...; rate = \"10r/s\"; ... }");
    if (pt_conf_parse_group(cx, e, limit_keys, &d) != PT_OK)
        return PT_ERROR;
    if (d.name == NULL)
        return pt_conf_error(cx, e, "missing key 'name'");
    config_setting_t *ns = config_setting_get_member(e, "name");
    if (!valid_name(d.name))
        return pt_conf_error(cx, ns, "\"%s\": a name is letters, digits, '-', '_' or '.'", d.name);
    for (unsigned j = 0; j < mc->nlimits; j++)
        if (strcmp(mc->limits[j].name, d.name) == 0)
            return pt_conf_error(cx, ns, "\"%s\" is already the name of the rate limit at line %u",
                                 d.name, mc->limits[j].line);
    if (d.rate == NULL)
        return pt_conf_error(cx, e, "missing key 'rate' (e.g. \"100r/s\", \"10r/m\")");
    uint64_t period_ms;
    if (!parse_rate(d.rate, &l->rate, &period_ms))
        return pt_conf_error(cx, config_setting_get_member(e, "rate"), "\"%s\": expected "
                             "N requests per second, minute or hour: \"100r/s\", \"10r/m\", "
                             "\"2r/h\" (N 1..1000000)", d.rate);
    l->name = d.name;
    l->line = pt_conf_setting_line(cx, e);
    l->rate_text = d.rate;
    l->interval_us = period_ms * 1000 / l->rate;
    if (l->interval_us == 0)
        l->interval_us = 1;
    /* default burst: one second's worth (at least 1) */
    l->burst = d.burst ? d.burst
                       : (uint32_t) pt_max((uint64_t) 1, (uint64_t) l->rate * 1000 / period_ms);
    l->status = d.status;
    l->memory = d.memory;
    l->key_text = d.key ? d.key : "$remote_addr";
    if (pt_var_compile(cx, config_setting_get_member(e, "key"), l->key_text, &l->key) != PT_OK)
        return PT_ERROR;
    char zone[64];
    snprintf(zone, sizeof(zone), "rate_limit:%s", l->name);
    if (pt_shm_declare(cx, zone, (size_t) l->memory, zone_init, l) == NULL)
        return PT_ERROR;
    return pt_counter_declare(cx, "rate_limit", l->name, &l->refused);
}

static int set_limits(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    ratelimit_main_conf *mc = base;
    return pt_conf_parse_list(cx, s, "a list ( { name = ...; rate = ...; }, ... )", sizeof(rate_limit), parse_limit, mc,
                              &mc->limits, &mc->nlimits);
}

static int set_refs(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    ratelimit_route_conf *rc = base;
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        rc->setting = s;
        return PT_OK;
    }
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "a rate limit's name, or an array of names");
    if (config_setting_length(s) == 0)
        return pt_conf_error(cx, s, "empty: leave rate_limit out instead");
    for (int i = 0; i < config_setting_length(s); i++)
        if (config_setting_get_string(config_setting_get_elem(s, (unsigned) i)) == NULL)
            return pt_conf_type_error(cx, config_setting_get_elem(s, (unsigned) i), "a string");
    rc->setting = s;
    return PT_OK;
}

static int resolve(pt_conf_ctx *cx, ratelimit_main_conf *mc, ratelimit_route_conf *rc,
                   const pt_route *rt)
{
    if (rc->setting == NULL)
        return PT_OK;
    bool one = config_setting_type(rc->setting) == CONFIG_TYPE_STRING;
    unsigned n = one ? 1 : (unsigned) config_setting_length(rc->setting);
    rc->v = pt_pcalloc(cx->pool, n * sizeof(rate_limit *));
    char scope[48];
    if (rt->global)
        snprintf(scope, sizeof(scope), "filters.global");
    else
        snprintf(scope, sizeof(scope), "route at line %d", rt->line);
    rc->scope = pt_pstrndup(cx->pool, scope, strlen(scope));
    if (rc->v == NULL || rc->scope == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = one ? rc->setting : config_setting_get_elem(rc->setting, i);
        const char *v = config_setting_get_string(e);
        const rate_limit *l = NULL;
        for (unsigned j = 0; j < mc->nlimits && l == NULL; j++)
            if (strcmp(mc->limits[j].name, v) == 0)
                l = &mc->limits[j];
        if (l == NULL)
            return pt_conf_error(cx, e, "\"%s\": no rate limit has that name", v);
        for (unsigned j = 0; j < rc->n; j++)
            if (rc->v[j] == l)
                return pt_conf_error(cx, e, "\"%s\" is listed twice", v);
        rc->v[rc->n++] = l;
    }
    return PT_OK;
}

static int ratelimit_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    ratelimit_main_conf *mc = pt_main_conf(conf, pt_ratelimit_module);
    if (resolve(cx, mc, pt_route_conf(conf->filters_global, pt_ratelimit_module),
                conf->filters_global) != PT_OK)
        return PT_ERROR;
    for (unsigned i = 0; i < conf->nroutes; i++)
        if (resolve(cx, mc, pt_route_conf(&conf->routes[i], pt_ratelimit_module),
                    &conf->routes[i]) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}

/* ---- requests ---- */

static bool refilled(void *value, void *arg)
{
    return ((bucket *) value)->tat <= *(uint64_t *) arg;
}

/* PT_OK: passes; else the µs until one request would fit. Fails open (PT_OK) when the
 * table cannot be locked or has no room even after evicting. */
static int64_t take(const rate_limit *l, const char *key, size_t klen, uint64_t now)
{
    pt_shm_table *t = l->table;
    bool created;
    if (pt_shm_table_lock(t) != PT_OK)
        return PT_OK;
    bucket *b = pt_shm_table_put(t, key, klen, &created, refilled, &now);
    if (b == NULL) {
        /* every bucket looked at still holds a debt: the oldest goes anyway, so the zone
         * stays bounded (that key starts afresh: the limit leaks there, not here) */
        b = pt_shm_table_put(t, key, klen, &created, NULL, NULL);
    }
    if (b == NULL) {
        pt_shm_table_unlock(t);
        pt_log(PT_LOG_WARN, "rate_limit \"%s\": no room in its zone: request not limited "
               "(raise memory)", l->name);
        return PT_OK;
    }
    int64_t wait = ratelimit_gcra(&b->tat, now, l->interval_us, l->burst);
    pt_shm_table_unlock(t);
    return wait;
}

static int refuse(pt_request *r, const ratelimit_route_conf *rc, const rate_limit *l,
                  const char *key, size_t klen, int64_t wait_us)
{
    pt_counter_add(l->refused, 1);
    uint64_t secs = ((uint64_t) wait_us + 999999) / 1000000;
    char *ra = pt_palloc(r->pool, 24);
    if (ra) {
        size_t n = pt_fmt_u64(ra, secs ? secs : 1);
        pt_http_error_header(r, PT_STR("Retry-After"), (pt_str) { n, ra });
    }
    char *why = pt_palloc(r->pool, 256);
    if (why) {
        /* the key may come from the request: printable bytes only, and not too many */
        char k[65];
        size_t n = 0;
        for (size_t i = 0; i < klen && n < 64; i++)
            k[n++] = key[i] >= 0x20 && key[i] < 0x7f && key[i] != '"' ? key[i] : '?';
        k[n] = '\0';
        snprintf(why, 256, "rate limit \"%s\" (%s, burst %u) exceeded for \"%s\"%s (%s)",
                 l->name, l->rate_text, l->burst, k, klen > 64 ? "..." : "", rc->scope);
    }
    return pt_http_deny(r, l->status, why ? why : "rate limit exceeded");
}

/* Runs before routing (r->route: filters.global) and again in the access phase. */
static int ratelimit_check(pt_request *r)
{
    const ratelimit_route_conf *rc = r->route ? pt_route_conf(r->route, pt_ratelimit_module)
                                              : NULL;
    if (rc == NULL || rc->n == 0)
        return PT_DECLINED;
    uint64_t now = pt_loop_cur->now * 1000;
    for (unsigned i = 0; i < rc->n; i++) {
        const rate_limit *l = rc->v[i];
        char key[KEY_MAX];
        size_t klen = pt_var_eval(&l->key, r, r->conn, key, sizeof(key));
        if (klen == 0 || l->table == NULL)
            continue;                   /* no key, no limit */
        int64_t wait = take(l, key, klen, now);
        if (wait > 0)
            return refuse(r, rc, l, key, klen, wait);
    }
    return PT_DECLINED;
}

static const pt_conf_key ratelimit_keys[] = {
    { "rate_limits", PT_SCOPE_FILTERS, set_limits, 0, 0, 0, NULL },
    { "rate_limit", PT_SCOPE_ROUTE | PT_SCOPE_GLOBAL, set_refs, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool ratelimit_rconf_used(const void *v)
{
    const ratelimit_route_conf *rc = v;
    return rc && (rc->n != 0);
}

static bool ratelimit_phase_used(const pt_conf *conf)
{
    return pt_conf_any_route(conf, &pt_ratelimit_module, ratelimit_rconf_used);
}

pt_module pt_ratelimit_module = {
    .name = "ratelimit",
    .keys = ratelimit_keys,
    .main_conf_size = sizeof(ratelimit_main_conf),
    .route_conf_size = sizeof(ratelimit_route_conf),
    .conf_check = ratelimit_conf_check,
    .phase = { [PT_PHASE_REQUEST] = ratelimit_check, [PT_PHASE_ACCESS] = ratelimit_check },
    .phase_used = ratelimit_phase_used,
};
