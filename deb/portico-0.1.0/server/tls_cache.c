/* The TLS session cache shared by the workers of a listener: serialised sessions by id in
 * a shared-memory zone. Layout of the zone:
 *
 *   header   magic, geometry, counters, the LRU list head, the hash buckets
 *   slab     the zone's slab allocator (server/shm_slab.c): one entry per session
 *
 * Everything is linked by offsets from the zone's start (it maps at another address in
 * each process) and changed under the slab's lock. At most `max` entries; when full, or
 * when the slab has no slot left, the least recently used entry goes.
 *
 * A process that dies holding the lock: the slab repairs itself (pt_shm_slab_lock says
 * PT_AGAIN); the LRU list is the record of which entries exist -- an entry is on it from
 * its insertion to its removal, and the hash chains are changed with single stores
 * around it -- so its back links are rebuilt and the index is rebuilt from it. An entry
 * whose insertion or removal the death cut short is lost (its slot too, until the zone is
 * made anew): a missed resumption, never a wrong one.
 *
 * No OpenSSL here (tls_session.c does the (de)serialising): t/unit/test_tls_cache.c. */
#include <stdio.h>

#include "portico/log.h"
#include "portico/shm_list.h"
#include "portico/shm_slab.h"
#include "portico/tls.h"

#define CACHE_MAGIC  0x7074736573733031ull      /* "ptsess01" */
#define CACHE_SLOT   512            /* what a session usually takes, for the zone size */

typedef struct cache_entry {
    pt_shm_list lru;
    uint64_t    next;               /* hash chain: zone offset of the next entry, 0 end */
    uint64_t    expires;            /* realtime, seconds */
    uint32_t    hash;
    uint16_t    len;
    uint8_t     id_len;
    uint8_t     id[PT_TLS_CACHE_ID_MAX];
    uint8_t     data[];
} cache_entry;

typedef struct cache_zone {
    uint64_t    magic;
    uint64_t    size;               /* of the zone */
    uint64_t    slab_off;           /* where the slab starts */
    uint32_t    nbuckets;           /* a power of two */
    uint32_t    max;                /* entries kept at most */
    uint64_t    count;
    uint64_t    stores, hits, misses, evictions, repairs;
    pt_shm_list lru;                /* most recently used first */
    uint64_t    buckets[];          /* zone offsets of the first entry, 0 none */
} cache_zone;

_Static_assert(sizeof(cache_entry) + PT_TLS_CACHE_DATA_MAX <= PT_SHM_SLAB_MAX,
               "a session fits one slab slot");

static size_t header_size(uint32_t nbuckets)
{
    size_t h = sizeof(cache_zone) + (size_t) nbuckets * sizeof(uint64_t);
    return (h + PT_SHM_SLAB_PAGE - 1) & ~((size_t) PT_SHM_SLAB_PAGE - 1);
}

static uint32_t buckets_for(uint32_t max)
{
    uint32_t n = 64;
    while (n < max)
        n <<= 1;
    return n;
}

size_t pt_tls_cache_zone_size(uint32_t max)
{
    /* two pages for the slab's own header and bitmaps, then the entries */
    return header_size(buckets_for(max)) + 2 * PT_SHM_SLAB_PAGE + (size_t) max * CACHE_SLOT;
}

static pt_shm_slab *slab_of(cache_zone *z)
{
    return (pt_shm_slab *) ((char *) z + z->slab_off);
}

static cache_entry *entry_at(cache_zone *z, uint64_t off)
{
    return off ? (cache_entry *) ((char *) z + off) : NULL;
}

static uint64_t entry_off(cache_zone *z, cache_entry *e)
{
    return (uint64_t) ((char *) e - (char *) z);
}

static uint32_t id_hash(const uint8_t *id, unsigned len)
{
    uint32_t h = 2166136261u;
    for (unsigned i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h;
}

int pt_tls_cache_init(void *addr, size_t size, uint32_t max, bool reused)
{
    cache_zone *z = addr;
    uint32_t nb = buckets_for(max);
    size_t hdr = header_size(nb);

    if (size < hdr + 2 * PT_SHM_SLAB_PAGE)
        return PT_ERROR;
    if (reused && z->magic == CACHE_MAGIC && z->size == size && z->nbuckets == nb
        && z->slab_off == hdr && pt_shm_slab_attach((char *) z + hdr, size - hdr) != NULL) {
        z->max = max;
        return PT_OK;
    }
    memset(z, 0, hdr);
    z->size = size;
    z->slab_off = hdr;
    z->nbuckets = nb;
    z->max = max;
    pt_shm_list_init(z, &z->lru);
    if (pt_shm_slab_init((char *) z + hdr, size - hdr) == NULL)
        return PT_ERROR;
    z->magic = CACHE_MAGIC;
    return PT_OK;
}

static void hash_unlink(cache_zone *z, cache_entry *e)
{
    uint64_t off = entry_off(z, e);
    uint64_t *p = &z->buckets[e->hash & (z->nbuckets - 1)];
    while (*p && *p != off)
        p = &entry_at(z, *p)->next;
    if (*p)
        *p = e->next;           /* one store: the chain is whole before and after */
}

/* Off the index, off the list, then freed (see the top for a death in between). */
static void entry_remove(cache_zone *z, cache_entry *e)
{
    hash_unlink(z, e);
    pt_shm_list_barrier();
    if (e->lru.prev)
        pt_shm_list_remove(z, &e->lru);
    pt_shm_list_barrier();
    if (z->count)
        z->count--;
    pt_shm_slab_free_locked(slab_of(z), e);
}

static cache_entry *entry_find(cache_zone *z, const uint8_t *id, unsigned len, uint32_t h)
{
    for (cache_entry *e = entry_at(z, z->buckets[h & (z->nbuckets - 1)]); e;
         e = entry_at(z, e->next))
        if (e->hash == h && e->id_len == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

static bool evict_one(cache_zone *z)
{
    pt_shm_list *l = pt_shm_list_last(z, &z->lru);
    if (l == NULL)
        return false;
    entry_remove(z, pt_container_of(l, cache_entry, lru));
    z->evictions++;
    return true;
}

static void repair(cache_zone *z, const char *who)
{
    long n = pt_shm_list_repair(z, z->size, &z->lru);
    memset(z->buckets, 0, (size_t) z->nbuckets * sizeof(uint64_t));
    if (n < 0) {
        /* cannot happen with the ordered stores; start empty rather than trust it */
        pt_shm_list_init(z, &z->lru);
        n = 0;
    }
    pt_shm_list *l;
    pt_shm_list_foreach(z, &z->lru, l) {
        cache_entry *e = pt_container_of(l, cache_entry, lru);
        uint64_t *b = &z->buckets[e->hash & (z->nbuckets - 1)];
        e->next = *b;
        *b = entry_off(z, e);
    }
    z->count = (uint64_t) n;
    z->repairs++;
    pt_log(PT_LOG_WARN, "TLS session cache of %s repaired after a process died holding its "
           "lock: %ld sessions kept", who, n);
}

static cache_zone *lock(void *zone, const char *who)
{
    cache_zone *z = zone;
    if (z == NULL || z->magic != CACHE_MAGIC)
        return NULL;
    int rc = pt_shm_slab_lock(slab_of(z));
    if (rc == PT_ERROR)
        return NULL;
    if (rc == PT_AGAIN)
        repair(z, who);
    return z;
}

static void unlock(cache_zone *z)
{
    pt_shm_slab_unlock(slab_of(z));
}

int pt_tls_cache_put(void *zone, const uint8_t *id, unsigned idlen, const uint8_t *data,
                     size_t len, uint64_t expires, const char *who)
{
    if (idlen == 0 || idlen > PT_TLS_CACHE_ID_MAX || len == 0 || len > PT_TLS_CACHE_DATA_MAX)
        return PT_DECLINED;
    uint32_t h = id_hash(id, idlen);
    cache_zone *z = lock(zone, who);
    if (z == NULL)
        return PT_ERROR;
    cache_entry *e = entry_find(z, id, idlen, h);
    if (e)
        entry_remove(z, e);
    while (z->count >= z->max && evict_one(z)) {
    }
    pt_shm_slab *slab = slab_of(z);
    while ((e = pt_shm_slab_alloc_locked(slab, sizeof(*e) + len)) == NULL)
        if (!evict_one(z))
            break;
    if (e) {
        pt_shm_list_node_init(&e->lru);
        e->hash = h;
        e->expires = expires;
        e->id_len = (uint8_t) idlen;
        memcpy(e->id, id, idlen);
        e->len = (uint16_t) len;
        memcpy(e->data, data, len);
        /* on the list first (the record of what exists), then in the index */
        pt_shm_list_insert_head(z, &z->lru, &e->lru);
        pt_shm_list_barrier();
        uint64_t *b = &z->buckets[h & (z->nbuckets - 1)];
        e->next = *b;
        pt_shm_list_barrier();
        *b = entry_off(z, e);
        z->count++;
        z->stores++;
    }
    unlock(z);
    return e ? PT_OK : PT_ERROR;
}

size_t pt_tls_cache_get(void *zone, const uint8_t *id, unsigned idlen, uint8_t *buf,
                        uint64_t now, const char *who)
{
    size_t len = 0;
    if (idlen == 0 || idlen > PT_TLS_CACHE_ID_MAX)
        return 0;
    cache_zone *z = lock(zone, who);
    if (z == NULL)
        return 0;
    cache_entry *e = entry_find(z, id, idlen, id_hash(id, idlen));
    if (e && e->expires <= now) {
        entry_remove(z, e);
        e = NULL;
    }
    if (e) {
        len = e->len;
        memcpy(buf, e->data, len);
        pt_shm_list_move_head(z, &z->lru, &e->lru);
        z->hits++;
    } else {
        z->misses++;
    }
    unlock(z);
    return len;
}

void pt_tls_cache_remove(void *zone, const uint8_t *id, unsigned idlen, const char *who)
{
    if (idlen == 0 || idlen > PT_TLS_CACHE_ID_MAX)
        return;
    cache_zone *z = lock(zone, who);
    if (z == NULL)
        return;
    cache_entry *e = entry_find(z, id, idlen, id_hash(id, idlen));
    if (e)
        entry_remove(z, e);
    unlock(z);
}

uint64_t pt_tls_cache_count(void *zone)
{
    return zone ? ((cache_zone *) zone)->count : 0;
}

int pt_tls_cache_check(void *zone, char *err, size_t len)
{
    cache_zone *z = zone;
    long n = pt_shm_list_check(z, z->size, &z->lru);
    uint64_t indexed = 0;
    if (n < 0) {
        snprintf(err, len, "the LRU list is broken");
        return PT_ERROR;
    }
    for (uint32_t b = 0; b < z->nbuckets; b++)
        for (cache_entry *e = entry_at(z, z->buckets[b]); e; e = entry_at(z, e->next)) {
            if ((e->hash & (z->nbuckets - 1)) != b || !pt_shm_list_linked(z, &e->lru)) {
                snprintf(err, len, "an indexed entry in the wrong bucket or off the list");
                return PT_ERROR;
            }
            indexed++;
        }
    if ((uint64_t) n != z->count || indexed != z->count) {
        snprintf(err, len, "count %llu, on the list %ld, indexed %llu",
                 (unsigned long long) z->count, n, (unsigned long long) indexed);
        return PT_ERROR;
    }
    return pt_shm_slab_check(slab_of(z), err, len);
}
