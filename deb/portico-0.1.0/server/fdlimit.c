/* Descriptor limits (RLIMIT_NOFILE).
 *
 * The soft limit many systems start a service with (1024, or less under `ulimit -n`) is
 * far below what max_connections asks for: each proxied request holds a client and an
 * origin socket, and a worker out of descriptors answers 502 and floods the error log.
 * So the master raises its soft limit to the hard one at start, and the workers inherit
 * it. worker_rlimit_nofile = N sets both limits of each worker to N instead, as nginx's
 * directive of that name does: in the worker, while it is still root (only root may
 * raise a hard limit), so a reload can change it for the new workers and the master's
 * own limit never shrinks. */
#include "portico/core.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/process.h"

/* Besides two per connection: the proxy's cache of emptied splice pipes (16 pairs,
 * PX_PIPE_CACHE in modules/proxy.c), and the standard streams, the error and access logs,
 * epoll, the signalfd and a few spare. Listeners are added per configuration. */
#define FD_PIPE_CACHE  32
#define FD_FIXED       16

void pt_fdlimit_raise(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        pt_log_errno(PT_LOG_WARN, errno, "getrlimit(RLIMIT_NOFILE) failed");
        return;
    }
    if (rl.rlim_cur >= rl.rlim_max || rl.rlim_max == RLIM_INFINITY)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        pt_log_errno(PT_LOG_WARN, errno, "cannot raise the descriptor limit (RLIMIT_NOFILE) "
                     "from %llu to %llu", (unsigned long long) was,
                     (unsigned long long) rl.rlim_max);
        return;
    }
    pt_log(PT_LOG_NOTICE, "descriptor limit (RLIMIT_NOFILE) raised from %llu to the hard "
           "limit, %llu", (unsigned long long) was, (unsigned long long) rl.rlim_max);
}

void pt_fdlimit_worker(const pt_conf *conf)
{
    rlim_t n = conf->worker_rlimit_nofile;
    struct rlimit rl = { n, n }, cur;

    if (n == 0 || setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return;
    int err = errno;
    /* not root, or above the kernel's fs.nr_open: as close as the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &cur) == 0) {
        cur.rlim_cur = pt_min(n, cur.rlim_max);
        setrlimit(RLIMIT_NOFILE, &cur);
        getrlimit(RLIMIT_NOFILE, &cur);
    }
    pt_log(PT_LOG_ALERT, "worker_rlimit_nofile %llu: setrlimit(RLIMIT_NOFILE) failed "
           "(%d: %s); the limit is %llu", (unsigned long long) n, err, strerror(err),
           (unsigned long long) cur.rlim_cur);
}

/* May this process raise a hard limit (CAP_SYS_RESOURCE; root in a container may lack
 * it)? */
static bool can_raise_hard(void)
{
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

    if (syscall(SYS_capget, &h, d) < 0)
        return geteuid() == 0;
    return (d[CAP_SYS_RESOURCE / 32].effective & (1u << (CAP_SYS_RESOURCE % 32))) != 0;
}

void pt_fdlimit_check(const pt_conf *conf)
{
    struct rlimit rl;
    uint64_t limit;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    limit = rl.rlim_cur;
    if (conf->worker_rlimit_nofile) {
        /* what the worker will get: above the hard limit only with CAP_SYS_RESOURCE
         * (root), and never above fs.nr_open; else pt_fdlimit_worker() falls back to the
         * hard limit */
        uint64_t n = conf->worker_rlimit_nofile, nr_open = UINT64_MAX;
        FILE *f = fopen("/proc/sys/fs/nr_open", "re");
        if (f) {
            unsigned long long v;
            if (fscanf(f, "%llu", &v) == 1)
                nr_open = v;
            fclose(f);
        }
        bool can = n <= rl.rlim_max || (n <= nr_open && can_raise_hard());
        limit = can ? n : rl.rlim_max;
    }
    uint64_t need = 2 * (uint64_t) conf->limits.max_connections + FD_PIPE_CACHE + FD_FIXED
                    + conf->nlisteners;
    if (need <= limit)
        return;
    pt_log(PT_LOG_WARN, "max_connections %u does not fit in the descriptor limit %llu%s: a "
           "worker may need 2 x %u + %llu = %llu descriptors (a client and an origin socket "
           "per connection, splice pipes, listeners, logs); raise worker_rlimit_nofile (or "
           "the hard limit: ulimit -Hn, LimitNOFILE=) or lower max_connections",
           conf->limits.max_connections, (unsigned long long) limit,
           conf->worker_rlimit_nofile ? " (worker_rlimit_nofile)" : " (RLIMIT_NOFILE)",
           conf->limits.max_connections, (unsigned long long) (need - 2 * (uint64_t)
           conf->limits.max_connections), (unsigned long long) need);
}
