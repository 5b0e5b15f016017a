/* The response cache without sockets: what RFC 9111 says (Cache-Control, dates,
 * validators), and the shared store: objects small and chained, replacement, Vary,
 * fetch and pass entries, update marks, purge, eviction within the zone, loading from a
 * file (a damaged object dropped), and processes sharing it: readers that must never see
 * a torn object while writers replace and evict, writers killed at any point (inside the
 * lock too) leaving a zone the next process repairs with nothing leaked. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/shm.h"
#include "portico/shm_slab.h"
#include "portico/str.h"
#include "cache.h"
#include "tap.h"

static char err[256];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static bool pid_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static pt_str S(const char *s)
{
    return (pt_str) { strlen(s), s };
}

static int wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ RFC 9111 */

static void test_cc(void)
{
    cache_cc cc;
    pt_header h[3] = {
        { PT_STR("Cache-Control"), PT_STR("public, max-age=60, s-maxage=\"30\"") },
        { PT_STR("X-Other"), PT_STR("max-age=1") },
        { PT_STR("cache-control"), PT_STR("stale-while-revalidate=5,  no-cache=\"Set-Cookie\", foo=bar, must-revalidate") },
    };
    cache_cc_parse(h, 3, &cc);
    tap_ok(cc.public_ && cc.max_age == 60 && cc.s_maxage == 30, "public, max-age, quoted s-maxage");
    tap_ok(cc.stale_while_revalidate == 5 && cc.no_cache && cc.must_revalidate,
           "a second Cache-Control field; qualified no-cache counts; unknown ignored");
    tap_ok(!cc.no_store && !cc.private_ && cc.stale_if_error == -1, "absent directives");

    pt_header b[] = { { PT_STR("Cache-Control"), PT_STR("max-age=abc, private, max-age=10") } };
    cache_cc_parse(b, 1, &cc);
    tap_ok(cc.max_age == 0 && cc.private_, "an invalid max-age reads as 0 (most restrictive)");
    pt_header c[] = { { PT_STR("Cache-Control"), PT_STR("max-age=99999999999999, no-store") } };
    cache_cc_parse(c, 1, &cc);
    tap_ok(cc.max_age == 2147483648LL && cc.no_store, "an overflowing delta is 2^31");
    pt_header d[] = { { PT_STR("Cache-Control"), PT_STR("max-age=60 junk, no-store") } };
    cache_cc_parse(d, 1, &cc);
    tap_ok(cc.max_age == -1 && cc.no_store, "a malformed element is skipped, the next one read");
    pt_header e[] = { { PT_STR("Cache-Control"), PT_STR("max-stale, only-if-cached, min-fresh=3") } };
    cache_cc_parse(e, 1, &cc);
    tap_ok(cc.max_stale == 2147483648LL && cc.only_if_cached && cc.min_fresh == 3,
           "request directives");
}

static void test_dates(void)
{
    int64_t t = 0;
    tap_ok(cache_parse_date(S("Sun, 06 Nov 1994 08:49:37 GMT"), &t) && t == 784111777,
           "IMF-fixdate");
    tap_ok(cache_parse_date(S("Sunday, 06-Nov-94 08:49:37 GMT"), &t) && t == 784111777,
           "RFC 850");
    tap_ok(cache_parse_date(S("Sun Nov  6 08:49:37 1994"), &t) && t == 784111777, "asctime");
    tap_ok(!cache_parse_date(S("0"), &t) && !cache_parse_date(S("yesterday"), &t)
           && !cache_parse_date(S("Sun, 06 Nov 1994 08:49:37"), &t)
           && !cache_parse_date(S("Sun, 06 Nov 1994 08:49:37 GMT x"), &t),
           "invalid dates refused");
    char buf[32];
    size_t n = cache_format_date(784111777, buf);
    tap_ok(n == 29 && memcmp(buf, "Sun, 06 Nov 1994 08:49:37 GMT", 29) == 0, "formatted: %.*s",
           (int) n, buf);
    n = cache_format_date(1798675200, buf);     /* 2027-01-01 */
    tap_ok(cache_parse_date((pt_str) { n, buf }, &t) && t == 1798675200, "round trip: %.*s",
           (int) n, buf);
}

static void test_validators(void)
{
    tap_ok(cache_etag_match(S("\"a\", W/\"b\""), S("\"b\"")), "weak comparison: W/\"b\" matches \"b\"");
    tap_ok(cache_etag_match(S("\"x\""), S("W/\"x\"")), "a weak stored tag matches too");
    tap_ok(!cache_etag_match(S("\"a\", \"b\""), S("\"c\"")), "no match");
    tap_ok(cache_etag_match(S("*"), S("\"c\"")), "* matches");
    tap_ok(!cache_etag_match(S("\"a\""), S("a")), "a malformed stored tag never matches");
    tap_ok(cache_status_cacheable(200, false) && cache_status_cacheable(404, false)
           && !cache_status_cacheable(302, false) && cache_status_cacheable(302, true)
           && !cache_status_cacheable(206, true) && !cache_status_cacheable(500, true),
           "cacheable statuses");
    tap_ok(cache_field_unstored(S("Age")) && cache_field_unstored(S("Content-Length"))
           && !cache_field_unstored(S("ETag")), "fields not stored");
    /* the checksum of a stream fed in pieces is the sum of the whole */
    char data[1000];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (char) (i * 7);
    cache_summer s = { 0 };
    unsigned cuts[] = { 3, 1, 8, 13, 500, 475 };
    size_t at = 0;
    for (unsigned i = 0; i < 6; i++) {
        cache_summer_feed(&s, data + at, cuts[i]);
        at += cuts[i];
    }
    tap_ok(cache_summer_final(&s) == cache_sum_bytes(0, data, sizeof(data)),
           "a checksum fed in pieces equals the checksum of the whole");
}

/* ------------------------------------------------------------------ the store */

static void *zone_mem;
static size_t zone_size;

static void zone_new(size_t size)
{
    if (zone_mem)
        munmap(zone_mem, zone_size);
    zone_size = size;
    zone_mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pt_shm_zone sz = { .addr = zone_mem, .size = size };
    cache_env_cur.pid = getpid();
    cache_env_cur.alive = pid_alive;
    cache_env_cur.pin_limit_s = 60;
    if (cache_zone_setup(&sz, false, now_ms()) != PT_OK) {
        tap_ok(0, "zone setup");
        exit(1);
    }
}

/* A body derived from its key, so any reader can tell a right one from a torn one. */
static size_t body_for(const char *key, uint64_t version, char *buf, size_t max)
{
    uint64_t h = cache_sum_bytes(version, key, strlen(key));
    size_t len = (size_t) (h % max);
    uint64_t x = h | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (char) x;
    }
    if (len >= 8)
        memcpy(buf, &version, 8);   /* which version: a reader checks against that one */
    return len;
}

static int store(const char *key, const char *vary, const char *names, const char *body,
                 size_t len, bool known_length)
{
    cache_writer w;
    cache_meta m = { .status = 200, .resp_ms = now_ms(), .lifetime = 60 };
    pt_str head = S("Content-Type: text/plain\r\nETag: \"x\"\r\n");
    if (cache_write_begin(&w, &m, S(key), S(vary), S("/t\nhost"), head,
                          known_length ? len : UINT64_MAX, 8 << 20, now_ms()) != PT_OK)
        return PT_ERROR;
    for (size_t at = 0; at < len;) {
        size_t k = pt_min(len - at, (size_t) 1000 + at % 3000);
        if (cache_write(&w, body + at, k, now_ms()) != PT_OK)
            return PT_ERROR;
        at += k;
    }
    return cache_write_commit(&w, S(key), S(vary), S(names), now_ms());
}

/* Reads the object's body: 1 right, 0 not found or changed under us, -1 WRONG. */
static int fetch_check(const char *key, const char *vary, char *buf, size_t *len,
                       const char *want, size_t want_len)
{
    cache_snap s;
    pt_str k = S(key), v = S(vary);
    if (cache_lookup(cache_hash(k, v), k, v, &s) != PT_OK || s.e.kind != CK_OBJECT)
        return 0;
    uint64_t at = s.e.key_len + s.e.vary_len + s.e.req_len + s.e.head_len;
    cache_cursor cur = { 0 };
    for (uint64_t done = 0; done < s.e.body_len;) {
        size_t k2 = (size_t) pt_min(s.e.body_len - done, (uint64_t) 5000);
        if (!cache_read(&s, &cur, at + done, k2, buf + done))
            return 0;
        done += k2;
    }
    *len = (size_t) s.e.body_len;
    if (want)
        return *len == want_len && memcmp(buf, want, want_len) == 0 ? 1 : -1;
    return 1;
}

static void test_store_basics(void)
{
    zone_new(8 << 20);
    static char body[200000], got[200000];
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "a new zone checks out %s", err);

    memset(body, 'a', 1024);
    tap_is_int(store("k1", "", "", body, 1024, true), PT_OK, "a 1 KiB object is stored");
    size_t len = 0;
    tap_is_int(fetch_check("k1", "", got, &len, body, 1024), 1, "...and read back whole");
    cache_snap s;
    cache_lookup(cache_hash(S("k1"), S("")), S("k1"), S(""), &s);
    tap_ok(s.e.chunks == 0 && s.e.cap < 2048, "...from one slot (inline, %u bytes)", s.e.cap);

    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char) (i * 31 + 7);
    tap_is_int(store("big", "", "", body, 150000, true), PT_OK, "a 150 KB object");
    tap_is_int(fetch_check("big", "", got, &len, body, 150000), 1, "...read back through its chunks");
    tap_is_int(store("chunked", "", "", body, 90000, false), PT_OK,
               "an object of unknown length");
    tap_is_int(fetch_check("chunked", "", got, &len, body, 90000), 1, "...read back");
    tap_is_int(store("short", "", "", body, 300, false), PT_OK, "a short one of unknown length");
    cache_lookup(cache_hash(S("short"), S("")), S("short"), S(""), &s);
    tap_ok(s.e.cap < 1024, "...moved to a slot of its size at commit (%u)", s.e.cap);
    tap_is_int(fetch_check("short", "", got, &len, body, 300), 1, "...intact");

    /* replacement: readers see the old or the new object, never a mix */
    cache_snap old;
    cache_lookup(cache_hash(S("big"), S("")), S("big"), S(""), &old);
    memset(body, 'b', 5000);
    tap_is_int(store("big", "", "", body, 5000, true), PT_OK, "the key stored again");
    tap_is_int(fetch_check("big", "", got, &len, body, 5000), 1, "the new object is served");
    tap_ok(!cache_still(&old), "the old one is gone for whoever still held it");
    char tmp[16];
    tap_ok(!cache_read(&old, NULL, 0, 8, tmp), "...and reading it fails");

    /* a body short of its announced length, an abort: nothing visible */
    cache_writer w;
    cache_meta m = { .status = 200, .resp_ms = now_ms(), .lifetime = 60 };
    cache_write_begin(&w, &m, S("cut"), S(""), S(""), S(""), 10000, 1 << 20, now_ms());
    cache_write(&w, body, 4000, now_ms());
    tap_is_int(cache_write_commit(&w, S("cut"), S(""), S(""), now_ms()), PT_ERROR,
               "a body short of its Content-Length is not committed");
    tap_is_int(fetch_check("cut", "", got, &len, NULL, 0), 0, "...and not visible");
    cache_write_begin(&w, &m, S("over"), S(""), S(""), S(""), UINT64_MAX, 1000, now_ms());
    tap_is_int(cache_write(&w, body, 1001, now_ms()), PT_ERROR, "over max_body: refused");
    tap_is_int(cache_write_commit(&w, S("over"), S(""), S(""), now_ms()), PT_ERROR, "...aborted");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent, nothing leaked %s", err);
    tap_is_int(cache_z->pending_n, 0, "nothing pending");

    /* Vary: a marker at the key and one object per variant */
    tap_is_int(store("v", "accept-encoding:gzip\n", "accept-encoding\n", "gz", 2, true), PT_OK,
               "a variant");
    tap_is_int(store("v", "accept-encoding\n", "accept-encoding\n", "id", 2, true), PT_OK,
               "another variant");
    tap_ok(cache_lookup(cache_hash(S("v"), S("")), S("v"), S(""), &s) == PT_OK
           && s.e.kind == CK_VARY && s.e.head_len == strlen("accept-encoding\n"),
           "the key holds a VARY entry naming the field");
    tap_ok(fetch_check("v", "accept-encoding:gzip\n", got, &len, "gz", 2) == 1
           && fetch_check("v", "accept-encoding\n", got, &len, "id", 2) == 1,
           "each variant has its own object");
    tap_is_int(store("v", "", "", "plain", 5, true), PT_OK, "the key without Vary now");
    tap_is_int(fetch_check("v", "", got, &len, "plain", 5), 1, "...replaces the VARY entry");

    /* purge: exact (every variant), prefix, a PENDING one doomed */
    store("v", "accept-encoding:br\n", "accept-encoding\n", "br", 2, true);
    tap_is_int(cache_purge(S("v"), false, now_ms()), 3, "purge of a key: its variants too");
    tap_ok(fetch_check("v", "accept-encoding:gzip\n", got, &len, NULL, 0) == 0
           && cache_lookup(cache_hash(S("v"), S("")), S("v"), S(""), &s) == PT_DECLINED,
           "...all gone, the VARY entry with them");
    store("p/a", "", "", "1", 1, true);
    store("p/b", "", "", "2", 1, true);
    store("q/a", "", "", "3", 1, true);
    tap_is_int(cache_purge(S("p/"), true, now_ms()), 2, "a prefix purge");
    tap_ok(fetch_check("q/a", "", got, &len, "3", 1) == 1, "...others stay");
    cache_write_begin(&w, &m, S("p/c"), S(""), S(""), S(""), 1, 100, now_ms());
    cache_write(&w, "x", 1, now_ms());
    cache_purge(S("p/"), true, now_ms());
    tap_is_int(cache_write_commit(&w, S("p/c"), S(""), S(""), now_ms()), PT_ERROR,
               "an object being written when its key is purged is not committed");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent %s", err);

    /* fills, passes, marks */
    cache_snap mine, found;
    uint64_t t = now_ms();
    tap_ok(cache_fill_begin(cache_hash(S("f"), S("")), S("f"), S(""), t + 5000, t, &mine, &found),
           "a FILL entry for a missing key");
    tap_ok(!cache_fill_begin(cache_hash(S("f"), S("")), S("f"), S(""), t + 5000, t, &s, &found)
           && found.e.kind == CK_FILL, "a second fetch finds it");
    store("f", "", "", "filled", 6, true);
    cache_fill_end(&mine);
    tap_is_int(fetch_check("f", "", got, &len, "filled", 6), 1,
               "the object replaces the FILL; ending the fill then leaves it alone");
    cache_fill_begin(cache_hash(S("g"), S("")), S("g"), S(""), t + 5000, t, &mine, &found);
    cache_fill_end(&mine);
    tap_is_int(cache_lookup(cache_hash(S("g"), S("")), S("g"), S(""), &s), PT_DECLINED,
               "a fill that stored nothing leaves nothing");
    cache_pass(cache_hash(S("g"), S("")), S("g"), S(""), t + 10000, t);
    tap_ok(cache_lookup(cache_hash(S("g"), S("")), S("g"), S(""), &s) == PT_OK
           && s.e.kind == CK_PASS, "a PASS entry");
    cache_lookup(cache_hash(S("f"), S("")), S("f"), S(""), &s);
    tap_ok(cache_mark(&s, t + 1000, t), "the update mark is taken");
    cache_snap s2;
    cache_lookup(cache_hash(S("f"), S("")), S("f"), S(""), &s2);
    tap_ok(cache_updating(&s2.e, t) && !cache_mark(&s2, t + 1000, t),
           "...seen by a lookup, and not taken twice");
    tap_ok(!cache_updating(&s2.e, t + 2000), "...not past its deadline");
    cache_unmark(&s);
    cache_lookup(cache_hash(S("f"), S("")), S("f"), S(""), &s2);
    tap_ok(!cache_updating(&s2.e, t), "released");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent %s", err);

    /* a serve pinning an object: replaced, it is retired, then freed once unpinned */
    memset(body, 'p', 100000);
    store("pin", "", "", body, 100000, true);
    cache_snap ps;
    cache_lookup(cache_hash(S("pin"), S("")), S("pin"), S(""), &ps);
    cache_pin(&ps, now_ms());
    store("pin", "", "", "new", 3, true);
    tap_ok(cache_still(&ps) && cache_z->retired_n == 1,
           "a pinned object replaced: retired, still readable by its serve");
    tap_ok(cache_read(&ps, NULL, ps.e.key_len + ps.e.vary_len + ps.e.req_len + ps.e.head_len
                      + 99990, 10, got) && memcmp(got, body, 10) == 0, "...whole");
    cache_unpin(&ps);
    cache_maintain(now_ms());
    tap_ok(!cache_still(&ps) && cache_z->retired_n == 0, "unpinned: freed by maintenance");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent %s", err);
}

static void test_eviction(void)
{
    zone_new(2 << 20);
    static char body[70000], got[70000];
    unsigned stored = 0;
    uint64_t max_bytes = 0;
    for (unsigned i = 0; i < 3000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key-%u", i);
        size_t len = body_for(key, 1, body, i % 10 == 0 ? 60000 : 3000);
        if (store(key, "", "", body, len, i % 2) == PT_OK)
            stored++;
        if (cache_z->object_bytes > max_bytes)
            max_bytes = cache_z->object_bytes;
    }
    tap_is_int(stored, 3000, "3000 unique keys (about 11 MB) stored in a 2 MiB zone");
    tap_ok(cache_z->evictions > 2000, "by evicting the coldest (%llu evictions)",
           (unsigned long long) cache_z->evictions);
    tap_ok(max_bytes <= 2 << 20, "the objects never took more than the zone (at most %llu bytes)",
           (unsigned long long) max_bytes);
    size_t len;
    unsigned recent = 0;
    for (unsigned i = 2990; i < 3000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "key-%u", i);
        size_t want = body_for(key, 1, body, i % 10 == 0 ? 60000 : 3000);
        recent += fetch_check(key, "", got, &len, body, want) == 1;
    }
    tap_is_int(recent, 10, "the latest keys are there, whole");
    tap_is_int(fetch_check("key-1", "", got, &len, NULL, 0), 0, "the first ones are gone");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent after eviction %s", err);

    /* a hit gives an entry another turn: a hot key outlives a stream of cold ones */
    size_t hl = body_for("hot", 1, body, 3000);
    store("hot", "", "", body, hl, true);
    for (unsigned i = 0; i < 3000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "cold-%u", i);
        size_t l = body_for(key, 1, body, 3000);
        store(key, "", "", body, l, true);
        if (i % 50 == 0) {
            cache_snap s;
            if (cache_lookup(cache_hash(S("hot"), S("")), S("hot"), S(""), &s) == PT_OK)
                cache_touch(&s);
        }
    }
    body_for("hot", 1, body, 3000);
    tap_is_int(fetch_check("hot", "", got, &len, body, hl), 1,
               "a key hit now and then survives 3000 cold ones (CLOCK)");
}

/* ------------------------------------------------------------------ processes */

#define KEYS 64

/* A writer: stores keys with increasing versions, forever or n rounds. */
static void writer_loop(unsigned seed, unsigned rounds)
{
    static char body[60000];
    cache_env_cur.pid = getpid();
    srand(seed);
    for (unsigned r = 0; rounds == 0 || r < rounds; r++) {
        char key[32];
        snprintf(key, sizeof(key), "shared-%d", rand() % KEYS);
        uint64_t version = (uint64_t) rand() % 4;
        size_t len = body_for(key, version, body, rand() % 5 == 0 ? 60000 : 2500);
        store(key, "", "", body, len, rand() % 2);
        if (rand() % 50 == 0)
            cache_purge(S(key), false, now_ms());
    }
}

/* A reader: every object it finds whole must be exactly one of the versions. */
static int reader_loop(unsigned rounds)
{
    static char got[60000], want[60000];
    int wrong = 0;
    unsigned found = 0;
    for (unsigned r = 0; r < rounds; r++) {
        char key[32];
        snprintf(key, sizeof(key), "shared-%u", r % KEYS);
        size_t len;
        if (fetch_check(key, "", got, &len, NULL, 0) != 1)
            continue;
        found++;
        uint64_t version = 0;
        if (len >= 8)
            memcpy(&version, got, 8);
        bool right = false;
        for (uint64_t v = 0; v < 4 && !right; v++) {
            size_t wl = body_for(key, v, want, 60000);
            if (wl == len && memcmp(want, got, len) == 0)
                right = true;
            wl = body_for(key, v, want, 2500);
            if (wl == len && memcmp(want, got, len) == 0)
                right = true;
        }
        if (!right)
            wrong++;
    }
    return wrong ? 1 : found ? 0 : 2;
}

static void test_processes(void)
{
    zone_new(1 << 20);          /* small: constant eviction */
    pid_t kids[6];
    for (unsigned i = 0; i < 3; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            writer_loop(i + 1, 3000);
            _exit(0);
        }
    }
    for (unsigned i = 3; i < 6; i++) {
        kids[i] = fork();
        if (kids[i] == 0)
            _exit(reader_loop(40000));
    }
    bool ok = true;
    for (unsigned i = 0; i < 6; i++) {
        int rc = wait_child(kids[i]);
        if (rc != 0) {
            tap_diag("  process %u exited %d", i, rc);
            ok = false;
        }
    }
    tap_ok(ok, "3 writers replacing, purging and evicting, 3 readers: every object a reader "
           "found whole was exactly one version (no torn or mixed object)");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent afterwards %s", err);
    tap_is_int(cache_z->pending_n, 0, "nothing left pending");
}

/* Writers killed at random moments, some while holding the lock (stopped by the slab's
 * test hook in alloc or free): the next lock holder repairs, maintenance frees what the
 * dead were writing, and nothing is leaked or torn. */
static volatile unsigned hook_hits;
static unsigned hook_every;

static void stop_hook(pt_shm_slab *s, unsigned op, unsigned step)
{
    (void) s;
    if (hook_every && ++hook_hits % hook_every == 0)
        raise(SIGSTOP);             /* the parent kills us here, inside the lock */
}

static void test_kills(void)
{
    zone_new(1 << 20);
    unsigned inside = 0, outside = 0;
    for (unsigned round = 0; round < 24; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            if (round % 2) {
                hook_every = 37 + round;
                pt_shm_slab_test_hook = stop_hook;
            }
            writer_loop(round + 100, 0);
            _exit(0);
        }
        if (round % 2) {
            int st;
            if (waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st))
                inside++;
        } else {
            struct timespec ts = { 0, (long) (1 + round % 7) * 3000000L };
            nanosleep(&ts, NULL);
            outside++;
        }
        kill(pid, SIGKILL);
        wait_child(pid);
        /* a reader after each death: only whole objects */
        pid_t r = fork();
        if (r == 0)
            _exit(reader_loop(2000) == 1);
        if (wait_child(r) != 0)
            tap_diag("  a reader found a wrong object after round %u", round);
    }
    tap_ok(inside >= 10 && outside >= 10, "writers killed inside the lock (%u) and outside "
           "it (%u)", inside, outside);
    cache_maintain(now_ms());
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "repaired: consistent, every slot "
               "reached by exactly one entry %s", err);
    tap_is_int(cache_z->pending_n, 0, "what the dead were writing was freed");
    tap_ok(cache_z->repairs >= 1, "deaths inside the lock were repaired (%llu)",
           (unsigned long long) cache_z->repairs);
    int rc = reader_loop(KEYS * 4);
    tap_ok(rc != 1, "every object left reads back whole");
    static char body[3000];
    size_t len = body_for("after", 1, body, 3000);
    tap_is_int(store("after", "", "", body, len, true), PT_OK, "the store goes on working");
}

/* ------------------------------------------------------------------ files */

static void test_load(void)
{
    zone_new(4 << 20);
    static char body[50000], got[50000];
    for (unsigned i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof(key), "file-%u", i);
        size_t len = body_for(key, 1, body, i % 2 ? 40000 : 2000);
        store(key, "", "", body, len, true);
    }
    store("v", "accept:a\n", "accept\n", "va", 2, true);
    /* one object written halfway (its writer died), one damaged on disk */
    cache_writer w;
    cache_meta m = { .status = 200, .resp_ms = now_ms(), .lifetime = 60 };
    cache_write_begin(&w, &m, S("half"), S(""), S(""), S(""), 5000, 1 << 20, now_ms());
    cache_write(&w, body, 100, now_ms());
    cache_snap s;
    cache_lookup(cache_hash(S("file-3"), S("")), S("file-3"), S(""), &s);
    cache_entry *e = (cache_entry *) ((char *) cache_z + s.off);
    uint64_t at = e->key_len + e->vary_len + e->req_len + e->head_len + e->body_len / 2;
    if (at < e->cap) {
        e->data[at] ^= 0x40;        /* a bit flipped in the body's middle */
    } else {
        at -= e->cap;
        cache_chunk *c = (cache_chunk *) ((char *) cache_z + e->chunks);
        while (at >= CACHE_CHUNK_DATA) {
            c = (cache_chunk *) ((char *) cache_z + c->next);
            at -= CACHE_CHUNK_DATA;
        }
        c->data[at] ^= 0x40;
    }

    /* "restart": the same memory taken back as a file's contents */
    pt_shm_zone sz = { .addr = zone_mem, .size = zone_size, .persisted = true,
                       .path = "test.bin" };
    cache_z = NULL;
    pt_log_level = -1;
    tap_is_int(cache_zone_setup(&sz, false, now_ms()), PT_OK, "the zone is loaded back");
    pt_log_level = PT_LOG_INFO;
    tap_ok(cache_z->objects == 20 && cache_z->load_dropped == 1,
           "20 objects kept (and the VARY entry), the damaged one dropped (%llu objects, %llu "
           "dropped)", (unsigned long long) cache_z->objects,
           (unsigned long long) cache_z->load_dropped);
    size_t len;
    unsigned whole = 0;
    for (unsigned i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof(key), "file-%u", i);
        size_t want = body_for(key, 1, body, i % 2 ? 40000 : 2000);
        whole += fetch_check(key, "", got, &len, body, want) == 1;
    }
    tap_is_int(whole, 19, "every other object reads back whole");
    tap_ok(fetch_check("v", "accept:a\n", got, &len, "va", 2) == 1, "a variant too");
    tap_is_int(cache_z->pending_n, 0, "the half-written one is gone");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent, nothing leaked %s", err);

    /* a file from another layout or size: not trusted */
    cache_z->layout = 99;
    cache_z = NULL;
    pt_log_level = -1;
    tap_is_int(cache_zone_setup(&sz, false, now_ms()), PT_OK, "another layout: set up afresh");
    pt_log_level = PT_LOG_INFO;
    tap_ok(cache_z->objects == 0 && cache_z->layout == CACHE_LAYOUT, "...empty");
    tap_is_int(cache_check(err, sizeof(err)), PT_OK, "consistent %s", err);
}

/* Hits take no lock: lookups and copies by 1 and then 2 processes at once, counted over
 * the same wall time. Printed, not asserted (timing never decides a test); every copy is
 * checked against its key's body. */
#define HIT_KEYS 1000

static uint64_t hit_loop(unsigned seed, uint64_t ms, uint64_t *wrong)
{
    char buf[2048], want[2048], key[32];
    uint64_t n = 0, end = now_ms() + ms;
    while (now_ms() < end) {
        for (unsigned j = 0; j < 256; j++, n++) {
            seed = seed * 1103515245u + 12345u;
            snprintf(key, sizeof(key), "/hit/%u", (seed >> 8) % HIT_KEYS);
            size_t wl = body_for(key, 1, want, 1024), len = 0;
            if (fetch_check(key, "", buf, &len, want, wl) != 1)
                (*wrong)++;
            else {
                cache_snap s;
                if (cache_lookup(cache_hash(S(key), S("")), S(key), S(""), &s) == PT_OK)
                    cache_touch(&s);
            }
        }
    }
    return n;
}

static void test_hit_scaling(void)
{
    zone_new(16 << 20);
    char body[2048], key[32];
    bool all = true;
    for (unsigned i = 0; i < HIT_KEYS; i++) {
        snprintf(key, sizeof(key), "/hit/%u", i);
        size_t len = body_for(key, 1, body, 1024);
        all = all && store(key, "", "", body, len, true) == PT_OK;
    }
    tap_ok(all, "%u objects stored for the hit loop", HIT_KEYS);
    uint64_t *res = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t rate[3] = { 0 };
    for (unsigned procs = 1; procs <= 2; procs++) {
        memset(res, 0, 4096);
        pid_t kids[2];
        for (unsigned i = 0; i < procs; i++) {
            kids[i] = fork();
            if (kids[i] == 0) {
                res[i] = hit_loop(i * 7919 + 1, 500, &res[2 + i]);
                _exit(0);
            }
        }
        for (unsigned i = 0; i < procs; i++)
            wait_child(kids[i]);
        rate[procs] = (res[0] + res[1]) * 2;
        tap_is_int((long long) (res[2] + res[3]), 0, "%u process(es): every hit's body right",
                   procs);
    }
    tap_diag("hits (lookup, copy, check) per second: 1 process %llu, 2 processes %llu "
             "(x%.2f)", (unsigned long long) rate[1], (unsigned long long) rate[2],
             rate[1] ? (double) rate[2] / (double) rate[1] : 0.0);
    munmap(res, 4096);
}

int main(void)
{
    alarm(300);
    pt_log_level = PT_LOG_WARN;
    test_cc();
    test_dates();
    test_validators();
    test_store_basics();
    test_eviction();
    test_processes();
    test_kills();
    test_load();
    test_hit_scaling();
    return tap_done();
}
