/* The cache's counters: how each request was served (a counter per X-Cache-Status, kept
 * per worker in the metrics registry, so counting takes no lock and no atomic), and the
 * store's own figures (objects, bytes, stores, evictions, purges), read from the zone
 * header at scrape time. /status gets a summary the status page turns into a hit ratio.
 *
 * Which statuses are hits: served from a stored response (HIT, STALE, UPDATING, and
 * REVALIDATED, whose body came from the store after the origin's 304). Misses: the body
 * came from the origin (MISS, EXPIRED). BYPASS is neither: the cache was not asked. */
#include <string.h>

#include "portico/metrics.h"
#include "cache.h"

static const char *const status_names[] = {
    "HIT", "MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "BYPASS"
};
enum { ST_HIT, ST_MISS, ST_EXPIRED, ST_STALE, ST_UPDATING, ST_REVALIDATED, ST_BYPASS, ST_N };

static const pt_metric_family f_requests = {
    "portico_cache_requests_total",
    "Requests on routes with a cache, by how they were served (X-Cache-Status).",
    PT_METRIC_COUNTER, 0, NULL, 0
};
#define ZONE_FAMILY(var, n, t, h) static const pt_metric_family var = { n, h, t, 0, NULL, 0 }
ZONE_FAMILY(f_objects, "portico_cache_objects", PT_METRIC_GAUGE, "Responses stored now.");
ZONE_FAMILY(f_bytes, "portico_cache_stored_bytes", PT_METRIC_GAUGE,
            "Bytes of the stored responses (keys, heads and bodies).");
ZONE_FAMILY(f_size, "portico_cache_size_bytes", PT_METRIC_GAUGE,
            "Size of the shared cache zone (size_mb).");
ZONE_FAMILY(f_stores, "portico_cache_stores_total", PT_METRIC_COUNTER,
            "Responses committed to the store.");
ZONE_FAMILY(f_store_failures, "portico_cache_store_failures_total", PT_METRIC_COUNTER,
            "Responses that could not be stored: no room after eviction, or purged while "
            "being written.");
ZONE_FAMILY(f_evictions, "portico_cache_evictions_total", PT_METRIC_COUNTER,
            "Stored responses evicted to make room.");
ZONE_FAMILY(f_purged, "portico_cache_purged_total", PT_METRIC_COUNTER,
            "Stored responses removed by PURGE.");
ZONE_FAMILY(f_repairs, "portico_cache_repairs_total", PT_METRIC_COUNTER,
            "Times the store was repaired after a worker died holding its lock.");

const pt_metric_family *const cache_metric_families[] = {
    &f_requests, &f_objects, &f_bytes, &f_size, &f_stores, &f_store_failures, &f_evictions,
    &f_purged, &f_repairs, NULL
};

/* Series ids, this worker's; -2: not looked up (the registry outlives reloads, so an id
 * stays valid for the master's life) */
static int32_t ids[ST_N] = { -2, -2, -2, -2, -2, -2, -2 };

static int32_t series(unsigned st)
{
    if (ids[st] == -2) {
        char labels[64];
        pt_metric_labels(labels, sizeof(labels), "status", status_names[st], NULL);
        ids[st] = pt_metric_series(&f_requests, labels);
    }
    return ids[st];
}

void cache_metrics_init(void)
{
    /* every status from the start: a scrape shows them at zero */
    for (unsigned st = 0; st < ST_N; st++)
        series(st);
}

void cache_metrics_count(const char *status)
{
    if (status == NULL)
        return;
    for (unsigned st = 0; st < ST_N; st++) {
        if (strcmp(status, status_names[st]) == 0) {
            pt_metric_add(series(st), 1);
            return;
        }
    }
}

#define LD(field) ((double) __atomic_load_n(&cache_z->field, __ATOMIC_RELAXED))

void cache_metrics_collect(pt_metrics_out *o)
{
    if (cache_z == NULL)
        return;
    const struct { const pt_metric_family *f; double v; } rows[] = {
        { &f_objects, LD(objects) }, { &f_bytes, LD(object_bytes) }, { &f_size, LD(size) },
        { &f_stores, LD(stores) }, { &f_store_failures, LD(store_failures) },
        { &f_evictions, LD(evictions) }, { &f_purged, LD(purged) },
        { &f_repairs, LD(repairs) },
    };
    for (unsigned i = 0; i < pt_nelems(rows); i++) {
        pt_metrics_begin(o, rows[i].f);
        pt_metrics_sample(o, rows[i].f, "", rows[i].v);
    }
}

void cache_status_collect(pt_status_out *o)
{
    if (cache_z == NULL)
        return;
    uint64_t v[ST_N];
    for (unsigned st = 0; st < ST_N; st++)
        v[st] = pt_metric_value(series(st));
    o->num(o, "hits", (double) (v[ST_HIT] + v[ST_STALE] + v[ST_UPDATING] + v[ST_REVALIDATED]));
    o->num(o, "misses", (double) (v[ST_MISS] + v[ST_EXPIRED]));
    o->num(o, "bypass", (double) v[ST_BYPASS]);
    o->num(o, "objects", LD(objects));
    o->num(o, "stored_bytes", LD(object_bytes));
    o->num(o, "size_bytes", LD(size));
    o->num(o, "evictions", LD(evictions));
}
