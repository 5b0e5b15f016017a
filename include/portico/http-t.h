/* Requests as the core runs them, whatever protocol carried them. A session (h1 today,
 * h2 next) fills the head and decodes the body; modules see only what is here. */
#ifndef PT_HTTP_T_H
#define PT_HTTP_T_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/conn-t.h"
#include "portico/h1-t.h"
#include "portico/pool-t.h"
#include "portico/str-t.h"

typedef struct pt_route pt_route;
typedef struct pt_module pt_module;

/* The request head, protocol-neutral and mutable: modules may edit it in the phases (the
 * header list through pt_http_req_header_*), and the request to an origin is built from
 * it. Strings point into the session's buffer or the request pool. */
typedef struct pt_req_head {
    pt_method  method;
    pt_str     method_name;      /* as sent (case-sensitive token) */
    unsigned   version;          /* the client's protocol: 10, 11, 20 */
    pt_str     scheme;           /* "http" or "https": from the transport */
    pt_str     authority;        /* host[:port]: absolute-form target, else Host */
    pt_str     path;             /* as sent, without the query; "*" for OPTIONS * */
    pt_str     query;            /* after '?', without it; data == NULL: no '?' */
    pt_str     target;           /* the request target as sent, for the log */
    pt_header *headers;          /* every field as sent, in order */
    uint32_t   nheaders;
    uint32_t   cap;              /* room in headers[] */
    /* what the framing and connection fields said */
    int64_t    content_length;   /* -1: none, or the length is not known in advance */
    bool       chunked;          /* a body of unknown length (HTTP/1 chunked) */
    bool       expect_continue;
    bool       upgrade;          /* asks to switch protocols (Upgrade + Connection: upgrade) */
    bool       keepalive;        /* the client wants the connection kept */
    bool       absolute_form;
    bool       underscore;       /* a field name with '_' is left (underscores_in_headers) */
} pt_req_head;

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
    pt_conn         *conn;          /* the client connection: address, transport */
    const pt_session_ops *sess;     /* the session that carries it */
    void            *stream;        /* that session's per-request state */
    pt_pool         *pool;
    pt_req_head      head;
    pt_str           path;          /* normalised (pt_h1_normalize_path), the one form
                                     * routes and access rules match; never forwarded */
    pt_str           host;          /* lower-case, for routing and logs; may be empty (1.0) */
    const pt_route  *route;
    void           **ctx;           /* per module, by index */
    uint64_t         start_ms;      /* realtime, for logs */
    uint64_t         start_mono;
    unsigned         phase;
    unsigned         phase_index;
    uint64_t         filters;       /* response filters switched on for this request (bits
                                     * by filter position, see pt_http_filter_on) */
    uint64_t         body_max;      /* request body limit: max_body_size, maybe lowered by
                                     * a route (0: none) */

    /* request body */
    pt_body_state    body_state;
    uint64_t         body_received;    /* decoded bytes so far */
    bool             continue_sent;    /* the client was told to go on (100 Continue) */
    bool             body_discard;     /* the core is reading and dropping the rest */
    const char      *body_unread;      /* slice handed back by pt_http_unread_body */
    size_t           body_unread_len;
    uint64_t         body_wait_ms;     /* time spent waiting for the client's body bytes */
    uint64_t         body_wait_since;  /* monotonic ms of the last PT_AGAIN; 0: not waiting */

    /* the body held in memory (pt_http_buffer_body) */
    char            *body_buf;
    size_t           body_buf_len;     /* bytes held */
    size_t           body_buf_cap;     /* 0: body_buf points into the session's buffer */
    size_t           body_buf_off;     /* handed out by read_body so far */
    size_t           body_buf_max;
    bool             body_buffering;   /* being read into body_buf */
    bool             body_buffered;    /* body_buf holds the whole body */
    void           (*body_buffered_fn)(pt_request *r, int rc);

    /* response */
    unsigned         status;
    pt_header       *resp_headers;
    uint32_t         resp_nheaders;
    pt_header       *req_trailers;     /* the request body's trailer fields that may be
                                        * passed on, once its end is read */
    uint32_t         req_ntrailers;
    pt_header       *resp_trailers;    /* sent after the body by a session that can
                                        * (h1 chunked, h2); set before the last slice */
    uint32_t         resp_ntrailers;
    uint32_t         resp_cap;
    int64_t          resp_length;      /* -1: unknown (chunked for 1.1, close for 1.0) */
    bool             header_sent;
    bool             resp_body_done;   /* the last body byte was queued */
    bool             keepalive;        /* the session may keep the connection; modules may
                                        * clear it */
    bool             no_body;          /* HEAD, 1xx, 204, 304 */
    bool             finalized;        /* the content handler is done with it */
    bool             aborted;
    bool             busy;             /* counted in the worker's busy connections */
    bool             wait_writable;    /* spliced body: on_write when the transport drains */
    uint64_t         bytes_sent;       /* whole response on the wire, for the log */
    size_t           resp_head_len;    /* bytes of the response head (body = sent - head) */
    uint64_t         resp_body_queued; /* body bytes handed to the transport */

    pt_header       *err_headers;      /* fields an error page keeps (Allow, Retry-After) */
    uint32_t         err_nheaders;
    pt_str           log_tags;         /* filters' tags for the access log (comma-separated) */

    /* for the access log */
    const char      *error_reason;     /* why the core or a module refused or failed it */
    pt_str           error_text;       /* the body of the core's error page, when the
                                        * status line alone would not say what is wrong */
    pt_str           upstream_addr;
    int64_t          upstream_ms;      /* -1: no upstream */
    unsigned         upstream_status;
    unsigned         retry_after;      /* seconds: Retry-After on the core's error page */
    const char      *cache_status;     /* NULL: "-" */
    pt_str           request_id;       /* X-Request-Id (len 0: none: refused early, or
                                        * request_id = false) */
    bool             request_id_made;  /* portico made it: the proxy sends it in place of
                                        * any the client sent */

    /* set by the content handler; the session calls them from the event loop */
    void           (*on_write)(pt_request *r);  /* queued output drained: send more */
    void           (*on_body)(pt_request *r);   /* request body bytes became available */
    void           (*on_abort)(pt_request *r);  /* client gone or timed out: release all */
};

#endif
