/* Request variables (include/portico/vars.h): the grammar of every configured key made of
 * request data, compiled at load and evaluated without allocation per request. */
#include "portico/conf.h"
#include "portico/http.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/vars.h"

static const struct {
    const char *name;
    pt_var_kind kind;
    bool        prefix;     /* name_SUFFIX */
} vars[] = {
    { "uri", PT_VAR_URI, false },
    { "request_uri", PT_VAR_REQUEST_URI, false },
    { "args", PT_VAR_ARGS, false },
    { "host", PT_VAR_HOST, false },
    { "scheme", PT_VAR_SCHEME, false },
    { "method", PT_VAR_METHOD, false },
    { "remote_addr", PT_VAR_REMOTE_ADDR, false },
    { "http_", PT_VAR_HTTP, true },
    { "cookie_", PT_VAR_COOKIE, true },
    { "arg_", PT_VAR_ARG, true },
};

static bool var_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int pt_vars_compile(pt_conf_ctx *cx, config_setting_t *s, pt_vars *out)
{
    const char *v = config_setting_get_string(s);
    if (v == NULL)
        return pt_conf_type_error(cx, s, "a string such as \"$host$uri\"");
    return pt_vars_parse(cx, s, v, out);
}

int pt_vars_parse(pt_conf_ctx *cx, config_setting_t *s, const char *v, pt_vars *out)
{
    size_t len = strlen(v), nsegs = 0, nvars = 0;
    pt_var_seg *segs = pt_pcalloc(cx->pool, (len + 1) * sizeof(*segs));
    if (segs == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (size_t i = 0; i < len;) {
        if (v[i] != '$') {
            size_t j = i;
            while (j < len && v[j] != '$')
                j++;
            segs[nsegs++] = (pt_var_seg) { PT_VAR_TEXT, { j - i, v + i } };
            i = j;
            continue;
        }
        bool brace = i + 1 < len && v[i + 1] == '{';
        size_t a = i + 1 + brace, b = a;
        while (b < len && var_char(v[b]))
            b++;
        if (brace && (b >= len || v[b] != '}'))
            return pt_conf_error(cx, s, "\"%s\": \"${\" without a closing \"}\"", v);
        if (b == a)
            return pt_conf_error(cx, s, "\"%s\": '$' without a variable name (at offset %zu)",
                                 v, i);
        pt_str name = { b - a, v + a };
        bool found = false;
        for (unsigned n = 0; n < pt_nelems(vars) && !found; n++) {
            size_t vl = strlen(vars[n].name);
            if (vars[n].prefix ? name.len > vl && memcmp(name.data, vars[n].name, vl) == 0
                               : name.len == vl && memcmp(name.data, vars[n].name, vl) == 0) {
                pt_str arg = vars[n].prefix ? (pt_str) { name.len - vl, name.data + vl }
                                            : PT_STR_NULL;
                if (vars[n].kind == PT_VAR_HTTP) {
                    /* $http_x_user: the field X-User */
                    char *f = pt_pstrndup(cx->pool, arg.data, arg.len);
                    if (f == NULL)
                        return pt_conf_error(cx, s, "out of memory");
                    for (char *p = f; *p; p++)
                        if (*p == '_')
                            *p = '-';
                    arg.data = f;
                }
                segs[nsegs++] = (pt_var_seg) { vars[n].kind, arg };
                found = true;
            }
        }
        if (!found)
            return pt_conf_error(cx, s, "\"%s\": unknown variable $%.*s (known: $uri, "
                                 "$request_uri, $args, $host, $scheme, $method, $remote_addr, "
                                 "$http_NAME, $cookie_NAME, $arg_NAME)", v, (int) name.len,
                                 name.data);
        nvars++;
        i = b + brace;
    }
    out->text = pt_pstrndup(cx->pool, v, len);
    out->segs = segs;
    out->nsegs = (unsigned) nsegs;
    out->nvars = (unsigned) nvars;
    return out->text ? PT_OK : pt_conf_error(cx, s, "out of memory");
}

/* The value of name=value in a list separated by sep (cookies: "; ", query: "&"). */
static pt_str find_pair(pt_str list, char sep, pt_str name)
{
    const char *p = list.data, *end = list.data + list.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == sep))
            p++;
        const char *e = memchr(p, sep, (size_t) (end - p));
        if (e == NULL)
            e = end;
        const char *eq = memchr(p, '=', (size_t) (e - p));
        if (eq && (size_t) (eq - p) == name.len && memcmp(p, name.data, name.len) == 0)
            return (pt_str) { (size_t) (e - eq - 1), eq + 1 };
        p = e;
    }
    return PT_STR_NULL;
}

pt_str pt_var_value(const pt_request *r, const pt_var_seg *g)
{
    pt_str v = PT_STR_NULL;
    switch (g->kind) {
    case PT_VAR_TEXT:
        return g->name;
    case PT_VAR_URI:
        return r->path;
    case PT_VAR_REQUEST_URI:
        return r->head.target;
    case PT_VAR_ARGS:
        return r->head.query.data ? r->head.query : PT_STR_NULL;
    case PT_VAR_HOST:
        return r->host;
    case PT_VAR_SCHEME:
        return r->head.scheme;
    case PT_VAR_METHOD:
        return r->head.method_name;
    case PT_VAR_REMOTE_ADDR:
        return (pt_str) { r->conn->peer_ip_len, r->conn->peer_ip };
    case PT_VAR_HTTP: {
        pt_header *f = pt_http_req_header((pt_request *) r, g->name);
        return f ? f->value : PT_STR_NULL;
    }
    case PT_VAR_COOKIE:
        for (uint32_t j = 0; j < r->head.nheaders && v.data == NULL; j++)
            if (pt_str_caseeq_lit(r->head.headers[j].name, "cookie"))
                v = find_pair(r->head.headers[j].value, ';', g->name);
        return v;
    case PT_VAR_ARG:
        return r->head.query.data ? find_pair(r->head.query, '&', g->name) : PT_STR_NULL;
    }
    return v;
}
