#ifndef PT_CIDR_H
#define PT_CIDR_H

#include <stdbool.h>
#include <sys/socket.h>

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/cidr-t.h"

/* "a.b.c.d[/n]" or "v6[/n]"; false with *err set when it is not one. A network with host
 * bits set ("10.1.2.3/8") is refused: it is almost always a typo. */
bool pt_cidr_parse(const char *text, pt_cidr *out, const char **err);
/* Does the address (sockaddr_in or sockaddr_in6) fall in the range? An IPv4-mapped IPv6
 * address matches IPv4 ranges. */
bool pt_cidr_match(const pt_cidr *c, const struct sockaddr *sa);
bool pt_cidr_list_match(const pt_cidr_list *l, const struct sockaddr *sa);
/* Config setter: an array of strings into a pt_cidr_list at base + k->offset. */
int  pt_conf_set_cidr_list(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base);

/* Prefix trees (server/cidr_tree.c). A tree is built once (at configuration load) and then
 * only read. */
void pt_cidr_tree_init(pt_cidr_tree *t);
/* Stores value (>= 0) for the range. PT_OK; PT_DECLINED when the same prefix is already
 * there (*old gets its value, nothing changes); PT_ERROR when out of memory. A range in
 * ::ffff:0:0/96 is stored as the IPv4 range it is. */
int  pt_cidr_tree_add(pt_cidr_tree *t, const pt_cidr *c, int32_t value, int32_t *old);
/* The value of the longest range holding the address, -1 if none does. */
int32_t pt_cidr_tree_find(const pt_cidr_tree *t, const struct sockaddr *sa);
/* The same for a raw address: family AF_INET (4 bytes) or AF_INET6 (16 bytes). */
int32_t pt_cidr_tree_find_addr(const pt_cidr_tree *t, int family, const uint8_t *addr);
/* Trims the node array to its size (after the last add). */
void pt_cidr_tree_shrink(pt_cidr_tree *t);
void pt_cidr_tree_free(pt_cidr_tree *t);

#endif
