#ifndef PT_H1_H
#define PT_H1_H

#include "portico/core.h"
#include "portico/h1-t.h"

void pt_h1_parser_init(pt_h1_parser *p, int kind, const pt_h1_limits *lim);

/* Parses the head that starts at buf; len bytes are available. Between calls the caller
 * may only append bytes (the earlier ones stay at the same address). Leading empty lines
 * (CRLF) before a request line are skipped, up to a few.
 * Returns PT_OK when the head is complete (h->len set), PT_AGAIN for more input, or
 * PT_ERROR with p->status and p->error set. Enforces p->lim itself. */
int pt_h1_parse_head(pt_h1_parser *p, const char *buf, size_t len, pt_h1_head *h);

/* Checks the semantics of a complete request head: Host, framing (Content-Length,
 * Transfer-Encoding), Connection, Expect, target form. On error returns PT_ERROR with
 * *status (400, 405 for CONNECT, 417, 501, 505) and *why (static text). */
int pt_h1_analyze_request(const pt_h1_head *h, pt_h1_req_info *ri, unsigned *status,
                          const char **why);

/* Same for an origin's response to a request made with req_method. Any error means the
 * client gets 502: returns PT_ERROR with *why. */
int pt_h1_analyze_response(const pt_h1_head *h, pt_method req_method, pt_h1_resp_info *ri,
                           const char **why);

void pt_h1_chunked_init(pt_h1_chunked *c);

/* Decodes chunked framing from [*pos, last).
 * PT_OK:    the slice (*data, *len) is a slice of chunk data inside the input; *pos is past it.
 * PT_AGAIN: everything given was consumed (*pos == last); call again with more.
 * PT_DONE:  the last chunk and the trailer section are consumed; *pos is just past the
 *           message (bytes after it belong to the next message).
 * PT_ERROR: c->error says why. */
int pt_h1_chunked_decode(pt_h1_chunked *c, const char **pos, const char *last,
                         const char **data, size_t *len);

/* The fields of a trailer section the decoder kept (c->keep, c->keep_len): slices of buf
 * in an array from pool (*out); their count (0: none, or no memory). */
struct pt_pool;
uint32_t pt_h1_trailer_fields(struct pt_pool *pool, const char *buf, size_t len,
                              pt_header **out);
/* May a trailer field of this name be passed on (RFC 9110 6.5.1, RFC 9113 8.2.2)? */
bool pt_h1_trailer_allowed(pt_str name);
/* The last chunk of a chunked body with these trailer fields ("0", the fields, the
 * empty line): its length, and writing it into buf (that many bytes). */
size_t pt_h1_last_chunk_len(const pt_header *hs, uint32_t n);
size_t pt_h1_last_chunk(char *buf, const pt_header *hs, uint32_t n);

/* First field named name (case-insensitive), or NULL. */
const pt_header *pt_h1_find(const pt_header *hs, uint32_t n, pt_str name);
/* Does a comma-separated list value contain token (case-insensitive, OWS-trimmed)? */
bool pt_h1_list_has(pt_str value, pt_str token);
/* Is name listed as a token by any Connection field of these headers? */
bool pt_h1_connection_lists(const pt_header *hs, uint32_t n, pt_str name);
/* The same question for many names of one message: the tokens gathered once. */
void pt_h1_conn_set_init(pt_h1_conn_set *s, const pt_header *hs, uint32_t n);
bool pt_h1_conn_set_has(const pt_h1_conn_set *s, pt_str name);

/* Request fields whose name contains '_' (the underscores_in_headers policy). */
#define PT_H1_US_DROP   0   /* every such field is removed */
#define PT_H1_US_PASS   1   /* kept, unless it is the twin of a field portico manages */
#define PT_H1_US_REJECT 2   /* the request is refused */

/* Applies policy to a complete request head (needed only when h->underscore). Removes the
 * fields the policy drops, keeping the others in order, and returns how many went; the
 * names of the first cap of them go to dropped; h->underscore then says whether a name
 * with '_' is left. REJECT removes nothing: -1 when some name has a '_' (the first in
 * dropped[0]), else 0. */
int pt_h1_underscore_fields(pt_h1_head *h, unsigned policy, pt_str *dropped, unsigned cap);
/* Does name, with '_' read as '-', name a request field portico manages (Content-Length,
 * Transfer-Encoding, Keep-Alive, Proxy-Connection, X-Forwarded-For/-Proto/-Host,
 * X-Real-IP)? */
bool pt_h1_managed_twin(pt_str name);
/* The same field name once '_' is read as '-' (case-insensitive)? */
bool pt_h1_name_dash_eq(pt_str a, pt_str b);

/* The routing form of a request path (the policy is in server/h1_path.c and the README):
 * decodes %XX once, removes ;params, merges "//", resolves "." and "..", and refuses what
 * origins would read differently (%00, '\\', invalid or overlong UTF-8, double encoding,
 * disguised dot-segments, ".." with an encoded slash, ".." above the root). out has room
 * for len bytes. PT_ERROR with *why (static text) for a 400. */
int pt_h1_normalize_path(const char *in, size_t len, char *out, size_t *out_len,
                         const char **why);

pt_method pt_h1_method_id(pt_str m);
const char *pt_h1_status_text(unsigned status);   /* "Not Found"; "" if unknown */

#endif
