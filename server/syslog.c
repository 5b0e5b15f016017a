/* Syslog outputs: RFC 5424 messages over a unix datagram socket (/dev/log: journald,
 * rsyslog) or UDP (a collector). Each log line is one message:
 *
 *   <134>1 2026-12-02T05:40:00.123Z web1 portico 4242 access - 127.0.0.1 - - [...] "GET ..."
 *
 * PRI is facility x 8 + severity (the access log's lines are info; the error log's keep
 * their level, whose numbers are syslog's); TIMESTAMP is UTC with milliseconds; APP-NAME
 * the configured tag; PROCID the writing process; MSGID "access" or "error". */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "portico/syslog.h"
#include "portico/xprt.h"

#define MSG_MAX 8192

const char *const pt_syslog_facility_names[] = {
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7", NULL
};

bool pt_syslog_is_target(const char *path)
{
    return strncmp(path, "syslog:", 7) == 0;
}

int pt_syslog_facility(const char *name)
{
    for (int i = 0; pt_syslog_facility_names[i]; i++)
        if (strcmp(name, pt_syslog_facility_names[i]) == 0)
            return i;
    return -1;
}

/* The address of a target; NULL on success, else why not. */
static const char *target_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strncmp(path, "syslog:unix:", 12) == 0) {
        const char *p = path + 12;
        struct sockaddr_un *un = (struct sockaddr_un *) ss;
        if (p[0] != '/')
            return "syslog:unix: needs an absolute socket path (syslog:unix:/dev/log)";
        if (strlen(p) >= sizeof(un->sun_path))
            return "syslog:unix: the socket path is too long";
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, p, strlen(p) + 1);
        *len = (socklen_t) sizeof(*un);
        return NULL;
    }
    if (strncmp(path, "syslog:udp:", 11) == 0) {
        const char *p = path + 11, *colon;
        char host[64];
        size_t hl;
        if (p[0] == '[') {
            const char *close = strchr(p, ']');
            if (close == NULL || close[1] != ':')
                return "syslog:udp: expected [IPv6]:PORT";
            hl = (size_t) (close - p - 1);
            colon = close + 1;
            p++;
        } else {
            colon = strrchr(p, ':');
            if (colon == NULL)
                return "syslog:udp: expected HOST:PORT (an IP address and a port)";
            hl = (size_t) (colon - p);
        }
        if (hl == 0 || hl >= sizeof(host))
            return "syslog:udp: expected HOST:PORT (an IP address and a port)";
        memcpy(host, p, hl);
        host[hl] = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end || port < 1 || port > 65535)
            return "syslog:udp: the port must be 1..65535";
        struct sockaddr_in *in4 = (struct sockaddr_in *) ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t) port);
            *len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t) port);
            *len = sizeof(*in6);
        } else {
            return "syslog:udp: the host must be an IP address (no name lookups for logs)";
        }
        return NULL;
    }
    return "a syslog target is \"syslog:unix:/PATH\" or \"syslog:udp:ADDRESS:PORT\"";
}

const char *pt_syslog_check(const char *path)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return target_addr(path, &ss, &len);
}

/* Where each open target's socket goes, to connect it again when its receiver went away
 * (rsyslog or journald restarted: /dev/log is a new socket, the old connection refuses
 * every message). Inherited by the workers with the descriptors. */
#define MAX_TARGETS 16
#define RETRY_MS    1000            /* at most one reconnection a second per target */
static struct {
    int                     fd;
    socklen_t               len;
    struct sockaddr_storage ss;
    uint64_t                retry_ms;
} targets[MAX_TARGETS];
static unsigned ntargets;

int pt_syslog_open(const char *path, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    const char *why = target_addr(path, &ss, &len);
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    int fd = pt_xprt_dgram_connect((struct sockaddr *) &ss, len);
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    unsigned i = 0;
    while (i < ntargets && targets[i].fd != fd)
        i++;                            /* a descriptor number closed and reused */
    if (i == ntargets && ntargets < MAX_TARGETS)
        ntargets++;
    if (i < ntargets) {
        targets[i].fd = fd;
        targets[i].len = len;
        targets[i].ss = ss;
        targets[i].retry_ms = 0;
    }
    return fd;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* After a refused send: a new connection in the same descriptor, if it is time to try. */
static bool reconnect(int fd)
{
    for (unsigned i = 0; i < ntargets; i++) {
        if (targets[i].fd != fd)
            continue;
        uint64_t now = mono_ms();
        if (now < targets[i].retry_ms)
            return false;
        targets[i].retry_ms = now + RETRY_MS;
        return pt_xprt_dgram_reconnect(fd, (struct sockaddr *) &targets[i].ss,
                                       targets[i].len) == PT_OK;
    }
    return false;
}

static char hostname[256];

void pt_syslog_send(int fd, int facility, int severity, const char *tag, const char *msgid,
                    const char *msg, size_t len)
{
    char head[512];
    struct timespec ts;
    struct tm tm;

    if (hostname[0] == '\0' && (gethostname(hostname, sizeof(hostname) - 1) < 0
                                || hostname[0] == '\0'))
        snprintf(hostname, sizeof(hostname), "-");
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(head, sizeof(head),
                     "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %d %s - ",
                     facility * 8 + severity, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, hostname,
                     tag && tag[0] ? tag : "-", (int) getpid(), msgid);
    if (n < 0)
        return;
    struct iovec iov[2] = {
        { head, pt_min((size_t) n, sizeof(head) - 1) },
        { (void *) msg, pt_min(len, (size_t) MSG_MAX) }
    };
    /* a lost message is lost: never block for it; but a receiver that went away and came
     * back (a new socket at the path) gets the next messages */
    if (pt_xprt_dgram_send(fd, iov, 2) != PT_OK
        && (errno == ECONNREFUSED || errno == ENOTCONN || errno == ECONNRESET)
        && reconnect(fd))
        pt_xprt_dgram_send(fd, iov, 2);
}
