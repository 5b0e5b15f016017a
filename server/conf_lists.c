/* Generic setters for lists: header fields and strings. */
#include <string.h>
#include "portico/conf.h"
#include "portico/pool.h"

static int set_field_name(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    if (pt_conf_set_pstr(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    const pt_str *n = (const pt_str *) ((char *) base + k->offset);
    if (!pt_conf_is_token(n->data, n->len))
        return pt_conf_error(cx, s, "\"%s\" is not a valid field name", n->data);
    return PT_OK;
}

/* RFC 9110 5.5: field-value = *field-content, which starts and ends with a visible
 * character (obs-text allowed); SP and HTAB only inside. A value with a control character
 * would split or end the head; leading or trailing whitespace would not survive a parser
 * (it is not part of the value) and means a mistake in the configuration. (NUL cannot get
 * here: libconfig strings end at it.) */
const char *pt_conf_field_value_error(const char *s, size_t len)
{
    if (pt_conf_bad_field_value(s, len))
        return "control characters (CR, LF, ...) are not allowed";
    if (len && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t'))
        return "leading or trailing whitespace is not allowed in a field value";
    return NULL;
}

static int set_field_value(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    if (pt_conf_set_pstr(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    const pt_str *v = (const pt_str *) ((char *) base + k->offset);
    const char *why = pt_conf_field_value_error(v->data, v->len);
    return why ? pt_conf_error(cx, s, "%s", why) : PT_OK;
}

static const pt_conf_key header_keys[] = {
    { "name", 0, set_field_name, offsetof(pt_header, name), 1, 256, NULL },
    { "value", 0, set_field_value, offsetof(pt_header, value), 0, 8192, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_conf_set_header_list(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                            void *base)
{
    pt_header_list *l = (pt_header_list *) ((char *) base + k->offset);
    if (!config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "a list ( { name = ...; value = ...; }, ... )");
    unsigned n = (unsigned) config_setting_length(s);
    l->h = pt_pcalloc(cx->pool, (n + 1) * sizeof(pt_header));
    if (l->h == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        pt_header *h = &l->h[i];
        if (pt_conf_parse_group(cx, e, header_keys, h) != PT_OK)
            return PT_ERROR;
        if (h->name.data == NULL)
            return pt_conf_error(cx, e, "missing key 'name'");
        if (h->value.data == NULL)
            return pt_conf_error(cx, e, "missing key 'value'");
        l->n = i + 1;
    }
    return PT_OK;
}

int pt_conf_set_str_list(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_str_list *l = (pt_str_list *) ((char *) base + k->offset);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of strings [ \"a\", \"b\" ]");
    unsigned n = (unsigned) config_setting_length(s);
    l->s = pt_pcalloc(cx->pool, (n ? n : 1) * sizeof(pt_str));
    if (l->s == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        const char *v = config_setting_get_string(e);
        if (v == NULL)
            return pt_conf_type_error(cx, e, "a string");
        l->s[i] = pt_pstr(cx->pool, (pt_str) { strlen(v), v });
    }
    l->n = n;
    return PT_OK;
}

int pt_conf_parse_list(pt_conf_ctx *cx, config_setting_t *s, const char *shape, size_t size,
                       pt_conf_elem_fn parse, void *arg, void *elems, unsigned *n)
{
    if (!config_setting_is_list(s))
        return pt_conf_type_error(cx, s, shape);
    unsigned len = (unsigned) config_setting_length(s);
    char *a = pt_pcalloc(cx->pool, (len ? len : 1) * size);
    if (a == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    memcpy(elems, &a, sizeof(a));       /* elems: the address of an ELEM * */
    *n = 0;
    for (unsigned i = 0; i < len; i++) {
        if (parse(cx, config_setting_get_elem(s, i), arg, a + i * size) != PT_OK)
            return PT_ERROR;
        *n = i + 1;
    }
    return PT_OK;
}
