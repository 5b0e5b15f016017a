/* Upstream groups in the configuration (a core key: any module may send requests to
 * them), and the shared-memory zone that holds every server's state for all workers,
 * kept across reloads for the same group name and server address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/tls.h"
#include "portico/upstream.h"

/* The balancing policies (server/balance_*.c). */
static const pt_balancer *const balancers[] = {
    &pt_balance_round_robin, &pt_balance_least_conn, &pt_balance_least_time,
    &pt_balance_hash, &pt_balance_ip_hash, &pt_balance_random_two, NULL
};

const pt_balancer *pt_balancer_find(const char *name)
{
    for (unsigned i = 0; balancers[i]; i++)
        if (strcmp(balancers[i]->name, name) == 0)
            return balancers[i];
    return NULL;
}

static int set_balance(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_upstream *up = base;
    const char *v = config_setting_get_string(s);
    if (v == NULL)
        return pt_conf_type_error(cx, s, "a string");
    up->balancer = pt_balancer_find(v);
    if (up->balancer == NULL)
        return pt_conf_error(cx, s, "\"%s\" is not a balancing method (round_robin, "
                             "least_conn, least_time, hash, ip_hash, random_two)", v);
    return PT_OK;
}

static int set_server_address(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                              void *base)
{
    pt_upstream_server *sv = base;
    const char *text = config_setting_get_string(s);
    if (text == NULL)
        return pt_conf_error(cx, s, "must be a string like \"127.0.0.1:9001\"");
    if (pt_conf_parse_addr(cx, s, text, true, &sv->addr, &sv->addrlen) != PT_OK)
        return PT_ERROR;
    sv->address = pt_pstrndup(cx->pool, text, strlen(text));
    sv->authority = (pt_str) { strlen(sv->address), sv->address };
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (sv->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) &sv->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(sv->addr_text, sizeof(sv->addr_text), "[%s]:%u", host, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *) &sv->addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(sv->addr_text, sizeof(sv->addr_text), "%s:%u", host, port);
    }
    return PT_OK;
}

static const pt_conf_key server_keys[] = {
    { "address", 0, set_server_address, 0, 0, 0, NULL },
    { "weight", 0, pt_conf_set_uint32, offsetof(pt_upstream_server, weight), 1, 1000, NULL },
    { "backup", 0, pt_conf_set_bool, offsetof(pt_upstream_server, backup), 0, 0, NULL },
    { "down", 0, pt_conf_set_bool, offsetof(pt_upstream_server, down), 0, 0, NULL },
    { "max_conns", 0, pt_conf_set_uint32, offsetof(pt_upstream_server, max_conns), 0, 1000000,
      NULL },
    { "slow_start_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream_server, slow_start_ms), 0,
      3600000, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_servers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_upstream *up = base;
    if (!config_setting_is_list(s) && !config_setting_is_array(s))
        return pt_conf_error(cx, s, "must be a list of servers: ( { address = \"...\"; } )");
    int n = config_setting_length(s);
    if (n < 1)
        return pt_conf_error(cx, s, "needs at least one server");
    if (n > PT_UPSTREAM_MAX_SERVERS)
        return pt_conf_error(cx, s, "at most %d servers per upstream", PT_UPSTREAM_MAX_SERVERS);
    up->servers = pt_pcalloc(cx->pool, (size_t) n * sizeof(*up->servers));
    if (up->servers == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        pt_upstream_server *sv = &up->servers[i];
        sv->index = (unsigned) i;
        sv->weight = 1;
        sv->line = (int) pt_conf_setting_line(cx, e);
        if (!config_setting_is_group(e))
            return pt_conf_error(cx, e, "a server must be a group: { address = \"host:port\"; }");
        if (pt_conf_parse_group(cx, e, server_keys, sv) != PT_OK)
            return PT_ERROR;
        if (sv->address == NULL)
            return pt_conf_error(cx, e, "server needs an address");
        if (sv->backup)
            up->has_backup = true;
    }
    up->nservers = (unsigned) n;
    if (up->has_backup) {
        int primaries = 0;
        for (int i = 0; i < n; i++)
            primaries += !up->servers[i].backup;
        if (primaries == 0)
            return pt_conf_error(cx, s, "every server is a backup: at least one must not be");
    }
    return PT_OK;
}

/* fail_on_status = [ 500, 502, 503, 504 ] */
static int set_fail_on_status(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                              void *base)
{
    pt_upstream *up = base;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of statuses such as [ 500, 502, 503 ]");
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        if (config_setting_type(e) != CONFIG_TYPE_INT)
            return pt_conf_type_error(cx, e, "an integer status");
        int v = config_setting_get_int(e);
        if (v < 400 || v > 599)
            return pt_conf_error(cx, e, "%d: a status from 400 to 599", v);
        up->fail_status[v >> 6] |= 1ull << (v & 63);
    }
    return PT_OK;
}

static const pt_conf_key upstream_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(pt_upstream, name), 1, 64, NULL },
    { "servers", 0, set_servers, 0, 0, 0, NULL },
    { "keepalive", 0, pt_conf_set_uint32, offsetof(pt_upstream, keepalive), 0, 100000, NULL },
    { "retries", 0, pt_conf_set_uint32, offsetof(pt_upstream, retries), 0,
      PT_UPSTREAM_MAX_SERVERS, NULL },
    { "connect_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, connect_timeout_ms),
      1, 86400000, NULL },
    { "read_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, read_timeout_ms),
      1, 86400000, NULL },
    { "write_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, write_timeout_ms),
      1, 86400000, NULL },
    { "idle_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, idle_timeout_ms),
      1, 86400000, NULL },
    { "tunnel_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, tunnel_timeout_ms),
      1, 86400000, NULL },
    { "buffer_size", 0, pt_conf_set_uint32, offsetof(pt_upstream, buffer_size),
      4096, 1048576, NULL },
    { "balance", 0, set_balance, 0, 0, 0, NULL },
    { "hash_key", 0, pt_hash_key_set, 0, 0, 0, NULL },
    { "max_fails", 0, pt_conf_set_uint32, offsetof(pt_upstream, max_fails), 0, 1000, NULL },
    { "fail_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, fail_timeout_ms),
      1, 86400000, NULL },
    { "fail_on_status", 0, set_fail_on_status, 0, 0, 0, NULL },
    { "queue_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, queue_timeout_ms),
      0, 86400000, NULL },
    { "health", 0, pt_health_conf_set, 0, 0, 0, NULL },
    { "tls", 0, pt_tls_client_conf_set, offsetof(pt_upstream, tls), 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_upstream_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_conf *conf = base;
    pt_upstream_list list = { NULL, 0 }, *l = &list;
    if (!config_setting_is_list(s))
        return pt_conf_error(cx, s, "must be a list of groups: ( { name = \"app\"; servers = (...); } )");
    /* appended after the groups already parsed (the main file's, then each included
     * file's): routes find theirs by name only once every group is in */
    int n = config_setting_length(s), old = (int) conf->nupstreams;
    l->ups = pt_pcalloc(cx->pool, (size_t) (old + n ? old + n : 1) * sizeof(*l->ups));
    if (l->ups == NULL)
        return pt_conf_error(cx, s, "out of memory");
    if (old)
        memcpy(l->ups, conf->upstreams, (size_t) old * sizeof(*l->ups));
    for (int j = 0; j < n; j++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) j);
        int i = old + j;
        pt_upstream *up = &l->ups[i];
        up->index = (unsigned) i;
        up->line = (int) pt_conf_setting_line(cx, e);
        up->keepalive = 32;
        up->retries = 1;
        up->connect_timeout_ms = 2000;
        up->read_timeout_ms = 30000;
        up->write_timeout_ms = 30000;
        up->idle_timeout_ms = 60000;
        up->tunnel_timeout_ms = 3600000;
        up->buffer_size = 65536;
        up->max_fails = 1;
        up->fail_timeout_ms = 10000;
        up->queue_timeout_ms = 1000;
        up->balancer = &pt_balance_round_robin;
        if (!config_setting_is_group(e))
            return pt_conf_error(cx, e, "an upstream must be a group: { name = ...; servers = (...); }");
        if (pt_conf_parse_group(cx, e, upstream_keys, up) != PT_OK)
            return PT_ERROR;
        if (up->name == NULL || up->name[0] == '\0')
            return pt_conf_error(cx, e, "upstream needs a name");
        if (up->servers == NULL)
            return pt_conf_error(cx, e, "upstream \"%s\" needs servers", up->name);
        if (up->hash_key.text && up->balancer != &pt_balance_hash)
            return pt_conf_error(cx, config_setting_get_member(e, "hash_key"),
                                 "hash_key is only used with balance = \"hash\"");
        if (up->balancer->conf && up->balancer->conf(cx, e, up) != PT_OK)
            return PT_ERROR;
        for (int d = 0; d < i; d++)
            if (strcmp(l->ups[d].name, up->name) == 0)
                return pt_conf_error(cx, e, "upstream \"%s\" is already defined at line %d%s",
                                     up->name, l->ups[d].line,
                                     d < old ? " (of the file that defines it first)" : "");
    }
    l->n = (unsigned) (old + n);
    conf->upstreams = l->ups;
    conf->nupstreams = l->n;
    return PT_OK;
}

pt_upstream *pt_upstream_find(const pt_conf *conf, const char *name)
{
    for (unsigned i = 0; i < conf->nupstreams; i++)
        if (strcmp(conf->upstreams[i].name, name) == 0)
            return &conf->upstreams[i];
    return NULL;
}

/* ---- shared server state ---- */

#define UPSTREAMS_ZONE     "upstreams"
#define UPSTREAMS_SLOTS    4096

static size_t key_of(const pt_upstream *up, const pt_upstream_server *sv, char *key)
{
    /* names are at most 64 bytes and addresses 63: always fits */
    size_t a = strlen(up->name), b = strlen(sv->addr_text);
    memcpy(key, up->name, a + 1);
    memcpy(key + a + 1, sv->addr_text, b + 1);
    return a + b + 2;
}

/* In the master, once the zone is mapped: every server of the configuration gets its
 * slot, the one it had if the zone was kept (same group name and address), else a free
 * one, else the one left unused longest; its configuration and administrative state go
 * into it. Slots the configuration no longer uses are marked removed. */
static int upstreams_zone_init(pt_shm_zone *z, bool reused)
{
    pt_conf *conf = z->data;
    pt_upstreams_zone *uz = z->addr;
    if (!reused || uz->magic != PT_UPSTREAMS_MAGIC || uz->nslots != UPSTREAMS_SLOTS
        || uz->slot_size != sizeof(pt_upstream_shared)) {
        /* a new mapping is zero already: clearing it would only touch every page */
        if (reused)
            memset(uz, 0, z->size);
        uz->magic = PT_UPSTREAMS_MAGIC;
        uz->nslots = UPSTREAMS_SLOTS;
        uz->slot_size = sizeof(pt_upstream_shared);
    }
    uint64_t gen = ++uz->generation;
    for (unsigned u = 0; u < conf->nupstreams; u++) {
        pt_upstream *up = &conf->upstreams[u];
        up->state_gen = &uz->state_gen;
        for (unsigned s = 0; s < up->nservers; s++) {
            pt_upstream_server *sv = &up->servers[s];
            char key[sizeof(((pt_upstream_shared *) 0)->key)];
            size_t klen = key_of(up, sv, key);
            pt_upstream_shared *found = NULL, *spare = NULL;
            /* slots are taken in order and never given back, only reused: the used ones
             * come first, and the scan stops at the first free one (the pages past it are
             * never touched) */
            for (uint32_t i = 0; i < uz->nslots; i++) {
                pt_upstream_shared *sl = &uz->slot[i];
                if (sl->key[0] == 0) {
                    spare = sl;
                    break;
                }
                if (memcmp(sl->key, key, klen) == 0) {
                    found = sl;
                    break;
                }
                /* when every slot is taken: the one unused longest */
                if (sl->generation < gen && (spare == NULL || sl->generation < spare->generation))
                    spare = sl;
            }
            if (found == NULL) {
                /* conf_check allows no more servers than slots: one is always left */
                found = spare;
                memset(found, 0, sizeof(*found));
                memcpy(found->key, key, klen);
            }
            found->generation = gen;
            sv->shared = found;
            pt_upstream_state_load(up, sv);
        }
    }
    for (uint32_t i = 0; i < uz->nslots && uz->slot[i].key[0]; i++)
        if (uz->slot[i].generation < gen)
            pt_upstream_state_removed(&uz->slot[i], &uz->state_gen);
    return PT_OK;
}

int pt_upstream_conf_check(pt_conf_ctx *cx)
{
    pt_conf *conf = cx->conf;
    unsigned total = 0;
    for (unsigned u = 0; u < conf->nupstreams; u++)
        total += conf->upstreams[u].nservers;
    if (total == 0)
        return PT_OK;
    if (total > UPSTREAMS_SLOTS)
        return pt_conf_error(cx, NULL, "%u upstream servers: at most %u", total, UPSTREAMS_SLOTS);
    size_t size = sizeof(pt_upstreams_zone) + UPSTREAMS_SLOTS * sizeof(pt_upstream_shared);
    return pt_shm_declare(cx, UPSTREAMS_ZONE, size, upstreams_zone_init, conf) ? PT_OK : PT_ERROR;
}
