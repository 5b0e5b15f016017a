/* admin: /metrics (the Prometheus text exposition format, version 0.0.4) and /status
 * (the same state as one JSON document, for the status page and for scripts).
 *
 * Both are rendered by whichever worker takes the request, from shared memory only: the
 * metrics registry and pt_stats summed over the worker slots, and the "upstreams" zone. */
#include <stdio.h>
#include <time.h>

#include "portico/conf.h"
#include "portico/cycle-t.h"
#include "portico/metrics.h"
#include "portico/module.h"
#include "portico/shm.h"
#include "portico/upstream.h"
#include "admin.h"

/* ---- Prometheus text ---- */

static const char *const type_names[] = { "counter", "gauge", "histogram" };

static void text_begin(pt_metrics_out *o, const pt_metric_family *f)
{
    pt_admin_buf *b = o->data;
    pt_admin_printf(b, "# HELP %s ", f->name);
    /* HELP text escapes backslash and newline */
    for (const char *p = f->help; *p; p++) {
        if (*p == '\\')
            pt_admin_put(b, "\\\\", 2);
        else if (*p == '\n')
            pt_admin_put(b, "\\n", 2);
        else
            pt_admin_put(b, p, 1);
    }
    pt_admin_printf(b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
}

static void text_sample(pt_metrics_out *o, const pt_metric_family *f, const char *suffix,
                        const char *labels, double v)
{
    pt_admin_buf *b = o->data;
    pt_admin_printf(b, "%s%s", f->name, suffix);
    if (labels[0])
        pt_admin_printf(b, "{%s}", labels);
    if (v != v)
        pt_admin_put(b, " NaN\n", 5);
    else if (v > 1.7e308)
        pt_admin_put(b, " +Inf\n", 6);
    else if (v == (double) (uint64_t) v && v >= 0 && v < 9007199254740992.0)
        pt_admin_printf(b, " %llu\n", (unsigned long long) v);
    else
        pt_admin_printf(b, " %.9g\n", v);
}

void pt_admin_metrics_text(pt_admin_buf *b)
{
    pt_metrics_out o = { text_begin, text_sample, b };
    pt_metrics_export(&o);
}

/* ---- /status ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static void json_key(pt_admin_buf *b, const char *k)
{
    pt_admin_json_str(b, k, strlen(k));
    pt_admin_put(b, ": ", 2);
}

static void json_kv_num(pt_admin_buf *b, const char *k, double v, bool comma)
{
    json_key(b, k);
    pt_admin_json_num(b, v);
    if (comma)
        pt_admin_put(b, ", ", 2);
}

static void json_kv_str(pt_admin_buf *b, const char *k, const char *v, bool comma)
{
    json_key(b, k);
    pt_admin_json_str(b, v, strlen(v));
    if (comma)
        pt_admin_put(b, ", ", 2);
}

static const char *state_word(uint32_t st)
{
    static const char *const words[] = { "up", "slow_start", "down", "draining" };
    return st < pt_nelems(words) ? words[st] : "unknown";
}

void pt_admin_server_json(pt_admin_buf *b, const void *upv, unsigned server)
{
    const pt_upstream *up = upv;
    const pt_upstream_server *sv = &up->servers[server];
    const pt_upstream_shared *sh = sv->shared;

    pt_admin_put(b, "{", 1);
    json_kv_str(b, "address", sv->address, true);
    json_kv_str(b, "resolved", sv->addr_text, true);
    if (sh == NULL) {
        json_kv_str(b, "state", "unknown", false);
        pt_admin_put(b, "}", 1);
        return;
    }
    uint32_t why = LD(&sh->down_why);
    json_kv_str(b, "state", state_word(LD(&sh->state)), true);
    json_key(b, "down_why");
    pt_admin_put(b, "[", 1);
    static const struct { uint32_t bit; const char *word; } whys[] = {
        { PT_SV_DOWN_ADMIN, "config_down" }, { PT_SV_DOWN_CHECK, "health_check" },
        { PT_SV_DOWN_FAILS, "max_fails" }, { PT_SV_DOWN_REMOVED, "removed" },
        { PT_SV_DOWN_API_DRAIN, "api_drain" }, { PT_SV_DOWN_API, "api_down" },
    };
    bool first = true;
    for (unsigned i = 0; i < pt_nelems(whys); i++) {
        if (!(why & whys[i].bit))
            continue;
        if (!first)
            pt_admin_put(b, ", ", 2);
        first = false;
        pt_admin_json_str(b, whys[i].word, strlen(whys[i].word));
    }
    pt_admin_put(b, "], ", 3);
    json_kv_num(b, "weight", LD(&sh->weight), true);
    json_kv_num(b, "config_weight", sv->weight, true);
    json_key(b, "backup");
    pt_admin_put(b, sv->backup ? "true, " : "false, ", sv->backup ? 6 : 7);
    json_kv_num(b, "active", (double) pt_max(LD(&sh->active), 0), true);
    json_kv_num(b, "requests", (double) LD(&sh->requests), true);
    json_kv_num(b, "failures", (double) LD(&sh->failures), true);
    json_kv_num(b, "transitions", (double) LD(&sh->transitions), true);
    json_kv_num(b, "state_since_ms", (double) LD(&sh->state_since), true);
    json_kv_num(b, "response_time_avg_seconds", (double) LD(&sh->resp_ewma_us) / 1e6, true);
    json_kv_num(b, "checks", (double) LD(&sh->checks), true);
    json_kv_num(b, "checks_failed", (double) LD(&sh->checks_failed), false);
    pt_admin_put(b, "}", 1);
}

void pt_admin_upstream_json(pt_admin_buf *b, const void *upv)
{
    const pt_upstream *up = upv;

    pt_admin_put(b, "{", 1);
    json_kv_str(b, "name", up->name, true);
    json_kv_str(b, "balance", up->balancer ? up->balancer->name : "round_robin", true);
    json_key(b, "servers");
    pt_admin_put(b, "[", 1);
    for (unsigned s = 0; s < up->nservers; s++) {
        if (s)
            pt_admin_put(b, ", ", 2);
        pt_admin_server_json(b, up, s);
    }
    pt_admin_put(b, "]}", 2);
}

/* A module's summary: `"name": {"key": n, ...}, `, opened at its first number */
typedef struct {
    pt_admin_buf *b;
    const char   *name;
    bool          open;
} status_sink;

static void status_num(pt_status_out *o, const char *key, double v)
{
    status_sink *s = o->data;
    if (!s->open) {
        json_key(s->b, s->name);
        pt_admin_put(s->b, "{", 1);
        s->open = true;
    } else {
        pt_admin_put(s->b, ", ", 2);
    }
    json_kv_num(s->b, key, v, false);
}

static void modules_json(pt_admin_buf *b)
{
    for (unsigned m = 0; m < pt_nmodules; m++) {
        if (pt_modules[m]->status_collect == NULL)
            continue;
        status_sink s = { b, pt_modules[m]->name, false };
        pt_status_out o = { status_num, &s };
        pt_modules[m]->status_collect(&o);
        if (s.open)
            pt_admin_put(b, "}, ", 3);
    }
}

void pt_admin_status_json(pt_admin_buf *b)
{
    const pt_conf *conf = pt_cycle_cur->conf;
    pt_stats *st = pt_stats_zone;
    pt_worker_stats t;
    unsigned nworkers = 0;

    pt_metrics_stats_sum(&t, &nworkers);
    pt_admin_put(b, "{", 1);
    json_kv_str(b, "version", PT_VERSION, true);
    json_kv_num(b, "now_ms", (double) now_ms(), true);
    json_kv_num(b, "started_ms", st ? (double) st->started : 0, true);
    json_kv_num(b, "generation", st ? (double) LD(&st->generation) : 0, true);
    json_kv_num(b, "worker_restarts", st ? (double) LD(&st->worker_restarts) : 0, true);
    json_key(b, "reloads");
    pt_admin_put(b, "{", 1);
    json_kv_num(b, "ok", st ? (double) LD(&st->reloads) : 0, true);
    json_kv_num(b, "failed", st ? (double) LD(&st->reloads_failed) : 0, true);
    json_kv_num(b, "last_ms", st ? (double) LD(&st->reload_last) : 0, true);
    json_key(b, "last_ok");
    bool last_ok = !st || !LD(&st->reload_last) || LD(&st->reload_last_ok);
    pt_admin_put(b, last_ok ? "true}, " : "false}, ", last_ok ? 7 : 8);

    json_key(b, "requests");
    pt_admin_put(b, "{", 1);
    json_kv_num(b, "total", (double) t.requests, true);
    static const char *const cls[] = { "none", "1xx", "2xx", "3xx", "4xx", "5xx" };
    for (unsigned i = 0; i < pt_nelems(cls); i++)
        json_kv_num(b, cls[i], (double) t.status[i], true);
    json_kv_num(b, "refused", (double) t.refused, false);
    pt_admin_put(b, "}, ", 3);
    json_key(b, "bytes");
    pt_admin_put(b, "{", 1);
    json_kv_num(b, "in", (double) t.bytes_in, true);
    json_kv_num(b, "out", (double) t.bytes_out, false);
    pt_admin_put(b, "}, ", 3);
    json_key(b, "connections");
    pt_admin_put(b, "{", 1);
    json_kv_num(b, "accepted", (double) t.accepted, true);
    json_kv_num(b, "active", (double) t.busy, true);
    json_kv_num(b, "idle", (double) (t.active - t.busy), false);
    pt_admin_put(b, "}, ", 3);
    modules_json(b);

    json_key(b, "workers");
    pt_admin_put(b, "[", 1);
    bool first = true;
    for (unsigned i = 0; st && i < pt_nelems(st->worker); i++) {
        const pt_worker_stats *w = &st->worker[i];
        int64_t pid = LD(&w->pid);
        if (pid == 0)
            continue;
        if (!first)
            pt_admin_put(b, ", ", 2);
        first = false;
        pt_admin_put(b, "{", 1);
        json_kv_num(b, "pid", (double) pid, true);
        json_kv_num(b, "generation", (double) LD(&w->generation), true);
        json_kv_num(b, "accepted", (double) LD(&w->accepted), true);
        json_kv_num(b, "requests", (double) LD(&w->requests), true);
        json_kv_num(b, "connections", (double) LD(&w->active), false);
        pt_admin_put(b, "}", 1);
    }
    pt_admin_put(b, "], ", 3);

    json_key(b, "listeners");
    pt_admin_put(b, "[", 1);
    for (unsigned i = 0; i < conf->nlisteners; i++) {
        const pt_listener_conf *l = &conf->listeners[i];
        if (i)
            pt_admin_put(b, ", ", 2);
        pt_admin_put(b, "{", 1);
        json_kv_str(b, "name", l->name, true);
        json_kv_str(b, "address", l->address, true);
        json_key(b, "admin");
        pt_admin_put(b, l->handler ? "true}" : "false}", l->handler ? 5 : 6);
    }
    pt_admin_put(b, "], ", 3);

    json_key(b, "upstreams");
    pt_admin_put(b, "[", 1);
    for (unsigned u = 0; u < conf->nupstreams; u++) {
        if (u)
            pt_admin_put(b, ", ", 2);
        pt_admin_upstream_json(b, &conf->upstreams[u]);
    }
    pt_admin_put(b, "]}\n", 3);
}
