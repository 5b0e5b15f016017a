/* Upstreams: groups of origin servers, and the connections a worker holds to them. */
#ifndef PT_UPSTREAM_T_H
#define PT_UPSTREAM_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portico/buf-t.h"
#include "portico/event-t.h"
#include "portico/str-t.h"
#include "portico/timer-t.h"

#define PT_UPSTREAM_MAX_SERVERS 64
#define PT_UPSTREAM_FREE_BUFS   32    /* idle response buffers kept per group and worker */
#define PT_UPCONN_SETTLE_MS     100   /* a connection that answered a HEAD rests this long */

typedef struct pt_upstream_server {
    unsigned                index;
    const char             *address;     /* as written: "app2.internal:9001" */
    pt_str                  authority;   /* Host for preserve_host = false */
    struct sockaddr_storage addr;        /* resolved when the config is loaded */
    socklen_t               addrlen;
    char                    addr_text[64]; /* "10.0.0.2:9001", for logs */
    unsigned                weight;
    int                     line;
} pt_upstream_server;

typedef struct pt_upstream {
    unsigned            index;
    const char         *name;
    int                 line;
    pt_upstream_server *servers;
    unsigned            nservers;
    unsigned            keepalive;          /* idle pooled connections per worker */
    unsigned            retries;            /* further servers to try when a connect fails */
    uint32_t            connect_timeout_ms;
    uint32_t            read_timeout_ms;
    uint32_t            write_timeout_ms;
    uint32_t            idle_timeout_ms;    /* pooled connection unused this long: closed */
    uint32_t            tunnel_timeout_ms;  /* upgraded (WebSocket) tunnel idle limit */
    uint32_t            buffer_size;        /* response buffer per connection */
} pt_upstream;

typedef struct pt_upconn pt_upconn;
typedef void (*pt_upconn_fn)(pt_upconn *uc, uint32_t events);   /* events 0: its timer */

/* A connection to an origin server. While pooled it belongs to the pool; otherwise to the
 * request using it (owner). */
struct pt_upconn {
    pt_io                     io;
    pt_timer                  timer;
    const pt_upstream        *up;
    const pt_upstream_server *server;
    pt_buf                    in;
    bool                      connected;
    bool                      readable;
    bool                      writable;
    bool                      peer_closed;
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

/* Per worker, per group: balancing state and the idle pool. */
typedef struct pt_upstream_rt {
    const pt_upstream *up;
    int64_t           *current;     /* smooth weighted round-robin state, per server */
    pt_upconn        **idle;        /* per server: most recently used first */
    unsigned           nidle;       /* across the group */
    char              *free_bufs[PT_UPSTREAM_FREE_BUFS];  /* response buffers to reuse */
    unsigned           nfree;
} pt_upstream_rt;

#endif
