/* The HTTP/1 session: one connection, one request at a time (pipelined ones wait in the
 * input buffer). server/h1_session.c runs the connection (heads, keep-alive, pipelining,
 * timeouts, lingering close); server/h1_message.c the message bodies and response heads. */
#ifndef PT_H1_SESSION_H
#define PT_H1_SESSION_H

#include "portico/h1.h"
#include "http_core.h"

/* Connection states:
 *   IDLE   -- keep-alive, no request bytes; buffers released; keepalive timer
 *   HEAD   -- request bytes arriving; header timer (from the first byte)
 *   ACTIVE -- a request runs: the content handler drives it through pt_http_* calls
 *   LINGER -- response sent, write side shut, dropping input until EOF or timeout */
typedef enum h1_state {
    H1_IDLE = 0,
    H1_HEAD,
    H1_ACTIVE,
    H1_LINGER
} h1_state;

/* Per connection: inline after the pt_conn, so an idle connection costs one allocation. */
typedef struct h1_session {
    pt_conn    *c;
    h1_state    state;
    uint32_t    head_started;    /* monotonic ms (low 32 bits) when the head began: the
                                  * connection's start, or a keep-alive request's first
                                  * byte (client_header_min_rate counts from it) */
    pt_request *req;             /* the request being read or served */
    uint64_t    requests;        /* served on this connection */
    uint64_t    linger_left;     /* bytes still dropped before closing */
    pt_defer    step;            /* finish the request outside the handlers' stack */
} h1_session;

/* Per request, in the request's pool (not in the idle footprint). */
typedef struct h1_stream {
    pt_h1_head     h;
    pt_h1_req_info info;
    char          *body_base;    /* where body bytes start in the connection buffer */
    uint64_t       body_remaining;   /* Content-Length body: bytes still to read */
    pt_h1_chunked  chunked;
    uint64_t       sent_at_start;    /* c->out.sent when the request began */
    bool           resp_chunked;
    bool           shut_wr;      /* tunnel: half-close once output drains */
    pt_h1_parser   parser;       /* last: set up by its init, not zeroed */
} h1_stream;

#define h1_of(c)      ((h1_session *) (c)->session)
#define h1_stream_of(r) ((h1_stream *) (r)->stream)

/* h1_session.c */
int     pt_h1_grow_in(h1_session *s, size_t size);   /* moves the request's strings too */

/* h1_message.c: the request side of the session ops */
int     pt_h1_send_head(pt_request *r);
int     pt_h1_send_body(pt_request *r, const char *data, size_t len, bool last);
bool    pt_h1_splice_ok(pt_request *r);
ssize_t pt_h1_splice_body(pt_request *r, int pipe_rd, size_t len);
int     pt_h1_read_body(pt_request *r, const char **data, size_t *len);
void    pt_h1_tunnel(pt_request *r);
void    pt_h1_tunnel_shutdown(pt_request *r);

#endif
