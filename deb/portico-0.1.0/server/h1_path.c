/* The normalised path: the one form of a request path that routes (and the coming filter
 * rules) match on. The request itself goes to the origin with its original target.
 *
 * A path that routes one way here and resolves another way at the origin is how a deny
 * route gets bypassed, and origins disagree: IIS and some frameworks take '\' for '/',
 * Tomcat and Spring drop ";params" (so "..;" is ".."), some decode twice, others read all
 * of these literally. So the policy is: resolve what every origin resolves the same way,
 * and refuse (400) what origins read differently:
 *   - percent-decoding once; a bad escape, %00, or bytes that are not UTF-8 after it
 *     (overlong forms like %c0%ae, surrogates, past U+10FFFF) are refused;
 *   - a decoded '%' followed by two hex digits (%252e) is refused: a second decoding
 *     would give another path;
 *   - '\' (raw or %5c) is refused: a separator to some origins, a byte to others;
 *   - ";params" are removed from each segment (up to the next raw '/'), but they must
 *     pass the checks above and hold no encoded slash;
 *   - "//" is one '/', "." and ".." are resolved, ".." above the root is refused;
 *   - a "." or ".." segment spelled with an escape or params ("%2e%2e", "..;x") is
 *     refused: one origin resolves it, another reads a file name;
 *   - %2f is a separator here, but ".." in a path that has one is refused: an origin
 *     that keeps %2f inside the segment would climb to another directory.
 * Pure: writes at most len bytes to out, allocates nothing. */
#include "portico/h1.h"
#include "portico/str.h"
#include "h1_chars.h"

typedef struct {
    unsigned      need;     /* UTF-8 continuation bytes still expected */
    unsigned char lo, hi;   /* the range the next continuation byte must be in */
    unsigned      pct;      /* 1: the last byte was a decoded '%'; 2: then a hex digit */
} decoded_t;

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = pt_tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Checks the next byte of the decoded path: well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF) and no escape left after decoding. */
static const char *decoded_byte(decoded_t *d, unsigned char c)
{
    if (d->need) {
        if (c < d->lo || c > d->hi)
            return "invalid UTF-8 in the path";
        d->need--;
        d->lo = 0x80;
        d->hi = 0xbf;
    } else if (c >= 0x80) {
        if (c >= 0xc2 && c <= 0xdf) {
            d->need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            d->need = 2;
            if (c == 0xe0)
                d->lo = 0xa0;               /* else overlong */
            else if (c == 0xed)
                d->hi = 0x9f;               /* else a surrogate */
        } else if (c >= 0xf0 && c <= 0xf4) {
            d->need = 3;
            if (c == 0xf0)
                d->lo = 0x90;               /* else overlong */
            else if (c == 0xf4)
                d->hi = 0x8f;               /* else past U+10FFFF */
        } else {
            /* 0x80-0xc1: a continuation byte or an overlong 2-byte lead; 0xf5-0xff */
            return "invalid or overlong UTF-8 in the path";
        }
    }

    if (d->pct && pt_h1_is(c, PT_H1_C_HEX)) {
        if (d->pct == 2)
            return "percent-encoded '%' before two hex digits (double encoding) "
                   "in the path";
        d->pct = 2;
    } else {
        d->pct = c == '%';
    }
    return NULL;
}

#define fail(msg)      \
    do {               \
        *why = (msg);  \
        return PT_ERROR; \
    } while (0)

int pt_h1_normalize_path(const char *in, size_t len, char *out, size_t *out_len,
                         const char **why)
{
    decoded_t   d = { 0, 0x80, 0xbf, 0 };
    const char *e;
    size_t      i = 1, w = 1, s, seg;
    bool        enc_slash = false, dotdot = false;
    bool        escaped, params, sep, raw;
    int         hi, lo;

    if (len == 0 || in[0] != '/')
        fail("the path does not start with '/'");
    out[0] = '/';

    /* One segment per round. out[0..w) always ends with '/', the segment goes after it;
     * every round reads at least as many bytes as it writes, so w <= i. */
    for ( ;; ) {
        s = w;
        escaped = params = sep = false;
        while (i < len) {
            unsigned char c = (unsigned char) in[i];

            if (c == '/') {
                /* a sequence cut by a '/' (one begun in a parameter too) is not UTF-8 */
                if (d.need)
                    fail("invalid UTF-8 in the path");
                d.pct = 0;
                i++;
                sep = true;
                break;
            }
            raw = c != '%';
            if (raw) {
                i++;
            } else {
                if (len - i < 3 || (hi = hexval((unsigned char) in[i + 1])) < 0
                    || (lo = hexval((unsigned char) in[i + 2])) < 0)
                {
                    fail("invalid percent-encoding in the path");
                }
                c = (unsigned char) (hi << 4 | lo);
                i += 3;
            }
            if (c == '\0')
                fail(raw ? "NUL in the path" : "percent-encoded NUL in the path");
            if (c == '\\')
                fail(raw ? "backslash in the path"
                         : "percent-encoded backslash in the path");
            if ((e = decoded_byte(&d, c)) != NULL)
                fail(e);
            if (c == '/') {                 /* %2f */
                if (params)
                    fail("encoded slash in a ;parameter of the path");
                enc_slash = true;
                sep = true;
                break;
            }
            if (c == ';' && raw)
                params = true;
            if (params)
                continue;                   /* checked, not kept */
            escaped = escaped || !raw;
            out[w++] = (char) c;
        }

        seg = w - s;
        if ((seg == 1 && out[s] == '.')
            || (seg == 2 && out[s] == '.' && out[s + 1] == '.'))
        {
            if (escaped || params)
                fail("a '.' or '..' segment written with percent-encoding or a ;parameter");
            if (seg == 1) {
                w = s;
            } else {
                if (s == 1)
                    fail("'..' above the root of the path");
                dotdot = true;
                for (w = s - 1; out[w - 1] != '/'; w--) {
                    /* back to the start of the previous segment */
                }
            }
        } else if (seg && sep) {
            out[w++] = '/';
        }
        if (!sep)
            break;
    }

    if (d.need)
        fail("invalid UTF-8 in the path");
    if (enc_slash && dotdot)
        fail("'..' in a path with an encoded slash");
    *out_len = w;
    return PT_OK;
}
