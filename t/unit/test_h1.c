/* HTTP/1.x parser, analyzer and chunked decoder: table-driven vectors.
 * Every head is parsed whole, one byte at a time and split in two at every offset; the
 * verdict and the extracted fields must not depend on the split. Numbers in brackets refer
 * to the cases of /work/shared/design/http-strictness.md. */
#include <stdlib.h>
#include "portico/h1.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "tap.h"

#define MAXH 64

#include "../vectors/h1_vectors.h"

#define def_lim h1v_lim   /* the limits the vectors assume */


/* ---- helpers ------------------------------------------------------------------------ */

static bool str_is(pt_str s, const char *want)
{
    if (want == NULL)
        return s.data == NULL;
    return s.data != NULL && s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

static const char *show(pt_str s)
{
    static char buf[4][128];
    static int  i;
    char       *b = buf[i++ & 3];

    if (s.data == NULL)
        return "(null)";
    snprintf(b, 128, "%.*s", (int) pt_min(s.len, 120), s.data);
    return b;
}

typedef struct {
    int          rc;
    unsigned     status;
    pt_h1_head   h;
    pt_header    hs[MAXH];
} parse_result;

static void lim_for(const rvec *v, pt_h1_limits *lim, uint32_t *max_headers)
{
    *lim = def_lim;
    *max_headers = MAXH;
    if (v->max_head)
        lim->max_head = v->max_head;
    if (v->max_target)
        lim->max_target = v->max_target;
    if (v->max_headers == 0xffff0000) {
        *max_headers = 0;          /* the caller's array is what limits */
    } else if (v->max_headers) {
        lim->max_headers = (uint32_t) v->max_headers;
    }
}

/* Feeds buf[0..n) in steps: the i-th call sees cuts[i] bytes, the last sees all of them. */
static void parse_cuts(int kind, const pt_h1_limits *lim, uint32_t max_headers,
                       const char *buf, size_t n, const size_t *cuts, size_t ncuts,
                       parse_result *r)
{
    pt_h1_parser p;
    size_t       i;

    memset(r, 0, sizeof(*r));
    pt_h1_parser_init(&p, kind, lim);
    r->h.headers = r->hs;
    r->h.max_headers = max_headers;
    r->rc = PT_AGAIN;
    for (i = 0; i < ncuts && r->rc == PT_AGAIN; i++)
        r->rc = pt_h1_parse_head(&p, buf, cuts[i], &r->h);
    if (r->rc == PT_AGAIN)
        r->rc = pt_h1_parse_head(&p, buf, n, &r->h);
    r->status = r->rc == PT_ERROR ? p.status : 0;
    if (r->rc == PT_ERROR && p.error == NULL)
        r->status = 1;    /* an error without a reason is a bug */
}

static void parse_whole(int kind, const pt_h1_limits *lim, uint32_t max_headers,
                        const char *buf, size_t n, parse_result *r)
{
    parse_cuts(kind, lim, max_headers, buf, n, NULL, 0, r);
}

static void parse_bytewise(int kind, const pt_h1_limits *lim, uint32_t max_headers,
                           const char *buf, size_t n, parse_result *r)
{
    size_t *cuts = malloc((n + 1) * sizeof(size_t));

    for (size_t i = 0; i <= n; i++)
        cuts[i] = i;
    parse_cuts(kind, lim, max_headers, buf, n, cuts, n + 1, r);
    free(cuts);
}

static bool same_str(pt_str a, pt_str b)
{
    return a.len == b.len && a.data == b.data;
}

/* Same verdict and the very same extracted fields (same pointers into the buffer). */
static bool same_result(const parse_result *a, const parse_result *b)
{
    if (a->rc != b->rc || a->status != b->status)
        return false;
    if (a->rc != PT_OK)
        return true;
    if (!same_str(a->h.method, b->h.method) || a->h.method_id != b->h.method_id
        || !same_str(a->h.target, b->h.target) || !same_str(a->h.reason, b->h.reason)
        || a->h.version != b->h.version || a->h.status != b->h.status || a->h.len != b->h.len
        || a->h.nheaders != b->h.nheaders || a->h.underscore != b->h.underscore)
    {
        return false;
    }
    for (uint32_t i = 0; i < a->h.nheaders; i++)
        if (!same_str(a->hs[i].name, b->hs[i].name) || !same_str(a->hs[i].value, b->hs[i].value))
            return false;
    return true;
}

/* Whole, byte by byte, and cut in two at every offset. */
static void check_splits(const char *what, int kind, const pt_h1_limits *lim,
                         uint32_t max_headers, const char *buf, size_t n,
                         const parse_result *whole)
{
    parse_result r;
    size_t       cut, bad = (size_t) -1;

    parse_bytewise(kind, lim, max_headers, buf, n, &r);
    tap_ok(same_result(whole, &r), "%s: byte by byte gives the same result", what);

    for (cut = 0; cut <= n; cut++) {
        parse_cuts(kind, lim, max_headers, buf, n, &cut, 1, &r);
        if (!same_result(whole, &r)) {
            bad = cut;
            break;
        }
    }
    if (!tap_ok(bad == (size_t) -1, "%s: every two-part split gives the same result", what))
        tap_diag("  differs when cut at %zu", bad);
}

static bool flags_match(const pt_h1_req_info *ri, const char *flags)
{
    return ri->chunked == (strchr(flags, 'c') != NULL)
           && ri->keepalive == (strchr(flags, 'k') != NULL)
           && ri->expect_continue == (strchr(flags, 'e') != NULL)
           && ri->upgrade == (strchr(flags, 'u') != NULL)
           && ri->absolute_form == (strchr(flags, 'a') != NULL)
           && ri->asterisk_form == (strchr(flags, '*') != NULL);
}

static const pt_header *find_exact(const pt_h1_head *h, const char *name)
{
    return pt_h1_find(h->headers, h->nheaders, (pt_str) { strlen(name), name });
}

static void run_request(const rvec *v)
{
    parse_result   r;
    pt_h1_limits   lim;
    uint32_t       maxh;
    pt_h1_req_info ri;
    unsigned       st = 0;
    const char    *why = NULL;
    int            arc;
    char          *buf;

    /* An exact-size heap copy, so ASan sees any read past the end. */
    buf = malloc(v->len ? v->len : 1);
    memcpy(buf, v->raw, v->len);

    lim_for(v, &lim, &maxh);
    parse_whole(PT_H1_REQUEST, &lim, maxh, buf, v->len, &r);
    check_splits(v->name, PT_H1_REQUEST, &lim, maxh, buf, v->len, &r);

    if (v->at == AT_MORE) {
        tap_is_int(r.rc, PT_AGAIN, "%s: needs more input", v->name);
        goto done;
    }
    if (v->at == AT_PARSE) {
        if (tap_is_int(r.rc, PT_ERROR, "%s: parser rejects", v->name))
            tap_is_int(r.status, v->status, "%s: status %u", v->name, v->status);
        goto done;
    }
    if (!tap_is_int(r.rc, PT_OK, "%s: parsed", v->name)) {
        tap_diag("  parser status %u", r.status);
        goto done;
    }
    tap_is_int(r.h.len, v->head_len ? v->head_len : v->len, "%s: head length", v->name);
    {
        bool us = false;
        for (uint32_t i = 0; i < r.h.nheaders; i++)
            us = us || memchr(r.hs[i].name.data, '_', r.hs[i].name.len) != NULL;
        tap_is_int(r.h.underscore, us, "%s: underscore noted exactly when a name has '_'",
                   v->name);
    }

    arc = pt_h1_analyze_request(&r.h, &ri, &st, &why);
    if (v->at == AT_ANALYZE) {
        if (tap_is_int(arc, PT_ERROR, "%s: analyzer rejects", v->name)) {
            tap_is_int(st, v->status, "%s: status %u", v->name, v->status);
            tap_ok(why != NULL && *why, "%s: says why", v->name);
        }
        goto done;
    }
    if (!tap_is_int(arc, PT_OK, "%s: analyzed", v->name)) {
        tap_diag("  status %u: %s", st, why ? why : "?");
        goto done;
    }

    if (v->method)
        tap_ok(str_is(r.h.method, v->method), "%s: method %s", v->name, show(r.h.method));
    if (v->method_id)
        tap_is_int(r.h.method_id, v->method_id, "%s: method id", v->name);
    if (v->target)
        tap_ok(str_is(r.h.target, v->target), "%s: target %s", v->name, show(r.h.target));
    tap_is_int(ri.version, v->version ? v->version : 11, "%s: version", v->name);
    if (v->path)
        tap_ok(str_is(ri.path, v->path), "%s: path %s", v->name, show(ri.path));
    if (v->path || v->query)
        tap_ok(str_is(ri.query, v->query), "%s: query %s", v->name, show(ri.query));
    if (v->authority)
        tap_ok(str_is(ri.authority, v->authority), "%s: authority %s", v->name,
               show(ri.authority));
    else if (v->version == 10 && !v->host)
        tap_ok(ri.authority.len == 0 && ri.host.len == 0, "%s: no authority", v->name);
    if (v->host)
        tap_ok(str_is(ri.host, v->host), "%s: host %s", v->name, show(ri.host));
    if (v->cl)
        tap_is_int(ri.content_length, strtoll(v->cl, NULL, 10), "%s: content length", v->name);
    else
        tap_is_int(ri.content_length, -1, "%s: no content length", v->name);
    if (v->flags)
        tap_ok(flags_match(&ri, v->flags), "%s: flags are exactly \"%s\" (c%d k%d e%d u%d a%d *%d)",
               v->name, v->flags, ri.chunked, ri.keepalive, ri.expect_continue, ri.upgrade,
               ri.absolute_form, ri.asterisk_form);
    if (v->nheaders)
        tap_is_int(r.h.nheaders, v->nheaders - 1, "%s: header count", v->name);
    if (v->hname) {
        const pt_header *hd = find_exact(&r.h, v->hname);
        tap_ok(hd && str_is(hd->value, v->hval), "%s: field %s is \"%s\"", v->name, v->hname,
               hd ? show(hd->value) : "(absent)");
    }

done:
    free(buf);
}

/* ---- every byte value at every lane of the 8-byte fast paths -------------------------- */

static void run_bytes(void)
{
    static const char pre_v[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ", post[] = "\r\n\r\n";
    pt_h1_limits      lim = h1v_lim;
    parse_result      r;
    char              buf[128];
    size_t            n, pos, bad;
    unsigned          c;
    bool              allowed;

    for (pos = 0; pos < 16; pos++) {
        bad = 0;
        for (c = 0; c < 256; c++) {
            /* "X: " then 24 bytes of 'a' with c at 1 + pos: never trimmed */
            n = sizeof(pre_v) - 1;
            memcpy(buf, pre_v, n);
            memset(buf + n, 'a', 24);
            buf[n + 1 + pos] = (char) c;
            memcpy(buf + n + 24, post, 4);
            parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n + 28, &r);
            allowed = c == '\t' || (c >= 0x20 && c != 0x7f);
            if (allowed ? r.rc != PT_OK || r.hs[1].value.len != 24
                          || (unsigned char) r.hs[1].value.data[1 + pos] != c
                        : r.rc != PT_ERROR || r.status != 400)
            {
                bad++;
            }
        }
        tap_is_int(bad, 0, "field value: every byte value at offset %zu", 1 + pos);
    }

    for (pos = 0; pos < 16; pos++) {
        bad = 0;
        for (c = 0; c < 256; c++) {
            /* "GET /" then 24 target bytes with c at 1 + pos */
            memcpy(buf, "GET /", 5);
            memset(buf + 5, 'a', 24);
            buf[5 + 1 + pos] = (char) c;
            n = 29;
            n += (size_t) sprintf(buf + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
            parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
            allowed = c > 0x20 && c < 0x7f && c != '#';
            if (allowed ? r.rc != PT_OK || r.h.target.len != 25
                        : r.rc != PT_ERROR || r.status != 400)
            {
                bad++;
            }
        }
        tap_is_int(bad, 0, "target: every byte value at offset %zu", 2 + pos);
    }
}

/* ---- every byte value inside a Host name ------------------------------------------------ */

static void run_host_bytes(void)
{
    parse_result   r;
    pt_h1_req_info ri;
    unsigned       st, c;
    const char    *why;
    char           buf[64];
    size_t         n, bad = 0;
    bool           want, got;

    for (c = 0; c < 256; c++) {
        n = (size_t) sprintf(buf, "GET / HTTP/1.1\r\nHost: ab");
        buf[n++] = (char) c;
        n += (size_t) sprintf(buf + n, "cd\r\n\r\n");
        parse_whole(PT_H1_REQUEST, &def_lim, MAXH, buf, n, &r);
        got = r.rc == PT_OK && pt_h1_analyze_request(&r.h, &ri, &st, &why) == PT_OK;
        want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
               || c == '-' || c == '.' || c == '_';
        if (got != want) {
            tap_diag("  Host byte 0x%02x: %s", c, got ? "accepted" : "refused");
            bad++;
        }
    }
    tap_is_int(bad, 0, "Host: exactly letters, digits, '-', '.', '_' inside a name");
}

/* ---- generated requests: long but allowed, and just over the limits ------------------ */

static void run_generated(void)
{
    pt_h1_limits lim = { 8192, 4096, 50 };
    parse_result r;
    char        *buf = malloc(16384);
    size_t       n;

    /* A 6000-byte field value inside an 8 KB head. */
    n = (size_t) sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nCookie: ");
    memset(buf + n, 'c', 6000);
    n += 6000;
    n += (size_t) sprintf(buf + n, "\r\n\r\n");
    parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
    tap_is_int(r.rc, PT_OK, "[28] 6000-byte cookie accepted");
    tap_is_int(r.hs[1].value.len, 6000, "[28] cookie value length");
    check_splits("[28] 6000-byte cookie", PT_H1_REQUEST, &lim, MAXH, buf, n, &r);

    /* Exactly max_head, then one byte more. */
    lim.max_head = n;
    parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
    tap_is_int(r.rc, PT_OK, "[28] head of exactly max_head bytes");
    lim.max_head = n - 1;
    parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
    tap_is_int(r.status, 431, "[28] head of max_head + 1 bytes: 431");
    parse_bytewise(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
    tap_is_int(r.status, 431, "[28] head of max_head + 1 bytes, byte by byte: 431");

    /* A 4096-byte target is fine, 4097 is 414 even with room in the head. */
    lim.max_head = 16384;
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'x', 4095);
    n = 5 + 4095;
    n += (size_t) sprintf(buf + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
    tap_is_int(r.rc, PT_OK, "[28] 4096-byte target accepted");
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'x', 4096);
    n = 5 + 4096;
    n += (size_t) sprintf(buf + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    parse_whole(PT_H1_REQUEST, &lim, MAXH, buf, n, &r);
    tap_is_int(r.status, 414, "[28] 4097-byte target: 414");

    /* 101 fields against max_headers 100. */
    lim.max_headers = 100;
    n = (size_t) sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t) sprintf(buf + n, "X-%d: %d\r\n", i, i);
    memcpy(buf + n, "\r\n", 2);
    {
        pt_header   *hs = malloc(128 * sizeof(pt_header));
        pt_h1_parser p;
        pt_h1_head   h = { .headers = hs, .max_headers = 128 };

        pt_h1_parser_init(&p, PT_H1_REQUEST, &lim);
        tap_is_int(pt_h1_parse_head(&p, buf, n + 2, &h), PT_OK, "[28] 100 fields accepted");
        tap_is_int(h.nheaders, 100, "[28] 100 fields counted");
        n += (size_t) sprintf(buf + n, "X-100: 100\r\n\r\n");
        pt_h1_parser_init(&p, PT_H1_REQUEST, &lim);
        tap_is_int(pt_h1_parse_head(&p, buf, n, &h), PT_ERROR, "[28] 101 fields rejected");
        tap_is_int(p.status, 431, "[28] 101 fields: 431");
        /* Calling again after the verdict repeats it. */
        tap_is_int(pt_h1_parse_head(&p, buf, n, &h), PT_ERROR, "error is sticky");
        free(hs);
    }
    free(buf);
}


static void run_response(const svec *v)
{
    parse_result    r;
    pt_h1_limits    lim = def_lim;
    pt_h1_resp_info ri;
    const char     *why = NULL;
    int             arc;
    char           *buf = malloc(v->len);

    memcpy(buf, v->raw, v->len);
    if (v->max_head)
        lim.max_head = v->max_head;
    parse_whole(PT_H1_RESPONSE, &lim, MAXH, buf, v->len, &r);
    check_splits(v->name, PT_H1_RESPONSE, &lim, MAXH, buf, v->len, &r);

    if (v->at == AT_PARSE) {
        if (tap_is_int(r.rc, PT_ERROR, "%s: parser rejects", v->name))
            tap_is_int(r.status, 502, "%s: status 502", v->name);
        goto done;
    }
    if (!tap_is_int(r.rc, PT_OK, "%s: parsed", v->name)) {
        tap_diag("  status %u", r.status);
        goto done;
    }
    arc = pt_h1_analyze_response(&r.h, v->req ? v->req : PT_M_GET, &ri, &why);
    if (v->at == AT_ANALYZE) {
        tap_is_int(arc, PT_ERROR, "%s: analyzer rejects", v->name);
        tap_ok(why != NULL && *why, "%s: says why", v->name);
        goto done;
    }
    if (!tap_is_int(arc, PT_OK, "%s: analyzed", v->name)) {
        tap_diag("  %s", why ? why : "?");
        goto done;
    }
    tap_is_int(r.h.len, v->head_len ? v->head_len : v->len, "%s: head length", v->name);
    {
        bool us = false;
        for (uint32_t i = 0; i < r.h.nheaders; i++)
            us = us || memchr(r.hs[i].name.data, '_', r.hs[i].name.len) != NULL;
        tap_is_int(r.h.underscore, us, "%s: underscore noted exactly when a name has '_'",
                   v->name);
    }
    tap_is_int(ri.status, v->status, "%s: status", v->name);
    tap_is_int(ri.version, v->version ? v->version : 11, "%s: version", v->name);
    tap_is_int(ri.body, v->body, "%s: body kind", v->name);
    tap_is_int(ri.content_length, v->cl ? strtoll(v->cl, NULL, 10) : -1, "%s: content length",
               v->name);
    tap_ok(ri.keepalive == (strchr(v->flags, 'k') != NULL)
           && ri.upgrade == (strchr(v->flags, 'u') != NULL),
           "%s: flags \"%s\" (k%d u%d)", v->name, v->flags, ri.keepalive, ri.upgrade);
    if (v->reason)
        tap_ok(str_is(r.h.reason, v->reason), "%s: reason \"%s\"", v->name, show(r.h.reason));

done:
    free(buf);
}


typedef struct {
    int    rc;
    char  *out;
    size_t out_len;
    size_t consumed;
    bool   slices_inside;   /* every data slice pointed into the input */
} chunk_result;

/* Decodes buf[0..n), handing it to the decoder in pieces that end at the given cuts. */
static void decode_cuts(const char *buf, size_t n, const size_t *cuts, size_t ncuts,
                        chunk_result *r)
{
    pt_h1_chunked c;
    const char   *pos = buf, *data;
    size_t        len, i, stop;

    pt_h1_chunked_init(&c);
    r->out = malloc(n + 1);
    r->out_len = 0;
    r->slices_inside = true;
    r->rc = PT_AGAIN;

    for (i = 0; i <= ncuts; i++) {
        stop = i < ncuts ? cuts[i] : n;
        for ( ;; ) {
            r->rc = pt_h1_chunked_decode(&c, &pos, buf + stop, &data, &len);
            if (r->rc != PT_OK)
                break;
            if (len == 0 || data < buf || data + len > buf + stop)
                r->slices_inside = false;
            memcpy(r->out + r->out_len, data, len);
            r->out_len += len;
        }
        if (r->rc == PT_AGAIN && pos != buf + stop)
            r->slices_inside = false;        /* AGAIN must consume everything */
        if (r->rc != PT_AGAIN)
            break;
    }
    r->consumed = (size_t) (pos - buf);
    if (r->rc == PT_ERROR && c.error == NULL)
        r->rc = 99;
    if (r->rc == PT_OK || (r->rc == PT_DONE && c.total != r->out_len))
        r->rc = 98;
}

static bool chunk_same(const chunk_result *a, const chunk_result *b)
{
    if (a->rc != b->rc || a->out_len != b->out_len || memcmp(a->out, b->out, a->out_len) != 0)
        return false;
    return a->rc != PT_DONE || a->consumed == b->consumed;
}

static void run_chunked_buf(const char *name, const char *raw, size_t n, int want_rc,
                            const char *want, size_t want_len, size_t consumed)
{
    chunk_result whole, r;
    char        *buf = malloc(n ? n : 1);
    size_t      *cuts = malloc((n + 1) * sizeof(size_t));
    size_t       i, bad = (size_t) -1;

    memcpy(buf, raw, n);
    decode_cuts(buf, n, NULL, 0, &whole);
    tap_is_int(whole.rc, want_rc, "%s: verdict", name);
    tap_ok(whole.out_len == want_len && memcmp(whole.out, want, want_len) == 0,
           "%s: decoded data (%zu bytes)", name, whole.out_len);
    tap_ok(whole.slices_inside, "%s: slices point into the input", name);
    if (want_rc == PT_DONE)
        tap_is_int(whole.consumed, consumed ? consumed : n, "%s: ends at the right byte", name);

    for (i = 0; i < n; i++)
        cuts[i] = i + 1;
    decode_cuts(buf, n, cuts, n, &r);
    tap_ok(chunk_same(&whole, &r) && r.slices_inside, "%s: byte by byte gives the same", name);
    free(r.out);

    for (i = 0; i <= n && bad == (size_t) -1; i++) {
        decode_cuts(buf, n, &i, 1, &r);
        if (!chunk_same(&whole, &r) || !r.slices_inside)
            bad = i;
        free(r.out);
    }
    if (!tap_ok(bad == (size_t) -1, "%s: every two-part split gives the same", name))
        tap_diag("  differs when cut at %zu", bad);

    free(whole.out);
    free(cuts);
    free(buf);
}

static void run_chunked(const cvec *v)
{
    run_chunked_buf(v->name, v->raw, v->len, v->rc, v->data, strlen(v->data), v->consumed);
}

static void run_chunked_generated(void)
{
    char   *buf = malloc(16384), *p;
    size_t  n;
    static const char data6[] = "\r\n\0\r\n\n";

    /* data with NUL: strlen-based vectors cannot say it, so once more by hand */
    n = (size_t) sprintf(buf, "6\r\n");
    memcpy(buf + n, data6, 6);
    n += 6;
    n += (size_t) sprintf(buf + n, "\r\n0\r\n\r\n");
    run_chunked_buf("data with NUL, by length", buf, n, PT_DONE, data6, 6, 0);

    /* [12] extensions of exactly PT_H1_MAX_CHUNK_EXT bytes, then one more */
    p = buf;
    p += sprintf(p, "1;");
    memset(p, 'e', PT_H1_MAX_CHUNK_EXT - 1);
    p += PT_H1_MAX_CHUNK_EXT - 1;
    p += sprintf(p, "\r\nx\r\n0\r\n\r\n");
    run_chunked_buf("[12] extension at the cap", buf, (size_t) (p - buf), PT_DONE, "x", 1, 0);

    p = buf;
    p += sprintf(p, "1;");
    memset(p, 'e', PT_H1_MAX_CHUNK_EXT);
    p += PT_H1_MAX_CHUNK_EXT;
    p += sprintf(p, "\r\nx\r\n0\r\n\r\n");
    run_chunked_buf("[12] 10 KB-ish extension over the cap", buf, (size_t) (p - buf), PT_ERROR,
                    "", 0, 0);

    /* trailer section of exactly PT_H1_MAX_TRAILER bytes (with the final CRLF), then more */
    p = buf;
    p += sprintf(p, "0\r\nX: ");
    memset(p, 't', PT_H1_MAX_TRAILER - 7);
    p += PT_H1_MAX_TRAILER - 7;
    p += sprintf(p, "\r\n\r\n");
    run_chunked_buf("trailer at the cap", buf, (size_t) (p - buf), PT_DONE, "", 0, 0);

    p = buf;
    p += sprintf(p, "0\r\nX: ");
    memset(p, 't', PT_H1_MAX_TRAILER - 6);
    p += PT_H1_MAX_TRAILER - 6;
    p += sprintf(p, "\r\n\r\n");
    run_chunked_buf("trailer over the cap", buf, (size_t) (p - buf), PT_ERROR, "", 0, 0);

    /* a large chunk delivered as one slice */
    p = buf;
    p += sprintf(p, "1F40\r\n");
    memset(p, 'd', 8000);
    p += 8000;
    p += sprintf(p, "\r\n0\r\n\r\n");
    {
        pt_h1_chunked c;
        const char   *pos = buf, *data;
        size_t        len;

        pt_h1_chunked_init(&c);
        tap_is_int(pt_h1_chunked_decode(&c, &pos, p, &data, &len), PT_OK, "8000-byte chunk");
        tap_ok(data == buf + 6 && len == 8000, "8000-byte chunk is one slice, not copied");
        tap_is_int(pt_h1_chunked_decode(&c, &pos, p, &data, &len), PT_DONE, "then done");
        tap_ok(pos == p, "position at the end");
        tap_is_int(pt_h1_chunked_decode(&c, &pos, p, &data, &len), PT_DONE, "done is sticky");
    }
    {
        pt_h1_chunked c;
        const char   *bad = "zz", *pos = bad, *data;
        size_t        len;

        pt_h1_chunked_init(&c);
        tap_is_int(pt_h1_chunked_decode(&c, &pos, bad + 2, &data, &len), PT_ERROR, "error");
        tap_is_int(pt_h1_chunked_decode(&c, &pos, bad + 2, &data, &len), PT_ERROR,
                   "error is sticky");
    }
    /* the largest size, with no overflow; the data itself never comes */
    {
        pt_h1_chunked c;
        const char   *s = "FFFFFFFFFFFFFFFF\r\nab", *pos = s, *data;
        size_t        len;

        pt_h1_chunked_init(&c);
        tap_is_int(pt_h1_chunked_decode(&c, &pos, s + strlen(s), &data, &len), PT_OK,
                   "size 2^64-1 accepted");
        tap_ok(c.remaining == UINT64_MAX - 2, "remaining counts down from 2^64-1");
    }
    free(buf);
}


static void run_paths(void)
{
    for (size_t i = 0; i < pt_nelems(paths); i++) {
        size_t      n = paths[i].len, olen = 0;
        char       *in = malloc(n ? n : 1), *out = malloc(n ? n : 1);
        const char *why = NULL;
        int         rc;

        /* exact-size copies: ASan sees a read or write past either end */
        memcpy(in, paths[i].in, n);
        rc = pt_h1_normalize_path(in, n, out, &olen, &why);
        if (paths[i].out == NULL) {
            if (tap_is_int(rc, PT_ERROR, "normalize \"%s\" rejected", paths[i].in)
                && !tap_ok(why != NULL && strstr(why, paths[i].why) != NULL,
                           "normalize \"%s\": says \"%s\"", paths[i].in, paths[i].why))
            {
                tap_diag("  said \"%s\"", why ? why : "(null)");
            }
        } else if (tap_is_int(rc, PT_OK, "normalize \"%s\" accepted", paths[i].in)) {
            tap_ok(olen == strlen(paths[i].out) && memcmp(out, paths[i].out, olen) == 0,
                   "normalize \"%s\" -> \"%.*s\"", paths[i].in, (int) olen, out);
        } else {
            tap_diag("  %s", why ? why : "(no reason)");
        }
        free(in);
        free(out);
    }
}

/* Normalises in[0..n) into a fresh buffer; the result (or NULL) as a C string in res. */
static const char *norm(const char *in, size_t n, char *res, size_t size)
{
    char       *b = malloc(n ? n : 1), *o = malloc(n ? n : 1);
    size_t      olen = 0;
    const char *why = NULL, *r = NULL;

    memcpy(b, in, n);
    if (pt_h1_normalize_path(b, n, o, &olen, &why) == PT_OK && olen < size) {
        memcpy(res, o, olen);
        res[olen] = '\0';
        r = res;
    }
    free(b);
    free(o);
    return r;
}

/* Every byte value in a segment, raw and percent-encoded, against the policy written out
 * case by case. */
static void run_path_bytes(void)
{
    char     in[16], res[16], want[16];
    size_t   bad_raw = 0, bad_enc = 0;
    unsigned c;

    for (c = 0; c < 256; c++) {
        const char *got, *exp;

        /* raw: "/a" c "b" */
        memcpy(in, "/a?b", 4);
        in[2] = (char) c;
        got = norm(in, 4, res, sizeof(res));
        if (c == 0 || c == '\\' || c == '%' || c >= 0x80) {
            exp = NULL;
        } else if (c == ';') {
            exp = "/a";                     /* ";b" is a parameter */
        } else {
            memcpy(want, in, 4);
            want[4] = '\0';
            exp = want;                     /* '/' included: "/a/b" */
        }
        if ((got == NULL) != (exp == NULL) || (got && strcmp(got, exp) != 0)) {
            tap_diag("  raw 0x%02x: got %s", c, got ? got : "(refused)");
            bad_raw++;
        }

        /* encoded: "/a%XXb" */
        snprintf(in, sizeof(in), "/a%%%02Xb", c);
        got = norm(in, 6, res, sizeof(res));
        if (c == 0 || c == '\\' || c >= 0x80) {
            exp = NULL;
        } else {
            snprintf(want, sizeof(want), "/a%cb", (char) c);
            exp = want;                     /* "%2f": "/a/b"; "%3b": "/a;b"; "%25": "/a%b" */
        }
        if ((got == NULL) != (exp == NULL) || (got && strcmp(got, exp) != 0)) {
            tap_diag("  %%%02X: got %s", c, got ? got : "(refused)");
            bad_enc++;
        }
    }
    tap_is_int(bad_raw, 0, "normalize: every raw byte value in a segment");
    tap_is_int(bad_enc, 0, "normalize: every percent-encoded byte value in a segment");
}

/* UTF-8 by code point, written independently of the normaliser's byte ranges. */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t        i = 0, k, more;
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

/* Every lead byte with every second byte, followed by continuation bytes: the
 * normaliser accepts exactly the well-formed sequences. */
static void run_path_utf8(void)
{
    char          in[32], res[32];
    unsigned char dec[4];
    size_t        bad = 0, n;

    for (unsigned l = 0x80; l < 0x100; l++) {
        for (unsigned b = 0; b < 0x100; b++) {
            if (b == 0 || b == '\\')
                continue;                   /* refused for their own reasons */
            for (unsigned tail = 0; tail <= 2; tail++) {
                n = (size_t) snprintf(in, sizeof(in), "/%%%02X%%%02X", l, b);
                dec[0] = (unsigned char) l;
                dec[1] = (unsigned char) b;
                for (unsigned t = 0; t < tail; t++) {
                    n += (size_t) snprintf(in + n, sizeof(in) - n, "%%80");
                    dec[2 + t] = 0x80;
                }
                /* a decoded '/' (b = 0x2f) splits: judge what is before it */
                bool want = b == '/' ? utf8_ok(dec, 1) && tail == 0
                                     : utf8_ok(dec, 2 + tail);
                if (b == '/' && tail)
                    want = false;           /* "%80" alone after the '/' */
                if ((norm(in, n, res, sizeof(res)) != NULL) != want) {
                    if (bad < 10)
                        tap_diag("  %s: %s", in, want ? "refused" : "accepted");
                    bad++;
                }
            }
        }
    }
    tap_is_int(bad, 0, "normalize: UTF-8 lead x second byte x 0-2 more, as by code point");
}

/* ---- underscores in field names ------------------------------------------------------ */

/* Names of h's fields joined with ',', into buf. */
static const char *names_of(const pt_header *hs, uint32_t n, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < n && len < size; i++)
        len += (size_t) snprintf(buf + len, size - len, "%s%.*s", i ? "," : "",
                                 (int) hs[i].name.len, hs[i].name.data);
    return buf;
}

static const char *strs_of(const pt_str *s, unsigned n, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < n && len < size; i++)
        len += (size_t) snprintf(buf + len, size - len, "%s%.*s", i ? "," : "",
                                 (int) s[i].len, s[i].data);
    return buf;
}

static void run_underscores(void)
{
    static const char head[] =
        "POST / HTTP/1.1\r\nHost: a\r\nX_Real_IP: 6.6.6.6\r\nX-Keep: 1\r\n"
        "X_Forwarded_For: 6.6.6.6\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\n"
        "My_Field: v\r\n_x: 1\r\nx_: 2\r\nKeep_Alive: a\r\nProxy_Connection: b\r\n"
        "X-Forwarded_Host: c\r\nx_forwarded_PROTO: d\r\nX_Forwarded_Port: 7\r\n"
        "Content-Length: 0\r\n\r\n";
    static const char all[] =
        "X_Real_IP,X_Forwarded_For,Transfer_Encoding,Content_Length,My_Field,_x,x_,"
        "Keep_Alive,Proxy_Connection,X-Forwarded_Host,x_forwarded_PROTO,X_Forwarded_Port";
    static const char twins[] =
        "X_Real_IP,X_Forwarded_For,Transfer_Encoding,Content_Length,Keep_Alive,"
        "Proxy_Connection,X-Forwarded_Host,x_forwarded_PROTO";
    static const struct {
        unsigned    policy;
        const char *name;
        int         rc;
        const char *kept, *dropped;
    } cases[] = {
        { PT_H1_US_DROP, "drop", 12, "Host,X-Keep,Content-Length", all },
        { PT_H1_US_PASS, "pass", 8,
          "Host,X-Keep,My_Field,_x,x_,X_Forwarded_Port,Content-Length", twins },
        { PT_H1_US_REJECT, "reject", -1, NULL, "X_Real_IP" },
    };
    const size_t   n = sizeof(head) - 1;
    parse_result   r;
    pt_str         dropped[16];
    pt_h1_req_info ri;
    unsigned       st;
    const char    *why;
    char           b1[512], b2[512];

    for (size_t i = 0; i < pt_nelems(cases); i++) {
        parse_whole(PT_H1_REQUEST, &def_lim, MAXH, head, n, &r);
        tap_ok(r.rc == PT_OK && r.h.underscore, "underscores: parsed, '_' noted");
        uint32_t before = r.h.nheaders;
        int rc = pt_h1_underscore_fields(&r.h, cases[i].policy, dropped, 16);
        tap_is_int(rc, cases[i].rc, "underscores, %s: %d fields", cases[i].name, cases[i].rc);
        tap_is_str(strs_of(dropped, rc < 0 ? 1 : (unsigned) rc, b1, sizeof(b1)),
                   cases[i].dropped, "underscores, %s: the names reported", cases[i].name);
        if (cases[i].kept == NULL) {
            tap_is_int(r.h.nheaders, before, "underscores, %s: nothing removed", cases[i].name);
            continue;
        }
        tap_is_str(names_of(r.hs, r.h.nheaders, b2, sizeof(b2)), cases[i].kept,
                   "underscores, %s: what is left, in order", cases[i].name);
        tap_is_int(r.h.underscore, cases[i].policy == PT_H1_US_PASS,
                   "underscores, %s: '_' left in a name or not", cases[i].name);
        /* framing analysis sees the cleaned list: no chunked from Transfer_Encoding */
        st = 0;
        why = NULL;
        tap_ok(pt_h1_analyze_request(&r.h, &ri, &st, &why) == PT_OK && !ri.chunked
               && ri.content_length == 0, "underscores, %s: framing from Content-Length only",
               cases[i].name);
    }

    /* cap below the count: the count is still the whole */
    parse_whole(PT_H1_REQUEST, &def_lim, MAXH, head, n, &r);
    tap_is_int(pt_h1_underscore_fields(&r.h, PT_H1_US_DROP, dropped, 2), 12,
               "underscores: the count goes past cap");
    tap_is_str(strs_of(dropped, 2, b1, sizeof(b1)), "X_Real_IP,X_Forwarded_For",
               "underscores: cap names kept");
    tap_is_int(r.h.nheaders, 3, "underscores: all of them removed anyway");

    /* no '_': nothing noted, nothing removed */
    {
        static const char plain[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: _\r\nX-B: b_c\r\n\r\n";
        parse_whole(PT_H1_REQUEST, &def_lim, MAXH, plain, sizeof(plain) - 1, &r);
        tap_ok(r.rc == PT_OK && !r.h.underscore, "'_' in values only: not noted");
        tap_is_int(pt_h1_underscore_fields(&r.h, PT_H1_US_REJECT, dropped, 16), 0,
                   "'_' in values only: reject policy has nothing to refuse");
        tap_is_int(pt_h1_underscore_fields(&r.h, PT_H1_US_DROP, dropped, 16), 0,
                   "'_' in values only: drop policy removes nothing");
        tap_is_int(r.h.nheaders, 3, "'_' in values only: all fields kept");
    }
    /* '_' as the first byte of a name, and in the last name, in any split */
    {
        static const char first[] = "GET / HTTP/1.1\r\nHost: a\r\n_: 1\r\n\r\n";
        static const char last[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nZZZZZZZ_\r\n\r\n";
        static const char lastok[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nZZZZZZZ_:\r\n\r\n";
        parse_whole(PT_H1_REQUEST, &def_lim, MAXH, first, sizeof(first) - 1, &r);
        tap_ok(r.rc == PT_OK && r.h.underscore, "name \"_\": noted");
        check_splits("name \"_\"", PT_H1_REQUEST, &def_lim, MAXH, first, sizeof(first) - 1, &r);
        parse_whole(PT_H1_REQUEST, &def_lim, MAXH, last, sizeof(last) - 1, &r);
        tap_ok(r.rc == PT_ERROR && r.status == 400, "name with '_' and no colon: still 400");
        parse_whole(PT_H1_REQUEST, &def_lim, MAXH, lastok, sizeof(lastok) - 1, &r);
        tap_ok(r.rc == PT_OK && r.h.underscore, "'_' ending the last name: noted");
        check_splits("'_' ending the last name", PT_H1_REQUEST, &def_lim, MAXH, lastok,
                     sizeof(lastok) - 1, &r);
    }
    /* a response head does not look (the policy is for requests only: no cost there) */
    {
        static const char resp[] = "HTTP/1.1 200 OK\r\nX_Y: 1\r\nContent-Length: 0\r\n\r\n";
        parse_whole(PT_H1_RESPONSE, &def_lim, MAXH, resp, sizeof(resp) - 1, &r);
        tap_ok(r.rc == PT_OK && !r.h.underscore, "response: '_' not looked for");
    }

    /* the managed names, one byte off either way */
    {
        static const struct { const char *name; bool twin; } t[] = {
            { "X_Real_IP", true }, { "x_real_ip", true }, { "X-Real_IP", true },
            { "X_Real_IPs", false }, { "X_Real_I", false }, { "X_Real_IQ", false },
            { "Content_Length", true }, { "CONTENT_LENGTH", true }, { "Content_Lengt", false },
            { "Transfer_Encoding", true }, { "Transfer__Encoding", false },
            { "X_Forwarded_For", true }, { "X_Forwarded_Proto", true },
            { "X_Forwarded_Host", true }, { "X_Forwarded_Port", false },
            { "Keep_Alive", true }, { "Proxy_Connection", true }, { "Proxy_Authorization", false },
            { "Host_", false }, { "_Host", false }, { "X_Forwarded_Fo_", false },
            { "Content.Length", false }, { "", false },
        };
        size_t wrong = 0;
        for (size_t i = 0; i < pt_nelems(t); i++) {
            if (pt_h1_managed_twin((pt_str) { strlen(t[i].name), t[i].name }) != t[i].twin) {
                tap_diag("  managed_twin(\"%s\") is not %d", t[i].name, t[i].twin);
                wrong++;
            }
        }
        tap_is_int(wrong, 0, "managed twins: exactly the managed names with '_' for '-'");
    }
    tap_ok(pt_h1_name_dash_eq(PT_STR("X_Env"), PT_STR("x-env")), "dash_eq: X_Env is x-env");
    tap_ok(!pt_h1_name_dash_eq(PT_STR("X_Env"), PT_STR("x-envy")), "dash_eq: length");
    tap_ok(!pt_h1_name_dash_eq(PT_STR("X-Env"), PT_STR("x.env")), "dash_eq: '.' is not '-'");
}

/* ---- small helpers ------------------------------------------------------------------ */

static void run_helpers(void)
{
    pt_header hs[] = {
        { PT_STR("Host"), PT_STR("a") },
        { PT_STR("Connection"), PT_STR("keep-alive, X-Secret") },
        { PT_STR("X-Foo"), PT_STR("1") },
        { PT_STR("connection"), PT_STR(" Upgrade ") },
        { PT_STR("x-foo"), PT_STR("2") },
    };
    const pt_header *f;

    f = pt_h1_find(hs, 5, PT_STR("X-FOO"));
    tap_ok(f == &hs[2], "find returns the first match, case-insensitively");
    tap_ok(pt_h1_find(hs, 5, PT_STR("X-Fo")) == NULL, "find: no prefix match");
    tap_ok(pt_h1_find(hs, 0, PT_STR("Host")) == NULL, "find in nothing");

    tap_ok(pt_h1_list_has(PT_STR("a, b ,\tC"), PT_STR("c")), "list_has: OWS and case");
    tap_ok(pt_h1_list_has(PT_STR("a,,b"), PT_STR("b")), "list_has: empty elements skipped");
    tap_ok(!pt_h1_list_has(PT_STR("ab, cd"), PT_STR("b")), "list_has: no substring match");
    tap_ok(!pt_h1_list_has(PT_STR(""), PT_STR("a")), "list_has: empty list");
    tap_ok(pt_h1_list_has(PT_STR("close"), PT_STR("close")), "list_has: single element");
    tap_ok(!pt_h1_list_has(PT_STR("a b"), PT_STR("a")), "list_has: element with inner space");

    tap_ok(pt_h1_connection_lists(hs, 5, PT_STR("x-secret")), "Connection lists X-Secret");
    tap_ok(pt_h1_connection_lists(hs, 5, PT_STR("upgrade")), "second Connection field seen");
    tap_ok(!pt_h1_connection_lists(hs, 5, PT_STR("host")), "Connection does not list Host");

    tap_is_int(pt_h1_method_id(PT_STR("GET")), PT_M_GET, "method id GET");
    tap_is_int(pt_h1_method_id(PT_STR("POST")), PT_M_POST, "method id POST");
    tap_is_int(pt_h1_method_id(PT_STR("CONNECT")), PT_M_CONNECT, "method id CONNECT");
    tap_is_int(pt_h1_method_id(PT_STR("OPTIONS")), PT_M_OPTIONS, "method id OPTIONS");
    tap_is_int(pt_h1_method_id(PT_STR("GETX")), PT_M_OTHER, "method id GETX");
    tap_is_int(pt_h1_method_id(PT_STR("Get")), PT_M_OTHER, "method id is case-sensitive");
    {
        static const char *other[] = { "PUX", "POSX", "PATCX", "DELETX", "CONNECX", "A", "" };
        size_t wrong = 0;
        for (size_t i = 0; i < pt_nelems(other); i++)
            if (pt_h1_method_id((pt_str) { strlen(other[i]), other[i] }) != PT_M_OTHER)
                wrong++;
        tap_is_int(wrong, 0, "near-miss methods are other methods");
    }

    tap_is_str(pt_h1_status_text(200), "OK", "status text 200");
    tap_is_str(pt_h1_status_text(404), "Not Found", "status text 404");
    tap_is_str(pt_h1_status_text(414), "URI Too Long", "status text 414");
    tap_is_str(pt_h1_status_text(431), "Request Header Fields Too Large", "status text 431");
    tap_is_str(pt_h1_status_text(505), "HTTP Version Not Supported", "status text 505");
    tap_is_str(pt_h1_status_text(511), "Network Authentication Required", "status text 511");
    tap_is_str(pt_h1_status_text(299), "", "status text unknown");
    {
        static const unsigned common[] = { 100, 101, 200, 201, 202, 204, 206, 301, 302, 303,
            304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414,
            415, 416, 417, 421, 422, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505 };
        size_t missing = 0;
        for (size_t i = 0; i < pt_nelems(common); i++)
            if (*pt_h1_status_text(common[i]) == '\0')
                missing++;
        tap_is_int(missing, 0, "every common status has a reason phrase");
    }
}

/* Trailer fields kept by the decoder (one byte at a time: a section cut anywhere), as
 * fields, and which may be passed on. */
static void run_trailers(void)
{
    static const char raw[] = "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-Sum:  a b \r\n"
                              "Empty:\r\nContent-Length: 9\r\n\r\nNEXT";
    char keep[PT_H1_MAX_TRAILER];
    pt_h1_chunked c;
    const char *pos = raw, *data;
    size_t len;
    int rc = PT_AGAIN;
    pt_h1_chunked_init(&c);
    c.keep = keep;
    for (size_t stop = 1; stop <= sizeof(raw) - 1 && rc != PT_DONE && rc != PT_ERROR; stop++)
        while ((rc = pt_h1_chunked_decode(&c, &pos, raw + stop, &data, &len)) == PT_OK)
            ;
    tap_ok(rc == PT_DONE && strcmp(pos, "NEXT") == 0, "trailers: the body ends before NEXT");
    static const char want[] = "Grpc-Status: 0\r\nX-Sum:  a b \r\nEmpty:\r\n"
                               "Content-Length: 9\r\n";
    tap_ok(c.keep_len == sizeof(want) - 1 && memcmp(keep, want, c.keep_len) == 0,
           "trailers: the field lines are kept, the final CRLF is not");
    pt_pool *pool = pt_pool_create(1024);
    pt_header *hs = NULL;
    uint32_t n = pool ? pt_h1_trailer_fields(pool, keep, c.keep_len, &hs) : 0;
    tap_ok(n == 4 && pt_str_eq(hs[0].name, PT_STR("Grpc-Status")) && pt_str_eq(hs[0].value, PT_STR("0"))
           && pt_str_eq(hs[1].value, PT_STR("a b")) && hs[2].value.len == 0
           && pt_str_eq(hs[3].name, PT_STR("Content-Length")),
           "trailers: 4 fields, values without OWS, an empty one");
    tap_ok(n == 4 && pt_h1_trailer_allowed(hs[0].name) && pt_h1_trailer_allowed(hs[1].name)
           && !pt_h1_trailer_allowed(hs[3].name) && !pt_h1_trailer_allowed(PT_STR("HOST"))
           && !pt_h1_trailer_allowed(PT_STR(":status")), "trailers: what may be passed on");
    if (pool)
        pt_pool_destroy(pool);

    /* not kept unless asked: the same section is validated and dropped */
    pt_h1_chunked_init(&c);
    pos = raw;
    rc = pt_h1_chunked_decode(&c, &pos, raw + sizeof(raw) - 1, &data, &len);
    while (rc == PT_OK)
        rc = pt_h1_chunked_decode(&c, &pos, raw + sizeof(raw) - 1, &data, &len);
    tap_ok(rc == PT_DONE && c.keep_len == 0, "trailers: without keep, nothing is kept");
}

/* The Connection token set agrees with asking the fields themselves, also past its
 * capacity (the fallback). */
static void run_conn_set(void)
{
    pt_header hs[] = {
        { PT_STR("Host"), PT_STR("a") },
        { PT_STR("Connection"), PT_STR("keep-alive, X-Foo ,") },
        { PT_STR("X-Foo"), PT_STR("1") },
        { PT_STR("connection"), PT_STR("x-bar") },
        { PT_STR("X-Bar"), PT_STR("2") },
    };
    pt_h1_conn_set s;
    pt_h1_conn_set_init(&s, hs, 5);
    tap_ok(s.n == 3 && !s.overflow, "conn set: 3 tokens from two Connection fields");
    tap_ok(pt_h1_conn_set_has(&s, PT_STR("x-foo")) && pt_h1_conn_set_has(&s, PT_STR("X-BAR"))
           && pt_h1_conn_set_has(&s, PT_STR("Keep-Alive")) && !pt_h1_conn_set_has(&s, PT_STR("Host"))
           && !pt_h1_conn_set_has(&s, PT_STR("x-fo")), "conn set: listed names, any case; others not");
    pt_header many[] = {
        { PT_STR("Connection"), PT_STR("a1, a2, a3, a4, a5, a6, a7, a8, a9, a10") },
    };
    pt_h1_conn_set_init(&s, many, 1);
    tap_ok(s.overflow && pt_h1_conn_set_has(&s, PT_STR("A10")) && pt_h1_conn_set_has(&s, PT_STR("a1"))
           && !pt_h1_conn_set_has(&s, PT_STR("a11")), "conn set: past 8 tokens, the fields answer");
    pt_h1_conn_set_init(&s, hs, 0);
    tap_ok(s.n == 0 && !pt_h1_conn_set_has(&s, PT_STR("x-foo")), "conn set: no fields, no tokens");
}

int main(void)
{
    size_t i;

    for (i = 0; i < pt_nelems(reqs); i++)
        run_request(&reqs[i]);
    run_bytes();
    run_host_bytes();
    run_generated();
    for (i = 0; i < pt_nelems(resps); i++)
        run_response(&resps[i]);
    for (i = 0; i < pt_nelems(chunks); i++)
        run_chunked(&chunks[i]);
    run_chunked_generated();
    run_paths();
    run_path_bytes();
    run_path_utf8();
    run_underscores();
    run_helpers();
    run_trailers();
    run_conn_set();
    return tap_done();
}
