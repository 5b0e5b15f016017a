#ifndef PT_VARS_H
#define PT_VARS_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/http-t.h"
#include "portico/vars-t.h"

/* Compiles the string setting s ("$host$uri", "${http_x_user}") into out. Errors name s:
 * an unknown variable, a '$' without a name, an unclosed "${". Variables: $uri,
 * $request_uri, $args, $host, $scheme, $method, $remote_addr, $http_NAME (the field NAME
 * with '_' read as '-'), $cookie_NAME, $arg_NAME. */
int pt_vars_compile(pt_conf_ctx *cx, config_setting_t *s, pt_vars *out);
/* The same from text (a default), errors at s. */
int pt_vars_parse(pt_conf_ctx *cx, config_setting_t *s, const char *text, pt_vars *out);

/* The value of one segment for r (the text itself for PT_VAR_TEXT); empty when absent. */
pt_str pt_var_value(const pt_request *r, const pt_var_seg *g);

#endif
