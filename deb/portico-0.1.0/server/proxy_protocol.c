/* PROXY protocol header parsing (the v1 text line and the v2 binary block).
 *
 * Strict on purpose: the header decides which address portico logs and forwards as the
 * client's, so anything ambiguous (extra spaces, leading zeros in a v1 port, a v2 length
 * that does not cover its address block or TLVs) is refused rather than guessed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "portico/proxy_protocol.h"

static const uint8_t v2_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static int fail(const char **err, const char *why)
{
    *err = why;
    return PT_ERROR;
}

/* ---- version 1: "PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n" ---- */

/* The next space-terminated field (or the last, ending at end). */
static bool v1_field(const char **pp, const char *end, char sep, const char **f, size_t *flen)
{
    const char *p = *pp, *q = p;
    while (q < end && *q != sep)
        q++;
    if (q == end || q == p)
        return false;
    *f = p;
    *flen = (size_t) (q - p);
    *pp = q + 1;
    return true;
}

static bool v1_port(const char *f, size_t len, uint16_t *port)
{
    unsigned v = 0;
    if (len == 0 || len > 5 || (len > 1 && f[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (unsigned) (f[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t) v;
    return true;
}

static bool v1_addr(int family, const char *f, size_t len, struct sockaddr_storage *ss,
                    uint16_t port)
{
    char buf[INET6_ADDRSTRLEN];
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, f, len);
    buf[len] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return inet_pton(AF_INET, buf, &s4->sin_addr) == 1;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    return inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1;
}

static int parse_v1(const uint8_t *p, size_t n, pt_proxy_header *h, const char **err)
{
    const char *s = (const char *) p;
    size_t max = n < PT_PROXY_V1_MAX ? n : PT_PROXY_V1_MAX;
    const char *lf = memchr(s, '\n', max);

    if (lf == NULL)
        return n < PT_PROXY_V1_MAX ? PT_AGAIN : fail(err, "PROXY v1 line longer than 107 bytes");
    if (lf == s || lf[-1] != '\r')
        return fail(err, "PROXY v1 line not ended by CRLF");
    const char *end = lf - 1;            /* at the CR */
    h->version = 1;
    h->len = (size_t) (lf + 1 - s);
    const char *q = s + 6, *f;
    size_t flen;

    if (end - q >= 7 && memcmp(q, "UNKNOWN", 7) == 0) {
        h->local = true;                 /* the rest of the line is to be ignored */
        return PT_OK;
    }
    int family;
    if (!v1_field(&q, end, ' ', &f, &flen))
        return fail(err, "PROXY v1: missing protocol");
    if (flen == 4 && memcmp(f, "TCP4", 4) == 0)
        family = AF_INET;
    else if (flen == 4 && memcmp(f, "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return fail(err, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");

    const char *src, *dst, *sp, *dp;
    size_t srcl, dstl, spl, dpl;
    uint16_t sport, dport;
    if (!v1_field(&q, end, ' ', &src, &srcl) || !v1_field(&q, end, ' ', &dst, &dstl)
        || !v1_field(&q, end, ' ', &sp, &spl))
        return fail(err, "PROXY v1: missing address or port");
    dp = q;
    dpl = (size_t) (end - q);
    if (memchr(dp, ' ', dpl))
        return fail(err, "PROXY v1: extra fields");
    if (!v1_port(sp, spl, &sport) || !v1_port(dp, dpl, &dport))
        return fail(err, "PROXY v1: invalid port");
    if (!v1_addr(family, src, srcl, &h->src, sport) || !v1_addr(family, dst, dstl, &h->dst, dport))
        return fail(err, family == AF_INET ? "PROXY v1: invalid IPv4 address"
                                           : "PROXY v1: invalid IPv6 address");
    h->local = false;
    return PT_OK;
}

/* ---- version 2: signature, version/command, family/transport, length, addresses, TLVs ---- */

static int parse_v2(const uint8_t *p, size_t n, pt_proxy_header *h, const char **err)
{
    if (n < 16)
        return PT_AGAIN;
    unsigned ver = p[12] >> 4, cmd = p[12] & 0x0f;
    unsigned fam = p[13] >> 4, proto = p[13] & 0x0f;
    size_t len = ((size_t) p[14] << 8) | p[15];

    if (ver != 2)
        return fail(err, "PROXY v2: unsupported version");
    if (cmd > 1)
        return fail(err, "PROXY v2: unknown command");
    if (16 + len > PT_PROXY_V2_MAX)
        return fail(err, "PROXY v2 header longer than 2064 bytes");
    if (n < 16 + len)
        return PT_AGAIN;
    h->version = 2;
    h->len = 16 + len;

    size_t alen;
    switch (fam) {
    case 0: alen = 0; break;
    case 1: alen = 12; break;
    case 2: alen = 36; break;
    case 3: alen = 216; break;
    default:
        return fail(err, "PROXY v2: unknown address family");
    }
    if (len < alen)
        return fail(err, "PROXY v2: length too short for its addresses");
    /* TLVs must tile the rest exactly */
    for (size_t off = 16 + alen; off < 16 + len;) {
        if (16 + len - off < 3)
            return fail(err, "PROXY v2: truncated TLV");
        size_t tlen = ((size_t) p[off + 1] << 8) | p[off + 2];
        if (off + 3 + tlen > 16 + len)
            return fail(err, "PROXY v2: TLV longer than the header");
        off += 3 + tlen;
    }
    if (cmd == 0) {                       /* LOCAL: a health check of the sender itself */
        h->local = true;
        return PT_OK;
    }
    if (fam == 0 || fam == 3) {           /* no IP address to take */
        h->local = true;
        return PT_OK;
    }
    if (proto != 1)
        return fail(err, "PROXY v2: transport is not STREAM");
    const uint8_t *a = p + 16;
    memset(&h->src, 0, sizeof(h->src));
    memset(&h->dst, 0, sizeof(h->dst));
    if (fam == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *) &h->src, *d = (struct sockaddr_in *) &h->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *) &h->src, *d = (struct sockaddr_in6 *) &h->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
    }
    h->local = false;
    return PT_OK;
}

int pt_proxy_header_parse(const uint8_t *p, size_t n, pt_proxy_header *h, const char **err)
{
    static const char v1_sig[6] = "PROXY ";
    memset(h, 0, sizeof(*h));
    *err = NULL;
    if (n == 0)
        return PT_AGAIN;
    if (p[0] == 'P') {
        size_t m = n < 6 ? n : 6;
        if (memcmp(p, v1_sig, m) != 0)
            return fail(err, "no PROXY protocol header");
        return n < 6 ? PT_AGAIN : parse_v1(p, n, h, err);
    }
    size_t m = n < 12 ? n : 12;
    if (memcmp(p, v2_sig, m) != 0)
        return fail(err, "no PROXY protocol header");
    return n < 12 ? PT_AGAIN : parse_v2(p, n, h, err);
}
