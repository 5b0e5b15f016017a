/* Intrusive shared-memory lists: the walks that check and repair one (the operations are
 * inline in portico/shm_list.h). */
#include "portico/core.h"

#include "portico/shm_list.h"

static long list_walk(void *base, size_t size, pt_shm_list *head, bool fix)
{
    uint64_t h = pt_shm_list_off(base, head), prev = h;
    size_t limit = size / sizeof(pt_shm_list);
    long n = 0;

    if (size < sizeof(pt_shm_list) || h == 0 || h > size - sizeof(pt_shm_list))
        return -1;
    for (uint64_t off = head->next;; off = pt_shm_list_at(base, off)->next) {
        if (off == 0 || off > size - sizeof(pt_shm_list) || off % sizeof(uint64_t)
            || (size_t) n > limit)
            return -1;
        pt_shm_list *l = pt_shm_list_at(base, off);
        if (fix)
            l->prev = prev;
        else if (l->prev != prev)
            return -1;
        if (off == h)
            return n;
        prev = off;
        n++;
    }
}

long pt_shm_list_check(void *base, size_t size, pt_shm_list *head)
{
    return list_walk(base, size, head, false);
}

long pt_shm_list_repair(void *base, size_t size, pt_shm_list *head)
{
    return list_walk(base, size, head, true);
}
