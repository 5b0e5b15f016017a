/* The request API modules use: response heads and bodies, the request body, finishing. */
#ifndef PT_HTTP_H
#define PT_HTTP_H

#include "portico/core.h"
#include "portico/http-t.h"
#include "portico/module-t.h"

/* Request header fields (r->head), editable in the phases: the request to an origin is
 * built from them. Names match case-insensitively; values are not copied (pass pool or
 * config strings). set replaces every field of that name (adds one if there was none). */
pt_header *pt_http_req_header(pt_request *r, pt_str name);          /* first, or NULL */
int  pt_http_req_header_add(pt_request *r, pt_str name, pt_str value);
int  pt_http_req_header_set(pt_request *r, pt_str name, pt_str value);
void pt_http_req_header_del(pt_request *r, pt_str name);

/* Response filters run only for the requests that switch them on (a route or module
 * that wants them, from a phase or the content handler, before the head is sent), so a
 * response no filter touches keeps the zero-copy path. */
int  pt_http_filter_on(pt_request *r, const pt_module *m);
/* And off again, from its own header filter (a response it turns out not to touch), so
 * that its body filter is not called and the body may still be spliced. */
void pt_http_filter_off(pt_request *r, const pt_module *m);

/* Response header fields (copied into the request pool). */
int  pt_http_add_header(pt_request *r, pt_str name, pt_str value);
void pt_http_del_header(pt_request *r, pt_str name);                 /* every field so named */
pt_header *pt_http_resp_header(pt_request *r, pt_str name);         /* first, or NULL */

/* Runs the header filters and queues the response head. Before calling, set r->status and
 * r->resp_length (-1 if unknown: chunked for HTTP/1.1 clients, close-delimited for 1.0). */
int  pt_http_send_header(pt_request *r);

/* Passes body data through the body filters to the client. data must stay valid and
 * unchanged until on_write runs (or the call returned PT_OK).
 * PT_OK: everything is on the wire; PT_AGAIN: queued, wait for on_write before sending
 * more; PT_ERROR: the client connection failed (the core aborts the request). */
int  pt_http_send_body(pt_request *r, const char *data, size_t len, bool last);
/* For body filters: hands data to the next filter switched on after self (or to the
 * session). A filter must take all it is given: when the next one says PT_AGAIN it keeps
 * what it still has to emit and returns PT_AGAIN; once the client has taken everything
 * the core calls the filters again with (NULL, 0, false) to go on, before the content
 * handler's on_write. */
int  pt_http_body_next(pt_request *r, const pt_module *self, const char *data, size_t len,
                       bool last);

/* Zero-copy relay. True when the response body may bypass the filters and the queue:
 * the head is sent and written, the body is framed by Content-Length, no body filter. */
bool    pt_http_splice_ok(pt_request *r);
/* Response output of r the client has not taken yet: wait for on_write before more. */
bool    pt_http_output_pending(const pt_request *r);
/* Some of r's body (or its end) is already here, unread. */
bool    pt_http_input_pending(const pt_request *r);
/* Moves up to len bytes from the read end of a pipe to the client socket (splice(2)).
 * Returns the bytes moved, PT_AGAIN (the client is full: on_write runs when it can take
 * more) or PT_ERROR (the client connection failed). */
ssize_t pt_http_splice_body(pt_request *r, int pipe_rd, size_t len);

/* A complete response with a small body (copied), then finalises. */
int  pt_http_respond(pt_request *r, unsigned status, pt_str content_type, pt_str body);

/* The content handler is finished with r.
 * PT_OK: the response was sent completely (via send_header/send_body with last).
 * status >= 100: nothing was sent yet: the core answers with its error page.
 * PT_ERROR: something failed midway: the client connection is closed. */
void pt_http_finalize(pt_request *r, int rc);

/* The request body, decoded (chunked framing removed), from the connection's buffer.
 * PT_OK: a slice in (*data, *len) (valid until the next call; the caller has consumed it by
 * the next call); PT_AGAIN: wait for on_body; PT_DONE: no more body; PT_ERROR: the body
 * is invalid or too slow or too big: r->status holds 400, 408 or 413. */
int  pt_http_read_body(pt_request *r, const char **data, size_t *len);
/* Gives back the part of the last slice that could not be used yet (back-pressure): the
 * next read_body returns exactly (data, n) again. */
void pt_http_unread_body(pt_request *r, const char *data, size_t n);

/* Reads the whole request body into memory (request buffering) before the handler goes
 * on, when it is at most max bytes. PT_OK: done at once (the body was already here, or
 * there is none); PT_AGAIN: reading: done(r, rc) runs from the event loop when the body
 * is in memory (rc PT_OK) or failed (rc PT_ERROR, r->status 400/408/413); PT_DECLINED:
 * Content-Length says it is bigger than max: nothing was read. A chunked body found to be
 * bigger than max while reading ends the buffering too (PT_OK, r->body_buffered false):
 * read_body then returns what was held and goes on reading from the client.
 * Once r->body_buffered, read_body returns the body as one slice and
 * pt_http_body_rewind starts it over (a retry can send it again). */
int  pt_http_buffer_body(pt_request *r, size_t max, void (*done)(pt_request *r, int rc));
/* Holds the first size bytes of the request body (all of it when shorter) in memory
 * without consuming them, for a module that inspects a prefix (rules): read_body hands
 * them out first, then the rest from the client, and buffering may go on after them.
 * Only the missing bytes are waited for. PT_OK: held in (r->body_buf, r->body_buf_len),
 * r->body_buffered when that is the whole body (also when there is no body); PT_AGAIN:
 * done(r, rc) runs from the event loop once held (rc PT_OK) or failed (PT_ERROR,
 * r->status 400/408/413); PT_DECLINED: the body was read by someone already. */
int  pt_http_peek_body(pt_request *r, size_t size, void (*done)(pt_request *r, int rc));
bool pt_http_body_rewind(pt_request *r);

/* After sending a 101 response: the connection becomes a byte tunnel. read_body then
 * returns raw client bytes (PT_DONE at the client's EOF), send_body writes raw bytes,
 * and on_body/on_write fire on readiness. Finalizing closes the connection. */
void pt_http_tunnel(pt_request *r);
/* Half-closes the client connection's write side once queued output is written. */
void pt_http_tunnel_shutdown(pt_request *r);

/* Does the client still owe request body bytes (or sent an invalid body)? */
bool pt_http_body_pending(pt_request *r);
/* Reads and drops the rest of the request body: PT_OK when all of it is read, PT_AGAIN
 * (wait for on_body), PT_ERROR (r->status: 400, 408, 413). Validates the framing. */
int  pt_http_discard_body(pt_request *r);

/* Resumes the phase engine after a handler returned PT_AGAIN. */
void pt_http_run_phases(pt_request *r);

/* Refusals by modules (access lists, rules, limits): logs the core's refusal line at info
 * ("refused request from ADDR: 403 Forbidden (why)"), counts it, records why for the
 * access log (why is copied), and returns status for the phase handler to return. */
int  pt_http_deny(pt_request *r, unsigned status, const char *why);
/* A field the error page for this request carries (Retry-After for a 429, Allow for a
 * 405); values are not copied. */
int  pt_http_error_header(pt_request *r, pt_str name, pt_str value);

/* The status line text and error page of the core. */
const char *pt_http_status_line(unsigned status);   /* "404 Not Found" */
/* The Date and Server values generated responses carry (Server empty: server_tokens
 * "off", no Server field). */
pt_str pt_http_date(void);
pt_str pt_http_server(void);

#endif
