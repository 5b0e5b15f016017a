/* The proxy module: routes with `upstream = "name"` are answered by an origin server.
 * A thin content handler over the core's upstream exchange (server/upstream_exchange.c):
 * it reads the client's body first when the route buffers it, builds the request for the
 * origin from the client's head (proxy_head.c), and relays the response: head, body
 * (through the filters, or by splice(2) from socket to socket when nothing touches it),
 * or, after 101, bytes both ways.
 * Back-pressure: the origin's body is pulled only while the client takes it, and the
 * client's body is read only while the origin takes it, so memory per request is the
 * two connections' buffers whatever the body sizes. */
#include <errno.h>
#include <stdio.h>

#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/xprt.h"
#include "proxy.h"

#define PX_SPLICE_MIN     16384  /* smaller bodies: a recv and a writev cost no more */

static void px_relay(proxy_ctx *px);
static void px_tunnel(proxy_ctx *px);

/* ------------------------------------------------------------------ configuration */

static int set_upstream_name(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                             void *base)
{
    proxy_route_conf *rc = base;
    const char *v = config_setting_get_string(s);
    if (v == NULL || *v == '\0')
        return pt_conf_error(cx, s, "must be the name of an upstream");
    rc->upstream_name = pt_pstrndup(cx->pool, v, strlen(v));
    rc->upstream_setting = s;
    return PT_OK;
}

/* Fields the proxy itself manages: setting them per route would break the framing or the
 * connection handling (RFC 9110 §7.6.1), so the config refuses them. */
static const char *const managed_request_fields[] = {
    "connection", "content-length", "transfer-encoding", "te", "trailer", "upgrade",
    "keep-alive", "proxy-connection", "expect", NULL
};
/* Server and Date as in return.headers: Server is portico's (server_tokens); Date is the
 * origin's, or portico's when it sends none (a fixed one would be wrong after a second;
 * hide_response_headers drops the origin's). */
static const char *const managed_response_fields[] = {
    "connection", "content-length", "transfer-encoding", "te", "trailer", "upgrade",
    "keep-alive", "proxy-connection", "server", "date", NULL
};

static const char *managed_hint(const char *m)
{
    if (strcmp(m, "server") == 0)
        return " (see server_tokens)";
    if (strcmp(m, "date") == 0)
        return " (the origin's Date is passed on, else portico adds its own)";
    return "";
}

/* A configured Host goes to the origin as it is: it must be what portico accepts in a
 * client's Host field (RFC 9110 7.2: uri-host [":" port], a name, an IPv4 address or an
 * [IPv6] literal), so the request parser's own check judges it: one grammar, not two. */
static bool valid_host(pt_str v)
{
    pt_header h = { PT_STR("Host"), v };
    pt_h1_head head = { .method = PT_STR("GET"), .method_id = PT_M_GET, .target = PT_STR("/"),
                        .version = 11, .headers = &h, .nheaders = 1, .max_headers = 1 };
    pt_h1_req_info ri;
    unsigned status;
    const char *why;
    return pt_h1_analyze_request(&head, &ri, &status, &why) == PT_OK;
}

static int check_header_names(pt_conf_ctx *cx, config_setting_t *s, const pt_header_list *l,
                              const char *const *managed, bool request)
{
    for (unsigned i = 0; i < l->n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        config_setting_t *name = config_setting_get_member(e, "name");
        for (const char *const *m = managed; *m; m++)
            if (pt_str_caseeq_lit(l->h[i].name, *m))
                return pt_conf_error(cx, name, "\"%.*s\" is managed by the proxy and cannot be set%s",
                                     (int) l->h[i].name.len, l->h[i].name.data,
                                     managed_hint(*m));
        if (request && l->h[i].value.len == 0 && pt_str_caseeq_lit(l->h[i].name, "host"))
            return pt_conf_error(cx, config_setting_get_member(e, "value"),
                                 "Host cannot be removed (HTTP/1.1 requires it): give a "
                                 "value, or use preserve_host");
        if (request && pt_str_caseeq_lit(l->h[i].name, "host") && !valid_host(l->h[i].value))
            return pt_conf_error(cx, config_setting_get_member(e, "value"),
                                 "\"%s\" is not a valid Host: a name, an IPv4 address or an "
                                 "[IPv6] address, then optionally \":port\"", l->h[i].value.data);
    }
    return PT_OK;
}

static int set_request_headers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                               void *base)
{
    if (pt_conf_set_header_list(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    return check_header_names(cx, s, (pt_header_list *) ((char *) base + k->offset),
                              managed_request_fields, true);
}

static int set_response_headers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                                void *base)
{
    if (pt_conf_set_header_list(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    return check_header_names(cx, s, (pt_header_list *) ((char *) base + k->offset),
                              managed_response_fields, false);
}

static const pt_conf_key proxy_keys[] = {
    { "upstream", PT_SCOPE_ROUTE, set_upstream_name, 0, 0, 0, NULL },
    { "preserve_host", PT_SCOPE_ROUTE, pt_conf_set_bool, offsetof(proxy_route_conf, preserve_host),
      0, 0, NULL },
    { "set_request_headers", PT_SCOPE_ROUTE, set_request_headers,
      offsetof(proxy_route_conf, set_request), 0, 0, NULL },
    { "set_response_headers", PT_SCOPE_ROUTE, set_response_headers,
      offsetof(proxy_route_conf, set_response), 0, 0, NULL },
    { "hide_response_headers", PT_SCOPE_ROUTE, pt_conf_set_str_list,
      offsetof(proxy_route_conf, hide_response), 0, 0, NULL },
    { "request_buffering", PT_SCOPE_ROUTE, pt_conf_set_bool,
      offsetof(proxy_route_conf, request_buffering), 0, 0, NULL },
    { "request_buffer_size", PT_SCOPE_ROUTE, pt_conf_set_uint32,
      offsetof(proxy_route_conf, request_buffer_size), 0, 67108864, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int proxy_route_init(pt_conf_ctx *cx, pt_route *rt, void *conf)
{
    proxy_route_conf *rc = conf;
    rc->preserve_host = true;
    rc->request_buffering = true;
    rc->request_buffer_size = 65536;
    return PT_OK;
}

static int proxy_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    for (unsigned i = 0; i < conf->nroutes; i++) {
        pt_route *rt = &conf->routes[i];
        proxy_route_conf *rc = pt_route_conf(rt, pt_proxy_module);
        if (rc == NULL || rc->upstream_name == NULL)
            continue;
        rc->up = pt_upstream_find(conf, rc->upstream_name);
        if (rc->up == NULL)
            return pt_conf_error(cx, rc->upstream_setting, "no upstream named \"%s\"",
                                 rc->upstream_name);
        if (pt_conf_set_content(cx, rt, &pt_proxy_module) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ ending */

static void px_pipe_put(proxy_ctx *px)
{
    if (!px->have_pipe)
        return;
    px->have_pipe = false;
    pt_pipe_put(px->pipe, px->pipe_len == 0);
}

/* The response is complete (or the tunnel closed): the exchange lets the connection go
 * back to the pool when it can, and the request finishes. */
static void px_finish(proxy_ctx *px)
{
    px->done = true;
    px_pipe_put(px);
    pt_upx_finish(&px->x);
    pt_http_finalize(px->r, PT_OK);
}

/* The client side failed once its head went out: nothing more can be said to it. */
static void px_client_failed(proxy_ctx *px, const char *why)
{
    if (why)
        pt_upx_log(&px->x, PT_LOG_INFO, 0, why);
    px->done = true;
    px_pipe_put(px);
    pt_upx_abort(&px->x);
    pt_http_finalize(px->r, PT_ERROR);
}

/* The response body is complete: end it (last chunk) and finish; PT_AGAIN: on_write will. */
static void px_end_body(proxy_ctx *px)
{
    int rc = pt_http_send_body(px->r, NULL, 0, true);
    if (rc == PT_ERROR)
        px_client_failed(px, NULL);
    else if (rc == PT_OK)
        px_finish(px);
}

/* ------------------------------------------------------------------ the exchange's side */

static int px_body(pt_upx *x, const char **data, size_t *len)
{
    proxy_ctx *px = x->owner;
    int rc = pt_http_read_body(px->r, data, len);
    if (rc == PT_DONE) {
        /* the client's trailer fields (the session kept those that may be passed on) */
        x->req.trailers = px->r->req_trailers;
        x->req.ntrailers = px->r->req_ntrailers;
    }
    return rc;
}

static bool px_rewind(pt_upx *x)
{
    proxy_ctx *px = x->owner;
    return pt_http_body_rewind(px->r);
}

/* The origin's final head: the client's response head. */
static void px_head(pt_upx *x)
{
    proxy_ctx *px = x->owner;
    pt_request *r = px->r;
    r->status = x->ri.status;
    if (proxy_copy_response_headers(px) != PT_OK) {
        pt_upx_log(x, PT_LOG_ERR, ENOMEM, "no memory for response headers");
        px->done = true;
        pt_upx_abort(x);
        pt_http_finalize(r, 500);
        return;
    }
    if (x->ri.body == PT_BODY_LENGTH)
        r->resp_length = x->ri.content_length;
    else if (r->head.method == PT_M_HEAD && x->ri.content_length >= 0)
        r->resp_length = x->ri.content_length;
    else
        r->resp_length = -1;
    if (pt_http_send_header(r) != PT_OK) {
        pt_upx_log(x, PT_LOG_ERR, 0, "response head could not be sent");
        px->done = true;
        pt_upx_abort(x);
        pt_http_finalize(r, 500);
        return;
    }
    if (x->ri.status == 101) {
        pt_http_tunnel(r);
        pt_upx_tunnel(x);
        px->tunnel = true;
        if (pt_http_send_body(r, NULL, 0, false) == PT_ERROR) {     /* flush the 101 */
            px_client_failed(px, NULL);
            return;
        }
        px->tslice = NULL;
        px->tslice_len = 0;
        px_tunnel(px);
        return;
    }
    px_relay(px);       /* the head goes out with the first body bytes */
}

static void px_data(pt_upx *x)
{
    proxy_ctx *px = x->owner;
    if (px->done)
        return;
    if (px->tunnel) {
        px_tunnel(px);
        return;
    }
    if (!pt_http_output_pending(px->r) && !px->r->wait_writable)
        px_relay(px);
}

/* The exchange ended without a (complete) response. */
static void px_fail(pt_upx *x)
{
    proxy_ctx *px = x->owner;
    pt_request *r = px->r;
    if (px->done)
        return;
    px->done = true;
    px_pipe_put(px);
    if (x->client_failed) {
        /* the client's body is bad, too big, too slow, or the client left */
        unsigned st = r->status >= 400 ? r->status : 400;
        pt_http_finalize(r, r->header_sent ? PT_ERROR : (int) st);
        return;
    }
    if (x->status == 0) {               /* the tunnel went idle: a normal end */
        pt_http_finalize(r, PT_OK);
        return;
    }
    r->error_reason = x->why;
    pt_http_finalize(r, r->header_sent ? PT_ERROR : (int) x->status);
}

static const pt_upx_handler px_handler = {
    .body = px_body,
    .rewind = px_rewind,
    .head = px_head,
    .data = px_data,
    .fail = px_fail,
};

/* ------------------------------------------------------------------ relaying the body */

/* Relays the rest of a Content-Length body with splice(2): origin socket -> pipe ->
 * client socket, without a copy into this process. One pipe's worth at a time, so
 * back-pressure works as with the buffer. */
static void px_splice(proxy_ctx *px)
{
    pt_request *r = px->r;
    for (;;) {
        if (px->pipe_len) {
            ssize_t m = pt_http_splice_body(r, px->pipe[0], px->pipe_len);
            if (m == PT_AGAIN) {
                pt_upx_hold(&px->x);    /* the client's send timeout runs now */
                return;
            }
            if (m < 0) {
                px_client_failed(px, "client connection failed while relaying the body");
                return;
            }
            px->pipe_len -= (size_t) m;
            if (px->pipe_len)
                continue;
            if (pt_upx_body_left(&px->x) == 0) {
                px_end_body(px);
                return;
            }
        }
        ssize_t n = pt_upx_splice(&px->x, px->pipe[1], 1 << 20);
        if (n > 0) {
            px->pipe_len = (size_t) n;
            continue;
        }
        return;                 /* PT_AGAIN: the exchange calls px_data; PT_ERROR: px_fail ran */
    }
}

/* The origin's trailer fields the client may have (the exchange kept them because it
 * asked with TE: trailers); the session sends them after the body if it can. */
static void pass_trailers(pt_request *r, pt_upx *x)
{
    uint32_t w = 0;
    for (uint32_t i = 0; i < x->ntrailers; i++)
        if (pt_h1_trailer_allowed(x->trailers[i].name))
            x->trailers[w++] = x->trailers[i];
    r->resp_trailers = x->trailers;
    r->resp_ntrailers = w;
}

/* Relays response body bytes as the exchange gives them, while the client takes them. */
static void px_relay(proxy_ctx *px)
{
    pt_request *r = px->r;
    pt_upx *x = &px->x;
    for (;;) {
        if (px->have_pipe || (!px->no_splice && pt_upx_can_splice(x, PX_SPLICE_MIN)
                              && pt_http_splice_ok(r))) {
            if (px->have_pipe || pt_pipe_get(px->pipe) == PT_OK) {
                px->have_pipe = true;
                px_splice(px);
                return;
            }
            px->no_splice = true;       /* out of descriptors: the buffer will do */
        }
        const char *d;
        size_t n;
        int rc = pt_upx_read(x, &d, &n);
        if (rc == PT_ERROR)
            return;                     /* px_fail ran */
        if (rc == PT_AGAIN) {
            /* Nothing more for now. The response head may still be queued alone (the body
             * comes later): put it on the wire, or the client waits for it while the
             * exchange holds the body back behind the pending output. */
            if (pt_http_output_pending(r) && pt_http_send_body(r, NULL, 0, false) == PT_ERROR)
                px_client_failed(px, "client connection failed while sending the response head");
            return;
        }
        bool last = rc == PT_DONE;
        if (n == 0 && !last)
            continue;
        if (last && x->ntrailers)
            pass_trailers(r, x);
        int s = pt_http_send_body(r, d, n, last);
        if (s == PT_ERROR) {
            px_client_failed(px, "client connection failed while relaying the body");
            return;
        }
        if (s == PT_AGAIN) {
            /* the client is slower than the origin: stop reading the origin until the
             * queued bytes (which point into its buffer) are written */
            pt_upx_hold(x);
            return;
        }
        if (last) {
            px_finish(px);
            return;
        }
    }
}

/* ------------------------------------------------------------------ the tunnel */

static void px_tunnel(proxy_ctx *px)
{
    pt_request *r = px->r;
    pt_upx *x = &px->x;
    bool progress = false;

    /* client -> origin */
    while (!px->cl_eof) {
        if (px->tslice_len == 0) {
            const char *d;
            size_t n;
            int rc = pt_http_read_body(r, &d, &n);
            if (rc == PT_AGAIN)
                break;
            if (rc != PT_OK) {
                px->cl_eof = true;
                pt_upx_tunnel_shutdown(x);
                break;
            }
            px->tslice = d;
            px->tslice_len = n;
        }
        ssize_t w = pt_upx_tunnel_write(x, px->tslice, px->tslice_len);
        if (w > 0) {
            px->tslice += w;
            px->tslice_len -= (size_t) w;
            progress = true;
            continue;
        }
        if (w == PT_AGAIN)
            break;
        px->cl_eof = px->up_eof = true; /* the origin is gone both ways */
        break;
    }

    /* origin -> client */
    while (!px->up_eof && !pt_http_output_pending(r)) {
        const char *d;
        size_t n;
        int rc = pt_upx_read(x, &d, &n);
        if (rc == PT_OK) {
            int s = pt_http_send_body(r, d, n, false);
            progress = true;
            if (s == PT_ERROR) {
                px->up_eof = px->cl_eof = true;
                break;
            }
            if (s == PT_AGAIN)
                break;
            continue;
        }
        if (rc == PT_AGAIN)
            break;
        px->up_eof = true;
        pt_http_tunnel_shutdown(r);
        break;
    }

    if (px->cl_eof && px->up_eof) {
        px_finish(px);
        return;
    }
    if (progress)
        pt_upx_tunnel_activity(x);
}

/* ------------------------------------------------------------------ the client's side */

static void px_on_abort(pt_request *r)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (px && !px->done) {
        px->done = true;
        px_pipe_put(px);
        pt_upx_abort(&px->x);           /* mid-exchange: the connection is not reusable */
    }
}

static void px_on_client_body(pt_request *r)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (px->tunnel)
        px_tunnel(px);
    else
        pt_upx_body_ready(&px->x);
}

static void px_on_client_write(pt_request *r)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (px->done || px->x.state < PT_UPX_BODY)
        return;
    if (px->tunnel) {
        pt_upx_tunnel_activity(&px->x);
        px_tunnel(px);
        return;
    }
    if (r->resp_body_done) {
        px_finish(px);
        return;
    }
    px_relay(px);
}

static void px_start(proxy_ctx *px)
{
    pt_request *r = px->r;
    px->started = true;
    r->on_body = px_on_client_body;
    r->on_write = px_on_client_write;
    if (proxy_build_request(px) != PT_OK) {
        px->done = true;
        pt_http_finalize(r, 500);
        return;
    }
    pt_upx_start(&px->x);
}

static void px_body_ready(pt_request *r, int rc)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (rc != PT_OK) {
        px->done = true;
        pt_http_finalize(r, r->status >= 400 ? (int) r->status : 400);
        return;
    }
    px_start(px);
}

static int proxy_content(pt_request *r)
{
    proxy_route_conf *rc = pt_route_conf(r->route, pt_proxy_module);
    proxy_ctx *px = pt_palloc(r->pool, sizeof(*px));
    if (px == NULL)
        return 500;
    memset(px, 0, offsetof(proxy_ctx, x));
    px->r = r;
    px->rc = rc;
    pt_upx_init(&px->x, rc->up, &px_handler, px, r);
    pt_req_set_ctx(r, pt_proxy_module, px);
    r->on_abort = px_on_abort;
    if (rc->request_buffering && pt_http_body_pending(r)) {
        /* A body that fits is read whole before an origin is chosen: a slow client then
         * holds no origin connection, and the body can be sent again on a retry. */
        int b = pt_http_buffer_body(r, rc->request_buffer_size, px_body_ready);
        if (b == PT_AGAIN)
            return PT_AGAIN;
        if (b == PT_ERROR) {
            px->done = true;
            return r->status >= 400 ? (int) r->status : 400;
        }
    }
    px_start(px);
    return PT_AGAIN;
}

pt_module pt_proxy_module = {
    .name = "proxy",
    .keys = proxy_keys,
    .route_conf_size = sizeof(proxy_route_conf),
    .route_conf_init = proxy_route_init,
    .conf_check = proxy_conf_check,
    .content = proxy_content,
};
