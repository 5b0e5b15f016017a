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
             && a->h.len == b->h.len && a->h.nheaders == b->h.nheaders,
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

/* Whole, byte by byte, and cut in two at a few points: all the same. */
static void fz_head_all(int kind, const pt_h1_limits *lim, const char *buf, size_t n,
                        fz_head *whole)
{
    static fz_head r;
    size_t         cut[5], i, *bytes;

    fz_parse(kind, lim, buf, n, NULL, 0, whole);
    fz_head_invariants(kind, lim, buf, n, whole);

    bytes = malloc((n + 1) * sizeof(size_t));
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

static void fz_chunked_all(const char *buf, size_t n)
{
    fz_chunked whole, r;
    size_t     cut[4], i, *bytes;

    fz_decode(buf, n, NULL, 0, &whole);

    bytes = malloc((n + 1) * sizeof(size_t));
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

static void fz_path(const char *in, size_t n)
{
    char  *out = malloc(n ? n : 1);
    size_t len = 0, i;

    if (pt_h1_normalize_path(in, n, out, &len) == PT_OK) {
        fz_check(len >= 1 && len <= n && out[0] == '/', "normalised path shape");
        fz_check(memchr(out, '\0', len) == NULL, "NUL in normalised path");
        for (i = 0; i + 1 < len; i++)
            fz_check(!(out[i] == '/' && out[i + 1] == '/'), "// in normalised path");
        for (i = 0; i < len; i++) {
            size_t rest = len - i;
            if (out[i] != '/')
                continue;
            fz_check(!(rest >= 2 && out[i + 1] == '.' && (rest == 2 || out[i + 2] == '/')),
                     "'.' segment in normalised path");
            fz_check(!(rest >= 3 && out[i + 1] == '.' && out[i + 2] == '.'
                       && (rest == 3 || out[i + 3] == '/')), "'..' segment in normalised path");
        }
    }
    free(out);
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

    if (pt_h1_analyze_request(&r.h, &ri, &st, &why) != PT_OK) {
        fz_check(why != NULL, "request rejected without a reason");
        fz_check(st == 400 || st == 405 || st == 417, "unexpected analyzer status");
        return;
    }
    fz_check(!(ri.chunked && ri.content_length >= 0), "both chunked and a length");
    fz_check(!ri.chunked || ri.version == 11, "chunked HTTP/1.0 request");
    fz_check(ri.version == 10 || ri.authority.len > 0, "HTTP/1.1 without authority");
    fz_check(ri.host.len <= ri.authority.len, "host longer than authority");
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
