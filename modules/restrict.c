/* restrict: limits a route sets for its own requests, and the methods every request may
 * use.
 *
 *   routes = ( { path_prefix = "/upload/"; max_body_size = 104857600L; max_headers = 30; ... },
 *              { path_prefix = "/api/"; max_body_size = 65536; ... } );
 *   filters = { global = { methods = [ "GET", "HEAD", "POST" ]; }; };
 *
 * max_body_size replaces limits.max_body_size for the route's requests, up or down: a
 * Content-Length over it is refused (413) before any body byte is read, and a chunked body
 * when its total passes it. max_headers refuses (431) a request with more header fields
 * than that (limits.max_headers still bounds what the parser takes). A route's methods are
 * a routing condition (a request that only the method keeps from a route gets 405 with
 * Allow: see the core's routes); filters.global's methods refuse any other method (405
 * with Allow) before routing. Refusals are logged with the limit and the route, and
 * counted in "restrict:max_body_size", "restrict:max_headers" and "restrict:methods". */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/cycle-t.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"

typedef struct {
    uint64_t    max_body_size;
    bool        has_max_body_size;
    uint32_t    max_headers;       /* 0: not set */
    pt_str     *methods;           /* filters.global: the only methods allowed */
    unsigned    nmethods;
    pt_str      allow;             /* "GET, HEAD, POST" */
    const char *scope;
} restrict_conf;

typedef struct {
    pt_counter *body, *headers, *methods;
} restrict_main_conf;

pt_module pt_restrict_module;

static int set_body(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    restrict_conf *rc = base;
    if (pt_conf_set_uint64(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    rc->has_max_body_size = true;
    return PT_OK;
}

static int set_methods(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    restrict_conf *rc = base;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of methods [ \"GET\", \"HEAD\", ... ]");
    unsigned n = (unsigned) config_setting_length(s);
    if (n == 0)
        return pt_conf_error(cx, s, "empty: leave methods out to allow every method");
    rc->methods = pt_pcalloc(cx->pool, n * sizeof(pt_str));
    size_t len = 0;
    if (rc->methods == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        const char *v = config_setting_get_string(e);
        if (v == NULL)
            return pt_conf_type_error(cx, e, "a string");
        if (!pt_conf_is_token(v, strlen(v)))
            return pt_conf_error(cx, e, "\"%s\" is not a method token", v);
        for (unsigned j = 0; j < rc->nmethods; j++)
            if (strcmp(rc->methods[j].data, v) == 0)
                return pt_conf_error(cx, e, "\"%s\" is listed twice", v);
        rc->methods[rc->nmethods++] = (pt_str) { strlen(v), v };
        len += strlen(v) + 2;
    }
    char *a = pt_palloc(cx->pool, len + 1), *p = a;
    if (a == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < rc->nmethods; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", rc->methods[i].data);
    rc->allow = (pt_str) { (size_t) (p - a), a };
    return PT_OK;
}

static int scope_name(pt_conf_ctx *cx, restrict_conf *rc, const pt_route *rt)
{
    char scope[48];
    if (rt->global)
        snprintf(scope, sizeof(scope), "filters.global");
    else
        snprintf(scope, sizeof(scope), "route at line %d", rt->line);
    rc->scope = pt_pstrndup(cx->pool, scope, strlen(scope));
    return rc->scope ? PT_OK : pt_conf_error(cx, NULL, "out of memory");
}

static int restrict_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    restrict_main_conf *mc = pt_main_conf(conf, pt_restrict_module);
    bool body = false, headers = false;
    restrict_conf *g = pt_route_conf(conf->filters_global, pt_restrict_module);
    if (scope_name(cx, g, conf->filters_global) != PT_OK)
        return PT_ERROR;
    if (g->nmethods && pt_counter_declare(cx, "restrict", "methods", &mc->methods) != PT_OK)
        return PT_ERROR;
    for (unsigned i = 0; i < conf->nroutes; i++) {
        restrict_conf *rc = pt_route_conf(&conf->routes[i], pt_restrict_module);
        if (scope_name(cx, rc, &conf->routes[i]) != PT_OK)
            return PT_ERROR;
        body = body || rc->has_max_body_size;
        headers = headers || rc->max_headers;
    }
    if (body && pt_counter_declare(cx, "restrict", "max_body_size", &mc->body) != PT_OK)
        return PT_ERROR;
    if (headers && pt_counter_declare(cx, "restrict", "max_headers", &mc->headers) != PT_OK)
        return PT_ERROR;
    return PT_OK;
}

static int refuse(pt_request *r, pt_counter *c, unsigned status, const char *why)
{
    pt_counter_add(c, 1);
    return pt_http_deny(r, status, why[0] ? why : "refused");
}

static int restrict_check(pt_request *r)
{
    const restrict_conf *rc = r->route ? pt_route_conf(r->route, pt_restrict_module) : NULL;
    if (rc == NULL || (rc->nmethods == 0 && rc->max_headers == 0 && !rc->has_max_body_size))
        return PT_DECLINED;
    restrict_main_conf *mc = pt_main_conf(pt_cycle_cur->conf, pt_restrict_module);

    if (rc->nmethods) {
        unsigned i;
        for (i = 0; i < rc->nmethods; i++)
            if (pt_str_eq(rc->methods[i], r->head.method_name))
                break;
        if (i == rc->nmethods) {
            pt_counter_add(mc->methods, 1);
            pt_http_error_header(r, PT_STR("Allow"), rc->allow);
            char *why = pt_palloc(r->pool, rc->allow.len + 64);
            if (why)
                snprintf(why, rc->allow.len + 64, "method not allowed: %s allows %.*s",
                         rc->scope, (int) rc->allow.len, rc->allow.data);
            return pt_http_deny(r, 405, why ? why : "method not allowed");
        }
    }
    char why[160];
    if (rc->max_headers && r->head.nheaders > rc->max_headers) {
        snprintf(why, sizeof(why), "%u header fields, more than max_headers %u (%s)",
                 (unsigned) r->head.nheaders, (unsigned) rc->max_headers, rc->scope);
        return refuse(r, mc->headers, 431, why);
    }
    if (rc->has_max_body_size) {
        r->body_max = rc->max_body_size;
        if (r->body_max && r->head.content_length > 0
            && (uint64_t) r->head.content_length > r->body_max) {
            r->keepalive = false;
            snprintf(why, sizeof(why), "Content-Length %llu exceeds max_body_size %llu (%s)",
                     (unsigned long long) r->head.content_length,
                     (unsigned long long) r->body_max, rc->scope);
            return refuse(r, mc->body, 413, why);
        }
    }
    return PT_DECLINED;
}

static const pt_conf_key restrict_keys[] = {
    { "max_body_size", PT_SCOPE_ROUTE, set_body, offsetof(restrict_conf, max_body_size),
      0, INT64_MAX, NULL },
    { "max_headers", PT_SCOPE_ROUTE, pt_conf_set_uint32, offsetof(restrict_conf, max_headers),
      1, 10000, NULL },
    { "methods", PT_SCOPE_GLOBAL, set_methods, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool restrict_rconf_used(const void *v)
{
    const restrict_conf *rc = v;
    return rc && (rc->nmethods || rc->max_headers || rc->has_max_body_size);
}

static bool restrict_phase_used(const pt_conf *conf)
{
    return pt_conf_any_route(conf, &pt_restrict_module, restrict_rconf_used);
}

pt_module pt_restrict_module = {
    .name = "restrict",
    .keys = restrict_keys,
    .main_conf_size = sizeof(restrict_main_conf),
    .route_conf_size = sizeof(restrict_conf),
    .conf_check = restrict_conf_check,
    .phase = { [PT_PHASE_REQUEST] = restrict_check, [PT_PHASE_ACCESS] = restrict_check },
    .phase_used = restrict_phase_used,
};
