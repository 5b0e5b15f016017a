/* libFuzzer target for the HTTP/1.x parser, analyzers, chunked decoder and path normaliser.
 *
 * One input is tried as a request head (and the body after it as chunked framing), as a
 * response head, as a bare chunked body and as a path. Each parser runs on the whole input,
 * byte by byte and cut in two at a few points, and must give the same verdict and the same
 * fields every time; results are checked against invariants written independently of the
 * parser's tables. Any violation calls abort(), which libFuzzer reports as a crash.
 * See t/fuzz/README for how to run it. */
#include <stdio.h>
#include <stdlib.h>
#include "portico/h1.h"
#include "portico/str.h"

#define FZ_MAXH 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const pt_h1_limits fz_lims[] = {
    { 8192, 4096, 20 },
    { 48, 16, 3 },          /* small: reaches the 414/431 paths with short inputs */
};

static void fz_check(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_h1: invariant violated: %s\n", what);
        abort();
    }
}

/* Deliberately not the parser's tables: a second opinion. */
static bool fz_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool fz_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* ---- heads --------------------------------------------------------------------------- */

typedef struct {
    int          rc;
    unsigned     status;
    pt_h1_head   h;
    pt_header    hs[FZ_MAXH];
} fz_head;

static void fz_parse(int kind, const pt_h1_limits *lim, const char *buf, size_t n,
                     const size_t *cuts, size_t ncuts, fz_head *r)
{
    pt_h1_parser p;
    size_t       i;

    memset(r, 0, sizeof(*r));
    pt_h1_parser_init(&p, kind, lim);
    r->h.headers = r->hs;
    r->h.max_headers = FZ_MAXH;
    r->rc = PT_AGAIN;
    for (i = 0; i < ncuts && r->rc == PT_AGAIN; i++)
        r->rc = pt_h1_parse_head(&p, buf, cuts[i], &r->h);
    if (r->rc == PT_AGAIN)
        r->rc = pt_h1_parse_head(&p, buf, n, &r->h);
    /* A verdict, once given, is repeated. */
    fz_check(pt_h1_parse_head(&p, buf, n, &r->h) == r->rc || r->rc == PT_AGAIN,
             "verdict not sticky");
    if (r->rc == PT_ERROR) {
        fz_check(p.error != NULL, "error without a reason");
        r->status = p.status;
    }
}

static bool fz_same_str(pt_str a, pt_str b)
{
    return a.len == b.len && a.data == b.data;
}

static void fz_same_head(const fz_head *a, const fz_head *b)
{
    fz_check(a->rc == b->rc, "split changed the verdict");
    fz_check(a->status == b->status, "split changed the status");
    if (a->rc != PT_OK)
        return;
    fz_check(fz_same_str(a->h.method, b->h.method) && a->h.method_id == b->h.method_id
             && fz_same_str(a->h.target, b->h.target) && fz_same_str(a->h.reason, b->h.reason)
             && a->h.version == b->h.version && a->h.status == b->h.status
             && a->h.len == b->h.len && a->h.nheaders == b->h.nheaders
             && a->h.underscore == b->h.underscore,
             "split changed the start line or length");
    for (uint32_t i = 0; i < a->h.nheaders; i++)
        fz_check(fz_same_str(a->hs[i].name, b->hs[i].name)
                 && fz_same_str(a->hs[i].value, b->hs[i].value), "split changed a field");
}

static bool fz_inside(pt_str s, const char *buf, size_t len)
{
    return s.data >= buf && s.data + s.len <= buf + len;
}

static void fz_head_invariants(int kind, const pt_h1_limits *lim, const char *buf, size_t n,
                               const fz_head *r)
{
    const pt_h1_head *h = &r->h;
    size_t            i, start;

    if (r->rc == PT_ERROR) {
        if (kind == PT_H1_RESPONSE)
            fz_check(r->status == 502, "response error not 502");
        else
            fz_check(r->status == 400 || r->status == 414 || r->status == 431
                     || r->status == 505, "unexpected request error status");
        return;
    }
    if (r->rc != PT_OK)
        return;

    fz_check(h->len >= 4 && h->len <= n, "head length out of range");
    fz_check(memcmp(buf + h->len - 4, "\r\n\r\n", 4) == 0, "head does not end with CRLFCRLF");
    for (start = 0; start + 1 < h->len && buf[start] == '\r'; start += 2) {
        /* skipped empty lines */
    }
    fz_check(h->len - start <= lim->max_head, "head longer than max_head");
    fz_check(h->nheaders <= lim->max_headers, "more fields than max_headers");
    for (i = 0; i < h->len; i++) {
        unsigned char c = (unsigned char) buf[i];
        fz_check(c != '\r' || buf[i + 1] == '\n', "bare CR in an accepted head");
        fz_check(c != '\n' || (i > 0 && buf[i - 1] == '\r'), "bare LF in an accepted head");
        fz_check(c >= 0x20 || c == '\t' || c == '\r' || c == '\n', "CTL in an accepted head");
        fz_check(c != 0x7f, "DEL in an accepted head");
    }
    fz_check(h->version == 10 || h->version == 11, "version");

    if (kind == PT_H1_REQUEST) {
        fz_check(h->method.len > 0 && fz_inside(h->method, buf, h->len), "method");
        for (i = 0; i < h->method.len; i++)
            fz_check(fz_tchar((unsigned char) h->method.data[i]), "method not a token");
        fz_check(h->method_id == pt_h1_method_id(h->method), "method id");
        fz_check(h->target.len > 0 && h->target.len <= lim->max_target
                 && fz_inside(h->target, buf, h->len), "target");
        for (i = 0; i < h->target.len; i++) {
            unsigned char c = (unsigned char) h->target.data[i];
            fz_check(c > 0x20 && c < 0x7f && c != '#', "bad byte in target");
        }
    } else {
        fz_check(h->status >= 100 && h->status <= 599, "status range");
        for (i = 0; i < h->reason.len; i++)
            fz_check(fz_field_byte((unsigned char) h->reason.data[i]), "bad byte in reason");
    }

    {
        bool us = false;
        for (uint32_t k = 0; k < h->nheaders; k++)
            for (i = 0; i < h->headers[k].name.len; i++)
                us = us || h->headers[k].name.data[i] == '_';
        /* only requests are looked at (the policy is for requests) */
        fz_check(h->underscore == (us && kind == PT_H1_REQUEST),
                 "'_' in a field name not noted, or noted wrongly");
    }
    for (uint32_t k = 0; k < h->nheaders; k++) {
        pt_str nm = h->headers[k].name, v = h->headers[k].value;
        fz_check(nm.len > 0 && fz_inside(nm, buf, h->len), "field name");
        for (i = 0; i < nm.len; i++)
            fz_check(fz_tchar((unsigned char) nm.data[i]), "field name not a token");
        fz_check(nm.data[nm.len] == ':', "field name not followed by ':'");
        fz_check(fz_inside(v, buf, h->len), "field value outside the head");
        if (v.len) {
            fz_check(v.data[0] != ' ' && v.data[0] != '\t', "value not left-trimmed");
            fz_check(v.data[v.len - 1] != ' ' && v.data[v.len - 1] != '\t',
                     "value not right-trimmed");
        }
        for (i = 0; i < v.len; i++)
            fz_check(fz_field_byte((unsigned char) v.data[i]), "bad byte in field value");
    }
}

/* ---- a second, deliberately naive head parser to compare with ------------------------ */

/* Line-based and slow: find the end of the head first, then judge it line by line, left to
 * right, so that its first complaint is the one the real parser meets first. */
enum { REF_OK, REF_ERROR, REF_AGAIN, REF_NOT_OK };

typedef struct {
    int        verdict;
    unsigned   status;
    size_t     len;
    pt_str     method, target, reason;
    unsigned   version, code;
    uint32_t   nheaders;
    pt_header  hs[FZ_MAXH];
} fz_ref;

static bool fz_target_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

static bool fz_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* "HTTP/" DIGIT "." DIGIT at s, exactly n bytes. */
static bool fz_version(const char *s, size_t n, unsigned *v)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || !fz_digit((unsigned char) s[5]) || s[6] != '.'
        || !fz_digit((unsigned char) s[7]))
    {
        return false;
    }
    *v = (unsigned) (s[5] - '0') * 10 + (unsigned) (s[7] - '0');
    return true;
}

static int fz_ref_fail(fz_ref *r, unsigned status)
{
    r->verdict = REF_ERROR;
    r->status = status;
    return r->verdict;
}

static int fz_ref_request_line(const char *l, size_t n, fz_ref *r)
{
    size_t i = 0, t;

    while (i < n && fz_tchar((unsigned char) l[i]))
        i++;
    if (i == 0 || i == n || l[i] != ' ')
        return fz_ref_fail(r, 400);
    r->method = (pt_str) { i, l };
    t = ++i;
    while (i < n && fz_target_byte((unsigned char) l[i]))
        i++;
    if (i == t || i == n || l[i] != ' ')
        return fz_ref_fail(r, 400);
    r->target = (pt_str) { i - t, l + t };
    i++;
    if (!fz_version(l + i, n - i, &r->version))
        return fz_ref_fail(r, 400);
    if (r->version != 10 && r->version != 11)
        return fz_ref_fail(r, 505);
    return REF_OK;
}

static int fz_ref_status_line(const char *l, size_t n, fz_ref *r)
{
    size_t i;

    if (n < 12 || !fz_version(l, 8, &r->version) || (r->version != 10 && r->version != 11)
        || l[8] != ' ' || !fz_digit((unsigned char) l[9]) || !fz_digit((unsigned char) l[10])
        || !fz_digit((unsigned char) l[11]))
    {
        return fz_ref_fail(r, 502);
    }
    r->code = (unsigned) (l[9] - '0') * 100 + (unsigned) (l[10] - '0') * 10
              + (unsigned) (l[11] - '0');
    if (r->code < 100 || r->code > 599)
        return fz_ref_fail(r, 502);
    if (n == 12) {
        r->reason = (pt_str) { 0, l + 12 };
        return REF_OK;
    }
    if (l[12] != ' ')
        return fz_ref_fail(r, 502);
    for (i = 13; i < n; i++)
        if (!fz_field_byte((unsigned char) l[i]))
            return fz_ref_fail(r, 502);
    r->reason = (pt_str) { n - 13, l + 13 };
    return REF_OK;
}

static int fz_ref_field(const char *l, size_t n, uint32_t max, fz_ref *r, unsigned bad)
{
    size_t i = 0, vs, ve;

    if (n && fz_tchar((unsigned char) l[0]) && r->nheaders >= max)
        return fz_ref_fail(r, bad == 502 ? 502 : 431);
    while (i < n && fz_tchar((unsigned char) l[i]))
        i++;
    if (i == 0 || i == n || l[i] != ':')
        return fz_ref_fail(r, bad);
    for (vs = i + 1; vs < n; vs++)
        if (!fz_field_byte((unsigned char) l[vs]))
            return fz_ref_fail(r, bad);
    vs = i + 1;
    ve = n;
    while (vs < ve && (l[vs] == ' ' || l[vs] == '\t'))
        vs++;
    while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
        ve--;
    r->hs[r->nheaders].name = (pt_str) { i, l };
    r->hs[r->nheaders].value = (pt_str) { ve - vs, l + vs };
    r->nheaders++;
    return REF_OK;
}

static int fz_ref_head(int kind, const pt_h1_limits *lim, const char *buf, size_t n, fz_ref *r)
{
    size_t   pos = 0, end, ls, le;
    unsigned k = 0, bad = kind == PT_H1_REQUEST ? 400 : 502;
    uint32_t max = pt_min(lim->max_headers, FZ_MAXH);

    memset(r, 0, sizeof(*r));
    if (kind == PT_H1_REQUEST) {
        while (pos < n && buf[pos] == '\r') {
            if (k == 8)
                return fz_ref_fail(r, 400);
            if (pos + 1 == n)
                return r->verdict = REF_AGAIN;
            if (buf[pos + 1] != '\n')
                return fz_ref_fail(r, 400);
            k++;
            pos += 2;
        }
        if (pos == n)
            return r->verdict = REF_AGAIN;
    }
    for (end = pos; end + 4 <= n && memcmp(buf + end, "\r\n\r\n", 4) != 0; end++) {
        /* look for the end of the head */
    }
    if (end + 4 > n)
        return r->verdict = REF_NOT_OK;
    r->len = end + 4;

    for (ls = pos; ls < end + 2; ls = le + 2) {
        for (le = ls; memcmp(buf + le, "\r\n", 2) != 0; le++) {
            /* lines end at the first CRLF; stray CRs and LFs stay inside and fail */
        }
        if (ls == pos) {
            if (kind == PT_H1_REQUEST ? fz_ref_request_line(buf + ls, le - ls, r) != REF_OK
                                      : fz_ref_status_line(buf + ls, le - ls, r) != REF_OK)
            {
                return r->verdict;
            }
        } else if (fz_ref_field(buf + ls, le - ls, max, r, bad) != REF_OK) {
            return r->verdict;
        }
    }
    return r->verdict = REF_OK;
}

/* The real parser and the naive one agree (only with limits the naive one need not know). */
static void fz_compare_ref(int kind, const pt_h1_limits *lim, const char *buf, size_t n,
                           const fz_head *h)
{
    fz_ref r;

    if (n > lim->max_head || lim->max_target < n)
        return;
    fz_ref_head(kind, lim, buf, n, &r);
    switch (r.verdict) {
    case REF_NOT_OK:
        fz_check(h->rc != PT_OK, "parser accepted a head without its end");
        return;
    case REF_AGAIN:
        fz_check(h->rc == PT_AGAIN, "reference wants more, parser does not");
        return;
    case REF_ERROR:
        fz_check(h->rc == PT_ERROR, "reference rejects, parser does not");
        fz_check(h->status == r.status, "reference and parser disagree on the status");
        return;
    }
    fz_check(h->rc == PT_OK, "reference accepts, parser does not");
    fz_check(h->h.len == r.len && h->h.version == r.version, "length or version differs");
    if (kind == PT_H1_REQUEST) {
        fz_check(fz_same_str(h->h.method, r.method) && fz_same_str(h->h.target, r.target),
                 "method or target differs from the reference");
    } else {
        fz_check(h->h.status == r.code && h->h.reason.len == r.reason.len
                 && memcmp(h->h.reason.data, r.reason.data, r.reason.len) == 0,
                 "status or reason differs from the reference");
    }
    fz_check(h->h.nheaders == r.nheaders, "field count differs from the reference");
    for (uint32_t i = 0; i < r.nheaders; i++)
        fz_check(fz_same_str(h->hs[i].name, r.hs[i].name)
                 && fz_same_str(h->hs[i].value, r.hs[i].value), "field differs from the reference");
}

/* Whole, byte by byte, and cut in two at a few points: all the same. */
static void fz_head_all(int kind, const pt_h1_limits *lim, const char *buf, size_t n,
                        fz_head *whole)
{
    static fz_head r;
    size_t         cut[5], i, *bytes;

    fz_parse(kind, lim, buf, n, NULL, 0, whole);
    fz_head_invariants(kind, lim, buf, n, whole);
    fz_compare_ref(kind, lim, buf, n, whole);

    bytes = calloc(n + 1, sizeof(size_t));   /* zeroed: gcc cannot see n == 0 reads none */
    for (i = 0; i <= n; i++)
        bytes[i] = i;
    fz_parse(kind, lim, buf, n, bytes, n + 1, &r);
    fz_same_head(whole, &r);
    free(bytes);

    cut[0] = n ? 1 : 0;
    cut[1] = n / 3;
    cut[2] = n / 2;
    cut[3] = n - n / 4;
    cut[4] = n ? n - 1 : 0;
    for (i = 0; i < 5; i++) {
        fz_parse(kind, lim, buf, n, &cut[i], 1, &r);
        fz_same_head(whole, &r);
    }
}

/* ---- chunked bodies ------------------------------------------------------------------ */

typedef struct {
    int      rc;
    size_t   consumed;
    size_t   out_len;
    uint64_t hash;          /* FNV-1a of the decoded bytes */
} fz_chunked;

static void fz_decode(const char *buf, size_t n, const size_t *cuts, size_t ncuts,
                      fz_chunked *r)
{
    pt_h1_chunked c;
    const char   *pos = buf, *d, *last;
    size_t        len, i, k;

    pt_h1_chunked_init(&c);
    r->out_len = 0;
    r->hash = 14695981039346656037ULL;
    r->rc = PT_AGAIN;
    for (i = 0; i <= ncuts; i++) {
        last = buf + (i < ncuts ? cuts[i] : n);
        while ((r->rc = pt_h1_chunked_decode(&c, &pos, last, &d, &len)) == PT_OK) {
            fz_check(len > 0 && d >= buf && d + len <= last && d + len == pos,
                     "data slice not inside the input");
            for (k = 0; k < len; k++)
                r->hash = (r->hash ^ (unsigned char) d[k]) * 1099511628211ULL;
            r->out_len += len;
        }
        fz_check(pos >= buf && pos <= last, "position outside the input");
        if (r->rc == PT_AGAIN)
            fz_check(pos == last, "PT_AGAIN without consuming everything");
        if (r->rc != PT_AGAIN)
            break;
    }
    fz_check(r->rc != PT_ERROR || c.error != NULL, "decoder error without a reason");
    fz_check(c.total == r->out_len, "total does not match the data handed out");
    fz_check(r->out_len <= n, "more data than input");
    r->consumed = (size_t) (pos - buf);
    if (r->rc == PT_DONE)
        fz_check(r->consumed >= 5 && memcmp(pos - 2, "\r\n", 2) == 0, "DONE not after CRLF");
}

static void fz_same_chunked(const fz_chunked *a, const fz_chunked *b)
{
    fz_check(a->rc == b->rc, "split changed the chunked verdict");
    fz_check(a->out_len == b->out_len && a->hash == b->hash, "split changed the chunked data");
    if (a->rc == PT_DONE)
        fz_check(a->consumed == b->consumed, "split changed where the chunked body ends");
}

/* A naive chunked decoder to compare with: recursive descent over the whole input. Every
 * read goes through fz_pk(), which says "more input" at the end of the buffer and "error"
 * past the current cap (extension bytes of a size line, bytes of the trailer section). */
#define PK_AGAIN (-1)
#define PK_ERROR (-2)

typedef struct {
    const unsigned char *b;
    size_t               n, i;
    size_t               cap;        /* first index that may not be read */
    bool                 cr_free;    /* a CR does not count against the cap */
    uint64_t             hash;
    size_t               out_len;
} fz_cur;

static int fz_pk(const fz_cur *c)
{
    if (c->i >= c->n)
        return PK_AGAIN;
    if (c->i >= c->cap && !(c->cr_free && c->b[c->i] == '\r'))
        return PK_ERROR;
    return c->b[c->i];
}

#define FZ_PK(c, ch)                                                         \
    do {                                                                     \
        ch = fz_pk(c);                                                       \
        if (ch < 0)                                                          \
            return ch == PK_AGAIN ? PT_AGAIN : PT_ERROR;                     \
    } while (0)

static bool fz_hex(int ch)
{
    return fz_digit((unsigned char) ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static bool fz_ws(int ch)
{
    return ch == ' ' || ch == '\t';
}

/* chunk-ext up to, not including, the CR; BWS only before ';' and around '='. */
static int fz_ref_ext(fz_cur *c)
{
    int  ch;
    bool ws;

    c->cap = c->i + PT_H1_MAX_CHUNK_EXT;
    c->cr_free = true;
    for ( ;; ) {
        ws = false;
        for ( ;; ) {
            FZ_PK(c, ch);
            if (!fz_ws(ch))
                break;
            ws = true;
            c->i++;
        }
        if (ch == '\r')
            return ws ? PT_ERROR : PT_OK;
        if (ch != ';')
            return PT_ERROR;
        c->i++;
        do {
            FZ_PK(c, ch);
        } while (fz_ws(ch) && ++c->i);
        if (!fz_tchar((unsigned char) ch))
            return PT_ERROR;
        do {
            c->i++;
            FZ_PK(c, ch);
        } while (fz_tchar((unsigned char) ch));
        ws = false;
        while (fz_ws(ch)) {
            ws = true;
            c->i++;
            FZ_PK(c, ch);
        }
        if (ch == '\r')
            return ws ? PT_ERROR : PT_OK;
        if (ch == ';')
            continue;
        if (ch != '=')
            return PT_ERROR;
        c->i++;
        do {
            FZ_PK(c, ch);
        } while (fz_ws(ch) && ++c->i);
        if (ch == '"') {
            for ( ;; ) {
                c->i++;
                FZ_PK(c, ch);
                if (ch == '"')
                    break;
                if (ch == '\\') {
                    c->i++;
                    FZ_PK(c, ch);
                    if (!fz_field_byte((unsigned char) ch))
                        return PT_ERROR;
                } else if (!fz_field_byte((unsigned char) ch)) {
                    return PT_ERROR;
                }
            }
            c->i++;
        } else {
            if (!fz_tchar((unsigned char) ch))
                return PT_ERROR;
            do {
                c->i++;
                FZ_PK(c, ch);
            } while (fz_tchar((unsigned char) ch));
        }
    }
}

static int fz_ref_crlf(fz_cur *c)
{
    int ch;

    FZ_PK(c, ch);
    if (ch != '\r')
        return PT_ERROR;
    c->i++;
    FZ_PK(c, ch);
    if (ch != '\n')
        return PT_ERROR;
    c->i++;
    return PT_OK;
}

static int fz_ref_chunked(fz_cur *c)
{
    int      ch, rc;
    unsigned digits;
    uint64_t size, k;

    for ( ;; ) {
        c->cap = SIZE_MAX;
        size = 0;
        for (digits = 0; ; digits++) {
            FZ_PK(c, ch);
            if (!fz_hex(ch))
                break;
            if (digits == 16)
                return PT_ERROR;
            size = size << 4 | (uint64_t) (fz_digit((unsigned char) ch) ? ch - '0'
                                                                         : (ch | 0x20) - 'a' + 10);
            c->i++;
        }
        if (digits == 0)
            return PT_ERROR;
        if ((rc = fz_ref_ext(c)) != PT_OK)
            return rc;
        c->cap = SIZE_MAX;
        c->cr_free = false;
        if ((rc = fz_ref_crlf(c)) != PT_OK)
            return rc;
        if (size == 0)
            break;
        for (k = 0; k < size; k++, c->i++) {
            if (c->i == c->n)
                return PT_AGAIN;
            c->hash = (c->hash ^ c->b[c->i]) * 1099511628211ULL;
            c->out_len++;
        }
        if ((rc = fz_ref_crlf(c)) != PT_OK)
            return rc;
    }

    /* trailer section: field lines, then CRLF */
    c->cap = c->i + PT_H1_MAX_TRAILER;
    for ( ;; ) {
        FZ_PK(c, ch);
        if (ch == '\r')
            break;
        if (!fz_tchar((unsigned char) ch))
            return PT_ERROR;
        do {
            c->i++;
            FZ_PK(c, ch);
        } while (fz_tchar((unsigned char) ch));
        if (ch != ':')
            return PT_ERROR;
        for ( ;; ) {
            c->i++;
            FZ_PK(c, ch);
            if (!fz_field_byte((unsigned char) ch))
                break;
        }
        if ((rc = fz_ref_crlf(c)) != PT_OK)
            return rc;
    }
    if ((rc = fz_ref_crlf(c)) != PT_OK)
        return rc;
    return PT_DONE;
}

static void fz_compare_chunked_ref(const char *buf, size_t n, const fz_chunked *d)
{
    fz_cur c = { (const unsigned char *) buf, n, 0, SIZE_MAX, false, 14695981039346656037ULL, 0 };
    int    rc = fz_ref_chunked(&c);

    fz_check(rc == d->rc, "chunked: reference and decoder disagree on the verdict");
    fz_check(c.out_len == d->out_len && c.hash == d->hash,
             "chunked: reference and decoder disagree on the data");
    if (rc == PT_DONE)
        fz_check(c.i == d->consumed, "chunked: reference and decoder end at different bytes");
}

static void fz_chunked_all(const char *buf, size_t n)
{
    fz_chunked whole, r;
    size_t     cut[4], i, *bytes;

    fz_decode(buf, n, NULL, 0, &whole);
    fz_compare_chunked_ref(buf, n, &whole);

    bytes = calloc(n + 1, sizeof(size_t));   /* zeroed: gcc cannot see n == 0 reads none */
    for (i = 0; i < n; i++)
        bytes[i] = i + 1;
    fz_decode(buf, n, bytes, n, &r);
    fz_same_chunked(&whole, &r);
    free(bytes);

    cut[0] = n ? 1 : 0;
    cut[1] = n / 3;
    cut[2] = n / 2;
    cut[3] = n ? n - 1 : 0;
    for (i = 0; i < 4; i++) {
        fz_decode(buf, n, &cut[i], 1, &r);
        fz_same_chunked(&whole, &r);
    }
}

/* ---- paths --------------------------------------------------------------------------- */

/* Naive UTF-8 check by code point (a second opinion on the normaliser's byte ranges). */
static bool fz_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0, k, more;
    unsigned long cp, min;

    while (i < n) {
        unsigned char c = s[i++];
        if (c < 0x80)
            continue;
        if ((c & 0xe0) == 0xc0) {
            more = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        for (k = 0; k < more; k++, i++) {
            if (i >= n || (s[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

static void fz_path(const char *in, size_t n)
{
    char       *out = malloc(n ? n : 1), *again;
    size_t      len = 0, len2 = 0, i;
    const char *why = NULL;

    if (pt_h1_normalize_path(in, n, out, &len, &why) != PT_OK) {
        fz_check(why != NULL, "path refused without a reason");
        free(out);
        return;
    }
    fz_check(len >= 1 && len <= n && out[0] == '/', "normalised path shape");
    fz_check(memchr(out, '\0', len) == NULL, "NUL in normalised path");
    fz_check(memchr(out, '\\', len) == NULL, "backslash in normalised path");
    fz_check(fz_utf8((const unsigned char *) out, len), "normalised path not UTF-8");
    for (i = 0; i + 1 < len; i++)
        fz_check(!(out[i] == '/' && out[i + 1] == '/'), "// in normalised path");
    for (i = 0; i + 2 < len; i++)
        fz_check(!(out[i] == '%' && fz_hex((unsigned char) out[i + 1])
                   && fz_hex((unsigned char) out[i + 2])), "an escape left after decoding");
    for (i = 0; i < len; i++) {
        size_t rest = len - i;
        if (out[i] != '/')
            continue;
        fz_check(!(rest >= 2 && out[i + 1] == '.' && (rest == 2 || out[i + 2] == '/')),
                 "'.' segment in normalised path");
        fz_check(!(rest >= 3 && out[i + 1] == '.' && out[i + 2] == '.'
                   && (rest == 3 || out[i + 3] == '/')), "'..' segment in normalised path");
    }
    /* Without '%' and ';' (which mean something else in a raw path) the result is its
     * own normal form. */
    if (memchr(out, '%', len) == NULL && memchr(out, ';', len) == NULL) {
        again = malloc(len);
        fz_check(pt_h1_normalize_path(out, len, again, &len2, &why) == PT_OK && len2 == len
                 && memcmp(again, out, len) == 0, "normalising twice changes the path");
        free(again);
    }
    free(out);
}

/* ---- the underscore policy ------------------------------------------------------------ */

static bool fz_has_us(pt_str n)
{
    return memchr(n.data, '_', n.len) != NULL;
}

/* Each policy on a copy of the head: what goes is exactly what the policy names, what
 * stays keeps its order, and framing analysis afterwards never sees a twin. */
static void fz_underscores(const fz_head *r)
{
    static fz_head c;
    static const unsigned policies[] = { PT_H1_US_DROP, PT_H1_US_PASS, PT_H1_US_REJECT };
    pt_str   dropped[4];
    uint32_t k, w, nus = 0;
    int      rc;

    for (k = 0; k < r->h.nheaders; k++)
        nus += fz_has_us(r->hs[k].name);
    for (size_t p = 0; p < 3; p++) {
        c = *r;
        c.h.headers = c.hs;
        rc = pt_h1_underscore_fields(&c.h, policies[p], dropped, 4);
        if (policies[p] == PT_H1_US_REJECT) {
            fz_check(rc == (nus ? -1 : 0) && c.h.nheaders == r->h.nheaders,
                     "reject policy: verdict or fields");
            fz_check(rc == 0 || fz_has_us(dropped[0]), "reject policy: reported name");
            continue;
        }
        fz_check(rc >= 0 && (uint32_t) rc + c.h.nheaders == r->h.nheaders,
                 "underscore policy: count");
        for (k = 0, w = 0; k < r->h.nheaders; k++) {
            pt_str n = r->hs[k].name;
            bool goes = fz_has_us(n) && (policies[p] == PT_H1_US_DROP || pt_h1_managed_twin(n));
            if (goes)
                continue;
            fz_check(w < c.h.nheaders && fz_same_str(c.hs[w].name, n)
                     && fz_same_str(c.hs[w].value, r->hs[k].value),
                     "underscore policy: a kept field moved or changed");
            w++;
        }
        fz_check(w == c.h.nheaders, "underscore policy: kept fields");
        bool left = false;
        for (k = 0; k < c.h.nheaders; k++)
            left = left || fz_has_us(c.hs[k].name);
        fz_check(c.h.underscore == left, "underscore policy: flag after the policy");
        for (k = 0; k < c.h.nheaders; k++)
            fz_check(!fz_has_us(c.hs[k].name)
                     || (policies[p] == PT_H1_US_PASS && !pt_h1_managed_twin(c.hs[k].name)),
                     "underscore policy: a field that should go stayed");
    }
}

/* ---- the entry point ----------------------------------------------------------------- */

static void fz_request(const char *buf, size_t n, const pt_h1_limits *lim)
{
    static fz_head r;
    pt_h1_req_info ri;
    unsigned       st = 0;
    const char    *why = NULL;

    fz_head_all(PT_H1_REQUEST, lim, buf, n, &r);
    if (r.rc != PT_OK)
        return;
    if (r.h.underscore)
        fz_underscores(&r);

    if (pt_h1_analyze_request(&r.h, &ri, &st, &why) != PT_OK) {
        fz_check(why != NULL, "request rejected without a reason");
        fz_check(st == 400 || st == 405 || st == 417, "unexpected analyzer status");
        return;
    }
    fz_check(!(ri.chunked && ri.content_length >= 0), "both chunked and a length");
    fz_check(!ri.chunked || ri.version == 11, "chunked HTTP/1.0 request");
    fz_check(ri.version == 10 || ri.authority.len > 0, "HTTP/1.1 without authority");
    fz_check(ri.host.len <= ri.authority.len, "host longer than authority");
    if (ri.host.len && ri.host.data[0] != '[') {
        for (size_t i = 0; i < ri.host.len; i++) {
            unsigned char c = (unsigned char) ri.host.data[i];
            fz_check((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     || c == '-' || c == '.' || c == '_', "host name byte");
            fz_check(c != '.' || (i > 0 && ri.host.data[i - 1] != '.'), "empty host label");
        }
    }
    fz_check(ri.path.len > 0, "empty path");
    fz_check(ri.method != PT_M_CONNECT, "CONNECT accepted");
    if (ri.asterisk_form) {
        fz_check(ri.method == PT_M_OPTIONS, "asterisk-form without OPTIONS");
    } else {
        fz_check(ri.path.data[0] == '/', "path not absolute");
        fz_path(ri.path.data, ri.path.len);
    }
    if (ri.chunked)
        fz_chunked_all(buf + r.h.len, n - r.h.len);
}

static void fz_response(const char *buf, size_t n, const pt_h1_limits *lim)
{
    static fz_head  r;
    pt_h1_resp_info ri;
    const char     *why = NULL;
    pt_method       m[] = { PT_M_GET, PT_M_HEAD };

    fz_head_all(PT_H1_RESPONSE, lim, buf, n, &r);
    if (r.rc != PT_OK)
        return;
    for (size_t i = 0; i < 2; i++) {
        if (pt_h1_analyze_response(&r.h, m[i], &ri, &why) != PT_OK) {
            fz_check(why != NULL, "response rejected without a reason");
            continue;
        }
        fz_check(ri.status == r.h.status, "status copied");
        fz_check(m[i] != PT_M_HEAD || ri.body == PT_BODY_NONE, "HEAD response with a body");
        fz_check(ri.body != PT_BODY_LENGTH || ri.content_length >= 0, "length body without CL");
        fz_check(ri.body != PT_BODY_CLOSE || !ri.keepalive, "close-delimited yet keep-alive");
        fz_check(ri.body != PT_BODY_CHUNKED || ri.version == 11, "chunked HTTP/1.0 response");
        fz_check(!ri.upgrade || ri.status == 101, "upgrade without 101");
        if (ri.body == PT_BODY_CHUNKED)
            fz_chunked_all(buf + r.h.len, n - r.h.len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: ASan then catches any read past the end. */
    char *buf = malloc(size ? size : 1);

    memcpy(buf, data, size);
    for (size_t i = 0; i < pt_nelems(fz_lims); i++) {
        fz_request(buf, size, &fz_lims[i]);
        fz_response(buf, size, &fz_lims[i]);
    }
    fz_chunked_all(buf, size);
    fz_path(buf, size);
    free(buf);
    return 0;
}
