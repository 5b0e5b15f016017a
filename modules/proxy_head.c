/* What crosses the proxy in the heads: the request head sent to the origin (hop-by-hop
 * fields removed, X-Forwarded-* added, framing re-done) and the response fields passed to
 * the client. Hop-by-hop per RFC 9110 §7.6.1. */
#include <stdio.h>

#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/proxy.h"
#include "proxy.h"

/* Fields a Connection header may not strip: framing and identity of the request. */
static bool protected_field(pt_str n)
{
    return pt_str_caseeq_lit(n, "host") || pt_str_caseeq_lit(n, "content-length")
           || pt_str_caseeq_lit(n, "transfer-encoding") || pt_str_caseeq_lit(n, "authorization");
}

/* Request fields the proxy rewrites or drops; everything else is copied verbatim. */
/* By length first: most names are not dropped, and a length rules out all but one or
 * two candidates before any byte is compared. */
static bool request_field_dropped(pt_str n)
{
    switch (n.len) {
    case 2:
        return pt_str_caseeq_lit(n, "te");
    case 4:
        return pt_str_caseeq_lit(n, "host");
    case 6:
        return pt_str_caseeq_lit(n, "expect");
    case 7:
        return pt_str_caseeq_lit(n, "trailer") || pt_str_caseeq_lit(n, "upgrade");
    case 9:
        return pt_str_caseeq_lit(n, "x-real-ip");
    case 10:
        return pt_str_caseeq_lit(n, "connection") || pt_str_caseeq_lit(n, "keep-alive");
    case 14:
        return pt_str_caseeq_lit(n, "content-length");
    case 15:
        return pt_str_caseeq_lit(n, "x-forwarded-for");
    case 16:
        return pt_str_caseeq_lit(n, "proxy-connection") || pt_str_caseeq_lit(n, "x-forwarded-host");
    case 17:
        return pt_str_caseeq_lit(n, "transfer-encoding") || pt_str_caseeq_lit(n, "x-forwarded-proto");
    default:
        return false;
    }
}

static const pt_header *header_list_find(const pt_header_list *l, pt_str n)
{
    for (unsigned i = 0; i < l->n; i++)
        if (pt_str_caseeq(l->h[i].name, n))
            return &l->h[i];
    return NULL;
}

static bool in_header_list(const pt_header_list *l, pt_str n)
{
    return header_list_find(l, n) != NULL;
}

/* With underscores_in_headers = "pass", a client's X_Env next to the X-Env this route sets
 * would reach a CGI-style origin as the same variable: such twins go like the field. */
static bool twin_in_header_list(const pt_header_list *l, pt_str n)
{
    for (unsigned i = 0; i < l->n; i++)
        if (pt_h1_name_dash_eq(l->h[i].name, n))
            return true;
    return false;
}

#define PUT(p, s, n) do { memcpy((p), (s), (n)); (p) += (n); } while (0)
#define PUTS(p, lit) PUT(p, lit, sizeof(lit) - 1)
#define PUTSTR(p, st) PUT(p, (st).data, (st).len)

/* An Upgrade the proxy tunnels: not h2c (RFC 9113 §3.1: a proxy must not forward it). */
static bool tunnel_upgrade(const pt_request *r, pt_str *value)
{
    if (!r->head.upgrade)
        return false;
    const pt_header *u = pt_h1_find(r->head.headers, r->head.nheaders, PT_STR("Upgrade"));
    if (u == NULL || pt_h1_list_has(u->value, PT_STR("h2c")))
        return false;
    *value = u->value;
    return true;
}

/* The request to the origin, from the client request's head as the phases left it:
 * hop-by-hop fields out, the route's fields in, X-Forwarded-*, X-Real-IP and the
 * X-Request-Id portico made (request_id.c) added. The
 * exchange writes it (request line, Host, framing, Connection). */
int proxy_build_request(proxy_ctx *px)
{
    pt_request *r = px->r;
    const proxy_route_conf *rc = px->rc;
    const pt_header *hs = r->head.headers;
    uint32_t nh = r->head.nheaders;
    pt_upx_req *q = &px->x.req;
    pt_str upgrade = PT_STR_NULL;
    bool tunnel = tunnel_upgrade(r, &upgrade);
    bool te_trailers = false;
    size_t xff_len = 0;

    for (uint32_t i = 0; i < nh; i++) {
        if (pt_str_caseeq_lit(hs[i].name, "x-forwarded-for"))
            xff_len += hs[i].value.len + 2;
        else if (pt_str_caseeq_lit(hs[i].name, "te") && pt_h1_list_has(hs[i].value, PT_STR("trailers")))
            te_trailers = true;
    }
    pt_header *out = pt_palloc(r->pool, (nh + rc->set_request.n + 7) * sizeof(pt_header));
    char *xff = pt_palloc(r->pool, xff_len + r->conn->peer_ip_len + 1);
    if (out == NULL || xff == NULL)
        return PT_ERROR;
    uint32_t n = 0;

    /* A configured field replaces what the proxy would generate (like nginx's
     * proxy_set_header): Host, X-Forwarded-*, X-Real-IP. An empty value removes the
     * generated one (not Host: the config refuses that). */
    pt_str host = r->head.authority;
    if (!rc->preserve_host)
        host = PT_STR_NULL;             /* the exchange puts the server's address */
    const pt_header *set_host = header_list_find(&rc->set_request, PT_STR("Host"));
    if (set_host)
        host = set_host->value;

    pt_h1_conn_set conn;
    pt_h1_conn_set_init(&conn, hs, nh);
    for (uint32_t i = 0; i < nh; i++) {
        pt_str nm = hs[i].name;
        if (request_field_dropped(nm) || in_header_list(&rc->set_request, nm))
            continue;
        if (r->request_id_made && pt_str_caseeq_lit(nm, "x-request-id"))
            continue;                   /* the client's was unusable: portico's goes */
        if (r->head.underscore && twin_in_header_list(&rc->set_request, nm)) {
            pt_log(PT_LOG_INFO, "dropped request header field %.*s from %s: read with '-', "
                   "a field this route sets", (int) pt_min(nm.len, 64), nm.data,
                   r->conn->peer_ip);
            continue;
        }
        if (!protected_field(nm) && pt_h1_conn_set_has(&conn, nm))
            continue;                   /* hop-by-hop by the client's say-so */
        out[n++] = hs[i];
    }
    for (unsigned i = 0; i < rc->set_request.n; i++) {
        if (rc->set_request.h[i].value.len == 0 || &rc->set_request.h[i] == set_host)
            continue;                   /* an empty value removes the field; Host is apart */
        out[n++] = rc->set_request.h[i];
    }
    if (!in_header_list(&rc->set_request, PT_STR("X-Forwarded-For"))) {
        char *p = xff;
        for (uint32_t i = 0; i < nh; i++) {
            if (pt_str_caseeq_lit(hs[i].name, "x-forwarded-for") && hs[i].value.len) {
                PUTSTR(p, hs[i].value);
                PUTS(p, ", ");
            }
        }
        PUT(p, r->conn->peer_ip, r->conn->peer_ip_len);
        out[n++] = (pt_header) { PT_STR("X-Forwarded-For"), { (size_t) (p - xff), xff } };
    }
    pt_str ip = { r->conn->peer_ip_len, r->conn->peer_ip };
    if (!in_header_list(&rc->set_request, PT_STR("X-Real-IP")))
        out[n++] = (pt_header) { PT_STR("X-Real-IP"), ip };
    if (!in_header_list(&rc->set_request, PT_STR("X-Forwarded-Proto")))
        out[n++] = (pt_header) { PT_STR("X-Forwarded-Proto"), r->head.scheme };
    if (!in_header_list(&rc->set_request, PT_STR("X-Forwarded-Host")) && r->head.authority.len)
        out[n++] = (pt_header) { PT_STR("X-Forwarded-Host"), r->head.authority };
    if (r->request_id_made && !in_header_list(&rc->set_request, PT_STR("X-Request-Id")))
        out[n++] = (pt_header) { PT_STR("X-Request-Id"), r->request_id };
    if (te_trailers)
        out[n++] = (pt_header) { PT_STR("TE"), PT_STR("trailers") };

    /* the target from the (editable) path and query: origin-form whatever the client sent */
    pt_str target = r->head.path;
    if (r->head.query.data) {
        char *t = pt_palloc(r->pool, r->head.path.len + r->head.query.len + 1);
        if (t == NULL)
            return PT_ERROR;
        char *p = t;
        PUTSTR(p, r->head.path);
        *p++ = '?';
        PUTSTR(p, r->head.query);
        target = (pt_str) { (size_t) (p - t), t };
    }

    q->method = r->head.method_name;
    q->method_id = r->head.method;
    q->target = target;
    q->host = host;
    q->headers = out;
    q->nheaders = n;
    /* Connection names every hop-by-hop field we send: a TE sender must list "TE"
     * (RFC 9110 §10.1.4), or the next hop may treat it as end-to-end. */
    q->connection = te_trailers ? PT_STR("TE") : PT_STR_NULL;
    q->keep_trailers = te_trailers;
    q->upgrade = tunnel ? upgrade : PT_STR_NULL;
    /* a chunked body read whole is sent with its length: origins that take no chunked
     * requests then take it too */
    if (r->head.chunked)
        q->body_length = r->body_buffered && r->req_ntrailers == 0
                         ? (int64_t) r->body_buf_len : PT_UPX_CHUNKED;   /* trailers: chunked */
    else if (r->head.content_length >= 0)
        q->body_length = r->head.content_length;
    else
        q->body_length = PT_UPX_NO_BODY;
    /* Expect goes on only when the client still waits for a 100: with its body already
     * here (sent with the head, or read whole) waiting for the origin's 100 only delays */
    q->expect_continue = r->head.expect_continue && r->body_state == PT_RB_PENDING
                         && !pt_http_input_pending(r);
    return PT_OK;
}

static bool response_field_dropped(pt_str n)
{
    switch (n.len) {
    case 2:
        return pt_str_caseeq_lit(n, "te");
    case 6:
        return pt_str_caseeq_lit(n, "server");       /* hide the backend */
    case 7:
        return pt_str_caseeq_lit(n, "trailer") || pt_str_caseeq_lit(n, "upgrade");
    case 10:
        return pt_str_caseeq_lit(n, "connection") || pt_str_caseeq_lit(n, "keep-alive");
    case 14:
        return pt_str_caseeq_lit(n, "content-length");
    case 16:
        return pt_str_caseeq_lit(n, "proxy-connection");
    case 17:
        return pt_str_caseeq_lit(n, "transfer-encoding");
    default:
        return false;
    }
}

/* Does the origin's field named n reach the client on this route? */
static bool response_field_passed(const proxy_route_conf *rc, const pt_h1_conn_set *conn,
                                  pt_str n)
{
    if (response_field_dropped(n) || pt_h1_conn_set_has(conn, n)
        || in_header_list(&rc->set_response, n))
        return false;
    for (unsigned j = 0; j < rc->hide_response.n; j++)
        if (pt_str_caseeq(rc->hide_response.s[j], n))
            return false;
    return true;
}

/* The origin's fields as the client gets them. Strings point into the origin
 * connection's buffer: the head is serialised (pt_http_send_header) before it is reused. */
int proxy_copy_response_headers(proxy_ctx *px)
{
    pt_request *r = px->r;
    const proxy_route_conf *rc = px->rc;
    const pt_header *hs = px->x.resp.headers;
    uint32_t nh = px->x.resp.nheaders;

    pt_h1_conn_set conn;
    pt_h1_conn_set_init(&conn, hs, nh);
    for (uint32_t i = 0; i < nh; i++)
        if (response_field_passed(rc, &conn, hs[i].name)
            && pt_http_add_header(r, hs[i].name, hs[i].value) != PT_OK)
            return PT_ERROR;
    for (unsigned i = 0; i < rc->set_response.n; i++) {
        if (rc->set_response.h[i].value.len == 0)
            continue;
        if (pt_http_add_header(r, rc->set_response.h[i].name, rc->set_response.h[i].value) != PT_OK)
            return PT_ERROR;
    }
    if (px->x.ri.status == 101) {
        const pt_header *u = pt_h1_find(hs, nh, PT_STR("Upgrade"));
        if (pt_http_add_header(r, PT_STR("Connection"), PT_STR("upgrade")) != PT_OK
            || (u && pt_http_add_header(r, PT_STR("Upgrade"), u->value) != PT_OK))
            return PT_ERROR;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ no client */

const pt_upstream *pt_proxy_route_upstream(const pt_route *rt)
{
    const proxy_route_conf *rc = rt ? pt_route_conf(rt, pt_proxy_module) : NULL;
    return rc && rt->content == &pt_proxy_module ? rc->up : NULL;
}

int pt_proxy_detached_request(const pt_route *rt, pt_pool *pool, pt_upx_req *q, pt_str method,
                              pt_str target, pt_str authority, const pt_header *hs,
                              uint32_t nh)
{
    const proxy_route_conf *rc = pt_route_conf(rt, pt_proxy_module);
    if (rc == NULL || rc->up == NULL)
        return PT_ERROR;
    pt_header *out = pt_palloc(pool, (nh + rc->set_request.n + 1) * sizeof(pt_header));
    if (out == NULL)
        return PT_ERROR;
    uint32_t n = 0;
    pt_h1_conn_set conn;
    pt_h1_conn_set_init(&conn, hs, nh);
    for (uint32_t i = 0; i < nh; i++) {
        pt_str nm = hs[i].name;
        if (request_field_dropped(nm) || in_header_list(&rc->set_request, nm)
            || pt_h1_conn_set_has(&conn, nm))
            continue;
        out[n++] = hs[i];
    }
    const pt_header *set_host = header_list_find(&rc->set_request, PT_STR("Host"));
    for (unsigned i = 0; i < rc->set_request.n; i++) {
        if (rc->set_request.h[i].value.len == 0 || &rc->set_request.h[i] == set_host)
            continue;
        out[n++] = rc->set_request.h[i];
    }
    memset(q, 0, sizeof(*q));
    q->method = method;
    q->method_id = pt_h1_method_id(method);
    q->target = target;
    q->host = set_host ? set_host->value : rc->preserve_host ? authority : PT_STR_NULL;
    q->headers = out;
    q->nheaders = n;
    q->body_length = PT_UPX_NO_BODY;
    return PT_OK;
}

int pt_proxy_response_fields(const pt_route *rt, pt_pool *pool, const pt_header *hs,
                             uint32_t nh, pt_header **out, uint32_t *nout)
{
    const proxy_route_conf *rc = pt_route_conf(rt, pt_proxy_module);
    pt_header *o = pt_palloc(pool, (nh + rc->set_response.n + 1) * sizeof(pt_header));
    if (o == NULL)
        return PT_ERROR;
    uint32_t n = 0;
    pt_h1_conn_set conn;
    pt_h1_conn_set_init(&conn, hs, nh);
    for (uint32_t i = 0; i < nh; i++)
        if (response_field_passed(rc, &conn, hs[i].name))
            o[n++] = hs[i];
    for (unsigned i = 0; i < rc->set_response.n; i++)
        if (rc->set_response.h[i].value.len)
            o[n++] = rc->set_response.h[i];
    *out = o;
    *nout = n;
    return PT_OK;
}
