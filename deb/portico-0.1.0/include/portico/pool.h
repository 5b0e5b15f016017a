#ifndef PT_POOL_H
#define PT_POOL_H

#include "portico/core.h"
#include "portico/pool-t.h"
#include "portico/str-t.h"

pt_pool *pt_pool_create(size_t chunk_size);
void     pt_pool_destroy(pt_pool *p);
/* Frees everything but the first chunk, so a reused pool allocates nothing. */
void     pt_pool_reset(pt_pool *p);
void    *pt_palloc(pt_pool *p, size_t n);       /* 16-byte aligned, NULL on OOM */
void    *pt_pcalloc(pt_pool *p, size_t n);
char    *pt_pstrndup(pt_pool *p, const char *s, size_t n);  /* NUL-terminated copy */
pt_str   pt_pstr(pt_pool *p, pt_str s);                     /* copy, also NUL-terminated */
int      pt_pool_cleanup_add(pt_pool *p, void (*fn)(void *), void *data);

#endif
