/* Variables in configured strings (include/portico/var.h). */
#include <stdio.h>
#include <time.h>

#include "portico/clock.h"
#include "portico/conf.h"
#include "portico/event.h"
#include "portico/tls.h"
#include "portico/http.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/var.h"

static const struct {
    const char *name;
    pt_var_kind kind;
    bool        request;
    bool        log;            /* only once the response is sent (the access log) */
} vars[] = {
    { "remote_addr", PT_VAR_REMOTE_ADDR, false, false },
    { "listener", PT_VAR_LISTENER, false, false },
    { "host", PT_VAR_HOST, true, false },
    { "method", PT_VAR_METHOD, true, false },
    { "uri", PT_VAR_URI, true, false },
    { "request_uri", PT_VAR_REQUEST_URI, true, false },
    { "args", PT_VAR_ARGS, true, false },
    { "status", PT_VAR_STATUS, true, true },
    { "body_bytes_sent", PT_VAR_BODY_BYTES_SENT, true, true },
    { "bytes_sent", PT_VAR_BYTES_SENT, true, true },
    { "request_time", PT_VAR_REQUEST_TIME, true, true },
    { "request", PT_VAR_REQUEST, true, true },
    { "request_id", PT_VAR_REQUEST_ID, true, true },
    { "upstream_addr", PT_VAR_UPSTREAM_ADDR, true, true },
    { "upstream_status", PT_VAR_UPSTREAM_STATUS, true, true },
    { "upstream_response_time", PT_VAR_UPSTREAM_RESPONSE_TIME, true, true },
    { "time_iso8601", PT_VAR_TIME_ISO8601, true, true },
    { "time_local", PT_VAR_TIME_LOCAL, true, true },
    { "server_protocol", PT_VAR_SERVER_PROTOCOL, true, true },
    { "scheme", PT_VAR_SCHEME, true, true },
    { "cache_status", PT_VAR_CACHE_STATUS, true, true },
    { "tls_protocol", PT_VAR_TLS_PROTOCOL, true, true },
};

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_';
}

static int compile(pt_conf_ctx *cx, config_setting_t *s, const char *text, pt_var *v,
                   bool log)
{
    size_t len = strlen(text), n = 0;
    /* at most one part per '$' and one literal between each */
    for (size_t i = 0; i < len; i++)
        n += text[i] == '$';
    v->parts = pt_pcalloc(cx->pool, (2 * n + 1) * sizeof(pt_var_part));
    v->nparts = 0;
    v->request = false;
    if (v->parts == NULL)
        return pt_conf_error(cx, NULL, "out of memory");

    char *lit = pt_pcalloc(cx->pool, len + 1);
    size_t litlen = 0;
    if (lit == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (size_t i = 0; i < len;) {
        if (text[i] != '$') {
            lit[litlen++] = text[i++];
            continue;
        }
        if (i + 1 < len && text[i + 1] == '$') {
            lit[litlen++] = '$';
            i += 2;
            continue;
        }
        size_t start = i + 1, end;
        bool braced = start < len && text[start] == '{';
        if (braced) {
            start++;
            const char *close = strchr(text + start, '}');
            if (close == NULL)
                return pt_conf_error(cx, s, "\"%s\": '${' without '}'", text);
            end = (size_t) (close - text);
            i = end + 1;
        } else {
            for (end = start; end < len && name_char(text[end]); end++) {
            }
            i = end;
        }
        if (end == start)
            return pt_conf_error(cx, s, "\"%s\": '$' without a variable name (\"$$\" is a "
                                 "'$')", text);
        for (size_t j = start; j < end; j++)
            if (!name_char(text[j]))
                return pt_conf_error(cx, s, "\"%s\": invalid variable name", text);
        if (litlen) {
            v->parts[v->nparts++] = (pt_var_part) { PT_VAR_LITERAL, { litlen, lit } };
            lit += litlen;
            litlen = 0;
        }
        pt_str name = { end - start, text + start };
        pt_var_part *p = &v->parts[v->nparts];
        if (name.len > 5 && memcmp(name.data, "http_", 5) == 0) {
            char *h = pt_pstrndup(cx->pool, name.data + 5, name.len - 5);
            if (h == NULL)
                return pt_conf_error(cx, NULL, "out of memory");
            for (char *q = h; *q; q++)
                if (*q == '_')
                    *q = '-';
            *p = (pt_var_part) { PT_VAR_HTTP, { name.len - 5, h } };
            v->request = true;
        } else if ((name.len > 4 && memcmp(name.data, "arg_", 4) == 0)
                   || (name.len > 7 && memcmp(name.data, "cookie_", 7) == 0)) {
            size_t skip = name.data[0] == 'a' ? 4 : 7;
            char *a = pt_pstrndup(cx->pool, name.data + skip, name.len - skip);
            if (a == NULL)
                return pt_conf_error(cx, NULL, "out of memory");
            *p = (pt_var_part) { skip == 4 ? PT_VAR_ARG : PT_VAR_COOKIE,
                                 { name.len - skip, a } };
            v->request = true;
        } else {
            unsigned k;
            for (k = 0; k < pt_nelems(vars); k++)
                if (strlen(vars[k].name) == name.len
                    && memcmp(vars[k].name, name.data, name.len) == 0)
                    break;
            if (k < pt_nelems(vars) && vars[k].log && !log)
                return pt_conf_error(cx, s, "\"%s\": $%.*s is known only once the response "
                                     "is sent (the access log's format_string)", text,
                                     (int) name.len, name.data);
            if (k == pt_nelems(vars))
                return pt_conf_error(cx, s, "\"%s\": unknown variable $%.*s (known: "
                                     "$remote_addr, $listener, $host, $method, $uri, "
                                     "$request_uri, $args, $http_NAME, $arg_NAME, "
                                     "$cookie_NAME%s)", text, (int) name.len,
                                     name.data, log ? ", $status, $body_bytes_sent, "
                                     "$bytes_sent, $request_time, $request, $request_id, "
                                     "$upstream_addr, $upstream_status, "
                                     "$upstream_response_time, $time_iso8601, $time_local, "
                                     "$server_protocol, $scheme, $cache_status, "
                                     "$tls_protocol" : "");
            *p = (pt_var_part) { vars[k].kind, PT_STR_NULL };
            v->request = v->request || vars[k].request;
        }
        v->nparts++;
    }
    if (litlen)
        v->parts[v->nparts++] = (pt_var_part) { PT_VAR_LITERAL, { litlen, lit } };
    return PT_OK;
}

int pt_var_compile(pt_conf_ctx *cx, config_setting_t *s, const char *text, pt_var *v)
{
    return compile(cx, s, text, v, false);
}

int pt_var_compile_log(pt_conf_ctx *cx, config_setting_t *s, const char *text, pt_var *v)
{
    return compile(cx, s, text, v, true);
}

/* ---- the log variables: formatted into the worker's buffers ---- */

static pt_str fmt_ms(char *buf, size_t size, uint64_t ms)
{
    int n = snprintf(buf, size, "%llu.%03llu", (unsigned long long) (ms / 1000),
                     (unsigned long long) (ms % 1000));
    return (pt_str) { n > 0 ? (size_t) n : 0, buf };
}

static pt_str log_value(pt_var_kind kind, pt_request *r)
{
    static char num[64], line[4200], when[64];
    int n = 0;

    switch (kind) {
    case PT_VAR_STATUS:
        n = snprintf(num, sizeof(num), "%03u", r->status);
        break;
    case PT_VAR_BODY_BYTES_SENT: {
        uint64_t overhead = r->resp_head_len + (r->continue_sent ? 25 : 0);
        n = snprintf(num, sizeof(num), "%llu", (unsigned long long)
                     (r->bytes_sent > overhead ? r->bytes_sent - overhead : 0));
        break;
    }
    case PT_VAR_BYTES_SENT:
        n = snprintf(num, sizeof(num), "%llu", (unsigned long long) r->bytes_sent);
        break;
    case PT_VAR_REQUEST_TIME:
        return fmt_ms(num, sizeof(num), pt_loop_cur->now - r->start_mono);
    case PT_VAR_REQUEST:
        if (r->head.method_name.len == 0)
            return PT_STR_NULL;
        n = snprintf(line, sizeof(line), "%.*s %.*s HTTP/%u.%u", (int) r->head.method_name.len,
                     r->head.method_name.data, (int) pt_min(r->head.target.len, 4096),
                     r->head.target.data, r->head.version / 10, r->head.version % 10);
        return (pt_str) { n > 0 ? pt_min((size_t) n, sizeof(line) - 1) : 0, line };
    case PT_VAR_REQUEST_ID:
        return r->request_id;
    case PT_VAR_UPSTREAM_ADDR:
        return r->upstream_addr;
    case PT_VAR_UPSTREAM_STATUS:
        if (r->upstream_status == 0)
            return PT_STR_NULL;
        n = snprintf(num, sizeof(num), "%u", r->upstream_status);
        break;
    case PT_VAR_UPSTREAM_RESPONSE_TIME:
        return r->upstream_ms >= 0 ? fmt_ms(num, sizeof(num), (uint64_t) r->upstream_ms)
                                   : PT_STR_NULL;
    case PT_VAR_TIME_ISO8601: {
        time_t sec = (time_t) (r->start_ms / 1000);
        struct tm tm;
        localtime_r(&sec, &tm);
        size_t k = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", &tm);
        if (k >= 5 && k + 1 < sizeof(when)) {       /* +0100 -> +01:00 */
            memmove(when + k - 1, when + k - 2, 3);
            when[k - 2] = ':';
            k++;
        }
        return (pt_str) { k, when };
    }
    case PT_VAR_TIME_LOCAL:
        return pt_clock_log_time(r->start_ms);
    case PT_VAR_SERVER_PROTOCOL:
        if (r->head.method_name.len == 0)
            return PT_STR_NULL;
        n = snprintf(num, sizeof(num), "HTTP/%u.%u", r->head.version / 10, r->head.version % 10);
        break;
    case PT_VAR_SCHEME:
        return r->head.scheme;
    case PT_VAR_CACHE_STATUS:
        return r->cache_status ? (pt_str) { strlen(r->cache_status), r->cache_status }
                               : PT_STR_NULL;
    case PT_VAR_TLS_PROTOCOL: {
        const char *v = pt_xprt_tls_version(&r->conn->x);
        return (pt_str) { strlen(v), v };
    }
    default:
        return PT_STR_NULL;
    }
    return (pt_str) { n > 0 ? pt_min((size_t) n, sizeof(num) - 1) : 0, num };
}

/* The value of the first "name=value" pair named name in a list separated by sep (the
 * query: '&'; cookies: ';', with spaces after it), as sent. A name without '=' has an
 * empty value. */
static pt_str find_pair(pt_str list, char sep, pt_str name)
{
    const char *p = list.data, *end = list.data + list.len;
    while (p && p < end) {
        while (sep == ';' && p < end && *p == ' ')
            p++;
        const char *next = memchr(p, sep, (size_t) (end - p));
        const char *stop = next ? next : end;
        const char *eq = memchr(p, '=', (size_t) (stop - p));
        const char *nend = eq ? eq : stop;
        if ((size_t) (nend - p) == name.len && memcmp(p, name.data, name.len) == 0)
            return eq ? (pt_str) { (size_t) (stop - eq - 1), eq + 1 } : (pt_str) { 0, p };
        p = next ? next + 1 : NULL;
    }
    return PT_STR_NULL;
}

static pt_str cookie(pt_request *r, pt_str name)
{
    for (uint32_t j = 0; j < r->head.nheaders; j++)
        if (pt_str_caseeq_lit(r->head.headers[j].name, "cookie")) {
            pt_str v = find_pair(r->head.headers[j].value, ';', name);
            if (v.data)
                return v;
        }
    return PT_STR_NULL;
}

pt_str pt_var_value(const pt_var_part *p, pt_request *r, const pt_conn *c)
{
    if (p->kind == PT_VAR_LITERAL)
        return p->text;
    if (p->kind == PT_VAR_REMOTE_ADDR)
        return (pt_str) { c->peer_ip_len, c->peer_ip };
    if (p->kind == PT_VAR_LISTENER) {
        const pt_listener_conf *l = c->listener->conf;
        return l->name[0] ? (pt_str) { strlen(l->name), l->name }
                          : (pt_str) { strlen(l->address), l->address };
    }
    if (r == NULL)
        return PT_STR_NULL;             /* a connection's key: no request yet */
    switch (p->kind) {
    case PT_VAR_HOST:
        return r->host;
    case PT_VAR_METHOD:
        return r->head.method_name;
    case PT_VAR_URI:
        return r->path;
    case PT_VAR_REQUEST_URI:
        return r->head.target;
    case PT_VAR_ARGS:
        return r->head.query;
    case PT_VAR_HTTP: {
        pt_header *h = pt_http_req_header(r, p->text);
        return h ? h->value : PT_STR_NULL;
    }
    case PT_VAR_ARG:
        return r->head.query.data ? find_pair(r->head.query, '&', p->text) : PT_STR_NULL;
    case PT_VAR_COOKIE:
        return cookie(r, p->text);
    default:
        return log_value(p->kind, r);
    }
}

size_t pt_var_eval(const pt_var *v, pt_request *r, const pt_conn *c, char *buf, size_t size)
{
    size_t len = 0;
    for (unsigned i = 0; i < v->nparts; i++) {
        pt_str s = pt_var_value(&v->parts[i], r, c);
        size_t n = pt_min(s.len, size - len);
        if (n)
            memcpy(buf + len, s.data, n);
        len += n;
    }
    return len;
}
