/* Prefix trees (server/cidr_tree.c): edge cases (/0, /32, /128, IPv4-mapped IPv6, nested
 * ranges, duplicates), then random ranges checked against a scan of pt_cidr_match, and
 * 100,000 ranges with the depth every lookup can reach. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "portico/cidr.h"
#include "tap.h"

static pt_cidr cidr(const char *text)
{
    pt_cidr c;
    const char *err = NULL;
    if (!pt_cidr_parse(text, &c, &err)) {
        tap_diag("bad test range %s: %s", text, err);
        abort();
    }
    return c;
}

static int32_t find(const pt_cidr_tree *t, const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
    } else {
        tap_diag("bad test address %s", addr);
        abort();
    }
    return pt_cidr_tree_find(t, (struct sockaddr *) &ss);
}

static void add(pt_cidr_tree *t, const char *text, int32_t v)
{
    pt_cidr c = cidr(text);
    if (pt_cidr_tree_add(t, &c, v, NULL) != PT_OK) {
        tap_diag("add %s failed", text);
        abort();
    }
}

static void edges(void)
{
    pt_cidr_tree t;
    pt_cidr_tree_init(&t);
    tap_is_int(find(&t, "10.0.0.1"), -1, "empty tree: no IPv4 match");
    tap_is_int(find(&t, "::1"), -1, "empty tree: no IPv6 match");

    add(&t, "10.0.0.0/8", 1);
    add(&t, "10.1.0.0/16", 2);
    add(&t, "10.1.2.3/32", 3);
    tap_is_int(find(&t, "10.9.9.9"), 1, "/8 holds 10.9.9.9");
    tap_is_int(find(&t, "10.1.9.9"), 2, "the longer /16 wins inside it");
    tap_is_int(find(&t, "10.1.2.3"), 3, "/32 is exactly one address");
    tap_is_int(find(&t, "10.1.2.4"), 2, "its neighbour falls back to the /16");
    tap_is_int(find(&t, "11.0.0.0"), -1, "outside every range");
    tap_is_int(find(&t, "9.255.255.255"), -1, "just below the /8");
    tap_is_int(find(&t, "10.255.255.255"), 1, "the /8's last address");

    int32_t old = -1;
    pt_cidr c = cidr("10.1.0.0/16");
    tap_is_int(pt_cidr_tree_add(&t, &c, 7, &old), PT_DECLINED, "same prefix again: declined");
    tap_is_int(old, 2, "and the value already there is given back");
    tap_is_int(find(&t, "10.1.9.9"), 2, "the first value stays");

    /* IPv4-mapped IPv6: addresses and ranges */
    tap_is_int(find(&t, "::ffff:10.1.2.3"), 3, "an IPv4-mapped address is looked up as IPv4");
    tap_is_int(find(&t, "::ffff:11.1.2.3"), -1, "a mapped address outside stays outside");
    add(&t, "::ffff:192.168.0.0/112", 4);
    tap_is_int(find(&t, "192.168.7.7"), 4, "a ::ffff:a.b.c.d/n range is the IPv4 range a.b.c.d/(n-96)");
    tap_is_int(find(&t, "::ffff:192.168.7.7"), 4, "and holds the mapped form too");
    tap_is_int(find(&t, "::192.168.7.7"), -1, "an IPv4-compatible (not mapped) address is IPv6");

    /* /0 of one family is not the other's */
    add(&t, "::/0", 5);
    tap_is_int(find(&t, "2001:db8::1"), 5, "::/0 holds every IPv6 address");
    tap_is_int(find(&t, "1.2.3.4"), -1, "but no IPv4 address");
    tap_is_int(find(&t, "::ffff:1.2.3.4"), -1, "nor an IPv4-mapped one");
    add(&t, "0.0.0.0/0", 6);
    tap_is_int(find(&t, "1.2.3.4"), 6, "0.0.0.0/0 holds every IPv4 address");
    tap_is_int(find(&t, "255.255.255.255"), 6, "to the last one");
    tap_is_int(find(&t, "10.1.2.3"), 3, "longer ranges still win over /0");

    add(&t, "2001:db8::/32", 8);
    add(&t, "2001:db8::1/128", 9);
    add(&t, "2001:db8:0:1::/64", 10);
    tap_is_int(find(&t, "2001:db8::1"), 9, "/128 is exactly one address");
    tap_is_int(find(&t, "2001:db8::2"), 8, "its neighbour: the /32");
    tap_is_int(find(&t, "2001:db8:0:1:ffff:ffff:ffff:ffff"), 10, "the /64's last address");
    tap_is_int(find(&t, "2001:db9::"), 5, "outside the /32: ::/0");
    tap_is_int(find(&t, "::"), 5, "the all-zero address");

    /* a node that only joined two subtrees becomes a range of its own */
    pt_cidr_tree u;
    pt_cidr_tree_init(&u);
    add(&u, "172.16.0.0/16", 1);
    add(&u, "172.17.0.0/16", 2);       /* creates a joining 172.16.0.0/15 */
    uint32_t nodes = u.nnodes;
    add(&u, "172.16.0.0/15", 3);
    tap_is_int(u.nnodes, nodes, "the joining node takes the value (no new node)");
    tap_is_int(find(&u, "172.17.1.1"), 2, "children keep theirs");
    tap_is_int(u.ranges, 3, "three ranges");
    add(&u, "172.0.0.0/8", 4);
    add(&u, "172.16.128.0/17", 5);
    tap_is_int(find(&u, "172.16.200.1"), 5, "a range below a joined one");
    tap_is_int(find(&u, "172.18.0.1"), 4, "beside the /15: the /8");
    pt_cidr_tree_shrink(&u);
    tap_is_int(u.cap, u.nnodes, "shrink trims the array");
    tap_is_int(find(&u, "172.16.200.1"), 5, "lookups work after the shrink");
    pt_cidr_tree_free(&u);
    pt_cidr_tree_free(&t);
}

/* ---- random ranges against a scan ---- */

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void clear_host_bits(pt_cidr *c)
{
    unsigned max = c->family == AF_INET ? 32 : 128;
    for (unsigned i = c->bits; i < max; i++)
        c->addr[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
}

/* Ranges cluster (a few top bytes reused) so that they nest and share prefixes. */
static void random_range(pt_cidr *c)
{
    memset(c, 0, sizeof(*c));
    bool v6 = next_rand() % 3 == 0;
    c->family = v6 ? AF_INET6 : AF_INET;
    unsigned len = v6 ? 16 : 4;
    for (unsigned i = 0; i < len; i++)
        c->addr[i] = (uint8_t) (i < 2 ? next_rand() % 4 : next_rand());
    if (v6 && next_rand() % 8 == 0) {           /* some IPv4-mapped ranges */
        memset(c->addr, 0, 10);
        c->addr[10] = c->addr[11] = 0xff;
        c->addr[12] = (uint8_t) (next_rand() % 4);
        c->bits = (uint8_t) (96 + next_rand() % 33);
    } else {
        c->bits = (uint8_t) (next_rand() % ((len * 8) + 1));
    }
    clear_host_bits(c);
}

static void random_addr(struct sockaddr_storage *ss, const pt_cidr *near)
{
    memset(ss, 0, sizeof(*ss));
    uint8_t a[16];
    unsigned len = near->family == AF_INET ? 4 : 16;
    memcpy(a, near->addr, 16);
    /* keep the range's prefix most of the time, then random host bits */
    unsigned keep = next_rand() % 4 ? near->bits : (unsigned) (next_rand() % (near->bits + 1));
    for (unsigned i = keep; i < len * 8; i++)
        if (next_rand() & 1)
            a[i / 8] ^= (uint8_t) (0x80 >> (i % 8));
    if (near->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        if (next_rand() % 4 == 0) {             /* the same address, IPv4-mapped */
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
            memset(ss, 0, sizeof(*ss));
            s6->sin6_family = AF_INET6;
            s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&s6->sin6_addr.s6_addr[12], a, 4);
        }
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
    }
}

/* pt_cidr_match treats a ::ffff: range as IPv6 only; the tree treats it as IPv4, so the
 * scan compares with the range in the tree's form. */
static pt_cidr canonical(const pt_cidr *c)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    pt_cidr r = *c;
    if (c->family == AF_INET6 && c->bits >= 96 && memcmp(c->addr, mapped, 12) == 0) {
        memset(&r, 0, sizeof(r));
        r.family = AF_INET;
        r.bits = (uint8_t) (c->bits - 96);
        memcpy(r.addr, c->addr + 12, 4);
    }
    return r;
}

static void random_ranges(void)
{
    enum { N = 3000, Q = 30000 };
    pt_cidr *v = calloc(N, sizeof(*v)), *canon = calloc(N, sizeof(*canon));
    int32_t *val = calloc(N, sizeof(*val));
    pt_cidr_tree t;
    pt_cidr_tree_init(&t);
    unsigned added = 0, dups = 0;
    for (unsigned i = 0; i < N; i++) {
        random_range(&v[i]);
        canon[i] = canonical(&v[i]);
        int32_t old = -1;
        int rc = pt_cidr_tree_add(&t, &v[i], (int32_t) i, &old);
        if (rc == PT_OK) {
            val[i] = (int32_t) i;
            added++;
        } else if (rc == PT_DECLINED) {
            val[i] = old;            /* the first one of that prefix keeps its value */
            dups++;
        } else {
            val[i] = -2;
        }
    }
    tap_is_int(t.ranges, added, "random: %u ranges stored, %u duplicates declined", added, dups);
    tap_ok(t.nnodes <= 2 * added, "random: at most 2n nodes (%u for %u)", t.nnodes, added);

    unsigned bad = 0;
    for (unsigned q = 0; q < Q; q++) {
        struct sockaddr_storage ss;
        random_addr(&ss, &v[next_rand() % N]);
        int best = -1, bestbits = -1;
        bool mapped = ss.ss_family == AF_INET6
                      && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *) &ss)->sin6_addr);
        for (unsigned i = 0; i < N; i++) {
            /* a mapped address is an IPv4 address: IPv6 ranges (::/0, ::/13) do not hold it */
            if (val[i] < 0 || (mapped && canon[i].family == AF_INET6)
                || !pt_cidr_match(&canon[i], (struct sockaddr *) &ss))
                continue;
            if ((int) canon[i].bits > bestbits) {
                bestbits = canon[i].bits;
                best = val[i];
            }
        }
        int32_t got = pt_cidr_tree_find(&t, (struct sockaddr *) &ss);
        if (got != best && bad++ < 5)
            tap_diag("query %u: tree %d, scan %d", q, got, best);
    }
    tap_is_int(bad, 0, "random: %d lookups agree with a scan for the longest range", Q);
    pt_cidr_tree_free(&t);
    free(v);
    free(canon);
    free(val);
}

static unsigned depth(const pt_cidr_tree *t, int32_t i)
{
    if (i < 0)
        return 0;
    unsigned a = depth(t, t->nodes[i].child[0]), b = depth(t, t->nodes[i].child[1]);
    return 1 + (a > b ? a : b);
}

static void large(void)
{
    enum { N = 100000 };
    pt_cidr_tree t;
    pt_cidr_tree_init(&t);
    unsigned added = 0;
    for (unsigned i = 0; i < N; i++) {
        pt_cidr c;
        memset(&c, 0, sizeof(c));
        c.family = AF_INET;
        uint32_t a = (uint32_t) next_rand();
        memcpy(c.addr, &a, 4);
        c.bits = (uint8_t) (i % 10 ? 32 : 16 + next_rand() % 17);
        clear_host_bits(&c);
        if (pt_cidr_tree_add(&t, &c, 1, NULL) == PT_OK)
            added++;
    }
    for (unsigned i = 0; i < N / 4; i++) {
        pt_cidr c;
        memset(&c, 0, sizeof(c));
        c.family = AF_INET6;
        for (int j = 0; j < 16; j++)
            c.addr[j] = (uint8_t) next_rand();
        c.addr[0] = 0x20;
        c.bits = (uint8_t) (i % 2 ? 64 : 48 + next_rand() % 81);
        clear_host_bits(&c);
        if (pt_cidr_tree_add(&t, &c, 1, NULL) == PT_OK)
            added++;
    }
    pt_cidr_tree_shrink(&t);
    tap_ok(added > N, "large: %u ranges", added);
    unsigned d4 = depth(&t, t.root[0]), d6 = depth(&t, t.root[1]);
    tap_ok(d4 <= 33, "large: an IPv4 lookup visits at most 33 nodes (depth %u)", d4);
    tap_ok(d6 <= 129, "large: an IPv6 lookup visits at most 129 nodes (depth %u)", d6);
    tap_ok(t.nnodes < 2 * added, "large: %u nodes (%zu KiB)", t.nnodes,
           (size_t) t.nnodes * sizeof(pt_cidr_node) / 1024);
    pt_cidr_tree_free(&t);
}

int main(void)
{
    edges();
    random_ranges();
    large();
    return tap_done();
}
