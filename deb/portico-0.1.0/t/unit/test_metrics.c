/* The metrics registry (server/metrics.c) without processes: label escaping, series found
 * again by name and labels, per-slot counting summed with the retired row, a slot's row
 * folded on exit (nothing counted twice or lost), histograms, the registry full, and the
 * export's grouping of a family's samples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/metrics.h"
#include "portico/shm.h"
#include "tap.h"

static const uint64_t bounds[] = { 10, 100, 1000 };
static const pt_metric_family f_c = { "test_requests_total", "Test.", PT_METRIC_COUNTER, 0,
                                      NULL, 0 };
static const pt_metric_family f_h = { "test_time_seconds", "Test.", PT_METRIC_HISTOGRAM,
                                      1e-3, bounds, 3 };

/* A sink keeping the text, as the admin module renders it (simplified). */
static char out[1 << 16];
static size_t outlen;

static void begin(pt_metrics_out *o, const pt_metric_family *f)
{
    outlen += (size_t) snprintf(out + outlen, sizeof(out) - outlen, "# TYPE %s\n", f->name);
}

static void sample(pt_metrics_out *o, const pt_metric_family *f, const char *suffix,
                   const char *labels, double v)
{
    outlen += (size_t) snprintf(out + outlen, sizeof(out) - outlen, "%s%s{%s} %g\n", f->name,
                                suffix, labels, v);
}

static uint64_t value(int32_t id)
{
    uint64_t v[PT_METRICS_MAX_VALUES];
    pt_metrics_sum(v, pt_metrics_zone_p->nvalues);
    return v[id];
}

int main(void)
{
    char buf[PT_METRICS_LABELS_MAX];

    tap_ok(pt_stats_init() == PT_OK && pt_metrics_init() == PT_OK, "zones mapped");

    /* labels */
    int n = pt_metric_labels(buf, sizeof(buf), "a", "x\"y\\z\nw", "b", "", NULL);
    tap_is_str(buf, "a=\"x\\\"y\\\\z\\nw\",b=\"\"", "labels: quote, backslash, newline escaped");
    tap_is_int(n, (int) strlen(buf), "...and the length returned");
    char small[8];
    tap_is_int(pt_metric_labels(small, sizeof(small), "name", "too long", NULL), -1,
               "labels that do not fit: -1");

    /* series */
    pt_metric_labels(buf, sizeof(buf), "route", "r1", NULL);
    int32_t a = pt_metric_series(&f_c, buf);
    int32_t a2 = pt_metric_series(&f_c, "route=\"r1\"");
    pt_metric_labels(buf, sizeof(buf), "route", "r2", NULL);
    int32_t b = pt_metric_series(&f_c, buf);
    tap_ok(a >= 0 && a == a2 && b >= 0 && b != a, "a series is found again by its labels; "
           "other labels, another series (%d %d %d)", a, a2, b);
    int32_t h = pt_metric_series(&f_h, "");
    tap_ok(h >= 0 && h != a && h != b, "a histogram series");

    /* counting in worker slots 0 and 1, summed */
    pt_stats_zone->worker[0].pid = 100;
    pt_stats_zone->worker[1].pid = 101;
    pt_metrics_worker_init(0);
    pt_metric_add(a, 3);
    pt_metric_observe(&f_h, h, 5);          /* bucket 10 */
    pt_metric_observe(&f_h, h, 50);         /* bucket 100 */
    pt_metrics_worker_init(1);
    pt_metric_add(a, 4);
    pt_metric_add(b, 1);
    pt_metric_observe(&f_h, h, 5000);       /* +Inf */
    tap_is_int(value(a), 7, "two workers' counts summed: 3 + 4");
    tap_is_int(value(b), 1, "the other series apart");

    /* a worker exits: its row folds into the retired row */
    pt_stats_slot_retire(0);
    pt_stats_zone->worker[0].pid = 0;
    tap_is_int(value(a), 7, "after worker 0 exits, the total is the same");
    tap_is_int(pt_metrics_zone_p->values[0][a], 0, "...its row is cleared");
    pt_stats_slot_reset(0, 2, 200);
    pt_stats_zone->worker[0].pid = 200;
    pt_metrics_worker_init(0);
    pt_metric_add(a, 10);
    tap_is_int(value(a), 17, "its replacement counts on top");
    tap_ok((pt_stats_zone->fold_seq & 1) == 0, "fold_seq even again after the fold");

    /* export: the histogram cumulative, in seconds, +Inf = count; the family together */
    pt_metrics_families_init();
    pt_metrics_family_add(&f_c);
    pt_metrics_family_add(&f_h);
    outlen = 0;
    out[0] = '\0';
    pt_metrics_out o = { begin, sample, NULL };
    pt_metrics_export(&o);
    tap_ok(strstr(out, "test_time_seconds_bucket{le=\"0.01\"} 1\n")
           && strstr(out, "test_time_seconds_bucket{le=\"0.1\"} 2\n")
           && strstr(out, "test_time_seconds_bucket{le=\"1\"} 2\n")
           && strstr(out, "test_time_seconds_bucket{le=\"+Inf\"} 3\n")
           && strstr(out, "test_time_seconds_count{} 3\n")
           && strstr(out, "test_time_seconds_sum{} 5.055\n"),
           "histogram: cumulative buckets in seconds, +Inf = count, sum scaled");
    char *t1 = strstr(out, "# TYPE test_requests_total\n");
    char *r1 = strstr(out, "test_requests_total{route=\"r1\"} 17\n");
    char *r2 = strstr(out, "test_requests_total{route=\"r2\"} 1\n");
    tap_ok(t1 && r1 && r2 && t1 < r1 && t1 < r2 && !strstr(t1 + 1, "# TYPE test_requests_total"),
           "a family's TYPE once, before its samples");

    /* full */
    unsigned made = 0;
    int32_t last = 0;
    for (unsigned i = 0; i < PT_METRICS_MAX_SERIES + 10 && last >= 0; i++) {
        char l[64];
        snprintf(l, sizeof(l), "i=\"%u\"", i);
        last = pt_metric_series(&f_c, l);
        made += last >= 0;
    }
    tap_ok(last == -1 && pt_metrics_zone_p->dropped >= 1,
           "the registry full: -1 and counted as dropped (%u made)", made);
    pt_metric_add(-1, 5);                   /* a no-op, not a crash */
    tap_is_int(value(a), 17, "counting into a refused series changes nothing");
    tap_done();
    return tap_failed ? 1 : 0;
}
