/* hash and ip_hash: consistent hashing with a Maglev lookup table.
 *
 * Every server gets a permutation of the table's M slots from the hash of its address
 * (not its position in the list), and the servers take turns claiming their next free
 * slot, a server of weight w taking w turns for every max-weight turn, until the table is
 * full. A key's server is table[hash(key) mod M]: O(1). The table depends only on the
 * servers' addresses and weights, so removing one of n servers moves its keys and only
 * a few others (Maglev's near-minimal disruption: about 1/n of all keys in all).
 *
 * A server that is down (or tried, or full) is not taken out of the table: its keys
 * probe the next slots, which belong to servers in a pseudo-random order, so they spread
 * over the others while every other key stays where it was; when it comes back its keys
 * return to it. Primaries and backups have a table each; the backups' is used while no
 * primary is live. A key that comes out empty (no such cookie) goes round robin.
 *
 * ip_hash keys on the client's address (after a trusted PROXY protocol header): the first
 * three bytes of an IPv4 address (its /24), the whole of an IPv6 address (IPv4-mapped
 * ones count as IPv4). hash keys on hash_key, text with request variables. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/http.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/upstream.h"
#include "portico/var.h"

#define MAGLEV_MIN    65537u    /* table slots, a prime; more with many servers */
#define MAGLEV_PER    128u      /* at least this many slots per server */
#define EMPTY_SLOT    0xffffu
#define PROBE_LIMIT   64        /* slots probed past a dead one before scanning the set */

/* ------------------------------------------------------------------ hashing */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static inline uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static inline uint64_t mix64(uint64_t x)        /* splitmix64's finaliser */
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* ------------------------------------------------------------------ hash_key */

int pt_hash_key_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_upstream *up = base;
    const char *v = config_setting_get_string(s);
    if (v == NULL)
        return pt_conf_type_error(cx, s, "a string such as \"$host$uri\"");
    if (pt_var_compile(cx, s, v, &up->hash_key.var) != PT_OK)
        return PT_ERROR;
    bool vars = false;
    for (unsigned i = 0; i < up->hash_key.var.nparts; i++)
        vars = vars || up->hash_key.var.parts[i].kind != PT_VAR_LITERAL;
    if (!vars)
        return pt_conf_error(cx, s, "\"%s\" has no variable: every request would go to the "
                             "same server", v);
    up->hash_key.text = pt_pstrndup(cx->pool, v, strlen(v));
    return up->hash_key.text ? PT_OK : pt_conf_error(cx, s, "out of memory");
}

/* The key's value hashed part by part, without building it; *len: its length (0: the
 * key came out empty, the request goes round robin). */
static uint64_t key_hash(const pt_upstream *up, const pt_request *r, size_t *len)
{
    uint64_t h = FNV_OFFSET;
    size_t vlen = 0;
    for (unsigned i = 0; i < up->hash_key.var.nparts; i++) {
        const pt_var_part *p = &up->hash_key.var.parts[i];
        pt_str v = pt_var_value(p, (pt_request *) r, r->conn);
        h = fnv(h, v.data, v.len);
        if (p->kind != PT_VAR_LITERAL)
            vlen += v.len;
    }
    *len = vlen;
    return mix64(h);
}

static uint64_t ip_hash(const pt_request *r, size_t *len)
{
    const pt_conn *c = r->conn;
    uint64_t h = FNV_OFFSET;
    *len = 3;
    if (c->peer.sa.sa_family == AF_INET) {
        return mix64(fnv(h, &c->peer.in4.sin_addr, 3));
    } else if (c->peer.sa.sa_family == AF_INET6) {
        const unsigned char *a = c->peer.in6.sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&c->peer.in6.sin6_addr))
            return mix64(fnv(h, a + 12, 3));
        *len = 16;
        return mix64(fnv(h, a, 16));
    }
    *len = c->peer_ip_len;
    return mix64(fnv(h, c->peer_ip, c->peer_ip_len));
}

/* ------------------------------------------------------------------ the table */

typedef struct hash_state {
    uint32_t  m;
    uint16_t *table[2];     /* [0] primaries, [1] backups (NULL: none) */
    uint64_t  rr;           /* empty keys */
    bool      by_ip;
} hash_state;

static bool is_prime(uint32_t n)
{
    if (n < 2 || n % 2 == 0)
        return n == 2;
    for (uint32_t d = 3; (uint64_t) d * d <= n; d += 2)
        if (n % d == 0)
            return false;
    return true;
}

/* Fills t (m slots) from the servers with backup == backups. */
static int maglev_build(const pt_upstream *up, bool backups, uint16_t *t, uint32_t m)
{
    unsigned n = up->nservers;
    uint32_t *off = malloc(n * sizeof(uint32_t)), *skip = malloc(n * sizeof(uint32_t));
    uint64_t *next = calloc(n, sizeof(uint64_t)), *credit = calloc(n, sizeof(uint64_t));
    int rc = PT_ERROR;
    if (!off || !skip || !next || !credit)
        goto done;
    unsigned maxw = 0, members = 0;
    for (unsigned i = 0; i < n; i++) {
        const pt_upstream_server *sv = &up->servers[i];
        if (sv->backup != backups)
            continue;
        size_t al = strlen(sv->addr_text);
        off[i] = (uint32_t) (mix64(fnv(FNV_OFFSET, sv->addr_text, al)) % m);
        skip[i] = (uint32_t) (mix64(fnv(FNV_OFFSET ^ 0x5bd1e995ull, sv->addr_text, al)) % (m - 1)) + 1;
        maxw = pt_max(maxw, sv->weight);
        members++;
    }
    for (uint32_t j = 0; j < m; j++)
        t[j] = EMPTY_SLOT;
    if (members == 0) {
        rc = PT_OK;
        goto done;
    }
    for (uint32_t filled = 0; filled < m;) {
        for (unsigned i = 0; i < n && filled < m; i++) {
            if (up->servers[i].backup != backups)
                continue;
            credit[i] += up->servers[i].weight;
            while (credit[i] >= maxw && filled < m) {
                credit[i] -= maxw;
                uint32_t c;
                do {
                    c = (uint32_t) ((off[i] + next[i] * skip[i]) % m);
                    next[i]++;
                } while (t[c] != EMPTY_SLOT);
                t[c] = (uint16_t) i;
                filled++;
            }
        }
    }
    rc = PT_OK;
done:
    free(off);
    free(skip);
    free(next);
    free(credit);
    return rc;
}

static int hash_init_common(pt_upstream_rt *rt, hash_state *st, bool by_ip)
{
    const pt_upstream *up = rt->up;
    uint32_t m = pt_max(MAGLEV_MIN, up->nservers * MAGLEV_PER);
    while (!is_prime(m))
        m++;
    st->m = m;
    st->by_ip = by_ip;
    for (int b = 0; b < (up->has_backup ? 2 : 1); b++) {
        st->table[b] = malloc(m * sizeof(uint16_t));
        if (st->table[b] == NULL || maglev_build(up, b == 1, st->table[b], m) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static int hash_init(pt_upstream_rt *rt, void *state)
{
    return hash_init_common(rt, state, false);
}

static int iphash_init(pt_upstream_rt *rt, void *state)
{
    return hash_init_common(rt, state, true);
}

static void hash_exit(pt_upstream_rt *rt, void *state)
{
    hash_state *st = state;
    free(st->table[0]);
    free(st->table[1]);
}

static void hash_update(pt_upstream_rt *rt, void *state)
{
}

static bool usable(const pt_upstream_rt *rt, const pt_balance_ctx *ctx, unsigned s)
{
    return rt->eligible[s] && !pt_balance_skipped(ctx, s)
           && !pt_upstream_full(&rt->up->servers[s]);
}

static int hash_pick(pt_upstream_rt *rt, void *state, const pt_balance_ctx *ctx)
{
    hash_state *st = state;
    const uint16_t *t = st->table[rt->backup_set ? 1 : 0];
    if (rt->nset == 0 || t == NULL)
        return -1;
    size_t len = 0;
    uint64_t h = 0;
    if (ctx->r)
        h = st->by_ip ? ip_hash(ctx->r, &len) : key_hash(rt->up, ctx->r, &len);
    if (len == 0) {
        /* nothing to hash (no such cookie, no client request): round robin */
        for (unsigned k = 0; k < rt->nset; k++) {
            unsigned s = rt->set[st->rr++ % rt->nset];
            if (usable(rt, ctx, s))
                return (int) s;
        }
        return -1;
    }
    uint32_t slot = (uint32_t) (h % st->m);
    for (unsigned i = 0; i < PROBE_LIMIT; i++) {
        unsigned s = t[slot];
        if (usable(rt, ctx, s))
            return (int) s;
        if (++slot == st->m)
            slot = 0;
    }
    /* most servers are out: the set, from a place the key decides */
    for (unsigned k = 0; k < rt->nset; k++) {
        unsigned s = rt->set[(h + k) % rt->nset];
        if (usable(rt, ctx, s))
            return (int) s;
    }
    return -1;
}

/* Settings a consistent hash cannot honour. */
static int hash_conf_common(pt_conf_ctx *cx, config_setting_t *e, pt_upstream *up)
{
    config_setting_t *list = config_setting_get_member(e, "servers");
    for (unsigned i = 0; i < up->nservers; i++)
        if (up->servers[i].slow_start_ms) {
            config_setting_t *sv = list ? config_setting_get_elem(list, i) : NULL;
            return pt_conf_error(cx, sv ? config_setting_get_member(sv, "slow_start_ms") : e,
                                 "slow_start_ms cannot be used with balance = \"%s\" (a "
                                 "server's keys come back to it at once)", up->balancer->name);
        }
    return PT_OK;
}

static int hash_conf(pt_conf_ctx *cx, config_setting_t *e, pt_upstream *up)
{
    if (up->hash_key.text == NULL)
        return pt_conf_error(cx, config_setting_get_member(e, "balance"),
                             "balance = \"hash\" needs hash_key (such as \"$uri\")");
    return hash_conf_common(cx, e, up);
}

const pt_balancer pt_balance_hash = {
    .name = "hash",
    .rt_size = sizeof(hash_state),
    .conf = hash_conf,
    .worker_init = hash_init,
    .worker_exit = hash_exit,
    .update = hash_update,
    .pick = hash_pick,
};

const pt_balancer pt_balance_ip_hash = {
    .name = "ip_hash",
    .rt_size = sizeof(hash_state),
    .conf = hash_conf_common,
    .worker_init = iphash_init,
    .worker_exit = hash_exit,
    .update = hash_update,
    .pick = hash_pick,
};
