/* The master process: forks the workers and supervises them, handles signals, reloads.
 * It serves no traffic and keeps root, so that a reload can bind new privileged ports.
 *
 * Signals are blocked and read from a signalfd in a poll() loop, so every handler runs in
 * normal context: reloading (allocation, file I/O, fork) could not be done from a signal
 * handler.
 *
 * Generations: each successful reload creates a generation (its conf, its listening
 * sockets, its workers). The newest is current; older ones are "retiring": their workers
 * got SIGQUIT and drain; a retiring generation is freed when its last worker is reaped.
 * Quick successive reloads can leave several retiring at once, hence a list.
 *
 * Workers live in procs[], indexed by their slot in pt_stats.worker[]: the slot is taken
 * when a worker is first started and kept by its respawns, and freed when the worker
 * exits for good.
 *
 * A reload first has a child process read and parse the file (the check): whatever a
 * library does on a file it cannot handle (exit, abort, a hang) then happens to the
 * child, not to the master, which keeps supervising in its loop meanwhile, and parses
 * the file itself only once the child said it parses. A check that overruns its deadline
 * is killed. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/notify.h"
#include "portico/pidfile.h"
#include "portico/process.h"
#include "portico/privs.h"
#include "portico/shm.h"
#include "portico/tls.h"
#include "portico/upgrade.h"

#define QUICK_DEATH_MS  1000    /* a worker dying sooner than this after start "dies young" */
#define BACKOFF_MIN_MS  250
#define BACKOFF_MAX_MS  30000
#define KILL_GRACE_MS   2000    /* after drain_timeout_ms, before SIGKILL */
#define FAST_STOP_MS    3000    /* SIGTERM, then SIGKILL after this */
#define CHECK_TIMEOUT_MS 10000  /* a reload's check of the file; then it is killed */
#define NSLOTS          ((int) pt_nelems(((pt_stats *) 0)->worker))

typedef struct gen gen;
struct gen {
    gen      *next;             /* older generations follow */
    pt_cycle  cycle;
    bool      retiring;         /* told to stop: drains, no respawns */
    uint64_t  kill_at;          /* retiring: SIGKILL what is left at this time (ms), 0: no */
    unsigned  alive;            /* worker processes not reaped yet */
    unsigned  slots;            /* procs[] entries held: alive ones and pending respawns */
    bool      drop;             /* workers switch to uid/gid */
    uid_t     uid;
    gid_t     gid;
};

typedef struct proc {
    gen      *gen;              /* NULL: slot free */
    pid_t     pid;              /* 0: waiting to be respawned at respawn_at */
    int       worker;           /* number within its generation */
    bool      stopping;         /* we told it to stop: its exit is expected */
    int       stop_sig;         /* the last signal we stopped it with */
    uint64_t  started;          /* ms */
    uint64_t  respawn_at;       /* ms */
    unsigned  young_deaths;     /* in a row, each within QUICK_DEATH_MS of starting */
} proc;

typedef enum {
    MASTER_RUNNING = 0,
    MASTER_QUITTING,            /* SIGQUIT: workers drain, then exit */
    MASTER_TERMINATING          /* SIGTERM/SIGINT: workers stop now, then exit */
} master_state;

static proc          procs[PT_MAX_WORKERS * 2];
static gen          *gens;                  /* newest (current) first */
static int           sig_fd = -1;
static master_state  state;
static uint64_t      stop_kill_at;          /* shutting down: SIGKILL at this time, 0: no */
static bool          daemonized;
static pid_t         upgrade_pid;           /* the new master of a binary upgrade */
static char          upgrade_pidfile[4096]; /* the pid file path it took over */

/* the reload's check of the configuration (see above) */
static pid_t         check_pid;             /* running, 0: none */
static int           check_fd = -1;         /* read end of its verdict pipe */
static uint64_t      check_deadline;        /* ms */
static bool          check_again;           /* a HUP came during the check: check anew */
static pid_t         check_stray;           /* killed at its deadline, not reaped yet */
static bool          check_reaped;          /* exited with check_status: see check_ended */
static int           check_status;


/* Small helpers ------------------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static const char *signame(int sig)
{
    static char buf[32];
    const char *abbrev = sigabbrev_np(sig);
    snprintf(buf, sizeof(buf), "SIG%s", abbrev ? abbrev : "?");
    return buf;
}

static unsigned conf_workers(const pt_conf *conf)
{
    unsigned n = conf->workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (unsigned) cpus : 1;
    }
    return pt_min(n, (unsigned) PT_MAX_WORKERS);
}

static unsigned free_slots(void)
{
    unsigned n = 0;
    for (int i = 0; i < NSLOTS; i++)
        if (procs[i].gen == NULL)
            n++;
    return n;
}

static unsigned alive_total(void)
{
    unsigned n = 0;
    for (gen *g = gens; g; g = g->next)
        n += g->alive;
    return n;
}


/* Process title and credentials ------------------------------------------------------- */

static char *title_at, *title_end;      /* the argv (+ moved environ) area */
static char *cmdline;                   /* the original command line, for the master */

void pt_process_title_init(int argc, char **argv)
{
    extern char **environ;

    if (argc <= 0 || argv[0] == NULL)
        return;

    /* The strings of argv, and of the environment right after them, are one contiguous
     * area that ps(1) reads. Copy the environment elsewhere and the whole area is free. */
    size_t cl = 0;
    for (int i = 0; i < argc; i++)
        cl += strlen(argv[i]) + 1;
    cmdline = malloc(cl);
    char *end = argv[0];
    if (cmdline) {
        cmdline[0] = '\0';
        for (int i = 0; i < argc; i++) {
            if (i)
                strcat(cmdline, " ");
            strcat(cmdline, argv[i]);
        }
    }
    for (int i = 0; i < argc && argv[i] == end; i++)
        end = argv[i] + strlen(argv[i]) + 1;

    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **env = malloc((nenv + 1) * sizeof(char *));
    if (env) {
        for (size_t i = 0; i < nenv; i++) {
            if (environ[i] == end)
                end = environ[i] + strlen(environ[i]) + 1;
            env[i] = strdup(environ[i]);
        }
        env[nenv] = NULL;
        environ = env;
    }
    title_at = argv[0];
    title_end = end;
}

void pt_process_title(const char *title)
{
    char name[16];
    snprintf(name, sizeof(name), "portico: %s", title);    /* the kernel keeps 15 bytes */
    prctl(PR_SET_NAME, name, 0, 0, 0);

    if (title_at == NULL || title_end - title_at < 2)
        return;
    size_t room = (size_t) (title_end - title_at);
    int n = snprintf(title_at, room, "portico: %s", title);
    if (n >= 0 && (size_t) n < room)
        memset(title_at + n, 0, room - (size_t) n);
}

int pt_process_user(pt_conf *conf, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
    if (geteuid() != 0)
        return PT_DECLINED;
    /* Workers parse what clients send: never as root. Without a user they run as nobody,
     * as nginx's do; everything that follows (initgroups, the logs' owner) uses the name. */
    if (conf->user == NULL) {
        conf->user = PT_DEFAULT_USER;
        conf->user_implied = true;
    }

    errno = 0;
    struct passwd *pw = getpwnam(conf->user);
    if (pw == NULL && conf->user_implied) {
        snprintf(err, errlen, "%s: no user is set and the default user \"%s\" %s: set user "
                 "(workers do not run as root)", conf->file, conf->user,
                 errno ? strerror(errno) : "does not exist");
        return PT_ERROR;
    }
    if (pw == NULL) {
        snprintf(err, errlen, "%s: user \"%s\" %s", conf->file, conf->user,
                 errno ? strerror(errno) : "does not exist");
        return PT_ERROR;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (conf->group) {
        errno = 0;
        struct group *gr = getgrnam(conf->group);
        if (gr == NULL) {
            snprintf(err, errlen, "%s: group \"%s\" %s", conf->file, conf->group,
                     errno ? strerror(errno) : "does not exist");
            return PT_ERROR;
        }
        *gid = gr->gr_gid;
    }
    return PT_OK;
}

static void log_workers_user(const gen *g)
{
    const pt_conf *conf = g->cycle.conf;
    struct group *gr = getgrgid(g->gid);
    pt_log(PT_LOG_NOTICE, "workers run as user \"%s\" (uid %d), group \"%s\" (gid %d)%s",
           conf->user, (int) g->uid, gr ? gr->gr_name : "?", (int) g->gid,
           conf->user_implied ? ": no user is set, and never as root" : "");
}

/* The error log is the workers' (they reopen it on SIGUSR1): made theirs when it was
 * opened (server/logfile.c); one opened before their user was known is given to them. */
static void log_chown(const gen *g)
{
    struct stat st;
    if (g->drop && pt_log_fd() != STDERR_FILENO && fstat(pt_log_fd(), &st) == 0
        && (st.st_uid != g->uid || st.st_gid != g->gid)
        && fchown(pt_log_fd(), g->uid, g->gid) < 0)
        pt_log_errno(PT_LOG_WARN, errno, "chown() of the error log to uid %d failed",
                     (int) g->uid);
    /* A daemon has no terminal: stray writes to stderr (libraries, sanitizers) belong in
     * the error log. */
    if (daemonized && pt_log_fd() != STDERR_FILENO)
        dup2(pt_log_fd(), STDERR_FILENO);
}


/* Workers ------------------------------------------------------------------------------- */

/* In the child, between fork() and pt_worker_main(). */
static PT_NORETURN void worker_child(proc *p, int slot)
{
    gen *g = p->gen;
    pt_cycle *cy = &g->cycle;
    char role[32];

    cy->worker = p->worker;
    cy->stats_slot = slot;
    snprintf(role, sizeof(role), "worker %d", p->worker);
    pt_log_set_role(role);

    /* Nothing of the master's the worker does not need: the signalfd, the pid file (the
     * lock must mean "the master lives"), other generations' sockets (a port a reload
     * dropped must close when the old generation ends, not when this one does) and
     * shared memory only other generations use. */
    close(sig_fd);
    if (check_fd >= 0)
        close(check_fd);
    pt_pidfile_forget();
    for (gen *o = gens; o; o = o->next) {
        if (o == g || o->cycle.listen_fds == NULL)
            continue;
        for (unsigned i = 0; i < o->cycle.conf->nlisteners; i++) {
            int fd = o->cycle.listen_fds[i];
            bool mine = false;
            for (unsigned j = 0; cy->listen_fds && j < cy->conf->nlisteners; j++)
                if (cy->listen_fds[j] == fd)
                    mine = true;
            if (fd >= 0 && !mine)
                close(fd);
        }
    }
    pt_shm_prune(cy->conf);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);
    /* The signals the master sends stay blocked: one sent before the worker is ready
     * (a reload right after a respawn) waits, pending, for the worker's own signalfd,
     * instead of killing it with a default action. */
    sigset_t keep;
    sigemptyset(&keep);
    sigaddset(&keep, SIGQUIT);
    sigaddset(&keep, SIGTERM);
    sigaddset(&keep, SIGINT);
    sigaddset(&keep, SIGUSR1);
    sigaddset(&keep, SIGUSR2);
    sigaddset(&keep, SIGHUP);
    sigprocmask(SIG_SETMASK, &keep, NULL);

    pt_fdlimit_worker(cy->conf);        /* as root: it may raise the hard limit */
    if (g->drop) {
        if (setgid(g->gid) < 0 || initgroups(cy->conf->user, g->gid) < 0) {
            pt_log_errno(PT_LOG_EMERG, errno, "cannot switch to group %d", (int) g->gid);
            _exit(1);
        }
        if (setuid(g->uid) < 0) {
            pt_log_errno(PT_LOG_EMERG, errno, "cannot switch to user \"%s\"", cy->conf->user);
            _exit(1);
        }
    }
    /* A worker outliving its master would keep the ports busy with nobody supervising:
     * drain and exit. Set after setuid(), which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGQUIT, 0, 0, 0);
    if (getppid() != cy->master_pid)
        _exit(0);

    pt_process_title("worker process");
    pt_cycle_cur = cy;
    pt_worker_main(cy);
}

static void backoff(proc *p, uint64_t now, const char *why)
{
    unsigned shift = pt_min(p->young_deaths > 1 ? p->young_deaths - 2 : 0, 16u);
    uint64_t delay = pt_min((uint64_t) BACKOFF_MIN_MS << shift, (uint64_t) BACKOFF_MAX_MS);
    p->respawn_at = now + delay;
    pt_log(PT_LOG_ALERT, "worker %d of generation %u %s (%u times in a row): respawning in "
           "%llu ms", p->worker, p->gen->cycle.generation, why, p->young_deaths,
           (unsigned long long) delay);
}

static void spawn(proc *p)
{
    int slot = (int) (p - procs);
    gen *g = p->gen;
    uint64_t now = now_ms();

    pt_stats_slot_reset(slot, g->cycle.generation, 0);
    pid_t pid = fork();
    if (pid < 0) {
        pt_log_errno(PT_LOG_ALERT, errno, "fork() of worker %d failed", p->worker);
        p->pid = 0;
        p->young_deaths++;
        backoff(p, now, "could not be forked");
        return;
    }
    if (pid == 0)
        worker_child(p, slot);

    p->pid = pid;
    p->started = now;
    p->stopping = false;
    p->respawn_at = 0;
    g->alive++;
    if (pt_stats_zone)
        pt_stats_zone->worker[slot].pid = pid;
    pt_log(PT_LOG_NOTICE, "worker %d started (pid %d, generation %u)", p->worker, (int) pid,
           g->cycle.generation);
}

static void start_workers(gen *g)
{
    unsigned n = conf_workers(g->cycle.conf);
    int slot = 0;
    for (unsigned w = 0; w < n; w++) {
        while (slot < NSLOTS && procs[slot].gen)
            slot++;
        if (slot == NSLOTS) {           /* checked before: cannot happen */
            pt_log(PT_LOG_ALERT, "no free worker slot for worker %u", w);
            return;
        }
        proc *p = &procs[slot];
        memset(p, 0, sizeof(*p));
        p->gen = g;
        p->worker = (int) w;
        g->slots++;
        spawn(p);
    }
}

static void slot_free(proc *p)
{
    p->gen->slots--;
    memset(p, 0, sizeof(*p));
}

/* Tells every worker of g (or of every generation, g NULL) to stop with sig; pending
 * respawns are dropped. */
/* A worker runs as the configuration's user: signalled as that user (server/privs.c),
 * the master needs no CAP_KILL. */
static int signal_worker(const proc *p, int sig)
{
    bool as = p->gen->drop && pt_privs_as(p->gen->uid, p->gen->gid);
    int rc = kill(p->pid, sig);
    if (as)
        pt_privs_back();
    return rc;
}

static void signal_workers(gen *g, int sig, bool stop)
{
    for (int i = 0; i < NSLOTS; i++) {
        proc *p = &procs[i];
        if (p->gen == NULL || (g && p->gen != g))
            continue;
        if (p->pid == 0) {
            if (stop)
                slot_free(p);
            continue;
        }
        if (stop) {
            p->stopping = true;
            p->stop_sig = sig;
        }
        if (signal_worker(p, sig) < 0 && errno != ESRCH)
            pt_log_errno(PT_LOG_ALERT, errno, "kill(%d, %s) failed", (int) p->pid,
                         signame(sig));
    }
}

static void describe_exit(int st, char *how, size_t len)
{
    if (WIFSIGNALED(st))
        snprintf(how, len, "killed by signal %d (%s)%s", WTERMSIG(st),
                 signame(WTERMSIG(st)), WCOREDUMP(st) ? ", core dumped" : "");
    else
        snprintf(how, len, "exited with code %d", WEXITSTATUS(st));
}

/* The new master of a binary upgrade is gone (it failed to start, or was stopped to roll
 * back): this master is the one running again, under its own pid file name. */
static void upgrade_ended(int st)
{
    char how[96], err[1024];
    describe_exit(st, how, sizeof(how));
    pt_log(PT_LOG_ALERT, "binary upgrade: the new master (pid %d) %s; this master (pid %d) "
           "goes on", (int) upgrade_pid, how, (int) getpid());
    upgrade_pid = 0;
    if (pt_pidfile_rename(upgrade_pidfile, err, sizeof(err)) != PT_OK)
        pt_log(PT_LOG_ERR, "binary upgrade: %s", err);
    if (state == MASTER_RUNNING)
        pt_notify("MAINPID=%d\nREADY=1", (int) getpid());
}

static void reap(void)
{
    int st;
    pid_t pid;
    uint64_t now = now_ms();

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        proc *p = NULL;
        for (int i = 0; i < NSLOTS && p == NULL; i++)
            if (procs[i].gen && procs[i].pid == pid)
                p = &procs[i];
        if (p == NULL && pid == upgrade_pid) {
            upgrade_ended(st);
            continue;
        }
        if (p == NULL && pid == check_pid) {
            check_reaped = true;        /* its verdict is read after the reaping */
            check_status = st;
            continue;
        }
        if (p == NULL && pid == check_stray) {
            check_stray = 0;
            continue;
        }
        if (p == NULL) {
            pt_log(PT_LOG_INFO, "reaped unknown child process %d", (int) pid);
            continue;
        }

        gen *g = p->gen;
        bool expected = p->stopping || g->retiring || state != MASTER_RUNNING;
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        /* Dying of the very signal we sent is how a stop may end, not a crash. */
        bool by_us = WIFSIGNALED(st) && p->stop_sig
                     && (WTERMSIG(st) == p->stop_sig || WTERMSIG(st) == SIGKILL);
        int level = clean || (expected && by_us) ? PT_LOG_NOTICE : PT_LOG_ALERT;
        if (!expected && clean)
            level = PT_LOG_WARN;

        char how[96];
        describe_exit(st, how, sizeof(how));
        pt_log(level, "worker %d (pid %d, generation %u) %s%s", p->worker, (int) pid,
               g->cycle.generation, how, expected ? "" : ", respawning");

        g->alive--;
        pt_stats_slot_retire((int) (p - procs));
        if (!expected && pt_stats_zone)
            pt_stats_zone->worker_restarts++;
        for (unsigned i = 0; i < pt_nmodules; i++)
            if (pt_modules[i]->worker_gone)
                pt_modules[i]->worker_gone(&g->cycle, (int) (p - procs));

        if (expected) {
            slot_free(p);
            continue;
        }
        /* Respawn in the same slot; a worker that keeps dying young is respawned after a
         * growing delay, so a crash at start-up does not become a fork loop. */
        p->pid = 0;
        if (now - p->started < QUICK_DEATH_MS)
            p->young_deaths++;
        else
            p->young_deaths = 0;
        if (p->young_deaths <= 1)
            spawn(p);
        else
            backoff(p, now, "keeps dying within 1 s of starting");
    }
}


/* Generations --------------------------------------------------------------------------- */

static void gen_free(gen *g, pt_conf *current)
{
    pt_listen_close(g->cycle.conf, g->cycle.listen_fds);
    g->cycle.listen_fds = NULL;
    pt_shm_release(g->cycle.conf, current);
    pt_conf_free(g->cycle.conf);
    free(g);
}

/* Frees the retiring generations whose last worker is gone. */
static void collect_generations(void)
{
    gen **pg = &gens->next;
    while (*pg) {
        gen *g = *pg;
        if (g->retiring && g->slots == 0) {
            *pg = g->next;
            pt_log(PT_LOG_NOTICE, "generation %u finished", g->cycle.generation);
            gen_free(g, gens->cycle.conf);
            continue;
        }
        pg = &g->next;
    }
}

static int modules_master_init(pt_cycle *cy)
{
    for (unsigned i = 0; i < pt_nmodules; i++) {
        if (pt_modules[i]->master_init && pt_modules[i]->master_init(cy) != PT_OK) {
            pt_log(PT_LOG_ERR, "module %s: master init failed", pt_modules[i]->name);
            return PT_ERROR;
        }
    }
    return PT_OK;
}

/* Counted for /metrics: reloads and their outcome (the old configuration kept). */
static void reload_outcome(bool ok)
{
    if (pt_stats_zone == NULL)
        return;
    if (ok)
        pt_stats_zone->reloads++;
    else
        pt_stats_zone->reloads_failed++;
    pt_stats_zone->reload_last_ok = ok;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pt_stats_zone->reload_last = (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* The check said the file parses: load it for real. */
static void reload_configuration(void)
{
    gen *cur = gens;
    char err[1024];

    pt_log(PT_LOG_NOTICE, "reload: reading %s", cur->cycle.conf_path);
    pt_conf *nc = pt_conf_load(cur->cycle.conf_path, err, sizeof(err));
    if (nc == NULL) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: %s", err);
        return;
    }

    gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed: out of memory");
        pt_conf_free(nc);
        return;
    }
    g->cycle = cur->cycle;
    g->cycle.conf = nc;
    g->cycle.generation = cur->cycle.generation + 1;
    g->cycle.listen_fds = NULL;

    int rc = pt_process_user(nc, &g->uid, &g->gid, err, sizeof(err));
    if (rc == PT_ERROR) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: %s", err);
        goto fail;
    }
    g->drop = rc == PT_OK;
    if (g->drop && (!cur->drop || g->uid != cur->uid || g->gid != cur->gid))
        log_workers_user(g);

    unsigned need = conf_workers(nc), have = free_slots();
    if (need > have) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed: %u workers needed but only %u worker slots are "
               "free while older generations drain; try again later", need, have);
        goto fail;
    }

    g->cycle.listen_fds = pt_listen_open(nc, cur->cycle.conf, cur->cycle.listen_fds);
    if (g->cycle.listen_fds == NULL) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: cannot open "
               "the listening sockets");
        goto fail;
    }
    if (pt_shm_map(nc, cur->cycle.conf) != PT_OK) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: cannot map "
               "shared memory");
        goto fail;
    }
    pt_cycle_cur = &g->cycle;
    if (modules_master_init(&g->cycle) != PT_OK) {
        pt_cycle_cur = &cur->cycle;
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration");
        goto fail;
    }

    /* Committed: from here on the new generation replaces the current one. */
    if (nc->pid_file && cur->cycle.conf->pid_file
        && strcmp(nc->pid_file, cur->cycle.conf->pid_file) != 0
        && pt_pidfile_move(nc->pid_file, getpid(), err, sizeof(err)) != PT_OK)
        pt_log(PT_LOG_ERR, "keeping pid file %s: %s", pt_pidfile_path(), err);
    pt_log_set_syslog(nc->error_log_facility, nc->error_log_tag);
    pt_log_set_owner(g->drop ? nc->user : NULL);
    if (pt_log_open(nc->error_log_path, nc->error_log_level) == PT_OK)
        log_chown(g);

    g->next = gens;
    gens = g;
    reload_outcome(true);
    if (pt_stats_zone)
        pt_stats_zone->generation = g->cycle.generation;
    pt_fdlimit_check(nc);
    start_workers(g);

    uint64_t now = now_ms();
    for (gen *o = g->next; o; o = o->next) {
        if (o->retiring)
            continue;
        o->retiring = true;
        o->kill_at = now + o->cycle.conf->limits.drain_timeout_ms + KILL_GRACE_MS;
        signal_workers(o, SIGQUIT, true);
        /* Its workers close their copies as they start draining, so the master's can go
         * now: sockets the new generation kept live on in its dup()s, and a port the
         * reload dropped is refused at once instead of queueing for nobody. */
        pt_listen_close(o->cycle.conf, o->cycle.listen_fds);
        o->cycle.listen_fds = NULL;
        pt_log(PT_LOG_NOTICE, "generation %u: %u workers told to stop", o->cycle.generation,
               o->alive);
    }
    pt_log(PT_LOG_NOTICE, "reload finished: generation %u, %u workers", g->cycle.generation,
           need);
    collect_generations();
    return;

fail:
    pt_shm_release(nc, cur->cycle.conf);
    pt_listen_close(nc, g->cycle.listen_fds);
    pt_conf_free(nc);
    free(g);
}

/* The check's child: read and parse, write the verdict ("0", or "1" and the error), exit.
 * No logging: the master logs the verdict. */
static PT_NORETURN void check_child(int fd, const char *path)
{
    char msg[1025];

    pt_process_title("configuration check");    /* first: ps and the tests tell it apart */
    /* the master's death ends the check; its signals stay blocked here: only its SIGKILL
     * ends the check early */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != gens->cycle.master_pid)
        _exit(1);
    /* nothing of the master's that outlives it: the pid file's lock, the ports */
    close(sig_fd);
    pt_pidfile_forget();
    for (gen *g = gens; g; g = g->next)
        for (unsigned i = 0; g->cycle.listen_fds && i < g->cycle.conf->nlisteners; i++)
            if (g->cycle.listen_fds[i] >= 0)
                close(g->cycle.listen_fds[i]);
    pt_log_set_role("configuration check");

    msg[0] = '0';
    msg[1] = '\0';
    if (pt_conf_check_syntax(path, msg + 1, sizeof(msg) - 1) != PT_OK)
        msg[0] = '1';
    size_t len = strlen(msg);
    _exit(write(fd, msg, len) == (ssize_t) len ? 0 : 1);
}

static void check_start(void)
{
    const char *path = gens->cycle.conf_path;
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) < 0) {
        reload_outcome(false);
        pt_log_errno(PT_LOG_ERR, errno, "reload failed, keeping the running configuration: "
                     "pipe() for the configuration check failed");
        pt_notify("READY=1");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        check_child(fds[1], path);
    }
    close(fds[1]);
    if (pid < 0) {
        reload_outcome(false);
        pt_log_errno(PT_LOG_ERR, errno, "reload failed, keeping the running configuration: "
                     "fork() of the configuration check failed");
        close(fds[0]);
        pt_notify("READY=1");
        return;
    }
    check_pid = pid;
    check_fd = fds[0];
    check_deadline = now_ms() + CHECK_TIMEOUT_MS;
    pt_log(PT_LOG_INFO, "reload: checking %s (pid %d)", path, (int) pid);
}

/* Ends the check (its verdict taken or given up): the fd goes, a HUP meanwhile checks the
 * file anew, else READY=1 says the reload is over, whatever its outcome. */
static void check_done(void)
{
    check_pid = 0;
    if (check_fd >= 0)
        close(check_fd);
    check_fd = -1;
    if (state != MASTER_RUNNING)
        return;
    if (check_again) {
        check_again = false;
        check_start();
        return;
    }
    pt_notify("READY=1");
}

static void check_ended(void)
{
    char verdict[1025], how[96];
    ssize_t n = 0, got;
    pid_t pid = check_pid;
    int st = check_status;

    check_reaped = false;
    /* the child has exited: what it wrote is all there, and the pipe is at its end */
    while (n < (ssize_t) sizeof(verdict) - 1
           && ((got = read(check_fd, verdict + n, sizeof(verdict) - 1 - (size_t) n)) > 0
               || (got < 0 && errno == EINTR)))
        n += got > 0 ? got : 0;
    verdict[n] = '\0';

    if (state != MASTER_RUNNING || check_again) {
        check_done();
        return;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && verdict[0] == '0') {
        reload_configuration();
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && verdict[0] == '1') {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: %s",
               verdict + 1);
    } else {
        describe_exit(st, how, sizeof(how));
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: the check "
               "of %s (pid %d) %s", gens->cycle.conf_path, (int) pid, how);
    }
    check_done();
}

/* SIGHUP: the check first; reload_configuration() when it says the file parses. */
static void reload(void)
{
    if (state != MASTER_RUNNING) {
        pt_log(PT_LOG_NOTICE, "reload ignored: shutting down");
        return;
    }
    if (check_pid) {
        /* the file may have changed since the check read it */
        check_again = true;
        pt_log(PT_LOG_NOTICE, "reload: a check of the configuration is running; the file "
               "is checked again when it ends");
        return;
    }
    pt_notify("RELOADING=1");
    check_start();
}

/* The check is over its deadline, or the master stops: kill it and do not wait for it. */
static void check_kill(bool late)
{
    if (check_pid == 0)
        return;
    if (late) {
        reload_outcome(false);
        pt_log(PT_LOG_ERR, "reload failed, keeping the running configuration: the check of "
               "%s (pid %d) did not finish within %d ms: killed", gens->cycle.conf_path,
               (int) check_pid, CHECK_TIMEOUT_MS);
    }
    kill(check_pid, SIGKILL);
    check_stray = check_pid;
    check_done();
}

/* SIGUSR2: start the binary at our own path as a new master, with our sockets. */
static void upgrade(void)
{
    char err[1024], oldbin[sizeof(upgrade_pidfile) + 8];

    if (state != MASTER_RUNNING) {
        pt_log(PT_LOG_NOTICE, "binary upgrade ignored: shutting down");
        return;
    }
    if (upgrade_pid) {
        pt_log(PT_LOG_ERR, "binary upgrade ignored: one is in progress (new master pid %d)",
               (int) upgrade_pid);
        return;
    }
    const char *pf = pt_pidfile_path();
    if (pf == NULL || strlen(pf) >= sizeof(upgrade_pidfile)) {
        pt_log(PT_LOG_ERR, "binary upgrade impossible: no pid file held");
        return;
    }
    snprintf(upgrade_pidfile, sizeof(upgrade_pidfile), "%s", pf);
    snprintf(oldbin, sizeof(oldbin), "%s.oldbin", pf);
    pid_t other = pt_pidfile_master(oldbin, err, sizeof(err));
    if (other > 0) {
        pt_log(PT_LOG_ERR, "binary upgrade ignored: the old master of an earlier upgrade "
               "(pid %d, %s) still runs; stop it first", (int) other, oldbin);
        return;
    }
    /* The new master locks a fresh file at the usual path; ours, with its lock, moves. */
    if (pt_pidfile_rename(oldbin, err, sizeof(err)) != PT_OK) {
        pt_log(PT_LOG_ERR, "binary upgrade failed: %s", err);
        return;
    }
    pid_t pid = pt_upgrade_exec(gens->cycle.listen_fds, gens->cycle.conf->nlisteners);
    if (pid < 0) {
        pt_log_errno(PT_LOG_ERR, errno, "binary upgrade failed: fork()");
        if (pt_pidfile_rename(upgrade_pidfile, err, sizeof(err)) != PT_OK)
            pt_log(PT_LOG_ERR, "binary upgrade: %s", err);
        return;
    }
    upgrade_pid = pid;
    pt_log(PT_LOG_NOTICE, "binary upgrade: new master started (pid %d); this one (pid %d, "
           "pid file %s) serves on until it is told to stop (QUIT)", (int) pid,
           (int) getpid(), oldbin);
}

/* SIGWINCH, during a binary upgrade: this master's workers stop gracefully and are not
 * replaced; the master stays, with its sockets, so that a HUP starts workers again should
 * the new binary have to be rolled back. */
static void stop_workers(void)
{
    if (upgrade_pid == 0) {
        pt_log(PT_LOG_NOTICE, "SIGWINCH ignored: it stops the workers only during a binary "
               "upgrade");
        return;
    }
    uint64_t now = now_ms();
    for (gen *g = gens; g; g = g->next) {
        if (g->retiring)
            continue;
        g->retiring = true;
        g->kill_at = now + g->cycle.conf->limits.drain_timeout_ms + KILL_GRACE_MS;
        signal_workers(g, SIGQUIT, true);
        pt_log(PT_LOG_NOTICE, "generation %u: %u workers told to stop; the new master "
               "(pid %d) serves", g->cycle.generation, g->alive, (int) upgrade_pid);
    }
}

static void reopen(void)
{
    pt_log(PT_LOG_NOTICE, "reopening log files");
    if (pt_log_reopen() == PT_OK)
        log_chown(gens);
    for (unsigned i = 0; i < pt_nmodules; i++)
        if (pt_modules[i]->reopen)
            pt_modules[i]->reopen(&gens->cycle);
    signal_workers(NULL, SIGUSR1, false);
}

static void close_listeners(void)
{
    for (gen *g = gens; g; g = g->next) {
        pt_listen_close(g->cycle.conf, g->cycle.listen_fds);
        g->cycle.listen_fds = NULL;
    }
}

static void stop(master_state how)
{
    if (state == how || state == MASTER_TERMINATING)
        return;
    uint64_t wait = FAST_STOP_MS;
    if (how == MASTER_QUITTING) {
        wait = 0;
        for (gen *g = gens; g; g = g->next)
            wait = pt_max(wait, (uint64_t) g->cycle.conf->limits.drain_timeout_ms);
        wait += KILL_GRACE_MS;
    }
    state = how;
    stop_kill_at = now_ms() + wait;
    check_again = false;
    check_kill(false);
    if (upgrade_pid == 0)               /* else the new master is the service now */
        pt_notify("STOPPING=1");
    pt_log(PT_LOG_NOTICE, "%s: stopping %u workers", how == MASTER_QUITTING
           ? "graceful shutdown" : "fast shutdown", alive_total());
    signal_workers(NULL, how == MASTER_QUITTING ? SIGQUIT : SIGTERM, true);
    /* The master's copies of the sockets go now: once the workers close theirs, the
     * kernel refuses new connections instead of queueing them for nobody. */
    close_listeners();
}


/* Timers -------------------------------------------------------------------------------- */

static void kill_survivors(gen *g, const char *why)
{
    for (int i = 0; i < NSLOTS; i++) {
        proc *p = &procs[i];
        if (p->gen == NULL || p->pid == 0 || (g && p->gen != g))
            continue;
        pt_log(PT_LOG_WARN, "worker %d (pid %d, generation %u) still running %s: sending "
               "SIGKILL", p->worker, (int) p->pid, p->gen->cycle.generation, why);
        p->stopping = true;
        p->stop_sig = SIGKILL;
        signal_worker(p, SIGKILL);
    }
}

/* Runs what is due; returns the poll() timeout until the next deadline (-1: none). */
static int run_timers(void)
{
    uint64_t now = now_ms(), next = UINT64_MAX;

    for (int i = 0; i < NSLOTS; i++) {
        proc *p = &procs[i];
        if (p->gen == NULL || p->pid != 0)
            continue;
        if (p->respawn_at <= now)
            spawn(p);
        if (p->pid == 0)
            next = pt_min(next, p->respawn_at);
    }
    for (gen *g = gens; g; g = g->next) {
        if (!g->retiring || g->kill_at == 0)
            continue;
        if (g->kill_at <= now) {
            g->kill_at = 0;
            kill_survivors(g, "after drain_timeout_ms + 2 s");
        } else {
            next = pt_min(next, g->kill_at);
        }
    }
    int tick = pt_tls_master_tick(gens ? gens->cycle.conf : NULL);   /* ticket keys */
    if (tick >= 0)
        next = pt_min(next, now + (uint64_t) tick);
    if (check_pid && check_deadline <= now)
        check_kill(true);               /* which may start the next check */
    if (check_pid)
        next = pt_min(next, check_deadline);
    if (stop_kill_at) {
        if (stop_kill_at <= now) {
            stop_kill_at = 0;
            kill_survivors(NULL, state == MASTER_QUITTING ? "after drain_timeout_ms + 2 s"
                                                           : "3 s after SIGTERM");
        } else {
            next = pt_min(next, stop_kill_at);
        }
    }
    if (next == UINT64_MAX)
        return -1;
    return (int) pt_min(next - now + 1, (uint64_t) 60000);
}


/* The loop ------------------------------------------------------------------------------ */

static int signals_setup(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGWINCH);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "sigprocmask() failed");
        return PT_ERROR;
    }
    /* An inherited SIG_IGN for SIGCHLD would make the kernel reap the workers for us. */
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "signalfd() failed");
        return PT_ERROR;
    }
    return PT_OK;
}

static void handle_signals(void)
{
    struct signalfd_siginfo si[16];
    bool hup = false, usr1 = false, usr2 = false;
    ssize_t n;

    /* Several HUPs read at once make one reload. */
    while ((n = read(sig_fd, si, sizeof(si))) > 0) {
        for (size_t i = 0; i < (size_t) n / sizeof(si[0]); i++) {
            int sig = (int) si[i].ssi_signo;
            if (sig != SIGCHLD)
                pt_log(PT_LOG_NOTICE, "signal %d (%s) received from pid %d", sig,
                       signame(sig), (int) si[i].ssi_pid);
            switch (sig) {
            case SIGCHLD:
                break;              /* reaped below, on every wake-up */
            case SIGHUP:
                hup = true;
                break;
            case SIGUSR1:
                usr1 = true;
                break;
            case SIGQUIT:
                stop(MASTER_QUITTING);
                break;
            case SIGTERM:
            case SIGINT:
                stop(MASTER_TERMINATING);
                break;
            case SIGUSR2:
                usr2 = true;
                break;
            case SIGWINCH:
                if (state == MASTER_RUNNING)
                    stop_workers();
                break;
            }
        }
    }
    reap();
    if (check_reaped)
        check_ended();
    if (usr2)
        upgrade();
    if (hup)
        reload();
    if (usr1 && state == MASTER_RUNNING)
        reopen();
    collect_generations();
}

/* Frees every generation, oldest first, so a zone shared by all is unmapped with the last;
 * then lets go of the pid file. */
static void master_cleanup(void)
{
    while (gens) {
        gen **pg = &gens;
        while ((*pg)->next)
            pg = &(*pg)->next;
        gen *last = *pg;
        *pg = NULL;
        gen_free(last, NULL);
    }
    pt_cycle_cur = NULL;
    pt_pidfile_remove();
    if (sig_fd >= 0)
        close(sig_fd);
    sig_fd = -1;
    if (check_fd >= 0)
        close(check_fd);
    check_fd = -1;
    free(cmdline);
    cmdline = NULL;
    pt_upgrade_free();
}

int pt_master_run(pt_cycle *cy)
{
    gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        pt_log(PT_LOG_EMERG, "out of memory");
        return 1;
    }
    g->cycle = *cy;
    g->cycle.worker = -1;
    g->cycle.stats_slot = -1;
    g->cycle.master_pid = getpid();
    gens = g;
    pt_cycle_cur = &g->cycle;
    daemonized = cy->conf->daemon;

    char err[1024];
    int rc = pt_process_user(g->cycle.conf, &g->uid, &g->gid, err, sizeof(err));
    if (rc == PT_ERROR || signals_setup() != PT_OK) {
        if (rc == PT_ERROR)
            pt_log(PT_LOG_EMERG, "%s", err);
        master_cleanup();
        return 1;
    }
    g->drop = rc == PT_OK;
    if (g->drop)
        log_workers_user(g);
    if (g->cycle.conf->user && geteuid() != 0)
        pt_log(PT_LOG_WARN, "user \"%s\" is ignored: the master does not run as root",
               g->cycle.conf->user);
    log_chown(g);

    char title[1024];
    snprintf(title, sizeof(title), "master process %s", cmdline ? cmdline : "");
    pt_process_title(title);
    pt_log(PT_LOG_NOTICE, "portico %s started: pid %d, %u workers, configuration %s",
           PT_VERSION, (int) getpid(), conf_workers(g->cycle.conf), g->cycle.conf_path);
    pt_fdlimit_check(g->cycle.conf);
    start_workers(g);
    /* MAINPID: after a binary upgrade the service manager follows the new master */
    pt_notify("READY=1\nMAINPID=%d\nSTATUS=%u workers", (int) getpid(),
              conf_workers(g->cycle.conf));

    for (;;) {
        int timeout = run_timers(), log_due = pt_log_flush();
        if (log_due >= 0 && (timeout < 0 || log_due < timeout))
            timeout = log_due;
        if (state != MASTER_RUNNING && alive_total() == 0)
            break;
        struct pollfd pfd = { .fd = sig_fd, .events = POLLIN };
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
            pt_log_errno(PT_LOG_ALERT, errno, "poll() failed");
            sleep(1);
        }
        handle_signals();
    }

    master_cleanup();
    pt_log(PT_LOG_NOTICE, "exiting");
    pt_log_flush_all();
    return 0;
}
