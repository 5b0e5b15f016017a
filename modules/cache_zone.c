/* The cache zone's life outside the traffic: laying it out, taking it back from its file
 * after a restart (validated, never trusted), repairing it after a process died inside
 * its critical section, and checking it whole (tests). The layout and the rules it keeps
 * are described in cache_store.c. */
#include <stdio.h>
#include <stdlib.h>

#include "portico/log.h"
#include "portico/random.h"
#include "portico/str.h"
#include "cache.h"

static inline void *zat(cache_zone *z, uint64_t off)
{
    return (char *) z + off;
}

static inline uint64_t zoff(cache_zone *z, const void *p)
{
    return (uint64_t) ((const char *) p - (const char *) z);
}

static inline pt_shm_slab *zslab(cache_zone *z)
{
    return (pt_shm_slab *) zat(z, z->slab_off);
}

static inline cache_bucket *zbuckets(cache_zone *z)
{
    return (cache_bucket *) zat(z, z->buckets_off);
}

static inline uint64_t pages_start(cache_zone *z)
{
    return z->slab_off + zslab(z)->pages_off;
}

static inline bool slot_ok(cache_zone *z, uint64_t off, size_t len)
{
    uint64_t start = pages_start(z);
    return off >= start && (off & 15) == 0 && off + len <= start + z->npages * PT_SHM_SLAB_PAGE
           && (off - start) / PT_SHM_SLAB_PAGE == (off + len - 1 - start) / PT_SHM_SLAB_PAGE;
}

static inline uint64_t stream_len(const cache_entry *e)
{
    return (uint64_t) e->key_len + e->vary_len + e->req_len + e->head_len + e->body_len;
}

/* ------------------------------------------------------------------ layout */

#define ZONE_HEADER  ((sizeof(cache_zone) + 63) & ~(size_t) 63)

static uint64_t pow2_floor(uint64_t n)
{
    uint64_t p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

/* Where everything goes in a zone of size bytes; false when it is too small. */
static bool geometry(uint64_t size, cache_zone *g)
{
    memset(g, 0, sizeof(*g));
    uint64_t nb = pow2_floor(size / 2048);     /* about one bucket per expected entry */
    if (nb < 64)
        nb = 64;
    g->size = size;
    g->nbuckets = nb;
    g->buckets_off = ZONE_HEADER;
    g->pages_meta_off = g->buckets_off + nb * sizeof(cache_bucket);
    uint64_t max_pages = size / PT_SHM_SLAB_PAGE;
    g->slab_off = (g->pages_meta_off + max_pages * sizeof(cache_page) + PT_SHM_SLAB_PAGE - 1)
                  & ~(uint64_t) (PT_SHM_SLAB_PAGE - 1);
    if (g->slab_off + 4 * PT_SHM_SLAB_PAGE > size)
        return false;
    g->slab_size = size - g->slab_off;
    return true;
}

static void set_env_defaults(void)
{
    if (cache_env_cur.pin_limit_s == 0)
        cache_env_cur.pin_limit_s = 120;
}

/* A new, empty zone. clear: the memory may hold anything (a rejected file). */
static int zone_init(void *addr, uint64_t size, bool clear)
{
    cache_zone g;
    if (!geometry(size, &g)) {
        pt_log(PT_LOG_EMERG, "cache: %llu bytes are too few for a cache zone",
               (unsigned long long) size);
        return PT_ERROR;
    }
    cache_zone *z = addr;
    if (clear)
        memset(z, 0, g.slab_off);
    else
        memset(z, 0, ZONE_HEADER);
    *z = g;
    pt_shm_slab *s = pt_shm_slab_init(zat(z, z->slab_off), z->slab_size);
    if (s == NULL)
        return PT_ERROR;
    z->npages = s->npages;
    z->header_size = (uint32_t) ZONE_HEADER;
    z->layout = CACHE_LAYOUT;
    pt_random_bytes(&z->seed, sizeof(z->seed));
    pt_random_bytes(&z->next_gen, sizeof(z->next_gen));
    z->next_gen = (z->next_gen >> 2) | 1;      /* never 0, far from wrapping */
    pt_shm_list_init(z, &z->lru);
    pt_shm_list_init(z, &z->pending);
    pt_shm_list_init(z, &z->retired);
    pt_shm_list_barrier();
    z->magic = CACHE_MAGIC;
    cache_z = z;
    set_env_defaults();
    return PT_OK;
}

/* Why a zone's header is not one this build can use, or NULL. */
static const char *header_problem(cache_zone *z, uint64_t size)
{
    cache_zone g;
    if (z->magic != CACHE_MAGIC)
        return "not a portico cache file (or from an incompatible version)";
    if (z->layout != CACHE_LAYOUT || z->header_size != ZONE_HEADER)
        return "written by another version of portico (another layout)";
    if (z->size != size || !geometry(size, &g) || g.nbuckets != z->nbuckets
        || g.buckets_off != z->buckets_off || g.pages_meta_off != z->pages_meta_off
        || g.slab_off != z->slab_off || g.slab_size != z->slab_size)
        return "made for another size";
    if (pt_shm_slab_attach(zat(z, z->slab_off), z->slab_size) == NULL)
        return "its allocator does not match its size";
    if (zslab(z)->npages != z->npages)
        return "its page count does not match";
    return NULL;
}

void cache_zone_use(void *addr)
{
    cache_z = addr;
    set_env_defaults();
}

/* ------------------------------------------------------------------ reachability */

/* The set of slots something reaches, for the sweep. */
typedef struct reach {
    uint64_t *v;
    size_t    n, cap;
    bool      failed;
} reach;

static void reach_add(reach *r, uint64_t off)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        uint64_t *v = realloc(r->v, cap * sizeof(*v));
        if (v == NULL) {
            r->failed = true;
            return;
        }
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = off;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static void reach_sort(reach *r)
{
    if (r->n == 0)
        return;                         /* qsort wants an array, even of nothing */
    qsort(r->v, r->n, sizeof(*r->v), cmp_u64);
    size_t j = 0;
    for (size_t i = 0; i < r->n; i++)
        if (j == 0 || r->v[j - 1] != r->v[i])
            r->v[j++] = r->v[i];
    r->n = j;
}

static bool reach_has(const reach *r, uint64_t off)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->v[mid] == off)
            return true;
        if (r->v[mid] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

typedef struct sweep_arg {
    cache_zone *z;
    reach      *r;
} sweep_arg;

static bool sweep_keep(void *arg, void *slot)
{
    sweep_arg *a = arg;
    return reach_has(a->r, zoff(a->z, slot));
}

/* Is e (at off) a well-formed entry with its chunks, all inside the zone? Adds its slots
 * to r when it is. */
static bool entry_sound(cache_zone *z, uint64_t off, reach *r)
{
    if (!slot_ok(z, off, sizeof(cache_entry)))
        return false;
    cache_entry *e = zat(z, off);
    if (e->magic != CACHE_ENTRY_MAGIC || e->gen == 0 || e->kind < CK_OBJECT
        || e->kind > CK_PASS || e->state < CS_PENDING || e->state > CS_RETIRED
        || e->key_len > CACHE_MAX_KEY || e->cap + sizeof(cache_entry) > PT_SHM_SLAB_MAX
        || !slot_ok(z, off, sizeof(cache_entry) + e->cap))
        return false;
    uint64_t len = stream_len(e);
    uint64_t need = len > e->cap ? (len - e->cap + CACHE_CHUNK_DATA - 1) / CACHE_CHUNK_DATA : 0;
    if (e->state == CS_PENDING)
        need = 0;                       /* being written: its chain is what it is */
    size_t mark = r ? r->n : 0;
    if (r)
        reach_add(r, off);
    uint64_t c = e->chunks, count = 0;
    while (c) {
        if (!slot_ok(z, c, CACHE_CHUNK_SIZE) || count > z->npages)
            goto bad;
        cache_chunk *ch = zat(z, c);
        if (ch->magic != CACHE_CHUNK_MAGIC || ch->gen != e->gen)
            goto bad;
        if (r)
            reach_add(r, c);
        count++;
        c = ch->next;
    }
    if (e->state != CS_PENDING && count < need)
        goto bad;
    return true;
bad:
    if (r)
        r->n = mark;
    return false;
}

/* ------------------------------------------------------------------ repair */

/* Under the lock, after its previous holder died (the slab has repaired itself). */
void cache_repair(cache_zone *z, uint64_t now_ms)
{
    reach r = { 0 };
    cache_bucket *b = zbuckets(z);
    uint64_t cut = 0, relinked = 0, finished = 0;

    for (uint64_t i = 0; i < z->nbuckets; i++)
        if (b[i].seq & 1)
            __atomic_store_n(&b[i].seq, b[i].seq + 1, __ATOMIC_RELEASE);
    if (pt_shm_list_repair(z, z->size, &z->lru) < 0)
        pt_shm_list_init(z, &z->lru);
    if (pt_shm_list_repair(z, z->size, &z->pending) < 0)
        pt_shm_list_init(z, &z->pending);
    if (pt_shm_list_repair(z, z->size, &z->retired) < 0)
        pt_shm_list_init(z, &z->retired);

    /* the index: every entry sound and LIVE, and on the LRU list */
    reach indexed = { 0 };
    for (uint64_t i = 0; i < z->nbuckets; i++) {
        uint64_t *link = &b[i].first;
        unsigned hops = 0;
        while (*link) {
            cache_entry *e = zat(z, *link);
            if (hops++ > (1u << 20) || !entry_sound(z, *link, NULL) || e->state != CS_LIVE
                || (e->hash & (z->nbuckets - 1)) != i) {
                b[i].seq++;
                *link = 0;              /* what follows cannot be trusted */
                b[i].seq++;
                cut++;
                break;
            }
            reach_add(&indexed, *link);
            if (!pt_shm_list_linked(z, &e->link)) {
                pt_shm_list_node_init(&e->link);
                pt_shm_list_insert_head(z, &z->lru, &e->link);
                relinked++;
            }
            link = &e->hnext;
        }
    }
    reach_sort(&indexed);

    /* the LRU list: an entry not in the index was being evicted: finish that */
    z->entries = z->objects = z->object_bytes = 0;
    pt_shm_list *l = pt_shm_list_first(z, &z->lru);
    while (l) {
        pt_shm_list *next = pt_shm_list_next(z, &z->lru, l);
        cache_entry *e = pt_container_of(l, cache_entry, link);
        uint64_t off = zoff(z, e);
        if (!reach_has(&indexed, off)) {
            pt_shm_list_remove(z, l);
            finished++;
        } else {
            entry_sound(z, off, &r);
            z->entries++;
            if (e->kind == CK_OBJECT) {
                z->objects++;
                z->object_bytes += stream_len(e);
            }
        }
        l = next;
    }
    z->pending_n = z->retired_n = 0;
    pt_shm_list_foreach(z, &z->pending, l) {
        entry_sound(z, zoff(z, pt_container_of(l, cache_entry, link)), &r);
        z->pending_n++;
    }
    pt_shm_list_foreach(z, &z->retired, l) {
        entry_sound(z, zoff(z, pt_container_of(l, cache_entry, link)), &r);
        z->retired_n++;
    }
    uint64_t swept = 0;
    if (!r.failed && !indexed.failed) {
        reach_sort(&r);
        sweep_arg a = { z, &r };
        swept = pt_shm_slab_sweep_locked(zslab(z), sweep_keep, &a);
    }
    free(r.v);
    free(indexed.v);
    z->repairs++;
    pt_log(PT_LOG_WARN, "cache: a process died holding the cache's lock: repaired (%llu "
           "chains cut, %llu entries put back on the LRU list, %llu evictions finished, "
           "%llu unreachable slots freed)", (unsigned long long) cut,
           (unsigned long long) relinked, (unsigned long long) finished,
           (unsigned long long) swept);
    (void) now_ms;
}

/* ------------------------------------------------------------------ loading a file */

/* The checksum of e's stream, read whole (sound entries only: entry_sound checked it). */
static uint64_t stream_sum(cache_zone *z, const cache_entry *e)
{
    cache_summer sm = { 0 };
    uint64_t len = stream_len(e), k = pt_min(len, (uint64_t) e->cap), at = k, c = e->chunks;
    cache_summer_feed(&sm, e->data, (size_t) k);
    while (at < len && c) {
        cache_chunk *ch = zat(z, c);
        size_t n = (size_t) pt_min(len - at, (uint64_t) CACHE_CHUNK_DATA);
        cache_summer_feed(&sm, ch->data, n);
        at += n;
        c = ch->next;
    }
    return at == len ? cache_summer_final(&sm) : ~cache_summer_final(&sm);
}

/* A zone from an earlier process: keep every LIVE object that is whole (its checksum
 * right), drop everything else (what was being written, fetches, marks), rebuild the
 * index and the lists, free what nothing reaches. Alone: the master before any worker. */
static void zone_load(cache_zone *z, const char *path)
{
    pt_shm_slab *s = zslab(z);
    pt_shm_mutex_init(&s->lock);        /* whoever held it is gone (another boot, maybe) */
    pt_shm_slab_reload(s);
    cache_bucket *b = zbuckets(z);
    reach r = { 0 };
    uint64_t kept = 0, dropped = 0;

    /* the entries the old index reached, sound and whole */
    reach cand = { 0 };
    for (uint64_t i = 0; i < z->nbuckets; i++) {
        uint64_t off = b[i].first;
        for (unsigned hops = 0; off && hops < (1u << 20); hops++) {
            if (!slot_ok(z, off, sizeof(cache_entry)))
                break;
            reach_add(&cand, off);
            off = ((cache_entry *) zat(z, off))->hnext;
        }
        b[i].seq = 0;
        b[i].first = 0;
    }
    reach_sort(&cand);
    pt_shm_list_init(z, &z->lru);
    pt_shm_list_init(z, &z->pending);
    pt_shm_list_init(z, &z->retired);
    memset(zat(z, z->pages_meta_off), 0, z->npages * sizeof(cache_page));
    z->entries = z->objects = z->object_bytes = z->pending_n = z->retired_n = 0;

    for (size_t i = 0; i < cand.n; i++) {
        uint64_t off = cand.v[i];
        cache_entry *e = zat(z, off);
        size_t mark = r.n;
        bool good = entry_sound(z, off, &r) && e->state == CS_LIVE
                    && (e->kind == CK_OBJECT || e->kind == CK_VARY);
        if (good)
            good = e->sum == cache_entry_sum(e, stream_sum(z, e));
        if (!good) {
            r.n = mark;
            dropped++;
            continue;
        }
        e->upd_pid = 0;
        e->upd_until = 0;
        cache_bucket *bk = &b[e->hash & (z->nbuckets - 1)];
        e->hnext = bk->first;
        bk->first = off;
        pt_shm_list_node_init(&e->link);
        pt_shm_list_insert_head(z, &z->lru, &e->link);
        z->entries++;
        if (e->kind == CK_OBJECT) {
            z->objects++;
            z->object_bytes += stream_len(e);
            kept++;
        }
    }
    free(cand.v);
    uint64_t swept = 0;
    if (!r.failed) {
        reach_sort(&r);
        sweep_arg a = { z, &r };
        swept = pt_shm_slab_sweep_locked(s, sweep_keep, &a);
    }
    free(r.v);
    z->loads++;
    z->load_dropped += dropped;
    pt_log(PT_LOG_NOTICE, "cache: loaded \"%s\": %llu objects kept, %llu entries dropped "
           "(incomplete or damaged), %llu slots freed", path, (unsigned long long) kept,
           (unsigned long long) dropped, (unsigned long long) swept);
}

int cache_zone_setup(pt_shm_zone *sz, bool reused, uint64_t now_ms)
{
    cache_zone *z = sz->addr;
    (void) now_ms;
    if (reused) {
        const char *why = header_problem(z, sz->size);
        if (why == NULL) {
            cache_z = z;
            set_env_defaults();
            return PT_OK;
        }
        pt_log(PT_LOG_WARN, "cache: the zone kept by the reload is unusable (%s): emptied",
               why);
        return zone_init(z, sz->size, true);
    }
    if (sz->persisted) {
        static char err[200];
        const char *why = header_problem(z, sz->size);
        if (why == NULL) {
            cache_z = z;
            set_env_defaults();
            zone_load(z, sz->path);
            if (cache_check(err, sizeof(err)) == PT_OK)
                return PT_OK;
            why = err;
        }
        pt_log(PT_LOG_WARN, "cache: file \"%s\" discarded: %s; the cache starts empty",
               sz->path, why);
        return zone_init(z, sz->size, true);
    }
    return zone_init(z, sz->size, false);
}

/* ------------------------------------------------------------------ check */

static int fail(char *err, size_t len, const char *what, unsigned long long n)
{
    if (err)
        snprintf(err, len, "%s (%llu)", what, n);
    return PT_ERROR;
}

int cache_check(char *err, size_t len)
{
    cache_zone *z = cache_z;
    pt_shm_slab *s = zslab(z);
    if (pt_shm_slab_lock(s) == PT_AGAIN)
        cache_repair(z, 0);
    int rc = PT_OK;
    char serr[160];
    reach r = { 0 };
    uint64_t entries = 0, objects = 0, bytes = 0, used = 0;
    cache_bucket *b = zbuckets(z);

    if (pt_shm_slab_check(s, serr, sizeof(serr)) != PT_OK) {
        rc = fail(err, len, serr, 0);
        goto done;
    }
    for (uint64_t i = 0; i < z->nbuckets && rc == PT_OK; i++) {
        if (b[i].seq & 1) {
            rc = fail(err, len, "a bucket is left odd", i);
            break;
        }
        uint64_t off = b[i].first;
        for (unsigned hops = 0; off; hops++) {
            cache_entry *e = zat(z, off);
            if (hops > (1u << 20) || !entry_sound(z, off, &r) || e->state != CS_LIVE
                || (e->hash & (z->nbuckets - 1)) != i || !pt_shm_list_linked(z, &e->link)) {
                rc = fail(err, len, "a bad entry in bucket", i);
                break;
            }
            entries++;
            if (e->kind == CK_OBJECT) {
                objects++;
                bytes += stream_len(e);
            }
            off = e->hnext;
        }
    }
    if (rc != PT_OK)
        goto done;
    long n = pt_shm_list_check(z, z->size, &z->lru);
    if (n < 0 || (uint64_t) n != entries || entries != z->entries || objects != z->objects
        || bytes != z->object_bytes) {
        rc = fail(err, len, "the LRU list or the counters disagree with the index",
                  (unsigned long long) n);
        goto done;
    }
    pt_shm_list *l;
    n = pt_shm_list_check(z, z->size, &z->pending);
    if (n < 0 || (uint64_t) n != z->pending_n) {
        rc = fail(err, len, "the pending list", (unsigned long long) n);
        goto done;
    }
    pt_shm_list_foreach(z, &z->pending, l)
        entry_sound(z, zoff(z, pt_container_of(l, cache_entry, link)), &r);
    n = pt_shm_list_check(z, z->size, &z->retired);
    if (n < 0 || (uint64_t) n != z->retired_n) {
        rc = fail(err, len, "the retired list", (unsigned long long) n);
        goto done;
    }
    pt_shm_list_foreach(z, &z->retired, l)
        entry_sound(z, zoff(z, pt_container_of(l, cache_entry, link)), &r);
    reach_sort(&r);
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++)
        used += s->cls[c].used;
    if (used != r.n)
        rc = fail(err, len, "slots in use that nothing reaches, or reached twice",
                  (unsigned long long) (used - r.n));
done:
    free(r.v);
    pt_shm_slab_unlock(s);
    return rc;
}
