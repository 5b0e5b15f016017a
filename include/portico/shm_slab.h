/* Slab allocator inside a shared-memory zone (layout and guarantees: server/shm_slab.c).
 *
 * Two ways to use it:
 *  - pt_shm_slab_alloc() / pt_shm_slab_free() take the slab's lock themselves: for callers
 *    whose shared data is only the blocks they allocate.
 *  - pt_shm_slab_lock(), any number of *_locked() calls and changes to the module's own
 *    structures (an index, an LRU list), pt_shm_slab_unlock(): for a module whose
 *    structures must change together with its allocations. When lock returns PT_AGAIN, a
 *    process died holding the lock: the slab has already been repaired, the module now
 *    repairs its own structures before it unlocks.
 * A module that serialises with a mutex of its own instead calls only the *_locked()
 * functions under it, and pt_shm_slab_repair() when its lock reports PT_AGAIN. */
#ifndef PT_SHM_SLAB_H
#define PT_SHM_SLAB_H

#include "portico/core.h"
#include "portico/shm_slab-t.h"

/* A slab over [addr, addr + size): addr 16-aligned (a whole zone is page-aligned, and then
 * each slot is also aligned to its class size). NULL if the region is too small for one
 * page (about 4.5 KiB with the header) or misaligned, or the lock cannot be created. */
pt_shm_slab *pt_shm_slab_init(void *addr, size_t size);
/* The slab a reused zone already holds (a reload: init with reused = true): checks magic
 * and geometry instead of wiping it. NULL if addr holds no slab of that size. */
pt_shm_slab *pt_shm_slab_attach(void *addr, size_t size);

/* PT_OK; PT_AGAIN: the previous owner died holding the lock, the slab is repaired, the
 * caller holds the lock and repairs its own structures; PT_ERROR: not locked. */
int   pt_shm_slab_lock(pt_shm_slab *s);
void  pt_shm_slab_unlock(pt_shm_slab *s);

/* n in 1..PT_SHM_SLAB_MAX, rounded up to its class. NULL when the class has no free slot
 * and no free page is left (the caller evicts something and retries) or n is out of
 * range. Contents are not cleared. */
void *pt_shm_slab_alloc(pt_shm_slab *s, size_t n);
void *pt_shm_slab_alloc_locked(pt_shm_slab *s, size_t n);
/* PT_OK; PT_ERROR (logged, nothing changed) for NULL, a pointer outside the slab, inside
 * a slot, or to a free slot. */
int   pt_shm_slab_free(pt_shm_slab *s, void *p);
int   pt_shm_slab_free_locked(pt_shm_slab *s, void *p);

/* Under the lock, after its owner died: finishes or undoes the operation the journal
 * names, then rebuilds every page list and count from the page bitmaps. Idempotent. */
void  pt_shm_slab_repair(pt_shm_slab *s);
/* A slab mapped from an earlier process's file: its page lists rebuilt quietly, or, when
 * its journal shows an operation cut short, repaired (and logged) as above. */
void  pt_shm_slab_reload(pt_shm_slab *s);

/* Under the lock (or with no other user): calls keep(arg, slot) for every slot handed
 * out and frees those it says no to. A module's mark and sweep after a death in its own
 * critical section, or when loading a zone from a file: a slot the dead process had
 * allocated but not yet linked anywhere is then found and freed. Returns the number
 * freed. O(pages + slots in use). */
uint64_t pt_shm_slab_sweep_locked(pt_shm_slab *s, bool (*keep)(void *arg, void *slot),
                                  void *arg);
/* Under the lock: frees every slot at once (all pages free, counters consistent), for a
 * module that starts its structures over rather than repairing them. */
void  pt_shm_slab_clear_locked(pt_shm_slab *s);

/* Full consistency check (lists, bitmaps, counts, journal), for tests and debug builds;
 * under the lock or with no other user. PT_OK, or PT_ERROR with the first problem in err
 * (which may be NULL). O(pages). */
int   pt_shm_slab_check(pt_shm_slab *s, char *err, size_t len);

/* The size class n would get (its slot size), 0 if out of range. */
size_t pt_shm_slab_class_size(size_t n);

/* Offsets to store in shared memory instead of pointers; offset 0 is the header, so it
 * can mean "none". */
static inline uint64_t pt_shm_slab_off(pt_shm_slab *s, const void *p)
{
    return p ? (uint64_t) ((const char *) p - (const char *) s) : 0;
}

static inline void *pt_shm_slab_ptr(pt_shm_slab *s, uint64_t off)
{
    return off ? (char *) s + off : NULL;
}

/* Tests only: when set, called inside alloc and free at the points a process may die
 * (step 1: journal written, nothing changed; 2 and 3: part of the change made), so a test
 * can stop or kill a process holding the lock in mid-operation. */
typedef void (*pt_shm_slab_hook_fn)(pt_shm_slab *s, unsigned op, unsigned step);
extern pt_shm_slab_hook_fn pt_shm_slab_test_hook;

#endif
