/* Variables in configured strings (include/portico/var.h). */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/http.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/var.h"

static const struct {
    const char *name;
    pt_var_kind kind;
    bool        request;
} vars[] = {
    { "remote_addr", PT_VAR_REMOTE_ADDR, false },
    { "listener", PT_VAR_LISTENER, false },
    { "host", PT_VAR_HOST, true },
    { "method", PT_VAR_METHOD, true },
    { "uri", PT_VAR_URI, true },
    { "request_uri", PT_VAR_REQUEST_URI, true },
    { "args", PT_VAR_ARGS, true },
};

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_';
}

int pt_var_compile(pt_conf_ctx *cx, config_setting_t *s, const char *text, pt_var *v)
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
            if (k == pt_nelems(vars))
                return pt_conf_error(cx, s, "\"%s\": unknown variable $%.*s (known: "
                                     "$remote_addr, $listener, $host, $method, $uri, "
                                     "$request_uri, $args, $http_NAME, $arg_NAME, "
                                     "$cookie_NAME)", text, (int) name.len,
                                     name.data);
            *p = (pt_var_part) { vars[k].kind, PT_STR_NULL };
            v->request = v->request || vars[k].request;
        }
        v->nparts++;
    }
    if (litlen)
        v->parts[v->nparts++] = (pt_var_part) { PT_VAR_LITERAL, { litlen, lit } };
    return PT_OK;
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
        return PT_STR_NULL;
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
