/* Intrusive doubly linked lists in shared memory, linked by offsets from a base address
 * (the zone's or the slab's start), for an LRU over a cache index, a queue of entries to
 * expire, and so on. A node (pt_shm_list, in shm_slab-t.h) is a member of the module's own
 * struct; pt_container_of() gets back to the struct. The list is circular through its
 * head: head.next is the first node (the most recently used, for an LRU), head.prev the
 * last (the one to evict).
 *
 * Nothing here locks: the module calls these under the lock that protects its structures.
 * The stores are ordered so that a process dying in the middle of any operation leaves
 * the forward chain from the head intact, with the node either on it or not;
 * pt_shm_list_repair() then rebuilds the back links, and pt_shm_list_linked() tells the
 * module which of its entries are on the list (an entry being inserted or moved when its
 * owner died is not, and the module re-inserts it). */
#ifndef PT_SHM_LIST_H
#define PT_SHM_LIST_H

#include "portico/core.h"
#include "portico/shm_slab-t.h"

/* Only a dying process observes the order of a lock holder's stores: a compiler barrier
 * is enough. */
#define pt_shm_list_barrier()  __atomic_signal_fence(__ATOMIC_SEQ_CST)

static inline pt_shm_list *pt_shm_list_at(void *base, uint64_t off)
{
    return (pt_shm_list *) (void *) ((char *) base + off);
}

static inline uint64_t pt_shm_list_off(void *base, const pt_shm_list *l)
{
    return (uint64_t) ((const char *) l - (const char *) base);
}

static inline void pt_shm_list_init(void *base, pt_shm_list *head)
{
    head->next = head->prev = pt_shm_list_off(base, head);
}

/* A node not on any list (fresh slab memory is not zeroed). */
static inline void pt_shm_list_node_init(pt_shm_list *node)
{
    node->next = node->prev = 0;
}

static inline bool pt_shm_list_empty(void *base, pt_shm_list *head)
{
    return head->next == pt_shm_list_off(base, head);
}

static inline bool pt_shm_list_linked(void *base, pt_shm_list *node)
{
    return node->prev != 0 && pt_shm_list_at(base, node->prev)->next
                              == pt_shm_list_off(base, node);
}

/* The node's own links first, the head's forward link last: until that store the forward
 * chain does not include the node. */
static inline void pt_shm_list_insert_head(void *base, pt_shm_list *head, pt_shm_list *node)
{
    uint64_t h = pt_shm_list_off(base, head), n = pt_shm_list_off(base, node);
    uint64_t first = head->next;
    node->next = first;
    node->prev = h;
    pt_shm_list_at(base, first)->prev = n;
    pt_shm_list_barrier();
    head->next = n;
}

/* The forward link that skips the node first: from then on it is off the list. */
static inline void pt_shm_list_remove(void *base, pt_shm_list *node)
{
    uint64_t next = node->next, prev = node->prev;
    pt_shm_list_at(base, prev)->next = next;
    pt_shm_list_barrier();
    pt_shm_list_at(base, next)->prev = prev;
    node->next = node->prev = 0;
}

static inline void pt_shm_list_move_head(void *base, pt_shm_list *head, pt_shm_list *node)
{
    if (head->next == pt_shm_list_off(base, node))
        return;
    pt_shm_list_remove(base, node);
    pt_shm_list_insert_head(base, head, node);
}

static inline pt_shm_list *pt_shm_list_first(void *base, pt_shm_list *head)
{
    return pt_shm_list_empty(base, head) ? NULL : pt_shm_list_at(base, head->next);
}

/* The tail: the least recently moved to the head. */
static inline pt_shm_list *pt_shm_list_last(void *base, pt_shm_list *head)
{
    return pt_shm_list_empty(base, head) ? NULL : pt_shm_list_at(base, head->prev);
}

static inline pt_shm_list *pt_shm_list_next(void *base, pt_shm_list *head, pt_shm_list *node)
{
    return node->next == pt_shm_list_off(base, head) ? NULL
                                                     : pt_shm_list_at(base, node->next);
}

static inline pt_shm_list *pt_shm_list_prev(void *base, pt_shm_list *head, pt_shm_list *node)
{
    return node->prev == pt_shm_list_off(base, head) ? NULL
                                                     : pt_shm_list_at(base, node->prev);
}

/* Head to tail; the loop body must not remove node (walk with pt_shm_list_prev from the
 * tail to evict). */
#define pt_shm_list_foreach(base, head, node) \
    for ((node) = pt_shm_list_first(base, head); (node); \
         (node) = pt_shm_list_next(base, head, node))

/* Walk the forward chain of the list in [base, base + size): the number of nodes, or -1
 * if a link leaves the region, is misaligned or loops. check also wants every back link
 * right; repair rewrites them (after a death in the middle of an operation). */
long pt_shm_list_check(void *base, size_t size, pt_shm_list *head);
long pt_shm_list_repair(void *base, size_t size, pt_shm_list *head);

#endif
