/* Variables in configured strings ("$remote_addr", "$http_x_api_key:$host"): keys of rate
 * and connection limits, the balancer's hash_key; the one set of request variables. A string is compiled at load into parts, literal or
 * variable, and evaluated per request (or per connection) into a buffer. */
#ifndef PT_VAR_T_H
#define PT_VAR_T_H

#include <stdbool.h>
#include "portico/str-t.h"

typedef enum pt_var_kind {
    PT_VAR_LITERAL = 0,
    PT_VAR_REMOTE_ADDR,        /* the client's address (PROXY protocol's when trusted) */
    PT_VAR_LISTENER,           /* the listener's name, or its address when unnamed */
    PT_VAR_HOST,               /* the request's host, lower-case, no port */
    PT_VAR_METHOD,
    PT_VAR_URI,                /* the normalised path (as nginx's $uri) */
    PT_VAR_REQUEST_URI,        /* the request target as sent */
    PT_VAR_ARGS,               /* the query string as sent */
    PT_VAR_HTTP,               /* $http_NAME: the first field NAME ('_' read as '-') */
    PT_VAR_ARG,                /* $arg_NAME: the first query argument NAME, as sent */
    PT_VAR_COOKIE              /* $cookie_NAME: the first cookie NAME, as sent */
} pt_var_kind;

typedef struct pt_var_part {
    pt_var_kind kind;
    pt_str      text;          /* literal text, or the field / argument name */
} pt_var_part;

typedef struct pt_var {
    pt_var_part *parts;
    unsigned     nparts;
    bool         request;      /* needs a request (not only the connection) */
} pt_var;

#endif
