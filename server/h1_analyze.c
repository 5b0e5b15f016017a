/* HTTP/1.x message semantics: what a complete head means for routing, framing and the
 * connection (RFC 9110 §7.2, §8.6, §10.1.1; RFC 9112 §3.2, §6, §9).
 * Policy: every ambiguity in framing is an error, so the message is rejected and the
 * connection closed rather than guessed at (a guess that differs from the origin's is a
 * smuggling vector). */
#include "portico/h1.h"
#include "portico/str.h"
#include "h1_chars.h"

/* What one pass over the header fields found. */
typedef struct {
    const pt_header *host, *cl, *te;
    unsigned         nhost, ncl, nte;
    bool             has_upgrade;
    bool             expect_continue, expect_other;
    bool             conn_close, conn_keepalive, conn_upgrade;
} fields_t;

static const pt_str slash = { 1, "/" };

/* Case-insensitive compare of s with a lower-case literal of the same length. */
static bool lower_eq(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pt_tolower(s[i]) != (unsigned char) lit[i])
            return false;
    return true;
}

#define name_is(name, lit) lower_eq((name).data, lit, sizeof(lit) - 1)

static pt_str trim_ows(const char *s, size_t n)
{
    pt_str r;

    while (n && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    r.data = s;
    r.len = n;
    return r;
}

/* Calls out for each OWS-trimmed element of a comma-separated list; stops when it says so. */
static bool list_each(pt_str v, bool (*fn)(pt_str el, void *arg), void *arg)
{
    size_t i = 0, start;

    while (i <= v.len) {
        start = i;
        while (i < v.len && v.data[i] != ',')
            i++;
        if (fn(trim_ows(v.data + start, i - start), arg))
            return true;
        i++;
    }
    return false;
}

static bool match_token(pt_str el, void *arg)
{
    return pt_str_caseeq(el, *(const pt_str *) arg);
}

bool pt_h1_list_has(pt_str value, pt_str token)
{
    return list_each(value, match_token, &token);
}

const pt_header *pt_h1_find(const pt_header *hs, uint32_t n, pt_str name)
{
    for (uint32_t i = 0; i < n; i++)
        if (pt_str_caseeq(hs[i].name, name))
            return &hs[i];
    return NULL;
}

bool pt_h1_connection_lists(const pt_header *hs, uint32_t n, pt_str name)
{
    for (uint32_t i = 0; i < n; i++)
        if (hs[i].name.len == 10 && name_is(hs[i].name, "connection")
            && pt_h1_list_has(hs[i].value, name))
        {
            return true;
        }
    return false;
}

static bool add_token(pt_str el, void *arg)
{
    pt_h1_conn_set *s = arg;
    if (el.len == 0)
        return false;
    if (s->n == PT_H1_CONN_TOKENS) {
        s->overflow = true;
        return true;
    }
    s->tok[s->n++] = el;
    return false;
}

void pt_h1_conn_set_init(pt_h1_conn_set *s, const pt_header *hs, uint32_t n)
{
    s->n = 0;
    s->overflow = false;
    s->hs = hs;
    s->nh = n;
    for (uint32_t i = 0; i < n && !s->overflow; i++)
        if (hs[i].name.len == 10 && name_is(hs[i].name, "connection"))
            list_each(hs[i].value, add_token, s);
}

bool pt_h1_conn_set_has(const pt_h1_conn_set *s, pt_str name)
{
    if (s->overflow)
        return pt_h1_connection_lists(s->hs, s->nh, name);
    for (unsigned i = 0; i < s->n; i++)
        if (s->tok[i].len == name.len && pt_str_caseeq(s->tok[i], name))
            return true;
    return false;
}

static bool conn_option(pt_str el, void *arg)
{
    fields_t *f = arg;

    if (el.len == 5 && name_is(el, "close"))
        f->conn_close = true;
    else if (el.len == 10 && name_is(el, "keep-alive"))
        f->conn_keepalive = true;
    else if (el.len == 7 && name_is(el, "upgrade"))
        f->conn_upgrade = true;
    return false;
}

static void scan_fields(const pt_h1_head *h, fields_t *f)
{
    memset(f, 0, sizeof(*f));

    /* Switch on the length first: most fields are rejected without touching a byte. */
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const pt_header *hd = &h->headers[i];

        switch (hd->name.len) {
        case 4:
            if (name_is(hd->name, "host")) {
                f->host = hd;
                f->nhost++;
            }
            break;
        case 6:
            if (name_is(hd->name, "expect")) {
                if (hd->value.len == 12 && name_is(hd->value, "100-continue"))
                    f->expect_continue = true;
                else
                    f->expect_other = true;
            }
            break;
        case 7:
            if (name_is(hd->name, "upgrade"))
                f->has_upgrade = true;
            break;
        case 10:
            if (name_is(hd->name, "connection"))
                list_each(hd->value, conn_option, f);
            break;
        case 14:
            if (name_is(hd->name, "content-length")) {
                f->cl = hd;
                f->ncl++;
            }
            break;
        case 17:
            if (name_is(hd->name, "transfer-encoding")) {
                f->te = hd;
                f->nte++;
            }
            break;
        }
    }
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6), as an int64. A list ("5, 5") is refused even
 * when the members agree: a single unambiguous value or nothing. */
static bool parse_content_length(pt_str v, int64_t *out)
{
    uint64_t n;

    if (v.len == 0 || v.len > 19)
        return false;
    if (!pt_parse_u64(v, INT64_MAX, &n))
        return false;
    *out = (int64_t) n;
    return true;
}

/* dec-octet "." dec-octet "." dec-octet "." dec-octet, no leading zeros (RFC 3986 §3.2.2). */
static bool valid_ipv4(const char *s, size_t n)
{
    size_t   i = 0;
    unsigned octets = 0, v, digits;

    for ( ;; ) {
        v = 0;
        digits = 0;
        while (i < n && pt_h1_is(s[i], PT_H1_C_DIGIT) && digits < 4) {
            v = v * 10 + (unsigned) (s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[i - digits] == '0'))
            return false;
        if (++octets == 4)
            return i == n;
        if (i == n || s[i] != '.')
            return false;
        i++;
    }
}

/* IPv6address of RFC 3986 §3.2.2: h16 groups, at most one "::", an optional IPv4 tail.
 * No zone identifier and no IPvFuture: nothing we route to needs them. */
static bool valid_ipv6(const char *s, size_t n)
{
    size_t   i = 0, j;
    unsigned groups = 0;
    bool     dcolon = false;

    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        dcolon = true;
        i = 2;
        if (i == n)
            return true;
    }

    for ( ;; ) {
        j = i;
        while (j < n && pt_h1_is(s[j], PT_H1_C_HEX) && j - i < 5)
            j++;
        if (j < n && s[j] == '.') {
            if (!valid_ipv4(s + i, n - i))
                return false;
            groups += 2;
            break;
        }
        if (j == i || j - i > 4)
            return false;
        groups++;
        if (j == n)
            break;
        if (s[j] != ':')
            return false;
        j++;
        if (j < n && s[j] == ':') {
            if (dcolon)
                return false;
            dcolon = true;
            j++;
            if (j == n)
                break;
        } else if (j == n) {
            return false;
        }
        i = j;
    }
    return dcolon ? groups <= 7 : groups == 8;
}

/* authority = uri-host [ ":" port ] as allowed in Host and absolute-form (RFC 9110 §7.2).
 * Stricter than RFC 3986: the host may not be empty, a ":" needs a port, and a reg-name is
 * a host name (letters, digits, '-', '.', '_'): no ',' (how two Hosts get folded into
 * one field), no '%', no sub-delims. */
static bool parse_authority(pt_str a, pt_str *host)
{
    const char *s = a.data;
    size_t      n = a.len, i = 0, pstart;
    unsigned    port;

    if (n == 0)
        return false;

    if (s[0] == '[') {
        while (i < n && s[i] != ']')
            i++;
        if (i == n || !valid_ipv6(s + 1, i - 1))
            return false;
        i++;
    } else {
        /* A DNS name or an IPv4 address. RFC 3986's reg-name also has percent-encoding
         * and sub-delims, but no route and no DNS name can have them, while an origin may
         * decode "internal%2eexample" into the name a host route did not see. Empty labels
         * go too ("a..b", ".a"); one trailing dot (the root) is the same name without. */
        while (i < n && pt_h1_is(s[i], PT_H1_C_HOST)) {
            if (s[i] == '.' && (i == 0 || s[i - 1] == '.'))
                return false;
            i++;
        }
        if (i == 0)
            return false;
    }

    host->data = s;
    host->len = i;
    if (i == n)
        return true;
    if (s[i] != ':')
        return false;

    pstart = ++i;
    port = 0;
    while (i < n && pt_h1_is(s[i], PT_H1_C_DIGIT) && i - pstart < 5) {
        port = port * 10 + (unsigned) (s[i] - '0');
        i++;
    }
    return i == n && i > pstart && port <= 65535;
}

static bool ci_prefix(pt_str s, const char *lit, size_t n)
{
    return s.len >= n && lower_eq(s.data, lit, n);
}

/* Splits path and query from the part of a target starting at its absolute path. */
static void split_path(const char *s, size_t n, pt_h1_req_info *ri)
{
    const char *q = memchr(s, '?', n);

    if (q == NULL) {
        ri->path.data = s;
        ri->path.len = n;
        ri->query = PT_STR_NULL;
    } else {
        ri->path.data = s;
        ri->path.len = (size_t) (q - s);
        ri->query.data = q + 1;
        ri->query.len = n - (size_t) (q - s) - 1;
    }
    if (ri->path.len == 0)
        ri->path = slash;
}

/* Request-target forms (RFC 9112 §3.2). Returns 0 or the status to answer with. */
static unsigned analyze_target(const pt_h1_head *h, pt_h1_req_info *ri, const char **why)
{
    pt_str      t = h->target;
    size_t      skip, i;
    pt_str      auth;

    if (t.len && t.data[0] == '/') {
        split_path(t.data, t.len, ri);
        return 0;
    }

    if (t.len == 1 && t.data[0] == '*') {
        if (h->method_id != PT_M_OPTIONS) {
            *why = "asterisk-form target with a method other than OPTIONS";
            return 400;
        }
        ri->path = t;
        ri->asterisk_form = true;
        return 0;
    }

    if (ci_prefix(t, "http://", 7))
        skip = 7;
    else if (ci_prefix(t, "https://", 8))
        skip = 8;
    else if (h->method_id == PT_M_CONNECT)
        return 0;    /* authority-form: refused with 405 by the caller anyway */
    else {
        *why = "invalid request target form or scheme";
        return 400;
    }

    i = skip;
    while (i < t.len && t.data[i] != '/' && t.data[i] != '?') {
        if (t.data[i] == '@') {
            *why = "userinfo in absolute-form target";
            return 400;
        }
        i++;
    }
    auth.data = t.data + skip;
    auth.len = i - skip;
    if (!parse_authority(auth, &ri->host)) {
        *why = "invalid authority in absolute-form target";
        return 400;
    }
    ri->authority = auth;
    ri->absolute_form = true;
    split_path(t.data + i, t.len - i, ri);
    return 0;
}

#define reject(st, msg) \
    do {                \
        *status = (st); \
        *why = (msg);   \
        return PT_ERROR; \
    } while (0)

int pt_h1_analyze_request(const pt_h1_head *h, pt_h1_req_info *ri, unsigned *status,
                          const char **why)
{
    fields_t f;
    pt_str   host;
    unsigned st;

    memset(ri, 0, sizeof(*ri));
    ri->method = h->method_id;
    ri->version = h->version;
    ri->content_length = -1;

    scan_fields(h, &f);

    /* Framing first (RFC 9112 §6.3): a body we cannot delimit means closing. */
    if (f.ncl > 1)
        reject(400, "multiple Content-Length fields");
    if (f.ncl == 1 && !parse_content_length(f.cl->value, &ri->content_length))
        reject(400, "invalid Content-Length");
    if (f.nte) {
        if (h->version == 10)
            reject(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (f.ncl)
            reject(400, "both Content-Length and Transfer-Encoding");
        if (f.nte > 1)
            reject(400, "multiple Transfer-Encoding fields");
        /* Only chunked alone: anything else is either unsupported or a smuggling attempt,
         * and falling back to Content-Length is exactly what must not happen. */
        if (f.te->value.len != 7 || !name_is(f.te->value, "chunked"))
            reject(400, "unsupported Transfer-Encoding");
        ri->chunked = true;
    }

    if (f.nhost > 1)
        reject(400, "multiple Host fields");
    if (f.nhost == 0 && h->version == 11)
        reject(400, "missing Host field");
    if (f.nhost == 1) {
        if (!parse_authority(f.host->value, &host))
            reject(400, "invalid Host field");
        ri->authority = f.host->value;
        ri->host = host;
    }

    st = analyze_target(h, ri, why);
    if (st) {
        *status = st;
        return PT_ERROR;
    }
    if (h->method_id == PT_M_CONNECT)
        reject(405, "CONNECT is not supported");

    if (h->version == 11) {
        if (f.expect_other)
            reject(417, "unsupported expectation");
        ri->expect_continue = f.expect_continue;
    }

    ri->keepalive = !f.conn_close && (h->version == 11 || f.conn_keepalive);
    ri->upgrade = f.has_upgrade && f.conn_upgrade;
    return PT_OK;
}

#define refuse(msg)    \
    do {               \
        *why = (msg);  \
        return PT_ERROR; \
    } while (0)

int pt_h1_analyze_response(const pt_h1_head *h, pt_method req_method, pt_h1_resp_info *ri,
                           const char **why)
{
    fields_t f;
    unsigned st = h->status;

    memset(ri, 0, sizeof(*ri));
    ri->status = st;
    ri->version = h->version;
    ri->content_length = -1;

    scan_fields(h, &f);

    /* 1xx and 204 never have content and must not say otherwise (RFC 9110 §8.6, §15). */
    if ((st < 200 || st == 204) && (f.ncl || f.nte))
        refuse("Content-Length or Transfer-Encoding in a 1xx or 204 response");
    if (st == 304 && f.nte)
        refuse("Transfer-Encoding in a 304 response");

    if (f.ncl > 1)
        refuse("multiple Content-Length fields");
    if (f.ncl == 1 && !parse_content_length(f.cl->value, &ri->content_length))
        refuse("invalid Content-Length");
    if (f.nte) {
        if (h->version == 10)
            refuse("Transfer-Encoding in an HTTP/1.0 response");
        if (f.ncl)
            refuse("both Content-Length and Transfer-Encoding");
        if (f.nte > 1)
            refuse("multiple Transfer-Encoding fields");
        if (f.te->value.len != 7 || !name_is(f.te->value, "chunked"))
            refuse("unsupported Transfer-Encoding");
    }

    if (st == 101) {
        ri->upgrade = true;
        ri->body = PT_BODY_NONE;
        return PT_OK;
    }

    if (req_method == PT_M_HEAD || st < 200 || st == 204 || st == 304)
        ri->body = PT_BODY_NONE;
    else if (f.nte)
        ri->body = PT_BODY_CHUNKED;
    else if (f.ncl)
        ri->body = PT_BODY_LENGTH;
    else
        ri->body = PT_BODY_CLOSE;

    ri->keepalive = ri->body != PT_BODY_CLOSE && !f.conn_close
                    && (h->version == 11 || f.conn_keepalive);
    return PT_OK;
}

const char *pt_h1_status_text(unsigned status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    }
    return "";
}
