/* Route lookup. Routes are tried in file order and the first whose conditions all hold
 * wins, but scanning them all would cost time linear in the number of hosts, and hosting
 * providers configure thousands. So the routes are grouped at load:
 *   exact hosts      -> hash table: host -> ascending route indices
 *   wildcard suffixes -> hash table: ".example.com" -> ascending route indices
 *   no host          -> one ascending list
 * A lookup probes the exact host and each suffix at a label boundary (no more labels than
 * the longest wildcard has), then merges the few candidate lists in ascending order and
 * tests the remaining conditions; the first candidate that holds is the file-order winner.
 * Nothing is allocated per lookup. */
#include <limits.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "portico/conf.h"
#include "portico/module.h"
#include "portico/counters.h"
#include "portico/str.h"
#include "conf_int.h"

/* Candidate lists merged at once: the host-less list, the exact host and up to 8 wildcard
 * suffixes. A host hitting more wildcards than that is served by further rounds, each
 * bounded by the best index found so far, so the answer stays the file-order one. */
#define PT_ROUTE_LISTS 10

typedef struct {
    const unsigned *v;
    unsigned        n;
} route_list;

typedef struct {
    pt_str    path;
    pt_method method;
    pt_str    method_name;
    unsigned  listener;
    bool      any_method;     /* pt_route_allow: the method is not a condition */
} route_req;

static bool key_eq(const pt_route_bucket *b, const char *p, size_t n, uint32_t h)
{
    if (b->hash != h || b->key.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (pt_tolower(p[i]) != (unsigned char) b->key.data[i])
            return false;
    return true;
}

static pt_route_bucket *bucket_find(pt_route_bucket *const *tab, uint32_t nbuckets,
                                    const char *p, size_t n)
{
    uint32_t h = pt_hash_lower(p, n);
    for (pt_route_bucket *b = tab[h & (nbuckets - 1)]; b; b = b->next)
        if (key_eq(b, p, n, h))
            return b;
    return NULL;
}

static void bucket_add(pt_route_table *t, pt_route_bucket **tab, pt_route_bucket *b)
{
    pt_route_bucket **head = &tab[b->hash & (t->nbuckets - 1)];
    b->next = *head;
    *head = b;
}

int pt_route_table_build(pt_conf_ctx *cx)
{
    pt_conf *conf = cx->conf;
    pt_route_table *t = &conf->route_table;
    unsigned nhost = 0, nany = 0;

    memset(t, 0, sizeof(*t));
    for (unsigned i = 0; i < conf->nroutes; i++) {
        const pt_route *rt = &conf->routes[i];
        if ((rt->methods || rt->nmethod_names) && t->refused_methods == NULL
            && pt_counter_declare(cx, "route", "methods", &t->refused_methods) != PT_OK)
            return PT_ERROR;
    }
    for (unsigned i = 0; i < conf->nroutes; i++) {
        if (conf->routes[i].has_host)
            nhost++;
        else
            nany++;
    }
    if (nany) {
        unsigned *any = pt_conf_alloc(cx, nany * sizeof(unsigned));
        if (any == NULL)
            return PT_ERROR;
        for (unsigned i = 0; i < conf->nroutes; i++)
            if (!conf->routes[i].has_host)
                any[t->nany++] = i;
        t->any = any;
    }
    if (nhost == 0)
        return PT_OK;

    /* load factor at most one */
    t->nbuckets = 16;
    while (t->nbuckets < nhost)
        t->nbuckets <<= 1;
    t->exact = pt_conf_alloc(cx, t->nbuckets * sizeof(pt_route_bucket *));
    t->wild = pt_conf_alloc(cx, t->nbuckets * sizeof(pt_route_bucket *));
    if (t->exact == NULL || t->wild == NULL)
        return PT_ERROR;

    /* first pass: one bucket per distinct key, counting its routes */
    for (unsigned i = 0; i < conf->nroutes; i++) {
        const pt_route *rt = &conf->routes[i];
        if (!rt->has_host)
            continue;
        pt_route_bucket **tab = rt->host_wildcard ? t->wild : t->exact;
        pt_route_bucket *b = bucket_find(tab, t->nbuckets, rt->host.data, rt->host.len);
        if (b == NULL) {
            b = pt_conf_alloc(cx, sizeof(*b));
            if (b == NULL)
                return PT_ERROR;
            b->key = rt->host;
            b->hash = pt_hash_lower(rt->host.data, rt->host.len);
            bucket_add(t, tab, b);
        }
        b->nroutes++;
        if (rt->host_wildcard) {
            unsigned labels = 0;
            for (size_t j = 0; j < rt->host.len; j++)
                labels += rt->host.data[j] == '.';
            t->max_labels = pt_max(t->max_labels, labels);
        }
    }
    /* second pass: fill the index lists; visiting routes in order keeps them ascending */
    for (unsigned i = 0; i < conf->nroutes; i++) {
        const pt_route *rt = &conf->routes[i];
        if (!rt->has_host)
            continue;
        pt_route_bucket **tab = rt->host_wildcard ? t->wild : t->exact;
        pt_route_bucket *b = bucket_find(tab, t->nbuckets, rt->host.data, rt->host.len);
        if (b->routes == NULL) {
            b->routes = pt_conf_alloc(cx, b->nroutes * sizeof(unsigned));
            if (b->routes == NULL)
                return PT_ERROR;
            b->nroutes = 0;
        }
        b->routes[b->nroutes++] = i;
    }
    return PT_OK;
}

/* prefix is lower-case (path_ignore_case): ASCII letters of the path in any case. */
static bool has_prefix_ci(pt_str s, pt_str prefix)
{
    if (s.len < prefix.len)
        return false;
    for (size_t i = 0; i < prefix.len; i++)
        if (pt_tolower(s.data[i]) != (unsigned char) prefix.data[i])
            return false;
    return true;
}

static bool route_matches(const pt_route *rt, const route_req *rq)
{
    if (rt->listener >= 0 && (unsigned) rt->listener != rq->listener)
        return false;
    if (rt->path_prefix.len
        && !(rt->path_ignore_case ? has_prefix_ci(rq->path, rt->path_prefix)
                                  : pt_str_has_prefix(rq->path, rt->path_prefix)))
        return false;
    if ((rt->methods || rt->nmethod_names) && !rq->any_method) {
        if (rq->method != PT_M_OTHER) {
            if ((unsigned) rq->method >= 32 || !(rt->methods & (1u << rq->method)))
                return false;
        } else {
            unsigned i;
            for (i = 0; i < rt->nmethod_names; i++)
                if (pt_str_eq(rt->method_names[i], rq->method_name))
                    break;
            if (i == rt->nmethod_names)
                return false;
        }
    }
    /* last: the only condition that costs more than a comparison */
    if (rt->path_regex) {
        int rc = pcre2_match(rt->path_regex, (PCRE2_SPTR) (rq->path.data ? rq->path.data : ""),
                             rq->path.len, 0, 0, rt->match_data, NULL);
        if (rc < 0)   /* no match, or a match limit hit: either way not this route */
            return false;
    }
    return true;
}

/* The smallest index below bound, over every list, whose route matches; bound if none. */
static unsigned merge(const pt_conf *conf, const route_list *l, unsigned nl, unsigned bound,
                      const route_req *rq)
{
    unsigned pos[PT_ROUTE_LISTS] = { 0 };

    for (;;) {
        unsigned min = bound, which = nl;
        for (unsigned i = 0; i < nl; i++) {
            if (pos[i] < l[i].n && l[i].v[pos[i]] < min) {
                min = l[i].v[pos[i]];
                which = i;
            }
        }
        if (which == nl)
            return bound;
        pos[which]++;
        if (route_matches(&conf->routes[min], rq))
            return min;
    }
}

const pt_route *pt_route_find(const pt_conf *conf, pt_str host, pt_str path, pt_method m,
                              pt_str method_name, unsigned listener)
{
    const pt_route_table *t = &conf->route_table;
    route_req rq = { path, m, method_name, listener, false };
    route_list lists[PT_ROUTE_LISTS];
    unsigned nl = 0, best = UINT_MAX;
    const pt_route_bucket *b;

    if (t->nany)
        lists[nl++] = (route_list) { t->any, t->nany };
    if (host.len && host.data[host.len - 1] == '.')   /* "example.com." names example.com */
        host.len--;
    if (t->nbuckets && host.len) {
        b = bucket_find(t->exact, t->nbuckets, host.data, host.len);
        if (b)
            lists[nl++] = (route_list) { b->routes, b->nroutes };
        /* suffixes from the shortest; i > 0 keeps the subdomain part non-empty, so
         * "*.example.com" never matches example.com itself */
        unsigned labels = 0;
        for (size_t i = host.len - 1; i > 0 && labels < t->max_labels; i--) {
            if (host.data[i] != '.')
                continue;
            labels++;
            b = bucket_find(t->wild, t->nbuckets, host.data + i, host.len - i);
            if (b == NULL)
                continue;
            if (nl == PT_ROUTE_LISTS) {
                best = merge(conf, lists, nl, best, &rq);
                nl = 0;
            }
            lists[nl++] = (route_list) { b->routes, b->nroutes };
        }
    }
    best = merge(conf, lists, nl, best, &rq);
    return best < conf->nroutes ? &conf->routes[best] : NULL;
}

/* In pt_method order; PT_M_OTHER has no name. */
static const char *const method_text[] = {
    NULL, "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"
};

typedef struct {
    uint32_t     methods;
    const pt_str *names[16];       /* other method tokens, each once */
    unsigned     nnames;
    bool         any;
} allow_acc;

static void allow_list(const pt_conf *conf, const unsigned *v, unsigned n, const route_req *rq,
                       allow_acc *acc)
{
    for (unsigned i = 0; i < n; i++) {
        const pt_route *rt = &conf->routes[v[i]];
        if (!route_matches(rt, rq))
            continue;
        acc->any = true;
        acc->methods |= rt->methods;
        for (unsigned j = 0; j < rt->nmethod_names; j++) {
            unsigned k;
            for (k = 0; k < acc->nnames; k++)
                if (pt_str_eq(*acc->names[k], rt->method_names[j]))
                    break;
            if (k == acc->nnames && acc->nnames < pt_nelems(acc->names))
                acc->names[acc->nnames++] = &rt->method_names[j];
        }
    }
}

size_t pt_route_allow(const pt_conf *conf, pt_str host, pt_str path, unsigned listener,
                      char *buf, size_t size)
{
    const pt_route_table *t = &conf->route_table;
    route_req rq = { path, PT_M_OTHER, PT_STR_NULL, listener, true };
    allow_acc acc;
    const pt_route_bucket *b;

    memset(&acc, 0, sizeof(acc));
    allow_list(conf, t->any, t->nany, &rq, &acc);
    if (host.len && host.data[host.len - 1] == '.')
        host.len--;
    if (t->nbuckets && host.len) {
        b = bucket_find(t->exact, t->nbuckets, host.data, host.len);
        if (b)
            allow_list(conf, b->routes, b->nroutes, &rq, &acc);
        unsigned labels = 0;
        for (size_t i = host.len - 1; i > 0 && labels < t->max_labels; i--) {
            if (host.data[i] != '.')
                continue;
            labels++;
            b = bucket_find(t->wild, t->nbuckets, host.data + i, host.len - i);
            if (b)
                allow_list(conf, b->routes, b->nroutes, &rq, &acc);
        }
    }
    if (!acc.any)
        return 0;
    size_t len = 0;
    for (unsigned m = 1; m < pt_nelems(method_text); m++) {
        size_t n = strlen(method_text[m]);
        if (!(acc.methods & (1u << m)) || len + n + 2 > size)
            continue;
        if (len) {
            memcpy(buf + len, ", ", 2);
            len += 2;
        }
        memcpy(buf + len, method_text[m], n);
        len += n;
    }
    for (unsigned k = 0; k < acc.nnames; k++) {
        const pt_str *n = acc.names[k];
        if (len + n->len + 2 > size)
            break;
        if (len) {
            memcpy(buf + len, ", ", 2);
            len += 2;
        }
        memcpy(buf + len, n->data, n->len);
        len += n->len;
    }
    return len;
}

bool pt_conf_any_route(const pt_conf *conf, const pt_module *m, bool (*used)(const void *rconf))
{
    if (conf == NULL)
        return true;                    /* no configuration to go by: keep the handlers */
    for (unsigned i = 0; i < conf->nroutes; i++)
        if (conf->routes[i].mod_conf && used(conf->routes[i].mod_conf[m->index]))
            return true;
    return conf->filters_global && conf->filters_global->mod_conf
           && used(conf->filters_global->mod_conf[m->index]);
}
