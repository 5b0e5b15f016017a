/* Metrics (see metrics-t.h): the registry of series, per-worker counting, and what a
 * reader uses to export them. */
#ifndef PT_METRICS_H
#define PT_METRICS_H

#include "portico/core.h"
#include "portico/metrics-t.h"

extern pt_metrics_zone *pt_metrics_zone_p;
extern uint64_t        *pt_metrics_mine;     /* this worker's row; NULL in the master */

/* Master, at start: maps the zone (once; it survives reloads). */
int  pt_metrics_init(void);
/* Master: a worker slot's row is folded into the retired row and cleared (called by
 * pt_stats_slot_retire, under pt_stats.fold_seq), or cleared for a new worker. */
void pt_metrics_slot_retire(int slot);
void pt_metrics_slot_reset(int slot);
/* Worker, at start: its row. */
void pt_metrics_worker_init(int slot);

/* Formats labels: pairs of name and value, NULL-terminated, into `a="x",b="y"` with the
 * values escaped (\\, \", \n). The length, or -1 when it does not fit. */
int  pt_metric_labels(char *buf, size_t size, ...);

/* The series of family f with these labels (pt_metric_labels' text), created when it is
 * new: its id (>= 0), or -1 when the registry is full (counted in
 * portico_metrics_series_dropped_total). Cheap when it exists (no lock), but callers on
 * a hot path keep the id. */
int32_t pt_metric_series(const pt_metric_family *f, const char *labels);

/* Counting, in the calling worker's row; a no-op for id -1 or outside a worker. */
static inline void pt_metric_add(int32_t id, uint64_t n)
{
    if (id >= 0 && pt_metrics_mine)
        pt_metrics_mine[id] += n;
}
/* A histogram observation of v (raw units). */
void pt_metric_observe(const pt_metric_family *f, int32_t id, uint64_t v);

/* ---- families ---- */

/* Every family known to the binary: the core's and those listed by the modules
 * (pt_module.metric_families), registered by pt_metrics_families_init at start. */
void pt_metrics_families_init(void);
const pt_metric_family *pt_metrics_family_find(const char *name);
/* One more family (after pt_metrics_families_init; once per name): for code that is no
 * module (the unit tests). */
void pt_metrics_family_add(const pt_metric_family *f);

/* ---- reading ---- */

/* A consistent sum over the workers and the retired row, of the first n values: into
 * out (n values). Retries while the master folds a row. */
void pt_metrics_sum(uint64_t *out, uint32_t n);
/* The same sum for one counter series (its id from pt_metric_series; 0 for -1). */
uint64_t pt_metric_value(int32_t id);
/* Emits every registered series, family by family (begin, then samples), then every
 * collector's samples: the core's (pt_metrics_core_collect) and the modules'. */
void pt_metrics_export(pt_metrics_out *o);
/* For collectors: starts family f in o, then samples with a value (scaled by f->scale). */
void pt_metrics_begin(pt_metrics_out *o, const pt_metric_family *f);
void pt_metrics_sample(pt_metrics_out *o, const pt_metric_family *f, const char *labels,
                       double raw);

/* The core's collector (metrics_core.c): process, workers, connections, reloads, the
 * upstream servers' shared state. */
void pt_metrics_core_collect(pt_metrics_out *o);
/* pt_stats summed over the live workers and the retired row, consistently (no worker
 * counted twice or missed while the master folds one); nworkers: the live ones. */
void pt_metrics_stats_sum(pt_worker_stats *t, unsigned *nworkers);
/* The core's counting helpers (metrics_core.c), for the request engine and upstreams. */
struct pt_request;
struct pt_upstream;
void pt_metrics_request(const struct pt_request *r);      /* when it is logged */
void pt_metrics_upstream_time(const struct pt_upstream *up, unsigned server, uint64_t us);
void pt_metrics_upstream_retry(const struct pt_upstream *up, unsigned server);
void pt_metrics_worker_conf(void);                  /* worker start: per-config caches */
/* TLS handshakes: with clients (completed; failed with reason "error" or "timeout"),
 * and with upstream servers */
struct pt_listener_conf;
void pt_metrics_tls_handshake(const struct pt_listener_conf *l, const char *version,
                              bool resumed);
void pt_metrics_tls_failure(const struct pt_listener_conf *l, const char *reason);
void pt_metrics_upstream_tls(const struct pt_upstream *up, unsigned server, bool ok,
                             bool resumed);

#endif
