/* What HTTP caching says (RFC 9111, and RFC 9110 for dates and validators), as pure
 * functions over fields: Cache-Control directives, HTTP-dates, entity-tag lists, which
 * statuses and fields a shared cache stores, and the store's checksum. No state, no I/O:
 * t/unit/test_cache.c feeds them the RFCs' examples and the edge cases. */
#include <stdio.h>

#include "portico/pool.h"
#include "portico/str.h"
#include "cache.h"

/* ------------------------------------------------------------------ Cache-Control */

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* delta-seconds (RFC 9111 1.2.2): a value too big is 2^31; anything else invalid is -2. */
static int64_t delta_seconds(pt_str v)
{
    if (v.len == 0)
        return -2;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.data[i] < '0' || v.data[i] > '9')
            return -2;
        if (n < 2147483648LL)
            n = n * 10 + (v.data[i] - '0');
    }
    return n > 2147483648LL ? 2147483648LL : n;
}

/* A directive with an argument. Repeated, the most restrictive (smallest) value counts
 * (RFC 9111 4.2.1 allows that or treating the response as stale); an invalid value is
 * the most restrictive reading, 0. */
static void set_delta(int64_t *slot, pt_str v, bool has_value)
{
    int64_t n = has_value ? delta_seconds(v) : -2;
    if (*slot == -1)
        *slot = n < 0 ? 0 : n;
    else if (n >= 0 && n < *slot)
        *slot = n;          /* conflicting values: the most restrictive */
}

static void directive(cache_cc *cc, pt_str name, pt_str value, bool has_value)
{
    cc->present = true;
#define IS(lit) pt_str_caseeq_lit(name, lit)
    if (IS("max-age"))
        set_delta(&cc->max_age, value, has_value);
    else if (IS("s-maxage"))
        set_delta(&cc->s_maxage, value, has_value);
    else if (IS("stale-while-revalidate"))
        set_delta(&cc->stale_while_revalidate, value, has_value);
    else if (IS("stale-if-error"))
        set_delta(&cc->stale_if_error, value, has_value);
    else if (IS("max-stale")) {
        if (has_value)
            set_delta(&cc->max_stale, value, true);
        else
            cc->max_stale = 2147483648LL;          /* any staleness */
    } else if (IS("min-fresh"))
        set_delta(&cc->min_fresh, value, has_value);
    else if (IS("no-store"))
        cc->no_store = true;
    else if (IS("no-cache"))
        cc->no_cache = true;        /* qualified (no-cache="f"): as if unqualified */
    else if (IS("private"))
        cc->private_ = true;        /* qualified too: a shared cache does not store */
    else if (IS("public"))
        cc->public_ = true;
    else if (IS("must-revalidate"))
        cc->must_revalidate = true;
    else if (IS("proxy-revalidate"))
        cc->proxy_revalidate = true;
    else if (IS("only-if-cached"))
        cc->only_if_cached = true;
#undef IS
}

/* Every Cache-Control field: a list of token [ "=" ( token / quoted-string ) ]. Unknown
 * directives are ignored (RFC 9111 5.2.3); a malformed element is skipped up to the next
 * comma. */
void cache_cc_parse(const pt_header *hs, uint32_t n, cache_cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = cc->s_maxage = cc->stale_while_revalidate = cc->stale_if_error = -1;
    cc->max_stale = cc->min_fresh = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!pt_str_caseeq_lit(hs[i].name, "cache-control"))
            continue;
        const char *p = hs[i].value.data, *end = p + hs[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *ns = p;
            while (p < end && tchar((unsigned char) *p))
                p++;
            pt_str name = { (size_t) (p - ns), ns };
            pt_str value = PT_STR_NULL;
            bool has_value = false, bad = name.len == 0;
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (!bad && p < end && *p == '=') {
                p++;
                has_value = true;
                if (p < end && *p == '"') {
                    /* quoted-string: the value without quotes; escapes are rare in the
                     * directives we read and a backslash makes a delta invalid anyway */
                    const char *vs = ++p;
                    while (p < end && *p != '"') {
                        if (*p == '\\' && p + 1 < end)
                            p++;
                        p++;
                    }
                    value = (pt_str) { (size_t) (p - vs), vs };
                    if (p < end)
                        p++;
                    else
                        bad = true;
                } else {
                    const char *vs = p;
                    while (p < end && tchar((unsigned char) *p))
                        p++;
                    value = (pt_str) { (size_t) (p - vs), vs };
                }
            }
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p < end && *p != ',') {
                bad = true;
                while (p < end && *p != ',')
                    p++;
            }
            if (!bad)
                directive(cc, name, value, has_value);
        }
    }
}

/* ------------------------------------------------------------------ HTTP-date */

static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
static const char wdays[] = "ThuFriSatSunMonTueWed";    /* 1970-01-01 was a Thursday */

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned) (z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

typedef struct date_cur {
    const char *p, *end;
} date_cur;

static bool num(date_cur *c, unsigned min_digits, unsigned max_digits, int64_t *out)
{
    unsigned n = 0;
    int64_t v = 0;
    while (c->p < c->end && n < max_digits && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p++ - '0');
        n++;
    }
    *out = v;
    return n >= min_digits;
}

static bool lit(date_cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static void spaces(date_cur *c)
{
    while (c->p < c->end && *c->p == ' ')
        c->p++;
}

static bool month(date_cur *c, unsigned *m)
{
    if (c->end - c->p < 3)
        return false;
    for (unsigned i = 0; i < 12; i++) {
        if (pt_tolower(c->p[0]) == pt_tolower(months[i * 3])
            && pt_tolower(c->p[1]) == pt_tolower(months[i * 3 + 1])
            && pt_tolower(c->p[2]) == pt_tolower(months[i * 3 + 2])) {
            *m = i + 1;
            c->p += 3;
            return true;
        }
    }
    return false;
}

static bool hms(date_cur *c, int64_t *h, int64_t *mi, int64_t *s)
{
    return num(c, 2, 2, h) && lit(c, ':') && num(c, 2, 2, mi) && lit(c, ':') && num(c, 2, 2, s)
           && *h < 24 && *mi < 60 && *s <= 60;
}

/* RFC 9110 5.6.7: recipients accept all three formats. */
bool cache_parse_date(pt_str str, int64_t *t)
{
    date_cur c = { str.data, str.data + str.len };
    int64_t y = 0, d = 0, h = 0, mi = 0, s = 0;
    unsigned m = 0;
    /* the day name, letters only; its comma decides between the formats */
    while (c.p < c.end && ((*c.p >= 'a' && *c.p <= 'z') || (*c.p >= 'A' && *c.p <= 'Z')))
        c.p++;
    bool comma = lit(&c, ',');
    spaces(&c);
    if (comma) {
        if (!num(&c, 1, 2, &d))
            return false;
        if (lit(&c, '-')) {                 /* RFC 850: 06-Nov-94 08:49:37 GMT */
            if (!month(&c, &m) || !lit(&c, '-') || !num(&c, 2, 4, &y))
                return false;
            if (y < 100)
                y += y < 70 ? 2000 : 1900;  /* RFC 9110: 50 years into the future at most */
        } else {                            /* IMF-fixdate: 06 Nov 1994 08:49:37 GMT */
            spaces(&c);
            if (!month(&c, &m))
                return false;
            spaces(&c);
            if (!num(&c, 4, 4, &y))
                return false;
        }
        spaces(&c);
        if (!hms(&c, &h, &mi, &s))
            return false;
        spaces(&c);
        if (c.end - c.p < 3 || memcmp(c.p, "GMT", 3) != 0)
            return false;
        c.p += 3;
    } else {                                /* asctime: Nov  6 08:49:37 1994 */
        if (!month(&c, &m))
            return false;
        spaces(&c);
        if (!num(&c, 1, 2, &d))
            return false;
        spaces(&c);
        if (!hms(&c, &h, &mi, &s))
            return false;
        spaces(&c);
        if (!num(&c, 4, 4, &y))
            return false;
    }
    spaces(&c);
    if (c.p != c.end || d < 1 || d > 31)
        return false;
    *t = days_from_civil(y, m, (unsigned) d) * 86400 + h * 3600 + mi * 60 + s;
    return true;
}

size_t cache_format_date(int64_t t, char *buf)
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t sec = t - days * 86400, y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned wd = (unsigned) (((days % 7) + 7) % 7);
    int n = snprintf(buf, 30, "%.3s, %02u %.3s %04lld %02u:%02u:%02u GMT", wdays + wd * 3, d,
                     months + (m - 1) * 3, (long long) y, (unsigned) (sec / 3600),
                     (unsigned) (sec / 60 % 60), (unsigned) (sec % 60));
    return n > 0 ? (size_t) n : 0;
}

/* ------------------------------------------------------------------ validators */

/* The opaque-tag of an entity-tag (without W/), or empty when it is not one. */
static pt_str opaque(pt_str t)
{
    if (t.len >= 2 && t.data[0] == 'W' && t.data[1] == '/') {
        t.data += 2;
        t.len -= 2;
    }
    if (t.len < 2 || t.data[0] != '"' || t.data[t.len - 1] != '"')
        return PT_STR_NULL;
    return t;
}

/* RFC 9110 13.1.2: If-None-Match compares weakly; "*" matches any current representation. */
bool cache_etag_match(pt_str list, pt_str etag)
{
    pt_str mine = opaque(etag);
    const char *p = list.data, *end = list.data + list.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            break;
        if (*p == '*')
            return true;
        const char *s = p;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (p < end && *p == '"') {
            p++;
            while (p < end && *p != '"')
                p++;
            if (p < end)
                p++;
        }
        pt_str theirs = opaque((pt_str) { (size_t) (p - s), s });
        if (mine.len && theirs.len && pt_str_eq(mine, theirs))
            return true;
        while (p < end && *p != ',')
            p++;
    }
    return false;
}

/* ------------------------------------------------------------------ what is stored */

/* RFC 9110 15.1: heuristically cacheable statuses may be stored with the route's default
 * freshness; with explicit freshness, other final statuses this cache understands too.
 * 206 (ranges) is never stored: requests for ranges are passed through. */
bool cache_status_cacheable(unsigned status, bool explicit_freshness)
{
    switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return true;
    case 302: case 303: case 307:
        return explicit_freshness;
    default:
        return false;
    }
}

/* Not stored (RFC 9111 3.1: hop-by-hop, already removed by the proxy; Age is computed
 * on every hit; the cache's own status), and not taken from a 304 (4.3.4: framing). */
bool cache_field_unstored(pt_str n)
{
    switch (pt_tolower(n.len ? n.data[0] : 0)) {
    case 'a':
        return pt_str_caseeq_lit(n, "age");
    case 'c':
        return pt_str_caseeq_lit(n, "connection") || pt_str_caseeq_lit(n, "content-length");
    case 'k':
        return pt_str_caseeq_lit(n, "keep-alive");
    case 'p':
        return pt_str_caseeq_lit(n, "proxy-connection");
    case 't':
        return pt_str_caseeq_lit(n, "te") || pt_str_caseeq_lit(n, "trailer")
               || pt_str_caseeq_lit(n, "transfer-encoding");
    case 'u':
        return pt_str_caseeq_lit(n, "upgrade");
    case 'x':
        return pt_str_caseeq_lit(n, "x-cache-status");
    default:
        return false;
    }
}

/* ------------------------------------------------------------------ checksum */

static inline uint64_t sum_word(uint64_t h, uint64_t w)
{
    h ^= w * 0x9e3779b97f4a7c15ull;
    h = (h << 27 | h >> 37) * 0xbf58476d1ce4e5b9ull;
    return h;
}

/* Over 8-byte words, the last partial word padded with zeros; streams split anywhere
 * give the same sum only through the writer's carry (cache_store.c keeps it). */
uint64_t cache_sum_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = sum_word(h, w);
        b += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, b, n);
        h = sum_word(h, w ^ ((uint64_t) n << 56));
    }
    return h;
}

void cache_summer_feed(cache_summer *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n && s->n) {                     /* complete the carried word first */
        s->tail |= (uint64_t) *p++ << (8 * s->n);
        n--;
        if (++s->n == 8) {
            s->sum = cache_sum_bytes(s->sum, &s->tail, 8);
            s->tail = 0;
            s->n = 0;
        }
    }
    size_t whole = n & ~(size_t) 7;
    s->sum = cache_sum_bytes(s->sum, p, whole);
    for (size_t i = whole; i < n; i++)
        s->tail |= (uint64_t) p[i] << (8 * s->n++);
}

/* Equal to cache_sum_bytes(0, stream) over the whole stream at once. */
uint64_t cache_summer_final(const cache_summer *s)
{
    return s->n ? cache_sum_bytes(s->sum, &s->tail, s->n) : s->sum;
}

/* ------------------------------------------------------------------ storing a response */

/* RFC 9111 4.2.1: the freshness lifetime a response gives itself, -1: none. */
static int64_t explicit_lifetime(const cache_cc *cc, const pt_header *hs, uint32_t n)
{
    if (cc->s_maxage >= 0)
        return cc->s_maxage;
    if (cc->max_age >= 0)
        return cc->max_age;
    const pt_header *ex = pt_h1_find(hs, n, PT_STR("Expires"));
    if (ex == NULL)
        return -1;
    int64_t expires, date;
    if (!cache_parse_date(ex->value, &expires))
        return 0;                       /* an invalid Expires is in the past (5.3) */
    const pt_header *d = pt_h1_find(hs, n, PT_STR("Date"));
    if (d == NULL || !cache_parse_date(d->value, &date))
        return 0;                       /* the cache has no clock of the origin to go by */
    return expires > date ? expires - date : 0;
}

/* The Vary field names, lower-case, one per line; false for "*". */
static bool vary_names(pt_pool *pool, const pt_header *hs, uint32_t n, pt_str *out)
{
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        if (pt_str_caseeq_lit(hs[i].name, "vary"))
            len += hs[i].value.len + 1;
    *out = PT_STR_NULL;
    if (len == 0)
        return true;
    char *buf = pt_palloc(pool, len + 1), *o = buf;
    if (buf == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        if (!pt_str_caseeq_lit(hs[i].name, "vary"))
            continue;
        const char *p = hs[i].value.data, *end = p + hs[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p == s)
                continue;
            if (p - s == 1 && *s == '*')
                return false;
            for (const char *c = s; c < p; c++)
                *o++ = (char) pt_tolower(*c);
            *o++ = '\n';
        }
    }
    *out = (pt_str) { (size_t) (o - buf), buf };
    return true;
}

bool cache_response_meta(const cache_reqinfo *q, const cache_route_conf *rc, unsigned status,
                         const pt_header *hs, uint32_t n, uint64_t resp_ms, pt_pool *pool,
                         cache_meta *m, pt_str *names, const char **why)
{
    cache_cc cc;
    memset(m, 0, sizeof(*m));
    *names = PT_STR_NULL;
    if (!q->get)
        return *why = "not a GET", false;
    if (q->no_store)
        return *why = "the request said no-store", false;
    cache_cc_parse(hs, n, &cc);
    if (cc.no_store)
        return *why = "no-store", false;
    if (cc.private_)
        return *why = "private", false;
    if (!rc->store_set_cookie && pt_h1_find(hs, n, PT_STR("Set-Cookie")))
        return *why = "Set-Cookie", false;
    if (q->authorization && !cc.public_ && cc.s_maxage < 0 && !cc.must_revalidate)
        return *why = "the request had Authorization", false;
    if (!vary_names(pool, hs, n, names))
        return *why = "Vary: *", false;
    int64_t life = explicit_lifetime(&cc, hs, n);
    bool explicit_ = life >= 0;
    if (!explicit_ && cc.no_cache) {
        life = 0;                       /* stored to be revalidated on every use */
        explicit_ = true;
    } else if (!explicit_) {
        if (rc->default_ttl_s == 0)
            return *why = "no freshness given and default_ttl_s is 0", false;
        life = rc->default_ttl_s;
    }
    if (!cache_status_cacheable(status, explicit_))
        return *why = "status not cacheable", false;
    const pt_header *et = pt_h1_find(hs, n, PT_STR("ETag"));
    const pt_header *lm = pt_h1_find(hs, n, PT_STR("Last-Modified"));
    if (life == 0 && et == NULL && lm == NULL)
        return *why = "stale on arrival and no validator", false;
    m->status = (uint16_t) status;
    if (cc.no_cache)
        m->flags |= CE_NO_CACHE;
    if (cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage >= 0)
        m->flags |= CE_MUST_REVALIDATE;
    if (cc.public_ || cc.s_maxage >= 0 || cc.must_revalidate)
        m->flags |= CE_AUTH_OK;
    if (et)
        m->flags |= CE_ETAG;
    if (lm)
        m->flags |= CE_LAST_MODIFIED;
    /* RFC 9111 4.2.3: corrected initial age */
    m->resp_ms = resp_ms;
    int64_t apparent = 0, age_value = 0, date;
    const pt_header *d = pt_h1_find(hs, n, PT_STR("Date"));
    if (d && cache_parse_date(d->value, &date) && (int64_t) (resp_ms / 1000) > date)
        apparent = (int64_t) (resp_ms / 1000) - date;
    const pt_header *a = pt_h1_find(hs, n, PT_STR("Age"));
    if (a) {
        age_value = 0;
        for (size_t i = 0; i < a->value.len && a->value.data[i] >= '0'
                           && a->value.data[i] <= '9' && age_value < 1000000000; i++)
            age_value = age_value * 10 + (a->value.data[i] - '0');
    }
    int64_t delay = resp_ms > q->req_ms ? (int64_t) ((resp_ms - q->req_ms) / 1000) : 0;
    int64_t initial = pt_max(apparent, age_value + delay);
    m->initial_age = (uint32_t) pt_min(initial, (int64_t) UINT32_MAX);
    m->lifetime = (uint32_t) pt_min(life, (int64_t) UINT32_MAX);
    m->swr = (uint32_t) (cc.stale_while_revalidate >= 0
                         ? pt_min(cc.stale_while_revalidate, (int64_t) UINT32_MAX) : rc->swr_s);
    m->sie = (uint32_t) (cc.stale_if_error >= 0
                         ? pt_min(cc.stale_if_error, (int64_t) UINT32_MAX) : rc->sie_s);
    return true;
}

/* RFC 9111 4.3.4: the stored fields, with every field the 304 carries replacing the
 * stored fields of that name (framing and this cache's own fields excepted). */
pt_str cache_merge_head(pt_pool *pool, pt_str stored, const pt_header *hs, uint32_t n)
{
    uint32_t ns = 0;
    pt_header *old = cache_head_fields(pool, stored, &ns);
    if (old == NULL)
        return PT_STR_NULL;
    pt_header *all = pt_palloc(pool, (ns + n + 1) * sizeof(pt_header));
    if (all == NULL)
        return PT_STR_NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; i < ns; i++) {
        bool replaced = false;
        for (uint32_t j = 0; j < n && !replaced; j++)
            replaced = !cache_field_unstored(hs[j].name)
                       && pt_str_caseeq(hs[j].name, old[i].name);
        if (!replaced)
            all[k++] = old[i];
    }
    for (uint32_t j = 0; j < n; j++)
        if (!cache_field_unstored(hs[j].name))
            all[k++] = hs[j];
    return cache_head_text(pool, all, k);
}
