/* The module API. A module is one struct: its name, its config keys per scope, its
 * lifecycle hooks, its connection hooks and its per-request handlers. The core knows
 * modules only through the list in server/modules.c and runs them in that list's order
 * unless an order is given.
 *
 * Connections: the accept pipeline (server/accept.c) calls each module's accept hook once
 * the client's address is known (after the PROXY protocol stage), before a protocol owns
 * the connection; conn_closed runs when a connection a hook took (PT_OK) closes.
 *
 * Request processing:
 *   head parsed -> PT_PHASE_REQUEST (before routing) -> routed -> PT_PHASE_HEADERS ->
 *   PT_PHASE_ACCESS -> content (the route's content module) -> response header filters ->
 *   body filters -> log (always, also after errors and early answers).
 * In PT_PHASE_REQUEST, r->route is conf->filters_global (the route-shaped scope of
 * filters.global), so a filter reads its global configuration with pt_route_conf() as it
 * reads a route's in the later phases, where r->route is the matched route (NULL: none).
 * Phase handlers return PT_DECLINED or PT_OK (go on), PT_DONE (the handler answered:
 * skip to the response), PT_AGAIN (suspended: the module resumes with pt_http_run_phases),
 * a status code >= 100 (the core answers with that status), or PT_ERROR (500). */
#ifndef PT_MODULE_T_H
#define PT_MODULE_T_H

#include <stdbool.h>
#include <stddef.h>
#include "portico/conf-t.h"
#include "portico/http-t.h"
#include "portico/metrics-t.h"

typedef struct pt_cycle pt_cycle;

typedef enum pt_phase {
    PT_PHASE_REQUEST = 0,  /* head parsed, not routed: global filters (ACL, rules, limits) */
    PT_PHASE_HEADERS,      /* routed: normalise, tag */
    PT_PHASE_ACCESS,       /* may refuse (ACL, auth, rate limits) */
    PT_PHASE_PRECONTENT,   /* may answer instead of the content module (cache hit) */
    PT_PHASE_MAX
} pt_phase;

typedef int  (*pt_phase_fn)(pt_request *r);
/* Runs before the response head is serialised: may edit r->status and r->resp_headers. */
typedef int  (*pt_header_filter_fn)(pt_request *r);
/* Sees every response body slice in order; data stays valid until the request's next
 * on_write. Calls pt_http_body_next() to pass data on (maybe transformed). */
typedef int  (*pt_body_filter_fn)(pt_request *r, const char *data, size_t len, bool last);

struct pt_module {
    const char        *name;
    unsigned           index;            /* position in the list; set by the core */

    /* configuration */
    const pt_conf_key *keys;             /* NULL-name-terminated; each with its scope */
    size_t             main_conf_size;   /* zeroed structs the core allocates per scope */
    size_t             listener_conf_size;
    size_t             route_conf_size;
    int  (*main_conf_init)(pt_conf_ctx *cx, void *mconf);          /* defaults, before keys */
    int  (*route_conf_init)(pt_conf_ctx *cx, pt_route *rt, void *rconf);
    int  (*listener_conf_init)(pt_conf_ctx *cx, pt_listener_conf *l, void *lconf);
    /* After every key of the file is parsed: cross references, compiled forms, claiming
     * routes (set rt->content), declaring shared-memory zones. Errors with file:line. */
    int  (*conf_check)(pt_conf_ctx *cx, pt_conf *conf);

    /* connections (accept pipeline). accept: PT_OK (taken: conn_closed will run),
     * PT_DECLINED (not concerned), PT_ERROR (refused: the connection is closed; the
     * module has logged why) */
    int  (*accept)(pt_conn *c);
    void (*conn_closed)(pt_conn *c);

    /* lifecycle */
    int  (*master_init)(pt_cycle *cy);   /* in the master, after the config is loaded */
    int  (*worker_init)(pt_cycle *cy);   /* in each worker after fork, before accepting */
    void (*worker_exit)(pt_cycle *cy);   /* worker leaving (flush buffers) */
    void (*reopen)(pt_cycle *cy);        /* SIGUSR1: reopen files (master and workers) */
    /* in the master, when a worker of generation cy has exited, however it ended: what it
     * held in shared memory under its stats slot can be taken back */
    void (*worker_gone)(pt_cycle *cy, int slot);

    /* requests */
    pt_phase_fn         phase[PT_PHASE_MAX];
    /* Is anything of the module's configured for its phase handlers (conf: the
     * generation a worker serves)? false leaves them out of that worker's chain, so a
     * module nobody configured costs a request nothing. NULL: always in. */
    bool (*phase_used)(const pt_conf *conf);
    pt_phase_fn         content;         /* called when a route's content is this module */
    int                 header_filter_order;   /* lower runs first */
    pt_header_filter_fn header_filter;
    int                 body_filter_order;
    pt_body_filter_fn   body_filter;
    void              (*log)(pt_request *r);

    /* metrics (metrics-t.h): the counter families the module counts into with
     * pt_metric_series/pt_metric_add (NULL-terminated; registered at start, so /metrics
     * knows them), and a collector called at each scrape for values the module keeps
     * elsewhere (gauges of its own shared zone). Either may be NULL. */
    const pt_metric_family *const *metric_families;
    void (*metrics_collect)(pt_metrics_out *o);
    /* /status: the module's summary (hit counts, sizes) as named numbers; may be NULL */
    void (*status_collect)(pt_status_out *o);
};

#endif
