/* The HTTP/2 session (RFC 9113) for clients, on libnghttp2's callback API.
 *   server/h2_session.c  the connection: bytes in (nghttp2_session_mem_recv) and frames
 *                        out (an output buffer plus the streams' own body bytes, handed
 *                        to the connection's queue without a copy), settings, floods and
 *                        their limits, GOAWAY on drain and on abuse, the idle timeout
 *   server/h2_stream.c   each stream as a pt_request: the request head from the header
 *                        block, the body with flow control, the response head and body
 *                        (the request side of pt_session_ops)
 * Every stream runs through the same engine and modules as an HTTP/1 request; nothing
 * above the session knows it is h2. */
#ifndef PT_H2_SESSION_H
#define PT_H2_SESSION_H

#include <nghttp2/nghttp2.h>

#include "http_core.h"

#define H2_OUTBUF 16384          /* frames other than DATA payloads, per connection */

typedef struct h2_stream h2_stream;

typedef struct h2_session {
    pt_conn          *c;
    nghttp2_session  *ng;
    const pt_h2_limits *lim;
    pt_defer          step;          /* runs the session outside any handler's stack */
    pt_timer          resume;        /* a run cut short goes on in the next iteration */
    h2_stream        *streams;       /* every stream with a request, newest first */
    h2_stream        *ready;         /* header block complete: to start */
    h2_stream        *ready_tail;
    unsigned          nstreams;
    unsigned          nopen;         /* of them, not closed by nghttp2 yet: what the
                                      * concurrency limit counts */
    bool              settings_sent; /* our SETTINGS frame went out (with the limit
                                      * clients are told, not nghttp2's) */
    bool              running;       /* in h2_run: re-entrant kicks only flag `again` */
    bool              again;
    bool              pumping;
    bool              failed;        /* the connection failed: close from the step */
    bool              closing;       /* GOAWAY for abuse or error sent: no more input */
    bool              goaway;        /* graceful GOAWAY sent (drain) */
    bool              lingering;     /* output done, write side shut: dropping input */
    const char       *close_why;
    /* flood accounting over lim->flood_window_ms */
    uint64_t          window_start;
    uint32_t          resets;
    uint32_t          control;
    uint32_t          empty;
    uint32_t          continuations; /* CONTINUATION frames in the current header block */
    size_t            outlen;        /* bytes of outbuf handed to the connection's queue */
    uint64_t          drains;        /* times the connection's queue drained */
    char             *outbuf;        /* H2_OUTBUF bytes while output is under way; an idle
                                      * connection gives it back to a per-worker list */
} h2_session;

struct h2_stream {
    h2_session  *s;
    pt_request  *r;
    int32_t      id;
    h2_stream   *next, *prev;        /* s->streams */
    h2_stream   *next_ready;
    /* the request head as the header block brings it */
    pt_str       method, scheme, authority, path;
    pt_header   *hdrs;
    uint32_t     nhdrs, hcap;
    size_t       hsize;              /* RFC 9113 6.5.2 size of the fields so far */
    size_t       cookie_len;         /* bytes of all cookie values */
    uint32_t     ncookies;
    const char  *refuse;             /* why the head is refused (431), once complete */
    uint32_t     tcap;               /* room in r->req_trailers */
    /* request body: what DATA frames brought, not yet consumed (the flow-control window
     * grows back only by what the module has taken, so this never exceeds it) */
    char        *body;
    size_t       body_cap, body_len;
    size_t       body_given;         /* handed out by the last read_body, consumed at the next */
    bool         body_eof;
    bool         body_new;           /* bytes or the end arrived: tell the reader */
    bool         discard;            /* the request does not read its body any more */
    /* response body: slices the producer handed to send_body, framed without a copy */
    struct iovec *out;
    unsigned     nout, outcap, outfirst;
    size_t       out_len;
    bool         out_last;           /* END_STREAM after the slices */
    bool         deferred;           /* the data provider said DEFERRED: resume on more */
    bool         want_write;         /* send_body said PT_AGAIN: on_write once drained */
    bool         head_only;          /* HEADERS carried END_STREAM: no data provider */
    bool         started;            /* handed to the engine */
    bool         closed;             /* nghttp2 closed the stream */
    bool         listed_done;
    uint32_t     close_code;
    uint64_t     bytes;              /* frames of this stream on the wire, for the log */
    uint64_t     queued_at;          /* s->drains + 1 when its payload was last queued */
    pt_timer     timer;              /* body (408) or send deadline */
};

/* h2_session.c */
void h2_kick(h2_session *s);                 /* frames to send: written from the step */
void h2_schedule(h2_session *s);             /* run the session from the step */
void h2_refused_stream(h2_session *s, int32_t id, const char *why);
void h2_calm(h2_session *s, const char *why);     /* GOAWAY ENHANCE_YOUR_CALM, close */

/* h2_stream.c */
h2_stream *h2_stream_new(h2_session *s, int32_t id);
/* A field of the request's trailer section (HEADERS after the body): kept in
 * r->req_trailers when it may be passed on, within the head's limits. */
/* nghttp2 closed the stream (or the connection goes): it no longer counts as open. */
void h2_stream_closed(h2_stream *st);
int  h2_stream_trailer(h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                       size_t vlen);
int  h2_stream_header(h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen);
void h2_stream_start(h2_stream *st);         /* the head is complete: run the request */
int  h2_stream_data(h2_stream *st, const uint8_t *data, size_t len);
void h2_stream_body_end(h2_stream *st);
void h2_stream_on_body(h2_stream *st);       /* new body bytes or the end: tell the reader */
void h2_stream_release(h2_stream *st);       /* closed: log and free */
void h2_stream_drop_body(h2_stream *st);     /* consume what is held, drop what comes */
ssize_t h2_stream_read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *user);
/* the request side of the session ops */
int     h2_send_head(pt_request *r);
int     h2_send_body(pt_request *r, const char *data, size_t len, bool last);
int     h2_read_body(pt_request *r, const char **data, size_t *len);
bool    h2_output_pending(const pt_request *r);
bool    h2_input_pending(const pt_request *r);
void    h2_body_timer(pt_request *r, uint32_t ms);
void    h2_tunnel(pt_request *r);
void    h2_finish(pt_request *r);
void    h2_abort(pt_request *r);
int  h2_stream_send_data(h2_stream *st, nghttp2_frame *frame, const uint8_t *framehd,
                         size_t len);

#endif
