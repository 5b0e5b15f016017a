/* Service manager notifications (the sd_notify protocol, spoken without libsystemd): when
 * NOTIFY_SOCKET names a unix datagram socket, the master reports its state there.
 * READY=1 once its workers run, RELOADING=1 / READY=1 around a reload, STOPPING=1, and
 * MAINPID=: a binary upgrade's new master announces itself, so systemd (Type=notify,
 * NotifyAccess=all) follows the upgrade instead of stopping the service when the old
 * master exits. Failures are ignored: nobody may be listening. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/notify.h"

void pt_notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';          /* an abstract socket */

    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(msg))
        return;

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, msg, (size_t) n, MSG_NOSIGNAL, (struct sockaddr *) &sa, salen) < 0)
        pt_debug("NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
}
