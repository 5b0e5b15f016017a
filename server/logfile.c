/* Log files for modules (the access log): the system calls they need, in the core. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/logfile.h"

int pt_logfile_open(const char *path, const char *user)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (user && geteuid() == 0) {
        struct passwd *pw = getpwnam(user);
        if (pw && fchown(fd, pw->pw_uid, pw->pw_gid) < 0)
            pt_log_errno(PT_LOG_WARN, errno, "cannot chown \"%s\"", path);
    }
    return fd;
}

void pt_logfile_write(int fd, const char *d, size_t len)
{
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
    if (fd > STDERR_FILENO)
        close(fd);
}
