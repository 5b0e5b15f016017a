#ifndef PT_VAR_H
#define PT_VAR_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/conn-t.h"
#include "portico/var-t.h"

/* Compiles text ("$remote_addr", "api:$http_x_api_key"); errors at s name the unknown
 * variable. Names are letters, digits and '_'; "${name}" separates a name from the text
 * after it. "$$" is a '$'. */
int    pt_var_compile(pt_conf_ctx *cx, config_setting_t *s, const char *text, pt_var *v);
/* Evaluates v for a request r (or, r NULL, for a connection c only: request variables are
 * then empty) into buf; returns the length (at most size: longer values are cut). */
size_t pt_var_eval(const pt_var *v, pt_request *r, const pt_conn *c, char *buf, size_t size);

/* One part's value, not copied (literal text, or what the request or connection holds;
 * empty when absent). */
pt_str pt_var_value(const pt_var_part *p, pt_request *r, const pt_conn *c);

#endif
