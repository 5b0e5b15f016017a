/* Named counters in the shared "counters" zone (include/portico/counters-t.h).
 *
 * Declarations are collected while a configuration loads; the zone's init (in the master,
 * before the workers fork) gives each its slot: the one holding that name (a reload keeps
 * the count), else the first free one, else the one no configuration has used for
 * longest. Workers only add to their slots, with atomic adds: refusals are rare next to
 * requests, so one shared word per counter costs less than a slot per worker. */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"

#define COUNTERS_ZONE  "counters"
#define COUNTERS_MAGIC 0x31746e756f637470ULL      /* "ptcount1" */

typedef struct counter_decl counter_decl;
struct counter_decl {
    counter_decl *next;
    char          name[PT_COUNTER_NAME];
    pt_counter  **where;
};

typedef struct {
    counter_decl *first;
} counter_decls;

static int counters_init(pt_shm_zone *z, bool reused)
{
    counter_decls *d = z->data;
    pt_counters_zone *cz = z->addr;

    if (!reused || cz->magic != COUNTERS_MAGIC || cz->nslots != PT_COUNTER_SLOTS) {
        if (reused)
            memset(cz, 0, z->size);
        cz->magic = COUNTERS_MAGIC;
        cz->nslots = PT_COUNTER_SLOTS;
    }
    uint64_t gen = ++cz->generation;
    unsigned lost = 0;
    for (counter_decl *c = d->first; c; c = c->next) {
        size_t len = strlen(c->name) + 1;
        pt_counter *found = NULL, *spare = NULL;
        uint32_t spare_i = 0;
        /* slots are taken in order: the scan ends at the first free one */
        for (uint32_t i = 0; i < cz->nslots; i++) {
            pt_counter *s = &cz->slot[i];
            if (s->name[0] == 0) {
                spare = s;
                spare_i = i;
                break;
            }
            if (memcmp(s->name, c->name, len) == 0) {
                found = s;
                cz->last_used[i] = gen;
                break;
            }
            if (cz->last_used[i] < gen
                && (spare == NULL || cz->last_used[i] < cz->last_used[spare_i])) {
                spare = s;
                spare_i = i;
            }
        }
        if (found == NULL && spare) {
            found = spare;
            memset(found, 0, sizeof(*found));
            memcpy(found->name, c->name, len);
            cz->last_used[spare_i] = gen;
        }
        if (found == NULL)
            lost++;
        *c->where = found;
    }
    if (lost)
        pt_log(PT_LOG_WARN, "shared counters: %u counters have no slot (%u slots, all in use)",
               lost, PT_COUNTER_SLOTS);
    return PT_OK;
}

int pt_counter_declare(pt_conf_ctx *cx, const char *kind, const char *name, pt_counter **where)
{
    pt_conf *conf = cx->conf;
    pt_shm_zone *z = pt_shm_find(conf, COUNTERS_ZONE);

    *where = NULL;
    if (z == NULL) {
        counter_decls *d = pt_pcalloc(cx->pool, sizeof(*d));
        if (d == NULL)
            return pt_conf_error(cx, NULL, "out of memory");
        z = pt_shm_declare(cx, COUNTERS_ZONE, sizeof(pt_counters_zone), counters_init, d);
        if (z == NULL)
            return PT_ERROR;
    }
    counter_decls *d = z->data;
    counter_decl *c = pt_pcalloc(cx->pool, sizeof(*c));
    if (c == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    int n = snprintf(c->name, sizeof(c->name), "%s:%s", kind, name);
    if (n < 0 || (size_t) n >= sizeof(c->name))
        return PT_OK;                   /* names are bounded where they are read */
    c->where = where;
    c->next = d->first;
    d->first = c;
    return PT_OK;
}
