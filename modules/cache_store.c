/* The cache's store: one shared zone for every worker (and, with `path`, a file that
 * outlives the process).
 *
 *   [cache_zone header][buckets: nbuckets x {seq, first}][cache_page per slab page]
 *   [slab: entries and body chunks, 16 B .. 4 KiB slots]
 *
 * Index. A hash table of buckets, each a chain of entries linked by offsets. Writers
 * (store, evict, purge, marks) serialise on the slab's robust lock; readers take no lock:
 * a bucket's seq is odd while a writer changes its chain, and a reader walks the chain,
 * copies what it needs and retries when seq moved (a seqlock). A hit therefore writes
 * nothing shared but, at most once per CLOCK round, its page's reference word.
 *
 * Objects. An entry is one slab slot holding its fixed fields and the start of its
 * stream (key, variant, request, response head, body); the rest of the stream goes into
 * chained 4 KiB chunks (one slab page each). Chained slots rather than an extent
 * allocator: every allocation is then a slab slot, freed and repaired by the slab's own
 * rules, and a body never needs a contiguous run of pages (no fragmentation to manage).
 * Small responses (a 1 KiB body with its head) fit one 2 KiB slot: one copy per hit.
 *
 * Visibility. An object is written PENDING (on the pending list, out of the index) and
 * enters the index only whole, by one store into its bucket's chain under the bucket's
 * seq: a reader sees all of it or none of it. Every entry ever written gets a unique
 * generation (a random start and +1), zeroed before its slots are freed; a reader copies
 * and then checks the generation it found, so bytes of an entry freed (and its slots
 * reused) under it are never used.
 *
 * Eviction. The LRU list holds every live entry in insertion order; hits only mark their
 * page as referenced, and the eviction hand (CLOCK) gives a referenced entry another turn
 * at the head, evicting the first one found cold. An entry a slow serve still streams is
 * passed over; when it is replaced or purged it is retired (out of the index) and freed
 * once that serve lets it go (or stops reading for pin_limit_s).
 *
 * Deaths. A process killed holding the lock: the slab repairs its own operation, then
 * cache_repair() makes every bucket's seq even, rebuilds the lists' back links, puts
 * index entries missing from the LRU back on it, finishes evictions caught halfway, and
 * frees (mark and sweep) every slot nothing reaches: one allocated but not yet linked. A
 * process killed outside the lock leaves at most a PENDING entry (freed by
 * cache_maintain once its owner is seen dead), a FILL entry (ignored once its owner is
 * dead) or an update mark (the same): never anything a reader could take as an object. */
#include <stdio.h>
#include <stdlib.h>

#include "portico/log.h"
#include "portico/str.h"
#include "cache.h"

cache_zone *cache_z;
cache_env   cache_env_cur;

#define MAX_HOPS        256         /* longest chain walked without the lock */
#define EVICT_STEPS     64          /* entries the CLOCK hand looks at per eviction */
#define CHUNK_BATCH     32          /* chunks allocated per lock hold for a known size */

/* ------------------------------------------------------------------ addressing */

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

static inline cache_bucket *zbucket(cache_zone *z, uint64_t hash)
{
    return (cache_bucket *) zat(z, z->buckets_off) + (hash & (z->nbuckets - 1));
}

static inline uint64_t pages_start(cache_zone *z)
{
    return z->slab_off + zslab(z)->pages_off;
}

/* Is off a plausible slot offset (inside the slab's pages, 16-aligned) with len bytes? */
static inline bool slot_ok(cache_zone *z, uint64_t off, size_t len)
{
    uint64_t start = pages_start(z);
    return off >= start && (off & 15) == 0 && off + len <= start + z->npages * PT_SHM_SLAB_PAGE
           && (off - start) / PT_SHM_SLAB_PAGE == (off + len - 1 - start) / PT_SHM_SLAB_PAGE;
}

static inline cache_page *zpage(cache_zone *z, uint64_t off)
{
    return (cache_page *) zat(z, z->pages_meta_off) + (off - pages_start(z)) / PT_SHM_SLAB_PAGE;
}

static inline cache_entry *entry_at(cache_zone *z, uint64_t off)
{
    return slot_ok(z, off, sizeof(cache_entry)) ? zat(z, off) : NULL;
}

static inline cache_chunk *chunk_at(cache_zone *z, uint64_t off)
{
    return (off & (PT_SHM_SLAB_PAGE - 1)) == ((pages_start(z)) & (PT_SHM_SLAB_PAGE - 1))
           && slot_ok(z, off, CACHE_CHUNK_SIZE) ? zat(z, off) : NULL;
}

static inline uint64_t stream_len(const cache_entry *e)
{
    return (uint64_t) e->key_len + e->vary_len + e->req_len + e->head_len + e->body_len;
}

static inline uint32_t now_s(uint64_t now_ms)
{
    return (uint32_t) (now_ms / 1000);
}

/* ------------------------------------------------------------------ hashing */

uint64_t cache_hash(pt_str key, pt_str vary)
{
    uint64_t seed = cache_z ? cache_z->seed : 0x243f6a8885a308d3ull;
    uint64_t h = cache_sum_bytes(seed, key.data, key.len);
    if (vary.len)
        h = cache_sum_bytes(h ^ 0x5bd1e995u, vary.data, vary.len);
    h ^= h >> 31;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 29;
    return h;
}

/* ------------------------------------------------------------------ the lock */

static int zlock(cache_zone *z, uint64_t now_ms)
{
    int rc = pt_shm_slab_lock(zslab(z));
    if (rc == PT_AGAIN) {
        cache_repair(z, now_ms);
        rc = PT_OK;
    }
    return rc;
}

static void zunlock(cache_zone *z)
{
    pt_shm_slab_unlock(zslab(z));
}

/* Bucket changes: seq odd while the chain changes (readers retry), even after. */
static inline void bucket_begin(cache_bucket *b)
{
    __atomic_store_n(&b->seq, b->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void bucket_end(cache_bucket *b)
{
    __atomic_store_n(&b->seq, b->seq + 1, __ATOMIC_RELEASE);
}

/* A slot from the slab, evicting cold entries until one is free. */
static bool evict_one(cache_zone *z, uint64_t now_ms);

static void *zalloc(cache_zone *z, size_t n, uint64_t now_ms)
{
    pt_shm_slab *s = zslab(z);
    for (unsigned i = 0; i < 100000; i++) {
        void *p = pt_shm_slab_alloc_locked(s, n);
        if (p) {
            /* what we write into it must not be seen before a reader's check of the
             * generation that was there (see the file's comment) */
            __atomic_thread_fence(__ATOMIC_RELEASE);
            return p;
        }
        if (!evict_one(z, now_ms))
            return NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------------ stream access */

/* Copies n stream bytes at `at` of e (whose fixed fields are f: a snapshot, or e itself
 * under the lock). Offsets are checked, not trusted: without the lock they may be stale. */
static bool stream_copy(cache_zone *z, const cache_entry *f, const cache_entry *e,
                        cache_cursor *cur, uint64_t at, size_t n, char *dst)
{
    if (at + n > stream_len(f))
        return false;
    if (at < f->cap) {
        size_t k = (size_t) pt_min((uint64_t) n, f->cap - at);
        memcpy(dst, e->data + at, k);
        dst += k;
        at += k;
        n -= k;
    }
    if (n == 0)
        return true;
    uint64_t base = f->cap, off = f->chunks;
    if (cur && cur->chunk && cur->at <= at) {
        base = cur->at;
        off = cur->chunk;
    }
    while (n) {
        cache_chunk *c = chunk_at(z, off);
        if (c == NULL)
            return false;
        if (at >= base + CACHE_CHUNK_DATA) {
            off = __atomic_load_n(&c->next, __ATOMIC_RELAXED);
            base += CACHE_CHUNK_DATA;
            continue;
        }
        size_t in = (size_t) (at - base);
        size_t k = pt_min(n, CACHE_CHUNK_DATA - in);
        memcpy(dst, c->data + in, k);
        dst += k;
        at += k;
        n -= k;
        if (cur) {
            cur->at = base;
            cur->chunk = off;
        }
    }
    return true;
}

static bool stream_eq(cache_zone *z, const cache_entry *f, const cache_entry *e, uint64_t at,
                      pt_str s)
{
    char buf[512];
    for (size_t done = 0; done < s.len;) {
        size_t k = pt_min(s.len - done, sizeof(buf));
        if (!stream_copy(z, f, e, NULL, at + done, k, buf) || memcmp(buf, s.data + done, k))
            return false;
        done += k;
    }
    return true;
}

static bool entry_is(cache_zone *z, const cache_entry *f, const cache_entry *e, uint64_t hash,
                     pt_str key, pt_str vary)
{
    return f->hash == hash && f->key_len == key.len && f->vary_len == vary.len
           && f->magic == CACHE_ENTRY_MAGIC && f->state == CS_LIVE
           && stream_eq(z, f, e, 0, key) && stream_eq(z, f, e, key.len, vary);
}

/* ------------------------------------------------------------------ lookups */

/* Walks b's chain for the entry; under the lock the snapshot is exact, without it the
 * caller checks the bucket's seq afterwards. prev: where the link to it is (locked). */
static int walk(cache_zone *z, cache_bucket *b, uint64_t hash, pt_str key, pt_str vary,
                cache_snap *out, uint64_t **prev)
{
    uint64_t *link = &b->first;
    uint64_t off = __atomic_load_n(link, __ATOMIC_RELAXED);
    for (unsigned hops = 0; off && hops < MAX_HOPS; hops++) {
        cache_entry *e = entry_at(z, off);
        if (e == NULL)
            return PT_DECLINED;         /* torn (unlocked) or corrupt: not trusted */
        if (e->hash == hash) {
            memcpy(&out->e, e, sizeof(cache_entry));
            if (entry_is(z, &out->e, e, hash, key, vary)) {
                out->off = off;
                if (prev)
                    *prev = link;
                return PT_OK;
            }
        }
        link = &e->hnext;
        off = __atomic_load_n(link, __ATOMIC_RELAXED);
    }
    return PT_DECLINED;
}

int cache_lookup(uint64_t hash, pt_str key, pt_str vary, cache_snap *out)
{
    cache_zone *z = cache_z;
    cache_bucket *b = zbucket(z, hash);
    for (unsigned attempt = 0; attempt < 1000; attempt++) {
        uint64_t s1 = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        int rc = walk(z, b, hash, key, vary, out, NULL);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&b->seq, __ATOMIC_RELAXED) == s1)
            return rc;
    }
    /* a writer stalled (or died) in this bucket: the lock waits for it or repairs */
    uint64_t now = (uint64_t) 0;
    if (zlock(z, now) != PT_OK)
        return PT_DECLINED;
    int rc = walk(z, b, hash, key, vary, out, NULL);
    zunlock(z);
    return rc;
}

bool cache_still(const cache_snap *s)
{
    cache_entry *e = zat(cache_z, s->off);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&e->gen, __ATOMIC_RELAXED) == s->e.gen;
}

bool cache_read(const cache_snap *s, cache_cursor *cur, uint64_t at, size_t n, char *dst)
{
    cache_zone *z = cache_z;
    if (!stream_copy(z, &s->e, zat(z, s->off), cur, at, n, dst))
        return false;
    return cache_still(s);
}

void cache_touch(const cache_snap *s)
{
    cache_page *pg = zpage(cache_z, s->off);
    if (!__atomic_load_n(&pg->ref, __ATOMIC_RELAXED))
        __atomic_store_n(&pg->ref, 1, __ATOMIC_RELAXED);
}

void cache_pin(const cache_snap *s, uint64_t now_ms)
{
    cache_page *pg = zpage(cache_z, s->off);
    __atomic_store_n(&pg->read_s, now_s(now_ms), __ATOMIC_RELAXED);
    __atomic_add_fetch(&pg->readers, 1, __ATOMIC_RELAXED);
}

void cache_pin_touch(const cache_snap *s, uint64_t now_ms)
{
    cache_page *pg = zpage(cache_z, s->off);
    if (__atomic_load_n(&pg->read_s, __ATOMIC_RELAXED) != now_s(now_ms))
        __atomic_store_n(&pg->read_s, now_s(now_ms), __ATOMIC_RELAXED);
}

void cache_unpin(const cache_snap *s)
{
    cache_page *pg = zpage(cache_z, s->off);
    uint32_t n = __atomic_load_n(&pg->readers, __ATOMIC_RELAXED);
    while (n && !__atomic_compare_exchange_n(&pg->readers, &n, n - 1, false,
                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static bool pinned(cache_zone *z, const cache_entry *e, uint64_t now_ms)
{
    cache_page *pg = zpage(z, zoff(z, e));
    uint32_t readers = __atomic_load_n(&pg->readers, __ATOMIC_RELAXED);
    uint32_t last = __atomic_load_n(&pg->read_s, __ATOMIC_RELAXED);
    return readers && now_s(now_ms) - last < cache_env_cur.pin_limit_s;
}

/* ------------------------------------------------------------------ freeing */

static void entry_free(cache_zone *z, cache_entry *e)
{
    pt_shm_slab *s = zslab(z);
    uint64_t gen = e->gen, off = e->chunks, chunks = 0, max = z->npages;
    /* readers holding it find out by the generation, before any slot is reused */
    __atomic_store_n(&e->gen, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    e->magic = 0;
    while (off && chunks++ < max) {
        cache_chunk *c = chunk_at(z, off);
        if (c == NULL || c->magic != CACHE_CHUNK_MAGIC || c->gen != gen)
            break;                      /* not ours (corrupt): the sweep of a repair frees */
        uint64_t next = c->next;
        c->magic = 0;
        pt_shm_slab_free_locked(s, c);
        off = next;
    }
    pt_shm_slab_free_locked(s, e);
}

static void account(cache_zone *z, const cache_entry *e, int dir)
{
    z->entries += (uint64_t) (int64_t) dir;
    if (e->kind == CK_OBJECT) {
        z->objects += (uint64_t) (int64_t) dir;
        z->object_bytes += (uint64_t) ((int64_t) dir * (int64_t) stream_len(e));
    }
}

/* Takes a LIVE entry out of the index (prev: the link to it, NULL: look it up). */
static void index_remove(cache_zone *z, cache_entry *e, uint64_t *prev)
{
    cache_bucket *b = zbucket(z, e->hash);
    uint64_t off = zoff(z, e);
    if (prev == NULL) {
        uint64_t *link = &b->first;
        for (unsigned hops = 0; *link && hops < 1u << 20; hops++) {
            if (*link == off) {
                prev = link;
                break;
            }
            cache_entry *n = entry_at(z, *link);
            if (n == NULL)
                break;
            link = &n->hnext;
        }
    }
    if (prev == NULL)
        return;
    bucket_begin(b);
    *prev = e->hnext;
    bucket_end(b);
}

/* A LIVE entry leaves: out of the index and the LRU, freed or (read by a serve) retired. */
static void entry_drop(cache_zone *z, cache_entry *e, uint64_t *prev, uint64_t now_ms)
{
    index_remove(z, e, prev);
    pt_shm_list_remove(z, &e->link);
    account(z, e, -1);
    if (pinned(z, e, now_ms)) {
        e->state = CS_RETIRED;
        pt_shm_list_insert_head(z, &z->retired, &e->link);
        z->retired_n++;
        return;
    }
    entry_free(z, e);
}

/* ------------------------------------------------------------------ eviction */

static bool fill_active(const cache_entry *e, uint64_t now_ms)
{
    return e->kind == CK_FILL && e->until > now_ms && cache_env_cur.alive(e->owner);
}

static bool free_retired(cache_zone *z, uint64_t now_ms)
{
    bool any = false;
    pt_shm_list *n = pt_shm_list_last(z, &z->retired);
    while (n) {
        pt_shm_list *prev = pt_shm_list_prev(z, &z->retired, n);
        cache_entry *e = pt_container_of(n, cache_entry, link);
        if (!pinned(z, e, now_ms)) {
            pt_shm_list_remove(z, &e->link);
            z->retired_n--;
            entry_free(z, e);
            any = true;
        }
        n = prev;
    }
    return any;
}

/* The CLOCK hand: the LRU tail goes unless it was hit since its last turn (then it goes
 * to the head, its page unmarked), a serve still reads it, or it is an active fetch. */
static bool evict_one(cache_zone *z, uint64_t now_ms)
{
    for (unsigned step = 0; step < EVICT_STEPS; step++) {
        pt_shm_list *n = pt_shm_list_last(z, &z->lru);
        if (n == NULL)
            break;
        cache_entry *e = pt_container_of(n, cache_entry, link);
        cache_page *pg = zpage(z, zoff(z, e));
        bool keep = fill_active(e, now_ms) || pinned(z, e, now_ms);
        if (!keep && step < EVICT_STEPS - 8 && __atomic_load_n(&pg->ref, __ATOMIC_RELAXED)) {
            __atomic_store_n(&pg->ref, 0, __ATOMIC_RELAXED);
            keep = true;
        }
        if (keep) {
            pt_shm_list_move_head(z, &z->lru, &e->link);
            continue;
        }
        entry_drop(z, e, NULL, now_ms);
        z->evictions++;
        return true;
    }
    return free_retired(z, now_ms);
}

/* ------------------------------------------------------------------ the index, locked */

/* Puts LIVE entry e in the index, replacing the entry with its key and variant. */
static void index_put(cache_zone *z, cache_entry *e, pt_str key, pt_str vary, uint64_t now_ms)
{
    cache_bucket *b = zbucket(z, e->hash);
    cache_snap old;
    uint64_t *prev = NULL;
    uint64_t off = zoff(z, e);
    if (walk(z, b, e->hash, key, vary, &old, &prev) == PT_OK) {
        cache_entry *o = zat(z, old.off);
        e->hnext = o->hnext;
        bucket_begin(b);
        *prev = off;            /* one store: readers see the old entry or the new one */
        bucket_end(b);
        o->hnext = 0;
        pt_shm_list_remove(z, &o->link);
        account(z, o, -1);
        if (pinned(z, o, now_ms)) {
            o->state = CS_RETIRED;
            pt_shm_list_insert_head(z, &z->retired, &o->link);
            z->retired_n++;
        } else {
            entry_free(z, o);
        }
    } else {
        e->hnext = b->first;
        bucket_begin(b);
        b->first = off;
        bucket_end(b);
    }
    pt_shm_list_insert_head(z, &z->lru, &e->link);
    account(z, e, 1);
}

/* A small LIVE entry holding only a key and variant (FILL, PASS) or the Vary names. */
static cache_entry *small_entry(cache_zone *z, unsigned kind, uint64_t hash, pt_str key,
                                pt_str vary, pt_str names, uint64_t now_ms)
{
    size_t need = sizeof(cache_entry) + key.len + vary.len + names.len;
    if (need > PT_SHM_SLAB_MAX)
        return NULL;
    cache_entry *e = zalloc(z, need, now_ms);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->gen = z->next_gen++;
    e->magic = CACHE_ENTRY_MAGIC;
    e->kind = (uint8_t) kind;
    e->state = CS_LIVE;
    e->hash = hash;
    e->base_hash = cache_hash(key, PT_STR_NULL);
    e->cap = (uint16_t) (pt_shm_slab_class_size(need) - sizeof(cache_entry));
    e->key_len = (uint32_t) key.len;
    e->vary_len = (uint32_t) vary.len;
    e->head_len = (uint32_t) names.len;
    e->owner = cache_env_cur.pid;
    e->resp_ms = now_ms;
    if (key.len)
        memcpy(e->data, key.data, key.len);
    if (vary.len)
        memcpy(e->data + key.len, vary.data, vary.len);
    if (names.len)
        memcpy(e->data + key.len + vary.len, names.data, names.len);
    e->sum = cache_entry_sum(e, cache_sum_bytes(0, e->data, stream_len(e)));
    return e;
}

/* ------------------------------------------------------------------ marks */

bool cache_updating(const cache_entry *e, uint64_t now_ms)
{
    int32_t pid = __atomic_load_n(&e->upd_pid, __ATOMIC_RELAXED);
    return pid && __atomic_load_n(&e->upd_until, __ATOMIC_RELAXED) > now_ms
           && cache_env_cur.alive(pid);
}

/* The entry of s, if it is still that LIVE entry (locked). */
static cache_entry *locked_entry(cache_zone *z, const cache_snap *s)
{
    cache_entry *e = entry_at(z, s->off);
    return e && e->gen == s->e.gen && e->magic == CACHE_ENTRY_MAGIC && e->state == CS_LIVE
           ? e : NULL;
}

bool cache_mark(const cache_snap *s, uint64_t until_ms, uint64_t now_ms)
{
    cache_zone *z = cache_z;
    if (zlock(z, now_ms) != PT_OK)
        return false;
    cache_entry *e = locked_entry(z, s);
    bool ok = e && !cache_updating(e, now_ms);
    if (ok) {
        __atomic_store_n(&e->upd_until, until_ms, __ATOMIC_RELAXED);
        __atomic_store_n(&e->upd_pid, cache_env_cur.pid, __ATOMIC_RELAXED);
    }
    zunlock(z);
    return ok;
}

void cache_unmark(const cache_snap *s)
{
    cache_zone *z = cache_z;
    if (zlock(z, 0) != PT_OK)
        return;
    cache_entry *e = locked_entry(z, s);
    if (e && e->upd_pid == cache_env_cur.pid) {
        __atomic_store_n(&e->upd_pid, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&e->upd_until, 0, __ATOMIC_RELAXED);
    }
    zunlock(z);
}

/* Is what a lookup found something a miss must respect (not a dead fetch or an expired
 * pass)? */
static bool usable(const cache_entry *e, uint64_t now_ms)
{
    if (e->kind == CK_FILL)
        return fill_active(e, now_ms);
    if (e->kind == CK_PASS)
        return e->until > now_ms;
    return true;
}

bool cache_fill_begin(uint64_t hash, pt_str key, pt_str vary, uint64_t until_ms,
                      uint64_t now_ms, cache_snap *mine, cache_snap *found)
{
    cache_zone *z = cache_z;
    if (zlock(z, now_ms) != PT_OK)
        return false;
    cache_snap cur;
    if (walk(z, zbucket(z, hash), hash, key, vary, &cur, NULL) == PT_OK
        && usable(&cur.e, now_ms)) {
        *found = cur;
        zunlock(z);
        return false;
    }
    cache_entry *e = small_entry(z, CK_FILL, hash, key, vary, PT_STR_NULL, now_ms);
    if (e == NULL) {
        found->off = 0;
        zunlock(z);
        return false;
    }
    e->until = until_ms;
    index_put(z, e, key, vary, now_ms);
    mine->off = zoff(z, e);
    memcpy(&mine->e, e, sizeof(*e));
    zunlock(z);
    return true;
}

void cache_fill_end(const cache_snap *mine)
{
    cache_zone *z = cache_z;
    if (zlock(z, 0) != PT_OK)
        return;
    cache_entry *e = locked_entry(z, mine);
    if (e && e->kind == CK_FILL)
        entry_drop(z, e, NULL, 0);
    zunlock(z);
}

void cache_pass(uint64_t hash, pt_str key, pt_str vary, uint64_t until_ms, uint64_t now_ms)
{
    cache_zone *z = cache_z;
    if (zlock(z, now_ms) != PT_OK)
        return;
    cache_entry *e = small_entry(z, CK_PASS, hash, key, vary, PT_STR_NULL, now_ms);
    if (e) {
        e->until = until_ms;
        index_put(z, e, key, vary, now_ms);
    }
    zunlock(z);
}

/* ------------------------------------------------------------------ writing */

/* The fixed fields that define an object, into its checksum (not the mutable ones). */
uint64_t cache_entry_sum(const cache_entry *e, uint64_t stream_sum)
{
    uint64_t f[12] = { e->hash, e->base_hash, e->kind, e->flags & ~CE_DOOMED, e->status,
                       e->resp_ms, e->initial_age, e->lifetime, e->swr, e->sie,
                       (uint64_t) e->key_len << 32 | e->vary_len,
                       (uint64_t) e->req_len << 32 | e->head_len };
    return cache_sum_bytes(stream_sum ^ e->body_len, f, sizeof(f));
}

/* The writer's PENDING entry, if the lock holder may still write it. */
static cache_entry *writer_entry(cache_zone *z, cache_writer *w)
{
    cache_entry *e = entry_at(z, w->off);
    return e && e->gen == w->gen && e->state == CS_PENDING ? e : NULL;
}

/* Appends chunks to the writer's chain: as many as the announced size still needs (up
 * to CHUNK_BATCH), or one. */
static int grow(cache_zone *z, cache_writer *w, uint64_t now_ms)
{
    if (zlock(z, now_ms) != PT_OK)
        return PT_ERROR;
    cache_entry *e = writer_entry(z, w);
    if (e == NULL) {
        zunlock(z);
        return PT_ERROR;
    }
    unsigned want = 1;
    if (w->expect != UINT64_MAX) {
        uint64_t total = stream_len(e) - e->body_len + w->expect;
        uint64_t left = total > w->written ? total - w->written : 0;
        want = (unsigned) pt_min((left + CACHE_CHUNK_DATA - 1) / CACHE_CHUNK_DATA,
                                 (uint64_t) CHUNK_BATCH);
        if (want == 0)
            want = 1;
    }
    uint64_t *link = w->tail ? &((cache_chunk *) zat(z, w->tail))->next : &e->chunks;
    while (*link)                           /* chunks of an earlier batch come first */
        link = &((cache_chunk *) zat(z, *link))->next;
    int rc = PT_OK;
    for (unsigned i = 0; i < want; i++) {
        cache_chunk *c = zalloc(z, CACHE_CHUNK_SIZE, now_ms);
        if (c == NULL) {
            rc = i ? PT_OK : PT_ERROR;
            break;
        }
        c->magic = CACHE_CHUNK_MAGIC;
        c->gen = w->gen;
        c->next = 0;
        pt_shm_list_barrier();          /* whole before it is linked: a death between
                                         * leaves it unlinked, for the sweep */
        *link = zoff(z, c);
        link = &c->next;
    }
    zunlock(z);
    return rc;
}

static int put(cache_writer *w, const char *p, size_t n, uint64_t now_ms)
{
    cache_zone *z = cache_z;
    cache_entry *e = zat(z, w->off);
    cache_summer_feed(&w->sum, p, n);
    while (n) {
        if (w->tail == 0 && w->written < e->cap) {
            size_t k = (size_t) pt_min((uint64_t) n, e->cap - w->written);
            memcpy(e->data + w->written, p, k);
            p += k;
            n -= k;
            w->written += k;
            continue;
        }
        cache_chunk *c = w->tail ? zat(z, w->tail) : NULL;
        if (c == NULL || w->tail_used == CACHE_CHUNK_DATA) {
            uint64_t next = c ? c->next : e->chunks;
            if (next == 0) {
                if (grow(z, w, now_ms) != PT_OK)
                    return PT_ERROR;
                next = c ? c->next : e->chunks;
                if (next == 0)
                    return PT_ERROR;
            }
            w->tail = next;
            w->tail_used = 0;
            continue;
        }
        size_t k = pt_min(n, CACHE_CHUNK_DATA - w->tail_used);
        memcpy(c->data + w->tail_used, p, k);
        w->tail_used += (uint32_t) k;
        p += k;
        n -= k;
        w->written += k;
    }
    return PT_OK;
}

int cache_write_begin(cache_writer *w, const cache_meta *m, pt_str key, pt_str vary,
                      pt_str req, pt_str head, uint64_t body_len, uint64_t max_body,
                      uint64_t now_ms)
{
    cache_zone *z = cache_z;
    memset(w, 0, sizeof(*w));
    if (key.len > CACHE_MAX_KEY || vary.len > CACHE_MAX_KEY || req.len > UINT32_MAX / 2
        || head.len > UINT32_MAX / 2 || (body_len != UINT64_MAX && body_len > max_body))
        return PT_ERROR;
    uint64_t fixed = key.len + vary.len + req.len + head.len;
    uint64_t need = sizeof(cache_entry) + fixed + (body_len == UINT64_MAX ? 0 : body_len);
    /* unknown length: the largest slot, compacted at commit if it turns out small */
    size_t slot = body_len == UINT64_MAX || need > PT_SHM_SLAB_MAX ? PT_SHM_SLAB_MAX
                                                                   : (size_t) need;
    if (zlock(z, now_ms) != PT_OK)
        return PT_ERROR;
    cache_entry *e = zalloc(z, slot, now_ms);
    if (e == NULL) {
        z->store_failures++;
        zunlock(z);
        return PT_ERROR;
    }
    memset(e, 0, sizeof(*e));
    e->gen = z->next_gen++;
    e->magic = CACHE_ENTRY_MAGIC;
    e->kind = CK_OBJECT;
    e->state = CS_PENDING;
    e->flags = m->flags & ~CE_DOOMED;
    e->status = m->status;
    e->cap = (uint16_t) (pt_shm_slab_class_size(slot) - sizeof(cache_entry));
    e->owner = cache_env_cur.pid;
    e->resp_ms = m->resp_ms;
    e->initial_age = m->initial_age;
    e->lifetime = m->lifetime;
    e->swr = m->swr;
    e->sie = m->sie;
    e->key_len = (uint32_t) key.len;
    e->vary_len = (uint32_t) vary.len;
    e->req_len = (uint32_t) req.len;
    e->head_len = (uint32_t) head.len;
    e->hash = cache_hash(key, vary);
    e->base_hash = vary.len ? cache_hash(key, PT_STR_NULL) : e->hash;
    pt_shm_list_insert_head(z, &z->pending, &e->link);
    z->pending_n++;
    zunlock(z);

    w->off = zoff(z, e);
    w->gen = e->gen;
    w->hash = e->hash;
    w->base_hash = e->base_hash;
    w->expect = body_len;
    w->max_body = max_body;
    w->open = true;
    if (put(w, key.data, key.len, now_ms) != PT_OK || put(w, vary.data, vary.len, now_ms) != PT_OK
        || put(w, req.data, req.len, now_ms) != PT_OK
        || put(w, head.data, head.len, now_ms) != PT_OK) {
        cache_write_abort(w);
        return PT_ERROR;
    }
    return PT_OK;
}

int cache_write(cache_writer *w, const char *p, size_t n, uint64_t now_ms)
{
    if (!w->open)
        return PT_ERROR;
    if (n == 0)
        return PT_OK;
    if (w->body + n > w->max_body || (w->expect != UINT64_MAX && w->body + n > w->expect)
        || put(w, p, n, now_ms) != PT_OK) {
        cache_write_abort(w);
        return PT_ERROR;
    }
    w->body += n;
    return PT_OK;
}

void cache_write_abort(cache_writer *w)
{
    cache_zone *z = cache_z;
    if (!w->open)
        return;
    w->open = false;
    if (zlock(z, 0) != PT_OK)
        return;
    cache_entry *e = writer_entry(z, w);
    if (e) {
        pt_shm_list_remove(z, &e->link);
        z->pending_n--;
        z->store_failures++;
        entry_free(z, e);
    }
    zunlock(z);
}

/* An object whose stream fits a smaller slot than the one it was written in (a chunked
 * response of unknown length that turned out short) moves there: locked, off every list. */
static cache_entry *compact(cache_zone *z, cache_entry *e, uint64_t now_ms)
{
    size_t need = sizeof(cache_entry) + (size_t) stream_len(e);
    if (e->chunks || need > e->cap + sizeof(cache_entry)
        || pt_shm_slab_class_size(need) >= e->cap + sizeof(cache_entry))
        return e;
    cache_entry *n = pt_shm_slab_alloc_locked(zslab(z), need);     /* no eviction for it */
    if (n == NULL)
        return e;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(n, e, need);
    n->gen = z->next_gen++;
    n->cap = (uint16_t) (pt_shm_slab_class_size(need) - sizeof(cache_entry));
    pt_shm_list_node_init(&n->link);
    entry_free(z, e);
    return n;
}

/* The VARY entry at key listing names: kept when it lists them already, else written
 * (replacing whatever is at the key: a FILL, a PASS, an object from before it varied). */
static int vary_put(cache_zone *z, uint64_t base_hash, pt_str key, pt_str names,
                    uint64_t now_ms)
{
    cache_snap cur;
    if (walk(z, zbucket(z, base_hash), base_hash, key, PT_STR_NULL, &cur, NULL) == PT_OK
        && cur.e.kind == CK_VARY && cur.e.head_len == names.len
        && stream_eq(z, &cur.e, zat(z, cur.off), key.len, names))
        return PT_OK;
    cache_entry *m = small_entry(z, CK_VARY, base_hash, key, PT_STR_NULL, names, now_ms);
    if (m == NULL)
        return PT_ERROR;
    index_put(z, m, key, PT_STR_NULL, now_ms);
    return PT_OK;
}

int cache_write_commit(cache_writer *w, pt_str key, pt_str vary, pt_str names,
                       uint64_t now_ms)
{
    cache_zone *z = cache_z;
    if (!w->open)
        return PT_ERROR;
    if (w->expect != UINT64_MAX && w->body != w->expect) {
        cache_write_abort(w);           /* the body came short: never a torn object */
        return PT_ERROR;
    }
    uint64_t stream_sum = cache_summer_final(&w->sum);
    if (zlock(z, now_ms) != PT_OK) {
        w->open = false;
        return PT_ERROR;
    }
    w->open = false;
    cache_entry *e = writer_entry(z, w);
    if (e == NULL) {
        z->store_failures++;
        zunlock(z);
        return PT_ERROR;
    }
    pt_shm_list_remove(z, &e->link);
    z->pending_n--;
    if (e->flags & CE_DOOMED) {         /* purged while it was written */
        z->store_failures++;
        entry_free(z, e);
        zunlock(z);
        return PT_ERROR;
    }
    e->body_len = w->body;
    e = compact(z, e, now_ms);
    e->sum = cache_entry_sum(e, stream_sum);
    if (names.len && vary_put(z, w->base_hash, key, names, now_ms) != PT_OK) {
        z->store_failures++;
        entry_free(z, e);
        zunlock(z);
        return PT_ERROR;
    }
    zpage(z, zoff(z, e))->ref = 0;
    pt_shm_list_barrier();
    e->state = CS_LIVE;
    index_put(z, e, key, vary, now_ms);
    z->stores++;
    zunlock(z);
    return PT_OK;
}

/* ------------------------------------------------------------------ purge */

static bool key_matches(cache_zone *z, cache_entry *e, pt_str key, bool prefix)
{
    if (prefix ? e->key_len < key.len : e->key_len != key.len)
        return false;
    return stream_eq(z, e, e, 0, key);
}

uint64_t cache_purge(pt_str key, bool prefix, uint64_t now_ms)
{
    cache_zone *z = cache_z;
    uint64_t base = cache_hash(key, PT_STR_NULL), n = 0;
    if (zlock(z, now_ms) != PT_OK)
        return 0;
    pt_shm_list *l = pt_shm_list_first(z, &z->lru);
    while (l) {
        pt_shm_list *next = pt_shm_list_next(z, &z->lru, l);
        cache_entry *e = pt_container_of(l, cache_entry, link);
        if ((prefix || e->base_hash == base) && key_matches(z, e, key, prefix)) {
            if (e->kind == CK_OBJECT)
                n++;
            entry_drop(z, e, NULL, now_ms);
        }
        l = next;
    }
    pt_shm_list_foreach(z, &z->pending, l) {
        cache_entry *e = pt_container_of(l, cache_entry, link);
        if ((prefix || e->base_hash == base) && key_matches(z, e, key, prefix))
            e->flags |= CE_DOOMED;
    }
    z->purged += n;
    zunlock(z);
    return n;
}

/* ------------------------------------------------------------------ maintenance */

void cache_maintain(uint64_t now_ms)
{
    cache_zone *z = cache_z;
    if (__atomic_load_n(&z->pending_n, __ATOMIC_RELAXED) == 0
        && __atomic_load_n(&z->retired_n, __ATOMIC_RELAXED) == 0)
        return;
    if (zlock(z, now_ms) != PT_OK)
        return;
    pt_shm_list *l = pt_shm_list_first(z, &z->pending);
    while (l) {
        pt_shm_list *next = pt_shm_list_next(z, &z->pending, l);
        cache_entry *e = pt_container_of(l, cache_entry, link);
        if (e->owner != cache_env_cur.pid && !cache_env_cur.alive(e->owner)) {
            pt_log(PT_LOG_WARN, "cache: freed an object worker %d was storing when it died",
                   (int) e->owner);
            pt_shm_list_remove(z, &e->link);
            z->pending_n--;
            z->reclaimed++;
            entry_free(z, e);
        }
        l = next;
    }
    free_retired(z, now_ms);
    zunlock(z);
}
