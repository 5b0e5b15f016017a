/* Private to the configuration loader (conf.c, conf_keys.c, conf_route.c). Modules see
 * only conf.h: everything here is state that lives while one file is being loaded. */
#ifndef PT_CONF_INT_H
#define PT_CONF_INT_H

#include "portico/conf.h"

/* The loading context handed to setters as pt_conf_ctx; the loader's own state wraps it,
 * so that setters keep the public signature and the loader recovers the rest. */
typedef struct pt_conf_loader {
    pt_conf_ctx              cx;
    config_t                *cfg;
    const config_setting_t **route_settings;     /* by route index: the { ... } element */
    const config_setting_t **listener_settings;  /* by listener index */
    /* libconfig 1.5 silently truncates integer literals past 32 bits: the source text of
     * the file being checked is kept to compare literals with what libconfig read */
    const char              *src_file;
    char                    *src;
    size_t                   src_len;
    size_t                  *lines;              /* offset of each line's start */
    size_t                   nlines;
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

/* conf_route.c */
int  pt_route_table_build(pt_conf_ctx *cx);

#endif
