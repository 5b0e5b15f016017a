/* return: a fixed response (status, body, header fields) for health endpoints, redirects
 * and simple answers.
 *
 *   return = { status = 301; location = "https://example.com/";
 *              body = "moved\n"; content_type = "text/plain";
 *              headers = ( { name = "Cache-Control"; value = "no-store"; } ); };
 *
 * Everything the handler sends is built at load, so a request costs the copies the core
 * makes and nothing else. */
#include "portico/conf.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"

typedef struct {
    bool       set;            /* the route has a return key */
    uint32_t   status;
    pt_str     body;
    pt_str     content_type;   /* len 0: no Content-Type field */
    pt_str     location;       /* 3xx only; sent as the Location field */
    pt_header_list headers;    /* configured fields, then Location */
} pt_return_conf;

pt_module pt_return_module;

/* Fields the core owns (framing, Server, Date) or this module sets from its own keys. The
 * proxy's set_response_headers refuses Server and Date the same way. */
static const struct {
    const char *name;   /* lower-case */
    const char *why;
} reserved_fields[] = {
    { "content-length", "set by portico from the body" },
    { "transfer-encoding", "set by portico" },
    { "connection", "set by portico" },
    { "content-type", "use content_type" },
    { "location", "use location" },
    { "server", "set by portico (see server_tokens)" },
    { "date", "set by portico from its clock (a fixed Date would be wrong after a second)" },
};

/* A string that goes into a header field value: a field-value (no CR, LF or other
 * controls, no leading or trailing whitespace). */
static int set_field_value(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    if (pt_conf_set_pstr(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    pt_str *v = (pt_str *) ((char *) base + k->offset);
    const char *why = pt_conf_field_value_error(v->data, v->len);
    return why ? pt_conf_error(cx, s, "%s", why) : PT_OK;
}

static int set_headers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                       void *base)
{
    pt_return_conf *rc = base;

    if (pt_conf_set_header_list(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    for (unsigned i = 0; i < rc->headers.n; i++) {
        const pt_header *h = &rc->headers.h[i];
        for (unsigned j = 0; j < pt_nelems(reserved_fields); j++)
            if (pt_str_caseeq_lit(h->name, reserved_fields[j].name))
                return pt_conf_error(cx, config_setting_get_member(config_setting_get_elem(s, i),
                                                                   "name"),
                                     "\"%s\": %s", h->name.data, reserved_fields[j].why);
    }
    return PT_OK;
}

static const pt_conf_key return_keys[] = {
    { "status", 0, pt_conf_set_uint32, offsetof(pt_return_conf, status), 200, 599, NULL },
    { "body", 0, pt_conf_set_pstr, offsetof(pt_return_conf, body), 0, 1048576, NULL },
    { "content_type", 0, set_field_value, offsetof(pt_return_conf, content_type), 0, 256,
      NULL },
    { "location", 0, set_field_value, offsetof(pt_return_conf, location), 1, 8192, NULL },
    { "headers", 0, set_headers, offsetof(pt_return_conf, headers), 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_return(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_return_conf *rc = base;

    rc->status = 200;
    if (pt_conf_parse_group(cx, s, return_keys, rc) != PT_OK)
        return PT_ERROR;

    if (rc->location.data) {
        config_setting_t *loc = config_setting_get_member(s, "location");
        if (rc->status / 100 != 3)
            return pt_conf_error(cx, loc, "only for a 3xx status, not %u", rc->status);
        for (size_t i = 0; i < rc->location.len; i++)
            if (rc->location.data[i] == ' ' || rc->location.data[i] == '\t')
                return pt_conf_error(cx, loc, "spaces are not allowed in a URI");
        if (rc->headers.h == NULL) {
            rc->headers.h = pt_pcalloc(cx->pool, sizeof(pt_header));
            if (rc->headers.h == NULL)
                return pt_conf_error(cx, NULL, "out of memory");
        }
        /* the list setter leaves room for this one */
        rc->headers.h[rc->headers.n++] = (pt_header) { PT_STR("Location"), rc->location };
    }
    if ((rc->status == 204 || rc->status == 304) && rc->body.len)
        return pt_conf_error(cx, config_setting_get_member(s, "body"),
                             "a %u response has no body", rc->status);
    if (rc->content_type.data == NULL && rc->body.len)
        rc->content_type = PT_STR("text/plain");
    rc->set = true;
    return PT_OK;
}

/* Claims the routes that have a return key. */
static int return_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    for (unsigned i = 0; i < conf->nroutes; i++) {
        pt_route *rt = &conf->routes[i];
        const pt_return_conf *rc = pt_route_conf(rt, pt_return_module);
        if (rc->set && pt_conf_set_content(cx, rt, &pt_return_module) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int return_respond(pt_request *r)
{
    const pt_return_conf *rc = pt_route_conf(r->route, pt_return_module);

    for (unsigned i = 0; i < rc->headers.n; i++)
        if (pt_http_add_header(r, rc->headers.h[i].name, rc->headers.h[i].value) != PT_OK)
            return PT_ERROR;
    return pt_http_respond(r, rc->status, rc->content_type, rc->body);
}

/* The body is read (and dropped) before the answer, so a request with bad framing or an
 * oversized body gets its 400/413 like on any other route, not a 200 followed by a close. */
static void return_on_body(pt_request *r)
{
    int rc = pt_http_discard_body(r);
    if (rc == PT_AGAIN)
        return;
    r->on_body = NULL;
    if (rc == PT_OK)
        return_respond(r);
    else
        pt_http_finalize(r, r->status >= 400 ? (int) r->status : 400);
}

static int return_content(pt_request *r)
{
    /* Expect: 100-continue: answer at once instead of inviting a body we would drop
     * (the core then closes the connection) */
    if (pt_http_body_pending(r) && !(r->head.expect_continue && !r->continue_sent)) {
        r->on_body = return_on_body;
        return_on_body(r);
        return PT_AGAIN;
    }
    return return_respond(r);
}

static const pt_conf_key return_module_keys[] = {
    { "return", PT_SCOPE_ROUTE, set_return, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

pt_module pt_return_module = {
    .name = "return",
    .keys = return_module_keys,
    .route_conf_size = sizeof(pt_return_conf),
    .conf_check = return_conf_check,
    .content = return_content,
};
