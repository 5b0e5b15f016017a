/* HTTP/1.x message heads and bodies: types for the pure parser in server/h1_*.c.
 * The parser does no I/O and allocates nothing: bytes in, positions and verdicts out. */
#ifndef PT_H1_T_H
#define PT_H1_T_H

#include <stdbool.h>
#include <stdint.h>
#include "portico/str-t.h"

typedef struct pt_header {
    pt_str name;     /* as received (case preserved), never empty */
    pt_str value;    /* leading/trailing OWS removed; obs-text bytes kept verbatim */
} pt_header;

typedef enum pt_method {
    PT_M_OTHER = 0,  /* a valid token we do not know: passed through to origins */
    PT_M_GET,
    PT_M_HEAD,
    PT_M_POST,
    PT_M_PUT,
    PT_M_DELETE,
    PT_M_CONNECT,
    PT_M_OPTIONS,
    PT_M_TRACE,
    PT_M_PATCH
} pt_method;

#define PT_H1_REQUEST  0
#define PT_H1_RESPONSE 1

typedef struct pt_h1_limits {
    size_t   max_head;     /* request/status line + header section incl. CRLFs; beyond: 431 */
    size_t   max_target;   /* request-target bytes; beyond: 414 */
    uint32_t max_headers;  /* header field count; beyond: 431 */
} pt_h1_limits;

/* A parsed head. Strings point into the caller's buffer. */
typedef struct pt_h1_head {
    /* request line */
    pt_str     method;
    pt_method  method_id;
    pt_str     target;
    /* status line */
    unsigned   status;      /* 100..599 */
    pt_str     reason;
    /* both */
    unsigned   version;     /* 10 or 11 */
    pt_header *headers;     /* caller's array of max_headers entries */
    uint32_t   nheaders;
    uint32_t   max_headers;
    size_t     len;         /* bytes of the head incl. the final empty line (when complete) */
    bool       underscore;  /* (requests) some field name contains '_': the request engine's field
                             * policy needs a pass over the fields only then */
} pt_h1_head;

/* Incremental head parser. State is offsets only, so it resumes wherever input stopped
 * and gives the same verdict for any split of the same bytes. */
typedef struct pt_h1_parser {
    uint8_t      kind;       /* PT_H1_REQUEST or PT_H1_RESPONSE */
    uint8_t      state;
    uint8_t      leading_crlf;
    size_t       off;        /* next byte to examine, from the start of the head */
    size_t       mark;       /* start of the token being parsed */
    size_t       name_start, name_end, value_start, value_end;
    pt_h1_limits lim;
    /* on PT_ERROR: */
    unsigned     status;     /* request: 400/414/431/501/505; response: 502 */
    const char  *error;      /* static text for the log: "bare LF in header field" */
} pt_h1_parser;

/* What the framing and connection-management fields of a request mean (RFC 9112 §6, §9). */
typedef struct pt_h1_req_info {
    pt_method method;
    unsigned  version;         /* 10 or 11 */
    pt_str    path;            /* absolute path of the target (also from absolute-form), no query */
    pt_str    query;           /* after '?', without it; data == NULL when there is no '?' */
    pt_str    authority;       /* host[:port] from absolute-form, else the Host field */
    pt_str    host;            /* authority without port; IPv6 keeps its brackets; not lower-cased */
    int64_t   content_length;  /* -1: no Content-Length */
    bool      chunked;         /* Transfer-Encoding: chunked */
    bool      keepalive;       /* the connection may carry another request after this one */
    bool      expect_continue; /* Expect: 100-continue on HTTP/1.1 */
    bool      upgrade;         /* Upgrade field present and Connection lists "upgrade" */
    bool      absolute_form;   /* target was absolute-form (the Host field is overridden) */
    bool      asterisk_form;   /* OPTIONS * */
} pt_h1_req_info;

typedef enum pt_body_kind {
    PT_BODY_NONE = 0,
    PT_BODY_LENGTH,            /* content_length bytes */
    PT_BODY_CHUNKED,
    PT_BODY_CLOSE              /* until the origin closes (responses only) */
} pt_body_kind;

typedef struct pt_h1_resp_info {
    unsigned     status;
    unsigned     version;
    pt_body_kind body;
    int64_t      content_length;  /* PT_BODY_LENGTH: the length; else the field's value or -1 */
    bool         keepalive;       /* the origin connection may be reused after this response */
    bool         upgrade;         /* 101 Switching Protocols */
} pt_h1_resp_info;

/* Chunked transfer-coding decoder (RFC 9112 §7.1). Extensions are validated and dropped,
 * trailer fields are validated and, unless the caller keeps them (keep), dropped; they are
 * never merged into the header section. */
typedef struct pt_h1_chunked {
    uint8_t     state;
    uint8_t     digits;        /* hex digits seen in the current size */
    uint64_t    size;          /* current chunk size being parsed */
    uint64_t    remaining;     /* data bytes left in the current chunk */
    size_t      ext_len;       /* bytes of extensions in the current size line */
    size_t      trailer_len;   /* bytes of trailer section so far */
    uint64_t    total;         /* decoded data bytes so far */
    const char *error;         /* on PT_ERROR */
    char       *keep;          /* the caller's PT_H1_MAX_TRAILER bytes: the trailer
                                * section's field lines are copied there (NULL: dropped) */
    size_t      keep_len;
} pt_h1_chunked;

#define PT_H1_MAX_CHUNK_EXT 4096   /* bytes of chunk extensions per size line */
#define PT_H1_MAX_TRAILER   8192   /* bytes of trailer section */

/* The tokens the Connection fields of a message list, gathered once so that asking
 * whether a field is hop-by-hop by them costs a few compares per field, not a scan of
 * the message's fields (pt_h1_conn_set_init, pt_h1_conn_set_has). */
#define PT_H1_CONN_TOKENS 8
typedef struct pt_h1_conn_set {
    pt_str          tok[PT_H1_CONN_TOKENS];
    unsigned        n;
    bool            overflow;       /* more than that: asked of the fields themselves */
    const pt_header *hs;
    uint32_t        nh;
} pt_h1_conn_set;

#endif
