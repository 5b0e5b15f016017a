/* Shared keyed tables (server/shm_table.c). The master lays one out in a zone (init from
 * the zone's init function); workers lock it, look entries up or create them, change
 * their values and unlock. Values are the caller's: a fixed size given at init, zeroed
 * on creation. When the slab is full, insertion evicts from the least recently used end
 * the entries the caller says may go. */
#ifndef PT_SHM_TABLE_H
#define PT_SHM_TABLE_H

#include "portico/core.h"
#include "portico/shm_table-t.h"

/* In the zone's init (master): a table with entries of value_size bytes over the whole
 * zone, or the one a reused zone holds when its geometry matches (reused = true). NULL if
 * the zone is too small (under about 24 KiB). */
pt_shm_table *pt_shm_table_init(void *addr, size_t size, size_t value_size, bool reused);

/* Takes the table's lock (the slab's robust mutex). When the previous holder died, the
 * table is repaired first: the LRU list's back links and every hash chain are rebuilt from
 * the LRU's forward chain (an entry being inserted or removed at that moment is lost,
 * its slot leaked). PT_OK, or PT_ERROR (not locked). */
int  pt_shm_table_lock(pt_shm_table *t);
void pt_shm_table_unlock(pt_shm_table *t);

/* Under the lock. The value of key (marked most recently used), or NULL. */
void *pt_shm_table_get(pt_shm_table *t, const void *key, size_t klen);
/* The same without marking it (walks that must not reorder the list). */
void *pt_shm_table_peek(pt_shm_table *t, const void *key, size_t klen);
/* Under the lock. The value of key, created (zeroed, *created = true) when missing. When
 * there is no room, entries are evicted from the least recently used end, those for which
 * evictable(value, arg) is true (NULL: any), looking at up to 16 of them; NULL if none
 * could go. */
void *pt_shm_table_put(pt_shm_table *t, const void *key, size_t klen, bool *created,
                       bool (*evictable)(void *value, void *arg), void *arg);
/* Under the lock: removes the entry of a value returned by get or put. */
void  pt_shm_table_del(pt_shm_table *t, void *value);
/* Under the lock: calls fn for every entry, most recently used first; fn may delete the
 * entry it is given (and no other). */
void  pt_shm_table_foreach(pt_shm_table *t, void (*fn)(pt_shm_table *t, void *value,
                                                        const void *key, size_t klen,
                                                        void *arg), void *arg);

#endif
