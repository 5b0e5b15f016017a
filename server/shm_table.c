/* Keyed tables in shared memory (include/portico/shm_table.h): the state of rate limits
 * and connection limits, the same for every worker.
 *
 * Layout of the zone, everything linked by offsets from its start (the table header):
 *
 *   [pt_shm_table: counters, LRU head][buckets: nbuckets offsets][pad][slab ... entries]
 *
 * An entry is [pt_shm_entry][value][key], allocated from the slab in one piece. It is on
 * one hash chain (by a SipHash of its key, keyed per zone) and on the LRU list. The slab's
 * robust lock protects all of it. Stores are ordered for a holder that dies mid-way: an
 * entry goes on the LRU list (whose forward chain stays intact through any death, see
 * shm_list.h) before its chain, and comes off its chain before the LRU list; the repair
 * then rebuilds the back links and every chain from the forward chain. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/shm_list.h"
#include "portico/shm_slab.h"
#include "portico/shm_table.h"
#include "portico/str.h"

#define TABLE_MAGIC   0x3162617474687470ULL     /* "ptht ab1": bump on layout change */
#define EVICT_LOOK    16                        /* LRU entries examined per insertion */
#define align16(n)    (((n) + 15) & ~(size_t) 15)

static inline pt_shm_slab *slab_of(pt_shm_table *t)
{
    return (pt_shm_slab *) (void *) ((char *) t + t->slab_off);
}

static inline pt_shm_entry *entry_at(pt_shm_table *t, uint64_t off)
{
    return off ? (pt_shm_entry *) (void *) ((char *) t + off) : NULL;
}

static inline uint64_t entry_off(pt_shm_table *t, const pt_shm_entry *e)
{
    return (uint64_t) ((const char *) e - (const char *) t);
}

static inline void *value_of(pt_shm_entry *e)
{
    return e + 1;
}

static inline pt_shm_entry *entry_of(void *value)
{
    return (pt_shm_entry *) value - 1;
}

static inline char *key_of(pt_shm_table *t, pt_shm_entry *e)
{
    return (char *) (e + 1) + t->value_size;
}

static void geometry(size_t size, uint32_t *nbuckets, uint64_t *slab_off)
{
    /* about one bucket per 256 bytes of zone: short chains for entries of 64..256 bytes */
    uint32_t n = 64;
    while ((uint64_t) n * 256 < size && n < (1u << 24))
        n <<= 1;
    *nbuckets = n;
    size_t hdr = sizeof(pt_shm_table) + (size_t) n * sizeof(uint64_t);
    *slab_off = (hdr + PT_SHM_SLAB_PAGE - 1) & ~((uint64_t) PT_SHM_SLAB_PAGE - 1);
}

pt_shm_table *pt_shm_table_init(void *addr, size_t size, size_t value_size, bool reused)
{
    pt_shm_table *t = addr;
    uint32_t nbuckets;
    uint64_t slab_off;

    value_size = align16(value_size);
    geometry(size, &nbuckets, &slab_off);
    if (slab_off >= size || size - slab_off < 4 * PT_SHM_SLAB_PAGE)
        return NULL;
    if (reused && t->magic == TABLE_MAGIC && t->size == size && t->value_size == value_size
        && t->nbuckets == nbuckets && t->slab_off == slab_off
        && pt_shm_slab_attach((char *) t + slab_off, size - slab_off))
        return t;
    /* new (zero already), or not one we can keep: laid out afresh */
    if (reused)
        memset(t, 0, slab_off);
    if (pt_shm_slab_init((char *) t + slab_off, size - slab_off) == NULL)
        return NULL;
    t->size = size;
    t->value_size = (uint32_t) value_size;
    t->nbuckets = nbuckets;
    t->slab_off = slab_off;
    if (getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t) sizeof(t->seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t->seed[0] = (uint64_t) ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t) getpid();
        t->seed[1] = (uint64_t) ts.tv_sec * 0xc2b2ae3d27d4eb4fULL ^ (uintptr_t) t;
    }
    pt_shm_list_init(t, &t->lru);
    t->magic = TABLE_MAGIC;
    return t;
}

/* Chains and back links again, from the LRU's forward chain. */
static void table_repair(pt_shm_table *t)
{
    long n = pt_shm_list_repair(t, t->size, &t->lru);
    memset(t->buckets, 0, (size_t) t->nbuckets * sizeof(uint64_t));
    if (n < 0) {
        /* the list itself is broken (it never should be): start over, leaking nothing */
        pt_shm_slab_clear_locked(slab_of(t));
        pt_shm_list_init(t, &t->lru);
        t->entries = 0;
        pt_log(PT_LOG_CRIT, "shared table %p: LRU list broken after a process died holding "
               "its lock; table emptied", (void *) t);
    } else {
        pt_shm_list *l;
        t->entries = 0;
        pt_shm_list_foreach(t, &t->lru, l) {
            pt_shm_entry *e = pt_container_of(l, pt_shm_entry, lru);
            uint64_t *b = &t->buckets[e->hash & (t->nbuckets - 1)];
            e->next = *b;
            *b = entry_off(t, e);
            t->entries++;
        }
        pt_log(PT_LOG_WARN, "shared table %p: a process died holding its lock; %llu entries "
               "re-indexed", (void *) t, (unsigned long long) t->entries);
    }
    t->repairs++;
}

int pt_shm_table_lock(pt_shm_table *t)
{
    int rc = pt_shm_slab_lock(slab_of(t));
    if (rc == PT_AGAIN) {
        table_repair(t);
        rc = PT_OK;
    }
    return rc;
}

void pt_shm_table_unlock(pt_shm_table *t)
{
    pt_shm_slab_unlock(slab_of(t));
}

typedef struct {
    const void *key;
    size_t      klen;
    uint64_t    hash;
    uint64_t    digest[2];
} table_key;

/* Keys past PT_SHM_TABLE_KEY_MAX are kept as a 128-bit digest of two keyed hashes. */
static void make_key(pt_shm_table *t, const void *key, size_t klen, table_key *k)
{
    if (klen > PT_SHM_TABLE_KEY_MAX) {
        uint64_t seed2[2] = { t->seed[1], t->seed[0] ^ 0x5bd1e9955bd1e995ULL };
        k->digest[0] = pt_siphash(t->seed, key, klen);
        k->digest[1] = pt_siphash(seed2, key, klen);
        key = k->digest;
        klen = sizeof(k->digest);
    }
    k->key = key;
    k->klen = klen;
    k->hash = pt_siphash(t->seed, key, klen);
}

static pt_shm_entry *lookup(pt_shm_table *t, const table_key *k)
{
    uint64_t off = t->buckets[k->hash & (t->nbuckets - 1)];
    for (pt_shm_entry *e; (e = entry_at(t, off)) != NULL; off = e->next)
        if (e->hash == k->hash && e->klen == k->klen
            && memcmp(key_of(t, e), k->key, k->klen) == 0)
            return e;
    return NULL;
}

void *pt_shm_table_get(pt_shm_table *t, const void *key, size_t klen)
{
    table_key k;
    make_key(t, key, klen, &k);
    pt_shm_entry *e = lookup(t, &k);
    if (e == NULL)
        return NULL;
    pt_shm_list_move_head(t, &t->lru, &e->lru);
    return value_of(e);
}

void *pt_shm_table_peek(pt_shm_table *t, const void *key, size_t klen)
{
    table_key k;
    make_key(t, key, klen, &k);
    pt_shm_entry *e = lookup(t, &k);
    return e ? value_of(e) : NULL;
}

void pt_shm_table_del(pt_shm_table *t, void *value)
{
    pt_shm_entry *e = entry_of(value);
    uint64_t off = entry_off(t, e);
    uint64_t *link = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*link && *link != off)
        link = &entry_at(t, *link)->next;
    if (*link)
        *link = e->next;                /* off its chain first, */
    pt_shm_list_barrier();
    pt_shm_list_remove(t, &e->lru);     /* then off the LRU list, */
    pt_shm_slab_free_locked(slab_of(t), e);    /* then freed */
    t->entries--;
}

void *pt_shm_table_put(pt_shm_table *t, const void *key, size_t klen, bool *created,
                       bool (*evictable)(void *value, void *arg), void *arg)
{
    table_key k;
    make_key(t, key, klen, &k);
    *created = false;
    pt_shm_entry *e = lookup(t, &k);
    if (e) {
        pt_shm_list_move_head(t, &t->lru, &e->lru);
        return value_of(e);
    }
    size_t size = sizeof(pt_shm_entry) + t->value_size + k.klen;
    pt_shm_slab *s = slab_of(t);
    e = pt_shm_slab_alloc_locked(s, size);
    if (e == NULL) {
        /* full: the least recently used entries that may go make room, one at a time (a
         * freed slot of another size class does not help, so try again after each) */
        pt_shm_list *l = pt_shm_list_last(t, &t->lru);
        for (unsigned look = 0; e == NULL && l && look < EVICT_LOOK; look++) {
            pt_shm_list *prev = pt_shm_list_prev(t, &t->lru, l);
            pt_shm_entry *old = pt_container_of(l, pt_shm_entry, lru);
            if (evictable == NULL || evictable(value_of(old), arg)) {
                pt_shm_table_del(t, value_of(old));
                t->evictions++;
                e = pt_shm_slab_alloc_locked(s, size);
            }
            l = prev;
        }
        if (e == NULL) {
            t->failures++;
            return NULL;
        }
    }
    memset(e, 0, sizeof(*e) + t->value_size);
    e->hash = k.hash;
    e->klen = (uint32_t) k.klen;
    memcpy(key_of(t, e), k.key, k.klen);
    pt_shm_list_insert_head(t, &t->lru, &e->lru);     /* on the LRU list first, */
    pt_shm_list_barrier();
    uint64_t *b = &t->buckets[k.hash & (t->nbuckets - 1)];
    e->next = *b;
    pt_shm_list_barrier();
    *b = entry_off(t, e);                               /* then findable */
    t->entries++;
    *created = true;
    return value_of(e);
}

void pt_shm_table_foreach(pt_shm_table *t, void (*fn)(pt_shm_table *t, void *value,
                                                       const void *key, size_t klen,
                                                       void *arg), void *arg)
{
    pt_shm_list *l = pt_shm_list_first(t, &t->lru);
    while (l) {
        pt_shm_list *next = pt_shm_list_next(t, &t->lru, l);
        pt_shm_entry *e = pt_container_of(l, pt_shm_entry, lru);
        fn(t, value_of(e), key_of(t, e), e->klen, arg);
        l = next;
    }
}
