/* acl: access by client address.
 *
 *   filters = { acls = ( { name = "office"; cidrs = [ "10.0.0.0/8", "!10.66.0.0/16",
 *                                                     "2001:db8::/32" ]; } ); };
 *   routes = ( { path_prefix = "/admin/"; allow = [ "office" ]; deny = [ "all" ]; ... } );
 *   filters = { global = { deny = [ "blocklist" ]; }; };        (every request, before routing)
 *
 * An access list is a longest-prefix tree (server/cidr_tree.c), so a list of 100,000
 * ranges costs a lookup of at most 33 (IPv4) or 129 (IPv6) steps, not a scan; "!range"
 * takes a narrower range out of a wider one. A route's (or filters.global's) allow and
 * deny entries are tried in the order they are written, allow and deny keys interleaved
 * as they stand in the file; the first entry holding the client decides. An entry is an
 * access list's name, "all", or an address or range written in place. When none holds,
 * the answer is the opposite of the last entry: a list of allows lets only those in, a
 * list of denies keeps only those out. A refusal is 403, logged with the entry that
 * decided, and counted under the access list ("acl:NAME", "acl:all", "acl:address").
 * The address is the client's: the PROXY protocol's when the listener has it. */
#include <netinet/in.h>
#include <stdio.h>

#include "portico/cidr.h"
#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/http.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"

#define ACL_NAME_MAX 40

typedef struct acl_list {
    const char       *name;
    pt_cidr_tree      tree;         /* value 1: in the list; 0: taken out by "!range" */
    pt_counter       *refused;
    unsigned          line;
} acl_list;

typedef struct {
    acl_list   *lists;
    unsigned    nlists;
    pt_counter *refused_all;        /* refusals by "all" */
    pt_counter *refused_address;    /* by an address written in place */
    bool        declared_all, declared_address;
} acl_main_conf;

typedef struct acl_entry {
    bool              allow;
    bool              all;
    const char       *text;         /* as written */
    config_setting_t *where;
    const acl_list   *list;         /* an access list; NULL: all, or the range below */
    pt_cidr           range;
    pt_counter      **refused;      /* where its refusals count (set once zones are mapped) */
} acl_entry;

typedef struct {
    acl_entry  *v;
    unsigned    n, cap;
    const char *scope;              /* "filters.global", "route at line 12": for the log */
} acl_route_conf;

pt_module pt_acl_module;

/* ---- configuration ---- */

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ACL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

static void tree_cleanup(void *data)
{
    pt_cidr_tree_free(data);
}

static int parse_list(pt_conf_ctx *cx, config_setting_t *e, void *arg, void *elem)
{
    acl_main_conf *mc = arg;
    acl_list *l = elem;
    if (!config_setting_is_group(e))
        return pt_conf_type_error(cx, e, "a group { name = ...; cidrs = [ ... ]; }");
    for (int i = 0, n = config_setting_length(e); i < n; i++) {
        const char *k = config_setting_name(config_setting_get_elem(e, (unsigned) i));
        if (strcmp(k, "name") != 0 && strcmp(k, "cidrs") != 0)
            return pt_conf_error(cx, config_setting_get_elem(e, (unsigned) i),
                                 "unknown key (an access list has name and cidrs)");
    }
    config_setting_t *ns = config_setting_get_member(e, "name");
    config_setting_t *cs = config_setting_get_member(e, "cidrs");
    if (ns == NULL)
        return pt_conf_error(cx, e, "missing key 'name'");
    if (cs == NULL)
        return pt_conf_error(cx, e, "missing key 'cidrs'");
    const char *name = config_setting_get_string(ns);
    if (name == NULL)
        return pt_conf_type_error(cx, ns, "a string");
    if (!valid_name(name))
        return pt_conf_error(cx, ns, "\"%s\": a name is 1..%d letters, digits, '-', '_' or '.'",
                             name, ACL_NAME_MAX);
    if (strcmp(name, "all") == 0)
        return pt_conf_error(cx, ns, "\"all\" is a keyword (every address), not a name");
    for (unsigned j = 0; j < mc->nlists; j++)
        if (strcmp(mc->lists[j].name, name) == 0)
            return pt_conf_error(cx, ns, "\"%s\" is already the name of the access list at "
                                 "line %u", name, mc->lists[j].line);
    if (!config_setting_is_array(cs) && !config_setting_is_list(cs))
        return pt_conf_type_error(cx, cs, "an array of ranges [ \"10.0.0.0/8\", ... ]");

    l->name = pt_pstrndup(cx->pool, name, strlen(name));
    l->line = pt_conf_setting_line(cx, e);
    pt_cidr_tree_init(&l->tree);
    if (l->name == NULL || pt_pool_cleanup_add(cx->pool, tree_cleanup, &l->tree) != PT_OK)
        return pt_conf_error(cx, NULL, "out of memory");
    for (int i = 0, n = config_setting_length(cs); i < n; i++) {
        config_setting_t *c = config_setting_get_elem(cs, (unsigned) i);
        const char *text = config_setting_get_string(c), *err = NULL;
        if (text == NULL)
            return pt_conf_type_error(cx, c, "a string like \"10.0.0.0/8\" or \"!10.1.0.0/16\"");
        bool out = text[0] == '!';
        pt_cidr range;
        if (!pt_cidr_parse(text + out, &range, &err))
            return pt_conf_error(cx, c, "\"%s\": %s", text, err);
        int32_t old = -1;
        int rc = pt_cidr_tree_add(&l->tree, &range, out ? 0 : 1, &old);
        if (rc == PT_ERROR)
            return pt_conf_error(cx, NULL, "out of memory");
        if (rc == PT_DECLINED && old != (out ? 0 : 1))
            return pt_conf_error(cx, c, "\"%s\": the range is listed both with and without '!'",
                                 text);
    }
    pt_cidr_tree_shrink(&l->tree);
    return pt_counter_declare(cx, "acl", l->name, &l->refused);
}

static int set_acls(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    acl_main_conf *mc = base;
    return pt_conf_parse_list(cx, s, "a list ( { name = ...; cidrs = [ ... ]; }, ... )", sizeof(acl_list), parse_list, mc,
                              &mc->lists, &mc->nlists);
}

/* allow = [ ... ] and deny = [ ... ]: entries appended in file order; names are resolved
 * once every key is read (conf_check). */
static int set_entries(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    acl_route_conf *rc = base;
    bool allow = k->min == 1;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array [ \"office\", \"10.0.0.0/8\", \"all\", ... ]");
    unsigned n = (unsigned) config_setting_length(s);
    if (n == 0)
        return pt_conf_error(cx, s, "empty: leave %s out instead", k->name);
    if (rc->n + n > rc->cap) {
        unsigned cap = rc->n + n + 4;
        acl_entry *v = pt_pcalloc(cx->pool, cap * sizeof(*v));
        if (v == NULL)
            return pt_conf_error(cx, NULL, "out of memory");
        if (rc->n)
            memcpy(v, rc->v, rc->n * sizeof(*v));
        rc->v = v;
        rc->cap = cap;
    }
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        const char *text = config_setting_get_string(e);
        if (text == NULL)
            return pt_conf_type_error(cx, e, "a string: an access list's name, an address "
                                      "or range, or \"all\"");
        rc->v[rc->n++] = (acl_entry) { .allow = allow, .text = text, .where = e };
    }
    return PT_OK;
}

/* "::ffff:10.0.0.0/104" is the IPv4 range 10.0.0.0/8, as in an access list. */
static void mapped_to_v4(pt_cidr *c)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (c->family != AF_INET6 || c->bits < 96 || memcmp(c->addr, mapped, 12) != 0)
        return;
    uint8_t v4[4];
    memcpy(v4, c->addr + 12, 4);
    memset(c->addr, 0, sizeof(c->addr));
    memcpy(c->addr, v4, 4);
    c->family = AF_INET;
    c->bits = (uint8_t) (c->bits - 96);
}

static int resolve(pt_conf_ctx *cx, acl_main_conf *mc, acl_route_conf *rc, const pt_route *rt)
{
    if (rc->n == 0)
        return PT_OK;
    char scope[48];
    if (rt->global)
        snprintf(scope, sizeof(scope), "filters.global");
    else
        snprintf(scope, sizeof(scope), "route at line %d", rt->line);
    rc->scope = pt_pstrndup(cx->pool, scope, strlen(scope));
    if (rc->scope == NULL)
        return pt_conf_error(cx, NULL, "out of memory");

    for (unsigned i = 0; i < rc->n; i++) {
        acl_entry *e = &rc->v[i];
        const char *err = NULL;
        if (strcmp(e->text, "all") == 0) {
            e->all = true;
            if (i + 1 < rc->n)
                return pt_conf_error(cx, rc->v[i + 1].where, "\"%s\" comes after \"all\", "
                                     "which holds every client: it is never reached",
                                     rc->v[i + 1].text);
            if (!mc->declared_all
                && pt_counter_declare(cx, "acl", "all", &mc->refused_all) != PT_OK)
                return PT_ERROR;
            mc->declared_all = true;
            e->refused = &mc->refused_all;
            continue;
        }
        for (unsigned j = 0; j < mc->nlists && e->list == NULL; j++)
            if (strcmp(mc->lists[j].name, e->text) == 0)
                e->list = &mc->lists[j];
        if (e->list) {
            e->refused = &mc->lists[e->list - mc->lists].refused;
            continue;
        }
        if (!pt_cidr_parse(e->text, &e->range, &err))
            return pt_conf_error(cx, e->where, "\"%s\": no access list has that name, and "
                                 "it is not an address or range (%s)", e->text, err);
        mapped_to_v4(&e->range);
        if (!mc->declared_address
            && pt_counter_declare(cx, "acl", "address", &mc->refused_address) != PT_OK)
            return PT_ERROR;
        mc->declared_address = true;
        e->refused = &mc->refused_address;
    }
    return PT_OK;
}

static int acl_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    acl_main_conf *mc = pt_main_conf(conf, pt_acl_module);
    if (resolve(cx, mc, pt_route_conf(conf->filters_global, pt_acl_module),
                conf->filters_global) != PT_OK)
        return PT_ERROR;
    for (unsigned i = 0; i < conf->nroutes; i++)
        if (resolve(cx, mc, pt_route_conf(&conf->routes[i], pt_acl_module),
                    &conf->routes[i]) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}

/* ---- requests ---- */

static int refuse(pt_request *r, const acl_route_conf *rc, const acl_entry *e, bool held)
{
    pt_counter_add(*e->refused, 1);
    char *why = pt_palloc(r->pool, 160);
    if (why) {
        if (held)
            snprintf(why, 160, "access denied by deny = \"%s\" (%s)", e->text, rc->scope);
        else
            snprintf(why, 160, "access denied: not in allow = \"%s\", the last entry (%s)",
                     e->text, rc->scope);
    }
    return pt_http_deny(r, 403, why ? why : "access denied");
}

/* Runs before routing (r->route: filters.global) and again in the access phase (the
 * route's entries). */
static int acl_check(pt_request *r)
{
    const acl_route_conf *rc = r->route ? pt_route_conf(r->route, pt_acl_module) : NULL;
    if (rc == NULL || rc->n == 0)
        return PT_DECLINED;
    const struct sockaddr *sa = &r->conn->peer.sa;
    for (unsigned i = 0; i < rc->n; i++) {
        const acl_entry *e = &rc->v[i];
        bool held = e->all
                    || (e->list ? pt_cidr_tree_find(&e->list->tree, sa) == 1
                                : pt_cidr_match(&e->range, sa));
        if (held)
            return e->allow ? PT_DECLINED : refuse(r, rc, e, true);
    }
    const acl_entry *last = &rc->v[rc->n - 1];
    return last->allow ? refuse(r, rc, last, false) : PT_DECLINED;
}

static const pt_conf_key acl_keys[] = {
    { "acls", PT_SCOPE_FILTERS, set_acls, 0, 0, 0, NULL },
    /* min: 1 allow, 0 deny */
    { "allow", PT_SCOPE_ROUTE | PT_SCOPE_GLOBAL, set_entries, 0, 1, 0, NULL },
    { "deny", PT_SCOPE_ROUTE | PT_SCOPE_GLOBAL, set_entries, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool acl_rconf_used(const void *v)
{
    const acl_route_conf *rc = v;
    return rc && (rc->n != 0);
}

static bool acl_phase_used(const pt_conf *conf)
{
    return pt_conf_any_route(conf, &pt_acl_module, acl_rconf_used);
}

pt_module pt_acl_module = {
    .name = "acl",
    .keys = acl_keys,
    .main_conf_size = sizeof(acl_main_conf),
    .route_conf_size = sizeof(acl_route_conf),
    .conf_check = acl_conf_check,
    .phase = { [PT_PHASE_REQUEST] = acl_check, [PT_PHASE_ACCESS] = acl_check },
    .phase_used = acl_phase_used,
};
