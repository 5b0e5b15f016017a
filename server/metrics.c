/* The metrics registry (see include/portico/metrics-t.h): families, series in shared
 * memory, per-worker values, and their export through a sink.
 *
 * Why a registry in shared memory rather than fixed counters: the label sets (routes,
 * upstream servers, what modules count) are only known once the configuration is loaded
 * and change on reload, and a value must keep counting across a reload for the same
 * labels; so a series is found by its name and labels, by every worker, in a table that
 * outlives the generations. Counting itself is an add to the worker's own row. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/module.h"
#include "portico/shm.h"

pt_metrics_zone *pt_metrics_zone_p;
uint64_t        *pt_metrics_mine;

#define LOAD(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* ---- the zone ---- */

int pt_metrics_init(void)
{
    if (pt_metrics_zone_p)
        return PT_OK;
    /* large but sparse: only the pages of the rows workers use are ever touched */
    void *addr = mmap(NULL, sizeof(pt_metrics_zone), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr == MAP_FAILED) {
        pt_log_errno(PT_LOG_EMERG, errno, "mmap() of the metrics zone failed");
        return PT_ERROR;
    }
    pt_metrics_zone *z = addr;
    if (pt_shm_mutex_init(&z->lock) != PT_OK) {
        munmap(addr, sizeof(pt_metrics_zone));
        return PT_ERROR;
    }
    z->magic = PT_METRICS_MAGIC;
    pt_metrics_zone_p = z;
    return PT_OK;
}

void pt_metrics_slot_retire(int slot)
{
    pt_metrics_zone *z = pt_metrics_zone_p;
    if (z == NULL || slot < 0 || slot >= PT_METRICS_ROWS - 1)
        return;
    uint32_t n = LOAD(&z->nvalues);
    uint64_t *row = z->values[slot], *ret = z->values[PT_METRICS_ROWS - 1];
    for (uint32_t i = 0; i < n; i++) {
        ret[i] += row[i];
        row[i] = 0;
    }
}

void pt_metrics_slot_reset(int slot)
{
    pt_metrics_zone *z = pt_metrics_zone_p;
    if (z == NULL || slot < 0 || slot >= PT_METRICS_ROWS - 1)
        return;
    memset(z->values[slot], 0, LOAD(&z->nvalues) * sizeof(uint64_t));
}

void pt_metrics_worker_init(int slot)
{
    pt_metrics_zone *z = pt_metrics_zone_p;
    pt_metrics_mine = z && slot >= 0 && slot < PT_METRICS_ROWS - 1 ? z->values[slot] : NULL;
}

/* ---- labels ---- */

int pt_metric_labels(char *buf, size_t size, ...)
{
    va_list ap;
    size_t len = 0;
    const char *name;

    if (size == 0)
        return -1;
    buf[0] = '\0';
    va_start(ap, size);
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        int w = snprintf(buf + len, size - len, "%s%s=\"", len ? "," : "", name);
        if (w < 0 || (size_t) w >= size - len)
            goto full;
        len += (size_t) w;
        for (; v && *v; v++) {
            const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n"
                              : NULL;
            size_t n = esc ? 2 : 1;
            if (len + n + 1 >= size)
                goto full;
            memcpy(buf + len, esc ? esc : v, n);
            len += n;
        }
        if (len + 2 >= size)
            goto full;
        buf[len++] = '"';
        buf[len] = '\0';
    }
    va_end(ap);
    return (int) len;
full:
    va_end(ap);
    buf[0] = '\0';
    return -1;
}

/* ---- series ---- */

static uint32_t hash_of(const char *family, const char *labels)
{
    uint32_t h = 2166136261u;                       /* FNV-1a */
    for (const char *p = family; *p; p++)
        h = (h ^ (unsigned char) *p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char) *p) * 16777619u;
    return h;
}

static int32_t lookup(pt_metrics_zone *z, const char *family, const char *labels, uint32_t h)
{
    uint32_t n = LOAD(&z->nseries);
    for (uint32_t id1 = LOAD(&z->chain[h % PT_METRICS_HASH]); id1; ) {
        if (id1 > n)
            break;                      /* a chain being rebuilt: the locked path decides */
        const pt_metric_entry *s = &z->series[id1 - 1];
        if (s->hash == h && strcmp(s->family, family) == 0 && strcmp(s->labels, labels) == 0)
            return (int32_t) (id1 - 1);
        id1 = LOAD(&s->next);
    }
    return -1;
}

/* A process died holding the lock: its series may be counted (nseries) but not chained.
 * The chains are rebuilt from the entries, which are always whole once counted. */
static void repair(pt_metrics_zone *z)
{
    uint32_t n = z->nseries;
    for (uint32_t i = 0; i < PT_METRICS_HASH; i++)
        STORE(&z->chain[i], 0);
    for (uint32_t i = 0; i < n; i++) {
        pt_metric_entry *s = &z->series[i];
        uint32_t *head = &z->chain[s->hash % PT_METRICS_HASH];
        STORE(&s->next, LOAD(head));
        STORE(head, i + 1);
    }
    pt_log(PT_LOG_WARN, "metrics registry: repaired after a process died holding its lock");
}

int32_t pt_metric_series(const pt_metric_family *f, const char *labels)
{
    pt_metrics_zone *z = pt_metrics_zone_p;
    if (z == NULL || f == NULL)
        return -1;
    if (labels == NULL)
        labels = "";
    if (strlen(f->name) >= PT_METRICS_NAME_MAX || strlen(labels) >= PT_METRICS_LABELS_MAX)
        return -1;
    uint32_t h = hash_of(f->name, labels);
    int32_t id = lookup(z, f->name, labels, h);
    if (id >= 0)
        return (int32_t) z->series[id].first;

    int rc = pt_shm_mutex_lock(&z->lock);
    if (rc == PT_ERROR)
        return -1;
    if (rc == PT_AGAIN)
        repair(z);
    id = lookup(z, f->name, labels, h);     /* another worker may have made it meanwhile */
    if (id < 0) {
        uint32_t need = f->type == PT_METRIC_HISTOGRAM ? PT_METRIC_HIST_VALUES(f) : 1;
        if (z->nseries >= PT_METRICS_MAX_SERIES || z->nvalues + need > PT_METRICS_MAX_VALUES) {
            bool first = z->dropped++ == 0;
            pt_shm_mutex_unlock(&z->lock);
            if (first)
                pt_log(PT_LOG_WARN, "metrics registry full (%u series, %u values): %s{%s} "
                       "and further new series are not counted", PT_METRICS_MAX_SERIES,
                       PT_METRICS_MAX_VALUES, f->name, labels);
            return -1;
        }
        uint32_t i = z->nseries;
        pt_metric_entry *s = &z->series[i];
        snprintf(s->family, sizeof(s->family), "%s", f->name);
        snprintf(s->labels, sizeof(s->labels), "%s", labels);
        s->hash = h;
        s->first = z->nvalues;
        s->nvalues = need;
        /* values first (readers sum nvalues of them), then the entry, then the chain */
        STORE(&z->nvalues, z->nvalues + need);
        uint32_t *head = &z->chain[h % PT_METRICS_HASH];
        STORE(&s->next, LOAD(head));
        STORE(&z->nseries, i + 1);
        STORE(head, i + 1);
        id = (int32_t) i;
    }
    int32_t first = (int32_t) z->series[id].first;
    pt_shm_mutex_unlock(&z->lock);
    return first;
}

void pt_metric_observe(const pt_metric_family *f, int32_t id, uint64_t v)
{
    if (id < 0 || pt_metrics_mine == NULL)
        return;
    unsigned b = 0;
    while (b < f->nbounds && v > f->bounds[b])
        b++;
    uint64_t *row = pt_metrics_mine + id;
    row[b]++;
    row[f->nbounds + 1] += v;
    row[f->nbounds + 2]++;
}

/* ---- families ---- */

extern const pt_metric_family *const pt_metrics_core_families[];   /* metrics_core.c */

#define MAX_FAMILIES 256
static const pt_metric_family *families[MAX_FAMILIES];
static unsigned nfamilies;

void pt_metrics_family_add(const pt_metric_family *f)
{
    if (pt_metrics_family_find(f->name) == NULL && nfamilies < MAX_FAMILIES)
        families[nfamilies++] = f;
}

void pt_metrics_families_init(void)
{
    nfamilies = 0;
    for (unsigned i = 0; pt_metrics_core_families[i]; i++)
        pt_metrics_family_add(pt_metrics_core_families[i]);
    for (unsigned m = 0; m < pt_nmodules; m++)
        for (unsigned i = 0; pt_modules[m]->metric_families
                             && pt_modules[m]->metric_families[i]; i++)
            pt_metrics_family_add(pt_modules[m]->metric_families[i]);
}

const pt_metric_family *pt_metrics_family_find(const char *name)
{
    for (unsigned i = 0; i < nfamilies; i++)
        if (strcmp(families[i]->name, name) == 0)
            return families[i];
    return NULL;
}

/* ---- reading ---- */

/* Values [first, first + n) summed over the rows in use and the retired row. */
static void sum_range(uint64_t *out, uint32_t first, uint32_t n)
{
    pt_metrics_zone *z = pt_metrics_zone_p;
    memset(out, 0, n * sizeof(uint64_t));
    if (z == NULL || n == 0 || first + n > LOAD(&z->nvalues))
        return;
    for (unsigned tries = 0; tries < 1000; tries++) {
        uint32_t seq = pt_stats_zone ? LOAD(&pt_stats_zone->fold_seq) : 0;
        if (seq & 1)
            continue;
        memset(out, 0, n * sizeof(uint64_t));
        /* only the rows of slots in use (a free slot's row is zero): untouched rows stay
         * untouched */
        for (int w = 0; w < PT_METRICS_ROWS - 1; w++) {
            if (pt_stats_zone && LOAD(&pt_stats_zone->worker[w].pid) == 0
                && LOAD(&pt_stats_zone->worker[w].generation) == 0)
                continue;
            const uint64_t *row = z->values[w] + first;
            for (uint32_t i = 0; i < n; i++)
                out[i] += __atomic_load_n(&row[i], __ATOMIC_RELAXED);
        }
        const uint64_t *ret = z->values[PT_METRICS_ROWS - 1] + first;
        for (uint32_t i = 0; i < n; i++)
            out[i] += __atomic_load_n(&ret[i], __ATOMIC_RELAXED);
        if (!pt_stats_zone || LOAD(&pt_stats_zone->fold_seq) == seq)
            return;
    }
}

void pt_metrics_sum(uint64_t *out, uint32_t n)
{
    sum_range(out, 0, n);
}

uint64_t pt_metric_value(int32_t id)
{
    uint64_t v = 0;
    if (id >= 0)
        sum_range(&v, (uint32_t) id, 1);
    return v;
}

void pt_metrics_begin(pt_metrics_out *o, const pt_metric_family *f)
{
    o->begin(o, f);
}

void pt_metrics_sample(pt_metrics_out *o, const pt_metric_family *f, const char *labels,
                       double raw)
{
    o->sample(o, f, "", labels ? labels : "", raw * (f->scale ? f->scale : 1));
}

static void export_histogram(pt_metrics_out *o, const pt_metric_family *f,
                             const pt_metric_entry *s, const uint64_t *v)
{
    double scale = f->scale ? f->scale : 1;
    char labels[PT_METRICS_LABELS_MAX + 48];
    uint64_t cum = 0;
    for (unsigned b = 0; b <= f->nbounds; b++) {
        cum += v[b];
        char le[32];
        if (b < f->nbounds)
            snprintf(le, sizeof(le), "%.6g", (double) f->bounds[b] * scale);
        else
            snprintf(le, sizeof(le), "+Inf");
        snprintf(labels, sizeof(labels), "%s%sle=\"%s\"", s->labels, s->labels[0] ? "," : "",
                 le);
        o->sample(o, f, "_bucket", labels, (double) cum);
    }
    o->sample(o, f, "_sum", s->labels, (double) v[f->nbounds + 1] * scale);
    o->sample(o, f, "_count", s->labels, (double) v[f->nbounds + 2]);
}

void pt_metrics_export(pt_metrics_out *o)
{
    pt_metrics_zone *z = pt_metrics_zone_p;
    uint32_t nseries = z ? LOAD(&z->nseries) : 0;
    uint32_t nvalues = z ? LOAD(&z->nvalues) : 0;
    uint64_t *v = nvalues ? malloc(nvalues * sizeof(uint64_t)) : NULL;
    uint8_t *done = nseries ? calloc(nseries, 1) : NULL;

    if ((nvalues && v == NULL) || (nseries && done == NULL)) {
        nseries = 0;
    } else {
        pt_metrics_sum(v, nvalues);
    }
    /* the registry, family by family (a family's samples must be together) */
    for (uint32_t i = 0; i < nseries; i++) {
        if (done[i])
            continue;
        const pt_metric_family *f = pt_metrics_family_find(z->series[i].family);
        if (f == NULL)
            continue;               /* a family of another binary (an upgrade): unknown */
        o->begin(o, f);
        for (uint32_t j = i; j < nseries; j++) {
            const pt_metric_entry *s = &z->series[j];
            if (done[j] || strcmp(s->family, f->name) != 0)
                continue;
            done[j] = 1;
            if (s->first + s->nvalues > nvalues)
                continue;
            if (f->type == PT_METRIC_HISTOGRAM)
                export_histogram(o, f, s, v + s->first);
            else
                o->sample(o, f, "", s->labels, (double) v[s->first] * (f->scale ? f->scale : 1));
        }
    }
    free(done);
    free(v);
    pt_metrics_core_collect(o);
    for (unsigned m = 0; m < pt_nmodules; m++)
        if (pt_modules[m]->metrics_collect)
            pt_modules[m]->metrics_collect(o);
}
