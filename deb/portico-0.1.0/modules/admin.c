/* admin: the admin listener (off by default).
 *
 *   admin = { address = "127.0.0.1:9901"; allow = [ "127.0.0.0/8" ];
 *             token_file = "/etc/portico/admin.token"; };
 *
 * A listener of its own, served by the workers like any other, whose requests never go
 * through the routes: this module answers all of them. GET /metrics (Prometheus text),
 * GET /status (JSON), GET / (the status page), and the runtime API under /api/
 * (admin_api.c). A client outside allow gets 403; the write endpoints want the bearer
 * token when token_file is set.
 *
 * Everything it shows is read from shared memory (the metrics registry, pt_stats, the
 * "upstreams" zone): whichever worker takes the request answers for all of them, with no
 * round trip to the others. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/cycle-t.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "admin.h"

pt_module pt_admin_module;

#define BODY_MAX 65536          /* an API request's body */
#define TOKEN_MAX 4096

/* ---- configuration ---- */

static const pt_conf_key admin_keys[] = {
    { "address", 0, pt_conf_set_str, offsetof(pt_admin_conf, address), 1, 255, NULL },
    { "allow", 0, pt_conf_set_cidr_list, offsetof(pt_admin_conf, allow), 0, 0, NULL },
    { "token_file", 0, pt_conf_set_str, offsetof(pt_admin_conf, token_file), 1, 4095, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_admin(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_admin_conf *c = base;

    (void) k;
    if (!config_setting_is_group(s))
        return pt_conf_type_error(cx, s, "a group { ... }");
    if (pt_conf_parse_group(cx, s, admin_keys, c) != PT_OK)
        return PT_ERROR;
    if (c->address == NULL)
        return pt_conf_error(cx, s, "admin: \"address\" is required");
    c->setting = s;
    return PT_OK;
}

static const pt_conf_key admin_module_keys[] = {
    { "admin", PT_SCOPE_MAIN, set_admin, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

/* The loopback ranges: who may ask when allow is not given. */
static int default_allow(pt_conf_ctx *cx, pt_admin_conf *c)
{
    static const char *const loopback[] = { "127.0.0.0/8", "::1/128" };
    c->allow.v = pt_pcalloc(cx->pool, sizeof(pt_cidr) * pt_nelems(loopback));
    if (c->allow.v == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < pt_nelems(loopback); i++) {
        const char *err;
        if (!pt_cidr_parse(loopback[i], &c->allow.v[i], &err))
            return pt_conf_error(cx, NULL, "%s: %s", loopback[i], err);
    }
    c->allow.n = pt_nelems(loopback);
    return PT_OK;
}

static int admin_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    pt_admin_conf *c = pt_main_conf(conf, pt_admin_module);
    config_setting_t *s = (config_setting_t *) c->setting;

    if (c->address == NULL)
        return PT_OK;
    if (c->allow.n == 0 && default_allow(cx, c) != PT_OK)
        return PT_ERROR;
    if (c->token_file) {
        config_setting_t *t = config_setting_get_member(s, "token_file");
        if (pt_conf_read_small_file(cx, t, c->token_file, TOKEN_MAX, &c->token) != PT_OK)
            return PT_ERROR;
        for (size_t i = 0; i < c->token.len; i++)
            if ((unsigned char) c->token.data[i] <= ' ' || c->token.data[i] == 0x7f)
                return pt_conf_error(cx, t, "\"%s\": a token is one line of printable "
                                     "characters without spaces", c->token_file);
    }
    config_setting_t *a = config_setting_get_member(s, "address");
    return pt_conf_add_listener(cx, a, "admin", c->address, &pt_admin_module) ? PT_OK
                                                                             : PT_ERROR;
}

/* ---- buffers ---- */

static bool buf_room(pt_admin_buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *d = realloc(b->d, cap);
    if (d == NULL) {
        b->failed = true;
        return false;
    }
    b->d = d;
    b->cap = cap;
    return true;
}

void pt_admin_put(pt_admin_buf *b, const char *s, size_t n)
{
    if (!buf_room(b, n))
        return;
    memcpy(b->d + b->len, s, n);
    b->len += n;
    b->d[b->len] = '\0';
}

void pt_admin_printf(pt_admin_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t) n < sizeof(small)) {
        pt_admin_put(b, small, (size_t) n);
        return;
    }
    if (!buf_room(b, (size_t) n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->d + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

void pt_admin_json_str(pt_admin_buf *b, const char *s, size_t n)
{
    pt_admin_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char) ch };
            pt_admin_put(b, e, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            pt_admin_printf(b, "\\u%04x", ch);
        } else {
            pt_admin_put(b, s + i, 1);
        }
    }
    pt_admin_put(b, "\"", 1);
}

void pt_admin_json_num(pt_admin_buf *b, double v)
{
    if (v != v || v > 1e300 || v < -1e300)
        pt_admin_put(b, "null", 4);                 /* JSON has no NaN or infinity */
    else if (v == (double) (int64_t) v && v < 9e15 && v > -9e15)
        pt_admin_printf(b, "%lld", (long long) v);
    else
        pt_admin_printf(b, "%.9g", v);
}

/* ---- answers ---- */

int pt_admin_reply(pt_request *r, unsigned status, const char *type, pt_admin_buf *b)
{
    if (b->failed || b->d == NULL) {
        free(b->d);
        b->d = NULL;
        if (b->failed) {
            r->error_reason = "admin: out of memory";
            pt_http_finalize(r, 500);
            return PT_DONE;
        }
        pt_admin_put(b, "", 0);
    }
    /* the body stays with the request until it is written */
    if (pt_pool_cleanup_add(r->pool, free, b->d) != PT_OK) {
        free(b->d);
        pt_http_finalize(r, 500);
        return PT_DONE;
    }
    if (pt_http_add_header(r, PT_STR("Cache-Control"), PT_STR("no-store")) != PT_OK) {
        pt_http_finalize(r, 500);
        return PT_DONE;
    }
    pt_str body = { b->len, b->d };
    return pt_http_respond(r, status, (pt_str) { strlen(type), type }, body);
}

int pt_admin_error(pt_request *r, unsigned status, const char *msg)
{
    pt_admin_buf b = { 0 };
    pt_admin_put(&b, "{\"error\": ", 10);
    pt_admin_json_str(&b, msg, strlen(msg));
    pt_admin_put(&b, "}\n", 2);
    r->error_reason = msg;
    pt_log(PT_LOG_INFO, "admin: %.*s %.*s from %s: %u (%s)", (int) r->head.method_name.len,
           r->head.method_name.data, (int) r->path.len, r->path.data, r->conn->peer_ip,
           status, msg);
    return pt_admin_reply(r, status, "application/json", &b);
}

static int reply_metrics(pt_request *r)
{
    pt_admin_buf b = { 0 };
    pt_admin_metrics_text(&b);
    return pt_admin_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

static int reply_status(pt_request *r)
{
    pt_admin_buf b = { 0 };
    pt_admin_status_json(&b);
    return pt_admin_reply(r, 200, "application/json", &b);
}

static int reply_page(pt_request *r)
{
    if (pt_http_add_header(r, PT_STR("Content-Security-Policy"),
                           PT_STR("default-src 'self'; script-src 'unsafe-inline'; "
                                  "style-src 'unsafe-inline'; img-src 'self' data:"))
        != PT_OK)
        return PT_ERROR;
    return pt_http_respond(r, 200, PT_STR("text/html; charset=utf-8"),
                           (pt_str) { pt_admin_page_len, pt_admin_page });
}

/* ---- requests ---- */

static void dispatch(pt_request *r)
{
    pt_str p = r->path;
    bool get = r->head.method == PT_M_GET || r->head.method == PT_M_HEAD;

    if (p.len >= 4 && memcmp(p.data, "/api", 4) == 0 && (p.len == 4 || p.data[4] == '/')) {
        pt_admin_api(r, (pt_str) { p.len - 4, p.data + 4 });
        return;
    }
    if (get && pt_str_eq(p, PT_STR("/favicon.ico"))) {
        /* browsers ask whatever the page says: no icon, and no 404 in their console */
        pt_http_respond(r, 204, PT_STR_NULL, PT_STR_NULL);
        return;
    }
    bool known = pt_str_eq(p, PT_STR("/metrics")) || pt_str_eq(p, PT_STR("/status"))
                 || pt_str_eq(p, PT_STR("/"));
    if (!known) {
        pt_admin_error(r, 404, "no such admin endpoint");
        return;
    }
    if (!get) {
        pt_http_add_header(r, PT_STR("Allow"), PT_STR("GET, HEAD"));
        pt_admin_error(r, 405, "only GET and HEAD here");
        return;
    }
    if (p.data[1] == 'm')
        reply_metrics(r);
    else if (p.data[1] == 's')
        reply_status(r);
    else if (reply_page(r) == PT_ERROR)
        pt_http_finalize(r, 500);
}

static void body_done(pt_request *r, int rc)
{
    if (rc != PT_OK) {
        pt_http_finalize(r, r->status >= 400 ? (int) r->status : 400);
        return;
    }
    dispatch(r);
}

static int admin_content(pt_request *r)
{
    const pt_admin_conf *c = pt_main_conf(pt_cycle_cur->conf, pt_admin_module);

    if (!pt_cidr_list_match(&c->allow, &r->conn->peer.sa)) {
        r->error_reason = "admin: the client's address is not in admin.allow";
        pt_log(PT_LOG_INFO, "admin: refused %s: not in admin.allow (403)", r->conn->peer_ip);
        r->keepalive = false;
        return 403;
    }
    int rc = pt_http_buffer_body(r, BODY_MAX, body_done);
    if (rc == PT_DECLINED) {
        r->error_reason = "admin: request body larger than 64 KiB";
        return 413;
    }
    if (rc == PT_AGAIN)
        return PT_AGAIN;
    if (rc != PT_OK)
        return r->status >= 400 ? (int) r->status : 400;
    dispatch(r);
    return PT_DONE;
}

/* The token comparison takes the same time whatever the first difference. */
bool pt_admin_token_ok(pt_request *r)
{
    const pt_admin_conf *c = pt_main_conf(pt_cycle_cur->conf, pt_admin_module);
    if (c->token.len == 0)
        return true;
    pt_header *h = pt_http_req_header(r, PT_STR("Authorization"));
    if (h == NULL || h->value.len < 7 || !pt_str_caseeq_lit((pt_str) { 7, h->value.data },
                                                            "bearer "))
        return false;
    pt_str t = { h->value.len - 7, h->value.data + 7 };
    while (t.len && (t.data[0] == ' ' || t.data[0] == '\t')) {
        t.data++;
        t.len--;
    }
    unsigned diff = t.len != c->token.len;
    for (size_t i = 0; i < c->token.len; i++)
        diff |= (unsigned char) c->token.data[i]
                ^ (unsigned char) (i < t.len ? t.data[i] : 0);
    return diff == 0;
}

pt_module pt_admin_module = {
    .name = "admin",
    .keys = admin_module_keys,
    .main_conf_size = sizeof(pt_admin_conf),
    .conf_check = admin_conf_check,
    .content = admin_content,
};
