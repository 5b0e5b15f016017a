/* A binary min-heap of timers keyed by deadline.
 * Connections push their deadline later on every read or write; doing that lazily (store
 * the new deadline, re-sort only when the old key comes due) keeps the common case O(1). */
#include <stdlib.h>
#include "portico/timer.h"

#define PARENT(i) (((i) - 1) / 2)

static void place(pt_timer_heap *h, uint32_t i, pt_timer *t)
{
    h->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(pt_timer_heap *h, uint32_t i)
{
    pt_timer *t = h->heap[i];
    while (i > 0 && h->heap[PARENT(i)]->key > t->key) {
        place(h, i, h->heap[PARENT(i)]);
        i = PARENT(i);
    }
    place(h, i, t);
}

static void sift_down(pt_timer_heap *h, uint32_t i)
{
    pt_timer *t = h->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->heap[c + 1]->key < h->heap[c]->key)
            c++;
        if (h->heap[c]->key >= t->key)
            break;
        place(h, i, h->heap[c]);
        i = c;
    }
    place(h, i, t);
}

int pt_timer_heap_init(pt_timer_heap *h, uint32_t cap)
{
    h->n = 0;
    h->cap = cap ? cap : 64;
    h->heap = malloc(h->cap * sizeof(*h->heap));
    return h->heap ? PT_OK : PT_ERROR;
}

void pt_timer_heap_free(pt_timer_heap *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        h->heap[i]->slot = 0;
    free(h->heap);
    h->heap = NULL;
    h->n = h->cap = 0;
}

void pt_timer_init(pt_timer *t, pt_timer_fn fn, void *data)
{
    t->key = t->deadline = 0;
    t->slot = 0;
    t->fn = fn;
    t->data = data;
}

int pt_timer_set(pt_timer_heap *h, pt_timer *t, uint64_t deadline)
{
    t->deadline = deadline;
    if (t->slot) {
        if (deadline >= t->key)
            return PT_OK;               /* later: fixed up when the key comes due */
        t->key = deadline;
        sift_up(h, t->slot - 1);
        return PT_OK;
    }
    if (h->n == h->cap) {
        uint32_t ncap = h->cap * 2;
        pt_timer **nh = realloc(h->heap, ncap * sizeof(*nh));
        if (nh == NULL)
            return PT_ERROR;
        h->heap = nh;
        h->cap = ncap;
    }
    t->key = deadline;
    place(h, h->n++, t);
    sift_up(h, h->n - 1);
    return PT_OK;
}

void pt_timer_del(pt_timer_heap *h, pt_timer *t)
{
    if (!t->slot)
        return;
    uint32_t i = t->slot - 1;
    t->slot = 0;
    h->n--;
    if (i == h->n)
        return;
    pt_timer *last = h->heap[h->n];
    place(h, i, last);
    if (i > 0 && h->heap[PARENT(i)]->key > last->key)
        sift_up(h, i);
    else
        sift_down(h, i);
}

int pt_timer_next(pt_timer_heap *h, uint64_t now)
{
    if (h->n == 0)
        return -1;
    uint64_t k = h->heap[0]->key;
    if (k <= now)
        return 0;
    uint64_t d = k - now;
    return d > 86400000 ? 86400000 : (int) d;
}

unsigned pt_timer_expire(pt_timer_heap *h, uint64_t now)
{
    unsigned fired = 0;
    while (h->n && h->heap[0]->key <= now) {
        pt_timer *t = h->heap[0];
        if (t->deadline > now) {
            /* pushed back since it was keyed: re-sort at the real deadline */
            t->key = t->deadline;
            sift_down(h, 0);
            continue;
        }
        pt_timer_del(h, t);
        fired++;
        t->fn(t);
    }
    return fired;
}
