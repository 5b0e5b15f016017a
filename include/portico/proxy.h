/* What other modules may ask of the proxy module (modules/proxy.c): the origin behind a
 * route, and the request it would send there for a client that is not there (the cache's
 * background refreshes), built by the same rules as a client's. */
#ifndef PT_PROXY_H
#define PT_PROXY_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/upstream-t.h"

/* The upstream group route rt proxies to, or NULL when it does not proxy. */
const pt_upstream *pt_proxy_route_upstream(const pt_route *rt);

/* Fills q for a request with no client behind it on route rt: method, target (origin-form)
 * and authority (the Host the client's request had) as given, the end-to-end fields hs
 * (hop-by-hop fields and the ones the proxy generates are dropped, the route's
 * set_request_headers applied), Host by the route's preserve_host and set_request_headers.
 * No X-Forwarded-* (there is no client). Strings must outlive the exchange (pool). */
int pt_proxy_detached_request(const pt_route *rt, pt_pool *pool, pt_upx_req *q, pt_str method,
                              pt_str target, pt_str authority, const pt_header *hs,
                              uint32_t nh);

/* The origin's response fields hs as the route passes them to a client (hop-by-hop out,
 * hide_response_headers and set_response_headers applied), into a pool array. */
int pt_proxy_response_fields(const pt_route *rt, pt_pool *pool, const pt_header *hs,
                             uint32_t nh, pt_header **out, uint32_t *nout);

#endif
