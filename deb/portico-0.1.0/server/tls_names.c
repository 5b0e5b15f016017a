/* The SNI lookup of a TLS listener: exact names and wildcard suffixes in two hash tables.
 * A wildcard covers exactly one label (RFC 6125 §6.4.3: "*.example.net" matches
 * "a.example.net", not "example.net" nor "a.b.example.net"), so a name costs at most two
 * probes: itself, then its suffix after the first label. 10,000 certificates cost no scan.
 * Pure data structure: no OpenSSL, no I/O (t/unit/test_tls_names.c). */
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/tls.h"

int pt_tls_names_init(pt_tls_names *t, pt_pool *pool, unsigned expected)
{
    uint32_t n = 16;
    while (n < expected * 2u && n < (1u << 24))
        n <<= 1;
    t->exact = pt_pcalloc(pool, n * sizeof(pt_tls_name *));
    t->wild = pt_pcalloc(pool, n * sizeof(pt_tls_name *));
    t->mask = n - 1;
    t->n = 0;
    return t->exact && t->wild ? PT_OK : PT_ERROR;
}

static pt_tls_name *lookup(pt_tls_name **table, uint32_t mask, const char *s, size_t len,
                           uint32_t h)
{
    for (pt_tls_name *e = table[h & mask]; e; e = e->next)
        if (e->hash == h && e->len == len
            && pt_str_caseeq((pt_str) { len, e->key }, (pt_str) { len, s }))
            return e;
    return NULL;
}

/* A DNS name as certificates carry it: letters, digits, '-', '_', dots between labels;
 * "*." only in front. */
bool pt_tls_name_valid(const char *s, size_t len)
{
    if (len >= 2 && s[0] == '*' && s[1] == '.') {
        s += 2;
        len -= 2;
    }
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = (char) pt_tolower(s[i]);
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

int pt_tls_names_add(pt_tls_names *t, pt_pool *pool, const char *name, size_t len,
                     void *value, void **existing)
{
    pt_tls_name **table = t->exact;
    if (len && name[len - 1] == '.')
        len--;
    if (!pt_tls_name_valid(name, len))
        return PT_DECLINED;
    if (len >= 2 && name[0] == '*' && name[1] == '.') {
        table = t->wild;
        name++;                         /* kept as ".example.net" */
        len--;
    }
    uint32_t h = pt_hash_lower(name, len);
    pt_tls_name *e = lookup(table, t->mask, name, len, h);
    if (e) {
        if (existing)
            *existing = e->value;
        return PT_DECLINED;
    }
    e = pt_palloc(pool, sizeof(*e));
    char *key = pt_palloc(pool, len + 1);
    if (e == NULL || key == NULL)
        return PT_ERROR;
    for (size_t i = 0; i < len; i++)
        key[i] = (char) pt_tolower(name[i]);
    key[len] = '\0';
    e->hash = h;
    e->len = (uint32_t) len;
    e->key = key;
    e->value = value;
    e->next = table[h & t->mask];
    table[h & t->mask] = e;
    t->n++;
    return PT_OK;
}

void *pt_tls_names_find(const pt_tls_names *t, const char *name, size_t len)
{
    if (t->exact == NULL || len == 0)
        return NULL;
    if (name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return NULL;
    pt_tls_name *e = lookup(t->exact, t->mask, name, len, pt_hash_lower(name, len));
    if (e)
        return e->value;
    const char *dot = memchr(name, '.', len);
    if (dot == NULL || dot == name)
        return NULL;
    size_t slen = len - (size_t) (dot - name);
    e = lookup(t->wild, t->mask, dot, slen, pt_hash_lower(dot, slen));
    return e ? e->value : NULL;
}
