/* Shared memory: zones (declare, map, reuse across a reload, release), the robust
 * process-shared mutex, and the zone allocator, with forked processes where sharing is
 * the point. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "tap.h"

static int init_calls, init_reused;

static int zone_init(pt_shm_zone *z, bool reused)
{
    init_calls++;
    if (reused)
        init_reused++;
    else
        memset(z->addr, 0, z->size);
    return PT_OK;
}

static bool mapped(void *addr, size_t len)
{
    /* msync() on a range that is not mapped fails with ENOMEM. */
    return msync(addr, len, MS_ASYNC) == 0;
}

static pt_conf *conf_new(pt_conf_ctx *cx, const char *file)
{
    pt_conf *c = calloc(1, sizeof(*c));
    c->pool = pt_pool_create(4096);
    c->file = file;
    memset(cx, 0, sizeof(*cx));
    cx->conf = c;
    cx->pool = c->pool;
    cx->file = file;
    return c;
}

static void conf_del(pt_conf *c)
{
    pt_pool_destroy(c->pool);
    free(c);
}

static int wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_zones(void)
{
    pt_conf_ctx cx1, cx2;
    pt_conf *c1 = conf_new(&cx1, "one.conf");

    pt_shm_zone *a = pt_shm_declare(&cx1, "a", 4096, zone_init, NULL);
    pt_shm_zone *b = pt_shm_declare(&cx1, "b", 8192, zone_init, NULL);
    tap_ok(a && b && a != b, "declare two zones");
    tap_ok(pt_shm_declare(&cx1, "a", 4096, zone_init, NULL) == a,
           "same name and size again: the same zone");
    pt_log_level = -1;
    tap_ok(pt_shm_declare(&cx1, "a", 8192, zone_init, NULL) == NULL && cx1.errors == 1,
           "same name, other size: an error");
    tap_ok(strstr(cx1.error, "one.conf") && strstr(cx1.error, "\"a\""),
           "the error names the file and the zone: %s", cx1.error);
    tap_ok(pt_shm_declare(&cx1, "", 10, NULL, NULL) == NULL, "empty name refused");
    tap_ok(pt_shm_declare(&cx1, "z", 0, NULL, NULL) == NULL, "size 0 refused");
    pt_log_level = PT_LOG_INFO;
    tap_ok(pt_shm_find(c1, "b") == b && pt_shm_find(c1, "x") == NULL, "find by name");

    init_calls = init_reused = 0;
    tap_is_int(pt_shm_map(c1, NULL), PT_OK, "map the first generation");
    tap_ok(a->addr && b->addr && !a->reused && !b->reused, "fresh mappings");
    tap_is_int(init_calls, 2, "init ran for each zone");
    tap_is_int(init_reused, 0, "init told the zones are new");
    strcpy(a->addr, "kept across reloads");
    strcpy(b->addr, "resized away");

    pid_t pid = fork();
    if (pid == 0) {
        strcpy((char *) a->addr + 100, "written by a child");
        _exit(0);
    }
    wait_child(pid);
    tap_is_str((char *) a->addr + 100, "written by a child", "a child's write is shared");

    /* A reload: a keeps name and size, b changes size, c is new. */
    pt_conf *c2 = conf_new(&cx2, "two.conf");
    pt_shm_zone *a2 = pt_shm_declare(&cx2, "a", 4096, zone_init, NULL);
    pt_shm_zone *b2 = pt_shm_declare(&cx2, "b", 16384, zone_init, NULL);
    pt_shm_zone *c = pt_shm_declare(&cx2, "c", 100, zone_init, NULL);
    init_calls = init_reused = 0;
    tap_is_int(pt_shm_map(c2, c1), PT_OK, "map the second generation");
    tap_ok(a2->addr == a->addr && a2->reused, "same name and size: same mapping, reused");
    tap_is_str(a2->addr, "kept across reloads", "contents survive");
    tap_is_int(a2->refs, 2, "two generations use it");
    tap_ok(b2->addr != b->addr && !b2->reused, "new size: a new mapping");
    tap_ok(c->addr && !c->reused, "new zone mapped");
    tap_is_int(init_reused, 1, "init told which zone was reused");

    void *old_b = b->addr, *old_a = a->addr;
    pt_shm_release(c1, c2);
    tap_ok(mapped(old_a, 4096), "release keeps what the new generation uses");
    tap_ok(!mapped(old_b, 8192), "release unmaps what only the old one used");
    tap_is_str(a2->addr, "kept across reloads", "still readable after release");
    tap_ok(a->addr == NULL && b->addr == NULL, "released zones forget their address");

    /* Three generations: c2 <- c3 <- c4 with "a" in all, releasing in order. */
    pt_conf_ctx cx3, cx4;
    pt_conf *c3 = conf_new(&cx3, "three.conf");
    pt_shm_zone *a3 = pt_shm_declare(&cx3, "a", 4096, zone_init, NULL);
    pt_shm_map(c3, c2);
    pt_conf *c4 = conf_new(&cx4, "four.conf");
    pt_shm_zone *a4 = pt_shm_declare(&cx4, "a", 4096, zone_init, NULL);
    pt_shm_map(c4, c3);
    tap_ok(a3->addr == old_a && a4->addr == old_a, "reused through three generations");
    void *b2a = b2->addr, *ca = c->addr;
    pt_shm_release(c2, c4);
    tap_ok(mapped(old_a, 4096) && !mapped(b2a, 16384) && !mapped(ca, 100),
           "oldest released: shared zone kept, its own zones gone");
    pt_shm_release(c3, c4);
    tap_ok(mapped(old_a, 4096), "middle released: shared zone kept");
    tap_is_str(a4->addr, "kept across reloads", "contents intact");
    pt_shm_release(c4, NULL);
    tap_ok(!mapped(old_a, 4096), "last generation released: unmapped");

    conf_del(c1);
    conf_del(c2);
    conf_del(c3);
    conf_del(c4);
}

static void test_mutex(void)
{
    pt_shm_mutex *mx = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                            -1, 0);
    tap_is_int(pt_shm_mutex_init(mx), PT_OK, "mutex init");
    tap_is_int(pt_shm_mutex_lock(mx), PT_OK, "lock");
    pt_shm_mutex_unlock(mx);

    pid_t pid = fork();
    if (pid == 0) {
        pt_shm_mutex_lock(mx);
        _exit(0);             /* dies holding it */
    }
    tap_is_int(wait_child(pid), 0, "child locked and exited");
    tap_is_int(pt_shm_mutex_lock(mx), PT_AGAIN, "owner died: lock returns PT_AGAIN");
    pt_shm_mutex_unlock(mx);
    tap_is_int(pt_shm_mutex_lock(mx), PT_OK, "then locks normally");
    pt_shm_mutex_unlock(mx);

    /* A child blocked on the lock gets it once the parent unlocks. */
    pt_shm_mutex_lock(mx);
    pid = fork();
    if (pid == 0)
        _exit(pt_shm_mutex_lock(mx) == PT_OK ? 0 : 1);
    usleep(50000);
    pt_shm_mutex_unlock(mx);
    tap_is_int(wait_child(pid), 0, "a waiting child gets the lock after unlock");
    tap_is_int(pt_shm_mutex_lock(mx), PT_AGAIN, "...and the parent sees it died holding it");
    pt_shm_mutex_unlock(mx);
    munmap(mx, 4096);
}

/* The largest block the pool could ever hand out: succeeds only if everything free has
 * coalesced back into one block. */
static bool pool_whole(pt_shm_pool *p)
{
    void *x = pt_shm_alloc(p, p->size - 16);
    if (x == NULL)
        return false;
    pt_shm_free(p, x);
    return true;
}

static void test_pool(void)
{
    size_t zsize = 256 * 1024;
    char *zone = mmap(NULL, zsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    tap_ok(pt_shm_pool_init(zone, 64) == NULL, "a zone too small for a pool is refused");
    tap_ok(pt_shm_pool_attach(zone, zsize) == NULL, "attach to a zone without a pool fails");
    pt_shm_pool *p = pt_shm_pool_init(zone, zsize);
    tap_ok(p != NULL && (void *) p == zone, "pool at the zone start");
    tap_ok(pt_shm_pool_attach(zone, zsize) == p, "attach finds it again (reused zone)");
    tap_ok(p->size > zsize - 256 && p->used == 0, "manages the rest of the zone");

    /* Sizes around the alignment, all aligned and disjoint. */
    static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 1000, 4096, 3 };
    char *ptr[pt_nelems(sizes)];
    bool aligned = true, inside = true;
    for (unsigned i = 0; i < pt_nelems(sizes); i++) {
        ptr[i] = pt_shm_alloc(p, sizes[i]);
        if (ptr[i] == NULL || ((uintptr_t) ptr[i] & 15))
            aligned = false;
        if (ptr[i] < zone || ptr[i] + sizes[i] > zone + zsize)
            inside = false;
        if (ptr[i])
            memset(ptr[i], 'a' + (int) i, sizes[i]);
    }
    tap_ok(aligned, "allocations are 16-byte aligned");
    tap_ok(inside, "allocations lie inside the zone");
    bool intact = true;
    for (unsigned i = 0; i < pt_nelems(sizes); i++)
        for (size_t j = 0; j < sizes[i]; j++)
            if (ptr[i][j] != 'a' + (int) i)
                intact = false;
    tap_ok(intact, "allocations do not overlap");
    tap_is_int(p->allocs, pt_nelems(sizes), "allocs counted");
    tap_ok(p->used > 0, "used accounted");

    /* Free every other one, then the rest: neighbours must merge back into one block. */
    for (unsigned i = 0; i < pt_nelems(sizes); i += 2)
        pt_shm_free(p, ptr[i]);
    tap_ok(!pool_whole(p), "with holes, the whole pool is not one block");
    for (unsigned i = 1; i < pt_nelems(sizes); i += 2)
        pt_shm_free(p, ptr[i]);
    tap_is_int(p->frees, pt_nelems(sizes), "frees counted");
    tap_is_int(p->used, 0, "nothing used after freeing all");
    tap_ok(pool_whole(p), "free blocks coalesced back to one");

    /* Reverse order and middle-first orders coalesce too. */
    char *q[3];
    for (int i = 0; i < 3; i++)
        q[i] = pt_shm_alloc(p, 64);
    pt_shm_free(p, q[1]);
    pt_shm_free(p, q[0]);
    pt_shm_free(p, q[2]);
    tap_ok(p->used == 0 && pool_whole(p), "middle, left, right: coalesced");

    /* Bad frees are refused without damage. */
    pt_log_level = -1;
    uint64_t frees = p->frees;
    char *x = pt_shm_alloc(p, 32);
    pt_shm_free(p, x);
    pt_shm_free(p, x);
    pt_shm_free(p, x + 16);
    int on_stack;
    pt_shm_free(p, &on_stack);
    pt_log_level = PT_LOG_INFO;
    tap_is_int(p->frees, frees + 1, "double, interior and foreign frees are ignored");
    tap_ok(p->used == 0 && pool_whole(p), "and leave the pool intact");

    /* Exhaustion. */
    uint64_t failures = p->failures;
    tap_ok(pt_shm_alloc(p, zsize) == NULL, "more than the zone: NULL");
    tap_ok(pt_shm_alloc(p, SIZE_MAX) == NULL, "SIZE_MAX: NULL");
    tap_ok(pt_shm_alloc(p, SIZE_MAX - 8) == NULL, "SIZE_MAX - 8: NULL");
    tap_is_int(p->failures, failures + 3, "failures counted");
    unsigned n = 0;
    void *blocks[1024];
    while (n < pt_nelems(blocks) && (blocks[n] = pt_shm_alloc(p, 1000)) != NULL)
        n++;
    tap_ok(n > 200 && n < pt_nelems(blocks), "filled the pool with %u blocks, then NULL", n);
    tap_is_int(p->failures, failures + 4, "the failed one counted");
    for (unsigned i = 0; i < n; i++)
        pt_shm_free(p, blocks[i]);
    void *last = pt_shm_alloc(p, 1);
    if (last)
        pt_shm_free(p, last);
    tap_ok(p->used == 0 && pool_whole(p), "emptied: one block again");

    /* A child allocates and writes; the parent sees it through the shared zone. */
    size_t *mailbox = pt_shm_alloc(p, sizeof(size_t));
    *mailbox = 0;
    pid_t pid = fork();
    if (pid == 0) {
        char *s = pt_shm_alloc(p, 64);
        if (s == NULL)
            _exit(1);
        strcpy(s, "from the child");
        *mailbox = (size_t) (s - (char *) p);   /* an offset: valid in any process */
        _exit(0);
    }
    tap_is_int(wait_child(pid), 0, "child allocated");
    char *s = *mailbox ? (char *) p + *mailbox : NULL;
    tap_ok(s && strcmp(s, "from the child") == 0, "parent reads the child's block");
    pt_shm_free(p, s);
    pt_shm_free(p, mailbox);
    tap_ok(p->used == 0 && pool_whole(p), "parent freed the child's block");

    /* Several children allocating and freeing at once. */
    enum { CHILDREN = 4, ROUNDS = 3000, LIVE = 24 };
    pid_t kids[CHILDREN];
    uint64_t allocs0 = p->allocs, frees0 = p->frees;
    for (int c = 0; c < CHILDREN; c++) {
        kids[c] = fork();
        if (kids[c] != 0)
            continue;
        unsigned seed = (unsigned) c * 7919u + 1;
        unsigned char *mine[LIVE] = { 0 };
        size_t len[LIVE] = { 0 };
        int bad = 0;
        for (int r = 0; r < ROUNDS; r++) {
            int k = (int) (rand_r(&seed) % LIVE);
            if (mine[k]) {
                for (size_t j = 0; j < len[k]; j++)
                    if (mine[k][j] != (unsigned char) (c * 31 + k))
                        bad = 1;
                pt_shm_free(p, mine[k]);
                mine[k] = NULL;
            } else {
                len[k] = 1 + rand_r(&seed) % 700;
                mine[k] = pt_shm_alloc(p, len[k]);
                if (mine[k])
                    memset(mine[k], c * 31 + k, len[k]);
            }
        }
        for (int k = 0; k < LIVE; k++)
            if (mine[k])
                pt_shm_free(p, mine[k]);
        _exit(bad);
    }
    int ok = 1;
    for (int c = 0; c < CHILDREN; c++)
        if (wait_child(kids[c]) != 0)
            ok = 0;
    tap_ok(ok, "%d children allocating concurrently saw no corruption", CHILDREN);
    tap_is_int(p->allocs - allocs0, p->frees - frees0, "every alloc matched by a free");
    tap_is_int(p->used, 0, "nothing left used");
    tap_ok(pool_whole(p), "and everything coalesced");

    /* A child that dies holding the pool's lock: the next user repairs and goes on. */
    void *keep = pt_shm_alloc(p, 200);
    pid = fork();
    if (pid == 0) {
        pt_shm_mutex_lock(&p->lock);
        _exit(0);
    }
    wait_child(pid);
    size_t used = p->used;
    pt_log_level = -1;
    void *y = pt_shm_alloc(p, 100);
    pt_log_level = PT_LOG_INFO;
    tap_ok(y != NULL, "alloc after an owner died holding the lock");
    tap_ok(p->used > used, "accounting rebuilt and updated");
    pt_shm_free(p, y);
    pt_shm_free(p, keep);
    tap_ok(p->used == 0 && pool_whole(p), "pool whole after the repair");

    munmap(zone, zsize);
}

static void test_stats(void)
{
    tap_is_int(pt_stats_init(), PT_OK, "statistics zone mapped");
    pt_stats *st = pt_stats_zone;
    tap_ok(st && st->started > 0, "start time recorded");
    pt_stats_slot_reset(3, 2, 1234);
    st->worker[3].requests = 10;
    st->worker[3].status[2] = 9;
    st->worker[3].active = 1;
    pid_t pid = fork();
    if (pid == 0) {
        st->worker[3].requests++;
        _exit(0);
    }
    wait_child(pid);
    tap_is_int(st->worker[3].requests, 11, "a worker's counters are shared");
    pt_stats_slot_retire(3);
    tap_ok(st->worker[3].requests == 0 && st->worker[3].generation == 0, "slot cleared");
    tap_ok(st->retired.requests == 11 && st->retired.status[2] == 9 && st->retired.active == 0,
           "counters folded into retired");
    pt_stats_slot_reset(3, 3, 99);
    tap_ok(st->worker[3].generation == 3 && st->worker[3].pid == 99, "slot handed on");
}

int main(void)
{
    test_zones();
    test_mutex();
    test_pool();
    test_stats();
    return tap_done();
}
