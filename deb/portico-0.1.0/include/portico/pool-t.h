/* Region allocator: per config generation, per connection and per request.
 * Allocation is a pointer bump; everything is freed at once by reset/destroy. */
#ifndef PT_POOL_T_H
#define PT_POOL_T_H

#include <stddef.h>

typedef struct pt_pool_chunk pt_pool_chunk;
struct pt_pool_chunk {
    pt_pool_chunk *next;
    char          *pos;
    char          *end;
    /* data follows */
};

typedef struct pt_pool_cleanup pt_pool_cleanup;
struct pt_pool_cleanup {
    void           (*fn)(void *data);
    void            *data;
    pt_pool_cleanup *next;
};

typedef struct pt_pool {
    pt_pool_chunk   *first;     /* kept across resets */
    pt_pool_chunk   *current;
    pt_pool_chunk   *large;     /* allocations bigger than a chunk, freed on reset */
    pt_pool_cleanup *cleanups;  /* run (newest first) on reset and destroy */
    size_t           chunk_size;
    size_t           allocated; /* bytes taken from malloc, for accounting */
} pt_pool;

#endif
