/* rules: the module's shared types (modules/rules.c: configuration and the phases;
 * modules/rules_match.c: what each input is for a request, and matching). */
#ifndef PT_MODULES_RULES_H
#define PT_MODULES_RULES_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "portico/conf.h"
#include "portico/counters.h"
#include "portico/http.h"

#define RULE_NAME_MAX 40

/* What a rule looks at. */
enum {
    RULE_IN_PATH = 0,     /* the normalised, percent-decoded path (what routes match) */
    RULE_IN_QUERY,        /* the query string as sent */
    RULE_IN_ARGS,         /* the query string decoded (%XX and '+') */
    RULE_IN_ARG,          /* arg:NAME: each decoded value of argument NAME */
    RULE_IN_URI,          /* the request target as sent */
    RULE_IN_METHOD,
    RULE_IN_HEADERS,      /* every field value */
    RULE_IN_HEADER,       /* header:NAME: each value of the fields NAME */
    RULE_IN_BODY,         /* the first body_inspect_size bytes (and, for a form, decoded) */
    RULE_IN_KINDS
};

enum { RULE_DENY = 0, RULE_LOG, RULE_TAG };

typedef struct rule_input {
    unsigned kind;
    pt_str   name;        /* header or argument name (RULE_IN_HEADER, RULE_IN_ARG) */
} rule_input;

typedef struct rule {
    const char  *name;
    const char  *group;           /* NULL: none */
    const char  *pattern;
    pcre2_code  *re;
    bool         jit;             /* JIT-compiled: matched with pcre2_jit_match */
    bool         backrefs;        /* cannot be part of a combined pattern */
    rule_input  *in;
    unsigned     nin;
    int          action;          /* RULE_DENY, RULE_LOG, RULE_TAG */
    unsigned     status;          /* RULE_DENY */
    pt_str       tag;             /* RULE_TAG */
    unsigned     line;
    config_setting_t *setting;    /* its { ... }, for errors found later */
    pt_counter  *matched;         /* "rule:NAME": requests it matched */
} rule;

/* One input of a scope and the rules of that scope that read it. When several do, a
 * combined pattern (their alternation) is tried first: one pass over the input says
 * whether any of them can match, which is the common case's answer. */
typedef struct rule_slot {
    rule_input    in;
    unsigned     *pos;            /* the rules (positions in the scope) reading it */
    unsigned      n;
    pcre2_code   *combined;       /* NULL: none (fewer than 2 rules, or not combinable) */
    bool          combined_jit;
    bool         *in_combined;    /* by position in pos[]: covered by combined */
} rule_slot;

/* A route's rules (or filters.global's), compiled. */
typedef struct rules_scope {
    config_setting_t *setting;    /* rules = [ ... ] as written */
    const rule      **rules;      /* in the order named (groups expanded), each once */
    unsigned          n;
    rule_slot        *slots;      /* inputs other than the body */
    unsigned          nslots;
    rule_slot        *body;       /* NULL: no rule reads the body */
    const char       *scope;      /* "filters.global", "route at line 12" */
} rules_scope;

typedef struct rules_main_conf {
    rule     *rules;
    unsigned  nrules;
    uint32_t  body_inspect_size;
    uint32_t  match_limit;
} rules_main_conf;

/* Per request and scope: which rules matched, and on which input. */
typedef struct rules_ctx {
    const rules_scope *sc;
    uint8_t           *hit;       /* by position: 0 no, else the input's kind + 1 */
    const rule_input **where;     /* by position: the input it matched */
    bool               waiting;   /* the body prefix is being read */
    bool               body_done;
    pt_str             args;      /* the decoded query, once made */
    bool               args_made;
} rules_ctx;

/* rules_match.c */
int  rules_match_init(uint32_t match_limit);          /* per worker */
void rules_match_exit(void);
/* Runs the slots against the request; marks what matched in cx. PT_OK or PT_ERROR. */
int  rules_run_slots(pt_request *r, rules_ctx *cx, const rule_slot *slots, unsigned n,
                     bool body, uint32_t body_size);
const char *rules_input_name(const rule_input *in, char *buf, size_t size);
bool rules_is_form(pt_request *r);

#endif
