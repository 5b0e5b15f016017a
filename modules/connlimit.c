/* connlimit: open connections per key, the same for every worker, enforced in the accept
 * pipeline before a protocol (or, later, a TLS handshake) spends anything on them.
 *
 *   filters = { conn_limits = ( { name = "per-ip"; key = "$remote_addr"; max = 100;
 *                                 listeners = [ "main" ]; memory = 1048576; } ); };
 *
 * Each limit has a shared zone ("conn_limit:NAME") with a keyed table of counts. The key
 * is made of connection variables only ($remote_addr: the PROXY protocol's client when
 * the listener has it; $listener). A connection is counted under every limit of its
 * listener, all or none: when one limit refuses, the counts already taken are given back
 * and the connection is closed at once (logged, counted in "conn_limit:NAME"); when a
 * zone has no room for a new key, the connection is let in uncounted (logged) rather than
 * refused. Counts go down when the connection closes.
 *
 * A worker that dies (a crash, or killed at the end of a drain) cannot give its counts
 * back, so each count is also kept per worker slot ("KEY" NUL slot), and the master, when
 * it reaps a worker, takes that worker's counts off every key. */
#include <stdio.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/cycle-t.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/shm_table.h"
#include "portico/var.h"

#define LIMIT_NAME_MAX 40
#define KEY_MAX        256

typedef struct {
    uint32_t count;
    uint16_t slot;              /* per-worker entries: the worker's stats slot + 1 */
    uint16_t pad;
} conn_count;

typedef struct conn_limit {
    const char     *name;
    unsigned        line;
    pt_var          key;
    const char     *key_text;
    uint32_t        max;
    uint64_t        memory;
    uint64_t        listeners;     /* bit per listener index; 0: every listener */
    pt_shm_table   *table;         /* set in the master once the zone is mapped */
    pt_counter     *refused;
} conn_limit;

typedef struct {
    conn_limit *limits;
    unsigned    nlimits;
} connlimit_main_conf;

pt_module pt_connlimit_module;

/* ---- configuration ---- */

typedef struct {
    const char       *name;
    const char       *key;
    uint32_t          max;
    uint64_t          memory;
    config_setting_t *listeners;
} limit_def;

static int set_setting(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    *(config_setting_t **) ((char *) base + k->offset) = s;
    return PT_OK;
}

static const pt_conf_key limit_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(limit_def, name), 1, LIMIT_NAME_MAX, NULL },
    { "key", 0, pt_conf_set_str, offsetof(limit_def, key), 1, 256, NULL },
    { "max", 0, pt_conf_set_uint32, offsetof(limit_def, max), 1, 10000000, NULL },
    { "memory", 0, pt_conf_set_uint64, offsetof(limit_def, memory), 65536, 1073741824, NULL },
    { "listeners", 0, set_setting, offsetof(limit_def, listeners), 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool valid_name(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static int zone_init(pt_shm_zone *z, bool reused)
{
    conn_limit *l = z->data;
    /* counts of connections that belonged to the workers of a configuration now gone
     * would never be given back: a reload starts the table afresh only when it must (a
     * kept zone's counts are those of connections the old workers still hold) */
    l->table = pt_shm_table_init(z->addr, z->size, sizeof(conn_count), reused);
    if (l->table == NULL) {
        pt_log(PT_LOG_EMERG, "conn_limit \"%s\": cannot lay out its zone", l->name);
        return PT_ERROR;
    }
    return PT_OK;
}

static int parse_listeners(pt_conf_ctx *cx, config_setting_t *s, conn_limit *l)
{
    const pt_conf *conf = cx->conf;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of listener names [ \"main\", ... ]");
    if (config_setting_length(s) == 0)
        return pt_conf_error(cx, s, "empty: leave listeners out for every listener");
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        const char *v = config_setting_get_string(e);
        if (v == NULL)
            return pt_conf_type_error(cx, e, "a string");
        unsigned j;
        for (j = 0; j < conf->nlisteners; j++)
            if (strcmp(conf->listeners[j].name, v) == 0)
                break;
        if (j == conf->nlisteners)
            return pt_conf_error(cx, e, "no listener is named \"%s\"", v);
        if (j >= 64)
            return pt_conf_error(cx, e, "only the first 64 listeners can be named here");
        l->listeners |= 1ULL << j;
    }
    return PT_OK;
}

static int parse_limit(pt_conf_ctx *cx, config_setting_t *e, void *arg, void *elem)
{
    connlimit_main_conf *mc = arg;
    conn_limit *l = elem;
    limit_def d = { .memory = 1048576 };
    if (!config_setting_is_group(e))
        return pt_conf_type_error(cx, e, "a group { name = ...; max = ...; }");
    if (pt_conf_parse_group(cx, e, limit_keys, &d) != PT_OK)
        return PT_ERROR;
    if (d.name == NULL)
        return pt_conf_error(cx, e, "missing key 'name'");
    config_setting_t *ns = config_setting_get_member(e, "name");
    if (!valid_name(d.name))
        return pt_conf_error(cx, ns, "\"%s\": a name is letters, digits, '-', '_' or '.'", d.name);
    for (unsigned j = 0; j < mc->nlimits; j++)
        if (strcmp(mc->limits[j].name, d.name) == 0)
            return pt_conf_error(cx, ns, "\"%s\" is already the name of the connection limit "
                                 "at line %u", d.name, mc->limits[j].line);
    if (d.max == 0)
        return pt_conf_error(cx, e, "missing key 'max'");
    l->name = d.name;
    l->line = pt_conf_setting_line(cx, e);
    l->max = d.max;
    l->memory = d.memory;
    l->key_text = d.key ? d.key : "$remote_addr";
    config_setting_t *ks = config_setting_get_member(e, "key");
    if (pt_var_compile(cx, ks, l->key_text, &l->key) != PT_OK)
        return PT_ERROR;
    if (l->key.request)
        return pt_conf_error(cx, ks, "\"%s\": a connection is counted before any request: "
                             "only $remote_addr and $listener", l->key_text);
    if (d.listeners && parse_listeners(cx, d.listeners, l) != PT_OK)
        return PT_ERROR;
    char zone[64];
    snprintf(zone, sizeof(zone), "conn_limit:%s", l->name);
    if (pt_shm_declare(cx, zone, (size_t) l->memory, zone_init, l) == NULL)
        return PT_ERROR;
    return pt_counter_declare(cx, "conn_limit", l->name, &l->refused);
}

static int set_limits(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    connlimit_main_conf *mc = base;
    return pt_conf_parse_list(cx, s, "a list ( { name = ...; max = ...; }, ... )", sizeof(conn_limit), parse_limit, mc,
                              &mc->limits, &mc->nlimits);
}

/* ---- connections ---- */

static bool applies(const conn_limit *l, const pt_conn *c)
{
    unsigned li = c->listener->conf->index;
    return l->table && (l->listeners == 0 || (li < 64 && (l->listeners & (1ULL << li))));
}

static bool unused(void *value, void *arg)
{
    return ((conn_count *) value)->count == 0;
}

static size_t key_of(const conn_limit *l, const pt_conn *c, char *key)
{
    return pt_var_eval(&l->key, NULL, c, key, KEY_MAX - 3);
}

/* The per-worker entry's key: the key, NUL, the slot. */
static size_t slot_key(char *key, size_t klen)
{
    uint16_t slot = (uint16_t) (pt_cycle_cur->stats_slot + 1);
    key[klen] = '\0';
    memcpy(key + klen + 1, &slot, sizeof(slot));
    return klen + 1 + sizeof(slot);
}

static void drop(pt_shm_table *t, conn_count *v)
{
    if (v && v->count)
        v->count--;
    if (v && v->count == 0)
        pt_shm_table_del(t, v);
}

/* Takes one count under l for c. PT_OK, PT_DECLINED (not counted: no key, or no room),
 * PT_ERROR (at the limit: refused). */
static int count_one(const conn_limit *l, pt_conn *c)
{
    char key[KEY_MAX];
    size_t klen = key_of(l, c, key);
    if (klen == 0)
        return PT_DECLINED;
    pt_shm_table *t = l->table;
    if (pt_shm_table_lock(t) != PT_OK)
        return PT_DECLINED;
    bool created;
    conn_count *all = pt_shm_table_put(t, key, klen, &created, unused, NULL);
    if (all == NULL) {
        pt_shm_table_unlock(t);
        pt_log(PT_LOG_WARN, "conn_limit \"%s\": no room in its zone: connection from %s not "
               "counted (raise memory)", l->name, c->peer_ip);
        return PT_DECLINED;
    }
    if (all->count >= l->max) {
        uint32_t n = all->count;
        pt_shm_table_unlock(t);
        pt_counter_add(l->refused, 1);
        pt_log(PT_LOG_INFO, "refused connection from %s on %s: conn_limit \"%s\": %u "
               "connections for \"%.*s\" (max %u)", c->peer_ip, c->listener->conf->address,
               l->name, n, (int) pt_min(klen, 64), key, l->max);
        return PT_ERROR;
    }
    size_t slen = slot_key(key, klen);
    conn_count *mine = pt_shm_table_put(t, key, slen, &created, unused, NULL);
    if (mine == NULL) {
        if (all->count == 0)
            pt_shm_table_del(t, all);
        pt_shm_table_unlock(t);
        pt_log(PT_LOG_WARN, "conn_limit \"%s\": no room in its zone: connection from %s not "
               "counted (raise memory)", l->name, c->peer_ip);
        return PT_DECLINED;
    }
    mine->slot = (uint16_t) (pt_cycle_cur->stats_slot + 1);
    all->count++;
    mine->count++;
    pt_shm_table_unlock(t);
    return PT_OK;
}

static void uncount_one(const conn_limit *l, pt_conn *c)
{
    char key[KEY_MAX];
    size_t klen = key_of(l, c, key);
    if (klen == 0)
        return;
    pt_shm_table *t = l->table;
    if (pt_shm_table_lock(t) != PT_OK)
        return;
    drop(t, pt_shm_table_get(t, key, klen));
    size_t slen = slot_key(key, klen);
    drop(t, pt_shm_table_get(t, key, slen));
    pt_shm_table_unlock(t);
}

static int connlimit_accept(pt_conn *c)
{
    const connlimit_main_conf *mc = pt_main_conf(pt_cycle_cur->conf, pt_connlimit_module);
    unsigned taken[64], ntaken = 0;
    for (unsigned i = 0; i < mc->nlimits && i < 64; i++) {
        const conn_limit *l = &mc->limits[i];
        if (!applies(l, c))
            continue;
        int rc = count_one(l, c);
        if (rc == PT_OK) {
            taken[ntaken++] = i;
            continue;
        }
        /* all or none: what was taken goes back, so closing owes nothing */
        while (ntaken)
            uncount_one(&mc->limits[taken[--ntaken]], c);
        return rc == PT_ERROR ? PT_ERROR : PT_DECLINED;
    }
    return ntaken ? PT_OK : PT_DECLINED;
}

static void connlimit_closed(pt_conn *c)
{
    const connlimit_main_conf *mc = pt_main_conf(pt_cycle_cur->conf, pt_connlimit_module);
    for (unsigned i = 0; i < mc->nlimits && i < 64; i++)
        if (applies(&mc->limits[i], c))
            uncount_one(&mc->limits[i], c);
}

/* ---- a worker gone (master) ---- */

typedef struct {
    pt_shm_table *t;
    uint16_t      slot;
    unsigned      keys;
    uint64_t      conns;
} gone_walk;

static void take_back(pt_shm_table *t, void *value, const void *key, size_t klen, void *arg)
{
    gone_walk *w = arg;
    conn_count *v = value;
    if (v->slot != w->slot || v->count == 0 || klen < 3)
        return;
    /* the aggregate entry: the same key without the slot suffix */
    conn_count *all = pt_shm_table_peek(t, key, klen - 3);
    if (all)
        all->count = all->count > v->count ? all->count - v->count : 0;
    w->keys++;
    w->conns += v->count;
    v->count = 0;
    /* entries at zero are dropped by a second walk (deleting another entry than the one
     * given is not allowed here) */
}

static void drop_zero(pt_shm_table *t, void *value, const void *key, size_t klen, void *arg)
{
    if (((conn_count *) value)->count == 0)
        pt_shm_table_del(t, value);
}

static void connlimit_worker_gone(pt_cycle *cy, int slot)
{
    const connlimit_main_conf *mc = pt_main_conf(cy->conf, pt_connlimit_module);
    for (unsigned i = 0; i < mc->nlimits; i++) {
        const conn_limit *l = &mc->limits[i];
        if (l->table == NULL || pt_shm_table_lock(l->table) != PT_OK)
            continue;
        gone_walk w = { l->table, (uint16_t) (slot + 1), 0, 0 };
        pt_shm_table_foreach(l->table, take_back, &w);
        if (w.keys)
            pt_shm_table_foreach(l->table, drop_zero, NULL);
        pt_shm_table_unlock(l->table);
        if (w.conns)
            pt_log(PT_LOG_NOTICE, "conn_limit \"%s\": %llu connections of a worker that is "
                   "gone taken off %u keys", l->name, (unsigned long long) w.conns, w.keys);
    }
}

static const pt_conf_key connlimit_keys[] = {
    { "conn_limits", PT_SCOPE_FILTERS, set_limits, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

pt_module pt_connlimit_module = {
    .name = "connlimit",
    .keys = connlimit_keys,
    .main_conf_size = sizeof(connlimit_main_conf),
    .accept = connlimit_accept,
    .conn_closed = connlimit_closed,
    .worker_gone = connlimit_worker_gone,
};
