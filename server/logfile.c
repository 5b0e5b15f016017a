/* Log files for modules (the access log): the system calls they need, in the core. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/logfile.h"
#include "portico/privs.h"
#include "portico/syslog.h"

/* Descriptors that are syslog sockets, with what their messages carry: opened by the
 * master, inherited by the workers with the table. */
#define MAX_SYSLOG 8
static struct {
    int  fd;
    int  facility;
    char tag[49];
} syslogs[MAX_SYSLOG];
static unsigned nsyslogs;

int pt_logfile_open_syslog(const char *path, int facility, const char *tag, char *err,
                           size_t errlen)
{
    if (nsyslogs == MAX_SYSLOG) {
        snprintf(err, errlen, "too many syslog outputs");
        return -1;
    }
    int fd = pt_syslog_open(path, err, errlen);
    if (fd < 0)
        return -1;
    syslogs[nsyslogs].fd = fd;
    syslogs[nsyslogs].facility = facility;
    snprintf(syslogs[nsyslogs].tag, sizeof(syslogs[nsyslogs].tag), "%s", tag);
    nsyslogs++;
    return fd;
}

static int syslog_of(int fd)
{
    for (unsigned i = 0; i < nsyslogs; i++)
        if (syslogs[i].fd == fd)
            return (int) i;
    return -1;
}

static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int pt_logfile_open(const char *path, const char *user)
{
    struct passwd *pw = user && geteuid() == 0 ? getpwnam(user) : NULL;
    if (pw && pw->pw_uid != 0 && pt_privs_as(pw->pw_uid, pw->pw_gid)) {
        /* as the workers' user: the file is theirs, no chown needed (privs.c) */
        int fd = open_append(path);
        pt_privs_back();
        if (fd >= 0)
            return fd;
        /* their user may not write there (a directory of root's): as root, then given */
    }
    int fd = open_append(path);
    if (fd < 0)
        return -1;
    struct stat st;
    if (pw && fstat(fd, &st) == 0 && (st.st_uid != pw->pw_uid || st.st_gid != pw->pw_gid)
        && fchown(fd, pw->pw_uid, pw->pw_gid) < 0)
        pt_log_errno(PT_LOG_WARN, errno, "cannot chown \"%s\" to %s (the workers reopen it "
                     "after a rotation: make its directory writable by %s)", path, user, user);
    return fd;
}

void pt_logfile_write(int fd, const char *d, size_t len)
{
    int s = syslog_of(fd);
    if (s >= 0) {
        /* a message per line (the access log hands over a buffer of them) */
        while (len) {
            const char *nl = memchr(d, '\n', len);
            size_t n = nl ? (size_t) (nl - d) : len;
            if (n)
                pt_syslog_send(fd, syslogs[s].facility, PT_LOG_INFO, syslogs[s].tag,
                               "access", d, n);
            n += nl != NULL;
            d += n;
            len -= n;
        }
        return;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, d + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;                      /* a full disk must not stop the proxy */
        off += (size_t) n;
    }
}

void pt_logfile_close(int fd)
{
    int s = syslog_of(fd);
    if (s >= 0)
        syslogs[s] = syslogs[--nsyslogs];
    if (fd > STDERR_FILENO)
        close(fd);
}
