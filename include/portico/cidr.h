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

#endif
