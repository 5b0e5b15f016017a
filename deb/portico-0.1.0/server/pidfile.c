/* The pid file, locked by the master for its whole life (see pidfile.h). */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "portico/pidfile.h"

static int  held_fd = -1;
static char held_path[4096];

/* The pid written in the file, 0 if none or garbage. */
static pid_t read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || (*end != '\n' && *end != '\0') || v <= 0 || v > INT32_MAX)
        return 0;
    return (pid_t) v;
}

/* The directory of the pid file, created when missing (like /usr/local/var/run of an
 * uninstalled build): mkdir -p of everything before the last '/'. */
static void make_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path || (size_t) (slash - path) >= sizeof(dir))
        return;
    memcpy(dir, path, (size_t) (slash - path));
    dir[slash - path] = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
    mkdir(dir, 0755);
}

static int lock_path(const char *path, int *out, pid_t *holder, char *err, size_t errlen)
{
    make_parent(path);
    if (strlen(path) >= sizeof(held_path)) {
        snprintf(err, errlen, "pid file path \"%s\" is too long", path);
        return PT_ERROR;
    }
    /* No O_TRUNC: the file may belong to a running master; empty it only once locked. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open pid file %s: %s", path, strerror(errno));
        return PT_ERROR;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            if (holder)
                *holder = read_pid(fd);
            close(fd);
            return PT_DECLINED;
        }
        snprintf(err, errlen, "cannot lock pid file %s: %s", path, strerror(e));
        close(fd);
        return PT_ERROR;
    }
    if (ftruncate(fd, 0) < 0) {
        snprintf(err, errlen, "cannot truncate pid file %s: %s", path, strerror(errno));
        close(fd);
        return PT_ERROR;
    }
    *out = fd;
    return PT_OK;
}

static int write_pid(int fd, const char *path, pid_t pid, char *err, size_t errlen)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int) pid);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t) n, 0) != n) {
        snprintf(err, errlen, "cannot write pid file %s: %s", path, strerror(errno));
        return PT_ERROR;
    }
    return PT_OK;
}

int pt_pidfile_lock(const char *path, pid_t *holder, char *err, size_t errlen)
{
    int fd;
    int rc = lock_path(path, &fd, holder, err, errlen);
    if (rc != PT_OK)
        return rc;
    if (held_fd >= 0)
        close(held_fd);
    held_fd = fd;
    snprintf(held_path, sizeof(held_path), "%s", path);
    return PT_OK;
}

int pt_pidfile_write(pid_t pid, char *err, size_t errlen)
{
    if (held_fd < 0) {
        snprintf(err, errlen, "no pid file held");
        return PT_ERROR;
    }
    return write_pid(held_fd, held_path, pid, err, errlen);
}

int pt_pidfile_move(const char *path, pid_t pid, char *err, size_t errlen)
{
    int fd;
    pid_t holder = 0;
    int rc = lock_path(path, &fd, &holder, err, errlen);
    if (rc == PT_DECLINED) {
        snprintf(err, errlen, "pid file %s is held by another process (pid %d)", path,
                 (int) holder);
        return PT_ERROR;
    }
    if (rc != PT_OK)
        return rc;
    if (write_pid(fd, path, pid, err, errlen) != PT_OK) {
        unlink(path);
        close(fd);
        return PT_ERROR;
    }
    pt_pidfile_remove();
    held_fd = fd;
    snprintf(held_path, sizeof(held_path), "%s", path);
    return PT_OK;
}

int pt_pidfile_rename(const char *path, char *err, size_t errlen)
{
    if (held_fd < 0) {
        snprintf(err, errlen, "no pid file held");
        return PT_ERROR;
    }
    if (strlen(path) >= sizeof(held_path)) {
        snprintf(err, errlen, "pid file path \"%s\" is too long", path);
        return PT_ERROR;
    }
    if (rename(held_path, path) < 0) {
        snprintf(err, errlen, "cannot rename pid file %s to %s: %s", held_path, path,
                 strerror(errno));
        return PT_ERROR;
    }
    snprintf(held_path, sizeof(held_path), "%s", path);
    return PT_OK;
}

void pt_pidfile_remove(void)
{
    if (held_fd < 0)
        return;
    /* Unlink while still holding the lock: a master starting now creates a fresh file. */
    unlink(held_path);
    close(held_fd);
    held_fd = -1;
    held_path[0] = '\0';
}

void pt_pidfile_forget(void)
{
    if (held_fd >= 0)
        close(held_fd);
    held_fd = -1;
}

const char *pt_pidfile_path(void)
{
    return held_fd >= 0 ? held_path : NULL;
}

pid_t pt_pidfile_master(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "no master process is running (pid file %s does not "
                     "exist)", path);
        else
            snprintf(err, errlen, "cannot open pid file %s: %s", path, strerror(errno));
        return 0;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        /* We got the lock, so no master holds it: whatever pid it names is stale. */
        flock(fd, LOCK_UN);
        close(fd);
        snprintf(err, errlen, "no master process is running (pid file %s is stale)", path);
        return 0;
    }
    if (errno != EWOULDBLOCK) {
        snprintf(err, errlen, "cannot check the lock on pid file %s: %s", path,
                 strerror(errno));
        close(fd);
        return 0;
    }
    pid_t pid = read_pid(fd);
    close(fd);
    if (pid == 0)
        snprintf(err, errlen, "pid file %s is locked but holds no pid yet (the master is "
                 "starting?)", path);
    return pid;
}
