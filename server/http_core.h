/* Internal interfaces of the core's layers: worker, connections and the accept pipeline,
 * the request engine, and the sessions that feed it. Modules do not include this. */
#ifndef PT_HTTP_CORE_H
#define PT_HTTP_CORE_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/xprt.h"

/* Standard size of a connection's input buffer; it grows only for configs whose
 * max_header_size does not fit. */
#define PT_CONN_BUF_SIZE   16384
#define PT_BODY_MIN_ROOM   4096     /* room for body bytes after a head */
#define PT_LINGER_MS       2000     /* reading and dropping input before a close */
#define PT_LINGER_BYTES    (1 << 20)
#define PT_DISCARD_MAX     (1 << 20) /* unread request body we drop to keep a connection */

/* worker.c */
extern pt_conf *pt_wconf;            /* the worker's configuration */
void pt_worker_conn_opened(pt_conn *c);
void pt_worker_conn_closed(pt_conn *c);
bool pt_worker_draining(void);
uint32_t pt_worker_drain_idle_ms(uint64_t idle_since);  /* 0: close now */

/* conn.c: connections, their buffers and output queue */
void pt_conn_accepted(pt_listener *l, int fd, struct sockaddr *sa, socklen_t len);
void pt_conn_close(pt_conn *c);
void pt_conn_set_timer(pt_conn *c, uint32_t ms);
void pt_conn_set_peer(pt_conn *c, const struct sockaddr *sa, socklen_t len);
int  pt_conn_alloc_in(pt_conn *c);
pt_pool *pt_conn_pool(pt_conn *c);
void pt_conn_release_pool(pt_conn *c);   /* reset and back to the free list */
void pt_conn_release_idle(pt_conn *c);   /* buffers back to the free lists */
/* Moves `in` to a bigger allocation; returns the old start (the caller relocates its
 * pointers with pt_conn_moved) or NULL. */
int  pt_conn_grow_in(pt_conn *c, size_t size, char **old_start, char **old_end);
ssize_t pt_conn_read(pt_conn *c);          /* into in.last; >0 bytes, 0 EOF, -1 error, -2 EAGAIN, -3 full */
int  pt_conn_flush(pt_conn *c);            /* PT_OK drained, PT_AGAIN, PT_ERROR */
int  pt_out_add(pt_conn *c, const void *p, size_t n);   /* PT_OK or PT_ERROR (no memory) */
char *pt_out_small(pt_conn *c, size_t n);  /* scratch that lives until the queue drains */
void pt_conn_free_lists_trim(void);
/* The end of the accept pipeline: session s (its state inline after the connection)
 * takes over. */
void pt_conn_start_session(pt_conn *c, const pt_session_ops *s);
/* The session for an ALPN protocol name (len 0: none was chosen: HTTP/1.1); NULL when
 * none speaks it. */
const pt_session_ops *pt_conn_session_for_alpn(const unsigned char *proto, unsigned len);

/* accept.c: stages that run before a session owns the connection */
void pt_accept_start(pt_conn *c);
void pt_accept_event(pt_conn *c, uint32_t events);
void pt_accept_closed(pt_conn *c);          /* the modules that took c are told */

/* http_request.c: the request engine */
/* A request of session s on c, in pool (h1: the connection's, reset between requests;
 * h2: the stream's own), with stream_size bytes of the session's own state after it
 * (the first stream_zero of them zeroed). */
pt_request *pt_http_request_new(pt_conn *c, pt_pool *pool, const pt_session_ops *s,
                                size_t stream_size, size_t stream_zero);
/* The session filled r->head (and the body state): check it, route it, run the phases
 * and the content handler. */
void pt_http_process(pt_request *r);
/* A request the core will not process: log why and answer with status (the session has
 * marked the connection for closing). */
void pt_http_refuse(pt_request *r, unsigned status, const char *why);
/* request_id.c: r->request_id from X-Request-Id, or a new one (r->request_id_made: the
 * proxy sends it in place of the client's field); the worker seeds the generator once. */
int  pt_http_request_id(pt_request *r);
void pt_request_id_seed(void);
/* The client is gone or the response cannot be completed: log why, drop the request. */
void pt_http_abort(pt_request *r, const char *why);
/* The request is over (answered or aborted): the log phase and the counters. */
void pt_http_request_log(pt_request *r);
/* The client took everything queued: resume the filters, then the handler's on_write. */
void pt_http_writable(pt_request *r);
void pt_http_init_worker(void);

/* http_body.c */
bool pt_http_body_too_slow(const pt_request *r);   /* under client_body_min_rate */
void pt_http_body_wait_begin(pt_request *r);       /* arms the body timer on PT_AGAIN */
void pt_http_body_wait_end(pt_request *r);
int  pt_http_body_fail(pt_request *r, unsigned status, const char *why);

/* http_response.c */
int  pt_http_send_error(pt_request *r, unsigned status);
void pt_http_filters_init(void);
bool pt_http_filters_active(const pt_request *r);

/* h1_session.c */
extern const pt_session_ops pt_h1_session;

/* h2_session.c (NULL ops without nghttp2) */
extern const pt_session_ops pt_h2_session;
/* A cleartext connection on an http2 listener starts with this (RFC 9113 3.4). */
#define PT_H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PT_H2_PREFACE_LEN 24

/* A request body's trailer section (field lines as the chunked decoder kept them): the
 * fields that may be passed on become r->req_trailers (http_body.c). */
void pt_http_req_trailers(pt_request *r, const char *buf, size_t len);

#endif
