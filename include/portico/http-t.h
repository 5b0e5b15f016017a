/* Client connections and requests as the core runs them. */
#ifndef PT_HTTP_T_H
#define PT_HTTP_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/uio.h>

#include "portico/buf-t.h"
#include "portico/event-t.h"
#include "portico/h1-t.h"
#include "portico/pool-t.h"
#include "portico/str-t.h"
#include "portico/timer-t.h"

typedef struct pt_conn pt_conn;
typedef struct pt_request pt_request;
typedef struct pt_route pt_route;
typedef struct pt_listener_conf pt_listener_conf;

/* A listening socket in a worker. */
typedef struct pt_listener {
    pt_io                   io;
    const pt_listener_conf *conf;
} pt_listener;

/* Output waiting for the socket: iovecs into memory that stays valid until written
 * (the connection's scratch, config strings, a module's buffer it does not touch until
 * its on_write callback runs). The iovecs and the scratch are one block, taken from a
 * per-worker free list when output is first queued and given back when the connection
 * goes idle with nothing pending, so an idle connection does not carry them. */
#define PT_OUT_IOV     16
#define PT_OUT_SCRATCH 256

typedef struct pt_out_block {
    struct iovec iov[PT_OUT_IOV];
    char         scratch[PT_OUT_SCRATCH];   /* heads, chunk-size lines */
} pt_out_block;

typedef struct pt_out {
    struct iovec *iov;        /* NULL: no block (nothing queued since idle) */
    char         *scratch;    /* the block's scratch; reset when the queue empties */
    unsigned      first;      /* first iovec not fully written */
    unsigned      n;          /* iovecs in use */
    size_t        pending;    /* bytes not yet written */
    size_t        scratch_len;
} pt_out;

typedef enum pt_conn_state {
    PT_CONN_IDLE = 0,    /* keep-alive, waiting for a request; buffers released */
    PT_CONN_HEAD,        /* reading a request head */
    PT_CONN_ACTIVE,      /* a request is being processed */
    PT_CONN_LINGER,      /* response sent, half-closed, discarding input before close */
    PT_CONN_CLOSED
} pt_conn_state;

struct pt_conn {
    pt_io              io;
    pt_listener       *listener;
    pt_conn_state      state;
    bool               readable;     /* edge-triggered readiness, cleared on EAGAIN */
    bool               writable;
    bool               peer_closed;  /* EOF or RDHUP seen */
    bool               draining;     /* graceful stop: close after the current request */
    pt_buf             in;           /* NULL start: not allocated (idle) */
    pt_out             out;
    pt_timer           timer;        /* the one deadline this connection waits for */
    pt_h1_parser       parser;       /* head parser of the request being read */
    char              *body_base;    /* where request body bytes start in `in` */
    bool               in_owned;     /* `in` was grown past the standard size: free, don't recycle */
    pt_pool           *pool;         /* per request: reset when a request ends */
    pt_request        *req;
    uint64_t           requests;     /* served on this connection */
    uint64_t           linger_until;
    union {                          /* the client's address (binary), 28 bytes not 128 */
        struct sockaddr     sa;
        struct sockaddr_in  in4;
        struct sockaddr_in6 in6;
    } peer;
    socklen_t          peerlen;
    unsigned           peer_ip_len;
    char               peer_ip[48];  /* textual client address, for logs and X-Forwarded-For */
    pt_conn           *prev, *next;  /* the worker's list of open connections */
    pt_defer           free_later;
    pt_defer           step;         /* finish the request outside the handlers' stack */
};

/* Where the request body stands. */
typedef enum pt_body_state {
    PT_RB_NONE = 0,      /* the request has no body */
    PT_RB_PENDING,       /* not read yet (100-continue not sent yet if expected) */
    PT_RB_READING,
    PT_RB_DONE,
    PT_RB_ERROR,
    PT_RB_TUNNEL         /* after a 101: raw bytes until the client's EOF */
} pt_body_state;

struct pt_request {
    pt_conn         *conn;
    pt_pool         *pool;
    pt_h1_head       head;
    pt_h1_req_info   info;
    pt_str           path;          /* normalised (pt_h1_normalize_path), the one form
                                     * routes and access rules match; never forwarded */
    pt_str           host;          /* lower-case, for routing and logs; may be empty (1.0) */
    const pt_route  *route;
    void           **ctx;           /* per module, by index */
    uint64_t         start_ms;      /* realtime, for logs */
    uint64_t         start_mono;
    unsigned         phase;
    unsigned         phase_index;

    /* request body, as the core decodes it */
    pt_body_state    body_state;
    uint64_t         body_remaining;   /* Content-Length body: bytes still to read */
    uint64_t         body_received;    /* decoded bytes so far */
    pt_h1_chunked    chunked;
    bool             continue_sent;
    bool             body_discard;     /* the core is reading and dropping the rest */
    const char      *body_unread;      /* slice handed back by pt_http_unread_body */
    size_t           body_unread_len;

    /* response */
    unsigned         status;
    pt_header       *resp_headers;
    uint32_t         resp_nheaders;
    uint32_t         resp_cap;
    int64_t          resp_length;      /* -1: unknown (chunked for 1.1, close for 1.0) */
    bool             header_sent;
    bool             resp_chunked;
    bool             resp_body_done;   /* the last body byte was queued */
    bool             keepalive;        /* decided by the core; modules may clear it */
    bool             no_body;          /* HEAD, 1xx, 204, 304 */
    bool             finalized;        /* the content handler is done with it */
    bool             aborted;
    bool             shut_wr;          /* tunnel: half-close once output drains */
    bool             wait_writable;    /* spliced body: on_write when the socket drains */
    uint64_t         bytes_sent;       /* whole response on the wire, for the log */
    size_t           resp_head_len;    /* bytes of the response head (body = sent - head) */
    uint64_t         resp_body_queued; /* body bytes handed to the socket (queue or splice) */

    /* for the access log */
    const char      *error_reason;     /* why the core or a module refused or failed it */
    pt_str           upstream_addr;
    int64_t          upstream_ms;      /* -1: no upstream */
    unsigned         upstream_status;
    const char      *cache_status;     /* NULL: "-" */

    /* set by the content handler; the core calls them from the event loop */
    void           (*on_write)(pt_request *r);  /* queued output drained: send more */
    void           (*on_body)(pt_request *r);   /* request body bytes became available */
    void           (*on_abort)(pt_request *r);  /* client gone or timed out: release all */
};

#endif
