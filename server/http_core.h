/* Internal interfaces between the worker, connection and request-engine files. */
#ifndef PT_HTTP_CORE_H
#define PT_HTTP_CORE_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/http.h"
#include "portico/module.h"

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

/* conn.c */
void pt_conn_accepted(pt_listener *l, int fd, struct sockaddr *sa, socklen_t len);
void pt_conn_close(pt_conn *c);
void pt_conn_set_timer(pt_conn *c, uint32_t ms);
int  pt_conn_alloc_in(pt_conn *c);
pt_pool *pt_conn_pool(pt_conn *c);
void pt_conn_release_idle(pt_conn *c);   /* buffers back to the free lists */
int  pt_conn_grow_in(pt_conn *c, size_t size);
ssize_t pt_conn_read(pt_conn *c);          /* into in.last; >0 bytes, 0 EOF, -1 error, -2 EAGAIN */
int  pt_conn_flush(pt_conn *c);            /* PT_OK drained, PT_AGAIN, PT_ERROR */
void pt_conn_linger(pt_conn *c);
int  pt_out_add(pt_conn *c, const void *p, size_t n);
char *pt_out_small(pt_conn *c, size_t n);   /* scratch that lives until the queue drains */
void pt_conn_free_lists_trim(void);

/* http_request.c */
void pt_http_read_head(pt_conn *c);
void pt_http_conn_event(pt_conn *c, uint32_t events);
void pt_http_refuse(pt_conn *c, pt_request *r, unsigned status, const char *why);
void pt_http_request_done(pt_request *r);
void pt_http_abort(pt_request *r, const char *why);
void pt_http_init_worker(void);

/* http_body.c */
bool pt_http_body_too_slow(const pt_request *r);   /* under client_body_min_rate */

/* http_response.c */
int  pt_http_send_error(pt_request *r, unsigned status);
void pt_http_filters_init(void);


#endif
