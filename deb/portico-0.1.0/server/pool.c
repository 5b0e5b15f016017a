/* Region allocator. Requests reset their pool instead of freeing object by object, and
 * the first chunk is kept, so a steady stream of small requests allocates nothing. */
#include <stdlib.h>
#include "portico/pool.h"

#define PT_POOL_ALIGN 16
#define pt_align_up(n, a) (((n) + ((a) - 1)) & ~((size_t) (a) - 1))

static pt_pool_chunk *chunk_new(size_t size)
{
    size_t hdr = pt_align_up(sizeof(pt_pool_chunk), PT_POOL_ALIGN);
    pt_pool_chunk *c = malloc(hdr + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->pos = (char *) c + hdr;
    c->end = c->pos + size;
    return c;
}

pt_pool *pt_pool_create(size_t chunk_size)
{
    pt_pool *p = malloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    if (chunk_size < 256)
        chunk_size = 256;
    p->chunk_size = chunk_size;
    p->first = p->current = chunk_new(chunk_size);
    if (p->first == NULL) {
        free(p);
        return NULL;
    }
    p->large = NULL;
    p->cleanups = NULL;
    p->allocated = chunk_size;
    return p;
}

static void run_cleanups(pt_pool *p)
{
    while (p->cleanups) {
        pt_pool_cleanup *c = p->cleanups;
        p->cleanups = c->next;
        c->fn(c->data);
    }
}

static void free_list(pt_pool_chunk *c)
{
    while (c) {
        pt_pool_chunk *n = c->next;
        free(c);
        c = n;
    }
}

void pt_pool_reset(pt_pool *p)
{
    run_cleanups(p);
    free_list(p->first->next);
    free_list(p->large);
    p->first->next = NULL;
    p->large = NULL;
    p->first->pos = (char *) p->first + pt_align_up(sizeof(pt_pool_chunk), PT_POOL_ALIGN);
    p->current = p->first;
    p->allocated = p->chunk_size;
}

void pt_pool_destroy(pt_pool *p)
{
    if (p == NULL)
        return;
    run_cleanups(p);
    free_list(p->first);
    free_list(p->large);
    free(p);
}

void *pt_palloc(pt_pool *p, size_t n)
{
    n = pt_align_up(n ? n : 1, PT_POOL_ALIGN);
    pt_pool_chunk *c = p->current;
    if ((size_t) (c->end - c->pos) >= n) {
        void *r = c->pos;
        c->pos += n;
        return r;
    }
    if (n > p->chunk_size / 4) {
        /* big: its own block, so it does not waste the rest of a chunk */
        pt_pool_chunk *l = chunk_new(n);
        if (l == NULL)
            return NULL;
        l->next = p->large;
        p->large = l;
        p->allocated += n;
        l->pos = l->end;
        return l->end - n;
    }
    pt_pool_chunk *nc = chunk_new(p->chunk_size);
    if (nc == NULL)
        return NULL;
    c->next = nc;
    p->current = nc;
    p->allocated += p->chunk_size;
    void *r = nc->pos;
    nc->pos += n;
    return r;
}

void *pt_pcalloc(pt_pool *p, size_t n)
{
    void *r = pt_palloc(p, n);
    if (r)
        memset(r, 0, n);
    return r;
}

char *pt_pstrndup(pt_pool *p, const char *s, size_t n)
{
    char *r = pt_palloc(p, n + 1);
    if (r == NULL)
        return NULL;
    if (n)
        memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

pt_str pt_pstr(pt_pool *p, pt_str s)
{
    char *d = pt_pstrndup(p, s.data, s.len);
    return d ? (pt_str) { s.len, d } : PT_STR_NULL;
}

int pt_pool_cleanup_add(pt_pool *p, void (*fn)(void *), void *data)
{
    pt_pool_cleanup *c = pt_palloc(p, sizeof(*c));
    if (c == NULL)
        return PT_ERROR;
    c->fn = fn;
    c->data = data;
    c->next = p->cleanups;
    p->cleanups = c;
    return PT_OK;
}
