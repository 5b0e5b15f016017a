/* The test module: compiled only into the test binary (t/portico-test), never into
 * server/portico. It drives the module API the way real modules will, so that the API is
 * proven before one depends on it:
 *   - a handler in every phase, each of which can suspend (PT_AGAIN) and be resumed from
 *     a timer (suspend_ms), and the access phase can refuse (deny);
 *   - a header filter (adds X-Test-Phases) and a body filter that expands every input byte
 *     into `expand` output bytes, emitted in pieces with back-pressure, both switched on
 *     per request from the headers phase;
 *   - edits of the request head in a phase (a field, the path) that the request to the
 *     origin must carry;
 *   - a log handler that says what happened;
 *   - an upstream exchange with no client request at all (test_probe), the way health
 *     checks will run, logging the server's shared counters (kept across reloads);
 *   - a reader of the shared named counters (test_counters = true on a route: the
 *     response lists "name value" lines), until the metrics module exists.
 *
 *   test_probe = { upstream = "app"; path = "/probe"; interval_ms = 200; };
 *   routes = ( { path_prefix = "/t/"; upstream = "app";
 *                test = { suspend_ms = 20; expand = 1024; deny = false; path = "/x"; }; } );
 */
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/upstream.h"

extern pt_module pt_test_module;

#define TEST_PIECE 16384

typedef struct test_route_conf {
    bool     set;
    uint32_t suspend_ms;
    uint32_t expand;        /* 0: no body filter */
    bool     deny;
    pt_str   path;          /* rewrites the request's path in the headers phase */
    bool     counters;      /* test_counters: the content is the shared counters */
} test_route_conf;

typedef struct test_main_conf {
    const char        *probe_upstream;
    const char        *probe_path;
    uint32_t           probe_interval_ms;
    config_setting_t  *probe_setting;
} test_main_conf;

typedef struct test_ctx {
    pt_request *r;
    pt_timer    timer;
    unsigned    seen;           /* phases entered, by bit */
    unsigned    resumed;        /* times a timer resumed the phases */
    char        phases[64];
    size_t      phases_len;
    uint64_t    owed;           /* expanded bytes still to emit */
    uint64_t    emitted;
    bool        last;           /* the content's last byte came */
    bool        last_sent;
} test_ctx;

static char pattern[TEST_PIECE];

static const pt_conf_key test_group_keys[] = {
    { "suspend_ms", 0, pt_conf_set_uint32, offsetof(test_route_conf, suspend_ms), 0, 10000, NULL },
    { "expand", 0, pt_conf_set_uint32, offsetof(test_route_conf, expand), 0, 65536, NULL },
    { "deny", 0, pt_conf_set_bool, offsetof(test_route_conf, deny), 0, 0, NULL },
    { "path", 0, pt_conf_set_pstr, offsetof(test_route_conf, path), 1, 1024, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static const pt_conf_key probe_keys[] = {
    { "upstream", 0, pt_conf_set_str, offsetof(test_main_conf, probe_upstream), 1, 256, NULL },
    { "path", 0, pt_conf_set_str, offsetof(test_main_conf, probe_path), 1, 1024, NULL },
    { "interval_ms", 0, pt_conf_set_uint32, offsetof(test_main_conf, probe_interval_ms),
      10, 60000, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_probe(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    test_main_conf *mc = base;
    mc->probe_path = "/";
    mc->probe_interval_ms = 200;
    mc->probe_setting = s;
    if (pt_conf_parse_group(cx, s, probe_keys, mc) != PT_OK)
        return PT_ERROR;
    if (mc->probe_upstream == NULL)
        return pt_conf_error(cx, s, "needs an upstream");
    return PT_OK;
}

static int set_test(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    test_route_conf *tc = base;
    if (pt_conf_parse_group(cx, s, test_group_keys, tc) != PT_OK)
        return PT_ERROR;
    tc->set = true;
    return PT_OK;
}

static const pt_conf_key test_keys[] = {
    /* first: the key that makes the module produce the content (pt_conf_set_content) */
    { "test_counters", PT_SCOPE_ROUTE, pt_conf_set_bool, offsetof(test_route_conf, counters),
      0, 0, NULL },
    { "test", PT_SCOPE_ROUTE | PT_SCOPE_GLOBAL, set_test, 0, 0, 0, NULL },
    { "test_probe", PT_SCOPE_MAIN, set_probe, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int test_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    test_main_conf *mc = pt_main_conf(conf, pt_test_module);
    for (unsigned i = 0; i < conf->nroutes; i++) {
        const test_route_conf *tc = pt_route_conf(&conf->routes[i], pt_test_module);
        if (tc->counters && pt_conf_set_content(cx, &conf->routes[i], &pt_test_module) != PT_OK)
            return PT_ERROR;
    }
    if (mc->probe_upstream && pt_upstream_find(conf, mc->probe_upstream) == NULL)
        return pt_conf_error(cx, config_setting_get_member(mc->probe_setting, "upstream"),
                             "no upstream named \"%s\"", mc->probe_upstream);
    return PT_OK;
}

/* ---- an exchange with no client: what a health check does ---- */

typedef struct test_probe {
    pt_upx         x;
    pt_timer       timer;
    pt_pool       *pool;
    const pt_upstream *up;
    const char    *path;
    uint32_t       interval_ms;
    uint64_t       body_len;
    bool           running;
} test_probe;

static test_probe *probe;

static void probe_end(test_probe *pb, const char *outcome)
{
    const pt_upstream_server *sv = pb->x.server;
    const pt_upstream_shared *sh = sv ? sv->shared : NULL;
    pt_log(PT_LOG_INFO, "test probe: upstream \"%s\" server %s: %s, %llu body bytes; shared: "
           "%llu requests, %lld in flight", pb->up->name, sv ? sv->addr_text : "-", outcome,
           (unsigned long long) pb->body_len,
           sh ? (unsigned long long) __atomic_load_n(&sh->requests, __ATOMIC_RELAXED) : 0ull,
           sh ? (long long) __atomic_load_n(&sh->active, __ATOMIC_RELAXED) : 0ll);
    pb->running = false;
    pt_loop_timer(pt_loop_cur, &pb->timer, pb->interval_ms);
}

static int probe_body(pt_upx *x, const char **d, size_t *n)
{
    return PT_DONE;
}

static void probe_data(pt_upx *x)
{
    test_probe *pb = x->owner;
    for (;;) {
        const char *d;
        size_t n;
        int rc = pt_upx_read(x, &d, &n);
        if (rc == PT_AGAIN || rc == PT_ERROR)
            return;                     /* more later, or probe_fail ran */
        pb->body_len += n;
        if (rc == PT_DONE) {
            char what[32];
            snprintf(what, sizeof(what), "status %u", x->ri.status);
            pt_upx_finish(x);
            probe_end(pb, what);
            return;
        }
    }
}

static void probe_fail(pt_upx *x)
{
    probe_end(x->owner, x->why ? x->why : "failed");
}

static const pt_upx_handler probe_handler = {
    .body = probe_body,
    .head = probe_data,
    .data = probe_data,
    .fail = probe_fail,
};

static void probe_fire(pt_timer *t)
{
    test_probe *pb = t->data;
    if (pb->running)
        return;
    pt_pool_reset(pb->pool);
    pt_upx_init(&pb->x, pb->up, &probe_handler, pb, NULL);
    pb->x.pool = pb->pool;
    pb->x.req.method = PT_STR("GET");
    pb->x.req.method_id = PT_M_GET;
    pb->x.req.target = (pt_str) { strlen(pb->path), pb->path };
    pb->body_len = 0;
    pb->running = true;
    pt_upx_start(&pb->x);
}

static int test_worker_init(pt_cycle *cy)
{
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char) ('a' + i % 26);
    test_main_conf *mc = pt_main_conf(cy->conf, pt_test_module);
    if (mc->probe_upstream == NULL)
        return PT_OK;
    probe = calloc(1, sizeof(*probe));
    if (probe == NULL || (probe->pool = pt_pool_create(4096)) == NULL)
        return PT_ERROR;
    probe->up = pt_upstream_find(cy->conf, mc->probe_upstream);
    probe->path = mc->probe_path;
    probe->interval_ms = mc->probe_interval_ms;
    pt_timer_init(&probe->timer, probe_fire, probe);
    pt_loop_timer(pt_loop_cur, &probe->timer, 1);
    return PT_OK;
}

static void test_worker_exit(pt_cycle *cy)
{
    if (probe == NULL)
        return;
    pt_timer_del(&pt_loop_cur->timers, &probe->timer);
    if (probe->running)
        pt_upx_abort(&probe->x);
    pt_pool_destroy(probe->pool);
    free(probe);
    probe = NULL;
}

static void test_resume(pt_timer *t)
{
    test_ctx *tx = t->data;
    tx->resumed++;
    pt_http_run_phases(tx->r);      /* the suspended handler runs again */
}

static void test_abort(pt_request *r)
{
    test_ctx *tx = pt_req_ctx(r, pt_test_module);
    if (tx)
        pt_timer_del(&pt_loop_cur->timers, &tx->timer);
}

static int test_phase(pt_request *r, unsigned phase, const char *name)
{
    const test_route_conf *tc = r->route ? pt_route_conf(r->route, pt_test_module) : NULL;
    if (tc == NULL || !tc->set)
        return PT_DECLINED;
    test_ctx *tx = pt_req_ctx(r, pt_test_module);
    if (tx == NULL) {
        tx = pt_pcalloc(r->pool, sizeof(*tx));
        if (tx == NULL)
            return PT_ERROR;
        tx->r = r;
        pt_timer_init(&tx->timer, test_resume, tx);
        pt_req_set_ctx(r, pt_test_module, tx);
        r->on_abort = test_abort;
    }
    if (tx->seen & (1u << phase))
        return PT_OK;                   /* resumed: this phase is done */
    tx->seen |= 1u << phase;
    int n = snprintf(tx->phases + tx->phases_len, sizeof(tx->phases) - tx->phases_len, "%s%s",
                     tx->phases_len ? "," : "", name);
    if (n > 0)
        tx->phases_len += (size_t) n;
    if (phase == PT_PHASE_HEADERS) {
        /* the head is the module's to edit: the request to the origin is built from it */
        if (pt_http_filter_on(r, &pt_test_module) != PT_OK
            || pt_http_req_header_set(r, PT_STR("X-Test"), PT_STR("edited")) != PT_OK)
            return PT_ERROR;
        if (tc->path.len)
            r->head.path = tc->path;
    }
    if (phase == PT_PHASE_ACCESS && tc->deny) {
        r->error_reason = "denied by the test module";
        return 403;
    }
    if (tc->suspend_ms) {
        pt_loop_timer(pt_loop_cur, &tx->timer, tc->suspend_ms);
        return PT_AGAIN;
    }
    return PT_OK;
}

static int test_request(pt_request *r)    { return test_phase(r, PT_PHASE_REQUEST, "request"); }
static int test_headers(pt_request *r)    { return test_phase(r, PT_PHASE_HEADERS, "headers"); }
static int test_access(pt_request *r)     { return test_phase(r, PT_PHASE_ACCESS, "access"); }
static int test_precontent(pt_request *r) { return test_phase(r, PT_PHASE_PRECONTENT, "precontent"); }

static int test_header_filter(pt_request *r)
{
    test_ctx *tx = pt_req_ctx(r, pt_test_module);
    const test_route_conf *tc = pt_route_conf(r->route, pt_test_module);
    if (tx == NULL)
        return PT_DECLINED;
    if (pt_http_add_header(r, PT_STR("X-Test-Phases"),
                           (pt_str) { tx->phases_len, tx->phases }) != PT_OK)
        return PT_ERROR;
    if (tc->expand && !r->no_body && r->status >= 200)
        r->resp_length = -1;            /* the body changes size: chunked */
    return PT_OK;
}

/* Every input byte becomes `expand` bytes of output, emitted TEST_PIECE at a time. The
 * pattern is static, so the pieces stay valid while queued; when the next filter (or the
 * session) says PT_AGAIN the rest is owed and emitted when the core calls again. */
static int test_body_filter(pt_request *r, const char *data, size_t len, bool last)
{
    test_ctx *tx = pt_req_ctx(r, pt_test_module);
    const test_route_conf *tc = pt_route_conf(r->route, pt_test_module);
    if (tx == NULL || tc->expand == 0)
        return pt_http_body_next(r, &pt_test_module, data, len, last);
    tx->owed += (uint64_t) len * tc->expand;
    if (last)
        tx->last = true;
    while (tx->owed) {
        size_t n = (size_t) pt_min(tx->owed, (uint64_t) TEST_PIECE);
        int rc = pt_http_body_next(r, &pt_test_module, pattern, n, false);
        if (rc == PT_ERROR)
            return PT_ERROR;
        tx->owed -= n;                  /* taken (written or queued) either way */
        tx->emitted += n;
        if (rc == PT_AGAIN)
            return PT_AGAIN;
    }
    if (tx->last && !tx->last_sent) {
        tx->last_sent = true;
        return pt_http_body_next(r, &pt_test_module, NULL, 0, true);
    }
    return tx->last_sent ? PT_OK : pt_http_body_next(r, &pt_test_module, NULL, 0, false);
}

/* The shared named counters, one "name value" line each (slots in use only). */
static int test_counters(pt_request *r)
{
    pt_shm_zone *z = pt_shm_find(pt_cycle_cur->conf, "counters");
    const pt_counters_zone *cz = z ? z->addr : NULL;
    size_t cap = 65536, len = 0;
    char *out = pt_palloc(r->pool, cap);
    if (out == NULL)
        return 500;
    for (uint32_t i = 0; cz && i < cz->nslots && cz->slot[i].name[0]; i++) {
        int n = snprintf(out + len, cap - len, "%s %llu\n", cz->slot[i].name,
                         (unsigned long long) pt_counter_get(&cz->slot[i]));
        if (n < 0 || (size_t) n >= cap - len)
            break;
        len += (size_t) n;
    }
    return pt_http_respond(r, 200, PT_STR("text/plain"), (pt_str) { len, out });
}

static void test_log(pt_request *r)
{
    test_ctx *tx = pt_req_ctx(r, pt_test_module);
    if (tx == NULL)
        return;
    pt_log(PT_LOG_INFO, "test module: %.*s %.*s: phases %.*s, resumed %u times, status %u, "
           "%llu bytes emitted by the body filter",
           (int) r->head.method_name.len, r->head.method_name.data,
           (int) pt_min(r->head.target.len, 200), r->head.target.data,
           (int) tx->phases_len, tx->phases, tx->resumed, r->status,
           (unsigned long long) tx->emitted);
}

pt_module pt_test_module = {
    .name = "test",
    .keys = test_keys,
    .main_conf_size = sizeof(test_main_conf),
    .route_conf_size = sizeof(test_route_conf),
    .conf_check = test_conf_check,
    .worker_init = test_worker_init,
    .worker_exit = test_worker_exit,
    .content = test_counters,
    .phase = { [PT_PHASE_REQUEST] = test_request, [PT_PHASE_HEADERS] = test_headers,
               [PT_PHASE_ACCESS] = test_access, [PT_PHASE_PRECONTENT] = test_precontent },
    .header_filter_order = 100,
    .header_filter = test_header_filter,
    .body_filter_order = 100,
    .body_filter = test_body_filter,
    .log = test_log,
};
