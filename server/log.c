/* The error log. Each line is formatted into one buffer and written with one write(2),
 * so lines from the master and the workers (same file, O_APPEND) never interleave. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "portico/log.h"

int pt_log_level = PT_LOG_INFO;

static int         log_fd = STDERR_FILENO;
static char        log_path[4096] = "-";
static char        log_role[32] = "master";

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
}

static int open_path(const char *path)
{
    if (strcmp(path, "-") == 0)
        return STDERR_FILENO;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int pt_log_open(const char *path, int level)
{
    int fd = open_path(path);
    if (fd < 0) {
        pt_log_errno(PT_LOG_ERR, errno, "cannot open error log \"%s\"", path);
        return PT_ERROR;
    }
    if (log_fd != STDERR_FILENO && log_fd != fd)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    if (level >= 0)
        pt_log_level = level;
    return PT_OK;
}

int pt_log_reopen(void)
{
    if (strcmp(log_path, "-") == 0)
        return PT_OK;
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
    return log_fd;
}

static void vlog(int level, int err, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d/%02d/%02d %02d:%02d:%02d [%s] %d#%s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, pt_log_level_name(level), (int) getpid(), log_role);
    if (n < 0)
        return;
    size_t len = (size_t) n;
    int m = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    if (m > 0)
        len += (size_t) m < sizeof(line) - len ? (size_t) m : sizeof(line) - len - 1;
    if (err && len < sizeof(line) - 1) {
        m = snprintf(line + len, sizeof(line) - len, " (%d: %s)", err, strerror(err));
        if (m > 0)
            len += (size_t) m < sizeof(line) - len ? (size_t) m : sizeof(line) - len - 1;
    }
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w;
    do {
        w = write(log_fd, line, len);
    } while (w < 0 && errno == EINTR);
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
