/* The proxy module's internal types (modules/proxy.c, modules/proxy_head.c). */
#ifndef PT_MOD_PROXY_H
#define PT_MOD_PROXY_H

#include <sys/uio.h>

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/upstream.h"

extern pt_module pt_proxy_module;

typedef struct proxy_main_conf {
    pt_upstream_list upstreams;
} proxy_main_conf;

typedef struct proxy_route_conf {
    const char        *upstream_name;     /* NULL: this route does not proxy */
    config_setting_t  *upstream_setting;  /* for errors in conf_check */
    const pt_upstream *up;
    bool               preserve_host;
    bool               request_buffering;
    uint32_t           request_buffer_size;
    pt_header_list     set_request;
    pt_header_list     set_response;
    pt_str_list        hide_response;
} proxy_route_conf;

typedef enum proxy_state {
    PX_CONNECT = 0,   /* connecting (or picking a server) */
    PX_EXCHANGE,      /* sending the request, reading the response head */
    PX_BODY,          /* relaying the response body */
    PX_TUNNEL,        /* after 101: bytes both ways */
    PX_DONE
} proxy_state;

#define PX_UQ 6

typedef struct proxy_ctx {
    pt_request             *r;
    const proxy_route_conf *rc;
    const pt_upstream      *up;
    pt_upconn              *uc;
    proxy_state             state;
    uint64_t                tried;          /* servers tried, by index bit */
    unsigned                connects;       /* connection attempts to distinct servers */
    bool                    reused;         /* uc came from the pool */
    bool                    stale_retried;
    bool                    last_timeout;   /* the last connect failure was a timeout */

    /* request to the origin */
    char                   *head;
    size_t                  head_len;
    struct iovec            uq[PX_UQ];      /* queued for the origin socket */
    unsigned                uq_first, uq_n;
    size_t                  uq_pending;
    char                    chunk_line[24]; /* re-chunking the client's chunked body */
    bool                    rechunk;
    bool                    body_started;   /* client body bytes were consumed */
    bool                    req_sent;       /* head and whole body written */
    bool                    write_failed;
    bool                    expect_wait;    /* waiting for the origin's 100 Continue */
    pt_timer                expect_timer;

    /* response from the origin */
    pt_h1_parser            parser;
    pt_h1_head              rhead;
    pt_h1_resp_info         ri;
    bool                    resp_any;       /* a response byte arrived */
    bool                    head_done;
    uint64_t                remaining;      /* PT_BODY_LENGTH */
    pt_h1_chunked           chunked;
    bool                    extra_bytes;    /* bytes after the response: never reuse */

    /* tunnel */
    bool                    cl_eof;         /* client -> origin finished */
    bool                    up_eof;         /* origin -> client finished */
    const char             *tslice;         /* client bytes not yet written to the origin */
    size_t                  tslice_len;

    /* zero-copy relay of a Content-Length body: origin socket -> pipe -> client socket */
    int                     pipe_rd, pipe_wr;
    size_t                  pipe_len;       /* bytes in the pipe, not yet at the client */
    bool                    have_pipe;
    bool                    no_splice;

    uint64_t                t_start;
    pt_header               rheaders[128];   /* last: not zeroed per request */
} proxy_ctx;

/* proxy_head.c */
int  proxy_build_request(proxy_ctx *px);
int  proxy_copy_response_headers(proxy_ctx *px);

#endif
