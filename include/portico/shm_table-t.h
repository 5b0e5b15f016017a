/* A table of keyed entries in a shared-memory zone, for state every worker must see the
 * same: rate-limit buckets, connection counts. A hash index (chains) and an LRU list over
 * entries allocated from the zone's slab, all linked by offsets from the table's start. */
#ifndef PT_SHM_TABLE_T_H
#define PT_SHM_TABLE_T_H

#include <stdint.h>

#include "portico/shm_slab-t.h"

#define PT_SHM_TABLE_KEY_MAX 512     /* longer keys are stored as a digest */

typedef struct pt_shm_table {
    uint64_t     magic;
    uint64_t     size;           /* of the zone */
    uint32_t     value_size;     /* the module's bytes per entry (rounded up to 16) */
    uint32_t     nbuckets;       /* power of two */
    uint64_t     seed[2];        /* hash key, random per zone: chains cannot be aimed at */
    uint64_t     slab_off;       /* the slab after the buckets, page-aligned */
    uint64_t     entries;
    uint64_t     evictions;      /* entries dropped to make room (least recently used) */
    uint64_t     failures;       /* insertions that found no room */
    uint64_t     repairs;        /* rebuilt after a process died holding the lock */
    pt_shm_list  lru;            /* head: most recently used first */
    uint64_t     buckets[];      /* entry offsets, 0: empty chain */
} pt_shm_table;

/* An entry: links, then the module's value (16-aligned), then the key bytes. */
typedef struct pt_shm_entry {
    pt_shm_list  lru;
    uint64_t     next;           /* in its chain */
    uint64_t     hash;
    uint32_t     klen;
    uint32_t     pad[3];
} pt_shm_entry;

#endif
