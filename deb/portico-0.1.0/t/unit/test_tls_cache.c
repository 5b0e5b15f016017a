/* The shared TLS session cache (server/tls_cache.c): store and find, replace, expiry, the
 * size limit with least-recently-used eviction, a full slab, a reused zone, processes
 * sharing it, and a process killed while it holds the lock in the middle of a store or a
 * removal: the next one repairs the cache and goes on. */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portico/shm_slab.h"
#include "portico/tls.h"
#include "tap.h"

static const char *who = "test";

static void *zone_new(uint32_t max, size_t *size)
{
    *size = pt_tls_cache_zone_size(max);
    void *z = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return z == MAP_FAILED ? NULL : z;
}

static void id_of(uint8_t id[32], unsigned n)
{
    memset(id, 0, 32);
    snprintf((char *) id, 32, "session-%u", n);
}

static int put(void *z, unsigned n, size_t len, uint64_t expires)
{
    uint8_t id[32], data[PT_TLS_CACHE_DATA_MAX];
    id_of(id, n);
    memset(data, (int) (n & 0xff), len);
    return pt_tls_cache_put(z, id, 32, data, len, expires, who);
}

/* The session's length if it is there with the bytes put() gave it, else 0. */
static size_t get(void *z, unsigned n, uint64_t now)
{
    uint8_t id[32], buf[PT_TLS_CACHE_DATA_MAX];
    id_of(id, n);
    size_t len = pt_tls_cache_get(z, id, 32, buf, now, who);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (uint8_t) (n & 0xff))
            return 0;
    return len;
}

static bool consistent(void *z)
{
    char err[256] = "";
    int rc = pt_tls_cache_check(z, err, sizeof(err));
    if (rc != PT_OK)
        tap_diag("  %s", err);
    return rc == PT_OK;
}

static int wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- a death inside the lock ---- */

static int hook_fd = -1;
static unsigned hook_op, hook_step;

static void stop_hook(pt_shm_slab *s, unsigned op, unsigned step)
{
    if (op != hook_op || step != hook_step)
        return;
    char c = 'x';
    if (write(hook_fd, &c, 1) != 1)
        _exit(3);
    for (;;)
        pause();
}

/* A child stores session n (op ALLOC) or removes it (op FREE) and is killed inside the
 * slab operation, holding the lock. */
static bool kill_inside(void *z, unsigned op, unsigned step, unsigned n)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        hook_fd = fds[1];
        hook_op = op;
        hook_step = step;
        pt_shm_slab_test_hook = stop_hook;
        if (op == PT_SHM_SLAB_OP_ALLOC) {
            put(z, n, 300, 2000);
        } else {
            uint8_t id[32];
            id_of(id, n);
            pt_tls_cache_remove(z, id, 32, who);
        }
        _exit(2);
    }
    close(fds[1]);
    char c;
    ssize_t got = read(fds[0], &c, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    return got == 1 && wait_child(pid) == 128 + SIGKILL;
}

int main(void)
{
    size_t size;
    void *z = zone_new(8, &size);
    tap_ok(z != NULL && pt_tls_cache_init(z, size, 8, false) == PT_OK,
           "a cache for 8 sessions in a %zu-byte zone", size);

    for (unsigned i = 1; i <= 3; i++)
        put(z, i, 200 + i, 1000);
    tap_ok(get(z, 1, 10) == 201 && get(z, 2, 10) == 202 && get(z, 3, 10) == 203,
           "three sessions stored and found with their bytes");
    tap_is_int(pt_tls_cache_count(z), 3, "counted");
    tap_ok(get(z, 99, 10) == 0, "an unknown id: nothing");
    put(z, 2, 500, 1000);
    tap_ok(get(z, 2, 10) == 500 && pt_tls_cache_count(z) == 3, "the same id again replaces it");
    tap_ok(get(z, 3, 999) == 203, "found just before it expires");
    tap_ok(get(z, 3, 1000) == 0 && get(z, 3, 10) == 0 && pt_tls_cache_count(z) == 2,
           "expired: not given, and gone");
    uint8_t id[40] = { 0 }, data[PT_TLS_CACHE_DATA_MAX + 1] = { 0 };
    tap_is_int(pt_tls_cache_put(z, id, 33, data, 10, 1000, who), PT_DECLINED, "an id over 32 bytes is declined");
    tap_is_int(pt_tls_cache_put(z, id, 32, data, sizeof(data), 1000, who), PT_DECLINED,
               "a session over PT_TLS_CACHE_DATA_MAX is declined");
    tap_ok(consistent(z), "consistent");

    /* the size limit: the least recently used goes */
    for (unsigned i = 10; i < 18; i++)
        put(z, i, 100, 1000);
    tap_is_int(pt_tls_cache_count(z), 8, "never more than 8");
    tap_ok(get(z, 1, 10) == 0 && get(z, 2, 10) == 0, "the two oldest were evicted");
    get(z, 10, 10);                     /* used: now the most recent */
    put(z, 18, 100, 1000);
    tap_ok(get(z, 10, 10) == 100 && get(z, 11, 10) == 0,
           "a session found is kept over one not used since");
    tap_ok(consistent(z), "consistent after evictions");

    /* a reload that keeps the zone keeps the sessions */
    tap_ok(pt_tls_cache_init(z, size, 8, true) == PT_OK && get(z, 18, 10) == 100
           && pt_tls_cache_count(z) == 8, "a reused zone keeps its sessions");

    /* processes share it */
    pid_t pid = fork();
    if (pid == 0)
        _exit(put(z, 42, 77, 1000) == PT_OK ? 0 : 1);
    tap_ok(wait_child(pid) == 0 && get(z, 42, 10) == 77, "a session stored by another process is found");

    /* a full slab: big sessions, more than the zone was sized for, each store evicts */
    size_t bsize;
    void *b = zone_new(100, &bsize);
    tap_ok(b && pt_tls_cache_init(b, bsize, 100, false) == PT_OK, "a cache for 100");
    int stored = 0;
    for (unsigned i = 0; i < 100; i++)
        stored += put(b, i, 3500, 1000) == PT_OK;
    tap_is_int(stored, 100, "100 sessions of 3500 bytes all stored (the slab holds fewer)");
    tap_ok(pt_tls_cache_count(b) < 100 && get(b, 99, 10) == 3500 && get(b, 0, 10) == 0,
           "the oldest made room: %llu kept, the newest there",
           (unsigned long long) pt_tls_cache_count(b));
    tap_ok(consistent(b), "consistent when full");

    /* a process killed holding the lock, in the middle of a store, then of a removal */
    uint64_t before = pt_tls_cache_count(z);
    for (unsigned step = 1; step <= 3; step++) {
        bool died = kill_inside(z, PT_SHM_SLAB_OP_ALLOC, step, 100 + step);
        tap_ok(died, "a child dies inside a store (slab step %u)", step);
        tap_ok(get(z, 18, 10) == 100, "the next process repairs the cache and finds a session");
        tap_ok(consistent(z), "consistent after the repair");
    }
    tap_ok(get(z, 42, 10) == 77, "sessions stored before the deaths are still there");
    tap_ok(kill_inside(z, PT_SHM_SLAB_OP_FREE, 2, 42), "a child dies inside a removal");
    tap_ok(get(z, 42, 10) == 0, "the session it removed is gone");
    tap_ok(consistent(z), "consistent after that repair");
    tap_ok(put(z, 200, 100, 1000) == PT_OK && get(z, 200, 10) == 100,
           "stores go on (%llu sessions, %llu before)", (unsigned long long) pt_tls_cache_count(z),
           (unsigned long long) before);

    munmap(z, size);
    munmap(b, bsize);
    return tap_done();
}
