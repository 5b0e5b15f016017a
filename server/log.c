/* The error log. Each line is formatted into one buffer and written with one write(2),
 * so lines from the master and the workers (same file, O_APPEND) never interleave.
 *
 * Repeated messages: a process that logs the same message (same level, same text) again
 * within REPEAT_WINDOW_MS of writing it does not write it again but counts it; when the
 * window has passed (pt_log_flush(), from the process's loop), when the slot is needed for
 * another message, or at exit, one line "last message repeated N times: TEXT" stands for
 * them. The next occurrence after that is written in full and opens a new window, so a
 * flood costs at most two lines per second per distinct message and grep still finds
 * the text in each window. A few slots, not only the last message: a failing request
 * often logs two lines (connect() failed, no server left), which alternate in a flood.
 * Other messages are never held back. The counts are per process: each line carries
 * its pid and role, and a summary the pid of the process whose messages it counts. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "portico/log.h"
#include "portico/logfile.h"
#include "portico/syslog.h"

#define LINE_MAX_LEN      2048
#define REPEAT_WINDOW_MS  1000
#define REPEAT_SLOTS      8

typedef struct {
    bool      used;
    int       level;
    uint32_t  hash;
    size_t    len;
    uint64_t  since;            /* ms, monotonic: when the text was last written */
    uint64_t  seq;              /* last use: the least recently used slot goes first */
    unsigned  count;            /* identical messages held back since */
    char      text[LINE_MAX_LEN];
} repeat_slot;

int pt_log_level = PT_LOG_INFO;

static int         log_fd = STDERR_FILENO;
static bool        log_syslog;          /* log_fd is a syslog socket */
static int         syslog_facility = PT_SYSLOG_DEFAULT_FACILITY;
static char        syslog_tag[49] = "portico";
static char        log_path[4096] = "-";
static char        log_role[32] = "master";
static repeat_slot repeats[REPEAT_SLOTS];
static unsigned    repeats_pending;     /* slots with count > 0 */
static uint64_t    repeats_seq;

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"
};

int pt_log_level_from_name(const char *name)
{
    for (unsigned i = 0; i < pt_nelems(level_names); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int) i;
    return -1;
}

const char *pt_log_level_name(int level)
{
    if (level < 0 || level >= (int) pt_nelems(level_names))
        return "?";
    return level_names[level];
}

void pt_log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
    /* a new process: what its parent held back is the parent's to report */
    memset(repeats, 0, sizeof(repeats));
    repeats_pending = 0;
}

static char log_owner[64];          /* the workers' user: the file is made theirs */

void pt_log_set_owner(const char *user)
{
    snprintf(log_owner, sizeof(log_owner), "%s", user ? user : "");
}

static int open_path(const char *path)
{
    if (strcmp(path, "-") == 0)
        return STDERR_FILENO;
    return pt_logfile_open(path, log_owner[0] ? log_owner : NULL);
}

void pt_log_set_syslog(int facility, const char *tag)
{
    syslog_facility = facility;
    snprintf(syslog_tag, sizeof(syslog_tag), "%s", tag);
}

int pt_log_open(const char *path, int level)
{
    bool sl = pt_syslog_is_target(path);
    char why[256] = "";
    int fd = sl ? pt_syslog_open(path, why, sizeof(why)) : open_path(path);
    if (fd < 0) {
        if (sl)
            pt_log(PT_LOG_ERR, "cannot open error log \"%s\": %s", path, why);
        else
            pt_log_errno(PT_LOG_ERR, errno, "cannot open error log \"%s\"", path);
        return PT_ERROR;
    }
    if (log_fd != STDERR_FILENO && log_fd != fd)
        close(log_fd);
    log_fd = fd;
    log_syslog = sl;
    snprintf(log_path, sizeof(log_path), "%s", path);
    if (level >= 0)
        pt_log_level = level;
    return PT_OK;
}

int pt_log_reopen(void)
{
    if (strcmp(log_path, "-") == 0 || log_syslog)
        return PT_OK;                   /* a socket: nothing to reopen */
    int fd = open_path(log_path);
    if (fd < 0) {
        pt_log_errno(PT_LOG_ERR, errno, "cannot reopen error log \"%s\"", log_path);
        return PT_ERROR;
    }
    int old = log_fd;
    log_fd = fd;
    if (old != STDERR_FILENO)
        close(old);
    return PT_OK;
}

int pt_log_fd(void)
{
    return log_syslog ? STDERR_FILENO : log_fd;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static size_t clamp_add(size_t len, int m, size_t cap)
{
    if (m <= 0)
        return len;
    return len + ((size_t) m < cap - len ? (size_t) m : cap - len - 1);
}

/* "2026/11/25 11:29:11 [notice] 3833#master: " + text + "\n", one write(2). */
static void write_line(int level, const char *prefix, size_t plen, const char *text,
                       size_t tlen)
{
    char line[LINE_MAX_LEN + 128];
    struct timeval tv;
    struct tm tm;
    if (log_syslog) {
        /* the message's header has the time, the level and the pid */
        int n = snprintf(line, sizeof(line), "%s: %.*s%.*s", log_role, (int) plen, prefix,
                         (int) pt_min(tlen, (size_t) LINE_MAX_LEN), text);
        if (n > 0)
            pt_syslog_send(log_fd, syslog_facility, level, syslog_tag, "error", line,
                           pt_min((size_t) n, sizeof(line) - 1));
        return;
    }
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d/%02d/%02d %02d:%02d:%02d [%s] %d#%s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, pt_log_level_name(level), (int) getpid(), log_role);
    if (n < 0)
        return;
    size_t len = (size_t) n;
    size_t room = sizeof(line) - 1 - len;           /* keep one byte for the newline */
    if (plen > room)
        plen = room;
    memcpy(line + len, prefix, plen);
    len += plen;
    room -= plen;
    if (tlen > room)
        tlen = room;
    memcpy(line + len, text, tlen);
    len += tlen;
    line[len++] = '\n';
    ssize_t w;
    do {
        w = write(log_fd, line, len);
    } while (w < 0 && errno == EINTR);
}

static void repeat_report(repeat_slot *s)
{
    if (s->count) {
        char head[64];
        int n = snprintf(head, sizeof(head), "last message repeated %u time%s: ", s->count,
                         s->count == 1 ? "" : "s");
        write_line(s->level, head, (size_t) n, s->text, s->len);
        repeats_pending--;
    }
    s->used = false;
    s->count = 0;
}

/* Reports the slots whose window has passed (all with force); returns the ms until the
 * next report is due, -1 for none. */
static int repeat_flush(uint64_t now, bool force)
{
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < REPEAT_SLOTS; i++) {
        repeat_slot *s = &repeats[i];
        if (!s->used)
            continue;
        if (force || now - s->since >= REPEAT_WINDOW_MS)
            repeat_report(s);
        else if (s->count)
            next = pt_min(next, s->since + REPEAT_WINDOW_MS);
    }
    return next == UINT64_MAX ? -1 : (int) (next - now + 1);
}

int pt_log_flush(void)
{
    if (repeats_pending == 0)
        return -1;
    return repeat_flush(mono_ms(), false);
}

void pt_log_flush_all(void)
{
    if (repeats_pending)
        repeat_flush(0, true);
}

static uint32_t text_hash(const char *t, size_t len)
{
    uint32_t h = 2166136261u;                       /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char) t[i]) * 16777619u;
    return h;
}

static void vlog(int level, int err, const char *fmt, va_list ap)
{
    char text[LINE_MAX_LEN];
    size_t len = clamp_add(0, vsnprintf(text, sizeof(text), fmt, ap), sizeof(text));
    if (err && len < sizeof(text) - 1)
        len = clamp_add(len, snprintf(text + len, sizeof(text) - len, " (%d: %s)", err,
                                      strerror(err)), sizeof(text));

    uint64_t now = mono_ms();
    repeat_flush(now, false);
    uint32_t h = text_hash(text, len);
    repeat_slot *free_slot = NULL, *oldest = NULL;
    for (unsigned i = 0; i < REPEAT_SLOTS; i++) {
        repeat_slot *s = &repeats[i];
        if (!s->used) {
            free_slot = free_slot ? free_slot : s;
            continue;
        }
        if (s->hash == h && s->level == level && s->len == len
            && memcmp(s->text, text, len) == 0)
        {
            if (s->count++ == 0)
                repeats_pending++;
            s->seq = ++repeats_seq;     /* a flood keeps its slot */
            return;
        }
        if (oldest == NULL || s->seq < oldest->seq)
            oldest = s;
    }

    repeat_slot *s = free_slot;
    if (s == NULL) {
        s = oldest;
        repeat_report(s);               /* its count belongs before this line */
    }
    write_line(level, "", 0, text, len);
    s->used = true;
    s->level = level;
    s->hash = h;
    s->len = len;
    s->since = now;
    s->seq = ++repeats_seq;
    s->count = 0;
    memcpy(s->text, text, len);
}

void pt_log(int level, const char *fmt, ...)
{
    if (level > pt_log_level)
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void pt_log_errno(int level, int err, const char *fmt, ...)
{
    if (level > pt_log_level)
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, err, fmt, ap);
    va_end(ap);
    errno = saved;
}
