/* The proxy module: routes with `upstream = "name"` are answered by an origin server.
 *
 * Per request (proxy_ctx):
 *   CONNECT  -- pick a server (smooth weighted round-robin), take a pooled connection or
 *               connect; a failed connect moves to the next server, up to `retries`
 *   EXCHANGE -- write the request head and stream the body (client -> origin, paced by the
 *               origin socket); read the response head (1xx handled, strict parse)
 *   BODY     -- stream the response body (origin -> client, paced by the client socket)
 *   TUNNEL   -- after 101: bytes both ways, each close propagated, idle timeout
 * Buffers are fixed per connection: the origin connection's response buffer and the
 * client connection's input buffer. Neither side is read while the other cannot take
 * more, so memory per request is bounded whatever the body sizes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "proxy.h"

#define PX_EXPECT_WAIT_MS 1000   /* origin silent after Expect: send the body anyway */
#define PX_SPLICE_MIN     16384  /* smaller bodies: a recv and a writev cost no more */
#define PX_HEAD_READ      16384  /* bytes read while looking for the response head */
#define PX_PIPE_CACHE     16     /* empty pipes kept per worker */

static int      pipe_cache[PX_PIPE_CACHE][2];
static unsigned npipe_cache;

static void px_up_event(pt_upconn *uc, uint32_t events);
static void px_read(proxy_ctx *px);
static void px_connect(proxy_ctx *px);
static int  px_send(proxy_ctx *px);
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
    { "upstreams", PT_SCOPE_MAIN, pt_upstream_conf_set, offsetof(proxy_main_conf, upstreams),
      0, 0, NULL },
    { "upstream", PT_SCOPE_ROUTE, set_upstream_name, 0, 0, 0, NULL },
    { "preserve_host", PT_SCOPE_ROUTE, pt_conf_set_bool, offsetof(proxy_route_conf, preserve_host),
      0, 0, NULL },
    { "set_request_headers", PT_SCOPE_ROUTE, set_request_headers,
      offsetof(proxy_route_conf, set_request), 0, 0, NULL },
    { "set_response_headers", PT_SCOPE_ROUTE, set_response_headers,
      offsetof(proxy_route_conf, set_response), 0, 0, NULL },
    { "hide_response_headers", PT_SCOPE_ROUTE, pt_conf_set_str_list,
      offsetof(proxy_route_conf, hide_response), 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int proxy_route_init(pt_conf_ctx *cx, pt_route *rt, void *conf)
{
    proxy_route_conf *rc = conf;
    rc->preserve_host = true;
    return PT_OK;
}

static int proxy_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    proxy_main_conf *mc = pt_main_conf(conf, pt_proxy_module);
    for (unsigned i = 0; i < conf->nroutes; i++) {
        pt_route *rt = &conf->routes[i];
        proxy_route_conf *rc = pt_route_conf(rt, pt_proxy_module);
        if (rc == NULL || rc->upstream_name == NULL)
            continue;
        rc->up = pt_upstream_find(&mc->upstreams, rc->upstream_name);
        if (rc->up == NULL)
            return pt_conf_error(cx, rc->upstream_setting, "no upstream named \"%s\"",
                                 rc->upstream_name);
        if (pt_conf_set_content(cx, rt, &pt_proxy_module) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int proxy_worker_init(pt_cycle *cy)
{
    proxy_main_conf *mc = pt_main_conf(cy->conf, pt_proxy_module);
    return pt_upstream_worker_init(&mc->upstreams);
}

static void proxy_worker_exit(pt_cycle *cy)
{
    while (npipe_cache) {
        npipe_cache--;
        close(pipe_cache[npipe_cache][0]);
        close(pipe_cache[npipe_cache][1]);
    }
    pt_upstream_worker_exit();
}

/* ------------------------------------------------------------------ helpers */

static void px_log_server(proxy_ctx *px, const char *srv, int level, int err, const char *what)
{
    pt_request *r = px->r;
    char e[128] = "";
    if (err)
        snprintf(e, sizeof(e), " (%d: %s)", err, strerror(err));
    pt_log(level, "upstream \"%s\" server %s: %s%s, client %s, request \"%.*s %.*s\"",
           px->up->name, srv, what, e, r->conn->peer_ip, (int) r->head.method.len,
           r->head.method.data, (int) pt_min(r->head.target.len, 256), r->head.target.data);
}

static void px_log(proxy_ctx *px, int level, int err, const char *what)
{
    px_log_server(px, px->uc ? px->uc->server->addr_text : "-", level, err, what);
}

static void px_arm(proxy_ctx *px)
{
    pt_upconn *uc = px->uc;
    if (uc == NULL)
        return;
    switch (px->state) {
    case PX_CONNECT:
        pt_upconn_set_timer(uc, px->up->connect_timeout_ms);
        break;
    case PX_EXCHANGE:
        pt_upconn_set_timer(uc, px->uq_pending ? px->up->write_timeout_ms : px->up->read_timeout_ms);
        break;
    case PX_BODY:
        pt_upconn_set_timer(uc, px->uq_pending ? px->up->write_timeout_ms : px->up->read_timeout_ms);
        break;
    case PX_TUNNEL:
        pt_upconn_set_timer(uc, px->up->tunnel_timeout_ms);
        break;
    case PX_DONE:
        pt_upconn_set_timer(uc, 0);
        break;
    }
}

/* ------------------------------------------------------------------ pipes */

static int px_pipe_get(proxy_ctx *px)
{
    int fds[2];
    if (npipe_cache) {
        npipe_cache--;
        fds[0] = pipe_cache[npipe_cache][0];
        fds[1] = pipe_cache[npipe_cache][1];
    } else if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        return PT_ERROR;
    }
    px->pipe_rd = fds[0];
    px->pipe_wr = fds[1];
    px->pipe_len = 0;
    px->have_pipe = true;
    return PT_OK;
}

static void px_pipe_put(proxy_ctx *px)
{
    if (!px->have_pipe)
        return;
    px->have_pipe = false;
    if (px->pipe_len == 0 && npipe_cache < PX_PIPE_CACHE) {
        pipe_cache[npipe_cache][0] = px->pipe_rd;
        pipe_cache[npipe_cache][1] = px->pipe_wr;
        npipe_cache++;
        return;
    }
    close(px->pipe_rd);     /* bytes left in it belong to an abandoned response */
    close(px->pipe_wr);
}

static void px_stop(proxy_ctx *px, bool reuse)
{
    px->state = PX_DONE;
    px_pipe_put(px);
    pt_timer_del(&pt_loop_cur->timers, &px->expect_timer);
    px->r->upstream_ms = (int64_t) (pt_loop_cur->now - px->t_start);
    if (px->uc) {
        px->r->upstream_addr = (pt_str) { strlen(px->uc->server->addr_text),
                                          px->uc->server->addr_text };
        pt_upconn_set_timer(px->uc, 0);
        pt_upconn_release(px->uc, reuse);
        px->uc = NULL;
    }
}

/* Nothing usable came back: the client gets status (502, 504) if nothing was sent yet. */
static void px_fail(proxy_ctx *px, unsigned status, int err, const char *why)
{
    pt_request *r = px->r;
    px_log(px, PT_LOG_ERR, err, why);
    r->error_reason = why;
    px_stop(px, false);
    pt_http_finalize(r, r->header_sent ? PT_ERROR : (int) status);
}

static void px_finish(proxy_ctx *px)
{
    bool reuse = px->ri.keepalive && px->req_sent && !px->extra_bytes && !px->write_failed
                 && px->state == PX_BODY;
    pt_request *r = px->r;
    px_stop(px, reuse);
    pt_http_finalize(r, PT_OK);
}

/* The client side failed once its head went out: nothing more can be said to it. */
static void px_client_failed(proxy_ctx *px, const char *why)
{
    pt_request *r = px->r;
    if (why)
        px_log(px, PT_LOG_INFO, 0, why);
    px_stop(px, false);
    pt_http_finalize(r, PT_ERROR);
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

static void px_on_abort(pt_request *r)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (px && px->state != PX_DONE)
        px_stop(px, false);             /* mid-exchange: the connection is not reusable */
}

static void px_on_client_body(pt_request *r)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (px->state == PX_EXCHANGE && px->expect_wait) {
        /* the client sent something (body bytes: it does not wait for 100 Continue) or
         * hung up while we waited for the origin's 100: stop waiting, so px_send deals
         * with its body or its absence now (a hang-up went unnoticed until the timer) */
        px->expect_wait = false;
        pt_timer_del(&pt_loop_cur->timers, &px->expect_timer);
    }
    if (px->state == PX_EXCHANGE || (px->state == PX_BODY && !px->req_sent))
        px_send(px);
    else if (px->state == PX_TUNNEL)
        px_tunnel(px);
}

static void px_on_client_write(pt_request *r)
{
    proxy_ctx *px = pt_req_ctx(r, pt_proxy_module);
    if (px->state == PX_BODY || px->state == PX_TUNNEL) {
        if (r->resp_body_done && px->state == PX_BODY) {
            px_finish(px);
            return;
        }
        px_arm(px);
        if (px->state == PX_TUNNEL)
            px_tunnel(px);
        else
            px_read(px);
    }
}

static void px_expect_fire(pt_timer *t)
{
    proxy_ctx *px = t->data;
    if (px->state != PX_EXCHANGE || !px->expect_wait)
        return;
    px->expect_wait = false;            /* the origin ignores Expect: send the body */
    px_send(px);
}

/* ------------------------------------------------------------------ the exchange */

static void uq_reset(proxy_ctx *px)
{
    px->uq_first = px->uq_n = 0;
    px->uq_pending = 0;
}

static void uq_add(proxy_ctx *px, const void *p, size_t n)
{
    px->uq[px->uq_n].iov_base = (void *) p;
    px->uq[px->uq_n].iov_len = n;
    px->uq_n++;
    px->uq_pending += n;
}

static void px_start_exchange(proxy_ctx *px)
{
    pt_upconn *uc = px->uc;
    uc->handler = px_up_event;
    uc->owner = px;
    if (pt_upconn_alloc_in(uc) != PT_OK) {
        px_fail(px, 502, ENOMEM, "no memory for the response buffer");
        return;
    }
    uc->in.pos = uc->in.last = uc->in.start;
    pt_h1_limits lim = { pt_buf_size(&uc->in), 0, pt_nelems(px->rheaders) };
    pt_h1_parser_init(&px->parser, PT_H1_RESPONSE, &lim);
    memset(&px->rhead, 0, sizeof(px->rhead));
    px->rhead.headers = px->rheaders;
    px->rhead.max_headers = pt_nelems(px->rheaders);
    px->resp_any = px->head_done = px->req_sent = px->write_failed = false;
    px->extra_bytes = false;
    px->expect_wait = false;
    uq_reset(px);
    if (proxy_build_request(px) != PT_OK) {
        px_fail(px, 500, ENOMEM, "no memory for the request head");
        return;
    }
    uc->requests++;
    px->state = PX_EXCHANGE;
    uq_add(px, px->head, px->head_len);
    if (px->expect_wait)
        pt_loop_timer(pt_loop_cur, &px->expect_timer, PX_EXPECT_WAIT_MS);
    if (px_send(px) == PT_ERROR || px->state != PX_EXCHANGE)
        return;
    px_arm(px);
    if (uc->readable)
        px_read(px);
}

/* A connect that failed (refused, unreachable, timed out): next server or give up. */
static void px_connect_failed(proxy_ctx *px, int err, bool timeout)
{
    px_log(px, PT_LOG_ERR, err, timeout ? "connect() timed out" : "connect() failed");
    px->last_timeout = timeout;
    if (px->uc) {
        px->r->upstream_addr = (pt_str) { strlen(px->uc->server->addr_text),
                                          px->uc->server->addr_text };
        pt_upconn_close(px->uc);
        px->uc = NULL;
    }
    if (px->connects > px->up->retries) {
        pt_request *r = px->r;
        r->error_reason = timeout ? "upstream connect timed out" : "upstream connect failed";
        px_stop(px, false);
        pt_http_finalize(r, timeout ? 504 : 502);
        return;
    }
    px_connect(px);
}

static void px_connect_server(proxy_ctx *px, unsigned s, bool fresh)
{
    px->tried |= 1ull << s;
    pt_upconn *uc = fresh ? NULL : pt_upstream_pool_get(px->up, s);
    if (uc) {
        px->uc = uc;
        px->reused = true;
        px_start_exchange(px);
        return;
    }
    px->connects++;
    px->reused = false;
    px->state = PX_CONNECT;
    uc = pt_upstream_connect(px->up, s, px_up_event, px);
    if (uc == NULL) {
        int err = errno;
        /* log with the server's address although no connection object exists */
        px_log_server(px, px->up->servers[s].addr_text, PT_LOG_ERR, err, "connect() failed");
        px->r->upstream_addr = (pt_str) { strlen(px->up->servers[s].addr_text),
                                          px->up->servers[s].addr_text };
        if (px->connects > px->up->retries) {
            px->r->error_reason = "upstream connect failed";
            /* px_stop: the time spent for the log, and the Expect timer of a request being
             * retried must not outlive it */
            px_stop(px, false);
            pt_http_finalize(px->r, 502);
            return;
        }
        px_connect(px);
        return;
    }
    px->uc = uc;
    if (uc->connected) {
        px_start_exchange(px);
        return;
    }
    px_arm(px);
}

static void px_connect(proxy_ctx *px)
{
    int s = pt_upstream_pick(px->up, px->tried);
    if (s < 0) {
        px->r->error_reason = "no upstream server left to try";
        px_stop(px, false);
        pt_request *r = px->r;
        pt_log(PT_LOG_ERR, "upstream \"%s\": no server left to try, client %s, request \"%.*s %.*s\"",
               px->up->name, r->conn->peer_ip, (int) r->head.method.len, r->head.method.data,
               (int) pt_min(r->head.target.len, 256), r->head.target.data);
        pt_http_finalize(px->r, px->last_timeout ? 504 : 502);
        return;
    }
    px_connect_server(px, (unsigned) s, false);
}

/* The origin closed (or reset) a connection before a byte of response. On a pooled
 * connection that is the keep-alive race: retry once on a fresh connection when the
 * request can be repeated. Bodies are streamed, not kept: once body bytes were consumed
 * they cannot be sent again, whatever the method (a retry would announce a body it no
 * longer has and hang the origin). Without consumed body bytes any method is retried:
 * an idempotent one is safe anyway, and the origin closed before reading anything else. */
static void px_closed_early(proxy_ctx *px, int err)
{
    bool safe = !px->body_started;
    if (px->reused && !px->stale_retried && safe) {
        unsigned s = px->uc->server->index;
        px_log(px, PT_LOG_INFO, err, "pooled connection closed by the origin; retrying");
        pt_upconn_close(px->uc);
        px->uc = NULL;
        px->stale_retried = true;
        px_connect_server(px, s, true);
        return;
    }
    px_fail(px, 502, err, px->reused && !px->stale_retried
                          ? "upstream closed the connection before responding (not retried: "
                            "the request body was already sent)"
                          : "upstream closed the connection before responding");
}

static int px_send(proxy_ctx *px)
{
    pt_request *r = px->r;
    pt_upconn *uc = px->uc;
    for (;;) {
        while (px->uq_pending) {
            if (!uc->writable && uc->connected && px->uq_first + px->uq_n > 0) {
                /* edge-triggered: wait for EPOLLOUT, but try once after a connect */
            }
            ssize_t w = pt_upconn_writev(uc, &px->uq[px->uq_first], (int) (px->uq_n - px->uq_first));
            if (w == -2) {
                px_arm(px);
                return PT_AGAIN;
            }
            if (w < 0) {
                int err = errno;
                px->write_failed = true;
                uq_reset(px);
                if (!px->resp_any && !uc->readable && !uc->peer_closed) {
                    px_closed_early(px, err);
                    return PT_ERROR;
                }
                px_read(px);            /* the origin may have answered before closing */
                return PT_ERROR;
            }
            px->uq_pending -= (size_t) w;
            size_t left = (size_t) w;
            while (left) {
                struct iovec *v = &px->uq[px->uq_first];
                if (left >= v->iov_len) {
                    left -= v->iov_len;
                    px->uq_first++;
                } else {
                    v->iov_base = (char *) v->iov_base + left;
                    v->iov_len -= left;
                    left = 0;
                }
            }
        }
        uq_reset(px);
        if (px->req_sent || px->expect_wait || px->write_failed)
            return PT_OK;

        const char *d;
        size_t n;
        int rc = pt_http_read_body(r, &d, &n);
        if (rc == PT_OK) {
            if (n == 0)
                continue;
            px->body_started = true;
            if (px->rechunk) {
                int ln = snprintf(px->chunk_line, sizeof(px->chunk_line), "%zx\r\n", n);
                uq_add(px, px->chunk_line, (size_t) ln);
                uq_add(px, d, n);
                uq_add(px, "\r\n", 2);
            } else {
                uq_add(px, d, n);
            }
            continue;
        }
        if (rc == PT_DONE) {
            if (px->rechunk && px->body_started + 1 && !px->req_sent) {
                uq_add(px, "0\r\n\r\n", 5);
                px->rechunk = false;    /* queued the last chunk: done after the flush */
                continue;
            }
            px->req_sent = true;
            px_arm(px);
            return PT_OK;
        }
        if (rc == PT_AGAIN) {
            px_arm(px);
            return PT_AGAIN;
        }
        /* the client's body is bad, too big, too slow, or the client left */
        unsigned st = r->status >= 400 ? r->status : 400;
        px_log(px, PT_LOG_INFO, 0, r->error_reason ? r->error_reason : "client body failed");
        px_stop(px, false);
        pt_http_finalize(r, r->header_sent ? PT_ERROR : (int) st);
        return PT_ERROR;
    }
}

/* A complete final response head from the origin. */
static int px_response_head(proxy_ctx *px)
{
    pt_request *r = px->r;
    const char *why = NULL;
    if (pt_h1_analyze_response(&px->rhead, r->info.method, &px->ri, &why) != PT_OK) {
        px_fail(px, 502, 0, why ? why : "invalid response head");
        return PT_ERROR;
    }
    pt_str upg;
    bool want_tunnel = r->info.upgrade
        && (upg = pt_h1_find(r->head.headers, r->head.nheaders, PT_STR("Upgrade"))
                  ? pt_h1_find(r->head.headers, r->head.nheaders, PT_STR("Upgrade"))->value
                  : PT_STR_NULL).len
        && !pt_h1_list_has(upg, PT_STR("h2c"));
    if (px->ri.status == 101 && !want_tunnel) {
        px_fail(px, 502, 0, "101 Switching Protocols to a request that asked for no upgrade");
        return PT_ERROR;
    }
    r->status = px->ri.status;
    r->upstream_status = px->ri.status;
    if (proxy_copy_response_headers(px) != PT_OK) {
        px_fail(px, 500, ENOMEM, "no memory for response headers");
        return PT_ERROR;
    }
    if (px->ri.body == PT_BODY_LENGTH)
        r->resp_length = px->ri.content_length;
    else if (r->info.method == PT_M_HEAD && px->ri.content_length >= 0)
        r->resp_length = px->ri.content_length;
    else
        r->resp_length = -1;
    if (pt_http_send_header(r) != PT_OK) {
        px_fail(px, 500, 0, "response head could not be sent");
        return PT_ERROR;
    }
    px->head_done = true;
    r->upstream_ms = (int64_t) (pt_loop_cur->now - px->t_start);

    if (px->ri.status == 101) {
        pt_http_tunnel(r);
        px->state = PX_TUNNEL;
        px_log(px, PT_LOG_DEBUG, 0, "tunnel open");
        if (pt_http_send_body(r, NULL, 0, false) == PT_ERROR) {     /* flush the 101 */
            px_client_failed(px, NULL);
            return PT_ERROR;
        }
        px->tslice = NULL;
        px->tslice_len = 0;
        px_arm(px);
        px_tunnel(px);
        return PT_ERROR;                /* stop the exchange loop: the tunnel runs now */
    }

    px->state = PX_BODY;
    switch (px->ri.body) {
    case PT_BODY_NONE:
        px->remaining = 0;
        break;
    case PT_BODY_LENGTH:
        px->remaining = (uint64_t) px->ri.content_length;
        break;
    case PT_BODY_CHUNKED:
        pt_h1_chunked_init(&px->chunked);
        break;
    case PT_BODY_CLOSE:
        break;
    }
    if (px->ri.body == PT_BODY_NONE || (px->ri.body == PT_BODY_LENGTH && px->remaining == 0)) {
        if (px->uc->in.pos != px->uc->in.last)
            px->extra_bytes = true;     /* bytes after a bodiless response: never forward */
        px_end_body(px);
        return PT_ERROR;
    }
    return PT_OK;               /* px_body sends the head with the first body bytes */
}

/* Relays the rest of a Content-Length body with splice(2): the bytes go from the origin
 * socket into a pipe and from the pipe to the client socket without being copied into
 * this process. One pipe's worth at a time, so back-pressure works as with the buffer. */
static void px_splice(proxy_ctx *px)
{
    pt_request *r = px->r;
    pt_upconn *uc = px->uc;
    for (;;) {
        if (px->pipe_len) {
            ssize_t m = pt_http_splice_body(r, px->pipe_rd, px->pipe_len);
            if (m == PT_AGAIN) {
                pt_upconn_set_timer(uc, 0);     /* the client's send timeout runs now */
                return;
            }
            if (m < 0) {
                px_client_failed(px, "client connection failed while relaying the body");
                return;
            }
            px->pipe_len -= (size_t) m;
            if (px->pipe_len)
                continue;
            if (px->remaining == 0) {
                px_end_body(px);
                return;
            }
        }
        size_t want = (size_t) pt_min(px->remaining, (uint64_t) (1 << 20));
        ssize_t n = splice(uc->io.fd, NULL, px->pipe_wr, NULL, want,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            px->remaining -= (uint64_t) n;
            px->pipe_len = (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            uc->readable = false;
            px_arm(px);
            return;
        }
        px_fail(px, 502, n < 0 ? errno : 0, "upstream closed the connection in the middle of the body");
        return;
    }
}

/* Relays response body bytes already in the buffer, then reads more. */
static void px_body(proxy_ctx *px)
{
    pt_request *r = px->r;
    pt_upconn *uc = px->uc;
    for (;;) {
        if (px->ri.body == PT_BODY_LENGTH && uc->in.pos == uc->in.last && !px->no_splice
            && (px->have_pipe
                || (px->remaining >= PX_SPLICE_MIN && pt_http_splice_ok(r)))) {
            if (px->have_pipe || px_pipe_get(px) == PT_OK) {
                px_splice(px);
                return;
            }
            px->no_splice = true;       /* out of descriptors: the buffer will do */
        }
        if (uc->in.pos < uc->in.last) {
            const char *d = NULL;
            size_t n = 0;
            bool last = false;
            size_t avail = pt_buf_len(&uc->in);
            switch (px->ri.body) {
            case PT_BODY_LENGTH:
                n = (size_t) pt_min((uint64_t) avail, px->remaining);
                d = uc->in.pos;
                uc->in.pos += n;
                px->remaining -= n;
                last = px->remaining == 0;
                break;
            case PT_BODY_CHUNKED: {
                const char *p = uc->in.pos;
                int rc = pt_h1_chunked_decode(&px->chunked, &p, uc->in.last, &d, &n);
                uc->in.pos = (char *) p;
                if (rc == PT_ERROR) {
                    px_fail(px, 502, 0, px->chunked.error ? px->chunked.error
                                                          : "invalid chunked response body");
                    return;
                }
                if (rc == PT_DONE)
                    last = true;
                else if (rc == PT_AGAIN)
                    n = 0;
                break;
            }
            case PT_BODY_CLOSE:
                d = uc->in.pos;
                n = avail;
                uc->in.pos = uc->in.last;
                break;
            case PT_BODY_NONE:
                last = true;
                break;
            }
            if (last && uc->in.pos != uc->in.last)
                px->extra_bytes = true; /* more than the response: never forwarded */
            if (n == 0 && !last)
                continue;
            int rc = pt_http_send_body(r, d, n, last);
            if (rc == PT_ERROR) {
                px_client_failed(px, "client connection failed while relaying the body");
                return;
            }
            if (rc == PT_AGAIN) {
                /* the client is slower than the origin: stop reading the origin until
                 * the queued bytes (which point into its buffer) are written */
                pt_upconn_set_timer(uc, 0);
                return;
            }
            if (last) {
                px_finish(px);
                return;
            }
            continue;
        }
        uc->in.pos = uc->in.last = uc->in.start;
        ssize_t n = pt_upconn_read(uc);
        if (n > 0)
            continue;
        if (n == -2) {
            /* Nothing more for now. The response head may still be queued alone (the body
             * comes later): put it on the wire, or the client waits for it while
             * px_up_event holds the body back behind the pending output. */
            if (r->conn->out.pending && pt_http_send_body(r, NULL, 0, false) == PT_ERROR) {
                px_client_failed(px, "client connection failed while sending the response head");
                return;
            }
            px_arm(px);
            return;
        }
        if (n == 0 && px->ri.body == PT_BODY_CLOSE) {
            px_end_body(px);
            return;
        }
        px_fail(px, 502, n < 0 ? errno : 0, "upstream closed the connection in the middle of the body");
        return;
    }
}

static void px_read(proxy_ctx *px)
{
    pt_upconn *uc = px->uc;
    while (px->state == PX_EXCHANGE) {
        if (uc->in.pos < uc->in.last) {
            px->resp_any = true;
            int rc = pt_h1_parse_head(&px->parser, uc->in.pos, pt_buf_len(&uc->in), &px->rhead);
            if (rc == PT_ERROR) {
                px_fail(px, 502, 0, px->parser.error ? px->parser.error : "invalid response head");
                return;
            }
            if (rc == PT_OK) {
                uc->in.pos += px->rhead.len;
                if (px->rhead.status < 200 && px->rhead.status != 101) {
                    /* interim response: 100 releases a body held for Expect; others are
                     * dropped. The next head starts at the buffer start again. */
                    size_t rest = pt_buf_len(&uc->in);
                    memmove(uc->in.start, uc->in.pos, rest);
                    uc->in.pos = uc->in.start;
                    uc->in.last = uc->in.start + rest;
                    pt_h1_limits lim = px->parser.lim;
                    pt_h1_parser_init(&px->parser, PT_H1_RESPONSE, &lim);
                    px->rhead.nheaders = 0;
                    px->resp_any = false;
                    if (px->rhead.status == 100 && px->expect_wait) {
                        px->expect_wait = false;
                        pt_timer_del(&pt_loop_cur->timers, &px->expect_timer);
                        if (px_send(px) == PT_ERROR || px->state != PX_EXCHANGE)
                            return;
                    }
                    continue;
                }
                if (px_response_head(px) != PT_OK)
                    return;
                px_body(px);
                return;
            }
            if (pt_buf_free(&uc->in) == 0) {
                px_fail(px, 502, 0, "upstream response head too big for the buffer");
                return;
            }
        } else {
            uc->in.pos = uc->in.last = uc->in.start;
        }
        /* Reading for the head takes a slice, not the whole buffer: a large body left in
         * the socket can then be spliced to the client without a copy. */
        ssize_t n = pt_upconn_read_max(uc, PX_HEAD_READ);
        if (n > 0)
            continue;
        if (n == -2) {
            px_arm(px);
            return;
        }
        int err = n < 0 ? errno : 0;
        if (!px->resp_any) {
            px_closed_early(px, err);
            return;
        }
        px_fail(px, 502, err, "upstream closed the connection in the middle of the response head");
        return;
    }
    if (px->state == PX_BODY)
        px_body(px);
}

/* ------------------------------------------------------------------ the tunnel */

static void px_tunnel(proxy_ctx *px)
{
    pt_request *r = px->r;
    pt_upconn *uc = px->uc;
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
                shutdown(uc->io.fd, SHUT_WR);
                break;
            }
            px->tslice = d;
            px->tslice_len = n;
        }
        ssize_t w = send(uc->io.fd, px->tslice, px->tslice_len, MSG_NOSIGNAL);
        if (w > 0) {
            px->tslice += w;
            px->tslice_len -= (size_t) w;
            progress = true;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            uc->writable = false;
            break;
        }
        px->cl_eof = px->up_eof = true; /* the origin is gone both ways */
        break;
    }

    /* origin -> client */
    while (!px->up_eof && !r->conn->out.pending) {
        if (uc->in.pos < uc->in.last) {
            const char *d = uc->in.pos;
            size_t n = pt_buf_len(&uc->in);
            uc->in.pos = uc->in.last;
            int rc = pt_http_send_body(r, d, n, false);
            progress = true;
            if (rc == PT_ERROR) {
                px->up_eof = px->cl_eof = true;
                break;
            }
            if (rc == PT_AGAIN)
                break;
            continue;
        }
        uc->in.pos = uc->in.last = uc->in.start;
        ssize_t n = pt_upconn_read(uc);
        if (n > 0)
            continue;
        if (n == -2)
            break;
        px->up_eof = true;
        pt_http_tunnel_shutdown(r);
        break;
    }

    if (px->cl_eof && px->up_eof) {
        px_log(px, PT_LOG_DEBUG, 0, "tunnel closed");
        px_stop(px, false);
        pt_http_finalize(r, PT_OK);
        return;
    }
    if (progress)
        px_arm(px);
}

/* ------------------------------------------------------------------ events */

static void px_up_event(pt_upconn *uc, uint32_t events)
{
    proxy_ctx *px = uc->owner;
    if (px == NULL || px->state == PX_DONE)
        return;

    if (events == 0) {
        switch (px->state) {
        case PX_CONNECT:
            px_connect_failed(px, ETIMEDOUT, true);
            return;
        case PX_EXCHANGE:
            px_fail(px, 504, 0, px->uq_pending ? "timed out sending the request"
                                               : "timed out waiting for the response");
            return;
        case PX_BODY:
            px_fail(px, 504, 0, "timed out reading the response body");
            return;
        case PX_TUNNEL: {
            pt_request *r = px->r;
            px_log(px, PT_LOG_INFO, 0, "tunnel idle timeout");
            px_stop(px, false);
            pt_http_finalize(r, PT_OK);
            return;
        }
        case PX_DONE:
            return;
        }
    }

    switch (px->state) {
    case PX_CONNECT: {
        int rc = pt_upconn_connected(uc);
        if (rc == PT_AGAIN)
            return;
        if (rc == PT_ERROR) {
            px_connect_failed(px, errno, false);
            return;
        }
        px_start_exchange(px);
        return;
    }
    case PX_EXCHANGE:
        if (uc->writable && px->uq_pending) {
            if (px_send(px) == PT_ERROR || px->state != PX_EXCHANGE)
                return;
        }
        if (uc->readable)
            px_read(px);
        return;
    case PX_BODY:
        if (uc->writable && px->uq_pending && !px->req_sent) {
            if (px_send(px) == PT_ERROR || px->state != PX_BODY)
                return;
        }
        if (uc->readable && !px->r->conn->out.pending)
            px_body(px);
        return;
    case PX_TUNNEL:
        px_tunnel(px);
        return;
    case PX_DONE:
        return;
    }
}

static int proxy_content(pt_request *r)
{
    proxy_route_conf *rc = pt_route_conf(r->route, pt_proxy_module);
    /* the response-header array at the end (4 KiB) needs no zeroing: the parser fills it */
    proxy_ctx *px = pt_palloc(r->pool, sizeof(*px));
    if (px == NULL)
        return 500;
    memset(px, 0, offsetof(proxy_ctx, rheaders));
    px->r = r;
    px->rc = rc;
    px->up = rc->up;
    px->t_start = pt_loop_cur->now;
    pt_timer_init(&px->expect_timer, px_expect_fire, px);
    pt_req_set_ctx(r, pt_proxy_module, px);
    r->on_abort = px_on_abort;
    r->on_body = px_on_client_body;
    r->on_write = px_on_client_write;
    px_connect(px);
    return PT_AGAIN;
}

pt_module pt_proxy_module = {
    .name = "proxy",
    .keys = proxy_keys,
    .main_conf_size = sizeof(proxy_main_conf),
    .route_conf_size = sizeof(proxy_route_conf),
    .route_conf_init = proxy_route_init,
    .conf_check = proxy_conf_check,
    .worker_init = proxy_worker_init,
    .worker_exit = proxy_worker_exit,
    .content = proxy_content,
};
