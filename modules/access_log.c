/* access_log: one line per request, buffered, reopened on SIGUSR1.
 *
 *   access_log = { path = "/var/log/portico/access.log"; format = "main"; enabled = true;
 *                  buffer_size = 65536; flush_ms = 1000; };
 *
 * Formats: "combined" (the Apache/nginx combined format) and "main" (combined followed by
 * the request time, the upstream address, the upstream time and the cache status). */
#include "portico/conf.h"
#include "portico/module.h"

enum {
    PT_ACCESS_LOG_COMBINED = 0,
    PT_ACCESS_LOG_MAIN
};

typedef struct {
    const char *path;          /* "-" = stderr */
    int         format;        /* PT_ACCESS_LOG_* */
    bool        enabled;
    uint32_t    buffer_size;   /* bytes kept before a write; 0 = a write per request */
    uint32_t    flush_ms;      /* longest time a line waits in the buffer */
} pt_access_log_conf;

pt_module pt_access_log_module;

/* ---- configuration ---- */

static const char *const access_log_formats[] = { "combined", "main", NULL };

static const pt_conf_key access_log_keys[] = {
    { "path", 0, pt_conf_set_str, offsetof(pt_access_log_conf, path), 1, 4095, NULL },
    { "format", 0, pt_conf_set_enum, offsetof(pt_access_log_conf, format), 0, 0,
      access_log_formats },
    { "enabled", 0, pt_conf_set_bool, offsetof(pt_access_log_conf, enabled), 0, 0, NULL },
    { "buffer_size", 0, pt_conf_set_uint32, offsetof(pt_access_log_conf, buffer_size),
      0, 16777216, NULL },
    { "flush_ms", 0, pt_conf_set_uint32, offsetof(pt_access_log_conf, flush_ms), 1, 60000,
      NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static const pt_conf_key access_log_module_keys[] = {
    { "access_log", PT_SCOPE_MAIN, pt_conf_set_group, 0, 0, 0, access_log_keys },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int access_log_conf_init(pt_conf_ctx *cx, void *mconf)
{
    pt_access_log_conf *c = mconf;

    c->path = "-";
    c->format = PT_ACCESS_LOG_MAIN;
    c->enabled = true;
    c->buffer_size = 65536;
    c->flush_ms = 1000;
    return PT_OK;
}

/* request logging: lead */

pt_module pt_access_log_module = {
    .name = "access_log",
    .keys = access_log_module_keys,
    .main_conf_size = sizeof(pt_access_log_conf),
    .main_conf_init = access_log_conf_init,
};
