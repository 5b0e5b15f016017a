/* Metrics: counter families any part of portico (core or module) declares, series of
 * them named by their labels, and per-worker values in one shared zone, summed by
 * whoever reads them (the admin listener's /metrics and /status).
 *
 * Where the values live:
 *   - counters a worker increments go through the registry below: a series is created
 *     once (family + label text, in shared memory, found again by every worker and kept
 *     across reloads) and its value has a slot per worker, written only by that worker,
 *     with no atomic operation and no lock; a reader sums the slots of the live workers
 *     and the counts of the workers that have exited (folded in by the master when it
 *     reaps them, under a sequence counter readers retry on), so a crash or a reload
 *     loses nothing and no total ever goes back;
 *   - values kept elsewhere (the core's pt_stats, the "upstreams" zone, a module's own
 *     zone) are read at scrape time by a collector: a function that emits samples.
 * A module plugs in with both: its pt_module lists its families (registered when the
 * binary starts, so HELP and TYPE are known before any series exists) and may have a
 * collector (pt_module.metrics_collect). */
#ifndef PT_METRICS_T_H
#define PT_METRICS_T_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/shm-t.h"

typedef enum pt_metric_type {
    PT_METRIC_COUNTER = 0,
    PT_METRIC_GAUGE,
    PT_METRIC_HISTOGRAM
} pt_metric_type;

/* A family: what Prometheus calls a metric name with its HELP and TYPE. Names follow the
 * conventions: portico_ prefix, base units (seconds, bytes), counters end in _total. */
typedef struct pt_metric_family {
    const char      *name;          /* "portico_http_requests_total" */
    const char      *help;
    pt_metric_type   type;
    double           scale;         /* exported value = raw x scale (0: 1); a histogram of
                                     * microseconds is exported in seconds with 1e-6 */
    const uint64_t  *bounds;        /* histogram: bucket upper bounds, raw units, ascending */
    unsigned         nbounds;
} pt_metric_family;

/* A histogram series holds nbounds + 1 buckets (the last one: +Inf), then the sum, then
 * the count: nbounds + 3 values. Buckets are not cumulative in memory; the reader sums. */
#define PT_METRIC_HIST_VALUES(f) ((f)->nbounds + 3)

#define PT_METRICS_MAX_SERIES  8192
#define PT_METRICS_MAX_VALUES  16384     /* per worker slot */
#define PT_METRICS_NAME_MAX    64
#define PT_METRICS_LABELS_MAX  224       /* `a="x",b="y"`, escaped */
#define PT_METRICS_HASH        4096      /* chains of the series index */
#define PT_METRICS_ROWS        (PT_MAX_WORKERS * 2 + 1)    /* worker slots, then retired */

typedef struct pt_metric_entry {
    char     family[PT_METRICS_NAME_MAX];
    char     labels[PT_METRICS_LABELS_MAX];
    uint32_t hash;
    uint32_t next;                  /* the next series of the chain: id + 1; 0: none */
    uint32_t first;                 /* its first value */
    uint32_t nvalues;
} pt_metric_entry;

#define PT_METRICS_MAGIC 0x707463697274656dull     /* "metricpt" */

/* The zone: mapped once by the master at start (it survives reloads, as pt_stats does).
 * Series are appended under the lock and never removed; an entry is written whole before
 * nseries and its chain publish it, so lookups need no lock. */
typedef struct pt_metrics_zone {
    uint64_t          magic;
    pt_shm_mutex      lock;
    uint32_t          nseries;
    uint32_t          nvalues;
    uint64_t          dropped;      /* series refused: the registry is full */
    uint32_t          chain[PT_METRICS_HASH];     /* first series: id + 1 */
    pt_metric_entry   series[PT_METRICS_MAX_SERIES];
    uint64_t          values[PT_METRICS_ROWS][PT_METRICS_MAX_VALUES];
} pt_metrics_zone;

/* A sink for samples: the admin module renders them as Prometheus text or JSON.
 * begin is called once per family before its samples (a collector calls it through
 * pt_metrics_begin); sample gets the value already scaled. suffix: "" or, for a
 * histogram, "_bucket" (labels then end with le="..."), "_sum", "_count". */
typedef struct pt_metrics_out pt_metrics_out;
struct pt_metrics_out {
    void (*begin)(pt_metrics_out *o, const pt_metric_family *f);
    void (*sample)(pt_metrics_out *o, const pt_metric_family *f, const char *suffix,
                   const char *labels, double value);
    void  *data;
};

typedef void (*pt_metrics_collect_fn)(pt_metrics_out *o);

/* A sink for a module's summary in /status (pt_module.status_collect): named numbers,
 * which the admin module renders as one JSON object under the module's name (nothing
 * when the module emits none, e.g. a cache that is not configured). */
typedef struct pt_status_out pt_status_out;
struct pt_status_out {
    void (*num)(pt_status_out *o, const char *key, double value);
    void  *data;
};

#endif
