/* Configuration loading: a libconfig file becomes a typed pt_conf in one pool.
 *
 * Every key goes through a key table (name, scope, setter, offset, range, argument), the
 * core's own or a module's, so adding a key is one line and a module's keys reach its own
 * conf struct without the core knowing them. Every error is reported as
 * "FILE:LINE: key 'a.b[2].c': what is wrong"; the first one stops the load. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "conf_int.h"

/* ---- errors ---- */

/* The dotted path of s from the root: "routes[2].return.status". */
static void setting_path(const config_setting_t *s, char *buf, size_t size)
{
    const config_setting_t *chain[32];
    unsigned n = 0;
    size_t len = 0;

    for (; s && config_setting_parent(s) && n < pt_nelems(chain); s = config_setting_parent(s))
        chain[n++] = s;
    buf[0] = '\0';
    while (n-- > 0 && len < size) {
        const config_setting_t *c = chain[n];
        const config_setting_t *p = config_setting_parent(c);
        int w;
        if (config_setting_is_list(p) || config_setting_is_array(p))
            w = snprintf(buf + len, size - len, "[%d]", config_setting_index(c));
        else
            w = snprintf(buf + len, size - len, "%s%s", len ? "." : "",
                         config_setting_name(c));
        if (w < 0)
            break;
        len += (size_t) w;
    }
}

/* Where setting s was written: its file and line in that file. */
static const char *setting_where(const pt_conf_ctx *cx, const config_setting_t *s,
                                 unsigned *line)
{
    if (cx->text) {
        const char *file = pt_conf_text_where(cx->text, config_setting_source_line(s), line);
        return file ? file : cx->file;
    }
    const char *file = config_setting_source_file(s);
    *line = config_setting_source_line(s);
    return file ? file : cx->file;
}

unsigned pt_conf_setting_line(const pt_conf_ctx *cx, const config_setting_t *s)
{
    unsigned line;
    setting_where(cx, s, &line);
    return line;
}

int pt_conf_error(pt_conf_ctx *cx, const config_setting_t *s, const char *fmt, ...)
{
    char msg[768], path[256];
    va_list ap;

    /* the first error is the one worth reading: later ones are often its consequences */
    if (cx->errors++ > 0)
        return PT_ERROR;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (s == NULL || config_setting_parent(s) == NULL) {
        snprintf(cx->error, sizeof(cx->error), "%s: %s", cx->file, msg);
        return PT_ERROR;
    }
    unsigned line;
    const char *file = setting_where(cx, s, &line);
    setting_path(s, path, sizeof(path));
    /* an element of a list of groups (a route, a listener) is named by its position;
     * anything else is a key */
    if (config_setting_name(s) == NULL && config_setting_is_group(s))
        snprintf(cx->error, sizeof(cx->error), "%s:%u: %s: %s", file, line, path, msg);
    else
        snprintf(cx->error, sizeof(cx->error), "%s:%u: key '%s': %s", file, line, path, msg);
    return PT_ERROR;
}

const char *pt_conf_type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:  return "an integer";
    case CONFIG_TYPE_FLOAT:  return "a float";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL:   return "a boolean";
    case CONFIG_TYPE_GROUP:  return "a group { ... }";
    case CONFIG_TYPE_ARRAY:  return "an array [ ... ]";
    case CONFIG_TYPE_LIST:   return "a list ( ... )";
    }
    return "nothing";
}

int pt_conf_type_error(pt_conf_ctx *cx, const config_setting_t *s, const char *want)
{
    return pt_conf_error(cx, s, "expected %s, got %s", want, pt_conf_type_name(s));
}

void *pt_conf_alloc(pt_conf_ctx *cx, size_t n)
{
    void *p = pt_pcalloc(cx->pool, n);
    if (p == NULL)
        pt_conf_error(cx, NULL, "out of memory");
    return p;
}

/* ---- integers: libconfig 1.5 truncates literals past 32 bits without a word ---- */

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || c == '_' || c == '-' || c == '*';
}

/* Reads the integer literal at *pp (decimal or 0x hex, optional sign). Returns false if
 * there is none; *fits: the value fits the 32 bits libconfig 1.5 keeps of a plain literal. */
static bool read_literal(const char **pp, const char *end, int64_t *val, bool *fits)
{
    const char *q = *pp;
    bool neg = false, overflow = false;
    unsigned base = 10, digits = 0;
    uint64_t mag = 0;

    if (q < end && (*q == '-' || *q == '+'))
        neg = *q++ == '-';
    if (end - q > 2 && q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
        base = 16;
        q += 2;
    }
    for (; q < end; q++, digits++) {
        unsigned d;
        if (*q >= '0' && *q <= '9')
            d = (unsigned) (*q - '0');
        else if (base == 16 && pt_tolower(*q) >= 'a' && pt_tolower(*q) <= 'f')
            d = (unsigned) (pt_tolower(*q) - 'a' + 10);
        else
            break;
        if (mag > (UINT64_MAX - d) / base)
            overflow = true;
        else
            mag = mag * base + d;
    }
    if (digits == 0)
        return false;
    *pp = q;
    *fits = !overflow && mag <= (neg ? (uint64_t) INT32_MAX + 1 : (uint64_t) INT32_MAX);
    *val = *fits ? (neg ? -(int64_t) mag : (int64_t) mag) : 0;
    return true;
}

/* Looks for "name = literal" on the setting's line. Several settings of the same name may
 * share a line (list elements): the value is fine if any of their literals gives it; it
 * was truncated if none does and one of them does not fit in 32 bits. Anything else
 * (no name, text not found) is left alone: this check must never reject a good file. */
static int check_int_literal(pt_conf_ctx *cx, const config_setting_t *s, int64_t v)
{
    const pt_conf_text *t = cx->text;
    const char *name = config_setting_name(s);
    unsigned line = config_setting_source_line(s);
    const char *bad = NULL;
    int badlen = 0;

    if (name == NULL || t == NULL || line == 0 || line > t->nlines)
        return PT_OK;
    const char *p = t->data + t->offs[line - 1];
    const char *end = line < t->nlines ? t->data + t->offs[line] : t->data + t->len;
    size_t nlen = strlen(name);

    for (; p + nlen < end; p++) {
        if (memcmp(p, name, nlen) != 0 || (p > t->data && name_char(p[-1]))
            || name_char(p[nlen]))
            continue;
        const char *q = p + nlen;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q == end || (*q != '=' && *q != ':'))
            continue;
        for (q++; q < end && (*q == ' ' || *q == '\t'); q++) {
        }
        const char *lit = q;
        int64_t val;
        bool fits;
        if (!read_literal(&q, end, &val, &fits))
            continue;
        if (fits && val == v)
            return PT_OK;
        if (!fits && bad == NULL) {
            bad = lit;
            badlen = (int) (q - lit);
        }
    }
    if (bad)
        return pt_conf_error(cx, s, "%.*s does not fit in 32 bits: write %.*sL for a "
                             "64-bit integer", badlen, bad, badlen, bad);
    return PT_OK;
}

static int get_integer(pt_conf_ctx *cx, config_setting_t *s, int64_t *v)
{
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return pt_conf_type_error(cx, s, "an integer");
    *v = config_setting_get_int64(s);
    return t == CONFIG_TYPE_INT ? check_int_literal(cx, s, *v) : PT_OK;
}

static int check_range(pt_conf_ctx *cx, config_setting_t *s, int64_t v, int64_t min,
                       int64_t max)
{
    if (v < min || v > max)
        return pt_conf_error(cx, s, "%lld is out of range %lld..%lld", (long long) v,
                             (long long) min, (long long) max);
    return PT_OK;
}

/* ---- generic setters ---- */

/* Integer setters: [min, max] inclusive; min == max == 0 means the type's whole range. */
int pt_conf_set_int(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    int64_t v = 0;
    if (get_integer(cx, s, &v) != PT_OK)
        return PT_ERROR;
    if ((k->min || k->max) && check_range(cx, s, v, k->min, k->max) != PT_OK)
        return PT_ERROR;
    *(int64_t *) ((char *) base + k->offset) = v;
    return PT_OK;
}

int pt_conf_set_uint32(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    int64_t v = 0;
    int64_t min = k->min, max = k->max;
    if (min == 0 && max == 0)
        max = UINT32_MAX;
    if (get_integer(cx, s, &v) != PT_OK || check_range(cx, s, v, min, max) != PT_OK)
        return PT_ERROR;
    *(uint32_t *) ((char *) base + k->offset) = (uint32_t) v;
    return PT_OK;
}

int pt_conf_set_uint64(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    int64_t v = 0;
    int64_t min = k->min, max = k->max;
    if (min == 0 && max == 0)
        max = INT64_MAX;
    if (get_integer(cx, s, &v) != PT_OK || check_range(cx, s, v, min, max) != PT_OK)
        return PT_ERROR;
    *(uint64_t *) ((char *) base + k->offset) = (uint64_t) v;
    return PT_OK;
}

int pt_conf_set_bool(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return pt_conf_type_error(cx, s, "a boolean (true or false)");
    *(bool *) ((char *) base + k->offset) = config_setting_get_bool(s) != 0;
    return PT_OK;
}

/* String setters: min and max bound the length in bytes (max 0: no bound). */
static const char *get_string(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        pt_conf_type_error(cx, s, "a string");
        return NULL;
    }
    const char *v = config_setting_get_string(s);
    size_t len = strlen(v);
    if (k && len < (size_t) k->min) {
        if (len == 0)
            pt_conf_error(cx, s, "must not be empty");
        else
            pt_conf_error(cx, s, "\"%s\" is shorter than %lld bytes", v, (long long) k->min);
        return NULL;
    }
    if (k && k->max > 0 && len > (size_t) k->max) {
        pt_conf_error(cx, s, "longer than %lld bytes", (long long) k->max);
        return NULL;
    }
    return v;
}

int pt_conf_set_str(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    const char *v = get_string(cx, s, k);
    if (v == NULL)
        return PT_ERROR;
    char *copy = pt_pstrndup(cx->pool, v, strlen(v));
    if (copy == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    *(const char **) ((char *) base + k->offset) = copy;
    return PT_OK;
}

int pt_conf_set_pstr(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    const char *v = get_string(cx, s, k);
    if (v == NULL)
        return PT_ERROR;
    pt_str copy = pt_pstr(cx->pool, (pt_str) { strlen(v), v });
    if (copy.data == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    *(pt_str *) ((char *) base + k->offset) = copy;
    return PT_OK;
}

int pt_conf_set_enum(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    const char *const *names = k->arg;
    const char *v = get_string(cx, s, NULL);
    char list[256];
    size_t len = 0;

    if (v == NULL)
        return PT_ERROR;
    for (int i = 0; names[i]; i++) {
        if (strcmp(v, names[i]) == 0) {
            *(int *) ((char *) base + k->offset) = i;
            return PT_OK;
        }
        int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", names[i]);
        if (w > 0 && (size_t) w < sizeof(list) - len)
            len += (size_t) w;
    }
    return pt_conf_error(cx, s, "\"%s\" is not one of %s", v, list);
}

int pt_conf_set_group(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    return pt_conf_parse_group(cx, s, k->arg, (char *) base + k->offset);
}

/* ---- key lookup and dispatch ---- */

static const pt_conf_key *find_key(const pt_conf_key *keys, const char *name, unsigned scope)
{
    for (; keys && keys->name; keys++)
        if ((scope == 0 || (keys->scope & scope)) && strcmp(keys->name, name) == 0)
            return keys;
    return NULL;
}

static unsigned edit_distance(const char *a, const char *b)
{
    unsigned row[65], prev;
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned) j;
    for (size_t i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = (unsigned) i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned cur = row[j];
            unsigned sub = prev + (a[i - 1] != b[j - 1]);
            row[j] = pt_min(pt_min(row[j] + 1, row[j - 1] + 1), sub);
            prev = cur;
        }
    }
    return row[lb];
}

static void suggest(const pt_conf_key *keys, unsigned scope, const char *name,
                    const char **best, unsigned *bestd)
{
    for (; keys && keys->name; keys++) {
        if (scope && !(keys->scope & scope))
            continue;
        unsigned d = edit_distance(name, keys->name);
        if (d < *bestd) {
            *bestd = d;
            *best = keys->name;
        }
    }
}

/* Where a key that is unknown here belongs, if it is a key of some scope. */
static const char *scope_home(unsigned scope)
{
    if (scope & PT_SCOPE_MAIN)
        return "at the top level";
    if (scope & PT_SCOPE_LISTENER)
        return "in a listener";
    if ((scope & PT_SCOPE_ROUTE) && (scope & PT_SCOPE_GLOBAL))
        return "in a route or in filters.global";
    if (scope & PT_SCOPE_ROUTE)
        return "in a route";
    if (scope & PT_SCOPE_FILTERS)
        return "in filters";
    return "in filters.global";
}

static const char *key_home(const char *name)
{
    const pt_conf_key *core[] = { pt_conf_main_keys, pt_conf_listener_keys, pt_conf_route_keys };
    const unsigned scopes[] = { PT_SCOPE_MAIN, PT_SCOPE_LISTENER, PT_SCOPE_ROUTE };
    const pt_conf_key *k;

    for (unsigned i = 0; i < pt_nelems(core); i++)
        if (find_key(core[i], name, 0))
            return scope_home(scopes[i]);
    for (unsigned i = 0; i < pt_nmodules; i++)
        if ((k = find_key(pt_modules[i]->keys, name, 0)) != NULL)
            return scope_home(k->scope);
    return NULL;
}

/* "unknown key", with where it belongs if it is misplaced, or else the nearest known name
 * when it is a likely typo. */
static int unknown_key(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *core,
                       unsigned scope)
{
    const char *name = config_setting_name(s);
    const char *best = NULL, *home = key_home(name);
    unsigned bestd = 3;

    if (home)
        return pt_conf_error(cx, s, "unknown key here (it goes %s)", home);

    suggest(core, 0, name, &best, &bestd);
    for (unsigned i = 0; scope && i < pt_nmodules; i++)
        suggest(pt_modules[i]->keys, scope, name, &best, &bestd);
    if (best && bestd <= strlen(name) / 2)
        return pt_conf_error(cx, s, "unknown key (did you mean '%s'?)", best);
    return pt_conf_error(cx, s, "unknown key");
}

static int call_setter(pt_conf_ctx *cx, config_setting_t *m, const pt_conf_key *k,
                       void *base)
{
    if (k->set(cx, m, k, base) == PT_OK && cx->errors == 0)
        return PT_OK;
    if (cx->errors == 0)   /* a setter that failed without saying why */
        pt_conf_error(cx, m, "invalid value");
    return PT_ERROR;
}

static int dispatch(pt_conf_ctx *cx, config_setting_t *m, const pt_conf_key *core,
                    void *core_base, unsigned scope, void **mod_conf)
{
    const char *name = config_setting_name(m);
    const pt_conf_key *k = find_key(core, name, 0);

    if (k)
        return call_setter(cx, m, k, core_base);
    for (unsigned i = 0; i < pt_nmodules; i++) {
        k = find_key(pt_modules[i]->keys, name, scope);
        if (k)
            return call_setter(cx, m, k, mod_conf ? mod_conf[pt_modules[i]->index] : NULL);
    }
    return unknown_key(cx, m, core, scope);
}

int pt_conf_parse_group(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *keys,
                        void *base)
{
    if (!config_setting_is_group(s))
        return pt_conf_type_error(cx, s, "a group { ... }");
    for (int i = 0, n = config_setting_length(s); i < n; i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned) i);
        if (dispatch(cx, m, keys, base, 0, NULL) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

int pt_conf_parse_scope(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *core,
                        void *core_base, unsigned scope, void **mod_conf)
{
    if (!config_setting_is_group(s))
        return pt_conf_type_error(cx, s, "a group { ... }");
    for (int i = 0, n = config_setting_length(s); i < n; i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned) i);
        if (dispatch(cx, m, core, core_base, scope, mod_conf) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

void **pt_conf_mod_confs(pt_conf_ctx *cx, unsigned scope, pt_route *rt, pt_listener_conf *l)
{
    void **v = pt_conf_alloc(cx, (pt_nmodules + 1) * sizeof(void *));
    if (v == NULL)
        return NULL;
    for (unsigned i = 0; i < pt_nmodules; i++) {
        const pt_module *m = pt_modules[i];
        size_t size = scope == PT_SCOPE_MAIN ? m->main_conf_size
                      : scope == PT_SCOPE_ROUTE ? m->route_conf_size : m->listener_conf_size;
        if (size && (v[m->index] = pt_conf_alloc(cx, size)) == NULL)
            return NULL;
        int rc = PT_OK;
        if (scope == PT_SCOPE_MAIN && m->main_conf_init)
            rc = m->main_conf_init(cx, v[m->index]);
        else if (scope == PT_SCOPE_ROUTE && m->route_conf_init)
            rc = m->route_conf_init(cx, rt, v[m->index]);
        else if (scope == PT_SCOPE_LISTENER && m->listener_conf_init)
            rc = m->listener_conf_init(cx, l, v[m->index]);
        if (rc != PT_OK) {
            if (cx->errors == 0)
                pt_conf_error(cx, NULL, "module %s failed to initialise its configuration",
                              m->name);
            return NULL;
        }
    }
    return v;
}

/* ---- small validators shared by the core and modules ---- */

bool pt_conf_is_token(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || (c && strchr(extra, c))))
            return false;
    }
    return true;
}

bool pt_conf_bad_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

/* ---- addresses ---- */

int pt_conf_parse_addr(pt_conf_ctx *cx, config_setting_t *s, const char *text, bool resolve,
                       struct sockaddr_storage *ss, socklen_t *len)
{
    const char *host, *colon;
    size_t hostlen;
    bool v6 = false;
    char h[256];

    memset(ss, 0, sizeof(*ss));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return pt_conf_error(cx, s, "\"%s\": missing ']' after the IPv6 address", text);
        host = text + 1;
        hostlen = (size_t) (close - host);
        colon = close + 1;
        if (*colon != ':')
            return pt_conf_error(cx, s, "\"%s\": missing port (e.g. [::1]:8080)", text);
        v6 = true;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return pt_conf_error(cx, s, "\"%s\": missing port (e.g. 127.0.0.1:8080)", text);
        host = text;
        hostlen = (size_t) (colon - text);
        if (memchr(host, ':', hostlen))
            return pt_conf_error(cx, s, "\"%s\": an IPv6 address goes in brackets "
                                 "(e.g. [::1]:8080)", text);
    }
    uint64_t port;
    if (!pt_parse_u64((pt_str) { strlen(colon + 1), colon + 1 }, 65535, &port) || port == 0)
        return pt_conf_error(cx, s, "\"%s\": the port must be 1..65535", text);
    if (hostlen == 0)
        return pt_conf_error(cx, s, "\"%s\": missing host (\"*:%llu\" is every address)",
                             text, (unsigned long long) port);
    if (hostlen >= sizeof(h))
        return pt_conf_error(cx, s, "\"%s\": host too long", text);
    memcpy(h, host, hostlen);
    h[hostlen] = '\0';

    struct sockaddr_in *sin = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
    if (v6) {
        if (inet_pton(AF_INET6, h, &sin6->sin6_addr) != 1)
            return pt_conf_error(cx, s, "\"%s\": invalid IPv6 address", text);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        *len = sizeof(*sin6);
        return PT_OK;
    }
    if (strcmp(h, "*") == 0 || inet_pton(AF_INET, h, &sin->sin_addr) == 1) {
        if (h[0] == '*')
            sin->sin_addr.s_addr = htonl(INADDR_ANY);
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        *len = sizeof(*sin);
        return PT_OK;
    }
    if (!resolve)
        return pt_conf_error(cx, s, "\"%s\": not an IP address (use an IPv4 address, "
                             "[IPv6] or *)", text);

    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(h, NULL, &hints, &res);
    if (rc != 0)
        return pt_conf_error(cx, s, "\"%s\": cannot resolve %s: %s", text, h,
                             gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET6)
        sin6->sin6_port = htons((uint16_t) port);
    else
        sin->sin_port = htons((uint16_t) port);
    return PT_OK;
}

/* ---- content producers ---- */

/* The key that makes a module produce content: its first route key, by convention. */
static const char *content_key(const pt_module *m)
{
    for (const pt_conf_key *k = m->keys; k && k->name; k++)
        if (k->scope & PT_SCOPE_ROUTE)
            return k->name;
    return m->name;
}

int pt_conf_set_content(pt_conf_ctx *cx, pt_route *rt, const pt_module *m)
{
    if (rt->content == NULL || rt->content == m) {
        rt->content = m;
        return PT_OK;
    }
    return pt_conf_error(cx, pt_conf_loader_of(cx)->route_settings[rt->index],
                         "both %s and %s produce the response: keep one",
                         content_key(rt->content), content_key(m));
}

static int check_content(pt_conf_ctx *cx)
{
    pt_conf *conf = cx->conf;
    char list[256];
    size_t len = 0;

    for (unsigned i = 0; i < conf->nroutes; i++) {
        if (conf->routes[i].content)
            continue;
        for (unsigned j = 0; j < pt_nmodules; j++) {
            if (pt_modules[j]->content == NULL)
                continue;
            int w = snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "",
                             content_key(pt_modules[j]));
            if (w > 0 && (size_t) w < sizeof(list) - len)
                len += (size_t) w;
        }
        list[len] = '\0';
        return pt_conf_error(cx, pt_conf_loader_of(cx)->route_settings[i],
                             "no content: give one of %s", len ? list : "(no module)");
    }
    return PT_OK;
}

/* ---- load ---- */

static void config_cleanup(void *data)
{
    config_destroy(data);
}


/* Line n of the text, trimmed, for syntax errors. */
static void text_line(const pt_conf_text *t, unsigned n, char *out, size_t outlen)
{
    out[0] = '\0';
    if (n < 1 || n > t->nlines)
        return;
    const char *p = t->data + t->offs[n - 1];
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, "\r\n");
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (len >= outlen) {
        len = outlen - 4;
        memcpy(out + len, "...", 3);
        memcpy(out, p, len);
        len += 3;
    } else {
        memcpy(out, p, len);
    }
    out[len] = '\0';
    for (char *q = out; *q; q++)
        if ((unsigned char) *q < 0x20)
            *q = ' ';
}

/* Reads the file and its includes, and lets libconfig parse the text. */
static int parse(pt_conf_loader *lc)
{
    pt_conf_ctx *cx = &lc->cx;

    if (pt_conf_text_read(&lc->text, cx->file, cx->error, sizeof(cx->error)) != PT_OK) {
        cx->errors++;
        return PT_ERROR;
    }
    cx->text = &lc->text;
    /* Should a directive get past the reader, libconfig would look for it under
     * /dev/null, where nothing can be opened: it fails with "cannot open include file"
     * instead of opening anything. */
    config_set_include_dir(lc->cfg, "/dev/null");
    if (config_read_string(lc->cfg, lc->text.data))
        return PT_OK;

    /* a syntax error has a line but no setting: formatted here, with the line itself,
     * since libconfig's text ("syntax error") rarely says which key is wrong */
    unsigned n = (unsigned) config_error_line(lc->cfg), line = n;
    const char *file = pt_conf_text_where(&lc->text, n, &line);
    char text[160] = "";
    text_line(&lc->text, n, text, sizeof(text));
    cx->errors++;
    snprintf(cx->error, sizeof(cx->error), "%s:%u: %s%s%s%s", file ? file : cx->file, line,
             config_error_text(lc->cfg), text[0] ? " in \"" : "", text, text[0] ? "\"" : "");
    return PT_ERROR;
}

static int load(pt_conf_loader *lc)
{
    pt_conf_ctx *cx = &lc->cx;
    pt_conf *conf = cx->conf;

    if (parse(lc) != PT_OK)
        return PT_ERROR;

    conf->main_conf = pt_conf_mod_confs(cx, PT_SCOPE_MAIN, NULL, NULL);
    if (conf->main_conf == NULL)
        return PT_ERROR;
    conf->filters_global = pt_conf_global_scope(cx);
    if (conf->filters_global == NULL)
        return PT_ERROR;

    /* routes refer to listeners (and modules' top-level objects) by name, so they are
     * parsed once every other top-level key is known, wherever they stand in the file */
    config_setting_t *root = config_root_setting(lc->cfg), *routes = NULL;
    for (int i = 0, n = config_setting_length(root); i < n; i++) {
        config_setting_t *m = config_setting_get_elem(root, (unsigned) i);
        if (strcmp(config_setting_name(m), "routes") == 0) {
            routes = m;
            continue;
        }
        if (dispatch(cx, m, pt_conf_main_keys, conf, PT_SCOPE_MAIN, conf->main_conf)
            != PT_OK)
            return PT_ERROR;
    }
    if (pt_conf_check_core(cx, root) != PT_OK)
        return PT_ERROR;
    if (routes && dispatch(cx, routes, pt_conf_main_keys, conf, PT_SCOPE_MAIN,
                           conf->main_conf) != PT_OK)
        return PT_ERROR;

    for (unsigned i = 0; i < pt_nmodules; i++) {
        pt_module *m = pt_modules[i];
        if (m->conf_check && m->conf_check(cx, conf) != PT_OK) {
            if (cx->errors == 0)
                pt_conf_error(cx, NULL, "module %s rejected the configuration", m->name);
            return PT_ERROR;
        }
    }
    if (pt_upstream_conf_check(cx) != PT_OK)
        return PT_ERROR;
    if (pt_tls_conf_check(cx) != PT_OK)
        return PT_ERROR;
    if (check_content(cx) != PT_OK)
        return PT_ERROR;
    return pt_route_table_build(cx);
}

pt_conf *pt_conf_load(const char *path, char *err, size_t errlen)
{
    pt_pool *pool = pt_pool_create(16384);
    pt_conf_loader lc;
    pt_conf *conf;
    int rc = PT_ERROR;

    if (pool == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    memset(&lc, 0, sizeof(lc));
    lc.cx.pool = pool;
    lc.cx.file = path;
    conf = pt_conf_alloc(&lc.cx, sizeof(*conf));
    if (conf) {
        conf->pool = pool;
        lc.cx.conf = conf;
        conf->file = pt_pstrndup(pool, path, strlen(path));
        lc.cfg = pt_palloc(pool, sizeof(config_t));
    }
    if (conf && conf->file && lc.cfg) {
        lc.cx.file = conf->file;
        config_init(lc.cfg);
        if (pt_pool_cleanup_add(pool, config_cleanup, lc.cfg) != PT_OK) {
            config_destroy(lc.cfg);
            pt_conf_error(&lc.cx, NULL, "out of memory");
        } else {
            pt_conf_defaults(conf);
            rc = load(&lc);
        }
    } else if (lc.cx.errors == 0) {
        pt_conf_error(&lc.cx, NULL, "out of memory");
    }
    pt_conf_text_free(&lc.text);
    lc.cx.text = NULL;
    if (rc != PT_OK || lc.cx.errors) {   /* an error reported is an error, whatever returned */
        snprintf(err, errlen, "%s", lc.cx.error);
        pt_pool_destroy(pool);
        return NULL;
    }
    return conf;
}

int pt_conf_check_syntax(const char *path, char *err, size_t errlen)
{
    pt_conf_loader lc;
    config_t cfg;

    memset(&lc, 0, sizeof(lc));
    lc.cx.file = path;
    lc.cfg = &cfg;
    config_init(&cfg);
    int rc = parse(&lc);
    config_destroy(&cfg);
    pt_conf_text_free(&lc.text);
    if (rc != PT_OK)
        snprintf(err, errlen, "%s", lc.cx.error);
    return rc;
}

void pt_conf_free(pt_conf *conf)
{
    /* the conf lives in its own pool: destroying the pool frees it, and the cleanups free
     * what lives outside (libconfig's tree, compiled patterns, their match data) */
    if (conf)
        pt_pool_destroy(conf->pool);
}
