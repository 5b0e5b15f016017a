/* A worker: one epoll loop serving the listeners it inherited from the master.
 *
 * Accepting: every worker waits on the same listening sockets with EPOLLEXCLUSIVE, so a
 * new connection wakes one worker (not all: no thundering herd). We chose one shared
 * socket over SO_REUSEPORT groups because a reuseport socket's accept queue dies with its
 * worker: each reload would reset the connections queued on the old workers' sockets.
 * With a shared socket the queue belongs to the master's socket and survives any worker.
 * The cost is that balancing follows wake-ups rather than a hash; see README "Accepting".
 * Measured on 2 cores, 2 workers, 50 clients opening a connection per request (under
 * strace, so absolute rates are low): EPOLLEXCLUSIVE 4083 req/s, 5.3% of accept4() calls
 * finding nothing; plain level-triggered waiting (every worker woken) 3596 req/s, 6.0%.
 * EPOLLEXCLUSIVE spread the connections 1:2 between the workers, the herd 1:1.1: a busy
 * worker is woken less, which is the point.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/process.h"
#include "portico/shm.h"
#include "portico/upstream.h"
#include "http_core.h"

#define PT_ACCEPT_BATCH 64
/* A TLS connection brings a full handshake (a signature: a millisecond or more), so a
 * TLS listener admits few at a time: the listening socket is level-triggered, the rest
 * are taken on the next turns of the loop, and requests on connections already
 * established are not held behind a burst of handshakes. */
#define PT_ACCEPT_BATCH_TLS 4

pt_conf *pt_wconf;
pt_cycle *pt_cycle_cur;

static pt_loop      loop;
static pt_listener *listeners;
static unsigned     nlisteners;
static bool         accepting;
static pt_conn     *conns;           /* every open client connection */
static uint64_t     nconns;
static bool         draining;        /* SIGQUIT: finish what runs, take nothing new */
static pt_io        sig_io;
static pt_timer     drain_timer;
static pt_timer     accept_retry;

bool pt_worker_draining(void)
{
    return draining;
}

static void accept_pause(void);

void pt_worker_conn_opened(pt_conn *c)
{
    c->next = conns;
    c->prev = NULL;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;
    if (pt_stats_mine) {
        pt_stats_mine->accepted++;
        pt_stats_mine->active = nconns;
    }
    if (nconns >= pt_wconf->limits.max_connections)
        accept_pause();
}

static void accept_resume(void);

void pt_worker_conn_closed(pt_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    nconns--;
    if (pt_stats_mine)
        pt_stats_mine->active = nconns;
    if (!accepting && !draining && nconns < pt_wconf->limits.max_connections
        && !pt_timer_armed(&accept_retry))
        accept_resume();
    if (draining && nconns == 0)
        loop.stop = true;
}

static void accept_event(pt_io *io, uint32_t events)
{
    pt_listener *l = io->data;
    int batch = l->conf->tls ? PT_ACCEPT_BATCH_TLS : PT_ACCEPT_BATCH;
    for (int i = 0; i < batch && accepting; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = pt_xprt_tcp_accept(io->fd, &ss, &len);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* out of descriptors: stop for a moment instead of spinning */
                pt_log_errno(PT_LOG_CRIT, errno, "accept4() on %s failed; pausing accepts",
                             l->conf->address);
                accept_pause();
                pt_loop_timer(&loop, &accept_retry, 100);
                return;
            }
            pt_log_errno(PT_LOG_ERR, errno, "accept4() on %s failed", l->conf->address);
            return;
        }
        pt_conn_accepted(l, fd, (struct sockaddr *) &ss, len);
    }
}

static void accept_pause(void)
{
    if (!accepting)
        return;
    accepting = false;
    for (unsigned i = 0; i < nlisteners; i++)
        if (listeners[i].io.fd >= 0)
            pt_io_del(&loop, &listeners[i].io);
    if (nconns >= pt_wconf->limits.max_connections)
        pt_log(PT_LOG_WARN, "max_connections (%u) reached; not accepting",
               pt_wconf->limits.max_connections);
}

static void accept_resume(void)
{
    if (accepting || draining)
        return;
    accepting = true;
    for (unsigned i = 0; i < nlisteners; i++)
        if (listeners[i].io.fd >= 0)
            pt_io_add(&loop, &listeners[i].io, EPOLLIN | EPOLLEXCLUSIVE);
}

static void accept_retry_fire(pt_timer *t)
{
    if (nconns < pt_wconf->limits.max_connections)
        accept_resume();
}

static void drain_expired(pt_timer *t)
{
    pt_log(PT_LOG_WARN, "drain_timeout_ms (%u) passed with %llu connection(s) open; closing",
           pt_wconf->limits.drain_timeout_ms, (unsigned long long) nconns);
    loop.stop = true;
}

/* How long a draining worker keeps a keep-alive connection idle since idle_since: to
 * the end of drain_idle_grace_ms, plus a random part of drain_close_spread_ms. */
uint32_t pt_worker_drain_idle_ms(uint64_t idle_since)
{
    static uint32_t seed;
    const pt_limits *lim = &pt_wconf->limits;
    uint64_t now = loop.now;
    uint64_t close_at = pt_max(now, idle_since + lim->drain_idle_grace_ms);

    if (seed == 0)
        seed = (uint32_t) getpid() * 2654435761u | 1;
    seed = seed * 1103515245u + 12345u;
    if (lim->drain_close_spread_ms)
        close_at += (seed >> 8) % (lim->drain_close_spread_ms + 1);
    return (uint32_t) (close_at - now);
}

/* SIGQUIT: stop accepting (closing our copies of the listening sockets; the master keeps
 * them, so queued connections go to the new workers), close idle connections, and let
 * the others finish their request. */
static void start_drain(void)
{
    if (draining)
        return;
    accept_pause();
    draining = true;
    for (unsigned i = 0; i < nlisteners; i++) {
        if (listeners[i].io.fd >= 0) {
            close(listeners[i].io.fd);
            listeners[i].io.fd = -1;
        }
    }
    pt_log(PT_LOG_NOTICE, "gracefully stopping: %llu connection(s) open",
           (unsigned long long) nconns);
    for (pt_conn *c = conns, *next; c; c = next) {
        next = c->next;
        c->draining = true;
        if (c->proto)
            c->proto->drain(c);     /* the session finishes what runs, closes idle ones */
    }
    if (nconns == 0)
        loop.stop = true;
    else
        pt_loop_timer(&loop, &drain_timer, pt_wconf->limits.drain_timeout_ms);
}

static void reopen_logs(void)
{
    pt_log_reopen();
    for (unsigned i = 0; i < pt_nmodules; i++)
        if (pt_modules[i]->reopen)
            pt_modules[i]->reopen(pt_cycle_cur);
}

static void signal_event(pt_io *io, uint32_t events)
{
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGQUIT:
            start_drain();
            break;
        case SIGTERM:
        case SIGINT:
            loop.stop = true;
            draining = true;
            break;
        case SIGUSR1:
            reopen_logs();
            break;
        default:
            break;
        }
    }
}

static int setup_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return PT_ERROR;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return PT_ERROR;
    sig_io.fd = fd;
    sig_io.fn = signal_event;
    sig_io.data = NULL;
    return pt_io_add(&loop, &sig_io, EPOLLIN);
}

void pt_worker_main(pt_cycle *cy)
{
    char role[32];
    snprintf(role, sizeof(role), "worker %d", cy->worker);
    pt_log_set_role(role);
    prctl(PR_SET_NAME, "portico: worker", 0, 0, 0);
    pt_cycle_cur = cy;
    pt_wconf = cy->conf;
    if (pt_stats_zone && cy->stats_slot >= 0) {
        pt_stats_mine = &pt_stats_zone->worker[cy->stats_slot];
        pt_stats_mine->pid = getpid();
        pt_stats_mine->generation = cy->generation;
    }
    pt_metrics_worker_init(cy->stats_slot);
    pt_request_id_seed();

    if (pt_loop_init(&loop) != PT_OK)
        exit(2);
    pt_loop_cur = &loop;
    if (setup_signals() != PT_OK) {
        pt_log_errno(PT_LOG_ALERT, errno, "worker signal setup failed");
        exit(2);
    }
    pt_timer_init(&drain_timer, drain_expired, NULL);
    pt_timer_init(&accept_retry, accept_retry_fire, NULL);

    pt_http_init_worker();
    if (pt_upstream_worker_init(pt_wconf) != PT_OK) {
        pt_log(PT_LOG_ALERT, "upstreams failed to start in the worker");
        exit(2);
    }
    pt_metrics_worker_conf();
    for (unsigned i = 0; i < pt_nmodules; i++) {
        if (pt_modules[i]->worker_init && pt_modules[i]->worker_init(cy) != PT_OK) {
            pt_log(PT_LOG_ALERT, "module %s failed to start in the worker", pt_modules[i]->name);
            exit(2);
        }
    }

    nlisteners = pt_wconf->nlisteners;
    listeners = calloc(nlisteners ? nlisteners : 1, sizeof(*listeners));
    if (listeners == NULL)
        exit(2);
    for (unsigned i = 0; i < nlisteners; i++) {
        listeners[i].io.fd = cy->listen_fds[i];
        listeners[i].io.fn = accept_event;
        listeners[i].io.data = &listeners[i];
        listeners[i].conf = &pt_wconf->listeners[i];
    }
    accept_resume();
    pt_log(PT_LOG_INFO, "worker started");

    while (!loop.stop)
        pt_loop_once(&loop, pt_log_flush());    /* wakes for due "repeated" summaries */

    for (unsigned i = 0; i < pt_nmodules; i++)
        if (pt_modules[i]->worker_exit)
            pt_modules[i]->worker_exit(cy);
    pt_upstream_worker_exit();
    pt_log(PT_LOG_INFO, "worker exiting");
    pt_log_flush_all();
#ifdef PT_SANITIZERS
    /* tidy up so LeakSanitizer reports only real leaks */
    while (conns)
        pt_conn_close(conns);
    pt_loop_once(&loop, 0);
    pt_conn_free_lists_trim();
    free(listeners);
    pt_loop_free(&loop);
#endif
    exit(0);
}
