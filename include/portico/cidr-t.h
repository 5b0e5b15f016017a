/* Address ranges ("10.0.0.0/8", "2001:db8::/32", "127.0.0.1"): PROXY protocol trust
 * lists today, access lists later. */
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

#endif
