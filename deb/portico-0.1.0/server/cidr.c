/* Address ranges: parsing ("10.0.0.0/8") and matching a peer address against them. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/pool.h"

bool pt_cidr_parse(const char *text, pt_cidr *out, const char **err)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t) (slash - text) : strlen(text);
    unsigned max, bits;

    memset(out, 0, sizeof(*out));
    if (alen == 0 || alen >= sizeof(addr)) {
        *err = "not an IPv4 or IPv6 address";
        return false;
    }
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        *err = "not an IPv4 or IPv6 address";
        return false;
    }
    bits = max;
    if (slash) {
        const char *p = slash + 1;
        if (*p == '\0') {
            *err = "missing prefix length after '/'";
            return false;
        }
        bits = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || bits > max) {
                *err = "invalid prefix length";
                return false;
            }
            bits = bits * 10 + (unsigned) (*p - '0');
        }
        if (bits > max) {
            *err = max == 32 ? "prefix length over 32" : "prefix length over 128";
            return false;
        }
    }
    out->bits = (uint8_t) bits;
    for (unsigned i = bits; i < max; i++) {
        if (out->addr[i / 8] & (0x80 >> (i % 8))) {
            *err = "host bits set after the prefix (write the network address)";
            return false;
        }
    }
    return true;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t) (0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool pt_cidr_match(const pt_cidr *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) sa;
        return c->family == AF_INET
               && prefix_eq(c->addr, (const uint8_t *) &s4->sin_addr, c->bits);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) sa;
        const uint8_t *a = s6->sin6_addr.s6_addr;
        if (c->family == AF_INET6)
            return prefix_eq(c->addr, a, c->bits);
        return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && prefix_eq(c->addr, a + 12, c->bits);
    }
    return false;
}

bool pt_cidr_list_match(const pt_cidr_list *l, const struct sockaddr *sa)
{
    for (unsigned i = 0; i < l->n; i++)
        if (pt_cidr_match(&l->v[i], sa))
            return true;
    return false;
}

int pt_conf_set_cidr_list(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                          void *base)
{
    pt_cidr_list *l = (pt_cidr_list *) ((char *) base + k->offset);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of addresses [ \"10.0.0.0/8\", ... ]");
    unsigned n = (unsigned) config_setting_length(s);
    l->v = pt_pcalloc(cx->pool, (n ? n : 1) * sizeof(pt_cidr));
    if (l->v == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        const char *text = config_setting_get_string(e), *err = NULL;
        if (text == NULL)
            return pt_conf_type_error(cx, e, "a string like \"10.0.0.0/8\"");
        if (!pt_cidr_parse(text, &l->v[i], &err))
            return pt_conf_error(cx, e, "\"%s\": %s", text, err);
    }
    l->n = n;
    return PT_OK;
}
