/* The PROXY protocol (versions 1 and 2), as a load balancer in front of portico sends it
 * at the start of a connection to pass on the client's address. A pure parser: bytes in,
 * a result out; the accept stage in server/accept.c does the I/O. */
#ifndef PT_PROXY_PROTOCOL_H
#define PT_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "portico/core.h"

#define PT_PROXY_V1_MAX  107            /* the longest v1 line, CRLF included */
#define PT_PROXY_V2_MAX  (16 + 2048)    /* a longer v2 header (TLVs) is refused */

typedef struct pt_proxy_header {
    unsigned                version;    /* 1 or 2 */
    bool                    local;      /* LOCAL, UNKNOWN or an unspecified/unix family: the
                                         * connection's own addresses stand */
    struct sockaddr_storage src;        /* the client, as the sender saw it */
    struct sockaddr_storage dst;
    size_t                  len;        /* bytes the header takes on the wire */
} pt_proxy_header;

/* Parses the header at the start of p[0..n). PT_OK: complete (h filled, h->len bytes
 * consumed); PT_AGAIN: a valid beginning, more bytes needed; PT_ERROR: not a valid
 * header (*err says why, for the log). Never reads past n. */
int pt_proxy_header_parse(const uint8_t *p, size_t n, pt_proxy_header *h, const char **err);

#endif
