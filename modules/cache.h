/* The response cache's internal interfaces (modules/cache*.c):
 *
 *   cache.c          the module: configuration, the lookup in the pre-content phase (hit,
 *                    stale, collapsed misses, revalidation), PURGE, the log hook
 *   cache_serve.c    answering from the store (hits, and a stored response standing in for
 *                    the origin's after a 304 or an error)
 *   cache_filter.c   the header and body filters that store a miss while it streams to its
 *                    client, and stand the stored response in (REVALIDATED, stale-if-error)
 *   cache_fetch.c    background refreshes: upstream exchanges with no client behind them
 *   cache_store.c    the shared zone: index, objects, LRU, marks, repair, persistence
 *   cache_rfc9111.c  what HTTP says: Cache-Control, freshness, storability, validators,
 *                    dates
 *
 * The store (cache_store.c) makes no assumption about HTTP and no system call: times and
 * the owner's pid come from the caller, liveness of other processes from a callback. */
#ifndef PT_MOD_CACHE_H
#define PT_MOD_CACHE_H

#include "portico/cidr-t.h"
#include "portico/conf.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/shm.h"
#include "portico/shm_list.h"
#include "portico/shm_slab.h"
#include "portico/timer-t.h"
#include "portico/upstream-t.h"
#include "portico/var-t.h"

extern pt_module pt_cache_module;

/* ======================================================================== the store */

#define CACHE_MAGIC       0x3130656863616370ull   /* "pcache01" */
#define CACHE_LAYOUT      1                       /* bump on any change of the layout */
#define CACHE_ENTRY_MAGIC 0x746e6563u             /* "cent" */
#define CACHE_CHUNK_MAGIC 0x6b686363u             /* "cchk" */
#define CACHE_CHUNK_SIZE  PT_SHM_SLAB_PAGE        /* one slab page per body chunk */
#define CACHE_MAX_KEY     4096                    /* longer keys are not cached */

/* What an index entry is. */
enum {
    CK_OBJECT = 1,      /* a stored response */
    CK_VARY,            /* at a key whose responses vary: the request fields they vary by */
    CK_FILL,            /* a miss is being fetched (collapsed misses wait on it) */
    CK_PASS             /* the last response was not storable: go straight to the origin */
};

/* Where an entry is. */
enum {
    CS_PENDING = 1,     /* being written: on the pending list, not in the index */
    CS_LIVE,            /* in the index and on the LRU list */
    CS_RETIRED          /* out of the index, still read by a serve: on the retired list */
};

/* Entry flags. */
#define CE_NO_CACHE        0x01   /* always revalidated before use (no-cache) */
#define CE_MUST_REVALIDATE 0x02   /* never used stale (must-revalidate, proxy-revalidate,
                                   * s-maxage) */
#define CE_AUTH_OK         0x04   /* may answer requests with Authorization */
#define CE_ETAG            0x08   /* has an ETag */
#define CE_LAST_MODIFIED   0x10   /* has a Last-Modified */
#define CE_DOOMED          0x20   /* PENDING: purged while written, must not be committed */

/* One bucket of the index: a seqlock (odd while a writer changes the chain) and the first
 * entry of the chain. Readers walk a chain without a lock and retry when seq moved. */
typedef struct cache_bucket {
    uint64_t seq;
    uint64_t first;         /* zone offset of the first entry, 0: empty */
} cache_bucket;

/* Per slab page, outside the pages: what readers write without the lock. A reader may
 * hold an entry that is freed under it (it finds out by the generation), so it never
 * writes into the entry itself: these words stay meta data whatever the page holds next.
 * Small entries share a page's bit; entries that are served in several steps (big
 * bodies) have a page to themselves (their slot is the largest class). */
typedef struct cache_page {
    uint32_t ref;           /* a hit since the CLOCK hand last passed an entry here */
    uint32_t readers;       /* streaming serves under way */
    uint32_t read_s;        /* realtime s one of them last read */
    uint32_t pad;
} cache_page;

/* The zone header, at offset 0. Every offset in the zone is from the zone's start. */
typedef struct cache_zone {
    uint64_t    magic;
    uint32_t    layout;
    uint32_t    header_size;
    uint64_t    size;           /* bytes of the zone */
    uint64_t    nbuckets;       /* a power of two */
    uint64_t    buckets_off;
    uint64_t    pages_meta_off; /* cache_page per slab page */
    uint64_t    npages;
    uint64_t    slab_off;       /* the slab allocator's region: entries and chunks */
    uint64_t    slab_size;
    uint64_t    seed;           /* of the key hashes (not guessable from outside) */
    uint64_t    next_gen;       /* generations: unique per entry ever written */
    pt_shm_list lru;            /* LIVE entries, most recently inserted first (CLOCK) */
    pt_shm_list pending;        /* PENDING entries */
    pt_shm_list retired;        /* RETIRED entries */
    /* counters, under the lock (readers such as metrics may read them without it) */
    uint64_t    entries;        /* LIVE entries of every kind */
    uint64_t    objects;        /* LIVE objects */
    uint64_t    object_bytes;   /* their stream bytes (keys, heads, bodies) */
    uint64_t    pending_n;
    uint64_t    retired_n;
    uint64_t    stores;         /* objects committed */
    uint64_t    store_failures; /* no room even after evicting, or purged meanwhile */
    uint64_t    evictions;
    uint64_t    purged;
    uint64_t    repairs;        /* deaths in the critical section repaired */
    uint64_t    reclaimed;      /* PENDING entries of dead writers freed */
    uint64_t    loads;          /* times the zone was loaded from its file */
    uint64_t    load_dropped;   /* entries found broken by those loads */
} cache_zone;

/* An index entry, in one slab slot; its stream (key, variant, request, head, body) starts
 * inline and goes on in chained chunks. LIVE entries never change but for the fields
 * marked "mutable", so a reader that copied one and finds gen unchanged afterwards knows
 * what it copied is whole. */
typedef struct cache_entry {
    uint64_t    gen;            /* unique; 0: freed (mutable: the free) */
    uint32_t    magic;          /* CACHE_ENTRY_MAGIC */
    uint8_t     kind;           /* CK_* */
    uint8_t     state;          /* CS_* (under the lock) */
    uint16_t    flags;          /* CE_* */
    uint64_t    hnext;          /* next in the bucket chain (under the bucket's seq) */
    pt_shm_list link;           /* on lru, pending or retired (under the lock) */
    uint64_t    hash;           /* of key and variant */
    uint64_t    base_hash;      /* of the key alone */
    uint16_t    status;
    uint16_t    cap;            /* stream bytes held inline */
    int32_t     owner;          /* PENDING: the writer; FILL: the fetcher */
    int32_t     upd_pid;        /* mutable (lock): an update of this entry runs there */
    uint32_t    pad;
    uint64_t    upd_until;      /* mutable (lock): ...until then (realtime ms) */
    uint64_t    until;          /* FILL: the fetch's deadline; PASS: expiry (realtime ms) */
    uint64_t    resp_ms;        /* realtime ms the response came (response_time) */
    uint32_t    initial_age;    /* s: corrected initial age (RFC 9111 4.2.3) */
    uint32_t    lifetime;       /* s: freshness lifetime */
    uint32_t    swr;            /* s: stale-while-revalidate window */
    uint32_t    sie;            /* s: stale-if-error window */
    uint32_t    key_len;
    uint32_t    vary_len;       /* the variant: request fields it was chosen by */
    uint32_t    req_len;        /* target "\n" authority: for background refreshes */
    uint32_t    head_len;       /* response fields "Name: value\r\n"... (VARY: names) */
    uint64_t    body_len;
    uint64_t    chunks;         /* zone offset of the first chunk, 0: none */
    uint64_t    sum;            /* checksum of the fixed fields and the stream */
    char        data[];         /* the stream's first cap bytes */
} cache_entry;

typedef struct cache_chunk {
    uint32_t    magic;          /* CACHE_CHUNK_MAGIC */
    uint32_t    pad;
    uint64_t    gen;            /* its entry's */
    uint64_t    next;           /* zone offset of the next chunk, 0: last */
    uint64_t    pad2;
    char        data[];
} cache_chunk;

#define CACHE_CHUNK_DATA  (CACHE_CHUNK_SIZE - sizeof(cache_chunk))

/* What the store asks of its process. */
typedef struct cache_env {
    int32_t   pid;                  /* this process, for owner fields */
    bool    (*alive)(int32_t pid);  /* is that worker still running? */
    uint32_t  pin_limit_s;          /* a serve reading nothing for this long is dead */
} cache_env;

extern cache_zone *cache_z;         /* this process's view of the zone (NULL: no cache) */
extern cache_env   cache_env_cur;

/* A consistent copy of an entry's fixed fields, as found by a lookup. */
typedef struct cache_snap {
    uint64_t    off;                /* zone offset of the entry */
    cache_entry e;                  /* its fields when found (gen identifies it) */
} cache_snap;

/* Master (zone init): lays out a new zone, or validates one kept by a reload (reused) or
 * loaded from its file (z->persisted): an invalid file is logged and started afresh. */
int  cache_zone_setup(pt_shm_zone *z, bool reused, uint64_t now_ms);
/* Attaches this process to an existing zone (tests: a second mapping). */
void cache_zone_use(void *addr);

/* Keyed hash of key (and variant; empty: none). */
uint64_t cache_hash(pt_str key, pt_str vary);

/* Finds the LIVE entry for (hash, key, variant): PT_OK with *out, PT_DECLINED if none.
 * Takes no lock (retries while a writer changes the bucket). */
int  cache_lookup(uint64_t hash, pt_str key, pt_str vary, cache_snap *out);
/* Copies stream bytes [at, at + n) of the entry into dst: false when the entry is no
 * longer the one found (freed or replaced: nothing copied may be used). A cursor (may be
 * NULL; zeroed to start) remembers where a sequential read is, so a long body is not
 * walked from its first chunk on every read. */
typedef struct cache_cursor {
    uint64_t at;                /* stream offset of chunk's first byte */
    uint64_t chunk;             /* zone offset of that chunk, 0: not known */
} cache_cursor;
bool cache_read(const cache_snap *s, cache_cursor *cur, uint64_t at, size_t n, char *dst);
bool cache_still(const cache_snap *s);
void cache_touch(const cache_snap *s);          /* a hit: the CLOCK keeps it longer */
/* A serve that streams over several events holds a pin, so that a replacement or a purge
 * retires the entry instead of freeing it under the reader. */
void cache_pin(const cache_snap *s, uint64_t now_ms);
void cache_pin_touch(const cache_snap *s, uint64_t now_ms);
void cache_unpin(const cache_snap *s);

/* Is the update mark of the entry held by a live worker? */
bool cache_updating(const cache_entry *e, uint64_t now_ms);
/* Takes the entry's update mark (one refresh or revalidation at a time, for every
 * worker): false when it is gone or another live worker holds the mark. */
bool cache_mark(const cache_snap *s, uint64_t until_ms, uint64_t now_ms);
void cache_unmark(const cache_snap *s);

/* Collapsed misses: puts a FILL entry at (hash, key, variant) unless a usable entry is
 * there (then false, with it in *found). *mine identifies the FILL for cache_fill_end. */
bool cache_fill_begin(uint64_t hash, pt_str key, pt_str vary, uint64_t until_ms,
                      uint64_t now_ms, cache_snap *mine, cache_snap *found);
/* Removes the FILL entry if it is still this one (a commit replaces it otherwise). */
void cache_fill_end(const cache_snap *mine);
/* A PASS entry at (hash, key, variant) until until_ms, replacing what is there. */
void cache_pass(uint64_t hash, pt_str key, pt_str vary, uint64_t until_ms, uint64_t now_ms);

/* The checksum of a byte stream fed in pieces of any size (cache_rfc9111.c). */
typedef struct cache_summer {
    uint64_t sum;
    uint64_t tail;              /* up to 7 bytes not yet summed */
    unsigned n;
} cache_summer;

void     cache_summer_feed(cache_summer *s, const void *p, size_t n);
uint64_t cache_summer_final(const cache_summer *s);
/* An entry's checksum: its defining fixed fields and its stream's sum. */
uint64_t cache_entry_sum(const cache_entry *e, uint64_t stream_sum);

/* Writing an object: begin (a PENDING entry: invisible), append the body, commit (it
 * replaces whatever was at its key, atomically for readers) or abort. */
typedef struct cache_meta {
    uint16_t status;
    uint16_t flags;
    uint64_t resp_ms;
    uint32_t initial_age, lifetime, swr, sie;
} cache_meta;

typedef struct cache_writer {
    uint64_t off, gen;          /* the PENDING entry */
    uint64_t hash, base_hash;
    uint64_t expect;            /* body bytes announced (UINT64_MAX: unknown) */
    uint64_t written;           /* stream bytes written */
    uint64_t body;              /* body bytes written */
    uint64_t max_body;
    uint64_t tail;              /* the chunk being filled, 0: inline area */
    uint32_t tail_used;
    cache_summer sum;           /* of the stream so far */
    bool     open;
} cache_writer;

int  cache_write_begin(cache_writer *w, const cache_meta *m, pt_str key, pt_str vary,
                       pt_str req, pt_str head, uint64_t body_len, uint64_t max_body,
                       uint64_t now_ms);
/* PT_OK, or PT_ERROR (too big, no room: the writer is aborted). */
int  cache_write(cache_writer *w, const char *p, size_t n, uint64_t now_ms);
/* names: the response's Vary field names ("accept-encoding\n..."), empty when it has
 * none: then a VARY entry at the key (hash of key alone) lists them. PT_OK, or PT_ERROR
 * (aborted: purged meanwhile, body short of what was announced, no room). */
int  cache_write_commit(cache_writer *w, pt_str key, pt_str vary, pt_str names,
                        uint64_t now_ms);
void cache_write_abort(cache_writer *w);

/* Removes every entry whose key is key (prefix: starts with it), every variant, and
 * dooms those being written. Returns how many objects went. */
uint64_t cache_purge(pt_str key, bool prefix, uint64_t now_ms);
/* Frees what dead writers left pending and retired entries no serve reads any more. */
void cache_maintain(uint64_t now_ms);
/* Under the lock after its holder died (the slab repaired itself first): cache_zone.c. */
void cache_repair(cache_zone *z, uint64_t now_ms);
/* Full consistency check (tests): PT_OK or PT_ERROR with why. Takes the lock. */
int  cache_check(char *err, size_t len);

/* ======================================================================== RFC 9111 */

/* Cache-Control directives (RFC 9111 5.2); -1: absent. A directive with an invalid
 * value counts as its most restrictive reading (max-age=x: 0). */
typedef struct cache_cc {
    int64_t max_age, s_maxage, stale_while_revalidate, stale_if_error, max_stale, min_fresh;
    bool    no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate,
            only_if_cached, present;
} cache_cc;

void    cache_cc_parse(const pt_header *hs, uint32_t n, cache_cc *cc);
/* HTTP-date (IMF-fixdate, RFC 850, asctime): seconds since the epoch, or false. */
bool    cache_parse_date(pt_str s, int64_t *t);
size_t  cache_format_date(int64_t t, char *buf);      /* 29 bytes, IMF-fixdate */
/* Does the list of entity-tags (If-None-Match) match etag (weak comparison)? "*" does. */
bool    cache_etag_match(pt_str list, pt_str etag);
/* A status a shared cache may store: with explicit freshness (explicit) or by default. */
bool    cache_status_cacheable(unsigned status, bool explicit_freshness);
/* Response fields a cache does not store or replace from a 304 (RFC 9111 3.1, 4.3.4). */
bool    cache_field_unstored(pt_str name);
/* The checksum the store keeps (a multiply-xorshift over 8-byte words). */
uint64_t cache_sum_bytes(uint64_t h, const void *p, size_t n);

/* ======================================================================== the module */

typedef struct cache_main_conf {
    bool              set;
    uint32_t          size_mb;
    const char       *path;
    uint64_t          max_object_size;
    bool              max_object_set;
    pt_cidr_list      purge_allow;
    bool              purge_allow_set;
    config_setting_t *setting;
    pt_shm_zone      *zone;
} cache_main_conf;

typedef struct cache_route_conf {
    bool              set;
    bool              enabled;
    uint32_t          default_ttl_s;
    pt_var            key;
    bool              key_set;
    uint32_t          swr_s;
    uint32_t          sie_s;
    uint32_t          lock_timeout_ms;
    bool              status_header;
    bool              store_set_cookie;
    config_setting_t *setting;
    const pt_upstream *up;
    uint64_t          max_object;       /* the main max_object_size */
} cache_route_conf;

#define CACHE_PASS_S    30      /* a key whose response was not storable: not waited on */
#define CACHE_UPDATE_S  60      /* an update mark's deadline (a dead holder's lasts) */

/* How a request is being handled. */
enum {
    CR_NONE = 0,
    CR_BYPASS,          /* not cached: passed through (filters off) */
    CR_WAIT,            /* waiting for another fetch of its key */
    CR_FETCH,           /* fetching from the origin to store (a miss, or a refetch) */
    CR_REVALIDATE,      /* fetching with the stored validators */
    CR_SERVE,           /* answered from the store */
    CR_INVALIDATE       /* an unsafe method: a success purges the key */
};

typedef struct cache_req {
    pt_request             *r;
    const cache_route_conf *rc;
    unsigned                mode;           /* CR_* */
    pt_str                  key;
    uint64_t                base_hash;
    pt_str                  vary;           /* the variant chosen by (empty: none) */
    uint64_t                hash;
    cache_cc                req_cc;
    bool                    force_validate; /* the client asked no-cache / max-age */
    bool                    head_req;
    /* our marks */
    bool                    filling;        /* holds a FILL entry */
    cache_snap              fill;
    bool                    marked;         /* holds the stale entry's update mark */
    /* the stale entry (revalidation, stale-if-error) */
    bool                    have_stale;
    cache_snap              stale;
    pt_str                  stale_head;     /* its stored fields */
    pt_str                  stale_names;    /* the Vary names at its key */
    /* the client's conditionals, taken off the request to the origin */
    pt_str                  inm, ims;
    bool                    cond_stripped;
    /* storing the response while it streams */
    cache_writer            w;
    pt_str                  names;          /* Vary names of the response being stored */
    /* waiting for another worker's fetch */
    pt_timer                timer;
    uint64_t                wait_until;     /* monotonic ms */
    unsigned                waits;
    struct cache_req       *wprev, *wnext;  /* this worker's waiters */
    bool                    waiting;
    /* serving from the store (a hit, or standing in for the origin's answer) */
    bool                    substitute;     /* the body filter sends the stored body */
    cache_snap              src;
    uint64_t                src_at;         /* next body byte to send */
    cache_cursor            cur;            /* where src_at is in src's chunks */
    bool                    pinned;
    char                   *buf;            /* a piece of the stored body, copied */
    char                   *whole;          /* or all of a small one */
    bool                    whole_sent;
    size_t                  buf_len;
    bool                    in_last;        /* the origin's (ignored) body has ended */
    bool                    out_last;       /* our last byte went to the next filter */
    bool                    not_modified;   /* the client gets a 304 instead */
    bool                    lock_waited;    /* waited lock_timeout_ms: fetch, store nothing */
    bool                    no_store;       /* fetch without storing */
    const char             *status_text;    /* X-Cache-Status and the log */
    uint64_t                req_ms;         /* realtime ms it went to the origin */
} cache_req;

/* cache.c */
void       cache_wake_waiters(uint64_t hash);
bool       cache_alive(int32_t pid);
uint64_t   cache_now_ms(void);              /* realtime */
/* The variant of r for Vary names ("a\nb\n"), in the pool. */
pt_str     cache_variant(pt_request *r, pt_str names);
/* Gives up the FILL entry and the update mark cr holds (waiters go on). */
void       cache_release_marks(cache_req *cr);
/* Stream parts of an entry: key, variant, request, head. */
#define CACHE_HEAD_AT(e) ((uint64_t) (e)->key_len + (e)->vary_len + (e)->req_len)
#define CACHE_BODY_AT(e) (CACHE_HEAD_AT(e) + (e)->head_len)
/* Copies part of an entry's stream into the pool; NULL-data string when it went away. */
pt_str     cache_copy(pt_pool *pool, const cache_snap *s, uint64_t at, uint64_t n);

/* cache_serve.c */
/* Answers r from the snapshot (a hit, stale or updating): PT_DONE (finalises itself),
 * or PT_DECLINED when the entry went away meanwhile (look again). */
int  cache_serve(cache_req *cr, const cache_snap *s, const char *status);
/* The response head becomes the stored one (status, fields hs, Age, X-Cache-Status), a
 * 304 when the client's own conditional matches. */
int  cache_set_response(cache_req *cr, const cache_entry *e, const pt_header *hs,
                        uint32_t n, const char *status);
int  cache_add_status(cache_req *cr, const char *status);
/* From the header filter: the stored response of s stands in for the origin's; the body
 * filter then sends its body (cache_substitute_body) and drops the origin's. */
int  cache_substitute(cache_req *cr, const cache_snap *s, const pt_header *hs, uint32_t n,
                      const char *status);
int  cache_substitute_body(cache_req *cr, bool last);

/* cache_filter.c */
/* A new object made of old's body and a new head (a 304 refreshed it): PT_OK stored. */
int  cache_store_refreshed(const cache_snap *old, pt_pool *pool, pt_str head,
                           const cache_meta *m, pt_str names, uint64_t max_body);
int  cache_header_filter(pt_request *r);
int  cache_body_filter(pt_request *r, const char *data, size_t len, bool last);
/* Does the client's own conditional (If-None-Match, If-Modified-Since) match a response
 * with these fields? */
bool cache_client_not_modified(pt_request *r, pt_str inm, pt_str ims, const pt_header *hs,
                               uint32_t n);
/* Response fields of a stored head ("Name: value\r\n"...), pointing into head. */
pt_header *cache_head_fields(pt_pool *pool, pt_str head, uint32_t *n);
/* Age of a stored response now (s). */
uint32_t cache_age(const cache_entry *e, uint64_t now_ms);
/* The stored fields of a response, "Name: value\r\n"..., without what is not stored
 * (Set-Cookie never is). */
pt_str cache_head_text(pt_pool *pool, const pt_header *hs, uint32_t n);
/* What storing a response needs to know of its request. */
typedef struct cache_reqinfo {
    bool     get;               /* a GET (nothing else is stored) */
    bool     authorization;     /* it had Authorization */
    bool     no_store;          /* it said Cache-Control: no-store */
    uint64_t req_ms;            /* realtime ms it went to the origin */
} cache_reqinfo;

/* Freshness and storage metadata of a response (its fields hs as the client gets them):
 * true with *m and *names (Vary names, lower-case, "a\nb\n"; empty: none), or false
 * with why (not storable). */
bool cache_response_meta(const cache_reqinfo *q, const cache_route_conf *rc, unsigned status,
                         const pt_header *hs, uint32_t n, uint64_t resp_ms, pt_pool *pool,
                         cache_meta *m, pt_str *names, const char **why);
/* A stored head updated by a 304's fields (RFC 9111 4.3.4), as stored-head text. */
pt_str cache_merge_head(pt_pool *pool, pt_str stored, const pt_header *hs, uint32_t n);

/* cache_fetch.c */
/* A background refresh of the stale entry s (its update mark is held by the caller and
 * passes to the refresh): PT_OK started, PT_ERROR (nothing started: the caller still
 * holds the mark). */
int  cache_fetch_start(const cache_route_conf *rc, const pt_route *rt, const cache_snap *s,
                       pt_str names);
void cache_fetch_stop_all(void);

/* ======================================================================== metrics
 * (cache_metrics.c) */

extern const pt_metric_family *const cache_metric_families[];
void cache_metrics_init(void);                  /* worker start, with a cache */
void cache_metrics_count(const char *status);   /* a request logged with this status */
void cache_metrics_collect(pt_metrics_out *o);
void cache_status_collect(pt_status_out *o);

#endif
