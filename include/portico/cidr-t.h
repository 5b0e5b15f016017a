/* Address ranges ("10.0.0.0/8", "2001:db8::/32", "127.0.0.1"): PROXY protocol trust
 * lists, and access lists looked up by longest prefix in a tree. */
#ifndef PT_CIDR_T_H
#define PT_CIDR_T_H

#include <stdint.h>

typedef struct pt_cidr {
    uint8_t  family;       /* AF_INET or AF_INET6 */
    uint8_t  bits;         /* prefix length */
    uint8_t  addr[16];     /* network address, host bits zero (IPv4: first 4 bytes) */
} pt_cidr;

typedef struct pt_cidr_list {
    pt_cidr  *v;
    unsigned  n;
} pt_cidr_list;

/* A node of the prefix tree: a prefix (left-aligned in hi:lo, host bits zero), the value
 * stored for exactly that prefix (or none), and the subtrees for the next bit being 0 or
 * 1. Nodes that only join two subtrees hold no value. Indices, not pointers: the array
 * grows while the tree is built. */
typedef struct pt_cidr_node {
    uint64_t hi, lo;
    int32_t  child[2];     /* node index, -1: none */
    int32_t  value;        /* -1: no range ends here */
    uint32_t bits;
} pt_cidr_node;

/* Longest-prefix lookup over any number of ranges: a path-compressed binary trie per
 * family (at most 2n - 1 nodes for n ranges), so a lookup visits at most 33 (IPv4) or
 * 129 (IPv6) nodes however many ranges there are, and usually far fewer. IPv4-mapped
 * IPv6 addresses (::ffff:a.b.c.d) are IPv4 addresses, in ranges and in lookups. */
typedef struct pt_cidr_tree {
    pt_cidr_node *nodes;
    uint32_t      nnodes;
    uint32_t      cap;
    int32_t       root[2];     /* [0] IPv4, [1] IPv6; -1: empty */
    uint32_t      ranges;      /* distinct prefixes holding a value */
} pt_cidr_tree;

#endif
