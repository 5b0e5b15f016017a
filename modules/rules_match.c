/* rules: what each input of a request is, and matching the rules that read it.
 *
 * The path is the normalised one (server/h1_path.c): percent-decoded once, dot-segments
 * resolved, and the spellings origins read differently refused before any rule runs, so
 * "/a/%2e%2e/x" never reaches a rule as anything but a 400. Arguments are decoded here
 * ('+' is a space, %XX a byte; an invalid escape stays as it is): what a framework hands
 * the application. Patterns are matched on bytes (no UTF-8 mode: any byte sequence is a
 * valid subject), with a match limit, so a pattern that backtracks badly costs a bounded
 * time and counts as not matching (logged). */
#include <stdio.h>

#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "rules.h"

static pcre2_match_data   *md;
static pcre2_match_context *mctx;
static pcre2_jit_stack    *jstack;

int rules_match_init(uint32_t match_limit)
{
    md = pcre2_match_data_create(1, NULL);       /* a yes or no: no captures needed */
    mctx = pcre2_match_context_create(NULL);
    jstack = pcre2_jit_stack_create(32 * 1024, 512 * 1024, NULL);
    if (md == NULL || mctx == NULL) {
        pt_log(PT_LOG_ALERT, "rules: out of memory for matching");
        return PT_ERROR;
    }
    pcre2_set_match_limit(mctx, match_limit);
    pcre2_set_depth_limit(mctx, match_limit);
    if (jstack)
        pcre2_jit_stack_assign(mctx, NULL, jstack);
    return PT_OK;
}

void rules_match_exit(void)
{
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_jit_stack_free(jstack);
    md = NULL;
    mctx = NULL;
    jstack = NULL;
}

/* 1 match, 0 none, -1 error (a limit): the caller decides what an error means. */
static int match(const pcre2_code *re, bool jit, pt_str s)
{
    PCRE2_SPTR subject = (PCRE2_SPTR) (s.data ? s.data : "");
    int rc = jit ? pcre2_jit_match(re, subject, s.len, 0, 0, md, mctx)
                 : pcre2_match(re, subject, s.len, 0, 0, md, mctx);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

const char *rules_input_name(const rule_input *in, char *buf, size_t size)
{
    static const char *const names[] = {
        "path", "query", "args", "arg", "uri", "method", "headers", "header", "body"
    };
    if (in->kind == RULE_IN_HEADER || in->kind == RULE_IN_ARG)
        snprintf(buf, size, "%s:%.*s", names[in->kind], (int) pt_min(in->name.len, 64),
                 in->name.data);
    else
        snprintf(buf, size, "%s", names[in->kind]);
    return buf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char) pt_tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %XX and '+' decoded, as a form or query parser does; out has room for n bytes. */
static size_t url_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0
                   && (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char) (hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static pt_str decoded(pt_request *r, pt_str s)
{
    if (s.len == 0)
        return s;
    char *d = pt_palloc(r->pool, s.len);
    if (d == NULL)
        return PT_STR_NULL;
    return (pt_str) { url_decode(s.data, s.len, d), d };
}

bool rules_is_form(pt_request *r)
{
    pt_header *h = pt_http_req_header(r, PT_STR("Content-Type"));
    static const char form[] = "application/x-www-form-urlencoded";
    return h && h->value.len >= sizeof(form) - 1
           && pt_str_caseeq_lit((pt_str) { sizeof(form) - 1, h->value.data }, form)
           && (h->value.len == sizeof(form) - 1 || h->value.data[sizeof(form) - 1] == ';'
               || h->value.data[sizeof(form) - 1] == ' ');
}

/* Matching one subject against a slot: the combined pattern first, when there is one;
 * then the rules it cannot rule out. */
static void run_subject(rules_ctx *cx, const rule_slot *sl, pt_str s)
{
    const rules_scope *sc = cx->sc;
    bool maybe = true;
    if (sl->combined) {
        int m = match(sl->combined, sl->combined_jit, s);
        maybe = m != 0;                 /* an error (a limit) decides nothing */
    }
    for (unsigned i = 0; i < sl->n; i++) {
        unsigned pos = sl->pos[i];
        if (cx->hit[pos] || (!maybe && sl->in_combined[i]))
            continue;
        const rule *ru = sc->rules[pos];
        int m = match(ru->re, ru->jit, s);
        if (m > 0) {
            cx->hit[pos] = (uint8_t) (sl->in.kind + 1);
            cx->where[pos] = &sl->in;
        } else if (m < 0) {
            char in[80];
            pt_log(PT_LOG_WARN, "rule \"%s\": the match limit was reached on %s (%zu bytes): "
                   "taken as no match", ru->name, rules_input_name(&sl->in, in, sizeof(in)),
                   s.len);
        }
    }
}

/* Each query argument named name, decoded. */
static void run_args_named(pt_request *r, rules_ctx *cx, const rule_slot *sl, pt_str q)
{
    const char *p = q.data, *end = q.data + q.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t) (end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t) (stop - p));
        pt_str name = decoded(r, (pt_str) { (size_t) ((eq ? eq : stop) - p), p });
        if (pt_str_eq(name, sl->in.name))
            run_subject(cx, sl, eq ? decoded(r, (pt_str) { (size_t) (stop - eq - 1), eq + 1 })
                                   : PT_STR_NULL);
        p = amp ? amp + 1 : NULL;
    }
}

int rules_run_slots(pt_request *r, rules_ctx *cx, const rule_slot *slots, unsigned n,
                    bool body, uint32_t body_size)
{
    for (unsigned k = 0; k < n; k++) {
        const rule_slot *sl = &slots[k];
        switch (sl->in.kind) {
        case RULE_IN_PATH:
            run_subject(cx, sl, r->path);
            break;
        case RULE_IN_QUERY:
            if (r->head.query.data)
                run_subject(cx, sl, r->head.query);
            break;
        case RULE_IN_ARGS:
            if (r->head.query.data == NULL)
                break;
            if (!cx->args_made) {
                cx->args = decoded(r, r->head.query);
                cx->args_made = true;
            }
            run_subject(cx, sl, cx->args);
            break;
        case RULE_IN_ARG:
            if (r->head.query.data)
                run_args_named(r, cx, sl, r->head.query);
            break;
        case RULE_IN_URI:
            run_subject(cx, sl, r->head.target);
            break;
        case RULE_IN_METHOD:
            run_subject(cx, sl, r->head.method_name);
            break;
        case RULE_IN_HEADERS:
            for (uint32_t i = 0; i < r->head.nheaders; i++)
                run_subject(cx, sl, r->head.headers[i].value);
            break;
        case RULE_IN_HEADER:
            for (uint32_t i = 0; i < r->head.nheaders; i++)
                if (pt_str_caseeq(r->head.headers[i].name, sl->in.name))
                    run_subject(cx, sl, r->head.headers[i].value);
            break;
        case RULE_IN_BODY: {
            if (!body || r->body_buf_len == 0)
                break;
            pt_str b = { pt_min(r->body_buf_len, (size_t) body_size), r->body_buf };
            run_subject(cx, sl, b);
            if (rules_is_form(r))
                run_subject(cx, sl, decoded(r, b));
            break;
        }
        }
    }
    return PT_OK;
}
