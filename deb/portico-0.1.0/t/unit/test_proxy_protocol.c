/* PROXY protocol v1/v2 parsing and address ranges. Every valid header is also fed in
 * every prefix: each prefix must be PT_AGAIN (a valid beginning), never OK or ERROR. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "portico/cidr.h"
#include "portico/proxy_protocol.h"
#include "tap.h"

static const uint8_t SIG[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static char *addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *) ss;
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
        port = ntohs(s->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *) ss;
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
        port = ntohs(s->sin6_port);
    }
    snprintf(buf, len, "%s/%u", a, port);
    return buf;
}

/* A valid header followed by `tail` extra bytes that must not be consumed. */
static void valid(const uint8_t *p, size_t n, size_t hlen, bool local, const char *src,
                  const char *dst, const char *what)
{
    pt_proxy_header h;
    const char *err;
    char b1[80], b2[80];
    int rc = pt_proxy_header_parse(p, n, &h, &err);
    tap_ok(rc == PT_OK, "%s: parsed%s%s", what, err ? ": " : "", err ? err : "");
    tap_is_int(h.len, hlen, "%s: length", what);
    tap_is_int(h.local, local, "%s: local", what);
    if (!local) {
        tap_is_str(addr_text(&h.src, b1, sizeof(b1)), src, "%s: source", what);
        tap_is_str(addr_text(&h.dst, b2, sizeof(b2)), dst, "%s: destination", what);
    }
    bool prefixes = true;
    for (size_t i = 0; i < hlen; i++)
        if (pt_proxy_header_parse(p, i, &h, &err) != PT_AGAIN)
            prefixes = false;
    tap_ok(prefixes, "%s: every shorter prefix asks for more", what);
}

static void invalid(const uint8_t *p, size_t n, const char *why, const char *what)
{
    pt_proxy_header h;
    const char *err = NULL;
    int rc = pt_proxy_header_parse(p, n, &h, &err);
    tap_ok(rc == PT_ERROR, "%s: refused", what);
    tap_is_str(err, why, "%s: why", what);
}

#define V1(s) (const uint8_t *) (s), sizeof(s) - 1

static size_t v2(uint8_t *b, uint8_t vercmd, uint8_t fam, const uint8_t *body, size_t blen)
{
    memcpy(b, SIG, 12);
    b[12] = vercmd;
    b[13] = fam;
    b[14] = (uint8_t) (blen >> 8);
    b[15] = (uint8_t) blen;
    if (blen)
        memcpy(b + 16, body, blen);
    return 16 + blen;
}

int main(void)
{
    uint8_t b[4200];
    size_t n;

    /* --- v1 --- */
    valid(V1("PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET / HTTP/1.1\r\n"), 45, false,
          "192.0.2.1/51000", "198.51.100.2/443", "v1 TCP4, request after it");
    valid(V1("PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n"), 44, false,
          "2001:db8::1/65535", "2001:db8::2/0", "v1 TCP6");
    valid(V1("PROXY UNKNOWN\r\n"), 15, true, NULL, NULL, "v1 UNKNOWN");
    valid(V1("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), 35, true, NULL, NULL,
          "v1 UNKNOWN with addresses (ignored)");
    invalid(V1("PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\n"), "PROXY v1 line not ended by CRLF",
            "v1 bare LF");
    invalid(V1("PROXY TCP4 192.0.2.1 198.51.100.2 051000 443\r\n"), "PROXY v1: invalid port",
            "v1 port with a leading zero");
    invalid(V1("PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n"), "PROXY v1: invalid port",
            "v1 port over 65535");
    invalid(V1("PROXY TCP4 192.0.2.1  198.51.100.2 1 443\r\n"), "PROXY v1: missing address or port",
            "v1 double space");
    invalid(V1("PROXY TCP4 192.0.2.1 198.51.100.2 1 443 9\r\n"), "PROXY v1: extra fields",
            "v1 extra field");
    invalid(V1("PROXY TCP4 2001:db8::1 198.51.100.2 1 443\r\n"), "PROXY v1: invalid IPv4 address",
            "v1 TCP4 with an IPv6 address");
    invalid(V1("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"), "PROXY v1: invalid IPv6 address",
            "v1 TCP6 with an IPv4 address");
    invalid(V1("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n"),
            "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN", "v1 UDP4");
    invalid(V1("PROXY TCP4 192.0.2.1\r\n"), "PROXY v1: missing address or port", "v1 truncated fields");
    memset(b, 'a', sizeof(b));
    memcpy(b, "PROXY UNKNOWN ", 14);
    invalid(b, 200, "PROXY v1 line longer than 107 bytes", "v1 line over 107 bytes");
    {
        pt_proxy_header h;
        const char *err;
        tap_is_int(pt_proxy_header_parse(b, 100, &h, &err), PT_AGAIN, "v1: 100 bytes, no CRLF yet: more");
    }
    invalid(V1("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "no PROXY protocol header", "an HTTP request");
    invalid(V1("PROXZ TCP4"), "no PROXY protocol header", "PROXZ");
    invalid(V1("\x16\x03\x01\x02\x00"), "no PROXY protocol header", "a TLS ClientHello");

    /* --- v2 --- */
    uint8_t a4[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xc7, 0x38, 0x01, 0xbb };
    n = v2(b, 0x21, 0x11, a4, 12);
    memcpy(b + n, "GET", 3);
    valid(b, n + 3, 28, false, "192.0.2.1/51000", "198.51.100.2/443", "v2 PROXY TCP4");
    uint8_t a6[36] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1, 0x20, 0x01, 0x0d, 0xb8, [31] = 2,
                       0x00, 0x50, 0x1f, 0x90 };
    n = v2(b, 0x21, 0x21, a6, 36);
    valid(b, n, 52, false, "2001:db8::1/80", "2001:db8::2/8080", "v2 PROXY TCP6");
    n = v2(b, 0x20, 0x00, NULL, 0);
    valid(b, n, 16, true, NULL, NULL, "v2 LOCAL");
    n = v2(b, 0x20, 0x11, a4, 12);
    valid(b, n, 28, true, NULL, NULL, "v2 LOCAL with addresses (ignored)");
    n = v2(b, 0x21, 0x00, NULL, 0);
    valid(b, n, 16, true, NULL, NULL, "v2 PROXY with an unspecified family");
    uint8_t unix_a[216] = { '/', 't', 'm', 'p' };
    n = v2(b, 0x21, 0x31, unix_a, 216);
    valid(b, n, 232, true, NULL, NULL, "v2 PROXY over unix sockets (no IP: the peer's stands)");
    uint8_t tl[12 + 3 + 4 + 3] = { 192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2,
                                   0x04, 0x00, 0x04, 'a', 'b', 'c', 'd', 0x03, 0x00, 0x00 };
    n = v2(b, 0x21, 0x11, tl, sizeof(tl));
    valid(b, n, 16 + sizeof(tl), false, "192.0.2.1/1", "198.51.100.2/2", "v2 TCP4 with TLVs");

    n = v2(b, 0x11, 0x11, a4, 12);
    invalid(b, n, "PROXY v2: unsupported version", "v2 header with version 1");
    n = v2(b, 0x22, 0x11, a4, 12);
    invalid(b, n, "PROXY v2: unknown command", "v2 command 2");
    n = v2(b, 0x21, 0x41, a4, 12);
    invalid(b, n, "PROXY v2: unknown address family", "v2 family 4");
    n = v2(b, 0x21, 0x12, a4, 12);
    invalid(b, n, "PROXY v2: transport is not STREAM", "v2 DGRAM");
    n = v2(b, 0x21, 0x21, a4, 12);
    invalid(b, n, "PROXY v2: length too short for its addresses", "v2 TCP6 with 12 address bytes");
    uint8_t bad_tlv[12 + 3 + 1] = { 192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2, 0x04, 0x00, 0x05, 'a' };
    n = v2(b, 0x21, 0x11, bad_tlv, sizeof(bad_tlv));
    invalid(b, n, "PROXY v2: TLV longer than the header", "v2 TLV past the end");
    uint8_t cut_tlv[12 + 2] = { 192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2, 0x04, 0x00 };
    n = v2(b, 0x21, 0x11, cut_tlv, sizeof(cut_tlv));
    invalid(b, n, "PROXY v2: truncated TLV", "v2 truncated TLV");
    memcpy(b, SIG, 12);
    b[12] = 0x21; b[13] = 0x11; b[14] = 0x10; b[15] = 0x00;    /* 4096 bytes announced */
    invalid(b, 16, "PROXY v2 header longer than 2064 bytes", "v2 announcing 4096 bytes");
    memcpy(b, SIG, 12);
    b[5] = 0x0c;
    invalid(b, 16, "no PROXY protocol header", "v2 signature with one byte off");
    {
        pt_proxy_header h;
        const char *err;
        n = v2(b, 0x21, 0x11, a4, 12);
        tap_is_int(pt_proxy_header_parse(b, n - 1, &h, &err), PT_AGAIN, "v2 one byte short: more");
    }

    /* --- address ranges --- */
    pt_cidr c;
    const char *err;
    struct sockaddr_in s4 = { .sin_family = AF_INET };
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
    tap_ok(pt_cidr_parse("10.0.0.0/8", &c, &err), "cidr 10.0.0.0/8");
    inet_pton(AF_INET, "10.200.3.4", &s4.sin_addr);
    tap_ok(pt_cidr_match(&c, (struct sockaddr *) &s4), "10.200.3.4 in 10.0.0.0/8");
    inet_pton(AF_INET, "11.0.0.1", &s4.sin_addr);
    tap_ok(!pt_cidr_match(&c, (struct sockaddr *) &s4), "11.0.0.1 not in 10.0.0.0/8");
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
    tap_ok(pt_cidr_match(&c, (struct sockaddr *) &s6), "IPv4-mapped ::ffff:10.1.2.3 in 10.0.0.0/8");
    tap_ok(pt_cidr_parse("2001:db8::/32", &c, &err), "cidr 2001:db8::/32");
    inet_pton(AF_INET6, "2001:db8:ffff::1", &s6.sin6_addr);
    tap_ok(pt_cidr_match(&c, (struct sockaddr *) &s6), "2001:db8:ffff::1 in 2001:db8::/32");
    inet_pton(AF_INET6, "2001:db9::1", &s6.sin6_addr);
    tap_ok(!pt_cidr_match(&c, (struct sockaddr *) &s6), "2001:db9::1 not in it");
    tap_ok(pt_cidr_parse("192.0.2.7", &c, &err) && c.bits == 32, "a lone address is a /32");
    tap_ok(pt_cidr_parse("10.1.0.0/15", &c, &err) == false
           && strcmp(err, "host bits set after the prefix (write the network address)") == 0,
           "10.1.0.0/15: host bits set, refused");
    tap_ok(!pt_cidr_parse("10.0.0.0/33", &c, &err), "/33 refused");
    tap_ok(!pt_cidr_parse("10.0.0.0/", &c, &err), "empty prefix refused");
    tap_ok(!pt_cidr_parse("10.0.0.0/8x", &c, &err), "prefix with garbage refused");
    tap_ok(!pt_cidr_parse("example.com/8", &c, &err), "a name refused");
    tap_ok(pt_cidr_parse("0.0.0.0/0", &c, &err), "0.0.0.0/0");
    inet_pton(AF_INET, "203.0.113.9", &s4.sin_addr);
    tap_ok(pt_cidr_match(&c, (struct sockaddr *) &s4), "...matches any IPv4 address");
    return tap_done();
}
