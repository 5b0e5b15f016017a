/* rules: PCRE2 patterns on what a request says, with an action when one matches.
 *
 *   filters = {
 *     rules = ( { name = "sqli-union"; match = "(?i)union[\\s+]+select";
 *                 in = [ "path", "args", "header:User-Agent", "body" ];
 *                 action = "deny"; status = 403; group = "sqli"; },
 *               { name = "scan"; match = "(?i)(nikto|sqlmap)"; in = [ "header:User-Agent" ];
 *                 action = "log"; } );
 *     body_inspect_size = 8192;
 *     global = { rules = [ "sqli", "scan" ]; };        (before routing, every request)
 *   };
 *   routes = ( { ...; rules = [ "sqli-union" ]; } );    (rule names or group names)
 *
 * Patterns are compiled once, at load, with JIT; a bad one is a -t error naming the file,
 * the line and the offset. A scope (a route, filters.global) lists rules by name or by
 * group; its inputs are gathered into slots, each with the rules that read it and, when
 * several do, their alternation compiled as one pattern: a request that matches none of
 * them (nearly all) costs one match per input instead of one per rule and input.
 *
 * Actions: deny (the status, 403 by default: the request goes no further), log (an info
 * line in the error log; the request goes on), tag (the tag goes into the access log
 * line; the request goes on). Every match counts in the shared counter "rule:NAME". A
 * request that matches several rules is logged and tagged for all of them, and refused
 * by the first deny rule in the scope's order.
 *
 * The body: rules reading "body" see its first body_inspect_size bytes (decoded from
 * chunked framing; a form, application/x-www-form-urlencoded, also decoded as arguments).
 * The request waits for that prefix only (pt_http_peek_body): the rest is not read here,
 * and whoever reads the body next gets the whole of it. Rules that do not read the body
 * run first, so a request they refuse is refused without waiting for its body. */
#include <stdio.h>

#include "portico/cycle-t.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "rules.h"

pt_module pt_rules_module;

/* ---- configuration ---- */

typedef struct {
    const char       *name;
    const char       *match;
    config_setting_t *in;
    int               action;
    uint32_t          status;
    const char       *tag;
    const char       *group;
} rule_def;

static const char *const actions[] = { "deny", "log", "tag", NULL };

static int set_setting(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    *(config_setting_t **) ((char *) base + k->offset) = s;
    return PT_OK;
}

static const pt_conf_key rule_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(rule_def, name), 1, RULE_NAME_MAX, NULL },
    { "match", 0, pt_conf_set_str, offsetof(rule_def, match), 1, 65536, NULL },
    { "in", 0, set_setting, offsetof(rule_def, in), 0, 0, NULL },
    { "action", 0, pt_conf_set_enum, offsetof(rule_def, action), 0, 0, actions },
    { "status", 0, pt_conf_set_uint32, offsetof(rule_def, status), 400, 599, NULL },
    { "tag", 0, pt_conf_set_str, offsetof(rule_def, tag), 1, RULE_NAME_MAX, NULL },
    { "group", 0, pt_conf_set_str, offsetof(rule_def, group), 1, RULE_NAME_MAX, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

/* Names, groups and tags: letters, digits, '-', '_', '.', ':' (a tag list in the access
 * log is comma-separated). */
static bool valid_name(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || *s == '-' || *s == '_' || *s == '.' || *s == ':'))
            return false;
    return true;
}

static void code_cleanup(void *re)
{
    pcre2_code_free(re);
}

static pcre2_code *compile(pt_conf_ctx *cx, config_setting_t *s, const char *pattern,
                           bool *jit, bool report)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, 0, &errcode,
                                   &erroff, NULL);
    if (re == NULL) {
        if (report) {
            PCRE2_UCHAR msg[256];
            if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
                snprintf((char *) msg, sizeof(msg), "error %d", errcode);
            pt_conf_error(cx, s, "%s at offset %zu", (char *) msg, (size_t) erroff);
        }
        return NULL;
    }
    if (pt_pool_cleanup_add(cx->pool, code_cleanup, re) != PT_OK) {
        pcre2_code_free(re);
        pt_conf_error(cx, NULL, "out of memory");
        return NULL;
    }
    /* JIT is a speed-up, not a requirement (some systems forbid executable memory) */
    *jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

static int parse_inputs(pt_conf_ctx *cx, config_setting_t *s, rule *ru)
{
    static const char *const kinds[] = {
        "path", "query", "args", NULL, "uri", "method", "headers", NULL, "body"
    };
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array [ \"path\", \"args\", \"header:User-Agent\", ... ]");
    unsigned n = (unsigned) config_setting_length(s);
    if (n == 0)
        return pt_conf_error(cx, s, "empty: a rule reads at least one input");
    ru->in = pt_pcalloc(cx->pool, n * sizeof(rule_input));
    if (ru->in == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        const char *v = config_setting_get_string(e);
        if (v == NULL)
            return pt_conf_type_error(cx, e, "a string");
        rule_input in = { RULE_IN_KINDS, PT_STR_NULL };
        for (unsigned k = 0; k < RULE_IN_KINDS; k++)
            if (kinds[k] && strcmp(v, kinds[k]) == 0)
                in.kind = k;
        if (strncmp(v, "header:", 7) == 0 || strncmp(v, "arg:", 4) == 0) {
            bool header = v[0] == 'h';
            const char *name = v + (header ? 7 : 4);
            if (*name == '\0' || (header && !pt_conf_is_token(name, strlen(name))))
                return pt_conf_error(cx, e, "\"%s\": %s", v, header
                                     ? "a field name (a token) must follow \"header:\""
                                     : "an argument name must follow \"arg:\"");
            in = (rule_input) { header ? RULE_IN_HEADER : RULE_IN_ARG,
                                pt_pstr(cx->pool, (pt_str) { strlen(name), name }) };
            if (in.name.data == NULL)
                return pt_conf_error(cx, NULL, "out of memory");
        }
        if (in.kind == RULE_IN_KINDS)
            return pt_conf_error(cx, e, "\"%s\" is not an input (path, query, args, "
                                 "arg:NAME, uri, method, headers, header:NAME, body)", v);
        for (unsigned j = 0; j < ru->nin; j++)
            if (ru->in[j].kind == in.kind && pt_str_caseeq(ru->in[j].name, in.name))
                return pt_conf_error(cx, e, "\"%s\" is listed twice", v);
        ru->in[ru->nin++] = in;
    }
    return PT_OK;
}

/* A pattern that stays the same pattern inside "(?:...)|(?:...)": no backreference (the
 * group numbers shift), no leading verb "(*...)" (only valid at the very start), no
 * "\Q" (an unterminated quote would swallow the parenthesis) and no extended mode "(?x"
 * (a '#' comment would). */
static bool combinable(const rule *ru)
{
    const char *p = ru->pattern;
    if (ru->backrefs || strncmp(p, "(*", 2) == 0 || strstr(p, "\\Q"))
        return false;
    for (const char *q = strstr(p, "(?"); q; q = strstr(q + 2, "(?")) {
        for (const char *f = q + 2; (*f >= 'a' && *f <= 'z') || (*f >= 'A' && *f <= 'Z')
                                    || *f == '-' || *f == '^'; f++)
            if (*f == 'x')
                return false;
    }
    return true;
}

static int parse_rule(pt_conf_ctx *cx, config_setting_t *e, void *arg, void *elem)
{
    rules_main_conf *mc = arg;
    rule *ru = elem;
    rule_def d = { .action = RULE_DENY };
    if (!config_setting_is_group(e))
        return pt_conf_type_error(cx, e, "a group { name = ...; match = ...; in = [ ... ]; }");
    if (pt_conf_parse_group(cx, e, rule_keys, &d) != PT_OK)
        return PT_ERROR;
    if (d.name == NULL)
        return pt_conf_error(cx, e, "missing key 'name'");
    config_setting_t *ns = config_setting_get_member(e, "name");
    if (!valid_name(d.name))
        return pt_conf_error(cx, ns, "\"%s\": a name is letters, digits, '-', '_', '.' or ':'",
                             d.name);
    for (unsigned j = 0; j < mc->nrules; j++)
        if (strcmp(mc->rules[j].name, d.name) == 0)
            return pt_conf_error(cx, ns, "\"%s\" is already the name of the rule at line %u",
                                 d.name, mc->rules[j].line);
    if (d.match == NULL)
        return pt_conf_error(cx, e, "missing key 'match' (a PCRE2 pattern)");
    if (d.in == NULL)
        return pt_conf_error(cx, e, "missing key 'in' (what the rule reads)");
    if (config_setting_get_member(e, "status") && d.action != RULE_DENY)
        return pt_conf_error(cx, config_setting_get_member(e, "status"),
                             "only a deny rule has a status");
    if (d.tag && d.action != RULE_TAG)
        return pt_conf_error(cx, config_setting_get_member(e, "tag"),
                             "only a rule with action = \"tag\" has a tag");
    if (d.tag && !valid_name(d.tag))
        return pt_conf_error(cx, config_setting_get_member(e, "tag"),
                             "\"%s\": a tag is letters, digits, '-', '_', '.' or ':'", d.tag);
    if (d.group && !valid_name(d.group))
        return pt_conf_error(cx, config_setting_get_member(e, "group"),
                             "\"%s\": a group is letters, digits, '-', '_', '.' or ':'", d.group);

    ru->name = d.name;
    ru->group = d.group;
    ru->pattern = d.match;
    ru->action = d.action;
    ru->status = d.status ? d.status : 403;
    ru->tag = d.tag ? (pt_str) { strlen(d.tag), d.tag } : (pt_str) { strlen(d.name), d.name };
    ru->line = pt_conf_setting_line(cx, e);
    ru->setting = e;
    if (parse_inputs(cx, d.in, ru) != PT_OK)
        return PT_ERROR;
    ru->re = compile(cx, config_setting_get_member(e, "match"), d.match, &ru->jit, true);
    if (ru->re == NULL)
        return PT_ERROR;
    uint32_t backrefs = 0;
    pcre2_pattern_info(ru->re, PCRE2_INFO_BACKREFMAX, &backrefs);
    ru->backrefs = backrefs > 0;
    return pt_counter_declare(cx, "rule", ru->name, &ru->matched);
}

static int set_rule_defs(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    rules_main_conf *mc = base;
    return pt_conf_parse_list(cx, s, "a list ( { name = ...; match = ...; in = [ ... ]; }, ... )", sizeof(rule), parse_rule, mc,
                              &mc->rules, &mc->nrules);
}

/* rules = [ ... ] in a route or filters.global: resolved once every key is read. */
static int set_rule_refs(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    rules_scope *sc = base;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "an array of rule or group names [ \"sqli\", ... ]");
    if (config_setting_length(s) == 0)
        return pt_conf_error(cx, s, "empty: leave rules out instead");
    for (int i = 0; i < config_setting_length(s); i++)
        if (config_setting_get_string(config_setting_get_elem(s, (unsigned) i)) == NULL)
            return pt_conf_type_error(cx, config_setting_get_elem(s, (unsigned) i), "a string");
    sc->setting = s;
    return PT_OK;
}

static int add_to_slot(pt_conf_ctx *cx, rule_slot *sl, unsigned pos, unsigned max)
{
    if (sl->pos == NULL) {
        sl->pos = pt_pcalloc(cx->pool, max * sizeof(unsigned));
        sl->in_combined = pt_pcalloc(cx->pool, max * sizeof(bool));
        if (sl->pos == NULL || sl->in_combined == NULL)
            return pt_conf_error(cx, NULL, "out of memory");
    }
    sl->pos[sl->n++] = pos;
    return PT_OK;
}

static int combine(pt_conf_ctx *cx, const rules_scope *sc, rule_slot *sl)
{
    size_t len = 0;
    unsigned count = 0;
    for (unsigned i = 0; i < sl->n; i++) {
        const rule *ru = sc->rules[sl->pos[i]];
        if (combinable(ru)) {
            len += strlen(ru->pattern) + 6;
            count++;
        }
    }
    if (count < 2)
        return PT_OK;
    char *p = pt_palloc(cx->pool, len + 1), *q = p;
    if (p == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < sl->n; i++) {
        const rule *ru = sc->rules[sl->pos[i]];
        if (!combinable(ru))
            continue;
        q += sprintf(q, "%s(?:%s)", q == p ? "" : "|", ru->pattern);
    }
    sl->combined = compile(cx, NULL, p, &sl->combined_jit, false);
    if (sl->combined == NULL) {
        if (cx->errors)
            return PT_ERROR;
        /* not combinable after all (named groups twice, ...): each rule alone */
        char in[80];
        pt_log(PT_LOG_NOTICE, "rules: %s: the %u patterns reading %s do not combine into one: "
               "matched one by one", sc->scope, count,
               rules_input_name(&sl->in, in, sizeof(in)));
        return PT_OK;
    }
    for (unsigned i = 0; i < sl->n; i++)
        sl->in_combined[i] = combinable(sc->rules[sl->pos[i]]);
    return PT_OK;
}

static int resolve(pt_conf_ctx *cx, rules_main_conf *mc, rules_scope *sc, const pt_route *rt)
{
    if (sc->setting == NULL)
        return PT_OK;
    char scope[48];
    if (rt->global)
        snprintf(scope, sizeof(scope), "filters.global");
    else
        snprintf(scope, sizeof(scope), "route at line %d", rt->line);
    sc->scope = pt_pstrndup(cx->pool, scope, strlen(scope));
    sc->rules = pt_pcalloc(cx->pool, (mc->nrules ? mc->nrules : 1) * sizeof(rule *));
    bool *taken = pt_pcalloc(cx->pool, (mc->nrules ? mc->nrules : 1) * sizeof(bool));
    if (sc->scope == NULL || sc->rules == NULL || taken == NULL)
        return pt_conf_error(cx, NULL, "out of memory");

    for (int i = 0; i < config_setting_length(sc->setting); i++) {
        config_setting_t *e = config_setting_get_elem(sc->setting, (unsigned) i);
        const char *v = config_setting_get_string(e);
        bool found = false;
        for (unsigned j = 0; j < mc->nrules && !found; j++) {
            if (strcmp(mc->rules[j].name, v) != 0)
                continue;
            found = true;
            if (!taken[j]) {
                taken[j] = true;
                sc->rules[sc->n++] = &mc->rules[j];
            }
        }
        for (unsigned j = 0; j < mc->nrules && !found; j++)
            found = mc->rules[j].group && strcmp(mc->rules[j].group, v) == 0;
        for (unsigned j = 0; j < mc->nrules && found; j++) {
            if (mc->rules[j].group && strcmp(mc->rules[j].group, v) == 0 && !taken[j]) {
                taken[j] = true;
                sc->rules[sc->n++] = &mc->rules[j];
            }
        }
        if (!found)
            return pt_conf_error(cx, e, "\"%s\": no rule or group has that name", v);
    }

    /* the slots: one per distinct input, the body apart */
    unsigned most = 0;
    for (unsigned i = 0; i < sc->n; i++)
        most += sc->rules[i]->nin;
    sc->slots = pt_pcalloc(cx->pool, (most ? most : 1) * sizeof(rule_slot));
    if (sc->slots == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < sc->n; i++) {
        const rule *ru = sc->rules[i];
        for (unsigned k = 0; k < ru->nin; k++) {
            const rule_input *in = &ru->in[k];
            rule_slot *sl = NULL;
            if (in->kind == RULE_IN_BODY) {
                if (sc->body == NULL && (sc->body = pt_pcalloc(cx->pool, sizeof(rule_slot))) == NULL)
                    return pt_conf_error(cx, NULL, "out of memory");
                sl = sc->body;
            }
            for (unsigned s = 0; sl == NULL && s < sc->nslots; s++)
                if (sc->slots[s].in.kind == in->kind && pt_str_caseeq(sc->slots[s].in.name, in->name))
                    sl = &sc->slots[s];
            if (sl == NULL)
                sl = &sc->slots[sc->nslots++];
            sl->in = *in;
            if (add_to_slot(cx, sl, i, sc->n) != PT_OK)
                return PT_ERROR;
        }
    }
    for (unsigned s = 0; s < sc->nslots; s++)
        if (combine(cx, sc, &sc->slots[s]) != PT_OK)
            return PT_ERROR;
    if (sc->body && combine(cx, sc, sc->body) != PT_OK)
        return PT_ERROR;
    return PT_OK;
}

static int rules_conf_init(pt_conf_ctx *cx, void *conf)
{
    rules_main_conf *mc = conf;
    mc->body_inspect_size = 8192;
    mc->match_limit = 100000;
    return PT_OK;
}

static int rules_conf_check(pt_conf_ctx *cx, pt_conf *conf)
{
    rules_main_conf *mc = pt_main_conf(conf, pt_rules_module);
    for (unsigned i = 0; i < mc->nrules; i++) {
        const rule *ru = &mc->rules[i];
        for (unsigned j = 0; j < mc->nrules; j++)
            if (mc->rules[j].group && strcmp(mc->rules[j].group, ru->name) == 0)
                return pt_conf_error(cx, config_setting_get_member(ru->setting, "name"),
                                     "\"%s\" is also the group of the rule at line %u: a rules "
                                     "list could not tell them apart", ru->name,
                                     mc->rules[j].line);
    }
    if (resolve(cx, mc, pt_route_conf(conf->filters_global, pt_rules_module),
                conf->filters_global) != PT_OK)
        return PT_ERROR;
    for (unsigned i = 0; i < conf->nroutes; i++)
        if (resolve(cx, mc, pt_route_conf(&conf->routes[i], pt_rules_module),
                    &conf->routes[i]) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}

/* ---- requests ---- */

static void add_tag(pt_request *r, pt_str tag)
{
    pt_str t = r->log_tags;
    for (const char *p = t.data, *end = t.data + t.len; p && p < end;) {
        const char *comma = memchr(p, ',', (size_t) (end - p));
        const char *stop = comma ? comma : end;
        if (pt_str_eq((pt_str) { (size_t) (stop - p), p }, tag))
            return;                     /* tagged already (by the other scope) */
        p = comma ? comma + 1 : NULL;
    }
    char *n = pt_palloc(r->pool, t.len + 1 + tag.len);
    if (n == NULL)
        return;
    if (t.len) {
        memcpy(n, t.data, t.len);
        n[t.len] = ',';
    }
    memcpy(n + t.len + (t.len ? 1 : 0), tag.data, tag.len);
    r->log_tags = (pt_str) { t.len + (t.len ? 1 : 0) + tag.len, n };
}

/* What matched is acted on: every log and tag, and the first deny refuses. */
static int act(pt_request *r, rules_ctx *cx)
{
    const rules_scope *sc = cx->sc;
    const rule *deny = NULL;
    const rule_input *deny_in = NULL;
    char in[80];

    for (unsigned i = 0; i < sc->n; i++) {
        if (!cx->hit[i])
            continue;
        const rule *ru = sc->rules[i];
        pt_counter_add(ru->matched, 1);
        if (ru->action == RULE_LOG) {
            pt_log(PT_LOG_INFO, "rule \"%s\" matched %s of the request from %s: \"%.*s %.*s\" (%s)",
                   ru->name, rules_input_name(cx->where[i], in, sizeof(in)), r->conn->peer_ip,
                   (int) pt_min(r->head.method_name.len, 32), r->head.method_name.data,
                   (int) pt_min(r->head.target.len, 512), r->head.target.data, sc->scope);
        } else if (ru->action == RULE_TAG) {
            add_tag(r, ru->tag);
        } else if (deny == NULL) {
            deny = ru;
            deny_in = cx->where[i];
        }
    }
    if (deny == NULL)
        return PT_DECLINED;
    char *why = pt_palloc(r->pool, 200);
    if (why)
        snprintf(why, 200, "rule \"%s\" matched %s (%s)", deny->name,
                 rules_input_name(deny_in, in, sizeof(in)), sc->scope);
    return pt_http_deny(r, deny->status, why ? why : "refused by a rule");
}

static bool any_deny(const rules_ctx *cx)
{
    for (unsigned i = 0; i < cx->sc->n; i++)
        if (cx->hit[i] && cx->sc->rules[i]->action == RULE_DENY)
            return true;
    return false;
}

static int body_inspect(pt_request *r, rules_ctx *cx)
{
    const rules_main_conf *mc = pt_main_conf(pt_cycle_cur->conf, pt_rules_module);
    cx->body_done = true;
    if (rules_run_slots(r, cx, cx->sc->body, 1, true, mc->body_inspect_size) != PT_OK)
        return PT_ERROR;
    return act(r, cx);
}

static void body_ready(pt_request *r, int rc)
{
    rules_ctx *cx = pt_req_ctx(r, pt_rules_module);
    cx->waiting = false;
    cx->body_done = true;
    if (rc != PT_OK) {
        pt_http_finalize(r, r->status >= 400 ? (int) r->status : 400);
        return;
    }
    pt_http_run_phases(r);              /* the handler runs again: body_done is set */
}

/* Runs before routing (r->route: filters.global) and again in the access phase (the
 * route's rules). */
static int rules_phase(pt_request *r)
{
    const rules_scope *sc = r->route ? pt_route_conf(r->route, pt_rules_module) : NULL;
    if (sc == NULL || sc->n == 0)
        return PT_DECLINED;
    rules_ctx *cx = pt_req_ctx(r, pt_rules_module);
    if (cx && cx->sc == sc && cx->body_done)
        return body_inspect(r, cx);     /* resumed once the body prefix came */

    if (cx == NULL) {
        cx = pt_pcalloc(r->pool, sizeof(*cx));
        if (cx == NULL)
            return PT_ERROR;
        pt_req_set_ctx(r, pt_rules_module, cx);
    }
    cx->sc = sc;
    cx->body_done = cx->waiting = false;
    cx->hit = pt_pcalloc(r->pool, sc->n);
    cx->where = pt_pcalloc(r->pool, sc->n * sizeof(rule_input *));
    if (cx->hit == NULL || cx->where == NULL)
        return PT_ERROR;
    if (rules_run_slots(r, cx, sc->slots, sc->nslots, false, 0) != PT_OK)
        return PT_ERROR;
    if (sc->body == NULL || any_deny(cx) || !pt_http_body_pending(r))
        return act(r, cx);

    const rules_main_conf *mc = pt_main_conf(pt_cycle_cur->conf, pt_rules_module);
    int rc = pt_http_peek_body(r, mc->body_inspect_size, body_ready);
    if (rc == PT_AGAIN) {
        cx->waiting = true;
        return PT_AGAIN;
    }
    if (rc == PT_ERROR)
        return r->status >= 400 ? (int) r->status : 400;
    return body_inspect(r, cx);         /* PT_DECLINED: read already, only what is held */
}

static int rules_worker_init(pt_cycle *cy)
{
    const rules_main_conf *mc = pt_main_conf(cy->conf, pt_rules_module);
    return mc->nrules ? rules_match_init(mc->match_limit) : PT_OK;
}

static void rules_worker_exit(pt_cycle *cy)
{
    rules_match_exit();
}

static const pt_conf_key rules_keys[] = {
    { "rules", PT_SCOPE_FILTERS, set_rule_defs, 0, 0, 0, NULL },
    { "body_inspect_size", PT_SCOPE_FILTERS, pt_conf_set_uint32,
      offsetof(rules_main_conf, body_inspect_size), 1, 1048576, NULL },
    { "rule_match_limit", PT_SCOPE_FILTERS, pt_conf_set_uint32,
      offsetof(rules_main_conf, match_limit), 1000, 100000000, NULL },
    { "rules", PT_SCOPE_ROUTE | PT_SCOPE_GLOBAL, set_rule_refs, 0, 0, 0, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static bool rules_rconf_used(const void *v)
{
    const rules_scope *rc = v;
    return rc && (rc->n != 0);
}

static bool rules_phase_used(const pt_conf *conf)
{
    return pt_conf_any_route(conf, &pt_rules_module, rules_rconf_used);
}

pt_module pt_rules_module = {
    .name = "rules",
    .keys = rules_keys,
    .main_conf_size = sizeof(rules_main_conf),
    .main_conf_init = rules_conf_init,
    .route_conf_size = sizeof(rules_scope),
    .conf_check = rules_conf_check,
    .worker_init = rules_worker_init,
    .worker_exit = rules_worker_exit,
    .phase = { [PT_PHASE_REQUEST] = rules_phase, [PT_PHASE_ACCESS] = rules_phase },
    .phase_used = rules_phase_used,
};
