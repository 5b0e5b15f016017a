/* Request variables: text with $name references ("$host$uri", "$scheme$host$uri$args"),
 * compiled once when the configuration loads and evaluated per request. One grammar for
 * every key that needs one: the hash balancer's hash_key, the cache's key. */
#ifndef PT_VARS_T_H
#define PT_VARS_T_H

#include "portico/str-t.h"

typedef enum pt_var_kind {
    PT_VAR_TEXT = 0,        /* name: the text itself */
    PT_VAR_URI,             /* the normalised path */
    PT_VAR_REQUEST_URI,     /* the target as sent */
    PT_VAR_ARGS,            /* the query */
    PT_VAR_HOST,            /* the host, lower-case, without its port */
    PT_VAR_SCHEME,          /* "http" or "https" */
    PT_VAR_METHOD,          /* the method as sent */
    PT_VAR_REMOTE_ADDR,
    PT_VAR_HTTP,            /* name: a request field (first of that name) */
    PT_VAR_COOKIE,          /* name: a cookie */
    PT_VAR_ARG              /* name: a query argument */
} pt_var_kind;

typedef struct pt_var_seg {
    pt_var_kind kind;
    pt_str      name;
} pt_var_seg;

typedef struct pt_vars {
    const char *text;       /* as written; NULL: not set */
    pt_var_seg *segs;
    unsigned    nsegs;
    unsigned    nvars;      /* segments that are variables */
} pt_vars;

#endif
