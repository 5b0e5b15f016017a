/* Binary upgrade (SIGUSR2 to the master), the way nginx operators know it: the running
 * master starts the binary found at its own path (a package upgrade has put a new one
 * there) with the same arguments, handing it the listening sockets. The new master reads
 * the configuration, adopts the sockets whose address it still lists, takes the pid file
 * (the old master's is renamed PID_FILE.oldbin) and starts its workers; both generations
 * then accept on the same sockets, so no connection is refused. The operator stops the old
 * master with QUIT once the new one serves well, or stops the new one to roll back (the old
 * master then takes its pid file back).
 *
 * Sockets are handed over as open descriptors across execve(2), named in the environment
 * variable PORTICO_LISTEN_FDS ("5;6;9"). The new master trusts nothing in it: each
 * descriptor must be a listening TCP socket, matched by its bound address. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/upgrade.h"

#define ENV_NAME "PORTICO_LISTEN_FDS"

#define MAX_INHERITED 256

typedef struct {
    int                     fd;
    struct sockaddr_storage addr;
    socklen_t               addrlen;
} inherited_fd;

static char          exe_path[PATH_MAX];
static char        **saved_argv;
static char         *env_fds;           /* PORTICO_LISTEN_FDS as we were started with */
static inherited_fd  inherited[MAX_INHERITED];
static unsigned      ninherited;

void pt_upgrade_init(int argc, char **argv)
{
    /* Taken out of the environment now, while its strings are still the original ones
     * (the process title code copies them next): our workers and our own upgrades must
     * not see it. */
    const char *v = getenv(ENV_NAME);
    if (v) {
        env_fds = strdup(v);
        unsetenv(ENV_NAME);
    }

    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    exe_path[n > 0 ? n : 0] = '\0';
    saved_argv = calloc((size_t) argc + 1, sizeof(char *));
    if (saved_argv == NULL)
        return;
    for (int i = 0; i < argc; i++) {
        saved_argv[i] = strdup(argv[i]);
        if (saved_argv[i] == NULL) {
            for (int j = 0; j < i; j++)
                free(saved_argv[j]);
            free(saved_argv);
            saved_argv = NULL;
            return;
        }
    }
}

void pt_upgrade_free(void)
{
    free(env_fds);
    env_fds = NULL;
    for (size_t i = 0; saved_argv && saved_argv[i]; i++)
        free(saved_argv[i]);
    free(saved_argv);
    saved_argv = NULL;
}

pid_t pt_upgrade_exec(const int *fds, unsigned n)
{
    if (saved_argv == NULL || saved_argv[0] == NULL) {
        errno = ENOMEM;
        return -1;
    }
    /* The path this binary was started from; after a package upgrade it names the new
     * file (readlink added " (deleted)" only if it was removed before we started). */
    const char *path = exe_path[0] ? exe_path : saved_argv[0];

    char list[MAX_INHERITED * 12 + 1];
    size_t off = 0;
    for (unsigned i = 0; i < n && i < MAX_INHERITED; i++) {
        if (fds[i] < 0)
            continue;
        int w = snprintf(list + off, sizeof(list) - off, "%s%d", off ? ";" : "", fds[i]);
        if (w < 0 || (size_t) w >= sizeof(list) - off)
            break;
        off += (size_t) w;
    }

    pid_t pid = fork();
    if (pid != 0)
        return pid;

    /* The child: the sockets survive the exec, everything else is close-on-exec. */
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            fcntl(fds[i], F_SETFD, 0);
    setenv(ENV_NAME, list, 1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);      /* the mask would survive execve */
    signal(SIGPIPE, SIG_DFL);
    execv(path, saved_argv);
    pt_log_errno(PT_LOG_ALERT, errno, "binary upgrade: execv(%s) failed", path);
    _exit(2);
}

unsigned pt_upgrade_inherit(void)
{
    if (env_fds == NULL)
        return 0;
    for (char *save = NULL, *tok = strtok_r(env_fds, ";", &save); tok;
         tok = strtok_r(NULL, ";", &save)) {
        char *end;
        errno = 0;
        long fd = strtol(tok, &end, 10);
        if (errno || *end || fd < 3 || fd > INT_MAX) {
            pt_log(PT_LOG_WARN, "binary upgrade: ignoring \"%s\" in " ENV_NAME, tok);
            continue;
        }
        if (ninherited == MAX_INHERITED) {
            pt_log(PT_LOG_WARN, "binary upgrade: more than %d descriptors in " ENV_NAME
                   "; descriptor %ld ignored", MAX_INHERITED, fd);
            continue;
        }
        int acc = 0, type = 0;
        socklen_t l1 = sizeof(acc), l2 = sizeof(type);
        inherited_fd *in = &inherited[ninherited];
        in->addrlen = sizeof(in->addr);
        if (getsockopt((int) fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l1) < 0 || !acc
            || getsockopt((int) fd, SOL_SOCKET, SO_TYPE, &type, &l2) < 0
            || type != SOCK_STREAM
            || getsockname((int) fd, (struct sockaddr *) &in->addr, &in->addrlen) < 0) {
            pt_log(PT_LOG_WARN, "binary upgrade: descriptor %ld is not a listening socket; "
                   "ignored", fd);
            continue;
        }
        fcntl((int) fd, F_SETFD, FD_CLOEXEC);
        in->fd = (int) fd;
        ninherited++;
    }
    free(env_fds);
    env_fds = NULL;
    return ninherited;
}

int pt_upgrade_take(const struct sockaddr_storage *addr, socklen_t len,
                    bool (*same)(const struct sockaddr_storage *, socklen_t,
                                 const struct sockaddr_storage *, socklen_t))
{
    for (unsigned i = 0; i < ninherited; i++) {
        if (inherited[i].fd >= 0 && same(addr, len, &inherited[i].addr, inherited[i].addrlen)) {
            int fd = inherited[i].fd;
            inherited[i].fd = -1;
            return fd;
        }
    }
    return -1;
}

void pt_upgrade_close_unused(void)
{
    for (unsigned i = 0; i < ninherited; i++) {
        if (inherited[i].fd >= 0) {
            pt_log(PT_LOG_NOTICE, "binary upgrade: inherited socket %d is not in the "
                   "configuration; closed", inherited[i].fd);
            close(inherited[i].fd);
            inherited[i].fd = -1;
        }
    }
    ninherited = 0;
}
