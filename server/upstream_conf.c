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

static const pt_balancer *const balancers[] = { &pt_balance_round_robin, NULL };

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
        return pt_conf_error(cx, s, "\"%s\" is not a balancing method (round_robin)", v);
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
    }
    up->nservers = (unsigned) n;
    return PT_OK;
}

static const pt_conf_key upstream_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(pt_upstream, name), 0, 0, NULL },
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
    { "tls", 0, pt_tls_client_conf_set, offsetof(pt_upstream, tls), 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_upstream_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_conf *conf = base;
    pt_upstream_list list = { NULL, 0 }, *l = &list;
    if (!config_setting_is_list(s))
        return pt_conf_error(cx, s, "must be a list of groups: ( { name = \"app\"; servers = (...); } )");
    int n = config_setting_length(s);
    l->ups = pt_pcalloc(cx->pool, (size_t) (n ? n : 1) * sizeof(*l->ups));
    if (l->ups == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
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
        up->balancer = &pt_balance_round_robin;
        if (!config_setting_is_group(e))
            return pt_conf_error(cx, e, "an upstream must be a group: { name = ...; servers = (...); }");
        if (pt_conf_parse_group(cx, e, upstream_keys, up) != PT_OK)
            return PT_ERROR;
        if (up->name == NULL || up->name[0] == '\0')
            return pt_conf_error(cx, e, "upstream needs a name");
        if (up->servers == NULL)
            return pt_conf_error(cx, e, "upstream \"%s\" needs servers", up->name);
        for (int j = 0; j < i; j++)
            if (strcmp(l->ups[j].name, up->name) == 0)
                return pt_conf_error(cx, e, "upstream \"%s\" is already defined at line %d",
                                     up->name, l->ups[j].line);
    }
    l->n = (unsigned) n;
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
#define UPSTREAMS_MAGIC    0x7074757073743031ull      /* "ptupst01" */

typedef struct upstreams_zone {
    uint64_t           magic;
    uint64_t           generation;       /* bumped by every configuration mapped */
    uint32_t           nslots;
    pt_upstream_shared slot[];
} upstreams_zone;

static size_t key_of(const pt_upstream *up, const pt_upstream_server *sv, char *key)
{
    size_t a = strlen(up->name), b = strlen(sv->addr_text);
    if (a + b + 2 > sizeof(((pt_upstream_shared *) 0)->key))
        return 0;
    memcpy(key, up->name, a + 1);
    memcpy(key + a + 1, sv->addr_text, b + 1);
    return a + b + 2;
}

/* In the master, once the zone is mapped: every server of the configuration gets its
 * slot, the one it had if the zone was kept (same group name and address), else a free
 * one, else the one left unused longest. */
static int upstreams_zone_init(pt_shm_zone *z, bool reused)
{
    pt_conf *conf = z->data;
    upstreams_zone *uz = z->addr;
    if (!reused || uz->magic != UPSTREAMS_MAGIC || uz->nslots != UPSTREAMS_SLOTS) {
        /* a new mapping is zero already: clearing it would only touch every page */
        if (reused)
            memset(uz, 0, z->size);
        uz->magic = UPSTREAMS_MAGIC;
        uz->nslots = UPSTREAMS_SLOTS;
    }
    uint64_t gen = ++uz->generation;
    for (unsigned u = 0; u < conf->nupstreams; u++) {
        pt_upstream *up = &conf->upstreams[u];
        for (unsigned s = 0; s < up->nservers; s++) {
            pt_upstream_server *sv = &up->servers[s];
            char key[sizeof(((pt_upstream_shared *) 0)->key)];
            size_t klen = key_of(up, sv, key);
            pt_upstream_shared *found = NULL, *spare = NULL;
            /* slots are taken in order and never given back, only reused: the used ones
             * come first, and the scan stops at the first free one (the pages past it are
             * never touched) */
            for (uint32_t i = 0; i < uz->nslots && klen; i++) {
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
            if (found == NULL && spare) {
                found = spare;
                memset(found, 0, sizeof(*found));
                memcpy(found->key, key, klen);
            }
            if (found)
                found->generation = gen;
            sv->shared = found;         /* NULL only with an over-long name: not shared */
        }
    }
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
    size_t size = sizeof(upstreams_zone) + UPSTREAMS_SLOTS * sizeof(pt_upstream_shared);
    return pt_shm_declare(cx, UPSTREAMS_ZONE, size, upstreams_zone_init, conf) ? PT_OK : PT_ERROR;
}
