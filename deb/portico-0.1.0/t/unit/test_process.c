/* Listening sockets (open, keep across a reload, clean failure) and the pid file lock. */
#include "portico/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/pidfile.h"
#include "portico/process.h"
#include "tap.h"

/* A port nobody listens on right now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *) &a, sizeof(a));
    getsockname(fd, (struct sockaddr *) &a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void set_listener(pt_listener_conf *l, unsigned index, const char *ip, int port)
{
    static char text[8][64];
    memset(l, 0, sizeof(*l));
    l->index = index;
    l->backlog = 16;
    snprintf(text[index], sizeof(text[index]), "%s:%d", ip, port);
    l->address = text[index];
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &l->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t) port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        l->addrlen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *) &l->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t) port);
        inet_pton(AF_INET, ip, &a->sin_addr);
        l->addrlen = sizeof(*a);
    }
}

static bool connects(const pt_listener_conf *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM, 0);
    bool ok = connect(fd, (const struct sockaddr *) &l->addr, l->addrlen) == 0;
    close(fd);
    return ok;
}

static bool same_socket(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino;
}

static bool has_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    return (fl & O_NONBLOCK) && (fdfl & FD_CLOEXEC);
}

static void test_listen(void)
{
    pt_listener_conf l1[2], l2[2], l3[2];
    pt_conf c1 = { .listeners = l1, .nlisteners = 2 };
    pt_conf c2 = { .listeners = l2, .nlisteners = 2 };
    pt_conf c3 = { .listeners = l3, .nlisteners = 2 };
    int pa = free_port(), pb = free_port(), pc = free_port();

    set_listener(&l1[0], 0, "127.0.0.1", pa);
    set_listener(&l1[1], 1, "::1", pb);
    int *f1 = pt_listen_open(&c1, NULL, NULL);
    tap_ok(f1 && f1[0] >= 0 && f1[1] >= 0, "two listeners open (IPv4 and IPv6)");
    tap_ok(f1 && connects(&l1[0]) && connects(&l1[1]), "both accept connections");
    tap_ok(f1 && has_flags(f1[0]) && has_flags(f1[1]), "non-blocking and close-on-exec");
    int v6only = 0;
    socklen_t len = sizeof(v6only);
    getsockopt(f1[1], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
    tap_is_int(v6only, 1, "IPv6 socket is IPv6 only");

    /* A reload: keeps pa (other backlog), drops pb, adds pc. */
    set_listener(&l2[0], 0, "127.0.0.1", pc);
    set_listener(&l2[1], 1, "127.0.0.1", pa);
    l2[1].backlog = 64;
    int *f2 = pt_listen_open(&c2, &c1, f1);
    tap_ok(f2 != NULL, "reload opens the new set");
    tap_ok(f2 && f2[1] != f1[0] && same_socket(f2[1], f1[0]),
           "a kept listener gets a new descriptor for the same socket");
    tap_ok(f2 && !same_socket(f2[0], f1[0]) && connects(&l2[0]), "a new listener is bound");

    /* The old generation ends: its array closes, the kept socket lives on. */
    pt_listen_close(&c1, f1);
    tap_ok(connects(&l2[1]), "kept socket still accepts after the old array is closed");
    tap_ok(!connects(&l1[1]), "the dropped listener is closed");

    /* A failing reload: the second address is taken by someone else. */
    int squat = socket(AF_INET, SOCK_STREAM, 0);
    int pd = free_port();
    struct sockaddr_in sq = { .sin_family = AF_INET, .sin_port = htons((uint16_t) pd),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    bind(squat, (struct sockaddr *) &sq, sizeof(sq));
    listen(squat, 1);
    int pe = free_port();
    set_listener(&l3[0], 0, "127.0.0.1", pe);
    set_listener(&l3[1], 1, "127.0.0.1", pd);
    pt_log_level = -1;
    int *f3 = pt_listen_open(&c3, &c2, f2);
    pt_log_level = PT_LOG_INFO;
    tap_ok(f3 == NULL, "bind failure: NULL");
    tap_ok(!connects(&l3[0]), "what the failed call opened is closed again");
    tap_ok(connects(&l2[0]) && connects(&l2[1]), "the running generation is untouched");
    close(squat);

    pt_listen_close(&c2, f2);
    tap_ok(!connects(&l2[0]) && !connects(&l2[1]), "closing the last generation closes all");
    pt_listen_close(&c2, NULL);
}

static void test_pidfile(void)
{
    char path[] = "/tmp/portico-test-pid.XXXXXX";
    int tmp = mkstemp(path);
    close(tmp);
    char err[256];
    pid_t holder = -1;

    /* A stale file: unlocked, names some pid. */
    FILE *f = fopen(path, "w");
    fprintf(f, "%d\n", 999999);
    fclose(f);
    tap_is_int(pt_pidfile_master(path, err, sizeof(err)), 0, "stale file: no master");
    tap_ok(strstr(err, "stale") != NULL, "and says so: %s", err);

    tap_is_int(pt_pidfile_lock(path, &holder, err, sizeof(err)), PT_OK, "lock a stale file");
    const char *want = path;
    tap_is_str(pt_pidfile_path(), want, "holding it");
    tap_is_int(pt_pidfile_master(path, err, sizeof(err)), 0, "locked but empty: no pid yet");
    tap_is_int(pt_pidfile_write(getpid(), err, sizeof(err)), PT_OK, "write the pid");
    tap_is_int(pt_pidfile_master(path, err, sizeof(err)), getpid(), "-s finds the holder");

    pid_t pid = fork();
    if (pid == 0) {
        pid_t h = 0;
        pt_pidfile_forget();            /* as a worker would */
        int rc = pt_pidfile_lock(path, &h, err, sizeof(err));
        _exit(rc == PT_DECLINED && h == getppid() ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "another process is refused and told the holder's pid");

    /* A child closing its inherited copy does not release the master's lock. */
    tap_is_int(pt_pidfile_master(path, err, sizeof(err)), getpid(), "lock survives a child");

    char moved[64];
    snprintf(moved, sizeof(moved), "%s.moved", path);
    tap_is_int(pt_pidfile_move(moved, getpid(), err, sizeof(err)), PT_OK, "move to another");
    tap_ok(access(path, F_OK) != 0, "the old file is gone");
    tap_is_int(pt_pidfile_master(moved, err, sizeof(err)), getpid(), "the new one is held");

    pt_pidfile_remove();
    tap_ok(access(moved, F_OK) != 0, "removed on exit");
    tap_is_int(pt_pidfile_master(moved, err, sizeof(err)), 0, "then no master");
    tap_ok(strstr(err, "does not exist") != NULL, "missing file explained: %s", err);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_listen();
    test_pidfile();
    return tap_done();
}
