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
#include "portico/conf-t.h"
#include "portico/event-t.h"
#include "portico/h1-t.h"
#include "portico/pool-t.h"
#include "portico/str-t.h"
#include "portico/var-t.h"
#include "portico/timer-t.h"
#include "portico/xprt-t.h"

#define PT_UPSTREAM_MAX_SERVERS 1024  /* per group */
#define PT_UPSTREAM_SKIP_WORDS  (PT_UPSTREAM_MAX_SERVERS / 64)   /* a server bitmap */
#define PT_UPSTREAM_FREE_BUFS   32    /* idle response buffers kept per group and worker */
#define PT_UPCONN_SETTLE_MS     100   /* a connection that answered a HEAD rests this long */

typedef struct pt_request pt_request;
typedef struct pt_upstream pt_upstream;
typedef struct pt_upstream_rt pt_upstream_rt;

/* ---- per-server state shared by every worker ("upstreams" zone) ----
 *
 * Readers other than portico's workers (the metrics issue) find everything they need
 * here: the zone header says what the slots are, every slot names its server and holds
 * its configuration as last loaded, its published state and its counters. Every field is
 * written with single atomic stores or read-modify-writes, never under a lock, so a
 * process dying between two updates leaves each field valid on its own. */

/* The published state of a server (pt_upstream_shared.state). */
typedef enum pt_server_state {
    PT_SV_UP = 0,          /* picked (a new slot, or one kept across a reload, starts up) */
    PT_SV_SLOW_START,      /* back up, weight ramping from 1/20 to full over slow_start_ms */
    PT_SV_DOWN,            /* not picked: down_why says why */
    PT_SV_DRAINING         /* administratively out (down = true, or removed from the
                            * configuration) while requests sent to it still run */
} pt_server_state;

/* Why a server is out (pt_upstream_shared.down_why); several may hold at once. */
#define PT_SV_DOWN_ADMIN    0x1u   /* down = true */
#define PT_SV_DOWN_CHECK    0x2u   /* the active health check failed `fall` times in a row */
#define PT_SV_DOWN_FAILS    0x4u   /* max_fails failures within fail_timeout_ms */
#define PT_SV_DOWN_REMOVED  0x8u   /* no longer in the configuration */
#define PT_SV_DOWN_API_DRAIN 0x10u /* "drain" through the admin API: draining, then down */
#define PT_SV_DOWN_API      0x20u  /* "down" through the admin API: out at once */
/* Out by an operator's decision: not picked and not brought back by health checks; it
 * drains (state draining while requests sent to it still run). */
#define PT_SV_DOWN_DRAINS   (PT_SV_DOWN_ADMIN | PT_SV_DOWN_REMOVED | PT_SV_DOWN_API_DRAIN)

typedef struct pt_upstream_shared {
    char     key[128];          /* "group name" NUL "address" NUL; key[0] == 0: free */
    /* -- configuration, written by the master at each load -- */
    uint64_t generation;        /* the last configuration that used it */
    uint32_t weight;            /* the configuration's, or the admin API's until a reload */
    uint32_t max_conns;         /* 0: unlimited */
    uint32_t slow_start_ms;
    uint32_t backup;            /* 1: a backup server */
    /* -- published state -- */
    uint32_t state;             /* pt_server_state */
    uint32_t down_why;          /* PT_SV_DOWN_* (the authority: state is derived from it) */
    uint64_t state_since;       /* realtime ms of the last transition */
    uint64_t up_since;          /* monotonic ms: the slow start began */
    uint64_t transitions;
    /* -- load, all workers -- */
    int64_t  active;            /* requests in flight */
    uint64_t requests;          /* exchanges started (health probes not counted) */
    uint64_t failures;          /* connect failures, timeouts, broken responses, and
                                 * responses with a fail_on_status status */
    uint64_t last_failure_ms;   /* realtime */
    uint64_t resp_ewma_us;      /* time to the response head: moving average, 1/8 */
    /* -- passive health -- */
    uint32_t fails;             /* failures in the current window */
    uint32_t pad0;
    uint64_t fails_since;       /* monotonic ms: the window began */
    uint64_t fails_until;       /* monotonic ms: out until then (PT_SV_DOWN_FAILS) */
    /* -- active health -- */
    uint64_t check_next;        /* monotonic ms: the next probe is due (claimed by CAS) */
    uint32_t check_pid;         /* the worker that ran the last probe */
    uint32_t check_ok_run;      /* consecutive passed probes */
    uint32_t check_fail_run;    /* consecutive failed probes */
    uint32_t check_status;      /* last probe: HTTP status, 0 for none (tcp, failure) */
    uint64_t checks;            /* probes completed */
    uint64_t checks_failed;
    uint64_t check_last;        /* realtime ms of the last probe's end */
} __attribute__((aligned(64))) pt_upstream_shared;

#define PT_UPSTREAMS_MAGIC 0x7074757073743032ull      /* "ptupst02" */

/* The zone: this header, then nslots slots of slot_size bytes. */
typedef struct pt_upstreams_zone {
    uint64_t           magic;
    uint32_t           slot_size;       /* sizeof(pt_upstream_shared) */
    uint32_t           nslots;
    uint64_t           generation;      /* bumped by every configuration mapped */
    uint64_t           state_gen;       /* bumped by every state transition of any server:
                                         * workers rebuild their view when it moves */
    pt_upstream_shared slot[];
} pt_upstreams_zone;

typedef struct pt_upstream_server {
    unsigned                index;
    const char             *address;     /* as written: "app2.internal:9001" */
    pt_str                  authority;   /* Host for preserve_host = false */
    struct sockaddr_storage addr;        /* resolved when the config is loaded */
    socklen_t               addrlen;
    char                    addr_text[64]; /* "10.0.0.2:9001", for logs */
    unsigned                weight;
    unsigned                max_conns;   /* requests in flight, all workers; 0: no limit */
    unsigned                slow_start_ms;
    bool                    backup;      /* used only when no primary is up */
    bool                    down;        /* administratively off */
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

typedef struct pt_upstream_result {
    pt_upstream_outcome outcome;
    unsigned            status;     /* the response's status (PT_UP_OK), else 0 */
    uint64_t            us;         /* from the attempt's start to its response head or
                                     * its failure */
    const char         *why;        /* a failure: what happened, for the log */
} pt_upstream_result;

/* What a policy may look at to pick. */
typedef struct pt_balance_ctx {
    const uint64_t   *skip;     /* servers not to pick (bit by index): tried by this
                                 * exchange, or found full while picking */
    const pt_request *r;        /* the client request, or NULL */
} pt_balance_ctx;

static inline bool pt_balance_skipped(const pt_balance_ctx *ctx, unsigned s)
{
    return (ctx->skip[s >> 6] >> (s & 63)) & 1;
}

/* A balancing policy: one ops table per algorithm (server/balance_*.c, listed in
 * upstream_conf.c). The core keeps, per worker and group, the set of servers to pick
 * from (rt->set: the live primaries, or the live backups when no primary is live) and
 * their effective weights (rt->eweight, ramped during slow start), rebuilt from the
 * shared state when it changes; update tells the policy so. */
typedef struct pt_balancer {
    const char *name;                                   /* "round_robin" */
    size_t      rt_size;                                /* per-worker state per group */
    /* Configuration: checks the keys this policy needs or refuses (e is the group's
     * setting, for errors); NULL: nothing to check. */
    int  (*conf)(pt_conf_ctx *cx, config_setting_t *e, pt_upstream *up);
    int  (*worker_init)(pt_upstream_rt *rt, void *state);
    void (*worker_exit)(pt_upstream_rt *rt, void *state);    /* may be NULL */
    /* rt->set or rt->eweight changed. */
    void (*update)(pt_upstream_rt *rt, void *state);
    /* A server of rt->set not skipped and with room (pt_upstream_full), or -1 when none
     * is. Cost: O(1) or O(log n) for n servers. */
    int  (*pick)(pt_upstream_rt *rt, void *state, const pt_balance_ctx *ctx);
    /* The server's requests in flight changed (this worker started or ended one); may
     * be NULL. */
    void (*load)(pt_upstream_rt *rt, void *state, unsigned server);
    void (*report)(pt_upstream_rt *rt, void *state, unsigned server,
                   const pt_upstream_result *res);           /* may be NULL */
} pt_balancer;

/* Active health checks (the group's `health`). */
#define PT_HEALTH_NONE 0
#define PT_HEALTH_HTTP 1
#define PT_HEALTH_TCP  2

typedef struct pt_health_conf {
    int         type;                /* PT_HEALTH_* */
    const char *path;                /* http: the request target */
    pt_str      host;                /* http: Host (empty: the server's address) */
    uint32_t    interval_ms;
    uint32_t    timeout_ms;          /* the whole probe */
    uint32_t    fall;                /* failed probes in a row that take a server out */
    uint32_t    rise;                /* passed probes in a row that bring it back */
    unsigned    status_min, status_max;   /* http: the statuses that pass */
    const char *body_regex;          /* http: as written, NULL: none */
    void       *body_re;             /* pcre2_code * */
    int         line;
} pt_health_conf;

/* balance = "hash": its key, text with request variables ("$host$uri"; var-t.h). */
typedef struct pt_hash_key {
    const char  *text;          /* as written; NULL: no hash_key */
    pt_var       var;
} pt_hash_key;

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
    uint32_t            max_fails;          /* passive health: 0 off */
    uint32_t            fail_timeout_ms;
    uint32_t            queue_timeout_ms;   /* every server at max_conns: wait this long */
    uint64_t            fail_status[10];    /* fail_on_status: bit per status 0..639 */
    bool                has_backup;
    pt_health_conf      health;
    pt_hash_key         hash_key;           /* balance = "hash" */
    uint64_t           *state_gen;          /* in the shared zone (pt_upstreams_zone) */
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

/* Waiting for a server with room (every server of the group at max_conns). */
typedef struct pt_upstream_waiter pt_upstream_waiter;
struct pt_upstream_waiter {
    void               (*fn)(pt_upstream_waiter *w);   /* a request of the group ended */
    pt_upstream_waiter  *prev, *next;
    bool                 queued;
};

/* Per worker, per group: the policy's state, the servers it picks from, the idle pool. */
struct pt_upstream_rt {
    const pt_upstream *up;
    void              *balance;     /* the policy's per-worker state */
    /* the worker's view of the shared state (pt_upstream_refresh) */
    uint64_t           seen_gen;    /* zone state_gen it was built from */
    uint64_t           refresh_at;  /* monotonic ms: a timed change is due (a passive
                                     * fail_timeout ends, a slow start step) */
    pt_timer           refresh_timer;   /* makes it even with no request coming */
    unsigned          *set;         /* the servers to pick from, ascending */
    unsigned           nset;
    bool               backup_set;  /* set holds backups: no primary is live */
    uint8_t           *eligible;    /* per server: in set */
    uint32_t          *eweight;     /* per server: weight x 256, ramped in slow start */
    unsigned           retry_after; /* seconds, when set is empty */
    pt_upstream_waiter *waiters;    /* requests waiting for room, oldest first */
    pt_upstream_waiter *waiters_tail;
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
    bool             keep_trailers;  /* the client takes trailers (TE: trailers): those of a
                                      * chunked response are kept (x->trailers) */
    const pt_header *trailers;       /* of the request body, set by the owner when its body
                                      * ends: sent when the body goes chunked */
    uint32_t         ntrailers;
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
    uint64_t                  tried[PT_UPSTREAM_SKIP_WORDS];   /* servers tried, by bit */
    unsigned                  connects;     /* connection attempts to distinct servers */
    unsigned                  attempts;     /* servers tried (connects, broken answers) */
    bool                      pinned;       /* pt_upx_pin: this server only (probes) */
    unsigned                  pin;
    uint64_t                  queue_until;  /* waiting for room (max_conns) until then */
    pt_upstream_waiter        waiter;
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
    pt_header                *trailers;     /* a chunked response's trailer fields, as
                                             * sent (req.keep_trailers), once the body is
                                             * done; the owner picks what to pass on */
    uint32_t                  ntrailers;

    /* the outcome */
    unsigned                  status;       /* fail: 502, 503 or 504 (0: nothing to report) */
    unsigned                  retry_after;  /* 503: seconds for Retry-After */
    const char               *why;
    bool                      client_failed;/* the owner's body source failed */
    uint64_t                  t_start;      /* monotonic ms */
    uint64_t                  t_attempt_us; /* monotonic us: this attempt began */

    /* set up by each attempt (start_exchange), not zeroed by pt_upx_init */
    pt_h1_parser              parser;
    pt_h1_head                resp;
    pt_h1_chunked             chunked;
    pt_timer                  expect_timer;
    pt_timer                  queue_timer;
    pt_header                 rheaders[128];
};

#endif
