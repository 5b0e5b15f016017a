/* Request fields with '_' in their name (underscores_in_headers).
 *
 * '_' is a valid tchar, so "X_Real_IP" is a field of its own to HTTP. But CGI, WSGI, Rack
 * and PHP expose fields as HTTP_<NAME> with '-' mapped to '_', so to an application behind
 * them X_Real_IP and X-Real-IP are the same variable, and whichever it reads first wins.
 * A client could then speak for portico (X-Real-IP, X-Forwarded-For) or give an origin
 * that folds the names a second framing (Content_Length, Transfer_Encoding).
 * Pure: the fields are removed from the caller's array in place; logging is the
 * caller's. */
#include "portico/h1.h"
#include "portico/str.h"

/* '_' read as '-', then lower case: the name as a CGI-style origin would compare it. */
static unsigned char dash_lower(char c)
{
    return c == '_' ? '-' : pt_tolower(c);
}

bool pt_h1_name_dash_eq(pt_str a, pt_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (dash_lower(a.data[i]) != dash_lower(b.data[i]))
            return false;
    return true;
}

static bool twin_of(pt_str n, const char *lit)
{
    return pt_h1_name_dash_eq(n, (pt_str) { strlen(lit), lit });
}

/* The request fields portico reads or writes itself: framing, connection handling, and
 * what the proxy generates. Only names with a '-' can have an underscore twin; Host,
 * Connection, Upgrade, TE, Trailer and Expect are managed too but have none. */
bool pt_h1_managed_twin(pt_str n)
{
    switch (n.len) {
    case 9:
        return twin_of(n, "x-real-ip");
    case 10:
        return twin_of(n, "keep-alive");
    case 14:
        return twin_of(n, "content-length");
    case 15:
        return twin_of(n, "x-forwarded-for");
    case 16:
        return twin_of(n, "proxy-connection") || twin_of(n, "x-forwarded-host");
    case 17:
        return twin_of(n, "transfer-encoding") || twin_of(n, "x-forwarded-proto");
    default:
        return false;
    }
}

int pt_h1_underscore_fields(pt_h1_head *h, unsigned policy, pt_str *dropped, unsigned cap)
{
    pt_header *hs = h->headers;
    uint32_t   i, w = 0;
    int        n = 0;
    bool       left = false;

    for (i = 0; i < h->nheaders; i++) {
        pt_str name = hs[i].name;
        bool   out = false;

        if (memchr(name.data, '_', name.len) != NULL) {
            if (policy == PT_H1_US_REJECT) {
                if (cap)
                    dropped[0] = name;
                return -1;
            }
            out = policy == PT_H1_US_DROP || pt_h1_managed_twin(name);
            left = left || !out;
        }
        if (out) {
            if ((unsigned) n < cap)
                dropped[n] = name;
            n++;
            continue;
        }
        hs[w++] = hs[i];
    }
    h->nheaders = w;
    h->underscore = left;   /* later readers (the proxy) skip their check if none is */
    return n;
}
