#ifndef PT_UPSTREAM_H
#define PT_UPSTREAM_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/upstream-t.h"

/* ---- configuration (core: `upstreams = ( ... )`) ---- */

int pt_upstream_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base);
pt_upstream *pt_upstream_find(const pt_conf *conf, const char *name);
/* After the whole file: declares the shared zone holding every server's state. */
int pt_upstream_conf_check(pt_conf_ctx *cx);
const pt_balancer *pt_balancer_find(const char *name);
extern const pt_balancer pt_balance_round_robin;    /* balance_rr.c */
extern const pt_balancer pt_balance_least_conn;     /* balance_least.c */
extern const pt_balancer pt_balance_least_time;
extern const pt_balancer pt_balance_hash;           /* balance_hash.c */
extern const pt_balancer pt_balance_ip_hash;
extern const pt_balancer pt_balance_random_two;     /* balance_random.c */
/* The group's `health` key (upstream_check.c) and `hash_key` (balance_hash.c). */
int pt_health_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base);
int pt_hash_key_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base);

/* ---- shared server state (upstream_state.c) ---- */

uint64_t pt_upstream_now_ms(void);          /* monotonic, as the shared zone keeps time */
uint64_t pt_upstream_now_us(void);
const char *pt_server_state_name(unsigned state);   /* "up", "slow start", ... */
/* Master, once the zone is mapped: the server's configuration and its administrative
 * state (down = true) go into its slot; removed: a slot no configuration uses now. */
void pt_upstream_state_load(const pt_upstream *up, const pt_upstream_server *sv);
void pt_upstream_state_removed(pt_upstream_shared *sh, uint64_t *state_gen);
/* The state derived from down_why again (after a change to it): a transition is
 * published with a log line saying why. */
void pt_upstream_publish(const pt_upstream *up, const pt_upstream_server *sv, const char *why);
/* The admin API: state PT_SV_ADMIN_* (-1: unchanged) and weight (0: unchanged) of a
 * server, for every worker at once through the shared zone, until the next reload. who
 * says who asked, for the log line. */
#define PT_SV_ADMIN_UP    0
#define PT_SV_ADMIN_DRAIN 1
#define PT_SV_ADMIN_DOWN  2
int  pt_upstream_admin_set(const pt_upstream *up, const pt_upstream_server *sv, int state,
                           unsigned weight, const char *who);
/* Worker: closes the idle pooled connections to server s (it is out). */
void pt_upstream_pool_close(pt_upstream_rt *rt, unsigned s);
/* Worker: the set of servers to pick from, from the shared state, when it moved. */
void pt_upstream_refresh(pt_upstream_rt *rt);
/* An active health check's verdict on a server (why: what failed, NULL when it passed). */
void pt_upstream_check_result(const pt_upstream *up, const pt_upstream_server *sv, bool ok,
                              unsigned status, const char *why);

static inline bool pt_upstream_full(const pt_upstream_server *sv)
{
    return sv->max_conns
           && __atomic_load_n(&sv->shared->active, __ATOMIC_RELAXED) >= (int64_t) sv->max_conns;
}

/* ---- worker side: groups, pools, connections ---- */

int  pt_upstream_worker_init(const pt_conf *conf);
void pt_upstream_worker_exit(void);
pt_upstream_rt *pt_upstream_rt_of(const pt_upstream *up);

/* pt_upstream_pick: a server (>= 0), counted in its requests in flight (release it with
 * pt_upstream_release), or why there is none: */
#define PT_PICK_NONE_LEFT  (-1)     /* every live server was tried */
#define PT_PICK_ALL_DOWN   (-2)     /* no server is live: rt->retry_after says when to come back */
#define PT_PICK_ALL_FULL   (-3)     /* every live server not tried is at max_conns */
int  pt_upstream_pick(const pt_upstream *up, const pt_request *r, const uint64_t *tried);
/* Counts one more request in flight on server s; false (nothing counted) when it is at
 * max_conns, unless force. */
bool pt_upstream_acquire(const pt_upstream *up, unsigned s, bool force);
void pt_upstream_release(const pt_upstream *up, unsigned s);
void pt_upstream_report(const pt_upstream *up, unsigned server, const pt_upstream_result *res);
/* Waiting for room: w->fn runs when a request of the group ends in this worker (other
 * workers' are not seen: the waiter also polls). */
void pt_upstream_wait(const pt_upstream *up, pt_upstream_waiter *w);
void pt_upstream_wait_cancel(const pt_upstream *up, pt_upstream_waiter *w);

/* Active health checks in this worker (upstream_check.c). */
int  pt_upstream_check_start(const pt_conf *conf);
void pt_upstream_check_stop(void);

/* An idle pooled connection to server that can take a request, or NULL. */
pt_upconn *pt_upstream_pool_get(const pt_upstream *up, unsigned server);
/* Starts a connection; NULL with errno set when it failed at once. The handler gets
 * EPOLLOUT when the connect completes (check pt_upconn_connected) or fails. */
pt_upconn *pt_upstream_connect(const pt_upstream *up, unsigned server, pt_upconn_fn fn,
                               void *owner);
/* PT_OK (connected, and for a TLS upstream its handshake done), PT_AGAIN, or PT_ERROR
 * with errno, or errno 0 and *why (a TLS handshake that failed). */
int  pt_upconn_connected(pt_upconn *uc, const char **why);
/* Gives the connection back: pooled when reuse is true and the pool has room. */
void pt_upconn_release(pt_upconn *uc, bool reuse);
void pt_upconn_close(pt_upconn *uc);
void pt_upconn_set_timer(pt_upconn *uc, uint32_t ms);
int  pt_upconn_alloc_in(pt_upconn *uc);
/* Into uc->in (at most max bytes): > 0, 0 EOF, PT_ERROR, PT_AGAIN, -3 buffer full. */
ssize_t pt_upconn_read(pt_upconn *uc, size_t max);

/* ---- the upstream exchange ---- */

/* Prepares x for one request to up on behalf of owner (r: the client request it serves,
 * or NULL: then the owner sets x->pool, where the head is written). The caller fills
 * x->req, then calls pt_upx_start. */
void pt_upx_init(pt_upx *x, const pt_upstream *up, const pt_upx_handler *h, void *owner,
                 pt_request *r);
void pt_upx_start(pt_upx *x);
/* Before pt_upx_start: this server only, on a fresh connection, not counted in its load
 * or its passive health (health probes). */
void pt_upx_pin(pt_upx *x, unsigned server);
/* The owner's body source has more (or its client went away): the exchange pulls again. */
void pt_upx_body_ready(pt_upx *x);
/* Response body: PT_OK (a slice, valid until the next read), PT_DONE (the slice, maybe
 * empty, ends the body), PT_AGAIN (data is called when more comes), PT_ERROR (failed:
 * fail was called). In a tunnel: the origin's bytes, PT_DONE at its close. */
int  pt_upx_read(pt_upx *x, const char **data, size_t *len);
/* The owner cannot take more for now (its client is slow): no read timeout meanwhile. */
void pt_upx_hold(pt_upx *x);
/* Zero-copy: true when the rest of the body (Content-Length, nothing buffered, at least
 * min bytes) can go through a pipe; then splice moves up to max bytes into it: > 0,
 * PT_AGAIN, PT_ERROR (failed: fail was called). */
bool     pt_upx_can_splice(pt_upx *x, uint64_t min);
ssize_t  pt_upx_splice(pt_upx *x, int pipe_wr, size_t max);
uint64_t pt_upx_body_left(pt_upx *x);
/* After a 101: bytes both ways. write: bytes taken, PT_AGAIN (data is called when the
 * origin takes more), PT_ERROR (the origin is gone). */
void    pt_upx_tunnel(pt_upx *x);
ssize_t pt_upx_tunnel_write(pt_upx *x, const char *data, size_t len);
void    pt_upx_tunnel_shutdown(pt_upx *x);
void    pt_upx_tunnel_activity(pt_upx *x);   /* re-arms the idle timeout */
/* The owner is done with the response (all of it relayed): the connection goes back to
 * the pool when it can be reused. */
void pt_upx_finish(pt_upx *x);
/* The owner gives up (its client left): the connection is closed, no callback runs. */
void pt_upx_abort(pt_upx *x);
/* For logs: "upstream "app" server 10.0.0.2:9001: <what> (<err>)[, client ..., request ...]" */
void pt_upx_log(pt_upx *x, int level, int err, const char *what);

#endif
