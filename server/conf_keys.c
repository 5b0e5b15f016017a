/* The core's configuration keys: top level, limits, error_log, listeners and routes.
 * Modules' keys live in their own files; conf.c dispatches to both. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <unistd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "portico/cidr.h"
#include "portico/syslog.h"
#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/shm-t.h"
#include "portico/str.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "conf_int.h"

#define PT_MAX_TIMEOUT_MS 86400000   /* one day */

void pt_conf_defaults(pt_conf *conf)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    conf->workers = (unsigned) (ncpu < 1 ? 1 : ncpu > PT_MAX_WORKERS ? PT_MAX_WORKERS : ncpu);
    conf->daemon = false;
    conf->request_id = true;
    conf->user = NULL;
    conf->group = NULL;
    conf->pid_file = PT_RUNSTATEDIR "/portico.pid";
    conf->server_tokens = PT_SERVER_TOKENS_VERSION;
    conf->underscores_in_headers = PT_H1_US_DROP;
    conf->error_log_path = "-";
    conf->error_log_level = PT_LOG_INFO;
    conf->error_log_facility = PT_SYSLOG_DEFAULT_FACILITY;
    conf->error_log_tag = "portico";
    conf->limits = (pt_limits) {
        .max_connections = 10000,
        .client_header_timeout_ms = 10000,
        .client_body_timeout_ms = 30000,
        .keepalive_timeout_ms = 60000,
        .send_timeout_ms = 60000,
        .drain_timeout_ms = 30000,
        .drain_idle_grace_ms = 1000,
        .drain_close_spread_ms = 1000,
        .client_body_min_rate = 512,
        .client_header_min_rate = 128,
        .client_header_grace_ms = 2000,
        .max_header_size = 16384,
        .max_target_size = 8192,
        .max_headers = 100,
        .max_body_size = 10485760,
    };
}

/* ---- top level ---- */

static int set_workers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_conf *conf = base;

    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        if (strcmp(config_setting_get_string(s), "auto") != 0)
            return pt_conf_error(cx, s, "\"%s\": expected an integer or \"auto\"",
                                 config_setting_get_string(s));
        return PT_OK;   /* the default already counts the CPUs */
    }
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return pt_conf_type_error(cx, s, "an integer or \"auto\"");
    uint32_t v;
    if (pt_conf_set_uint32(cx, s, k, &v) != PT_OK)
        return PT_ERROR;
    conf->workers = v;
    return PT_OK;
}

static int set_server_tokens(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                             void *base)
{
    pt_conf *conf = base;

    if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
        conf->server_tokens = config_setting_get_bool(s) ? PT_SERVER_TOKENS_VERSION
                                                         : PT_SERVER_TOKENS_NAME;
        return PT_OK;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return pt_conf_type_error(cx, s, "true, false or \"off\"");
    if (strcmp(config_setting_get_string(s), "off") != 0)
        return pt_conf_error(cx, s, "\"%s\": expected true, false or \"off\"",
                             config_setting_get_string(s));
    conf->server_tokens = PT_SERVER_TOKENS_OFF;
    return PT_OK;
}

static const char *const log_levels[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug", NULL
};

static int set_log_path(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                        void *base)
{
    if (pt_conf_set_str(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    const char *path = *(const char **) ((char *) base + k->offset);
    const char *why = pt_syslog_is_target(path) ? pt_syslog_check(path) : NULL;
    return why ? pt_conf_error(cx, s, "%s", why) : PT_OK;
}

static const pt_conf_key error_log_keys[] = {
    { "path", 0, set_log_path, offsetof(pt_conf, error_log_path), 1, 4095, NULL },
    { "facility", 0, pt_conf_set_enum, offsetof(pt_conf, error_log_facility), 0, 0,
      pt_syslog_facility_names },
    { "tag", 0, pt_conf_set_str, offsetof(pt_conf, error_log_tag), 1, 48, NULL },
    { "level", 0, pt_conf_set_enum, offsetof(pt_conf, error_log_level), 0, 0, log_levels },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

#define LIMIT(name, set, min, max) \
    { #name, 0, set, offsetof(pt_limits, name), min, max, NULL }

static const pt_conf_key limit_keys[] = {
    LIMIT(max_connections, pt_conf_set_uint32, 1, 1000000),
    LIMIT(client_header_timeout_ms, pt_conf_set_uint32, 1, PT_MAX_TIMEOUT_MS),
    LIMIT(client_body_timeout_ms, pt_conf_set_uint32, 1, PT_MAX_TIMEOUT_MS),
    LIMIT(keepalive_timeout_ms, pt_conf_set_uint32, 0, PT_MAX_TIMEOUT_MS),
    LIMIT(send_timeout_ms, pt_conf_set_uint32, 1, PT_MAX_TIMEOUT_MS),
    LIMIT(drain_timeout_ms, pt_conf_set_uint32, 1, PT_MAX_TIMEOUT_MS),
    LIMIT(drain_idle_grace_ms, pt_conf_set_uint32, 0, PT_MAX_TIMEOUT_MS),
    LIMIT(drain_close_spread_ms, pt_conf_set_uint32, 0, PT_MAX_TIMEOUT_MS),
    LIMIT(client_body_min_rate, pt_conf_set_uint32, 0, 1073741824),
    LIMIT(client_header_min_rate, pt_conf_set_uint32, 0, 1073741824),
    LIMIT(client_header_grace_ms, pt_conf_set_uint32, 1, PT_MAX_TIMEOUT_MS),
    LIMIT(max_header_size, pt_conf_set_uint32, 1024, 1048576),
    LIMIT(max_target_size, pt_conf_set_uint32, 256, 1048576),
    LIMIT(max_headers, pt_conf_set_uint32, 1, 10000),
    LIMIT(max_body_size, pt_conf_set_uint64, 0, INT64_MAX),
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_limits(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_limits *lim = (pt_limits *) ((char *) base + k->offset);

    if (pt_conf_parse_group(cx, s, limit_keys, lim) != PT_OK)
        return PT_ERROR;
    /* the target is part of the head: a smaller head limit lowers the default target
     * limit with it, but an explicit target limit that cannot be reached is a mistake */
    config_setting_t *t = config_setting_get_member(s, "max_target_size");
    if (t == NULL)
        lim->max_target_size = pt_min(lim->max_target_size, lim->max_header_size);
    else if (lim->max_target_size > lim->max_header_size)
        return pt_conf_error(cx, t, "%u is more than max_header_size (%u)",
                             lim->max_target_size, lim->max_header_size);
    return PT_OK;
}

/* In PT_H1_US_* order. */
static const char *const underscore_policies[] = { "drop", "pass", "reject", NULL };

/* ---- listeners ---- */

static int set_listen_addr(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    pt_listener_conf *l = base;

    if (pt_conf_set_str(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    return pt_conf_parse_addr(cx, s, l->address, false, &l->addr, &l->addrlen);
}

static int set_backlog(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    uint32_t v;
    if (pt_conf_set_uint32(cx, s, k, &v) != PT_OK)
        return PT_ERROR;
    ((pt_listener_conf *) base)->backlog = (int) v;
    return PT_OK;
}

const pt_conf_key pt_conf_listener_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(pt_listener_conf, name), 1, 64, NULL },
    { "address", 0, set_listen_addr, offsetof(pt_listener_conf, address), 1, 300, NULL },
    { "backlog", 0, set_backlog, 0, 1, 65535, NULL },
    { "proxy_protocol", 0, pt_conf_set_bool, offsetof(pt_listener_conf, proxy_protocol), 0, 0, NULL },
    { "proxy_protocol_trusted", 0, pt_conf_set_cidr_list,
      offsetof(pt_listener_conf, proxy_protocol_trusted), 0, 0, NULL },
    { "tls", 0, pt_tls_server_conf_set, offsetof(pt_listener_conf, tls), 0, 0, NULL },
    { "http2", 0, pt_h2_set_http2, offsetof(pt_listener_conf, http2), 0, 0, NULL },
#define H2_KEY(name, field, min, max) \
    { name, 0, pt_conf_set_uint32, offsetof(pt_listener_conf, h2.field), min, max, NULL }
    H2_KEY("h2_max_concurrent_streams", max_concurrent_streams, 1, 100000),
    H2_KEY("h2_max_header_list_size", max_header_list_size, 1024, 16777216),
    H2_KEY("h2_max_continuation_frames", max_continuations, 0, 10000),
    H2_KEY("h2_initial_window_size", initial_window_size, 1024, 16777216),
    H2_KEY("h2_flood_window_ms", flood_window_ms, 1, 3600000),
    H2_KEY("h2_max_resets", max_resets, 1, 100000000),
    H2_KEY("h2_max_control_frames", max_control_frames, 1, 100000000),
    H2_KEY("h2_max_empty_frames", max_empty_frames, 1, 100000000),
    H2_KEY("h2_idle_timeout_ms", idle_timeout_ms, 1, 86400000),
#undef H2_KEY
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool same_addr(const pt_listener_conf *a, const pt_listener_conf *b)
{
    if (a->addr.ss_family != b->addr.ss_family)
        return false;
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *) &a->addr, *y = (const void *) &b->addr;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *) &a->addr, *y = (const void *) &b->addr;
    return x->sin6_port == y->sin6_port
           && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static int set_listeners(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                         void *base)
{
    pt_conf *conf = base;
    pt_conf_loader *lc = pt_conf_loader_of(cx);

    if (!config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "a list ( { ... }, ... )");
    unsigned n = (unsigned) config_setting_length(s);
    if (n == 0)
        return pt_conf_error(cx, s, "empty: at least one listener is needed");
    conf->listeners = pt_conf_alloc(cx, n * sizeof(pt_listener_conf));
    lc->listener_settings = pt_conf_alloc(cx, n * sizeof(config_setting_t *));
    if (conf->listeners == NULL || lc->listener_settings == NULL)
        return PT_ERROR;

    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        pt_listener_conf *l = &conf->listeners[i];

        lc->listener_settings[i] = e;
        l->index = i;
        l->name = "";
        l->backlog = 511;
        pt_h2_limits_default(&l->h2);
        l->line = (int) pt_conf_setting_line(cx, e);
        if (!config_setting_is_group(e))
            return pt_conf_type_error(cx, e, "a group { ... }");
        l->mod_conf = pt_conf_mod_confs(cx, PT_SCOPE_LISTENER, NULL, l);
        if (l->mod_conf == NULL
            || pt_conf_parse_scope(cx, e, pt_conf_listener_keys, l, PT_SCOPE_LISTENER, l->mod_conf)
                   != PT_OK)
            return PT_ERROR;
        if (l->address == NULL)
            return pt_conf_error(cx, e, "missing key 'address'");
        if (pt_h2_listener_check(cx, e, l) != PT_OK)
            return PT_ERROR;
        for (unsigned j = 0; j < i; j++) {
            const pt_listener_conf *o = &conf->listeners[j];
            if (l->name[0] && strcmp(l->name, o->name) == 0)
                return pt_conf_error(cx, config_setting_get_member(e, "name"),
                                     "\"%s\" is already the name of listeners[%u]", l->name,
                                     j);
            if (same_addr(l, o))
                return pt_conf_error(cx, config_setting_get_member(e, "address"),
                                     "\"%s\" is already the address of listeners[%u]",
                                     l->address, j);
        }
        conf->nlisteners = i + 1;
    }
    return PT_OK;
}

pt_listener_conf *pt_conf_add_listener(pt_conf_ctx *cx, config_setting_t *s,
                                       const char *name, const char *address,
                                       const pt_module *handler)
{
    pt_conf *conf = cx->conf;
    pt_conf_loader *lc = pt_conf_loader_of(cx);
    unsigned n = conf->nlisteners;
    pt_listener_conf *ls = pt_conf_alloc(cx, (n + 1) * sizeof(*ls));
    const config_setting_t **set = pt_conf_alloc(cx, (n + 1) * sizeof(*set));
    if (ls == NULL || set == NULL)
        return NULL;
    /* the array moves: routes and modules refer to listeners by index, not pointer */
    memcpy(ls, conf->listeners, n * sizeof(*ls));
    memcpy(set, lc->listener_settings, n * sizeof(*set));
    pt_listener_conf *l = &ls[n];
    l->index = n;
    l->name = name;
    l->address = address;
    l->backlog = 511;
    l->line = (int) pt_conf_setting_line(cx, s);
    l->handler = handler;
    set[n] = s;
    if (pt_conf_parse_addr(cx, s, address, false, &l->addr, &l->addrlen) != PT_OK)
        return NULL;
    for (unsigned j = 0; j < n; j++) {
        if (strcmp(ls[j].name, name) == 0) {
            pt_conf_error(cx, s, "\"%s\" is already the name of listeners[%u]", name, j);
            return NULL;
        }
        if (same_addr(l, &ls[j])) {
            pt_conf_error(cx, s, "\"%s\" is already the address of listeners[%u]", address,
                          j);
            return NULL;
        }
    }
    if ((l->mod_conf = pt_conf_mod_confs(cx, PT_SCOPE_LISTENER, NULL, l)) == NULL)
        return NULL;
    conf->listeners = ls;
    lc->listener_settings = set;
    conf->nlisteners = n + 1;
    return l;
}

/* ---- routes ---- */

static int host_error(pt_conf_ctx *cx, config_setting_t *s, const char *v, const char *why)
{
    return pt_conf_error(cx, s, "\"%s\": %s", v, why);
}

/* A DNS name (letters, digits, '-', '_'; labels of 1..63; 253 in all), an IPv4 address
 * (which is one), or an IPv6 address in brackets. h is lower-case, without a trailing dot. */
static const char *check_hostname(const char *h, size_t len)
{
    if (len == 0)
        return "empty name";
    if (h[0] == '[') {
        char a[64];
        struct in6_addr v6;
        if (h[len - 1] != ']' || len - 2 >= sizeof(a))
            return "an IPv6 address in brackets is expected";
        memcpy(a, h + 1, len - 2);
        a[len - 2] = '\0';
        return inet_pton(AF_INET6, a, &v6) == 1 ? NULL : "invalid IPv6 address";
    }
    if (len > 253)
        return "longer than 253 characters";
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0)
                return "empty label";
            label = 0;
            continue;
        }
        if (c == ':')
            return "a host has no port (use listener to select a port)";
        if (c == '*')
            return "'*' may only start a wildcard (*.example.com)";
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return "invalid character in a host name";
        if (++label > 63)
            return "label longer than 63 characters";
    }
    return label ? NULL : "empty label";
}

static int set_host(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_route *rt = base;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return pt_conf_type_error(cx, s, "a string");
    const char *v = config_setting_get_string(s);
    size_t len = strlen(v);
    char *h = pt_conf_alloc(cx, len + 1);
    if (h == NULL)
        return PT_ERROR;
    for (size_t i = 0; i < len; i++)
        h[i] = (char) pt_tolower(v[i]);
    if (len > 1 && h[len - 1] == '.')   /* "example.com." is the same name */
        h[--len] = '\0';
    if (len == 0 || strcmp(h, "*") == 0)
        return host_error(cx, s, v, "leave host out to match any host");

    bool wild = len > 2 && h[0] == '*' && h[1] == '.';
    const char *why = wild ? check_hostname(h + 2, len - 2) : check_hostname(h, len);
    if (why)
        return host_error(cx, s, v, why);
    if (wild && h[2] == '[')
        return host_error(cx, s, v, "an IP address has no subdomains");
    /* a wildcard is kept as its suffix with the dot: "*.example.com" -> ".example.com" */
    rt->host = wild ? (pt_str) { len - 1, h + 1 } : (pt_str) { len, h };
    rt->host_wildcard = wild;
    rt->has_host = true;
    return PT_OK;
}

/* Routes match the normalised path (server/h1_path.c), so a prefix that is not in that
 * form ("/a//b", "/a/./b", "/%41", "/a;x", "/x\y") could never match: say so at load. */
static int set_path_prefix(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    pt_route *rt = base;
    const char *why = NULL;
    size_t nlen = 0;

    if (pt_conf_set_pstr(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    pt_str p = rt->path_prefix;
    if (p.data[0] != '/')
        return pt_conf_error(cx, s, "\"%s\": must start with '/'", p.data);
    char *n = pt_conf_alloc(cx, p.len + 1);
    if (n == NULL)
        return PT_ERROR;
    if (pt_h1_normalize_path(p.data, p.len, n, &nlen, &why) != PT_OK)
        return pt_conf_error(cx, s, "\"%s\": %s (requests with it are refused with 400)",
                             p.data, why);
    if (nlen != p.len || memcmp(n, p.data, nlen) != 0)
        return pt_conf_error(cx, s, "\"%s\" can never match: routes see the normalised "
                             "path (\"%.*s\")", p.data, (int) nlen, n);
    return PT_OK;
}

static void regex_cleanup(void *code)
{
    pcre2_code_free(code);
}

static void match_data_cleanup(void *md)
{
    pcre2_match_data_free(md);
}

/* Only checked here: the pattern is compiled once the whole route is read, when its
 * path_ignore_case is known (route_paths). */
static int set_path_regex(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                          void *base)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return pt_conf_type_error(cx, s, "a string");
    return PT_OK;
}

static int compile_path_regex(pt_conf_ctx *cx, config_setting_t *s, pt_route *rt,
                              uint32_t options)
{
    int errcode;
    PCRE2_SIZE erroff;
    const char *v = config_setting_get_string(s);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) v, PCRE2_ZERO_TERMINATED, options, &errcode,
                                   &erroff, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
            snprintf((char *) msg, sizeof(msg), "error %d", errcode);
        return pt_conf_error(cx, s, "%s at offset %zu", (char *) msg, (size_t) erroff);
    }
    if (pt_pool_cleanup_add(cx->pool, regex_cleanup, re) != PT_OK) {
        pcre2_code_free(re);
        return pt_conf_error(cx, NULL, "out of memory");
    }
    /* JIT is a speed-up, not a requirement (some systems forbid executable memory) */
    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (md == NULL || pt_pool_cleanup_add(cx->pool, match_data_cleanup, md) != PT_OK) {
        pcre2_match_data_free(md);
        return pt_conf_error(cx, NULL, "out of memory");
    }
    rt->path_regex = re;
    rt->match_data = md;
    return PT_OK;
}

/* After a route's keys: path_ignore_case applied to the prefix and the regex. */
static int route_paths(pt_conf_ctx *cx, config_setting_t *e, pt_route *rt)
{
    config_setting_t *re = config_setting_get_member(e, "path_regex");

    if (rt->path_ignore_case) {
        if (rt->path_prefix.len == 0 && re == NULL)
            return pt_conf_error(cx, config_setting_get_member(e, "path_ignore_case"),
                                 "there is no path_prefix or path_regex to apply it to");
        char *lc = pt_conf_alloc(cx, rt->path_prefix.len + 1);
        if (lc == NULL)
            return PT_ERROR;
        for (size_t i = 0; i < rt->path_prefix.len; i++)
            lc[i] = (char) pt_tolower(rt->path_prefix.data[i]);
        lc[rt->path_prefix.len] = '\0';
        rt->path_prefix.data = lc;
    }
    if (re)
        return compile_path_regex(cx, re, rt, rt->path_ignore_case ? PCRE2_CASELESS : 0);
    return PT_OK;
}

static int set_route_listener(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                              void *base)
{
    pt_route *rt = base;
    const pt_conf *conf = cx->conf;

    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return pt_conf_type_error(cx, s, "a string");
    const char *v = config_setting_get_string(s);
    for (unsigned i = 0; v[0] && i < conf->nlisteners; i++) {
        if (strcmp(conf->listeners[i].name, v) == 0) {
            rt->listener = (int) i;
            return PT_OK;
        }
    }
    return pt_conf_error(cx, s, "no listener is named \"%s\"", v);
}

/* In pt_method order; PT_M_OTHER has no name. */
static const char *const method_names[] = {
    NULL, "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"
};

static int set_methods(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_route *rt = base;

    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of strings [ \"GET\", ... ]");
    unsigned n = (unsigned) config_setting_length(s);
    if (n == 0)
        return pt_conf_error(cx, s, "empty: leave methods out to allow every method");
    rt->method_names = pt_conf_alloc(cx, n * sizeof(pt_str));
    if (rt->method_names == NULL)
        return PT_ERROR;

    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return pt_conf_type_error(cx, e, "a string");
        const char *v = config_setting_get_string(e);
        size_t len = strlen(v);
        if (!pt_conf_is_token(v, len))
            return pt_conf_error(cx, e, "\"%s\" is not a method token", v);

        unsigned id = 0;
        for (unsigned m = 1; m < pt_nelems(method_names); m++) {
            if (strcmp(v, method_names[m]) == 0)
                id = m;
            else if (strcasecmp(v, method_names[m]) == 0)
                /* methods are case-sensitive (RFC 9110 9.1): "get" is not GET */
                return pt_conf_error(cx, e, "\"%s\": methods are case-sensitive (%s?)", v,
                                     method_names[m]);
        }
        bool dup = id ? (rt->methods & (1u << id)) != 0 : false;
        for (unsigned j = 0; !id && j < rt->nmethod_names; j++)
            dup = dup || strcmp(rt->method_names[j].data, v) == 0;
        if (dup)
            return pt_conf_error(cx, e, "\"%s\" is listed twice", v);
        if (id) {
            rt->methods |= 1u << id;
        } else {
            rt->method_names[rt->nmethod_names] = pt_pstr(cx->pool, (pt_str) { len, v });
            if (rt->method_names[rt->nmethod_names++].data == NULL)
                return pt_conf_error(cx, NULL, "out of memory");
        }
    }
    return PT_OK;
}

const pt_conf_key pt_conf_route_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(pt_route, name), 1, 128, NULL },
    { "host", 0, set_host, 0, 0, 0, NULL },
    { "path_prefix", 0, set_path_prefix, offsetof(pt_route, path_prefix), 1, 0, NULL },
    { "path_regex", 0, set_path_regex, 0, 0, 0, NULL },
    { "path_ignore_case", 0, pt_conf_set_bool, offsetof(pt_route, path_ignore_case), 0, 0,
      NULL },
    { "listener", 0, set_route_listener, 0, 0, 0, NULL },
    { "methods", 0, set_methods, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_conf_set_routes(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_conf *conf = base;
    pt_conf_loader *lc = pt_conf_loader_of(cx);

    if (!config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "a list ( { ... }, ... )");
    unsigned n = (unsigned) config_setting_length(s), old = conf->nroutes;
    if (n == 0)
        return PT_OK;   /* every request gets the core's 404 */
    /* appended after the routes already parsed (the main file's, then each included
     * file's): nothing refers to a route by address before the routes are all in */
    pt_route *routes = pt_conf_alloc(cx, (old + n) * sizeof(pt_route));
    const config_setting_t **set = pt_conf_alloc(cx, (old + n) * sizeof(config_setting_t *));
    if (routes == NULL || set == NULL)
        return PT_ERROR;
    if (old) {
        memcpy(routes, conf->routes, old * sizeof(pt_route));
        memcpy(set, lc->route_settings, old * sizeof(*set));
    }
    conf->routes = routes;
    lc->route_settings = set;

    for (unsigned j = 0; j < n; j++) {
        config_setting_t *e = config_setting_get_elem(s, j);
        unsigned i = old + j;
        pt_route *rt = &conf->routes[i];

        lc->route_settings[i] = e;
        rt->index = i;
        rt->line = (int) pt_conf_setting_line(cx, e);
        rt->listener = -1;
        if (!config_setting_is_group(e))
            return pt_conf_type_error(cx, e, "a group { ... }");
        rt->mod_conf = pt_conf_mod_confs(cx, PT_SCOPE_ROUTE, rt, NULL);
        if (rt->mod_conf == NULL
            || pt_conf_parse_scope(cx, e, pt_conf_route_keys, rt, PT_SCOPE_ROUTE, rt->mod_conf)
                   != PT_OK
            || route_paths(cx, e, rt) != PT_OK)
            return PT_ERROR;
        conf->nroutes = i + 1;
    }
    return PT_OK;
}

/* ---- filters ---- */

/* filters.global: the modules' route keys that may apply before routing, into the
 * route-shaped scope load() created. */
static int set_filters_global(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                              void *base)
{
    pt_route *g = ((pt_conf *) base)->filters_global;

    g->line = (int) pt_conf_setting_line(cx, s);
    return pt_conf_parse_scope(cx, s, NULL, g, PT_SCOPE_GLOBAL, g->mod_conf);
}

static const pt_conf_key filters_keys[] = {
    { "global", 0, set_filters_global, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

/* filters = { ... }: a section the filtering modules share. Their definitions (access
 * lists, rules, limits) are module keys of scope PT_SCOPE_FILTERS, into their main conf;
 * `global` is the core's. */
static int set_filters(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                       void *base)
{
    pt_conf *conf = base;
    return pt_conf_parse_scope(cx, s, filters_keys, conf, PT_SCOPE_FILTERS, conf->main_conf);
}

pt_route *pt_conf_global_scope(pt_conf_ctx *cx)
{
    pt_route *g = pt_conf_alloc(cx, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->index = UINT32_MAX;
    g->global = true;
    g->listener = -1;
    g->mod_conf = pt_conf_mod_confs(cx, PT_SCOPE_ROUTE, g, NULL);
    return g->mod_conf ? g : NULL;
}

/* ---- the top-level table ---- */

const pt_conf_key pt_conf_main_keys[] = {
    { "workers", PT_SCOPE_MAIN, set_workers, 0, 1, PT_MAX_WORKERS, NULL },
    { "daemon", PT_SCOPE_MAIN, pt_conf_set_bool, offsetof(pt_conf, daemon), 0, 0, NULL },
    { "request_id", PT_SCOPE_MAIN, pt_conf_set_bool, offsetof(pt_conf, request_id), 0, 0,
      NULL },
    { "user", PT_SCOPE_MAIN, pt_conf_set_str, offsetof(pt_conf, user), 1, 255, NULL },
    { "group", PT_SCOPE_MAIN, pt_conf_set_str, offsetof(pt_conf, group), 1, 255, NULL },
    { "pid_file", PT_SCOPE_MAIN, pt_conf_set_str, offsetof(pt_conf, pid_file), 1, 4095, NULL },
    { "server_tokens", PT_SCOPE_MAIN, set_server_tokens, 0, 0, 0, NULL },
    { "worker_rlimit_nofile", PT_SCOPE_MAIN, pt_conf_set_uint32,
      offsetof(pt_conf, worker_rlimit_nofile), 64, INT32_MAX, NULL },
    { "underscores_in_headers", PT_SCOPE_MAIN, pt_conf_set_enum,
      offsetof(pt_conf, underscores_in_headers), 0, 0, underscore_policies },
    { "error_log", PT_SCOPE_MAIN, pt_conf_set_group, 0, 0, 0, error_log_keys },
    { "limits", PT_SCOPE_MAIN, set_limits, offsetof(pt_conf, limits), 0, 0, NULL },
    { "listeners", PT_SCOPE_MAIN, set_listeners, 0, 0, 0, NULL },
    { "routes", PT_SCOPE_MAIN, pt_conf_set_routes, 0, 0, 0, NULL },
    { "upstreams", PT_SCOPE_MAIN, pt_upstream_conf_set, 0, 0, 0, NULL },
    { "include", PT_SCOPE_MAIN, pt_conf_set_include, 0, 0, 0, NULL },
    { "filters", PT_SCOPE_MAIN, set_filters, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

/* After the top level, before routes: what must be there. */
int pt_conf_check_core(pt_conf_ctx *cx, config_setting_t *root)
{
    if (cx->conf->nlisteners == 0)
        return pt_conf_error(cx, NULL, "no listeners: at least one is needed, e.g. "
                             "listeners = ( { address = \"127.0.0.1:8080\"; } );");
    return PT_OK;
}
