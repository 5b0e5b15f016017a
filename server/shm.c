/* Shared memory: zones declared while a config loads, mapped by the master before it
 * forks (MAP_SHARED | MAP_ANONYMOUS, so every worker inherits the same pages), reused by a
 * reload when name and size match. Inside a zone: a robust process-shared mutex and a
 * first-fit allocator working with offsets, so no pointer stored in the zone depends on
 * where a process happens to map it. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/pool.h"
#include "portico/shm.h"

pt_stats        *pt_stats_zone;
pt_worker_stats *pt_stats_mine;


/* Zones --------------------------------------------------------------------------------- */

/* The master's record of each mapping, shared by the zone structs of every generation
 * that uses it: refs counts those generations, so that with three generations alive
 * (quick successive reloads) a mapping goes away only with the last one using it. The
 * zone structs themselves live in their conf's pool and die with it. */
typedef struct shm_mapping shm_mapping;
struct shm_mapping {
    shm_mapping *next;
    void        *addr;
    size_t       len;       /* size rounded up to pages */
    unsigned     refs;
    int          fd;        /* a file's (holding its flock), -1: anonymous */
};

static shm_mapping *mappings;

static shm_mapping *mapping_find(void *addr)
{
    for (shm_mapping *m = mappings; m; m = m->next)
        if (m->addr == addr)
            return m;
    return NULL;
}

static void mapping_drop(shm_mapping *m)
{
    for (shm_mapping **pm = &mappings; *pm; pm = &(*pm)->next) {
        if (*pm == m) {
            *pm = m->next;
            break;
        }
    }
    munmap(m->addr, m->len);
    if (m->fd >= 0)
        close(m->fd);
    free(m);
}

pt_shm_zone *pt_shm_find(pt_conf *conf, const char *name)
{
    if (conf == NULL)
        return NULL;
    for (pt_shm_zone *z = conf->shm_zones; z; z = z->next)
        if (strcmp(z->name, name) == 0)
            return z;
    return NULL;
}

static pt_shm_zone *declare(pt_conf_ctx *cx, const char *name, size_t size, const char *path,
                            pt_shm_init_fn init, void *data)
{
    pt_conf *conf = cx->conf;

    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(((pt_shm_zone *) 0)->name)) {
        pt_conf_error(cx, NULL, "shared memory zone name \"%s\" is empty or too long",
                      name ? name : "");
        return NULL;
    }
    if (size == 0) {
        pt_conf_error(cx, NULL, "shared memory zone \"%s\" has size 0", name);
        return NULL;
    }

    pt_shm_zone *z = pt_shm_find(conf, name);
    if (z) {
        if (z->size != size) {
            pt_conf_error(cx, NULL, "shared memory zone \"%s\" is declared with size %zu "
                          "and again with size %zu", name, z->size, size);
            return NULL;
        }
        if ((z->path == NULL) != (path == NULL) || (path && strcmp(z->path, path) != 0)) {
            pt_conf_error(cx, NULL, "shared memory zone \"%s\" is declared with two backing "
                          "files", name);
            return NULL;
        }
        return z;
    }

    z = pt_pcalloc(cx->pool, sizeof(*z));
    if (z == NULL) {
        pt_conf_error(cx, NULL, "out of memory declaring shared memory zone \"%s\"", name);
        return NULL;
    }
    memcpy(z->name, name, strlen(name) + 1);
    z->size = size;
    z->path = path ? pt_pstrndup(cx->pool, path, strlen(path)) : NULL;
    if (path && z->path == NULL) {
        pt_conf_error(cx, NULL, "out of memory declaring shared memory zone \"%s\"", name);
        return NULL;
    }
    z->init = init;
    z->data = data;
    z->next = conf->shm_zones;
    conf->shm_zones = z;
    return z;
}

pt_shm_zone *pt_shm_declare(pt_conf_ctx *cx, const char *name, size_t size,
                            pt_shm_init_fn init, void *data)
{
    return declare(cx, name, size, NULL, init, data);
}

pt_shm_zone *pt_shm_declare_file(pt_conf_ctx *cx, const char *name, size_t size,
                                 const char *path, pt_shm_init_fn init, void *data)
{
    if (path == NULL || path[0] == '\0') {
        pt_conf_error(cx, NULL, "shared memory zone \"%s\": empty file name", name);
        return NULL;
    }
    return declare(cx, name, size, path, init, data);
}

/* Opens, locks and sizes the backing file of z (len bytes). Returns the descriptor, -1
 * when the file is held by another process (z->file_busy: use memory), or -2 on an error
 * (logged). z->persisted: the file had the right size already. */
static int open_backing(pt_shm_zone *z, size_t len)
{
    int fd = open(z->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "shared memory zone \"%s\": cannot open its file "
                     "\"%s\"", z->name, z->path);
        return -2;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK) {
            pt_log(PT_LOG_WARN, "shared memory zone \"%s\": its file \"%s\" is in use by "
                   "another process (an old master during a binary upgrade, or this zone at "
                   "another size until the reload's old workers are gone): kept in memory "
                   "only, not persisted, until the next restart", z->name, z->path);
            z->file_busy = true;
            return -1;
        }
        pt_log_errno(PT_LOG_EMERG, err, "shared memory zone \"%s\": flock() on \"%s\" "
                     "failed", z->name, z->path);
        return -2;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        pt_log(PT_LOG_EMERG, "shared memory zone \"%s\": \"%s\" is not a regular file",
               z->name, z->path);
        close(fd);
        return -2;
    }
    z->persisted = (uint64_t) st.st_size == len;
    if (!z->persisted) {
        if (st.st_size != 0)
            pt_log(PT_LOG_WARN, "shared memory zone \"%s\": its file \"%s\" has %lld bytes, "
                   "not %zu: discarded", z->name, z->path, (long long) st.st_size, len);
        /* emptied first: nothing of the old contents may be read as the new layout */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t) len) < 0) {
            pt_log_errno(PT_LOG_EMERG, errno, "shared memory zone \"%s\": cannot size \"%s\"",
                         z->name, z->path);
            close(fd);
            return -2;
        }
    }
    /* Every block reserved now: a write to a hole of the mapping on a full disk would
     * kill the writer with SIGBUS. */
    int rc = posix_fallocate(fd, 0, (off_t) len);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        pt_log_errno(PT_LOG_EMERG, rc, "shared memory zone \"%s\": cannot reserve %zu bytes "
                     "for \"%s\"", z->name, len, z->path);
        close(fd);
        return -2;
    }
    return fd;
}

int pt_shm_map(pt_conf *conf, pt_conf *old)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;

    for (pt_shm_zone *z = conf->shm_zones; z; z = z->next) {
        pt_shm_zone *oz = pt_shm_find(old, z->name);
        bool same_file = oz && (oz->path == NULL) == (z->path == NULL)
                         && (z->path == NULL || (strcmp(oz->path, z->path) == 0
                                                 && oz->file_busy == false));
        shm_mapping *m = (oz && oz->addr && oz->size == z->size && same_file)
                         ? mapping_find(oz->addr) : NULL;
        if (m) {
            m->refs++;
            z->addr = m->addr;
            z->reused = true;
            z->persisted = false;
            z->file_busy = oz->file_busy;
        } else {
            if (oz && oz->addr && oz->size != z->size)
                pt_log(PT_LOG_NOTICE, "shared memory zone \"%s\": its size changed from %zu to "
                       "%zu bytes: a new zone, empty (the old one is released when the old "
                       "workers are gone)", z->name, oz->size, z->size);
            if (z->size > SIZE_MAX - (size_t) page) {
                pt_log(PT_LOG_EMERG, "shared memory zone \"%s\": size %zu is too large",
                       z->name, z->size);
                return PT_ERROR;
            }
            size_t len = (z->size + (size_t) page - 1) & ~((size_t) page - 1);
            int fd = -1;
            z->persisted = z->file_busy = false;
            if (z->path && (fd = open_backing(z, len)) == -2)
                return PT_ERROR;
            m = malloc(sizeof(*m));
            void *addr = m ? mmap(NULL, len, PROT_READ | PROT_WRITE,
                                  fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, fd, 0)
                           : MAP_FAILED;
            if (addr == MAP_FAILED) {
                pt_log_errno(PT_LOG_EMERG, m ? errno : ENOMEM,
                             "mmap() of shared memory zone \"%s\" (%zu bytes) failed",
                             z->name, len);
                free(m);
                if (fd >= 0)
                    close(fd);
                return PT_ERROR;
            }
            m->addr = addr;
            m->len = len;
            m->fd = fd;
            m->refs = 1;
            m->next = mappings;
            mappings = m;
            z->addr = addr;
            z->reused = false;
        }
        z->refs = m->refs;

        if (z->init && z->init(z, z->reused) != PT_OK) {
            pt_log(PT_LOG_EMERG, "initialising shared memory zone \"%s\" failed", z->name);
            return PT_ERROR;
        }
    }
    return PT_OK;
}

void pt_shm_release(pt_conf *old, pt_conf *current)
{
    if (old == NULL)
        return;
    for (pt_shm_zone *z = old->shm_zones; z; z = z->next) {
        shm_mapping *m = z->addr ? mapping_find(z->addr) : NULL;
        z->addr = NULL;
        if (m == NULL)
            continue;
        if (m->refs > 1) {
            m->refs--;
            continue;
        }
        /* The last generation using it: unless the current one still points at it, which
         * would mean the reference counts are wrong, and unmapping would crash workers. */
        bool in_use = false;
        if (current)
            for (pt_shm_zone *c = current->shm_zones; c; c = c->next)
                if (c->addr == m->addr)
                    in_use = true;
        if (in_use) {
            pt_log(PT_LOG_CRIT, "shared memory zone \"%s\" released but still in use",
                   z->name);
            continue;
        }
        mapping_drop(m);
    }
}

void pt_shm_prune(pt_conf *keep)
{
    shm_mapping *m = mappings;
    while (m) {
        shm_mapping *next = m->next;
        bool used = false;
        if (keep)
            for (pt_shm_zone *z = keep->shm_zones; z; z = z->next)
                if (z->addr == m->addr)
                    used = true;
        if (!used)
            mapping_drop(m);
        m = next;
    }
}


/* Robust mutex -------------------------------------------------------------------------- */

int pt_shm_mutex_init(pt_shm_mutex *mx)
{
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return PT_ERROR;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (rc == 0)
        rc = pthread_mutex_init(&mx->m, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) {
        pt_log_errno(PT_LOG_ALERT, rc, "pthread_mutex_init() for shared memory failed");
        return PT_ERROR;
    }
    return PT_OK;
}

int pt_shm_mutex_lock(pt_shm_mutex *mx)
{
    int rc = pthread_mutex_lock(&mx->m);
    if (rc == 0)
        return PT_OK;
    if (rc == EOWNERDEAD) {
        /* A process died holding it: we own it now. Mark it usable again right away; the
         * caller repairs the data before unlocking (PT_AGAIN tells it to). */
        pthread_mutex_consistent(&mx->m);
        return PT_AGAIN;
    }
    pt_log_errno(PT_LOG_ALERT, rc, "pthread_mutex_lock() on shared memory failed");
    return PT_ERROR;
}

void pt_shm_mutex_unlock(pt_shm_mutex *mx)
{
    pthread_mutex_unlock(&mx->m);
}


/* Allocator ----------------------------------------------------------------------------- *
 *
 * [pt_shm_pool][block][block]...   every block starts with a 16-byte header; a free block
 * keeps the offset of the next free block in its first payload bytes. The free list is in
 * address order, which makes coalescing on free a matter of looking at both list
 * neighbours. Every change is ordered so that walking the blocks by their sizes stays
 * possible at any instant: a process that dies mid-operation leaves at worst a leaked
 * block, and the next locker rebuilds the free list by walking (pool_repair). */

#define SHM_ALIGN        16
#define SHM_POOL_MAGIC   0x6c6f6f706d687370ULL      /* "pshmpool" */
#define SHM_BLOCK_FREE   0x65657266u                /* "free" */
#define SHM_BLOCK_USED   0x64657375u                /* "used" */

typedef struct shm_block {
    uint32_t magic;
    uint32_t reserved;
    uint64_t size;          /* whole block, header included, multiple of SHM_ALIGN */
} shm_block;

#define SHM_HDR          sizeof(shm_block)
#define SHM_MIN_BLOCK    (SHM_HDR + SHM_ALIGN)
#define shm_align(n)     (((n) + (SHM_ALIGN - 1)) & ~((size_t) SHM_ALIGN - 1))
#define SHM_DATA_START   shm_align(sizeof(pt_shm_pool))

static inline shm_block *blk(pt_shm_pool *p, size_t off)
{
    return (shm_block *) (void *) ((char *) p + off);
}

static inline size_t *blk_next(pt_shm_pool *p, size_t off)
{
    return (size_t *) (void *) ((char *) p + off + SHM_HDR);
}

pt_shm_pool *pt_shm_pool_init(void *addr, size_t size)
{
    if (addr == NULL || ((uintptr_t) addr & (SHM_ALIGN - 1))
        || size < SHM_DATA_START + SHM_MIN_BLOCK)
        return NULL;

    pt_shm_pool *p = addr;
    memset(p, 0, sizeof(*p));
    if (pt_shm_mutex_init(&p->lock) != PT_OK)
        return NULL;
    p->size = (size - SHM_DATA_START) & ~((size_t) SHM_ALIGN - 1);
    p->used = 0;
    p->free_head = SHM_DATA_START;
    shm_block *b = blk(p, SHM_DATA_START);
    b->magic = SHM_BLOCK_FREE;
    b->reserved = 0;
    b->size = p->size;
    *blk_next(p, SHM_DATA_START) = 0;
    p->magic = SHM_POOL_MAGIC;
    return p;
}

pt_shm_pool *pt_shm_pool_attach(void *addr, size_t size)
{
    pt_shm_pool *p = addr;
    if (p == NULL || size < SHM_DATA_START + SHM_MIN_BLOCK || p->magic != SHM_POOL_MAGIC
        || p->size != ((size - SHM_DATA_START) & ~((size_t) SHM_ALIGN - 1)))
        return NULL;
    return p;
}

/* Rebuilds the free list and the used count from the blocks themselves. Called with the
 * lock held after its previous owner died. Adjacent free blocks are merged on the way,
 * since a death between marking a block free and coalescing it can leave two. */
static void pool_repair(pt_shm_pool *p)
{
    size_t off = SHM_DATA_START, end = SHM_DATA_START + p->size;
    size_t used = 0, last_free = 0;
    size_t *link = &p->free_head;

    while (off < end) {
        shm_block *b = blk(p, off);
        uint64_t sz = b->size;
        if ((b->magic != SHM_BLOCK_FREE && b->magic != SHM_BLOCK_USED) || sz < SHM_MIN_BLOCK
            || sz % SHM_ALIGN || sz > end - off) {
            /* Nothing after this point can be trusted: give it up rather than hand out
             * memory someone may still be using. */
            pt_log(PT_LOG_CRIT, "shared memory pool %p: corrupt block at offset %zu, "
                   "%zu bytes lost", (void *) p, off, end - off);
            used += end - off;
            break;
        }
        if (b->magic == SHM_BLOCK_USED) {
            used += sz;
        } else if (last_free && last_free + blk(p, last_free)->size == off) {
            blk(p, last_free)->size += sz;
        } else {
            *link = off;
            link = blk_next(p, off);
            last_free = off;
        }
        off += sz;
    }
    *link = 0;
    p->used = used;
    pt_log(PT_LOG_WARN, "shared memory pool %p: repaired after a process died holding its "
           "lock", (void *) p);
}

static int pool_lock(pt_shm_pool *p)
{
    int rc = pt_shm_mutex_lock(&p->lock);
    if (rc == PT_AGAIN) {
        pool_repair(p);
        rc = PT_OK;
    }
    return rc;
}

void *pt_shm_alloc(pt_shm_pool *p, size_t n)
{
    if (p == NULL || p->magic != SHM_POOL_MAGIC)
        return NULL;
    if (pool_lock(p) != PT_OK)
        return NULL;

    size_t need = n <= p->size ? shm_align(n) + SHM_HDR : SIZE_MAX;
    if (need < SHM_MIN_BLOCK)
        need = SHM_MIN_BLOCK;

    size_t prev = 0, off = need <= p->size ? p->free_head : 0;
    while (off) {
        shm_block *b = blk(p, off);
        if (b->magic != SHM_BLOCK_FREE) {
            pt_log(PT_LOG_CRIT, "shared memory pool %p: free list points at a block in use "
                   "(offset %zu)", (void *) p, off);
            pool_repair(p);
            break;
        }
        size_t next = *blk_next(p, off);
        if (b->size >= need) {
            size_t *link = prev ? blk_next(p, prev) : &p->free_head;
            if (b->size - need >= SHM_MIN_BLOCK) {
                /* Split: the remainder's header first, then shrink b. */
                size_t rest = off + need;
                shm_block *r = blk(p, rest);
                r->magic = SHM_BLOCK_FREE;
                r->reserved = 0;
                r->size = b->size - need;
                *blk_next(p, rest) = next;
                b->size = need;
                *link = rest;
            } else {
                *link = next;
            }
            b->magic = SHM_BLOCK_USED;
            p->used += b->size;
            p->allocs++;
            pt_shm_mutex_unlock(&p->lock);
            return (char *) b + SHM_HDR;
        }
        prev = off;
        off = next;
    }

    p->failures++;
    pt_shm_mutex_unlock(&p->lock);
    return NULL;
}

void pt_shm_free(pt_shm_pool *p, void *ptr)
{
    if (p == NULL || ptr == NULL)
        return;
    uintptr_t start = (uintptr_t) p + SHM_DATA_START + SHM_HDR;
    uintptr_t at = (uintptr_t) ptr;
    if (at < start || at >= (uintptr_t) p + SHM_DATA_START + p->size
        || (at - (uintptr_t) p) % SHM_ALIGN) {
        pt_log(PT_LOG_ALERT, "pt_shm_free(): %p is not in shared memory pool %p", ptr,
               (void *) p);
        return;
    }
    if (pool_lock(p) != PT_OK)
        return;

    size_t off = at - (uintptr_t) p - SHM_HDR;
    shm_block *b = blk(p, off);
    if (b->magic != SHM_BLOCK_USED) {
        pt_log(PT_LOG_ALERT, "pt_shm_free(): %p in pool %p is %s", ptr, (void *) p,
               b->magic == SHM_BLOCK_FREE ? "already free" : "not an allocated block");
        pt_shm_mutex_unlock(&p->lock);
        return;
    }

    size_t prev = 0, next = p->free_head;
    while (next && next < off) {
        prev = next;
        next = *blk_next(p, next);
    }

    p->used -= b->size;
    p->frees++;
    b->magic = SHM_BLOCK_FREE;
    if (next && off + b->size == next) {
        *blk_next(p, off) = *blk_next(p, next);
        b->size += blk(p, next)->size;
    } else {
        *blk_next(p, off) = next;
    }
    if (prev && prev + blk(p, prev)->size == off) {
        *blk_next(p, prev) = *blk_next(p, off);
        blk(p, prev)->size += b->size;
    } else if (prev) {
        *blk_next(p, prev) = off;
    } else {
        p->free_head = off;
    }
    pt_shm_mutex_unlock(&p->lock);
}


/* Core statistics ----------------------------------------------------------------------- */

#define PT_STATS_MAGIC 0x7374617473747070ULL        /* "pptstats" */

int pt_stats_init(void)
{
    if (pt_stats_zone)
        return PT_OK;
    void *addr = mmap(NULL, sizeof(pt_stats), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) {
        pt_log_errno(PT_LOG_EMERG, errno, "mmap() of the statistics zone failed");
        return PT_ERROR;
    }
    pt_stats_zone = addr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pt_stats_zone->started = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
    pt_stats_zone->magic = PT_STATS_MAGIC;
    return PT_OK;
}

void pt_stats_slot_reset(int slot, unsigned generation, pid_t pid)
{
    if (pt_stats_zone == NULL || slot < 0 || slot >= (int) pt_nelems(pt_stats_zone->worker))
        return;
    pt_worker_stats *w = &pt_stats_zone->worker[slot];
    memset(w, 0, sizeof(*w));
    w->generation = generation;
    w->pid = pid;
    pt_metrics_slot_reset(slot);
}

void pt_stats_slot_retire(int slot)
{
    if (pt_stats_zone == NULL || slot < 0 || slot >= (int) pt_nelems(pt_stats_zone->worker))
        return;
    pt_worker_stats *w = &pt_stats_zone->worker[slot], *r = &pt_stats_zone->retired;
    /* readers summing the slots retry while this runs (fold_seq odd) */
    __atomic_add_fetch(&pt_stats_zone->fold_seq, 1, __ATOMIC_ACQ_REL);
    r->accepted += w->accepted;
    r->requests += w->requests;
    for (unsigned i = 0; i < pt_nelems(w->status); i++)
        r->status[i] += w->status[i];
    r->bytes_in += w->bytes_in;
    r->bytes_out += w->bytes_out;
    r->refused += w->refused;
    memset(w, 0, sizeof(*w));
    pt_metrics_slot_retire(slot);
    __atomic_add_fetch(&pt_stats_zone->fold_seq, 1, __ATOMIC_ACQ_REL);
}
