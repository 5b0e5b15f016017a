/* Longest-prefix lookup of an address among any number of ranges (access lists of
 * 100,000 entries and more).
 *
 * One path-compressed binary trie per family. A node is a prefix; its two children hold
 * the longer prefixes whose next bit is 0 or 1. Chains of single children are collapsed:
 * a node exists only where a range ends or where two subtrees part, so n ranges take at
 * most 2n - 1 nodes. A lookup walks down from the root, checking at each node that the
 * address still has the node's prefix, and remembers the last value it passed: at most 33
 * (IPv4) or 129 (IPv6) steps whatever n is, usually about log2(n). Sorted ranges with a
 * binary search would cost log2(n) comparisons too, but nested ranges ("10.0.0.0/8" and
 * "10.1.0.0/16" with another value) need the longest match, which the trie gives for free.
 *
 * Keys are 128 bits, left-aligned in two host-order words (hi, lo); an IPv4 address is
 * the top 32 bits of hi. IPv4-mapped IPv6 (::ffff:a.b.c.d) is handled as IPv4 on both
 * sides, so a client reaching a dual-stack socket matches the IPv4 ranges it belongs to. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "portico/cidr.h"

typedef struct {
    uint64_t hi, lo;
    unsigned bits;
    int      fam;          /* 0: IPv4, 1: IPv6 */
} cidr_key;

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline uint64_t load_be32(const uint8_t *p)
{
    return (uint64_t) p[0] << 24 | (uint64_t) p[1] << 16 | (uint64_t) p[2] << 8 | p[3];
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The key of an address of `bits` bits (the host bits are cleared by the caller). */
static void key_of(int family, const uint8_t *addr, unsigned bits, cidr_key *k)
{
    if (family == AF_INET6 && bits >= 96 && memcmp(addr, v4mapped_prefix, 12) == 0) {
        addr += 12;
        bits -= 96;
        family = AF_INET;
    }
    if (family == AF_INET) {
        k->hi = load_be32(addr) << 32;
        k->lo = 0;
        k->fam = 0;
    } else {
        k->hi = load_be64(addr);
        k->lo = load_be64(addr + 8);
        k->fam = 1;
    }
    k->bits = bits;
}

static inline unsigned bit_at(uint64_t hi, uint64_t lo, unsigned i)
{
    return i < 64 ? (unsigned) (hi >> (63 - i)) & 1 : (unsigned) (lo >> (127 - i)) & 1;
}

static inline uint64_t mask64(unsigned b)          /* the top b bits, b in 0..64 */
{
    return b == 0 ? 0 : ~(uint64_t) 0 << (64 - b);
}

/* Does (hi, lo) start with the node's prefix? */
static inline bool has_prefix(uint64_t hi, uint64_t lo, const pt_cidr_node *n)
{
    if (n->bits <= 64)
        return ((hi ^ n->hi) & mask64(n->bits)) == 0;
    return hi == n->hi && ((lo ^ n->lo) & mask64(n->bits - 64)) == 0;
}

/* Bits two keys have in common, from the top. */
static inline unsigned common_bits(uint64_t ahi, uint64_t alo, uint64_t bhi, uint64_t blo)
{
    if (ahi != bhi)
        return (unsigned) __builtin_clzll(ahi ^ bhi);
    if (alo != blo)
        return 64 + (unsigned) __builtin_clzll(alo ^ blo);
    return 128;
}

void pt_cidr_tree_init(pt_cidr_tree *t)
{
    memset(t, 0, sizeof(*t));
    t->root[0] = t->root[1] = -1;
}

static int reserve(pt_cidr_tree *t, uint32_t more)
{
    if (t->nnodes + more <= t->cap)
        return PT_OK;
    uint32_t cap = t->cap ? t->cap : 64;
    while (cap < t->nnodes + more) {
        if (cap > UINT32_MAX / 4)
            return PT_ERROR;
        cap *= 2;
    }
    pt_cidr_node *n = realloc(t->nodes, (size_t) cap * sizeof(*n));
    if (n == NULL)
        return PT_ERROR;
    t->nodes = n;
    t->cap = cap;
    return PT_OK;
}

static int32_t node_new(pt_cidr_tree *t, uint64_t hi, uint64_t lo, unsigned bits,
                        int32_t value)
{
    pt_cidr_node *n = &t->nodes[t->nnodes];
    n->hi = hi & mask64(bits > 64 ? 64 : bits);
    n->lo = bits > 64 ? lo & mask64(bits - 64) : 0;
    n->bits = bits;
    n->value = value;
    n->child[0] = n->child[1] = -1;
    return (int32_t) t->nnodes++;
}

int pt_cidr_tree_add(pt_cidr_tree *t, const pt_cidr *c, int32_t value, int32_t *old)
{
    cidr_key k;

    /* an insertion adds two nodes at most: reserving them first keeps every index and
     * the link being followed valid (no realloc in the middle) */
    if (value < 0 || reserve(t, 2) != PT_OK)
        return PT_ERROR;
    key_of(c->family, c->addr, c->bits, &k);

    int32_t *link = &t->root[k.fam];
    for (;;) {
        int32_t i = *link;
        if (i < 0) {
            *link = node_new(t, k.hi, k.lo, k.bits, value);
            t->ranges++;
            return PT_OK;
        }
        pt_cidr_node *n = &t->nodes[i];
        unsigned common = common_bits(k.hi, k.lo, n->hi, n->lo);
        common = pt_min(common, pt_min(k.bits, n->bits));
        if (common == n->bits) {
            if (k.bits == n->bits) {            /* this very prefix */
                if (n->value >= 0) {
                    if (old)
                        *old = n->value;
                    return PT_DECLINED;
                }
                n->value = value;               /* a joining node becomes a range */
                t->ranges++;
                return PT_OK;
            }
            link = &n->child[bit_at(k.hi, k.lo, n->bits)];
            continue;
        }
        /* the key parts from n's prefix before n's end: a node goes above n */
        int32_t up;
        if (common == k.bits) {
            up = node_new(t, k.hi, k.lo, k.bits, value);
        } else {
            up = node_new(t, k.hi, k.lo, common, -1);
            int32_t leaf = node_new(t, k.hi, k.lo, k.bits, value);
            t->nodes[up].child[bit_at(k.hi, k.lo, common)] = leaf;
        }
        n = &t->nodes[i];
        t->nodes[up].child[bit_at(n->hi, n->lo, common)] = i;
        *link = up;
        t->ranges++;
        return PT_OK;
    }
}

int32_t pt_cidr_tree_find_addr(const pt_cidr_tree *t, int family, const uint8_t *addr)
{
    cidr_key k;
    key_of(family, addr, family == AF_INET ? 32 : 128, &k);
    int32_t i = t->root[k.fam], best = -1;
    while (i >= 0) {
        const pt_cidr_node *n = &t->nodes[i];
        if (!has_prefix(k.hi, k.lo, n))
            break;
        if (n->value >= 0)
            best = n->value;
        if (n->bits >= k.bits)
            break;
        i = n->child[bit_at(k.hi, k.lo, n->bits)];
    }
    return best;
}

int32_t pt_cidr_tree_find(const pt_cidr_tree *t, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return pt_cidr_tree_find_addr(t, AF_INET,
                                      (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return pt_cidr_tree_find_addr(t, AF_INET6,
                                      ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr);
    return -1;
}

void pt_cidr_tree_shrink(pt_cidr_tree *t)
{
    if (t->nnodes == 0 || t->nnodes == t->cap)
        return;
    pt_cidr_node *n = realloc(t->nodes, (size_t) t->nnodes * sizeof(*n));
    if (n) {
        t->nodes = n;
        t->cap = t->nnodes;
    }
}

void pt_cidr_tree_free(pt_cidr_tree *t)
{
    free(t->nodes);
    pt_cidr_tree_init(t);
}
