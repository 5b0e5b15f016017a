/* `include = [ "conf.d/NAME.conf" ];` (NAME a glob such as '*'): more files of upstreams and routes, one per site.
 *
 * libconfig 1.5 has no glob in @include, and an @include'd file is spliced where it
 * stands, so two files could not both hold a `routes` list. So the loader does it:
 * once the main text parses, each pattern of `include` is expanded (sorted, relative to
 * the main file's directory), and each file found is appended to the text as a group of
 * its own, `include*N = { <the file> };` (a name no one writes: '*' is a libconfig name
 * character but no portico key has one). The text is parsed again; each file's lines
 * keep their file name and numbers (conf_read.c's line map), so an error in one names
 * that file and line. load() then appends the `upstreams` and `routes` of each group,
 * in order, after the main file's. */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portico/conf.h"
#include "portico/upstream.h"
#include "conf_int.h"

#define GROUP_PREFIX "include*"

bool pt_conf_is_include_group(const config_setting_t *s)
{
    const char *name = config_setting_name(s);
    return name && strncmp(name, GROUP_PREFIX, sizeof(GROUP_PREFIX) - 1) == 0
           && config_setting_parent(s) && config_setting_parent(config_setting_parent(s))
              == NULL;
}

static bool has_glob(const char *p)
{
    return strpbrk(p, "*?[") != NULL;
}

/* The files of one pattern, sorted (glob's order), appended to the text. */
static int expand(pt_conf_loader *lc, config_setting_t *e, const char *pattern,
                  unsigned *ngroups)
{
    pt_conf_ctx *cx = &lc->cx;
    const char *slash = strrchr(cx->file, '/');
    size_t dl = pattern[0] != '/' && slash ? (size_t) (slash - cx->file) + 1 : 0;
    char full[4096], group[32], shown[4096 + 64];
    glob_t g;

    if (pattern[0] == '\0')
        return pt_conf_error(cx, e, "an empty pattern");
    if (dl + strlen(pattern) >= sizeof(full))
        return pt_conf_error(cx, e, "\"%s\": too long", pattern);
    snprintf(full, sizeof(full), "%.*s%s", (int) dl, cx->file, pattern);
    memset(&g, 0, sizeof(g));
    int rc = glob(full, GLOB_ERR | GLOB_MARK, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        globfree(&g);
        /* a pattern matching nothing is an empty conf.d; a plain name must exist */
        if (has_glob(pattern))
            return PT_OK;
        return pt_conf_error(cx, e, "\"%s\" (%s): no such file", pattern, full);
    }
    if (rc != 0) {
        globfree(&g);
        return pt_conf_error(cx, e, "\"%s\" (%s): %s", pattern, full,
                             rc == GLOB_NOSPACE ? "out of memory" : "cannot read a directory");
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        size_t n = strlen(path);
        if (n && path[n - 1] == '/')
            continue;                   /* a directory matched: not a file to include */
        unsigned line = pt_conf_setting_line(cx, e);
        const char *file = cx->file;
        if (cx->text) {
            unsigned l;
            file = pt_conf_text_where(cx->text, config_setting_source_line(e), &l);
        }
        snprintf(shown, sizeof(shown), "%s:%u: include \"%s\": %s", file ? file : cx->file,
                 line, pattern, path);
        snprintf(group, sizeof(group), GROUP_PREFIX "%u", (*ngroups)++);
        if (pt_conf_text_append_group(&lc->text, cx->file, group, path, shown, cx->error,
                                      sizeof(cx->error)) != PT_OK) {
            cx->errors++;
            globfree(&g);
            return PT_ERROR;
        }
    }
    globfree(&g);
    return PT_OK;
}

int pt_conf_includes_expand(pt_conf_loader *lc, bool *added)
{
    pt_conf_ctx *cx = &lc->cx;
    config_setting_t *s = config_setting_get_member(config_root_setting(lc->cfg), "include");
    unsigned ngroups = 0;

    *added = false;
    if (s == NULL)
        return PT_OK;
    if (!config_setting_is_array(s))
        return pt_conf_type_error(cx, s, "an array of file patterns [ \"conf.d/*.conf\" ]");
    for (int i = 0, n = config_setting_length(s); i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        const char *pattern = config_setting_get_string(e);
        if (pattern == NULL)
            return pt_conf_type_error(cx, e, "a string (a file name or pattern)");
        if (expand(lc, e, pattern, &ngroups) != PT_OK)
            return PT_ERROR;
    }
    *added = ngroups > 0;
    return PT_OK;
}

/* The `include` key itself: checked and expanded while parsing. */
int pt_conf_set_include(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                        void *base)
{
    (void) cx; (void) s; (void) k; (void) base;
    return PT_OK;
}

int pt_conf_includes_load(pt_conf_loader *lc, const char *key)
{
    pt_conf_ctx *cx = &lc->cx;
    config_setting_t *root = config_root_setting(lc->cfg);

    for (int i = 0, n = config_setting_length(root); i < n; i++) {
        config_setting_t *g = config_setting_get_elem(root, (unsigned) i);
        if (!pt_conf_is_include_group(g))
            continue;
        for (int j = 0, m = config_setting_length(g); j < m; j++) {
            config_setting_t *e = config_setting_get_elem(g, (unsigned) j);
            const char *name = config_setting_name(e);
            if (strcmp(name, "upstreams") != 0 && strcmp(name, "routes") != 0)
                return pt_conf_error(cx, e, "only upstreams and routes may be in a file "
                                     "of include");
            if (strcmp(name, key) != 0)
                continue;
            int rc = strcmp(key, "routes") == 0
                     ? pt_conf_set_routes(cx, e, NULL, cx->conf)
                     : pt_upstream_conf_set(cx, e, NULL, cx->conf);
            if (rc != PT_OK)
                return PT_ERROR;
        }
    }
    return PT_OK;
}
