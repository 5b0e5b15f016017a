/* Client connections and the protocol sessions that run on them.
 *
 *   transport (pt_xprt)     bytes in and out: TCP today, TLS next
 *   connection (pt_conn)    a transport, its buffers, its one timer, the client's address;
 *                           first the accept pipeline (PROXY protocol, later TLS), then
 *   session (pt_session_ops) turns bytes into requests and responses: h1, or h2 with
 *                           many requests (streams) at once on one connection
 *
 * Calls go down: the session calls the connection and the transport; the connection
 * calls the session only through its ops; the request engine calls the session of a
 * request through the same ops table. */
#ifndef PT_CONN_T_H
#define PT_CONN_T_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "portico/buf-t.h"
#include "portico/event-t.h"
#include "portico/pool-t.h"
#include "portico/timer-t.h"
#include "portico/xprt-t.h"

typedef struct pt_conn pt_conn;
typedef struct pt_request pt_request;
typedef struct pt_listener_conf pt_listener_conf;

/* A listening socket in a worker. */
typedef struct pt_listener {
    pt_io                   io;
    const pt_listener_conf *conf;
} pt_listener;

/* Output waiting for the transport: a chain of blocks of iovecs into memory that stays
 * valid until written (a block's scratch, config strings, a module's buffer it does not
 * touch until its on_write callback runs). Blocks come from a per-worker free list when
 * output is queued and go back when the queue drains, so an idle connection holds none.
 * There is no fixed count: back-pressure is by bytes (a producer gets PT_AGAIN while
 * anything is pending and waits for on_write). */
#define PT_OUT_IOV     16
#define PT_OUT_SCRATCH 256

typedef struct pt_out_block pt_out_block;
struct pt_out_block {
    pt_out_block *next;
    unsigned      first;                 /* first iovec not fully written */
    unsigned      n;                     /* iovecs in use */
    size_t        scratch_len;
    struct iovec  iov[PT_OUT_IOV];
    char          scratch[PT_OUT_SCRATCH];   /* heads, chunk-size lines */
};

typedef struct pt_out {
    pt_out_block *head;      /* NULL: nothing queued since idle */
    pt_out_block *tail;
    size_t        pending;   /* bytes not yet written */
    uint64_t      sent;      /* bytes written on this connection, ever */
} pt_out;

/* A protocol session's operations. The connection side is called by conn.c (the accept
 * pipeline hands the connection over with start); the request side by the request engine
 * for a request that belongs to this session. */
typedef struct pt_session_ops {
    const char *name;                    /* "h1", "h2" */
    size_t      size;                    /* per-connection state, allocated with the conn;
                                          * 0: start allocates its own (c->session) */

    /* connection side */
    void    (*start)(pt_conn *c);        /* ours now; bytes may already be in c->in */
    void    (*event)(pt_conn *c, uint32_t events);   /* readiness (c->x); 0: the timer */
    void    (*drain)(pt_conn *c);        /* graceful stop: finish, then close */
    void    (*release)(pt_conn *c);      /* the connection is being closed */

    /* request side */
    int     (*send_head)(pt_request *r);
    int     (*send_body)(pt_request *r, const char *data, size_t len, bool last);
    bool    (*splice_ok)(pt_request *r);
    ssize_t (*splice_body)(pt_request *r, int pipe_rd, size_t len);
    int     (*read_body)(pt_request *r, const char **data, size_t *len);
    /* Output of this request not yet taken by the client: a producer waits for on_write
     * (h1: the connection's queue; h2: the stream's data not yet framed and written). */
    bool    (*output_pending)(const pt_request *r);
    /* Request body bytes (or its end) have arrived and wait to be read. */
    bool    (*input_pending)(const pt_request *r);
    /* Arms (ms > 0) or stops the deadline for the request's body: h1 has the
     * connection's one timer, h2 a timer per stream. When it fires the session refuses
     * the request (408) as for a slow head. */
    void    (*body_timer)(pt_request *r, uint32_t ms);
    void    (*tunnel)(pt_request *r);            /* after a 101: raw bytes both ways */
    void    (*tunnel_shutdown)(pt_request *r);   /* no more bytes to the client */
    void    (*finish)(pt_request *r);    /* the handler is done: complete the response */
    void    (*abort)(pt_request *r);     /* the request cannot complete: drop it */
} pt_session_ops;

struct pt_conn {
    pt_xprt               x;             /* transport: descriptor, ops, readiness */
    pt_listener          *listener;
    const pt_session_ops *proto;         /* NULL while the accept pipeline runs */
    void                 *session;       /* the protocol's state */
    uint8_t               stage;         /* accept pipeline: the stage running */
    bool                  draining;      /* graceful stop: no new requests */
    bool                  in_owned;      /* `in` grew past the standard size: free it */
    bool                  closed;
    bool                  plain_on_tls;  /* plain HTTP came to a TLS listener: the
                                          * session answers its request with a 400 */
    uint32_t              accepted_by;   /* modules whose accept hook took the connection
                                          * (bit by module index): told when it closes */
    pt_buf                in;            /* NULL start: not allocated (idle) */
    pt_out                out;
    pt_timer              timer;         /* the one deadline this connection waits for */
    pt_pool              *pool;          /* per request: reset when a request ends */
    union {                              /* the client's address: from the socket, or as a
                                          * trusted PROXY protocol header gave it */
        struct sockaddr     sa;
        struct sockaddr_in  in4;
        struct sockaddr_in6 in6;
    } peer;
    socklen_t             peerlen;
    unsigned              peer_ip_len;
    char                  peer_ip[48];   /* textual client address, for logs and X-Forwarded-For */
    pt_conn              *prev, *next;   /* the worker's list of open connections */
    pt_defer              free_later;
};

#endif
