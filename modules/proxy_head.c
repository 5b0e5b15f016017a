/* What crosses the proxy in the heads: the request head sent to the origin (hop-by-hop
 * fields removed, X-Forwarded-* added, framing re-done) and the response fields passed to
 * the client. Hop-by-hop per RFC 9110 §7.6.1. */
#include <stdio.h>

#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "proxy.h"

/* Fields a Connection header may not strip: framing and identity of the request. */
static bool protected_field(pt_str n)
{
    return pt_str_caseeq_lit(n, "host") || pt_str_caseeq_lit(n, "content-length")
           || pt_str_caseeq_lit(n, "transfer-encoding") || pt_str_caseeq_lit(n, "authorization");
}

/* Request fields the proxy rewrites or drops; everything else is copied verbatim. */
static bool request_field_dropped(pt_str n)
{
    switch (pt_tolower(n.data[0])) {
    case 'c':
        return pt_str_caseeq_lit(n, "connection") || pt_str_caseeq_lit(n, "content-length");
    case 'e':
        return pt_str_caseeq_lit(n, "expect");
    case 'h':
        return pt_str_caseeq_lit(n, "host");
    case 'k':
        return pt_str_caseeq_lit(n, "keep-alive");
    case 'p':
        return pt_str_caseeq_lit(n, "proxy-connection");
    case 't':
        return pt_str_caseeq_lit(n, "te") || pt_str_caseeq_lit(n, "trailer")
               || pt_str_caseeq_lit(n, "transfer-encoding");
    case 'u':
        return pt_str_caseeq_lit(n, "upgrade");
    case 'x':
        return pt_str_caseeq_lit(n, "x-forwarded-for") || pt_str_caseeq_lit(n, "x-forwarded-proto")
               || pt_str_caseeq_lit(n, "x-forwarded-host") || pt_str_caseeq_lit(n, "x-real-ip");
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
    if (!r->info.upgrade)
        return false;
    const pt_header *u = pt_h1_find(r->head.headers, r->head.nheaders, PT_STR("Upgrade"));
    if (u == NULL || pt_h1_list_has(u->value, PT_STR("h2c")))
        return false;
    *value = u->value;
    return true;
}

int proxy_build_request(proxy_ctx *px)
{
    pt_request *r = px->r;
    const proxy_route_conf *rc = px->rc;
    const pt_header *hs = r->head.headers;
    uint32_t nh = r->head.nheaders;
    pt_str upgrade = PT_STR_NULL;
    bool tunnel = tunnel_upgrade(r, &upgrade);
    bool te_trailers = false;
    size_t xff_len = 0;

    size_t size = r->head.method.len + r->head.target.len + 64;
    for (uint32_t i = 0; i < nh; i++) {
        size += hs[i].name.len + hs[i].value.len + 4;
        if (pt_str_caseeq_lit(hs[i].name, "x-forwarded-for"))
            xff_len += hs[i].value.len + 2;
        else if (pt_str_caseeq_lit(hs[i].name, "te") && pt_h1_list_has(hs[i].value, PT_STR("trailers")))
            te_trailers = true;
    }
    for (unsigned i = 0; i < rc->set_request.n; i++)
        size += rc->set_request.h[i].name.len + rc->set_request.h[i].value.len + 4;
    pt_str host = r->info.authority;
    if (!rc->preserve_host || host.len == 0)
        host = px->uc->server->authority;
    /* A configured field replaces what the proxy would generate (like nginx's
     * proxy_set_header): Host, X-Forwarded-*, X-Real-IP. An empty value removes the
     * generated one (not Host: the config refuses that). */
    const pt_header *set_host = header_list_find(&rc->set_request, PT_STR("Host"));
    if (set_host)
        host = set_host->value;
    bool gen_xff = !in_header_list(&rc->set_request, PT_STR("X-Forwarded-For"));
    bool gen_xrip = !in_header_list(&rc->set_request, PT_STR("X-Real-IP"));
    bool gen_xfp = !in_header_list(&rc->set_request, PT_STR("X-Forwarded-Proto"));
    bool gen_xfh = !in_header_list(&rc->set_request, PT_STR("X-Forwarded-Host"));
    /* Host, X-Forwarded-Host (the authority), the joined X-Forwarded-For, the client's
     * address twice, the fixed texts (< 320), Upgrade, an absolute-form target's parts */
    size += host.len + r->info.authority.len + xff_len + 2 * r->conn->peer_ip_len + 320
            + upgrade.len + r->info.path.len + r->info.query.len;

    char *buf = pt_palloc(r->pool, size);
    if (buf == NULL)
        return PT_ERROR;
    char *p = buf;

    PUTSTR(p, r->head.method);
    *p++ = ' ';
    if (r->info.absolute_form) {
        PUTSTR(p, r->info.path);
        if (r->info.query.data) {
            *p++ = '?';
            PUTSTR(p, r->info.query);
        }
    } else {
        PUTSTR(p, r->head.target);
    }
    PUTS(p, " HTTP/1.1\r\nHost: ");
    PUTSTR(p, host);
    PUTS(p, "\r\n");

    for (uint32_t i = 0; i < nh; i++) {
        pt_str n = hs[i].name;
        if (request_field_dropped(n) || in_header_list(&rc->set_request, n))
            continue;
        if (r->head.underscore && twin_in_header_list(&rc->set_request, n)) {
            pt_log(PT_LOG_INFO, "dropped request header field %.*s from %s: read with '-', "
                   "a field this route sets", (int) pt_min(n.len, 64), n.data,
                   r->conn->peer_ip);
            continue;
        }
        if (!protected_field(n) && pt_h1_connection_lists(hs, nh, n))
            continue;                   /* hop-by-hop by the client's say-so */
        PUTSTR(p, n);
        PUTS(p, ": ");
        PUTSTR(p, hs[i].value);
        PUTS(p, "\r\n");
    }
    for (unsigned i = 0; i < rc->set_request.n; i++) {
        if (rc->set_request.h[i].value.len == 0 || &rc->set_request.h[i] == set_host)
            continue;                   /* an empty value removes the field; Host is above */
        PUTSTR(p, rc->set_request.h[i].name);
        PUTS(p, ": ");
        PUTSTR(p, rc->set_request.h[i].value);
        PUTS(p, "\r\n");
    }

    if (gen_xff) {
        PUTS(p, "X-Forwarded-For: ");
        for (uint32_t i = 0; i < nh; i++) {
            if (pt_str_caseeq_lit(hs[i].name, "x-forwarded-for") && hs[i].value.len) {
                PUTSTR(p, hs[i].value);
                PUTS(p, ", ");
            }
        }
        PUT(p, r->conn->peer_ip, r->conn->peer_ip_len);
        PUTS(p, "\r\n");
    }
    if (gen_xrip) {
        PUTS(p, "X-Real-IP: ");
        PUT(p, r->conn->peer_ip, r->conn->peer_ip_len);
        PUTS(p, "\r\n");
    }
    if (gen_xfp)
        PUTS(p, "X-Forwarded-Proto: http\r\n");
    if (gen_xfh && r->info.authority.len) {
        PUTS(p, "X-Forwarded-Host: ");
        PUTSTR(p, r->info.authority);
        PUTS(p, "\r\n");
    }
    if (te_trailers)
        PUTS(p, "TE: trailers\r\n");

    if (r->info.chunked) {
        PUTS(p, "Transfer-Encoding: chunked\r\n");
        px->rechunk = true;
    } else if (r->info.content_length >= 0) {
        char num[24];
        size_t nn = pt_fmt_u64(num, (uint64_t) r->info.content_length);
        PUTS(p, "Content-Length: ");
        PUT(p, num, nn);
        PUTS(p, "\r\n");
    }
    if (r->info.expect_continue && r->body_state == PT_RB_PENDING) {
        PUTS(p, "Expect: 100-continue\r\n");
        px->expect_wait = true;
    }
    /* Connection names every hop-by-hop field we send: a TE sender must list "TE"
     * (RFC 9110 §10.1.4), or the next hop may treat it as end-to-end. */
    if (tunnel || px->up->keepalive == 0 || te_trailers) {
        PUTS(p, "Connection: ");
        if (tunnel)
            PUTS(p, "upgrade");
        else if (px->up->keepalive == 0)
            PUTS(p, "close");
        if (te_trailers) {
            if (tunnel || px->up->keepalive == 0)
                PUTS(p, ", ");
            PUTS(p, "TE");
        }
        PUTS(p, "\r\n");
    }
    if (tunnel) {
        PUTS(p, "Upgrade: ");
        PUTSTR(p, upgrade);
        PUTS(p, "\r\n");
    }
    PUTS(p, "\r\n");

    px->head = buf;
    px->head_len = (size_t) (p - buf);
    return PT_OK;
}

static bool response_field_dropped(pt_str n)
{
    switch (pt_tolower(n.data[0])) {
    case 'c':
        return pt_str_caseeq_lit(n, "connection") || pt_str_caseeq_lit(n, "content-length");
    case 'k':
        return pt_str_caseeq_lit(n, "keep-alive");
    case 'p':
        return pt_str_caseeq_lit(n, "proxy-connection");
    case 's':
        return pt_str_caseeq_lit(n, "server");       /* hide the backend */
    case 't':
        return pt_str_caseeq_lit(n, "te") || pt_str_caseeq_lit(n, "trailer")
               || pt_str_caseeq_lit(n, "transfer-encoding");
    case 'u':
        return pt_str_caseeq_lit(n, "upgrade");
    default:
        return false;
    }
}

/* The origin's fields as the client gets them. Strings point into the origin
 * connection's buffer: the head is serialised (pt_http_send_header) before it is reused. */
int proxy_copy_response_headers(proxy_ctx *px)
{
    pt_request *r = px->r;
    const proxy_route_conf *rc = px->rc;
    const pt_header *hs = px->rhead.headers;
    uint32_t nh = px->rhead.nheaders;

    for (uint32_t i = 0; i < nh; i++) {
        pt_str n = hs[i].name;
        if (response_field_dropped(n) || pt_h1_connection_lists(hs, nh, n)
            || in_header_list(&rc->set_response, n))
            continue;
        bool hidden = false;
        for (unsigned j = 0; j < rc->hide_response.n && !hidden; j++)
            hidden = pt_str_caseeq(rc->hide_response.s[j], n);
        if (hidden)
            continue;
        if (pt_http_add_header(r, n, hs[i].value) != PT_OK)
            return PT_ERROR;
    }
    for (unsigned i = 0; i < rc->set_response.n; i++) {
        if (rc->set_response.h[i].value.len == 0)
            continue;
        if (pt_http_add_header(r, rc->set_response.h[i].name, rc->set_response.h[i].value) != PT_OK)
            return PT_ERROR;
    }
    if (px->ri.status == 101) {
        const pt_header *u = pt_h1_find(hs, nh, PT_STR("Upgrade"));
        if (pt_http_add_header(r, PT_STR("Connection"), PT_STR("upgrade")) != PT_OK
            || (u && pt_http_add_header(r, PT_STR("Upgrade"), u->value) != PT_OK))
            return PT_ERROR;
    }
    return PT_OK;
}
