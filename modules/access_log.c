/* access_log: one line per request, buffered, reopened on SIGUSR1.
 *
 *   access_log = { path = "/var/log/portico/access.log"; format = "main"; enabled = true;
 *                  buffer_size = 65536; flush_ms = 1000; };
 *
 * Formats: "combined" (the Apache/nginx combined format) and "main" (combined followed by
 * the request time, the upstream address, the upstream time and the cache status, then
 * "tags=a,b" when filtering rules tagged the request). */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "portico/clock.h"
#include "portico/conf.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/logfile.h"
#include "portico/module.h"
#include "portico/pool.h"

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
    int         fd;            /* opened by the master, inherited; -1 when off */
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
    c->fd = -1;
    return PT_OK;
}

/* ---- files ----
 * The master opens the file (it may be root, and the directory root's) and hands the
 * descriptor to the workers. On SIGUSR1 the master re-creates the file first, owned by the
 * workers' user, then each worker reopens it by path. */

static pt_access_log_conf *cur_conf(pt_cycle *cy)
{
    return pt_main_conf(cy->conf, pt_access_log_module);
}

static bool to_stderr(const pt_access_log_conf *c)
{
    return strcmp(c->path, "-") == 0;
}

static int open_log(const pt_access_log_conf *c, const char *user)
{
    return pt_logfile_open(c->path, user);
}

static void close_fd(void *data)
{
    pt_access_log_conf *c = data;
    pt_logfile_close(c->fd);
    c->fd = -1;
}

static int access_log_master_init(pt_cycle *cy)
{
    pt_access_log_conf *c = cur_conf(cy);
    if (!c->enabled || c->fd >= 0)
        return PT_OK;
    if (to_stderr(c)) {
        c->fd = STDERR_FILENO;
        return PT_OK;
    }
    c->fd = open_log(c, cy->conf->user);
    if (c->fd < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "cannot open access log \"%s\"", c->path);
        return PT_ERROR;
    }
    return pt_pool_cleanup_add(cy->conf->pool, close_fd, c);
}

/* ---- the worker's buffer ---- */

static char     *buf;
static size_t    buf_len, buf_cap;
static int       log_fd = -1;
static pt_timer  flush_timer;

static void write_all(const char *d, size_t len)
{
    pt_logfile_write(log_fd, d, len);
}

static void flush_buf(void)
{
    write_all(buf, buf_len);
    buf_len = 0;
}

static void flush_fire(pt_timer *t)
{
    flush_buf();
}

static int access_log_worker_init(pt_cycle *cy)
{
    pt_access_log_conf *c = cur_conf(cy);
    if (!c->enabled)
        return PT_OK;
    log_fd = c->fd;
    buf_cap = c->buffer_size;
    buf_len = 0;
    if (buf_cap && (buf = malloc(buf_cap)) == NULL)
        return PT_ERROR;
    pt_timer_init(&flush_timer, flush_fire, NULL);
    return PT_OK;
}

static void access_log_worker_exit(pt_cycle *cy)
{
    if (log_fd < 0)
        return;
    flush_buf();
    pt_timer_del(&pt_loop_cur->timers, &flush_timer);
    free(buf);
    buf = NULL;
    buf_cap = 0;
}

static void access_log_reopen(pt_cycle *cy)
{
    pt_access_log_conf *c = cur_conf(cy);
    if (!c->enabled || to_stderr(c))
        return;
    if (cy->worker < 0) {
        /* master: create the new file with the right owner before the workers open it */
        int fd = open_log(c, cy->conf->user);
        if (fd < 0) {
            pt_log_errno(PT_LOG_ERR, errno, "cannot reopen access log \"%s\"", c->path);
            return;
        }
        pt_logfile_close(c->fd);
        c->fd = fd;
        return;
    }
    flush_buf();
    int fd = pt_logfile_open(c->path, NULL);
    if (fd < 0) {
        pt_log_errno(PT_LOG_ERR, errno, "cannot reopen access log \"%s\"", c->path);
        return;
    }
    pt_logfile_close(log_fd);
    log_fd = fd;
}

/* ---- formatting ---- */

/* Request data is the client's: quote, backslash and non-printable bytes are written as
 * \xHH so a line cannot be forged or broken. */
static char *put_escaped(char *p, char *end, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n && p + 4 < end; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        } else {
            *p++ = (char) ch;
        }
    }
    return p;
}

static char *put_header(char *p, char *end, pt_request *r, pt_str name)
{
    const pt_header *h = pt_h1_find(r->head.headers, r->head.nheaders, name);
    *p++ = '"';
    if (h && h->value.len)
        p = put_escaped(p, end - 1, h->value.data, pt_min(h->value.len, 1024));
    else
        *p++ = '-';
    *p++ = '"';
    return p;
}

static void access_log_request(pt_request *r)
{
    pt_access_log_conf *c = pt_main_conf(pt_cycle_cur->conf, pt_access_log_module);
    if (log_fd < 0)
        return;
    char line[8192];
    char *p = line, *end = line + sizeof(line) - 64;
    pt_str when = pt_clock_log_time(r->start_ms);

    memcpy(p, r->conn->peer_ip, r->conn->peer_ip_len);
    p += r->conn->peer_ip_len;
    p += snprintf(p, (size_t) (end - p), " - - [%.*s] \"", (int) when.len, when.data);
    if (r->head.method_name.len) {
        p = put_escaped(p, end, r->head.method_name.data, r->head.method_name.len);
        *p++ = ' ';
        p = put_escaped(p, end, r->head.target.data, pt_min(r->head.target.len, 4096));
        p += snprintf(p, (size_t) (end - p), " HTTP/%u.%u", r->head.version / 10,
                      r->head.version % 10);
    } else {
        *p++ = '-';
    }
    uint64_t overhead = r->resp_head_len + (r->continue_sent ? 25 : 0);
    uint64_t body = r->bytes_sent > overhead ? r->bytes_sent - overhead : 0;
    p += snprintf(p, (size_t) (end - p), "\" %03u %llu ", r->status, (unsigned long long) body);
    p = put_header(p, end, r, PT_STR("Referer"));
    *p++ = ' ';
    p = put_header(p, end, r, PT_STR("User-Agent"));
    if (c->format == PT_ACCESS_LOG_MAIN) {
        uint64_t rt = pt_loop_cur->now - r->start_mono;
        p += snprintf(p, (size_t) (end - p), " %llu.%03llu ", (unsigned long long) (rt / 1000),
                      (unsigned long long) (rt % 1000));
        if (r->upstream_addr.len) {
            memcpy(p, r->upstream_addr.data, pt_min(r->upstream_addr.len, 64));
            p += pt_min(r->upstream_addr.len, 64);
        } else {
            *p++ = '-';
        }
        if (r->upstream_ms >= 0)
            p += snprintf(p, (size_t) (end - p), " %llu.%03llu",
                          (unsigned long long) (r->upstream_ms / 1000),
                          (unsigned long long) (r->upstream_ms % 1000));
        else
            p += snprintf(p, (size_t) (end - p), " -");
        p += snprintf(p, (size_t) (end - p), " %s", r->cache_status ? r->cache_status : "-");
        /* tags of the filtering rules that matched (names: nothing to escape) */
        if (r->log_tags.len)
            p += snprintf(p, (size_t) (end - p), " tags=%.*s",
                          (int) pt_min(r->log_tags.len, 1024), r->log_tags.data);
    }
    *p++ = '\n';
    size_t n = (size_t) (p - line);

    if (buf_len + n > buf_cap)
        flush_buf();
    if (n > buf_cap) {
        write_all(line, n);             /* unbuffered (buffer_size = 0) or a huge line */
        return;
    }
    memcpy(buf + buf_len, line, n);
    buf_len += n;
    if (!pt_timer_armed(&flush_timer))
        pt_loop_timer(pt_loop_cur, &flush_timer, c->flush_ms);
}

pt_module pt_access_log_module = {
    .name = "access_log",
    .keys = access_log_module_keys,
    .main_conf_size = sizeof(pt_access_log_conf),
    .main_conf_init = access_log_conf_init,
    .master_init = access_log_master_init,
    .worker_init = access_log_worker_init,
    .worker_exit = access_log_worker_exit,
    .reopen = access_log_reopen,
    .log = access_log_request,
};
