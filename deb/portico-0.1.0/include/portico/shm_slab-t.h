/* Slab allocator inside a shared-memory zone, and the intrusive lists modules build on it.
 * Every link stored in shared memory is an offset, never a pointer: a zone may be mapped at
 * a different address in each process that uses it. */
#ifndef PT_SHM_SLAB_T_H
#define PT_SHM_SLAB_T_H

#include <stdint.h>

#include "portico/shm-t.h"

#define PT_SHM_SLAB_PAGE     4096        /* bytes per slab page */
#define PT_SHM_SLAB_MIN      16          /* smallest class; every allocation is 16-aligned */
#define PT_SHM_SLAB_MAX      PT_SHM_SLAB_PAGE   /* largest allocation: one whole page */
#define PT_SHM_SLAB_CLASSES  9           /* 16, 32, 64, ..., 4096 */

/* What a process was doing with the slab when it last held the lock; op is
 * PT_SHM_SLAB_OP_NONE outside alloc and free. Read by the repair after a death. */
enum { PT_SHM_SLAB_OP_NONE = 0, PT_SHM_SLAB_OP_ALLOC, PT_SHM_SLAB_OP_FREE };

typedef struct pt_shm_slab_journal {
    uint32_t op;
    uint32_t cls;
    uint32_t page;          /* page number */
    uint32_t slot;          /* slot in that page */
    uint64_t count;         /* the class's allocs (ALLOC) or frees (FREE) before the op */
} pt_shm_slab_journal;

/* One size class. Readable as statistics (take the lock for a consistent set). */
typedef struct pt_shm_slab_class {
    uint32_t size;          /* slot size */
    uint32_t slots;         /* slots per page */
    uint32_t partial;       /* page lists (page number + 1, 0 = empty): some slots free, */
    uint32_t full;          /* no slot free */
    uint64_t pages;         /* pages this class holds (partial + full) */
    uint64_t used;          /* slots handed out; always allocs - frees */
    uint64_t allocs;
    uint64_t frees;
    uint64_t failures;      /* allocations refused because no page was left */
} pt_shm_slab_class;

/* The slab's header, at the start of the region it manages. */
typedef struct pt_shm_slab {
    uint64_t            magic;
    pt_shm_mutex        lock;
    uint64_t            size;        /* bytes of the region given to init */
    uint64_t            pages_off;   /* offset of page 0 (a multiple of the page size) */
    uint32_t            npages;
    uint32_t            free_head;   /* pages no class holds (page number + 1, 0 = none) */
    uint64_t            free_pages;
    uint64_t            oversize;    /* requests for 0 or more than PT_SHM_SLAB_MAX bytes */
    uint64_t            repairs;     /* times a dead lock owner's work was repaired */
    pt_shm_slab_journal journal;
    pt_shm_slab_class   cls[PT_SHM_SLAB_CLASSES];
} pt_shm_slab;

/* A link of an intrusive doubly linked list kept in shared memory: offsets from a base
 * address (the start of the zone or of the slab). A list has a head of the same type; 0 in
 * a node means "not on a list" (so the base itself is never a head or a node). */
typedef struct pt_shm_list {
    uint64_t next;
    uint64_t prev;
} pt_shm_list;

#endif
