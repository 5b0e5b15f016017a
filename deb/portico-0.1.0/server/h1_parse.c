/* HTTP/1.x head parser: request line or status line, then the header section
 * (RFC 9112 §2-§5). Pure: no I/O, no allocation; the results point into the caller's buffer.
 *
 * Strict by design: a proxy that is more lenient than the origin behind it, or lenient in a
 * different way, is how requests get smuggled. So CRLF only, no obs-fold, no whitespace
 * before the colon, no CTLs anywhere, exactly one SP between the request-line parts.
 *
 * All state lives in pt_h1_parser as offsets plus in the pt_h1_head being filled, so the
 * parser resumes after the caller appends bytes, and every decision depends only on bytes
 * already seen: the verdict is the same however the input is split. */
#include "portico/h1.h"
#include "portico/str.h"
#include "h1_chars.h"

/* Generated: see the bit meanings in h1_chars.h. */
const uint8_t pt_h1_chars[256] = {
    0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x1c,0x00,0x00,0x00,0x00,0x00,0x00,  /* 00 */
    0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,  /* 10 */
    0x1c,0x17,0x06,0x15,0x17,0x17,0x17,0x17,0x16,0x16,0x17,0x17,0x16,0x57,0x57,0x16,  /* 20 */
    0xf7,0xf7,0xf7,0xf7,0xf7,0xf7,0xf7,0xf7,0xf7,0xf7,0x16,0x16,0x16,0x16,0x16,0x16,  /* 30 */
    0x16,0x77,0x77,0x77,0x77,0x77,0x77,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,  /* 40 */
    0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x16,0x06,0x16,0x17,0x57,  /* 50 */
    0x17,0x77,0x77,0x77,0x77,0x77,0x77,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,  /* 60 */
    0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x57,0x16,0x17,0x16,0x17,0x00,  /* 70 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* 80 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* 90 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* a0 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* b0 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* c0 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* d0 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* e0 */
    0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,0x14,  /* f0 */
};

#define PT_H1_MAX_LEADING_CRLF 8

enum {
    S_INIT = 0,
    S_LEAD,             /* request: empty lines before the request line, or the method */
    S_LEAD_LF,
    S_METHOD,
    S_TARGET,
    S_VERSION,          /* "HTTP/" DIGIT "." DIGIT, p->mark at its first byte */
    S_LINE_CR,          /* request: CR ending the request line */
    S_LINE_LF,
    S_STATUS_SP,        /* response: SP after the version */
    S_STATUS_CODE,      /* 3DIGIT, p->mark at the first */
    S_STATUS_AFTER,     /* SP before the reason, or CR */
    S_REASON,
    S_FIELD_START,      /* at the start of a field line or the final empty line */
    S_NAME,
    S_VALUE_OWS,
    S_VALUE,
    S_FIELD_LF,
    S_END_LF,
    S_DONE,
    S_ERROR
};

/* Responses come from origins: whatever is wrong, the client gets 502. */
#define fail(st, msg)                                                    \
    do {                                                                 \
        p->status = (p->kind == PT_H1_RESPONSE) ? 502 : (st);           \
        p->error = (msg);                                                \
        goto failed;                                                     \
    } while (0)

static const char http_ver[] = "HTTP/";

void pt_h1_parser_init(pt_h1_parser *p, int kind, const pt_h1_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->kind = (uint8_t) kind;
    p->lim = *lim;
}

pt_method pt_h1_method_id(pt_str m)
{
    const char *s = m.data;

    /* Methods are case-sensitive (RFC 9110 §9.1): "get" is some other method. */
    switch (m.len) {
    case 3:
        if (memcmp(s, "GET", 3) == 0)
            return PT_M_GET;
        if (memcmp(s, "PUT", 3) == 0)
            return PT_M_PUT;
        break;
    case 4:
        if (memcmp(s, "POST", 4) == 0)
            return PT_M_POST;
        if (memcmp(s, "HEAD", 4) == 0)
            return PT_M_HEAD;
        break;
    case 5:
        if (memcmp(s, "PATCH", 5) == 0)
            return PT_M_PATCH;
        if (memcmp(s, "TRACE", 5) == 0)
            return PT_M_TRACE;
        break;
    case 6:
        if (memcmp(s, "DELETE", 6) == 0)
            return PT_M_DELETE;
        break;
    case 7:
        if (memcmp(s, "OPTIONS", 7) == 0)
            return PT_M_OPTIONS;
        if (memcmp(s, "CONNECT", 7) == 0)
            return PT_M_CONNECT;
        break;
    }
    return PT_M_OTHER;
}

/* Does any of the 8 bytes at p fall below 0x20 or equal 0x7f? The classic SWAR tests:
 * (x - 0x01..) & ~x & 0x80.. is non-zero iff some byte of x is zero, and with 0x20 in place
 * of 0x01 iff some byte is below 0x20. Exact as a yes/no answer; byte order does not matter. */
static inline uint64_t swar_has_ctl(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t       w, del;

    memcpy(&w, p, 8);
    del = w ^ (ones * 0x7f);
    return ((w - ones * 0x20) & ~w & highs) | ((del - ones) & ~del & highs);
}

/* Is any of the 8 bytes at p not a target byte (0x21-0x7e but '#')? Same tricks, plus the
 * high bit for obs-text. */
static inline uint64_t swar_not_target(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t       w, del, hash;

    memcpy(&w, p, 8);
    del = w ^ (ones * 0x7f);
    hash = w ^ (ones * '#');
    return ((w - ones * 0x21) & ~w & highs) | ((del - ones) & ~del & highs)
           | ((hash - ones) & ~hash & highs) | (w & highs);
}

/* Where scanning must stop: the head may not grow past lim.max_head bytes counted from
 * the first byte of the request/status line (skipped empty lines do not count). */
static size_t head_end(const pt_h1_parser *p, size_t len)
{
    size_t start = (size_t) p->leading_crlf * 2;

    if (len - start > p->lim.max_head)
        return start + p->lim.max_head;
    return len;
}

int pt_h1_parse_head(pt_h1_parser *p, const char *buf, size_t len, pt_h1_head *h)
{
    const unsigned char *b = (const unsigned char *) buf;
    size_t               off, end, i;
    uint32_t             max_headers;
    unsigned             c;

    switch (p->state) {
    case S_DONE:
        return PT_OK;
    case S_ERROR:
        return PT_ERROR;
    case S_INIT:
        h->method = PT_STR_NULL;
        h->method_id = PT_M_OTHER;
        h->target = PT_STR_NULL;
        h->status = 0;
        h->reason = PT_STR_NULL;
        h->version = 0;
        h->nheaders = 0;
        h->len = 0;
        h->underscore = false;
        p->state = (p->kind == PT_H1_RESPONSE) ? S_VERSION : S_LEAD;
        break;
    }

    max_headers = pt_min(h->max_headers, p->lim.max_headers);
    off = p->off;
    end = (p->state <= S_LEAD_LF) ? len : head_end(p, len);

    for ( ;; ) {
        if (off >= end)
            goto more;
        c = b[off];

        switch (p->state) {

        case S_LEAD:
            if (c == '\r') {
                if (p->leading_crlf == PT_H1_MAX_LEADING_CRLF)
                    fail(400, "too many empty lines before the request line");
                p->state = S_LEAD_LF;
                off++;
                break;
            }
            if (!pt_h1_is(c, PT_H1_C_TCHAR))
                fail(400, c == '\n' ? "bare LF before the request line"
                                    : "invalid character in method");
            /* The request line starts here: from now on max_head applies. */
            p->mark = off;
            p->state = S_METHOD;
            end = head_end(p, len);
            break;

        case S_LEAD_LF:
            if (c != '\n')
                fail(400, "bare CR before the request line");
            p->leading_crlf++;
            p->state = S_LEAD;
            off++;
            break;

        case S_METHOD:
            while (off < end && pt_h1_is(b[off], PT_H1_C_TCHAR))
                off++;
            if (off == end)
                goto more;
            if (b[off] != ' ')
                fail(400, "invalid character in method");
            h->method.data = buf + p->mark;
            h->method.len = off - p->mark;
            h->method_id = pt_h1_method_id(h->method);
            off++;
            p->mark = off;
            p->state = S_TARGET;
            break;

        case S_TARGET:
            while (end - off >= 8 && !swar_not_target(b + off))
                off += 8;
            while (off < end && pt_h1_is(b[off], PT_H1_C_TARGET))
                off++;
            /* Length first: fed byte by byte, 414 is what that input would see first. */
            if (off - p->mark > p->lim.max_target)
                fail(414, "request target too long");
            if (off == end)
                goto more;
            c = b[off];
            if (c == ' ') {
                if (off == p->mark)
                    fail(400, "empty request target");
                h->target.data = buf + p->mark;
                h->target.len = off - p->mark;
                off++;
                p->mark = off;
                p->state = S_VERSION;
                break;
            }
            if (c == '\r' || c == '\n')
                fail(400, off == p->mark ? "empty request target"
                                         : "missing HTTP version (HTTP/0.9)");
            if (c == '#')
                fail(400, "fragment in request target");
            fail(400, "invalid character in request target");

        case S_VERSION:
            /* "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
            i = off - p->mark;
            if (i < 5) {
                if (c != (unsigned char) http_ver[i])
                    fail(400, "malformed HTTP version");
            } else if (i == 6) {
                if (c != '.')
                    fail(400, "malformed HTTP version");
            } else if (!pt_h1_is(c, PT_H1_C_DIGIT)) {
                fail(400, "malformed HTTP version");
            }
            off++;
            if (i < 7)
                break;
            h->version = (b[p->mark + 5] - '0') * 10 + (b[p->mark + 7] - '0');
            if (p->kind == PT_H1_RESPONSE) {
                if (h->version != 10 && h->version != 11)
                    fail(502, "unsupported HTTP version in status line");
                p->state = S_STATUS_SP;
            } else {
                p->state = S_LINE_CR;
            }
            break;

        case S_LINE_CR:
            if (c != '\r')
                fail(400, c == '\n' ? "bare LF in request line" : "malformed HTTP version");
            p->state = S_LINE_LF;
            off++;
            break;

        case S_LINE_LF:
            if (c != '\n')
                fail(400, "bare CR in start line");
            /* A well-formed request line with a version we do not speak: 505 (RFC 9110
             * §15.6.6). Responses had their version checked already. */
            if (h->version != 10 && h->version != 11)
                fail(505, "unsupported HTTP version");
            off++;
            p->state = S_FIELD_START;
            break;

        case S_STATUS_SP:
            if (c != ' ')
                fail(502, "malformed status line");
            off++;
            p->mark = off;
            p->state = S_STATUS_CODE;
            break;

        case S_STATUS_CODE:
            if (!pt_h1_is(c, PT_H1_C_DIGIT))
                fail(502, "malformed status code");
            off++;
            if (off - p->mark < 3)
                break;
            h->status = (b[p->mark] - '0') * 100 + (b[p->mark + 1] - '0') * 10
                        + (b[p->mark + 2] - '0');
            if (h->status < 100 || h->status > 599)
                fail(502, "status code out of range");
            p->state = S_STATUS_AFTER;
            break;

        case S_STATUS_AFTER:
            /* The reason phrase may be empty, and even its SP is commonly missing. */
            if (c == ' ') {
                off++;
                p->mark = off;
                p->state = S_REASON;
                break;
            }
            if (c != '\r')
                fail(502, "malformed status line");
            p->mark = off;
            p->state = S_REASON;
            break;

        case S_REASON:
            while (off < end && pt_h1_is(b[off], PT_H1_C_FVALUE))
                off++;
            if (off == end)
                goto more;
            if (b[off] != '\r')
                fail(502, b[off] == '\n' ? "bare LF in status line"
                                         : "invalid character in reason phrase");
            h->reason.data = buf + p->mark;
            h->reason.len = off - p->mark;
            off++;
            p->state = S_LINE_LF;
            break;

        case S_FIELD_START:
            if (pt_h1_is(c, PT_H1_C_TCHAR)) {
                if (h->nheaders >= max_headers)
                    fail(431, "too many header fields");
                p->name_start = off;   /* S_NAME looks at this byte again, for '_' */
                p->state = S_NAME;
                break;
            }
            if (c == '\r') {
                off++;
                p->state = S_END_LF;
                break;
            }
            if (c == ' ' || c == '\t')
                fail(400, h->nheaders == 0 ? "whitespace before the first header field"
                                           : "obsolete line folding");
            if (c == '\n')
                fail(400, "bare LF in header section");
            fail(400, c == ':' ? "empty header field name"
                               : "invalid character in header field name");

        case S_NAME:
            while (off < end && pt_h1_is(b[off], PT_H1_C_TCHAR))
                off++;
            if (off == end)
                goto more;
            /* a name with '_' may read as another field to an origin that maps '-' to '_'
             * (CGI): noted once the name is whole, so the request engine's policy looks
             * at the fields only when one has it (memchr: no cost in the byte loop) */
            if (p->kind == PT_H1_REQUEST
                && memchr(b + p->name_start, '_', off - p->name_start))
                h->underscore = true;
            c = b[off];
            if (c != ':') {
                if (c == ' ' || c == '\t')
                    fail(400, "whitespace before colon in header field");
                if (c == '\r' || c == '\n')
                    fail(400, "header field without colon");
                fail(400, "invalid character in header field name");
            }
            p->name_end = off;
            off++;
            p->state = S_VALUE_OWS;
            break;

        case S_VALUE_OWS:
            while (off < end && (b[off] == ' ' || b[off] == '\t'))
                off++;
            if (off == end)
                goto more;
            p->value_start = off;
            p->state = S_VALUE;
            break;

        case S_VALUE:
            /* The hot loop: most of a head is field values. Eight bytes at a time while
             * none is a CTL; a word holding one (HTAB included) goes through the table. */
            for ( ;; ) {
                if (end - off >= 8 && !swar_has_ctl(b + off)) {
                    off += 8;
                    continue;
                }
                i = pt_min(end, off + 8);
                while (off < i && pt_h1_is(b[off], PT_H1_C_FVALUE))
                    off++;
                if (off < i || off == end)
                    break;
            }
            if (off == end)
                goto more;
            c = b[off];
            if (c != '\r')
                fail(400, c == '\n' ? "bare LF in header field"
                                    : "invalid character in header field value");
            /* Trailing OWS is not part of the value (RFC 9112 §5.1). */
            i = off;
            while (i > p->value_start && (b[i - 1] == ' ' || b[i - 1] == '\t'))
                i--;
            p->value_end = i;
            off++;
            p->state = S_FIELD_LF;
            break;

        case S_FIELD_LF:
            if (c != '\n')
                fail(400, "bare CR in header field");
            off++;
            h->headers[h->nheaders].name.data = buf + p->name_start;
            h->headers[h->nheaders].name.len = p->name_end - p->name_start;
            h->headers[h->nheaders].value.data = buf + p->value_start;
            h->headers[h->nheaders].value.len = p->value_end - p->value_start;
            h->nheaders++;
            p->state = S_FIELD_START;
            break;

        case S_END_LF:
            if (c != '\n')
                fail(400, "bare CR in header section");
            off++;
            p->off = off;
            h->len = off;
            p->state = S_DONE;
            return PT_OK;

        default:
            fail(400, "parser in an impossible state");
        }
    }

more:
    p->off = off;
    if (p->state > S_LEAD_LF && off - (size_t) p->leading_crlf * 2 >= p->lim.max_head) {
        /* The head did not complete within max_head bytes. */
        if (p->state == S_TARGET)
            fail(414, "request target too long");
        /* the proxy parses origins' responses with this too: say which head it was */
        fail(431, p->kind == PT_H1_RESPONSE ? "response header section too large"
                                            : "request header section too large");
    }
    return PT_AGAIN;

failed:
    p->off = off;
    p->state = S_ERROR;
    return PT_ERROR;
}
