/* The core's metrics: its families, what the request engine and the upstreams count
 * into the registry, and the collector that reads the rest at scrape time from where it
 * already is (pt_stats, the "upstreams" zone), so counting costs the hot path nothing
 * more than it did. */
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/counters-t.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/http.h"
#include "portico/metrics.h"
#include "portico/shm.h"
#include "portico/upstream.h"
#include "http_core.h"

/* ---- families ---- */

/* response times: 1 ms .. 10 s, in microseconds */
static const uint64_t time_bounds[] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000
};

#define COUNTER(var, n, h) \
    static const pt_metric_family var = { n, h, PT_METRIC_COUNTER, 0, NULL, 0 }
#define GAUGE(var, n, h) \
    static const pt_metric_family var = { n, h, PT_METRIC_GAUGE, 0, NULL, 0 }

COUNTER(f_requests, "portico_http_requests_total",
        "Requests answered, by listener, route, method and status class.");
COUNTER(f_refused, "portico_http_refused_requests_total",
        "Requests refused by the parser or the limits (also in portico_http_requests_total).");
COUNTER(f_bytes_in, "portico_http_received_bytes_total", "Bytes received from clients.");
COUNTER(f_bytes_out, "portico_http_sent_bytes_total", "Bytes sent to clients.");
COUNTER(f_accepted, "portico_connections_accepted_total", "Client connections accepted.");
GAUGE(f_conns, "portico_connections",
      "Open client connections: active (a request in progress) or idle (between requests).");
GAUGE(f_workers, "portico_workers", "Worker processes running, by configuration generation.");
COUNTER(f_restarts, "portico_worker_restarts_total",
        "Workers that exited unexpectedly and were replaced.");
COUNTER(f_reloads, "portico_reloads_total", "Configuration reloads, by result.");
GAUGE(f_reload_ok, "portico_reload_last_success",
      "1 when the last reload succeeded, 0 when it failed (1 before any reload).");
GAUGE(f_generation, "portico_config_generation",
      "The configuration generation serving (1 at start, +1 per successful reload).");
static const pt_metric_family f_start = { "portico_start_time_seconds",
    "When the master started, in seconds since the epoch.", PT_METRIC_GAUGE, 1e-3, NULL, 0 };
GAUGE(f_info, "portico_build_info", "The version portico was built as.");
COUNTER(f_dropped, "portico_metrics_series_dropped_total",
        "Series not counted because the metrics registry was full.");

COUNTER(f_up_requests, "portico_upstream_requests_total",
        "Requests sent to an upstream server (health probes not counted), all workers.");
COUNTER(f_up_failures, "portico_upstream_failures_total",
        "Failed attempts on an upstream server: connect errors, timeouts, broken or "
        "fail_on_status responses.");
COUNTER(f_up_retries, "portico_upstream_retries_total",
        "Requests tried on another server after this one failed them.");
static const pt_metric_family f_up_time = { "portico_upstream_response_time_seconds",
    "Time from the start of an attempt to the response head.", PT_METRIC_HISTOGRAM, 1e-6,
    time_bounds, pt_nelems(time_bounds) };
GAUGE(f_up_state, "portico_upstream_server_state",
      "1 for the state the server is in (up, slow_start, down, draining), else 0.");
GAUGE(f_up_weight, "portico_upstream_server_weight",
      "The server's weight now (the configuration's, or the runtime API's).");
GAUGE(f_up_active, "portico_upstream_server_active_requests",
      "Requests in flight on the server, all workers.");
static const pt_metric_family f_up_ewma = { "portico_upstream_server_response_time_average_seconds",
    "Moving average (1/8) of the time to the response head.", PT_METRIC_GAUGE, 1e-6, NULL, 0 };
COUNTER(f_up_checks, "portico_upstream_health_checks_total",
        "Active health check probes, by result.");
COUNTER(f_up_transitions, "portico_upstream_server_transitions_total",
        "State transitions of the server.");

COUNTER(f_tls, "portico_tls_handshakes_total",
        "TLS handshakes completed with clients, by listener, protocol version and whether "
        "the session was resumed.");
COUNTER(f_tls_failed, "portico_tls_handshake_failures_total",
        "TLS handshakes with clients that failed (reason: error, timeout).");
COUNTER(f_up_tls, "portico_upstream_tls_handshakes_total",
        "TLS handshakes with upstream servers, by result and whether the session was "
        "resumed.");

COUNTER(f_filter, "portico_filter_events_total",
        "Requests or connections each access list, rule and limit refused (or matched), "
        "from the filters' shared counters.");

const pt_metric_family *const pt_metrics_core_families[] = {
    &f_filter, &f_tls, &f_tls_failed, &f_up_tls,
    &f_requests, &f_refused, &f_bytes_in, &f_bytes_out, &f_accepted, &f_conns, &f_workers,
    &f_restarts, &f_reloads, &f_reload_ok, &f_generation, &f_start, &f_info, &f_dropped,
    &f_up_requests, &f_up_failures, &f_up_retries, &f_up_time, &f_up_state, &f_up_weight,
    &f_up_active, &f_up_ewma, &f_up_checks, &f_up_transitions, NULL
};

/* ---- requests: a series per (listener, route, method, status class) ----
 *
 * The series ids of the combinations this worker has seen, in a small open-addressing
 * table: one probe per request, the registry only for a new combination. */

typedef struct {
    uint64_t key;                   /* 0: empty */
    int32_t  id;
} req_entry;

static req_entry *req_tab;
static uint32_t   req_cap, req_n;

static const char *const method_labels[] = {
    "other", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"
};
static const char *const class_labels[] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };

/* The label of a route: its name, or where it matches ("a.example/api", "*~^/re/") */
static void route_label(const pt_route *rt, char *buf, size_t size)
{
    if (rt == NULL) {
        snprintf(buf, size, "none");
        return;
    }
    if (rt->name) {
        snprintf(buf, size, "%s", rt->name);
        return;
    }
    const char *host = rt->has_host ? rt->host.data : "*";
    int hl = rt->has_host ? (int) rt->host.len : 1;
    if (rt->has_host && rt->host_wildcard) {
        snprintf(buf, size, "*%.*s%.*s", hl, host, (int) rt->path_prefix.len,
                 rt->path_prefix.len ? rt->path_prefix.data : (rt->path_regex ? "~" : "/"));
        return;
    }
    snprintf(buf, size, "%.*s%.*s", hl, host, (int) (rt->path_prefix.len ? rt->path_prefix.len : 1),
             rt->path_prefix.len ? rt->path_prefix.data : (rt->path_regex ? "~" : "/"));
}

static int32_t request_series(const pt_request *r, const pt_route *rt, unsigned method,
                              unsigned cls)
{
    const pt_listener_conf *l = r->conn->listener->conf;
    char route[160], labels[PT_METRICS_LABELS_MAX];
    route_label(rt, route, sizeof(route));
    if (pt_metric_labels(labels, sizeof(labels), "listener", l->name[0] ? l->name : l->address,
                         "route", route, "method", method_labels[method],
                         "code", class_labels[cls], NULL) < 0)
        return -1;
    return pt_metric_series(&f_requests, labels);
}

static bool req_grow(void)
{
    uint32_t cap = req_cap ? req_cap * 2 : 256;
    req_entry *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return false;
    for (uint32_t i = 0; i < req_cap; i++) {
        if (req_tab[i].key == 0)
            continue;
        uint32_t j = (uint32_t) (req_tab[i].key * 0x9e3779b97f4a7c15ull >> 32) & (cap - 1);
        while (t[j].key)
            j = (j + 1) & (cap - 1);
        t[j] = req_tab[i];
    }
    free(req_tab);
    req_tab = t;
    req_cap = cap;
    return true;
}

void pt_metrics_request(const pt_request *r)
{
    if (pt_metrics_mine == NULL)
        return;
    unsigned method = r->head.method <= PT_M_PATCH ? (unsigned) r->head.method : 0;
    unsigned cls = r->status / 100;
    if (cls > 5)
        cls = 0;
    /* refused before routing: r->route is the global filters' scope, not a route */
    const pt_route *rt = r->route == pt_wconf->filters_global ? NULL : r->route;
    unsigned route = rt ? rt->index + 1 : 0;
    uint64_t key = ((uint64_t) r->conn->listener->conf->index << 40) | ((uint64_t) route << 8)
                   | (method << 4) | cls;
    key++;                              /* never 0 */
    if (req_n * 10 >= req_cap * 7 && !req_grow())
        return;
    uint32_t j = (uint32_t) (key * 0x9e3779b97f4a7c15ull >> 32) & (req_cap - 1);
    while (req_tab[j].key && req_tab[j].key != key)
        j = (j + 1) & (req_cap - 1);
    if (req_tab[j].key == 0) {
        req_tab[j].key = key;
        req_tab[j].id = request_series(r, rt, method, cls);
        req_n++;
    }
    pt_metric_add(req_tab[j].id, 1);
}

/* ---- upstream servers: retries and the response-time histogram ----
 * By the server's slot in the "upstreams" zone: the same slot for the same group and
 * address across reloads, so is the series. */

typedef struct {
    int32_t retries, time;
} server_ids;

static server_ids *sv_ids;              /* by slot in the zone */
static uint32_t    sv_nslots;

static pt_upstreams_zone *zone_of(const pt_upstream *up)
{
    return up->state_gen ? pt_container_of(up->state_gen, pt_upstreams_zone, state_gen) : NULL;
}

static server_ids *server_series(const pt_upstream *up, unsigned server)
{
    pt_upstreams_zone *uz = zone_of(up);
    const pt_upstream_server *sv = &up->servers[server];
    if (uz == NULL || sv_ids == NULL || sv->shared == NULL)
        return NULL;
    uint32_t slot = (uint32_t) (sv->shared - uz->slot);
    if (slot >= sv_nslots)
        return NULL;
    server_ids *ids = &sv_ids[slot];
    if (ids->time == -2) {
        char labels[PT_METRICS_LABELS_MAX];
        if (pt_metric_labels(labels, sizeof(labels), "upstream", up->name,
                             "server", sv->addr_text, NULL) < 0) {
            ids->retries = ids->time = -1;
        } else {
            ids->retries = pt_metric_series(&f_up_retries, labels);
            ids->time = pt_metric_series(&f_up_time, labels);
        }
    }
    return ids;
}

void pt_metrics_upstream_time(const pt_upstream *up, unsigned server, uint64_t us)
{
    server_ids *ids = server_series(up, server);
    if (ids)
        pt_metric_observe(&f_up_time, ids->time, us);
}

void pt_metrics_upstream_retry(const pt_upstream *up, unsigned server)
{
    server_ids *ids = server_series(up, server);
    if (ids)
        pt_metric_add(ids->retries, 1);
}

/* ---- TLS handshakes ----
 * The series is looked up per handshake (a hash and a compare, no lock once it exists):
 * next to the handshake's own cost (a signature, key exchange), nothing to cache. */

static const char *listener_label(const pt_listener_conf *l)
{
    return l->name[0] ? l->name : l->address;
}

void pt_metrics_tls_handshake(const pt_listener_conf *l, const char *version, bool resumed)
{
    char labels[PT_METRICS_LABELS_MAX];
    if (pt_metric_labels(labels, sizeof(labels), "listener", listener_label(l), "protocol",
                         version, "resumed", resumed ? "true" : "false", NULL) >= 0)
        pt_metric_add(pt_metric_series(&f_tls, labels), 1);
}

void pt_metrics_tls_failure(const pt_listener_conf *l, const char *reason)
{
    char labels[PT_METRICS_LABELS_MAX];
    if (pt_metric_labels(labels, sizeof(labels), "listener", listener_label(l), "reason",
                         reason, NULL) >= 0)
        pt_metric_add(pt_metric_series(&f_tls_failed, labels), 1);
}

void pt_metrics_upstream_tls(const pt_upstream *up, unsigned server, bool ok, bool resumed)
{
    char labels[PT_METRICS_LABELS_MAX];
    if (server < up->nservers
        && pt_metric_labels(labels, sizeof(labels), "upstream", up->name, "server",
                            up->servers[server].addr_text, "result", ok ? "ok" : "failed",
                            "resumed", resumed ? "true" : "false", NULL) >= 0)
        pt_metric_add(pt_metric_series(&f_up_tls, labels), 1);
}

void pt_metrics_worker_conf(void)
{
    free(req_tab);
    req_tab = NULL;
    req_cap = req_n = 0;
    req_grow();
    free(sv_ids);
    sv_ids = NULL;
    sv_nslots = 0;
    const pt_conf *conf = pt_wconf;
    if (conf == NULL || conf->nupstreams == 0 || zone_of(&conf->upstreams[0]) == NULL)
        return;
    sv_nslots = zone_of(&conf->upstreams[0])->nslots;
    sv_ids = malloc(sv_nslots * sizeof(*sv_ids));
    if (sv_ids == NULL) {
        sv_nslots = 0;
        return;
    }
    for (uint32_t i = 0; i < sv_nslots; i++)
        sv_ids[i] = (server_ids) { -2, -2 };
    /* every server's series exists from the start: a scrape shows them at zero */
    for (unsigned u = 0; u < conf->nupstreams; u++)
        for (unsigned s = 0; s < conf->upstreams[u].nservers; s++)
            server_series(&conf->upstreams[u], s);
}

/* ---- the collector ---- */

/* The worker slots summed, with the exited workers' counts, consistently. */
static void stats_sum(pt_worker_stats *t, unsigned *nworkers, uint64_t gens[4],
                      unsigned gen_n[4])
{
    memset(t, 0, sizeof(*t));
    memset(gen_n, 0, 4 * sizeof(unsigned));
    for (unsigned tries = 0; tries < 1000; tries++) {
        uint32_t seq = __atomic_load_n(&pt_stats_zone->fold_seq, __ATOMIC_ACQUIRE);
        if (seq & 1)
            continue;
        *t = pt_stats_zone->retired;
        *nworkers = 0;
        memset(gen_n, 0, 4 * sizeof(unsigned));
        for (unsigned i = 0; i < pt_nelems(pt_stats_zone->worker); i++) {
            const pt_worker_stats *w = &pt_stats_zone->worker[i];
            if (__atomic_load_n(&w->pid, __ATOMIC_ACQUIRE) == 0)
                continue;
            (*nworkers)++;
            for (unsigned g = 0; g < 4; g++) {
                if (gen_n[g] == 0 || gens[g] == w->generation) {
                    gens[g] = w->generation;
                    gen_n[g]++;
                    break;
                }
            }
            t->accepted += w->accepted;
            t->active += w->active;
            t->busy += pt_min(w->busy, w->active);
            t->requests += w->requests;
            for (unsigned k = 0; k < pt_nelems(w->status); k++)
                t->status[k] += w->status[k];
            t->bytes_in += w->bytes_in;
            t->bytes_out += w->bytes_out;
            t->refused += w->refused;
        }
        if (__atomic_load_n(&pt_stats_zone->fold_seq, __ATOMIC_ACQUIRE) == seq)
            return;
    }
}

void pt_metrics_stats_sum(pt_worker_stats *t, unsigned *nworkers)
{
    uint64_t gens[4];
    unsigned gen_n[4];
    *nworkers = 0;
    if (pt_stats_zone == NULL) {
        memset(t, 0, sizeof(*t));
        return;
    }
    stats_sum(t, nworkers, gens, gen_n);
}

static void collect_stats(pt_metrics_out *o)
{
    pt_stats *st = pt_stats_zone;
    pt_worker_stats t;
    unsigned nworkers = 0, gen_n[4];
    uint64_t gens[4];
    char labels[64];

    if (st == NULL)
        return;
    stats_sum(&t, &nworkers, gens, gen_n);
    pt_metrics_begin(o, &f_refused);
    pt_metrics_sample(o, &f_refused, "", (double) t.refused);
    pt_metrics_begin(o, &f_bytes_in);
    pt_metrics_sample(o, &f_bytes_in, "", (double) t.bytes_in);
    pt_metrics_begin(o, &f_bytes_out);
    pt_metrics_sample(o, &f_bytes_out, "", (double) t.bytes_out);
    pt_metrics_begin(o, &f_accepted);
    pt_metrics_sample(o, &f_accepted, "", (double) t.accepted);
    pt_metrics_begin(o, &f_conns);
    pt_metrics_sample(o, &f_conns, "state=\"active\"", (double) t.busy);
    pt_metrics_sample(o, &f_conns, "state=\"idle\"", (double) (t.active - t.busy));
    pt_metrics_begin(o, &f_workers);
    for (unsigned g = 0; g < 4 && gen_n[g]; g++) {
        snprintf(labels, sizeof(labels), "generation=\"%llu\"", (unsigned long long) gens[g]);
        pt_metrics_sample(o, &f_workers, labels, gen_n[g]);
    }
    pt_metrics_begin(o, &f_restarts);
    pt_metrics_sample(o, &f_restarts, "", (double) __atomic_load_n(&st->worker_restarts,
                                                                   __ATOMIC_RELAXED));
    pt_metrics_begin(o, &f_reloads);
    pt_metrics_sample(o, &f_reloads, "result=\"ok\"", (double) st->reloads);
    pt_metrics_sample(o, &f_reloads, "result=\"failed\"", (double) st->reloads_failed);
    pt_metrics_begin(o, &f_reload_ok);
    pt_metrics_sample(o, &f_reload_ok, "", st->reload_last ? st->reload_last_ok : 1);
    pt_metrics_begin(o, &f_generation);
    pt_metrics_sample(o, &f_generation, "", (double) st->generation);
    pt_metrics_begin(o, &f_start);
    pt_metrics_sample(o, &f_start, "", (double) st->started);
    pt_metrics_begin(o, &f_info);
    pt_metrics_sample(o, &f_info, "version=\"" PT_VERSION "\"", 1);
    pt_metrics_begin(o, &f_dropped);
    pt_metrics_sample(o, &f_dropped, "", pt_metrics_zone_p
                      ? (double) __atomic_load_n(&pt_metrics_zone_p->dropped, __ATOMIC_RELAXED)
                      : 0);
}

static void collect_upstreams(pt_metrics_out *o)
{
    static const pt_metric_family *const fams[] = {
        &f_up_requests, &f_up_failures, &f_up_state, &f_up_weight, &f_up_active, &f_up_ewma,
        &f_up_checks, &f_up_transitions
    };
    static const char *const states[] = { "up", "slow_start", "down", "draining" };
    const pt_conf *conf = pt_wconf;
    char labels[PT_METRICS_LABELS_MAX], l2[PT_METRICS_LABELS_MAX + 32];

    if (conf == NULL || conf->nupstreams == 0)
        return;
    /* family by family: a family's samples must be together */
    for (unsigned fi = 0; fi < pt_nelems(fams); fi++) {
        const pt_metric_family *f = fams[fi];
        pt_metrics_begin(o, f);
        for (unsigned u = 0; u < conf->nupstreams; u++) {
            const pt_upstream *up = &conf->upstreams[u];
            for (unsigned s = 0; s < up->nservers; s++) {
                const pt_upstream_server *sv = &up->servers[s];
                const pt_upstream_shared *sh = sv->shared;
                if (sh == NULL || pt_metric_labels(labels, sizeof(labels), "upstream",
                                                   up->name, "server", sv->addr_text,
                                                   NULL) < 0)
                    continue;
#define V(field) ((double) __atomic_load_n(&sh->field, __ATOMIC_RELAXED))
                if (f == &f_up_requests) {
                    pt_metrics_sample(o, f, labels, V(requests));
                } else if (f == &f_up_failures) {
                    pt_metrics_sample(o, f, labels, V(failures));
                } else if (f == &f_up_state) {
                    uint32_t st = __atomic_load_n(&sh->state, __ATOMIC_RELAXED);
                    for (unsigned k = 0; k < pt_nelems(states); k++) {
                        snprintf(l2, sizeof(l2), "%s,state=\"%s\"", labels, states[k]);
                        pt_metrics_sample(o, f, l2, st == k);
                    }
                } else if (f == &f_up_weight) {
                    pt_metrics_sample(o, f, labels, V(weight));
                } else if (f == &f_up_active) {
                    pt_metrics_sample(o, f, labels, pt_max(V(active), 0));
                } else if (f == &f_up_ewma) {
                    pt_metrics_sample(o, f, labels, V(resp_ewma_us));
                } else if (f == &f_up_checks) {
                    snprintf(l2, sizeof(l2), "%s,result=\"passed\"", labels);
                    pt_metrics_sample(o, f, l2, V(checks) - V(checks_failed));
                    snprintf(l2, sizeof(l2), "%s,result=\"failed\"", labels);
                    pt_metrics_sample(o, f, l2, V(checks_failed));
                } else if (f == &f_up_transitions) {
                    pt_metrics_sample(o, f, labels, V(transitions));
                }
#undef V
            }
        }
    }
}

/* The filters' named counters (the "counters" zone), as {kind, name} from "kind:name";
 * those of rules a reload removed stay until their slot is reused (counters never go
 * back). */
static void collect_counters(pt_metrics_out *o)
{
    pt_conf *conf = pt_wconf;
    pt_shm_zone *z = conf ? pt_shm_find(conf, "counters") : NULL;
    const pt_counters_zone *cz = z ? z->addr : NULL;
    char kind[PT_COUNTER_NAME], labels[PT_METRICS_LABELS_MAX];
    bool begun = false;

    if (cz == NULL)
        return;
    for (uint32_t i = 0; i < cz->nslots && i < PT_COUNTER_SLOTS; i++) {
        const pt_counter *c = &cz->slot[i];
        if (c->name[0] == 0)
            break;                          /* slots are taken in order */
        const char *colon = memchr(c->name, ':', sizeof(c->name));
        if (colon == NULL)
            continue;
        snprintf(kind, sizeof(kind), "%.*s", (int) (colon - c->name), c->name);
        if (pt_metric_labels(labels, sizeof(labels), "kind", kind, "name", colon + 1, NULL) < 0)
            continue;
        if (!begun) {
            pt_metrics_begin(o, &f_filter);
            begun = true;
        }
        pt_metrics_sample(o, &f_filter, labels,
                          (double) __atomic_load_n(&c->value, __ATOMIC_RELAXED));
    }
}

void pt_metrics_core_collect(pt_metrics_out *o)
{
    collect_stats(o);
    collect_upstreams(o);
    collect_counters(o);
}
