/* Trailer fields (RFC 9110 6.5): what the chunked decoder kept of a trailer section, as
 * fields, and which of them may be passed on.
 *
 * A trailer is metadata sent after the content (gRPC's grpc-status, a checksum, timing).
 * Fields that frame, route, authenticate or control the message must not appear there
 * (6.5.1): a recipient that merged them into the head would let the end of a body
 * change how the message was framed or cached. They are dropped, as are HTTP/2's
 * connection-specific fields (RFC 9113 8.2.2), so one list serves both sessions. */
#include "portico/h1.h"
#include "portico/pool.h"
#include "portico/str.h"

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

uint32_t pt_h1_trailer_fields(pt_pool *pool, const char *buf, size_t len, pt_header **out)
{
    uint32_t n = 0, cap = 0;
    *out = NULL;
    for (size_t i = 0; i < len; i++)
        cap += buf[i] == '\n';
    if (cap == 0 || (*out = pt_palloc(pool, cap * sizeof(pt_header))) == NULL)
        return 0;
    /* the decoder validated every line: "name:" OWS value OWS CRLF */
    const char *p = buf, *end = buf + len;
    while (p < end && n < cap) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        const char *colon = memchr(p, ':', (size_t) (end - p));
        if (eol == NULL || colon == NULL || colon > eol)
            break;
        const char *v = colon + 1, *ve = eol - 1;          /* at the CR */
        while (v < ve && ows(*v))
            v++;
        while (ve > v && ows(ve[-1]))
            ve--;
        pt_header *h = &(*out)[n++];
        h->name = (pt_str) { (size_t) (colon - p), p };
        h->value = (pt_str) { (size_t) (ve - v), v };
        p = eol + 1;
    }
    return n;
}

bool pt_h1_trailer_allowed(pt_str name)
{
    static const char *const banned[] = {
        /* framing and routing */
        "content-length", "transfer-encoding", "host", "trailer", "te",
        /* connection-specific (and never end-to-end) */
        "connection", "keep-alive", "proxy-connection", "upgrade",
        /* controls, conditionals, authentication */
        "cache-control", "expect", "max-forwards", "pragma", "range", "if-match",
        "if-none-match", "if-modified-since", "if-unmodified-since", "if-range",
        "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
        "set-cookie", "cookie",
        /* how to process the content, response control data */
        "content-encoding", "content-type", "content-range", "age", "expires", "date",
        "location", "retry-after", "vary", "warning",
    };
    if (name.len == 0 || name.data[0] == ':')
        return false;
    for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
        if (pt_str_caseeq_lit(name, banned[i]))
            return false;
    return true;
}

size_t pt_h1_last_chunk_len(const pt_header *hs, uint32_t n)
{
    size_t len = 5;                         /* "0\r\n" ... "\r\n" */
    for (uint32_t i = 0; i < n; i++)
        len += hs[i].name.len + hs[i].value.len + 4;
    return len;
}

size_t pt_h1_last_chunk(char *buf, const pt_header *hs, uint32_t n)
{
    char *p = buf;
    memcpy(p, "0\r\n", 3);
    p += 3;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(p, hs[i].name.data, hs[i].name.len);
        p += hs[i].name.len;
        memcpy(p, ": ", 2);
        p += 2;
        memcpy(p, hs[i].value.data, hs[i].value.len);
        p += hs[i].value.len;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    memcpy(p, "\r\n", 2);
    return (size_t) (p + 2 - buf);
}
