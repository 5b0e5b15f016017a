#ifndef PT_SHM_H
#define PT_SHM_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/shm-t.h"

/* While loading a config: ask for a zone. A second declaration with the same name must
 * have the same size (error otherwise) and returns the same zone. */
pt_shm_zone *pt_shm_declare(pt_conf_ctx *cx, const char *name, size_t size,
                            pt_shm_init_fn init, void *data);

/* The same, backed by the file path (created with mode 0600 when missing, its blocks
 * reserved so that a full disk cannot fault a write later), which keeps the contents
 * across restarts. A file of another size is emptied and resized (logged). The master
 * holds an exclusive flock on it while mapped: a file another live process holds (an
 * old master during a binary upgrade, or the same file at another size during a reload)
 * is not used, the zone is memory only (z->file_busy, logged). Reused by a reload when
 * name, size and path match. */
pt_shm_zone *pt_shm_declare_file(pt_conf_ctx *cx, const char *name, size_t size,
                                 const char *path, pt_shm_init_fn init, void *data);

/* Master: maps the zones of conf, reusing those of old (may be NULL) with the same name
 * and size; runs each zone's init. */
int  pt_shm_map(pt_conf *conf, pt_conf *old);
/* Master: drops the mappings only old used, once its workers are gone. */
void pt_shm_release(pt_conf *old, pt_conf *current);
pt_shm_zone *pt_shm_find(pt_conf *conf, const char *name);
/* Worker, after fork: unmaps the zones of other generations that the master still holds,
 * so that memory a reload dropped is not kept alive by newer workers. */
void pt_shm_prune(pt_conf *keep);

int  pt_shm_mutex_init(pt_shm_mutex *mx);
/* PT_OK; or PT_AGAIN when the previous owner died holding it: the caller now holds it and
 * must repair what it protects before unlocking. */
int  pt_shm_mutex_lock(pt_shm_mutex *mx);
void pt_shm_mutex_unlock(pt_shm_mutex *mx);

pt_shm_pool *pt_shm_pool_init(void *addr, size_t size);   /* whole zone */
/* The pool a reused zone already holds (init with reused = true): checks its magic and
 * size instead of wiping it. NULL if addr holds no such pool. */
pt_shm_pool *pt_shm_pool_attach(void *addr, size_t size);
void        *pt_shm_alloc(pt_shm_pool *p, size_t n);      /* locks internally */
void         pt_shm_free(pt_shm_pool *p, void *ptr);

/* The core's statistics zone and this worker's slot (NULL in the master). */
extern pt_stats        *pt_stats_zone;
extern pt_worker_stats *pt_stats_mine;

/* Master: maps pt_stats_zone once at start (it survives reloads). */
int  pt_stats_init(void);
/* Master: a slot handed to a new worker starts from zero. */
void pt_stats_slot_reset(int slot, unsigned generation, pid_t pid);
/* Master: a worker has exited: its counters move to pt_stats_zone->retired. */
void pt_stats_slot_retire(int slot);

#endif
