/* Private to the configuration loader (conf.c, conf_keys.c, conf_route.c). Modules see
 * only conf.h: everything here is state that lives while one file is being loaded. */
#ifndef PT_CONF_INT_H
#define PT_CONF_INT_H

#include "portico/conf.h"

/* The configuration text (conf_read.c): the main file with every @include spliced in, as
 * libconfig parses it, and where each of its lines comes from. libconfig never opens a
 * file itself: see conf_read.c. */
#define PT_CONF_MAX_SIZE  (16u << 20)   /* bytes, all files together */
#define PT_CONF_MAX_DEPTH 10            /* nested @include levels (as libconfig 1.5) */

typedef struct pt_conf_run {
    unsigned     first;                 /* lines of the text from this one on */
    unsigned     line;                  /* come from this line on */
    const char  *file;                  /* of this file (as named to the user) */
} pt_conf_run;

struct pt_conf_text {
    char         *data;                 /* NUL-terminated */
    size_t        len, cap;
    uint32_t     *offs;                 /* offs[n - 1]: where line n starts in data */
    size_t        nlines, ocap;
    pt_conf_run  *runs;                 /* one per stretch of lines from one file */
    size_t        nruns, rcap;
    const char   *end_file;             /* the main file, and its line at its end */
    unsigned      end_line;
    char        **files;                /* the names runs[].file point to */
    size_t        nfiles, fcap;
    size_t        bytes_read;           /* of every file: limited to PT_CONF_MAX_SIZE */
    unsigned     *seams;                /* text lines closing an included file's group */
    size_t        nseams, scap;
};

/* Reads path and what it includes. On failure returns PT_ERROR with "FILE:LINE: ..." in
 * err; t is to be freed either way. */
int  pt_conf_text_read(pt_conf_text *t, const char *path, char *err, size_t errlen);
void pt_conf_text_free(pt_conf_text *t);
/* Appends the file at path (an `include` match) as `group = { <its text> };`, its lines
 * mapped to it (@include inside it works as anywhere). shown: how errors name it. */
int  pt_conf_text_append_group(pt_conf_text *t, const char *main_path, const char *group,
                               const char *path, const char *shown, char *err,
                               size_t errlen);
/* The file and line that line n of the text (1-based, as libconfig counts) comes from;
 * past the last line: the end of the main file. */
const char *pt_conf_text_where(const pt_conf_text *t, unsigned n, unsigned *line);

/* The loading context handed to setters as pt_conf_ctx; the loader's own state wraps it,
 * so that setters keep the public signature and the loader recovers the rest. */
typedef struct pt_conf_loader {
    pt_conf_ctx              cx;
    config_t                *cfg;
    const config_setting_t **route_settings;     /* by route index: the { ... } element */
    const config_setting_t **listener_settings;  /* by listener index */
    /* what libconfig parsed; libconfig 1.5 also silently truncates integer literals past
     * 32 bits, so literals are compared with what it read */
    pt_conf_text             text;
} pt_conf_loader;

#define pt_conf_loader_of(cx) pt_container_of(cx, pt_conf_loader, cx)

/* conf.c */
void *pt_conf_alloc(pt_conf_ctx *cx, size_t n);   /* zeroed; reports running out of memory */
/* Parses the members of group s: first the core's table (into core_base), then the keys
 * the modules declare for scope (into mod_conf[module index]). */
int  pt_conf_parse_scope(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *core,
                         void *core_base, unsigned scope, void **mod_conf);
/* Allocates and initialises the modules' conf structs of a scope. */
void **pt_conf_mod_confs(pt_conf_ctx *cx, unsigned scope, pt_route *rt, pt_listener_conf *l);

/* conf_keys.c: the core's keys */
extern const pt_conf_key pt_conf_main_keys[];
extern const pt_conf_key pt_conf_listener_keys[];
extern const pt_conf_key pt_conf_route_keys[];
void pt_conf_defaults(pt_conf *conf);
int  pt_conf_set_routes(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                        void *base);
int  pt_conf_check_core(pt_conf_ctx *cx, config_setting_t *root);
/* The route-shaped scope of filters.global, with every module's route conf initialised. */
pt_route *pt_conf_global_scope(pt_conf_ctx *cx);

/* conf_include.c: `include = [ patterns ];` */
/* After the main text parsed: appends each file the patterns match as a group of its
 * own (*added: any); the caller parses the text again. */
int  pt_conf_includes_expand(pt_conf_loader *lc, bool *added);
/* Parses key ("upstreams" or "routes") of every included file, in order, appending to
 * what the main file has; any other key there is an error. */
int  pt_conf_includes_load(pt_conf_loader *lc, const char *key);
bool pt_conf_is_include_group(const config_setting_t *s);
int  pt_conf_set_include(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                         void *base);

/* conf_route.c */
int  pt_route_table_build(pt_conf_ctx *cx);

/* h2_conf.c: the listener's HTTP/2 keys */
void pt_h2_limits_default(pt_h2_limits *h);
int  pt_h2_set_http2(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base);
int  pt_h2_listener_check(pt_conf_ctx *cx, config_setting_t *e, const pt_listener_conf *l);

#endif
