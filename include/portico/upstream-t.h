/* Upstreams: groups of origin servers (core configuration), the policy that picks a
 * server, the per-server state shared by all workers, the connections a worker holds to
 * origins, and the upstream exchange: one HTTP/1.1 request to an origin and its response,
 * run by the core for whoever asks (the proxy for a client, later health checks, cache
 * refreshes) with no client request needed. */
#ifndef PT_UPSTREAM_T_H
#define PT_UPSTREAM_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "portico/buf-t.h"
#include "portico/event-t.h"
#include "portico/h1-t.h"
#include "portico/pool-t.h"
#include "portico/str-t.h"
#include "portico/timer-t.h"
#include "portico/xprt-t.h"

#define PT_UPSTREAM_MAX_SERVERS 64    /* per group: a retry remembers tried ones in a bitmask */
#define PT_UPSTREAM_FREE_BUFS   32    /* idle response buffers kept per group and worker */
#define PT_UPCONN_SETTLE_MS     100   /* a connection that answered a HEAD rests this long */

typedef struct pt_request pt_request;
typedef struct pt_upstream pt_upstream;
typedef struct pt_upstream_rt pt_upstream_rt;

/* A server's state shared by every worker, in the "upstreams" zone. Kept across reloads
 * for the same group name and address, so counters (and, later, health) continue. Only
 * atomic updates: a worker dying mid-update leaves every field valid. */
typedef struct pt_upstream_shared {
    char     key[112];          /* "group name" NUL "address" NUL; key[0] == 0: free */
    uint64_t generation;        /* the last configuration that used it */
    int64_t  active;            /* requests in flight, all workers */
    uint64_t requests;          /* exchanges started */
    uint64_t failures;          /* connect failures, timeouts, broken responses */
    uint64_t last_failure_ms;   /* realtime */
} pt_upstream_shared;

typedef struct pt_upstream_server {
    unsigned                index;
    const char             *address;     /* as written: "app2.internal:9001" */
    pt_str                  authority;   /* Host for preserve_host = false */
    struct sockaddr_storage addr;        /* resolved when the config is loaded */
    socklen_t               addrlen;
    char                    addr_text[64]; /* "10.0.0.2:9001", for logs */
    unsigned                weight;
    int                     line;
    pt_upstream_shared     *shared;      /* set in the master once the zone is mapped */
} pt_upstream_server;

/* What became of one attempt on a server: the policy learns from it (passive health,
 * response times). */
typedef enum pt_upstream_outcome {
    PT_UP_OK = 0,               /* a response head came */
    PT_UP_CONNECT_FAILED,       /* refused, unreachable */
    PT_UP_TIMEOUT,              /* connect, send or response timed out */
    PT_UP_BROKEN                /* closed early, invalid response */
} pt_upstream_outcome;

/* What a policy may look at to pick. */
typedef struct pt_balance_ctx {
    uint64_t          tried;    /* servers this exchange already tried (bit by index) */
    const pt_request *r;        /* the client request, or NULL (health checks) */
} pt_balance_ctx;

/* A balancing policy: one ops table per algorithm (round robin today; the balancing
 * issue adds the others). */
typedef struct pt_balancer {
    const char *name;                                   /* "round_robin" */
    size_t      rt_size;                                /* per-worker state per group */
    int  (*worker_init)(pt_upstream_rt *rt, void *state);
    /* A server index not in ctx->tried, or -1 when none is left. */
    int  (*pick)(pt_upstream_rt *rt, void *state, const pt_balance_ctx *ctx);
    void (*report)(pt_upstream_rt *rt, void *state, unsigned server,
                   pt_upstream_outcome outcome, uint64_t ms);
} pt_balancer;

struct pt_upstream {
    unsigned            index;
    const char         *name;
    int                 line;
    pt_upstream_server *servers;
    unsigned            nservers;
    const pt_balancer  *balancer;
    unsigned            keepalive;          /* idle pooled connections per worker */
    unsigned            retries;            /* further servers to try when a connect fails */
    uint32_t            connect_timeout_ms;
    uint32_t            read_timeout_ms;
    uint32_t            write_timeout_ms;
    uint32_t            idle_timeout_ms;    /* pooled connection unused this long: closed */
    uint32_t            tunnel_timeout_ms;  /* upgraded (WebSocket) tunnel idle limit */
    uint32_t            buffer_size;        /* response buffer per connection */
    struct pt_tls_client *tls;              /* NULL: plain TCP to the servers (tls-t.h) */
};

typedef struct pt_upstream_list {
    pt_upstream *ups;
    unsigned     n;
} pt_upstream_list;

typedef struct pt_upconn pt_upconn;
typedef void (*pt_upconn_fn)(pt_upconn *uc, uint32_t events);   /* events 0: its timer */

/* A connection to an origin server. While pooled it belongs to the pool; otherwise to the
 * exchange using it (owner). */
struct pt_upconn {
    pt_xprt                   x;
    pt_timer                  timer;
    const pt_upstream        *up;
    const pt_upstream_server *server;
    pt_buf                    in;
    bool                      pooled;
    bool                      check_reuse;  /* peek before reuse: the last answer had no body */
    uint64_t                  settle_until; /* not reused before this (ms): after a HEAD */
    uint64_t                  requests;     /* sent on this connection so far */
    pt_upconn_fn              handler;
    void                     *owner;
    pt_upconn                *prev, *next;  /* pool list */
    pt_upconn                *all_prev, *all_next;  /* every open connection of the worker */
    pt_defer                  free_later;
};

/* Per worker, per group: the policy's state and the idle pool. */
struct pt_upstream_rt {
    const pt_upstream *up;
    void              *balance;     /* the policy's per-worker state */
    pt_upconn        **idle;        /* per server: most recently used first */
    unsigned           nidle;       /* across the group */
    char              *free_bufs[PT_UPSTREAM_FREE_BUFS];  /* response buffers to reuse */
    unsigned           nfree;
};

/* ---- the upstream exchange ---- */

typedef struct pt_upx pt_upx;

#define PT_UPX_NO_BODY  (-1)
#define PT_UPX_CHUNKED  (-2)        /* a body of unknown length: sent chunked */

/* The request to send, protocol-neutral; the exchange writes it as HTTP/1.1 for each
 * attempt (Host may depend on the server). Strings must outlive the exchange. */
typedef struct pt_upx_req {
    pt_str           method;
    pt_method        method_id;      /* HEAD decides how the response is framed */
    pt_str           target;         /* origin-form: path and query */
    pt_str           host;           /* the Host value; empty: the server's own address */
    const pt_header *headers;        /* end-to-end fields, sent as they are */
    uint32_t         nheaders;
    pt_str           connection;     /* tokens for a Connection field ("upgrade", "TE") */
    pt_str           upgrade;        /* an Upgrade value to send (a 101 may come back) */
    int64_t          body_length;    /* PT_UPX_NO_BODY, PT_UPX_CHUNKED or Content-Length */
    bool             expect_continue;/* hold the body until the origin's 100 (1 s at most) */
} pt_upx_req;

/* The owner's side. Callbacks may run from the exchange's events or from inside a call
 * the owner made; after fail the exchange is over (its connection is gone). */
typedef struct pt_upx_handler {
    /* The request body to send, pulled: PT_OK (a slice, valid until the next call),
     * PT_DONE (no more), PT_AGAIN (call pt_upx_body_ready when there is more), PT_ERROR
     * (the body failed: the exchange stops and calls fail with client_failed set). */
    int  (*body)(pt_upx *x, const char **data, size_t *len);
    /* A retry needs the body from the start: true if the owner can give it again. */
    bool (*rewind)(pt_upx *x);
    /* The final response head is here (x->resp, x->ri); body bytes that came with it
     * are ready to be read (no data call follows for them). */
    void (*head)(pt_upx *x);
    /* Response body (or tunnel) bytes can be read, or the tunnel can take bytes again. */
    void (*data)(pt_upx *x);
    /* Nothing more will come: x->status is what to answer if nothing was sent (502, 504;
     * 0 when the exchange ended without a fault to report, as a tunnel's idle timeout),
     * x->why says why. */
    void (*fail)(pt_upx *x);
} pt_upx_handler;

typedef enum pt_upx_state {
    PT_UPX_IDLE = 0,
    PT_UPX_CONNECT,       /* connecting (or picking a server) */
    PT_UPX_EXCHANGE,      /* sending the request, reading the response head */
    PT_UPX_BODY,          /* the response body */
    PT_UPX_TUNNEL,        /* after 101: bytes both ways */
    PT_UPX_DONE
} pt_upx_state;

struct pt_upx {
    const pt_upstream        *up;
    const pt_upx_handler     *h;
    void                     *owner;
    pt_request               *r;            /* the client request it serves, or NULL */
    pt_pool                  *pool;         /* for the request head: r's, or the owner's */
    pt_upx_req                req;
    pt_upx_state              state;
    pt_upconn                *uc;
    const pt_upstream_server *server;       /* the server of the last attempt */
    uint64_t                  tried;        /* servers tried, by index bit */
    unsigned                  connects;     /* connection attempts to distinct servers */
    bool                      reused;       /* uc came from the pool */
    bool                      stale_retried;
    bool                      last_timeout; /* the last connect failure was a timeout */
    bool                      counted;      /* counted in server->shared->active */

    /* the request on the wire */
    char                     *head;
    size_t                    head_len;
    struct iovec              uq[6];        /* queued for the origin */
    unsigned                  uq_first, uq_n;
    size_t                    uq_pending;
    char                      chunk_line[24];
    bool                      rechunk;
    bool                      body_started; /* body bytes were pulled */
    bool                      req_sent;     /* head and whole body written */
    bool                      write_failed;
    bool                      expect_wait;  /* waiting for the origin's 100 Continue */

    /* the response */
    pt_h1_resp_info           ri;
    bool                      resp_any;     /* a response byte arrived */
    bool                      head_done;
    uint64_t                  remaining;    /* PT_BODY_LENGTH */
    bool                      extra_bytes;  /* bytes after the response: never reuse */
    bool                      body_done;
    bool                      tunnel_in_eof;    /* tunnel: the origin closed its side */

    /* the outcome */
    unsigned                  status;       /* fail: 502 or 504 (0: nothing to report) */
    const char               *why;
    bool                      client_failed;/* the owner's body source failed */
    uint64_t                  t_start;      /* monotonic ms */

    /* set up by each attempt (start_exchange), not zeroed by pt_upx_init */
    pt_h1_parser              parser;
    pt_h1_head                resp;
    pt_h1_chunked             chunked;
    pt_timer                  expect_timer;
    pt_header                 rheaders[128];
};

#endif
