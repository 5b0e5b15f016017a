/* The proxy module's internal types (modules/proxy.c, modules/proxy_head.c). */
#ifndef PT_MOD_PROXY_H
#define PT_MOD_PROXY_H

#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/upstream.h"

extern pt_module pt_proxy_module;

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

/* Per request: the exchange with the origin, and how its response is relayed. */
typedef struct proxy_ctx {
    pt_request             *r;
    const proxy_route_conf *rc;
    bool                    started;        /* the exchange runs (the body was read, if buffered) */
    bool                    done;

    /* tunnel (after 101) */
    bool                    tunnel;
    bool                    cl_eof;         /* client -> origin finished */
    bool                    up_eof;         /* origin -> client finished */
    const char             *tslice;         /* client bytes not yet written to the origin */
    size_t                  tslice_len;

    /* zero-copy relay of a Content-Length body: origin -> pipe -> client */
    int                     pipe[2];
    size_t                  pipe_len;       /* bytes in the pipe, not yet at the client */
    bool                    have_pipe;
    bool                    no_splice;

    pt_upx                  x;              /* last: its response-header array is large */
} proxy_ctx;

/* proxy_head.c */
int  proxy_build_request(proxy_ctx *px);
int  proxy_copy_response_headers(proxy_ctx *px);

#endif
