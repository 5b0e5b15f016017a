/* The test module: compiled only into the test binary (t/portico-test), never into
 * server/portico. It drives the module API the way real modules will, so that the API is
 * proven before one depends on it:
 *   - a handler in every phase, each of which can suspend (PT_AGAIN) and be resumed from
 *     a timer (suspend_ms), and the access phase can refuse (deny);
 *   - a header filter (adds X-Test-Phases) and a body filter that expands every input byte
 *     into `expand` output bytes, emitted in pieces with back-pressure, both switched on
 *     per request from the headers phase;
 *   - a log handler that says what happened.
 *
 *   routes = ( { path_prefix = "/t/"; upstream = "app";
 *                test = { suspend_ms = 20; expand = 1024; deny = false; }; } );
 */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/event.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"

extern pt_module pt_test_module;

#define TEST_PIECE 16384

typedef struct test_route_conf {
    bool     set;
    uint32_t suspend_ms;
    uint32_t expand;        /* 0: no body filter */
    bool     deny;
} test_route_conf;

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
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_test(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    test_route_conf *tc = base;
    if (pt_conf_parse_group(cx, s, test_group_keys, tc) != PT_OK)
        return PT_ERROR;
    tc->set = true;
    return PT_OK;
}

static const pt_conf_key test_keys[] = {
    { "test", PT_SCOPE_ROUTE, set_test, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int test_worker_init(pt_cycle *cy)
{
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (char) ('a' + i % 26);
    return PT_OK;
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
    if (phase == PT_PHASE_HEADERS && pt_http_filter_on(r, &pt_test_module) != PT_OK)
        return PT_ERROR;
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
    .route_conf_size = sizeof(test_route_conf),
    .worker_init = test_worker_init,
    .phase = { test_headers, test_access, test_precontent },
    .header_filter_order = 100,
    .header_filter = test_header_filter,
    .body_filter_order = 100,
    .body_filter = test_body_filter,
    .log = test_log,
};
