/* client_cert: hands the client certificate a TLS listener verified (verify_client) to
 * whatever serves the route, as request header fields:
 *
 *   client_cert_headers = { subject = "X-Client-Subject"; sha256 = "X-Client-SHA256"; };
 *
 * subject: the certificate's subject as RFC 2253 text ("CN=alice,O=Example"); sha256:
 * the SHA-256 of its DER form in lower-case hex. A field a client sent under one of these
 * names (or, with underscores_in_headers = "pass", a '_' twin of one) never gets through,
 * whether a verified certificate replaces it or not: an origin that trusts the field must
 * be able to. Runs in the headers phase, so the proxy (or any content module) sees the
 * fields in the request head. */
#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/tls.h"

typedef struct {
    pt_str subject;              /* field names; len 0: not passed */
    pt_str sha256;
} client_cert_conf;

pt_module pt_client_cert_module;

static int set_name(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    if (pt_conf_set_pstr(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    const pt_str *n = (const pt_str *) ((char *) base + k->offset);
    if (!pt_conf_is_token(n->data, n->len))
        return pt_conf_error(cx, s, "\"%s\" is not a valid field name", n->data);
    return PT_OK;
}

static const pt_conf_key header_keys[] = {
    { "subject", 0, set_name, offsetof(client_cert_conf, subject), 1, 256, NULL },
    { "sha256", 0, set_name, offsetof(client_cert_conf, sha256), 1, 256, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_headers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    client_cert_conf *cc = base;
    if (pt_conf_parse_group(cx, s, header_keys, cc) != PT_OK)
        return PT_ERROR;
    if (cc->subject.len == 0 && cc->sha256.len == 0)
        return pt_conf_error(cx, s, "give subject, sha256 or both");
    if (cc->subject.len && pt_str_caseeq(cc->subject, cc->sha256))
        return pt_conf_error(cx, s, "subject and sha256 need two different names");
    return PT_OK;
}

static const pt_conf_key client_cert_keys[] = {
    { "client_cert_headers", PT_SCOPE_ROUTE, set_headers, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

/* The client's own fields of that name, and their '_' twins. */
static void drop_field(pt_request *r, pt_str name)
{
    pt_http_req_header_del(r, name);
    if (!r->head.underscore)
        return;
    for (uint32_t i = 0; i < r->head.nheaders;) {
        pt_str n = r->head.headers[i].name;
        if (pt_h1_name_dash_eq(n, name)) {
            pt_http_req_header_del(r, n);
            continue;
        }
        i++;
    }
}

static int client_cert_headers(pt_request *r)
{
    const client_cert_conf *cc = r->route ? pt_route_conf(r->route, pt_client_cert_module)
                                          : NULL;
    pt_str subject, sha256;
    if (cc == NULL || (cc->subject.len == 0 && cc->sha256.len == 0))
        return PT_DECLINED;
    if (cc->subject.len)
        drop_field(r, cc->subject);
    if (cc->sha256.len)
        drop_field(r, cc->sha256);
    int rc = pt_xprt_tls_peer(&r->conn->x, r->pool, &subject, &sha256);
    if (rc == PT_DECLINED)
        return PT_DECLINED;             /* no verified certificate: nothing to pass */
    if (rc != PT_OK
        || (cc->subject.len && pt_http_req_header_add(r, cc->subject, subject) != PT_OK)
        || (cc->sha256.len && pt_http_req_header_add(r, cc->sha256, sha256) != PT_OK))
        return 500;
    return PT_DECLINED;
}

static bool rconf_used(const void *v)
{
    const client_cert_conf *cc = v;
    return cc && (cc->subject.len || cc->sha256.len);
}

static bool client_cert_phase_used(const pt_conf *conf)
{
    return pt_conf_any_route(conf, &pt_client_cert_module, rconf_used);
}

pt_module pt_client_cert_module = {
    .name = "client_cert",
    .keys = client_cert_keys,
    .route_conf_size = sizeof(client_cert_conf),
    .phase = { [PT_PHASE_HEADERS] = client_cert_headers },
    .phase_used = client_cert_phase_used,
};
