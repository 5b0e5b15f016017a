/* Shared keyed tables (server/shm_table.c): put, get, delete, values kept, long keys,
 * eviction of the least recently used entries the caller allows, a full table, reuse of a
 * zone, processes dying with the lock held (the table is re-indexed), two processes
 * counting in one table, and slab clearing. */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/shm_slab.h"
#include "portico/shm_table.h"
#include "tap.h"

typedef struct {
    uint64_t n;
    uint64_t pinned;            /* not evictable when set */
} val;

static void *zone_map(size_t size)
{
    void *z = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (z == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return z;
}

static int wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool not_pinned(void *v, void *arg)
{
    (void) arg;
    return ((val *) v)->pinned == 0;
}

static val *put(pt_shm_table *t, const char *k, bool *created)
{
    return pt_shm_table_put(t, k, strlen(k), created, not_pinned, NULL);
}

static val *get(pt_shm_table *t, const char *k)
{
    return pt_shm_table_get(t, k, strlen(k));
}

static unsigned counted;
static void count_fn(pt_shm_table *t, void *v, const void *key, size_t klen, void *arg)
{
    counted++;
    if (arg && ((val *) v)->n == 1)
        pt_shm_table_del(t, v);         /* fn may delete the entry it is given */
}

static void basics(void)
{
    size_t size = 1 << 20;
    void *z = zone_map(size);
    tap_ok(pt_shm_table_init(z, 8192, sizeof(val), false) == NULL, "a zone too small is refused");
    pt_shm_table *t = pt_shm_table_init(z, size, sizeof(val), false);
    tap_ok(t != NULL, "a table over 1 MiB");
    tap_is_int(t->value_size, 16, "values rounded up to 16 bytes");

    tap_is_int(pt_shm_table_lock(t), PT_OK, "lock");
    bool created;
    val *a = put(t, "10.0.0.1", &created);
    tap_ok(a && created && a->n == 0, "put creates a zeroed value");
    a->n = 41;
    val *a2 = put(t, "10.0.0.1", &created);
    tap_ok(a2 == a && !created && a2->n == 41, "put again finds it");
    tap_ok(get(t, "10.0.0.1") == a, "get finds it");
    tap_ok(get(t, "10.0.0.2") == NULL, "get: a key never put");
    tap_ok(get(t, "10.0.0.") == NULL, "get: a prefix of a key is another key");
    val *b = put(t, "10.0.0.2", &created);
    tap_ok(b && b != a && created, "another key, another entry");
    tap_is_int(t->entries, 2, "two entries");

    char longkey[4000];
    memset(longkey, 'x', sizeof(longkey));
    val *l1 = pt_shm_table_put(t, longkey, sizeof(longkey), &created, NULL, NULL);
    longkey[3999] = 'y';
    val *l2 = pt_shm_table_put(t, longkey, sizeof(longkey), &created, NULL, NULL);
    tap_ok(l1 && l2 && l1 != l2, "keys over %d bytes: stored as a digest, still distinct",
           PT_SHM_TABLE_KEY_MAX);
    tap_ok(pt_shm_table_get(t, longkey, sizeof(longkey)) == l2, "...and found again");

    pt_shm_table_del(t, b);
    tap_ok(get(t, "10.0.0.2") == NULL, "deleted");
    tap_is_int(t->entries, 3, "three entries left");

    counted = 0;
    pt_shm_table_foreach(t, count_fn, NULL);
    tap_is_int(counted, 3, "foreach visits each entry");
    l1->n = 1;                          /* the deleting walk drops it */
    counted = 0;
    pt_shm_table_foreach(t, count_fn, (void *) 1);
    tap_is_int(counted, 3, "foreach survives deleting the entry it is given");
    tap_is_int(t->entries, 2, "...which is gone");
    pt_shm_table_unlock(t);

    /* reuse: a reload keeps the zone */
    pt_shm_table *again = pt_shm_table_init(z, size, sizeof(val), true);
    tap_ok(again == t && again->entries == 2, "a reused zone keeps its table");
    pt_shm_table_lock(again);
    tap_ok(get(again, "10.0.0.1") && get(again, "10.0.0.1")->n == 41, "...and its values");
    pt_shm_table_unlock(again);
    pt_shm_table *other = pt_shm_table_init(z, size, 32, true);
    tap_ok(other && other->entries == 0 && other->value_size == 32,
           "a reused zone with another value size is laid out afresh");
    munmap(z, size);
}

static void eviction(void)
{
    size_t size = 96 * 1024;            /* a few pages of entries */
    void *z = zone_map(size);
    pt_shm_table *t = pt_shm_table_init(z, size, sizeof(val), false);
    tap_ok(t != NULL, "a small table");
    pt_shm_table_lock(t);
    char k[32];
    bool created;
    unsigned n = 0;
    for (;; n++) {
        snprintf(k, sizeof(k), "pinned-%u", n);
        val *v = put(t, k, &created);
        if (v == NULL)
            break;
        v->pinned = 1;
        v->n = n;
    }
    tap_ok(n > 100, "filled with %u pinned entries", n);
    tap_is_int(t->failures, 1, "the next one found no room: none could be evicted");
    tap_is_int(t->entries, n, "nothing was dropped");

    /* unpin the oldest few: they go first, the rest stays */
    for (unsigned i = 0; i < 3; i++) {
        snprintf(k, sizeof(k), "pinned-%u", i);
        val *v = pt_shm_table_get(t, k, strlen(k));
        v->pinned = 0;
    }
    /* the gets made them the most recent: touch the others so these are the oldest again */
    for (unsigned i = 3; i < n; i++) {
        snprintf(k, sizeof(k), "pinned-%u", i);
        pt_shm_table_get(t, k, strlen(k));
    }
    val *v = put(t, "newcomer-1", &created);
    tap_ok(v && created, "a new entry evicts an unpinned one");
    tap_is_int(t->evictions, 1, "one eviction");
    unsigned gone = 0;
    for (unsigned i = 0; i < 3; i++) {
        snprintf(k, sizeof(k), "pinned-%u", i);
        gone += pt_shm_table_get(t, k, strlen(k)) == NULL;
    }
    tap_is_int(gone, 1, "the least recently used unpinned entry went");
    v = pt_shm_table_put(t, "newcomer-2", 10, &created, NULL, NULL);
    tap_ok(v != NULL, "with no predicate anything may go");
    char err[160];
    tap_ok(pt_shm_slab_check((pt_shm_slab *) (void *) ((char *) t + t->slab_off), err,
                             sizeof(err)) == PT_OK, "the slab is consistent");
    pt_shm_table_unlock(t);
    munmap(z, size);
}

static void deaths(void)
{
    size_t size = 1 << 20;
    void *z = zone_map(size);
    pt_shm_table *t = pt_shm_table_init(z, size, sizeof(val), false);

    pid_t pid = fork();
    if (pid == 0) {
        pt_shm_table_lock(t);
        bool created;
        char k[32];
        for (unsigned i = 0; i < 500; i++) {
            snprintf(k, sizeof(k), "k%u", i);
            ((val *) put(t, k, &created))->n = i;
        }
        /* a broken index: every chain lost (the LRU list is what the repair trusts) */
        memset(t->buckets, 0, t->nbuckets * sizeof(uint64_t));
        _exit(0);                       /* dies holding the lock */
    }
    tap_is_int(wait_child(pid), 0, "a process filled the table and died holding its lock");
    tap_is_int(pt_shm_table_lock(t), PT_OK, "the next lock succeeds");
    tap_is_int(t->repairs, 1, "after a repair");
    unsigned found = 0;
    char k[32];
    for (unsigned i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "k%u", i);
        val *v = get(t, k);
        found += v && v->n == i;
    }
    tap_is_int(found, 500, "every entry is found again (chains rebuilt from the LRU list)");
    tap_is_int(t->entries, 500, "and counted");
    pt_shm_table_unlock(t);

    /* two processes adding to the same counters: exact */
    pid_t kids[2];
    for (int w = 0; w < 2; w++) {
        kids[w] = fork();
        if (kids[w] == 0) {
            for (unsigned i = 0; i < 20000; i++) {
                pt_shm_table_lock(t);
                bool created;
                char kk[16];
                snprintf(kk, sizeof(kk), "c%u", i % 7);
                ((val *) put(t, kk, &created))->n++;
                pt_shm_table_unlock(t);
            }
            _exit(0);
        }
    }
    int st = wait_child(kids[0]) | wait_child(kids[1]);
    pt_shm_table_lock(t);
    uint64_t sum = 0;
    for (unsigned i = 0; i < 7; i++) {
        snprintf(k, sizeof(k), "c%u", i);
        sum += get(t, k)->n;
    }
    pt_shm_table_unlock(t);
    tap_ok(st == 0 && sum == 40000, "two processes, 40000 increments under the lock: %llu",
           (unsigned long long) sum);

    /* clearing the slab leaves it as new */
    pt_shm_slab *s = (pt_shm_slab *) (void *) ((char *) t + t->slab_off);
    pt_shm_slab_lock(s);
    pt_shm_slab_clear_locked(s);
    char err[160];
    tap_ok(pt_shm_slab_check(s, err, sizeof(err)) == PT_OK && s->free_pages == s->npages,
           "a cleared slab is consistent, every page free");
    pt_shm_slab_unlock(s);
    munmap(z, size);
}

int main(void)
{
    pt_log_level = PT_LOG_CRIT;         /* the repairs log at warn */
    basics();
    eviction();
    deaths();
    return tap_done();
}
