/* Active health checks: probes made through the upstream exchange with no client behind
 * them (type "http"), or bare connects (type "tcp"), and their verdicts published in the
 * shared zone (pt_upstream_check_result: fall failures in a row take a server out, rise
 * passes bring it back).
 *
 * Once per server per interval for the whole instance, without a helper process: every
 * worker has a timer per checked group, and a probe that is due is claimed by moving the
 * server's shared check_next forward with a compare-and-swap. Exactly one worker wins
 * each interval; the others see the new due time and sleep until it. Nothing is held
 * while a probe runs, so there is no lease to lose: a worker that dies mid-probe (or is
 * killed) just loses that probe's verdict, and the next interval is claimed by whichever
 * worker wakes first, the master's replacement included. The counters the verdicts build
 * on (consecutive passes and failures) and the state live in the zone, so they survive
 * the prober, and a reload (same group name and server address). A draining worker (an
 * old generation during a reload) claims nothing more; the new one takes over. */
#include <errno.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/upstream.h"
#include "http_core.h"

#define PROBE_BODY_MAX   65536      /* body bytes matched against expect_body_regex */
#define CHECK_MIN_SLEEP  10         /* ms: a due probe still running here is looked at again */

/* ------------------------------------------------------------------ configuration */

static int set_type(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_health_conf *hc = base;
    const char *v = config_setting_get_string(s);
    if (v == NULL)
        return pt_conf_type_error(cx, s, "\"http\" or \"tcp\"");
    if (strcmp(v, "http") == 0)
        hc->type = PT_HEALTH_HTTP;
    else if (strcmp(v, "tcp") == 0)
        hc->type = PT_HEALTH_TCP;
    else
        return pt_conf_error(cx, s, "\"%s\": the type is \"http\" or \"tcp\"", v);
    return PT_OK;
}

static bool bad_target_char(const char *v)
{
    for (const unsigned char *p = (const unsigned char *) v; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return true;
    return false;
}

static int set_path(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_health_conf *hc = base;
    if (pt_conf_set_str(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    if (hc->path[0] != '/' || bad_target_char(hc->path))
        return pt_conf_error(cx, s, "\"%s\": a path starting with '/' (printable ASCII, no "
                             "spaces)", hc->path);
    return PT_OK;
}

static int set_host(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_health_conf *hc = base;
    if (pt_conf_set_pstr(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    if (hc->host.len == 0 || bad_target_char(hc->host.data))
        return pt_conf_error(cx, s, "\"%s\": a host name (printable ASCII, no spaces)",
                             hc->host.data);
    return PT_OK;
}

/* 200, or "200-399" */
static int set_expect_status(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                             void *base)
{
    pt_health_conf *hc = base;
    unsigned lo, hi;
    if (config_setting_type(s) == CONFIG_TYPE_INT) {
        lo = hi = (unsigned) config_setting_get_int(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        const char *v = config_setting_get_string(s);
        char end;
        if (sscanf(v, "%u-%u%c", &lo, &hi, &end) != 2)
            return pt_conf_error(cx, s, "\"%s\": a status (200) or a range (\"200-399\")", v);
    } else {
        return pt_conf_type_error(cx, s, "a status (200) or a range (\"200-399\")");
    }
    if (lo < 100 || hi > 599 || lo > hi)
        return pt_conf_error(cx, s, "statuses from 100 to 599, the first not above the last");
    hc->status_min = lo;
    hc->status_max = hi;
    return PT_OK;
}

static void regex_cleanup(void *code)
{
    pcre2_code_free(code);
}

static int set_body_regex(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_health_conf *hc = base;
    if (pt_conf_set_str(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) hc->body_regex, PCRE2_ZERO_TERMINATED, 0,
                                   &errcode, &erroff, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
            snprintf((char *) msg, sizeof(msg), "error %d", errcode);
        return pt_conf_error(cx, s, "%s at offset %zu", (char *) msg, (size_t) erroff);
    }
    if (pt_pool_cleanup_add(cx->pool, regex_cleanup, re) != PT_OK) {
        pcre2_code_free(re);
        return pt_conf_error(cx, NULL, "out of memory");
    }
    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    hc->body_re = re;
    return PT_OK;
}

static const pt_conf_key health_keys[] = {
    { "type", 0, set_type, 0, 0, 0, NULL },
    { "path", 0, set_path, offsetof(pt_health_conf, path), 1, 4096, NULL },
    { "host", 0, set_host, offsetof(pt_health_conf, host), 1, 255, NULL },
    { "interval_ms", 0, pt_conf_set_uint32, offsetof(pt_health_conf, interval_ms), 10, 86400000,
      NULL },
    { "timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_health_conf, timeout_ms), 1, 86400000,
      NULL },
    { "fall", 0, pt_conf_set_uint32, offsetof(pt_health_conf, fall), 1, 1000, NULL },
    { "rise", 0, pt_conf_set_uint32, offsetof(pt_health_conf, rise), 1, 1000, NULL },
    { "expect_status", 0, set_expect_status, 0, 0, 0, NULL },
    { "expect_body_regex", 0, set_body_regex, offsetof(pt_health_conf, body_regex), 1, 4096,
      NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_health_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_upstream *up = base;
    pt_health_conf *hc = &up->health;
    if (!config_setting_is_group(s))
        return pt_conf_type_error(cx, s, "a group: { type = \"http\"; path = \"/health\"; }");
    *hc = (pt_health_conf) {
        .type = PT_HEALTH_HTTP, .path = "/", .interval_ms = 2000, .timeout_ms = 1000,
        .fall = 3, .rise = 2, .status_min = 200, .status_max = 399,
        .line = (int) pt_conf_setting_line(cx, s),
    };
    if (pt_conf_parse_group(cx, s, health_keys, hc) != PT_OK)
        return PT_ERROR;
    if (hc->timeout_ms > hc->interval_ms)
        return pt_conf_error(cx, config_setting_get_member(s, "timeout_ms"),
                             "%u ms: more than interval_ms (%u): a probe must end before the "
                             "next is due", hc->timeout_ms, hc->interval_ms);
    if (hc->type == PT_HEALTH_TCP) {
        static const char *const http_only[] = { "path", "host", "expect_status",
                                                 "expect_body_regex", NULL };
        for (unsigned i = 0; http_only[i]; i++) {
            config_setting_t *m = config_setting_get_member(s, http_only[i]);
            if (m)
                return pt_conf_error(cx, m, "only for type = \"http\" (a tcp check only "
                                     "connects)");
        }
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ probes */

typedef struct group_check group_check;

typedef struct probe {
    pt_upx             x;
    group_check       *gc;
    unsigned           server;
    pt_pool           *pool;
    pt_upconn         *uc;          /* tcp */
    pt_timer           deadline;
    pt_defer           free_later;
    bool               done;
    struct probe      *prev, *next; /* the worker's running probes */
    size_t             body_len;
    char              *body;        /* expect_body_regex: what came of the body */
} probe;

struct group_check {
    const pt_upstream *up;
    pt_timer           timer;
    uint8_t           *running;     /* per server: a probe of ours runs */
};

static group_check *groups;
static unsigned     ngroups;
static probe       *probes;

static void probe_free(pt_defer *d)
{
    probe *pb = pt_container_of(d, probe, free_later);
    pt_pool_destroy(pb->pool);
    free(pb);
}

static void probe_unlink(probe *pb)
{
    if (pb->prev)
        pb->prev->next = pb->next;
    else
        probes = pb->next;
    if (pb->next)
        pb->next->prev = pb->prev;
    pb->prev = pb->next = NULL;
}

static void probe_end(probe *pb, bool ok, unsigned status, const char *why)
{
    if (pb->done)
        return;
    pb->done = true;
    const pt_upstream *up = pb->gc->up;
    pt_timer_del(&pt_loop_cur->timers, &pb->deadline);
    if (pb->uc) {
        pt_upconn_close(pb->uc);
        pb->uc = NULL;
    }
    if (up->health.type == PT_HEALTH_HTTP)
        pt_upx_abort(&pb->x);       /* nothing left if it was finished */
    pb->gc->running[pb->server] = 0;
    probe_unlink(pb);
    pt_upstream_check_result(up, &up->servers[pb->server], ok, status, why);
    /* the exchange may still be on the stack: freed after this round of events */
    pt_defer_add(pt_loop_cur, &pb->free_later);
}

static void probe_timeout(pt_timer *t)
{
    probe *pb = t->data;
    char why[64];
    snprintf(why, sizeof(why), "timed out after %u ms", pb->gc->up->health.timeout_ms);
    probe_end(pb, false, 0, why);
}

static void probe_verdict(probe *pb)
{
    const pt_health_conf *hc = &pb->gc->up->health;
    unsigned status = pb->x.ri.status;
    pt_upx_finish(&pb->x);
    if (hc->body_re) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(hc->body_re, NULL);
        int rc = md ? pcre2_match(hc->body_re, (PCRE2_SPTR) pb->body, pb->body_len, 0, 0, md,
                                  NULL)
                    : PCRE2_ERROR_NOMEMORY;
        pcre2_match_data_free(md);
        if (rc < 0) {
            char why[160];
            snprintf(why, sizeof(why), "status %u, the body does not match \"%s\"", status,
                     hc->body_regex);
            probe_end(pb, false, status, why);
            return;
        }
    }
    probe_end(pb, true, status, NULL);
}

static int probe_body(pt_upx *x, const char **d, size_t *n)
{
    return PT_DONE;
}

static void probe_data(pt_upx *x)
{
    probe *pb = x->owner;
    while (!pb->done) {
        const char *d;
        size_t n;
        int rc = pt_upx_read(x, &d, &n);
        if (rc == PT_AGAIN || rc == PT_ERROR)
            return;                     /* more later, or probe_fail ran */
        size_t take = pt_min(n, PROBE_BODY_MAX - pb->body_len);
        memcpy(pb->body + pb->body_len, d, take);
        pb->body_len += take;
        if (rc == PT_DONE || pb->body_len == PROBE_BODY_MAX) {
            probe_verdict(pb);          /* a longer body: its first 64 KiB are matched */
            return;
        }
    }
}

static void probe_head(pt_upx *x)
{
    probe *pb = x->owner;
    const pt_health_conf *hc = &pb->gc->up->health;
    unsigned status = x->ri.status;
    if (status < hc->status_min || status > hc->status_max) {
        char why[64];
        snprintf(why, sizeof(why), "status %u", status);
        probe_end(pb, false, status, why);
        return;
    }
    if (hc->body_re == NULL) {
        probe_verdict(pb);
        return;
    }
    probe_data(x);
}

static void probe_fail(pt_upx *x)
{
    probe *pb = x->owner;
    probe_end(pb, false, 0, x->why ? x->why : "failed");
}

static const pt_upx_handler probe_handler = {
    .body = probe_body,
    .head = probe_head,
    .data = probe_data,
    .fail = probe_fail,
};

static void tcp_event(pt_upconn *uc, uint32_t events)
{
    probe *pb = uc->owner;
    const char *tls_why = NULL;
    int rc = pt_upconn_connected(uc, &tls_why);   /* a TLS group's handshake included */
    if (rc == PT_AGAIN)
        return;
    if (rc == PT_ERROR) {
        char why[320];
        int e = errno;
        if (tls_why)
            snprintf(why, sizeof(why), "TLS handshake failed: %s", tls_why);
        else
            snprintf(why, sizeof(why), "connect() failed (%d: %s)", e, strerror(e));
        probe_end(pb, false, 0, why);
        return;
    }
    probe_end(pb, true, 0, NULL);
}

static void probe_start(group_check *gc, unsigned s)
{
    const pt_upstream *up = gc->up;
    const pt_health_conf *hc = &up->health;
    bool match = hc->type == PT_HEALTH_HTTP && hc->body_re;
    probe *pb = calloc(1, sizeof(*pb));
    if (pb == NULL || (pb->pool = pt_pool_create(4096)) == NULL
        || (match && (pb->body = pt_palloc(pb->pool, PROBE_BODY_MAX)) == NULL)) {
        if (pb && pb->pool)
            pt_pool_destroy(pb->pool);
        free(pb);
        pt_log(PT_LOG_ALERT, "upstream \"%s\": no memory for a health check", up->name);
        return;
    }
    pb->gc = gc;
    pb->server = s;
    pb->free_later.fn = probe_free;
    pb->next = probes;
    if (probes)
        probes->prev = pb;
    probes = pb;
    gc->running[s] = 1;
    pt_timer_init(&pb->deadline, probe_timeout, pb);
    pt_loop_timer(pt_loop_cur, &pb->deadline, hc->timeout_ms);

    if (hc->type == PT_HEALTH_TCP) {
        pt_upconn *uc = pt_upstream_connect(up, s, tcp_event, pb);
        if (uc == NULL) {
            char why[160];
            int e = errno;
            snprintf(why, sizeof(why), "connect() failed (%d: %s)", e, strerror(e));
            probe_end(pb, false, 0, why);
            return;
        }
        pb->uc = uc;
        if (uc->x.connected)
            probe_end(pb, true, 0, NULL);
        return;
    }
    pt_upx *x = &pb->x;
    pt_upx_init(x, up, &probe_handler, pb, NULL);
    x->pool = pb->pool;
    x->req.method = PT_STR("GET");
    x->req.method_id = PT_M_GET;
    x->req.target = (pt_str) { strlen(hc->path), hc->path };
    x->req.host = hc->host;
    pt_upx_pin(x, s);
    pt_upx_start(x);
}

/* Claims and starts the probes of the group that are due; sleeps until the next one. */
static void group_fire(pt_timer *t)
{
    group_check *gc = t->data;
    const pt_upstream *up = gc->up;
    if (pt_worker_draining())
        return;                         /* the new generation's workers probe now */
    uint64_t now = pt_loop_cur->now, next = UINT64_MAX;
    for (unsigned s = 0; s < up->nservers; s++) {
        const pt_upstream_server *sv = &up->servers[s];
        if (sv->down)
            continue;
        uint64_t due = __atomic_load_n(&sv->shared->check_next, __ATOMIC_ACQUIRE);
        if (now >= due && !gc->running[s]) {
            uint64_t at = now + up->health.interval_ms;
            if (__atomic_compare_exchange_n(&sv->shared->check_next, &due, at, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                due = at;
                probe_start(gc, s);
            }
        }
        next = pt_min(next, due > now ? due : now + CHECK_MIN_SLEEP);
    }
    if (next != UINT64_MAX)
        pt_loop_timer(pt_loop_cur, &gc->timer, next - now);
}

int pt_upstream_check_start(const pt_conf *conf)
{
    unsigned n = 0;
    for (unsigned i = 0; i < conf->nupstreams; i++)
        n += conf->upstreams[i].health.type != PT_HEALTH_NONE;
    if (n == 0)
        return PT_OK;
    groups = calloc(n, sizeof(*groups));
    if (groups == NULL)
        return PT_ERROR;
    for (unsigned i = 0; i < conf->nupstreams; i++) {
        const pt_upstream *up = &conf->upstreams[i];
        if (up->health.type == PT_HEALTH_NONE)
            continue;
        group_check *gc = &groups[ngroups++];
        gc->up = up;
        gc->running = calloc(up->nservers, 1);
        if (gc->running == NULL)
            return PT_ERROR;
        pt_timer_init(&gc->timer, group_fire, gc);
        pt_loop_timer(pt_loop_cur, &gc->timer, 0);
    }
    return PT_OK;
}

void pt_upstream_check_stop(void)
{
    /* probes still running are dropped without a verdict, as if this worker had died */
    while (probes) {
        probe *pb = probes;
        pb->done = true;
        probe_unlink(pb);
        pt_timer_del(&pt_loop_cur->timers, &pb->deadline);
        if (pb->uc)
            pt_upconn_close(pb->uc);
        else if (pb->gc->up->health.type == PT_HEALTH_HTTP)
            pt_upx_abort(&pb->x);
        pt_pool_destroy(pb->pool);
        free(pb);
    }
    for (unsigned i = 0; i < ngroups; i++) {
        pt_timer_del(&pt_loop_cur->timers, &groups[i].timer);
        free(groups[i].running);
    }
    free(groups);
    groups = NULL;
    ngroups = 0;
}
