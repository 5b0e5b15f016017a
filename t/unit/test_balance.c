/* The balancing policies and the shared server state, without sockets: what each policy
 * picks (weights, smoothness, loads seen in shared memory, response times, stickiness,
 * Maglev's disruption on removal), the skip set, max_conns, backups, passive health and
 * the "every server is down" answer. Then a micro-benchmark: pick + release for every
 * policy at 10 and 1,000 servers (printed as diagnostics, never asserted). */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "portico/event.h"
#include "portico/http-t.h"
#include "portico/log.h"
#include "portico/upstream.h"
#include "tap.h"

static pt_loop             loop;
static uint64_t            state_gen;
static pt_upstream_shared *slots;
static uint64_t            none[PT_UPSTREAM_SKIP_WORDS];

/* A group of n servers "10.0.x.y:80" with weight 1, slots from the start of `slots`. */
static pt_upstream mkgroup(const char *name, unsigned n, const pt_balancer *b, unsigned first)
{
    pt_upstream up;
    memset(&up, 0, sizeof(up));
    up.name = name;
    up.balancer = b;
    up.nservers = n;
    up.max_fails = 1;
    up.fail_timeout_ms = 10000;
    up.state_gen = &state_gen;
    up.servers = calloc(n, sizeof(pt_upstream_server));
    for (unsigned i = 0; i < n; i++) {
        pt_upstream_server *sv = &up.servers[i];
        sv->index = i;
        sv->weight = 1;
        snprintf(sv->addr_text, sizeof(sv->addr_text), "10.0.%u.%u:80", i / 256, i % 256);
        sv->shared = &slots[first + i];
        memset(sv->shared, 0, sizeof(*sv->shared));
        size_t a = strlen(name);
        memcpy(sv->shared->key, name, a + 1);
        memcpy(sv->shared->key + a + 1, sv->addr_text, strlen(sv->addr_text) + 1);
    }
    return up;
}

static pt_var_part uri_part = { PT_VAR_URI, { 0, NULL } };

static pt_conf conf;

static void start(pt_upstream *ups, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ups[i].index = i;
    conf.upstreams = ups;
    conf.nupstreams = n;
    if (pt_upstream_worker_init(&conf) != PT_OK) {
        printf("Bail out! worker init failed\n");
        exit(1);
    }
}

static void stop(pt_upstream *ups, unsigned n)
{
    pt_upstream_worker_exit();
    for (unsigned i = 0; i < n; i++)
        free(ups[i].servers);
}

/* pick, and end the request at once */
static int pick1(pt_upstream *up, const pt_request *r)
{
    int s = pt_upstream_pick(up, r, none);
    if (s >= 0)
        pt_upstream_release(up, (unsigned) s);
    return s;
}

static unsigned longest_run(const int *seq, unsigned n, int who)
{
    unsigned best = 0, cur = 0;
    for (unsigned i = 0; i < n; i++) {
        cur = seq[i] == who ? cur + 1 : 0;
        best = cur > best ? cur : best;
    }
    return best;
}

static pt_request req;
static pt_conn    conn;
static char       paths[10000][16];

static void set_path(unsigned i)
{
    req.path = (pt_str) { strlen(paths[i]), paths[i] };
}

static void set_peer(uint32_t ip)
{
    conn.peer.in4.sin_family = AF_INET;
    conn.peer.in4.sin_addr.s_addr = htonl(ip);
}

static void mark_down(pt_upstream *up, unsigned s)
{
    __atomic_fetch_or(&up->servers[s].shared->down_why, PT_SV_DOWN_ADMIN, __ATOMIC_ACQ_REL);
    pt_upstream_publish(up, &up->servers[s], "test");
}

static void mark_up(pt_upstream *up, unsigned s)
{
    __atomic_fetch_and(&up->servers[s].shared->down_why, ~PT_SV_DOWN_ADMIN, __ATOMIC_ACQ_REL);
    pt_upstream_publish(up, &up->servers[s], "test");
}

/* ------------------------------------------------------------------ behaviour */

static void test_round_robin(void)
{
    pt_upstream up = mkgroup("rr", 3, &pt_balance_round_robin, 0);
    up.servers[0].weight = 1;
    up.servers[1].weight = 2;
    up.servers[2].weight = 3;
    start(&up, 1);
    int seq[600];
    unsigned count[3] = { 0 };
    for (unsigned i = 0; i < 600; i++)
        count[seq[i] = pick1(&up, NULL)]++;
    tap_ok(count[0] == 100 && count[1] == 200 && count[2] == 300,
           "round robin 1:2:3 over 600 picks: exactly 100/200/300 (%u/%u/%u)", count[0],
           count[1], count[2]);
    tap_ok(longest_run(seq, 600, 0) == 1 && longest_run(seq, 600, 1) == 1
           && longest_run(seq, 600, 2) <= 2, "smooth: runs of at most 1, 1, 2");
    bool every6 = true;
    for (unsigned i = 0; i + 6 <= 600; i += 6) {
        unsigned c[3] = { 0 };
        for (unsigned j = i; j < i + 6; j++)
            c[seq[j]]++;
        every6 = every6 && c[0] == 1 && c[1] == 2 && c[2] == 3;
    }
    tap_ok(every6, "every cycle of 6 holds each server exactly its weight (%d %d %d %d %d %d)",
           seq[0], seq[1], seq[2], seq[3], seq[4], seq[5]);

    uint64_t tried[PT_UPSTREAM_SKIP_WORDS] = { 0 };
    tried[0] = 1u << 2;
    bool no2 = true;
    for (unsigned i = 0; i < 30; i++) {
        int s = pt_upstream_pick(&up, NULL, tried);
        no2 = no2 && s != 2 && s >= 0;
        pt_upstream_release(&up, (unsigned) s);
    }
    tap_ok(no2, "a tried server is skipped");
    tried[0] = 7;
    tap_is_int(pt_upstream_pick(&up, NULL, tried), PT_PICK_NONE_LEFT, "all tried: none left");
    stop(&up, 1);
}

static void test_max_conns(void)
{
    pt_upstream up = mkgroup("mc", 2, &pt_balance_round_robin, 0);
    up.servers[0].max_conns = 2;
    start(&up, 1);
    int held[8];
    unsigned on0 = 0;
    for (unsigned i = 0; i < 8; i++) {
        held[i] = pt_upstream_pick(&up, NULL, none);
        on0 += held[i] == 0;
    }
    tap_is_int(on0, 2, "max_conns = 2: 8 requests in flight, 2 on the limited server");
    tap_is_int(up.servers[0].shared->active, 2, "...its shared count says 2");
    __atomic_store_n(&up.servers[1].shared->active, 0, __ATOMIC_RELAXED);
    up.servers[1].max_conns = 1;
    __atomic_store_n(&up.servers[1].shared->active, 1, __ATOMIC_RELAXED);   /* another worker */
    tap_is_int(pt_upstream_pick(&up, NULL, none), PT_PICK_ALL_FULL, "every server full: ALL_FULL");
    tap_ok(!pt_upstream_acquire(&up, 0, false) && pt_upstream_acquire(&up, 0, true),
           "acquire refuses past max_conns unless forced");
    stop(&up, 1);
}

static void test_least(void)
{
    pt_upstream ups[2] = { mkgroup("lc", 3, &pt_balance_least_conn, 0),
                           mkgroup("lt", 3, &pt_balance_least_time, 3) };
    start(ups, 2);
    pt_upstream *lc = &ups[0], *lt = &ups[1];
    /* another worker has 5 requests on s0 and s1 */
    lc->servers[0].shared->active = 5;
    lc->servers[1].shared->active = 5;
    int got[5];
    for (unsigned i = 0; i < 5; i++)
        got[i] = pt_upstream_pick(lc, NULL, none);     /* held */
    tap_ok(got[0] == 2 && got[1] == 2 && got[2] == 2 && got[3] == 2 && got[4] == 2,
           "least_conn: the loads other workers put in shared memory count: 5 picks on s2");
    int next = pt_upstream_pick(lc, NULL, none);
    tap_ok(next >= 0, "...then every server is level (5 each) and the next goes anywhere (%d)", next);
    /* the other worker's requests on s0 end: seen within a few picks */
    lc->servers[0].shared->active = 0;
    int after = pick1(lc, NULL);
    tap_is_int(after, 0, "least_conn: a server relieved by another worker is seen again");
    /* ties go round robin */
    for (unsigned i = 0; i < 3; i++)
        lc->servers[i].shared->active = 0;
    pt_upstream_refresh(pt_upstream_rt_of(lc));
    unsigned c[3] = { 0 };
    char order[31] = "";
    for (unsigned i = 0; i < 30; i++) {
        int s = pick1(lc, NULL);
        c[s]++;
        order[i] = (char) ('0' + s);
    }
    tap_diag("  least_conn idle: %s", order);
    tap_ok(c[0] >= 9 && c[0] <= 11 && c[1] >= 9 && c[1] <= 11 && c[2] >= 9 && c[2] <= 11,
           "least_conn idle: ties round robin (%u %u %u)",
           c[0], c[1], c[2]);

    lt->servers[0].shared->resp_ewma_us = 5000;
    lt->servers[1].shared->resp_ewma_us = 100;
    lt->servers[2].shared->resp_ewma_us = 900;
    pt_upstream_refresh(pt_upstream_rt_of(lt));
    int held[9];
    unsigned on[3] = { 0 };
    for (unsigned i = 0; i < 9; i++)
        on[held[i] = pt_upstream_pick(lt, NULL, none)]++;
    tap_ok(on[1] >= 7 && on[0] == 0, "least_time: the fast server takes most (%u %u %u)", on[0],
           on[1], on[2]);
    for (unsigned i = 0; i < 9; i++)
        pt_upstream_release(lt, (unsigned) held[i]);
    pt_upstream_result res = { PT_UP_OK, 200, 50000, NULL };
    for (unsigned i = 0; i < 30; i++)
        pt_upstream_report(lt, 1, &res);
    tap_ok(lt->servers[1].shared->resp_ewma_us > 20000, "least_time: the average follows the "
           "reports (%llu us)", (unsigned long long) lt->servers[1].shared->resp_ewma_us);
    tap_is_int(pick1(lt, NULL), 2, "...and the pick moves to the now fastest");
    stop(ups, 2);
}

static void test_random_two(void)
{
    pt_upstream up = mkgroup("r2", 4, &pt_balance_random_two, 0);
    start(&up, 1);
    up.servers[0].shared->active = 100;
    unsigned c[4] = { 0 };
    for (unsigned i = 0; i < 4000; i++)
        c[pick1(&up, NULL)]++;
    tap_ok(c[0] < 4000 / 20, "random_two: the loaded server is picked rarely (%u of 4000)", c[0]);
    tap_ok(c[1] > 800 && c[2] > 800 && c[3] > 800, "...the others evenly (%u %u %u)", c[1], c[2],
           c[3]);
    stop(&up, 1);
}

static void test_hash(void)
{
    pt_upstream ups[3] = { mkgroup("h5", 5, &pt_balance_hash, 0),
                           mkgroup("h4", 4, &pt_balance_hash, 5),
                           mkgroup("ip", 3, &pt_balance_ip_hash, 9) };
    for (unsigned i = 0; i < 2; i++)
        ups[i].hash_key = (pt_hash_key) { "$uri", { &uri_part, 1, true } };
    start(ups, 3);
    static int first[10000];
    unsigned c[5] = { 0 };
    bool same = true;
    for (unsigned i = 0; i < 10000; i++) {
        set_path(i);
        c[first[i] = pick1(&ups[0], &req)]++;
        same = same && pick1(&ups[0], &req) == first[i];
    }
    tap_ok(same, "hash: a key maps to the same server every time");
    tap_ok(c[0] > 1500 && c[1] > 1500 && c[2] > 1500 && c[3] > 1500 && c[4] > 1500,
           "hash: 10,000 keys spread over 5 servers (%u %u %u %u %u)", c[0], c[1], c[2], c[3], c[4]);
    unsigned moved = 0, moved_other = 0;
    for (unsigned i = 0; i < 10000; i++) {
        set_path(i);
        int s = pick1(&ups[1], &req);
        moved += s != first[i];
        moved_other += s != first[i] && first[i] != 4;
    }
    tap_ok(moved <= 2500, "Maglev: the same servers less s4 remap %u of 10,000 keys (<= 1/5 + 5 %%)",
           moved);
    tap_diag("  of them %u were not on the removed server", moved_other);
    mark_down(&ups[0], 2);
    unsigned wrong = 0, to2 = 0;
    for (unsigned i = 0; i < 10000; i++) {
        set_path(i);
        int s = pick1(&ups[0], &req);
        wrong += first[i] != 2 && s != first[i];
        to2 += s == 2;
    }
    tap_ok(wrong == 0 && to2 == 0, "hash: a server down moves only its own keys (%u others moved, "
           "%u to it)", wrong, to2);
    mark_up(&ups[0], 2);
    set_path(7);
    tap_is_int(pick1(&ups[0], &req), first[7], "...and they come back when it does");

    set_peer(0x0a010203);
    int a = pick1(&ups[2], &req);
    set_peer(0x0a0102fe);
    int b = pick1(&ups[2], &req);
    unsigned spread[3] = { 0 };
    for (uint32_t net = 0; net < 300; net++) {
        set_peer(0x0a000001 + (net << 8));
        spread[pick1(&ups[2], &req)]++;
    }
    tap_ok(a == b, "ip_hash: the same /24, the same server");
    tap_ok(spread[0] > 50 && spread[1] > 50 && spread[2] > 50, "ip_hash: /24s spread (%u %u %u)",
           spread[0], spread[1], spread[2]);
    stop(ups, 3);
}

static void test_state(void)
{
    pt_upstream up = mkgroup("st", 3, &pt_balance_round_robin, 0);
    up.servers[2].backup = true;
    up.has_backup = true;
    start(&up, 1);
    uint64_t gen = state_gen;
    pt_upstream_result fail = { PT_UP_CONNECT_FAILED, 0, 10, "connect() failed" };
    pt_upstream_report(&up, 0, &fail);
    tap_is_int(up.servers[0].shared->state, PT_SV_DOWN, "max_fails = 1: one failure, down");
    tap_ok(up.servers[0].shared->down_why == PT_SV_DOWN_FAILS && state_gen == gen + 1,
           "...for passive health, and announced (state_gen moved)");
    bool only1 = true;
    for (unsigned i = 0; i < 10; i++)
        only1 = only1 && pick1(&up, NULL) == 1;
    tap_ok(only1, "the next picks avoid it; the backup stays unused");
    pt_upstream_report(&up, 1, &fail);
    tap_is_int(pick1(&up, NULL), 2, "every primary down: the backup");
    mark_down(&up, 2);
    tap_is_int(pt_upstream_pick(&up, NULL, none), PT_PICK_ALL_DOWN, "every server down: ALL_DOWN");
    pt_upstream_rt *rt = pt_upstream_rt_of(&up);
    tap_is_int(rt->retry_after, 10, "...Retry-After: the failures end in 10 s");
    /* fail_timeout_ms passes */
    up.servers[0].shared->fails_until = loop.now;
    pt_upstream_refresh(rt);
    tap_is_int(up.servers[0].shared->state, PT_SV_UP, "after fail_timeout_ms it is tried again");
    tap_is_int(up.servers[0].shared->fails, 0, "...on probation (fails = max_fails - 1)");
    pt_upstream_report(&up, 0, &fail);
    tap_is_int(up.servers[0].shared->state, PT_SV_DOWN, "...one failure and it is out again");
    stop(&up, 1);
}

/* ------------------------------------------------------------------ benchmark */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void bench(const pt_balancer *b, unsigned n)
{
    pt_upstream up = mkgroup("bench", n, b, 0);
    up.hash_key = (pt_hash_key) { "$uri", { &uri_part, 1, true } };
    for (unsigned i = 0; i < n; i++)
        up.servers[i].weight = 1 + i % 3;
    start(&up, 1);
    /* a steady load: some requests in flight everywhere, as other workers would hold */
    for (unsigned i = 0; i < n; i++)
        up.servers[i].shared->active = (int64_t) (i * 7 % 5);
    unsigned iters = 400000;
    double t0 = now_s();
    for (unsigned i = 0; i < iters; i++) {
        set_path(i % 10000);
        set_peer(0x0a000000 + i * 2654435761u);
        int s = pt_upstream_pick(&up, &req, none);
        if (s >= 0)
            pt_upstream_release(&up, (unsigned) s);
    }
    double ns = (now_s() - t0) * 1e9 / iters;
    tap_diag("  %-12s %5u servers: %7.1f ns per pick + release", b->name, n, ns);
    stop(&up, 1);
}

int main(void)
{
    pt_log_open("-", PT_LOG_ERR);     /* the transitions the tests cause are warnings */
    if (pt_loop_init(&loop) != PT_OK)
        return 1;
    pt_loop_cur = &loop;
    slots = aligned_alloc(64, 2048 * sizeof(pt_upstream_shared));
    memset(slots, 0, 2048 * sizeof(pt_upstream_shared));
    for (unsigned i = 0; i < 10000; i++)
        snprintf(paths[i], sizeof(paths[i]), "/k%u", i);
    req.conn = &conn;
    set_peer(0x7f000001);

    test_round_robin();
    test_max_conns();
    test_least();
    test_random_two();
    test_hash();
    test_state();

    tap_diag("micro-benchmark (timings are printed, never asserted):");
    const pt_balancer *all[] = { &pt_balance_round_robin, &pt_balance_least_conn,
                                 &pt_balance_least_time, &pt_balance_hash,
                                 &pt_balance_ip_hash, &pt_balance_random_two };
    for (unsigned a = 0; a < pt_nelems(all); a++) {
        bench(all[a], 10);
        bench(all[a], 1000);
    }
    free(slots);
    pt_loop_free(&loop);
    tap_plan(tap_n);
    return tap_failed ? 1 : 0;
}
