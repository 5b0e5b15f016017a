/* Generic setters for lists: header fields and strings. */
#include "portico/conf.h"
#include "portico/pool.h"

/* RFC 9110 tchar */
bool pt_conf_is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            continue;
        if (c == 0 || strchr(extra, c) == NULL)
            return false;
    }
    return true;
}

static bool valid_value(const char *v)
{
    for (; *v; v++)
        if (*v == '\r' || *v == '\n')
            return false;
    return true;
}

int pt_conf_set_header_list(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                            void *base)
{
    pt_header_list *l = (pt_header_list *) ((char *) base + k->offset);
    if (!config_setting_is_list(s))
        return pt_conf_error(cx, s, "must be a list: ( { name = \"X-Name\"; value = \"v\"; } )");
    int n = config_setting_length(s);
    l->h = pt_pcalloc(cx->pool, (size_t) (n ? n : 1) * sizeof(pt_header));
    if (l->h == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        const char *name = NULL, *value = NULL;
        if (!config_setting_is_group(e))
            return pt_conf_error(cx, e, "each entry must be { name = \"...\"; value = \"...\"; }");
        for (int j = 0; j < config_setting_length(e); j++) {
            config_setting_t *m = config_setting_get_elem(e, (unsigned) j);
            const char *mn = config_setting_name(m);
            if (strcmp(mn, "name") != 0 && strcmp(mn, "value") != 0)
                return pt_conf_error(cx, m, "unknown key '%s' (expected name and value)", mn);
            if (config_setting_type(m) != CONFIG_TYPE_STRING)
                return pt_conf_error(cx, m, "must be a string");
            if (strcmp(mn, "name") == 0)
                name = config_setting_get_string(m);
            else
                value = config_setting_get_string(m);
        }
        if (name == NULL || value == NULL)
            return pt_conf_error(cx, e, "each entry needs both name and value");
        if (!pt_conf_is_token(name, strlen(name)))
            return pt_conf_error(cx, e, "\"%s\" is not a valid header name", name);
        if (!valid_value(value))
            return pt_conf_error(cx, e, "header value must not contain CR or LF");
        l->h[i].name = pt_pstr(cx->pool, (pt_str) { strlen(name), name });
        l->h[i].value = pt_pstr(cx->pool, (pt_str) { strlen(value), value });
    }
    l->n = (unsigned) n;
    return PT_OK;
}

int pt_conf_set_str_list(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_str_list *l = (pt_str_list *) ((char *) base + k->offset);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_error(cx, s, "must be an array of strings: [ \"a\", \"b\" ]");
    int n = config_setting_length(s);
    l->s = pt_pcalloc(cx->pool, (size_t) (n ? n : 1) * sizeof(pt_str));
    if (l->s == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        const char *v = config_setting_get_string(e);
        if (v == NULL)
            return pt_conf_error(cx, e, "must be a string");
        l->s[i] = pt_pstr(cx->pool, (pt_str) { strlen(v), v });
    }
    l->n = (unsigned) n;
    return PT_OK;
}
