#ifndef PT_CONF_H
#define PT_CONF_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/h1-t.h"

/* Loads and validates path. On failure returns NULL and puts "FILE:LINE: message" in err.
 * Module hooks (conf init, key setters, conf_check, shm declaration) run in here. */
pt_conf *pt_conf_load(const char *path, char *err, size_t errlen);
void     pt_conf_free(pt_conf *conf);

/* Reads path and every file it includes and has libconfig parse them, but checks no key
 * and resolves no name: the master runs this in a child process before a reload, so that
 * nothing a library does while parsing (exit, abort, a hang) can reach the master.
 * PT_OK, or PT_ERROR with "FILE:LINE: ..." in err. */
int pt_conf_check_syntax(const char *path, char *err, size_t errlen);

/* The line of the file where setting s was written (files are spliced into one text for
 * libconfig, whose own line numbers count across them). */
unsigned pt_conf_setting_line(const pt_conf_ctx *cx, const config_setting_t *s);

/* Reports an error at setting s (NULL: the file). Always returns PT_ERROR. */
int pt_conf_error(pt_conf_ctx *cx, const config_setting_t *s, const char *fmt, ...)
    PT_PRINTF(3, 4);

/* "expected <want>, got <the type of s>" at s. Always returns PT_ERROR. */
int pt_conf_type_error(pt_conf_ctx *cx, const config_setting_t *s, const char *want);
const char *pt_conf_type_name(const config_setting_t *s);   /* "an integer", "a list ( ... )" */

/* Parses the members of group s with the key table keys (NULL-name-terminated) into base;
 * unknown member names are errors. */
int pt_conf_parse_group(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *keys,
                        void *base);

/* Generic setters. */
int pt_conf_set_int(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);    /* int64_t, [min,max] */
int pt_conf_set_uint32(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *); /* uint32_t, [min,max] */
int pt_conf_set_uint64(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *); /* uint64_t, [min,max] */
int pt_conf_set_bool(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);   /* bool */
int pt_conf_set_str(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);    /* const char *, pool copy */
int pt_conf_set_pstr(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);   /* pt_str, pool copy */
int pt_conf_set_enum(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);   /* int; arg: NULL-terminated const char *[] */
int pt_conf_set_group(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);  /* arg: nested pt_conf_key[] */
/* Integer setters: min == max == 0 means the whole range of the type. String setters: min and
 * max bound the length in bytes (max 0: unbounded; min 1: not empty). */

/* conf_check: makes m the module that produces rt's response. Another module already
 * holding the route is an error naming both. */
int pt_conf_set_content(pt_conf_ctx *cx, pt_route *rt, const pt_module *m);

/* Validators for values that end up in HTTP messages. */
bool pt_conf_is_token(const char *s, size_t len);          /* RFC 9110 token, not empty */
bool pt_conf_bad_field_value(const char *s, size_t len);   /* a CTL other than HTAB */
/* Why s is not a field-value (a control character, leading or trailing whitespace), or
 * NULL when it is one. */
const char *pt_conf_field_value_error(const char *s, size_t len);

/* Lists of header fields: ( { name = "X-A"; value = "1"; }, ... ), into a pt_header_list
 * (room for one more entry, for a setter that appends). Names must be tokens, values
 * field-values (pt_conf_field_value_error). */
typedef struct pt_header_list {
    pt_header *h;
    unsigned   n;
} pt_header_list;
int pt_conf_set_header_list(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);
/* Arrays of strings: [ "a", "b" ], into a pt_str_list (pool copies). */
typedef struct pt_str_list {
    pt_str  *s;
    unsigned n;
} pt_str_list;
int pt_conf_set_str_list(pt_conf_ctx *, config_setting_t *, const pt_conf_key *, void *);

/* A list of definitions ( { name = ...; ... }, ... ): an array of n elements of size bytes
 * from the pool, its address stored in *elems (elems: the address of an ELEM *), each filled by parse(cx, element, arg, &elem[i]); *n counts
 * those parsed (so what was built can be released after an error). shape: the type
 * error's hint, "a list ( { name = ...; max = ...; }, ... )". */
typedef int (*pt_conf_elem_fn)(pt_conf_ctx *cx, config_setting_t *e, void *arg, void *elem);
int pt_conf_parse_list(pt_conf_ctx *cx, config_setting_t *s, const char *shape, size_t size,
                       pt_conf_elem_fn parse, void *arg, void *elems, unsigned *n);

/* Parses "127.0.0.1:80", "[::1]:80" (and for upstreams, "host:port", resolved now). */
int pt_conf_parse_addr(pt_conf_ctx *cx, config_setting_t *s, const char *text, bool resolve,
                       struct sockaddr_storage *ss, socklen_t *len);

/* The route for a request: the first in file order whose conditions hold.
 * host: the request's host, any case, no port. path: normalised path. */
const pt_route *pt_route_find(const pt_conf *conf, pt_str host, pt_str path, pt_method m,
                              pt_str method_name, unsigned listener);

/* conf_check: a listener of a module's own (the admin listener), after those of
 * `listeners`: every request on it goes to handler, never through the routes. Name and
 * address must be unique; s is where errors point. NULL on error (reported). */
pt_listener_conf *pt_conf_add_listener(pt_conf_ctx *cx, config_setting_t *s,
                                       const char *name, const char *address,
                                       const pt_module *handler);

/* Reads a small file named by setting s (a secret such as a token), relative to the main
 * file's directory unless absolute: its text without a trailing newline, in the conf's
 * pool, at most max bytes. A missing, unreadable, empty, too large or non-regular file is
 * an error at s. */
int pt_conf_read_small_file(pt_conf_ctx *cx, config_setting_t *s, const char *path,
                            size_t max, pt_str *out);
/* No route holds for a request: when some would but for its method, the union of the
 * methods they allow ("GET, HEAD, POST", the value of an Allow field) in buf and its
 * length; 0 when none would (a 404, not a 405). */
size_t pt_route_allow(const pt_conf *conf, pt_str host, pt_str path, unsigned listener,
                      char *buf, size_t size);

/* Per-module conf of a scope (NULL if the module has none). */
#define pt_main_conf(conf, mod)   ((conf)->main_conf[(mod).index])
#define pt_route_conf(route, mod) ((route)->mod_conf[(mod).index])
/* Does used() say yes of module m's configuration of any route or of filters.global?
 * (for pt_module.phase_used) */
bool pt_conf_any_route(const pt_conf *conf, const pt_module *m, bool (*used)(const void *rconf));
#define pt_listener_mod_conf(l, mod) ((l)->mod_conf[(mod).index])

#endif
