/* The command line, the habits of nginx users:
 *   portico [-c FILE] [-t] [-s reload|quit|stop|reopen|upgrade] [-v] [-V] [-h]
 * and start-up: load the config, open the error log, take the pid file, bind, map shared
 * memory, init modules, maybe daemonize, then hand over to the master loop. */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <libconfig.h>
#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#ifdef PT_HAVE_NGHTTP2
#include <nghttp2/nghttp2.h>
#endif
#ifdef PT_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/pidfile.h"
#include "portico/upgrade.h"
#include "portico/process.h"
#include "portico/metrics.h"
#include "portico/shm.h"

#define DEFAULT_CONF PT_SYSCONFDIR "/portico/portico.conf"

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: portico [-c FILE] [-t] [-s SIGNAL] [-v] [-V] [-h]\n"
        "\n"
        "Options:\n"
        "  -c FILE    configuration file (default: " DEFAULT_CONF ")\n"
        "  -t         test the configuration and exit\n"
        "  -s SIGNAL  send SIGNAL to the running master: reload, quit, stop, reopen,\n"
        "             upgrade (start the binary anew, the old master stays until quit)\n"
        "  -v         show the version and exit\n"
        "  -V         show the version, configure arguments and library versions\n"
        "  -h         show this help and exit\n");
}

static void version(bool verbose)
{
    printf("portico version: portico/%s\n", PT_VERSION);     /* as "nginx version: nginx/X" */
    if (!verbose)
        return;

    printf("configure arguments: %s\n", PT_CONFIGURE_ARGS);

    printf("built with %s", OPENSSL_VERSION_TEXT);
    if (strcmp(OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT) != 0)
        printf(" (running with %s)", OpenSSL_version(OPENSSL_VERSION));
    printf("\n");

    char pcre[64] = "?";
    if (pcre2_config(PCRE2_CONFIG_VERSION, NULL) <= (int) sizeof(pcre))
        pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    printf("PCRE2 %s\n", pcre);

    printf("libconfig %d.%d.%d\n", LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION);

#ifdef PT_HAVE_NGHTTP2
    printf("nghttp2 %s (HTTP/2)\n", nghttp2_version(0)->version_str);
#else
    printf("nghttp2: not used (no HTTP/2)\n");
#endif

#ifdef PT_HAVE_JEMALLOC
    const char *je = NULL;
    size_t len = sizeof(je);
    if (mallctl("version", &je, &len, NULL, 0) == 0 && je)
        printf("jemalloc %s\n", je);
#else
    printf("jemalloc: not used (libc malloc)\n");
#endif
}

static pt_conf *load(const char *path)
{
    char err[1024];
    pt_conf *conf = pt_conf_load(path, err, sizeof(err));
    if (conf == NULL)
        fprintf(stderr, "portico: %s\n", err);
    return conf;
}

static int test_config(const char *path)
{
    pt_conf *conf = load(path);
    if (conf) {
        uid_t uid;
        gid_t gid;
        char err[1024];
        if (pt_process_user(conf, &uid, &gid, err, sizeof(err)) == PT_ERROR) {
            fprintf(stderr, "portico: %s\n", err);
            pt_conf_free(conf);
            conf = NULL;
        }
    }
    if (conf == NULL) {
        fprintf(stderr, "portico: configuration file %s test failed\n", path);
        return 1;
    }
    pt_conf_free(conf);
    fprintf(stderr, "portico: configuration file %s test is successful\n", path);
    return 0;
}

static int signal_master(const char *path, const char *name)
{
    static const struct { const char *name; int sig; } sigs[] = {
        { "reload", SIGHUP }, { "quit", SIGQUIT }, { "stop", SIGTERM }, { "reopen", SIGUSR1 },
        { "upgrade", SIGUSR2 }
    };
    int sig = 0;
    for (unsigned i = 0; i < pt_nelems(sigs); i++)
        if (strcmp(name, sigs[i].name) == 0)
            sig = sigs[i].sig;
    if (sig == 0) {
        fprintf(stderr, "portico: invalid signal \"%s\": use reload, quit, stop, reopen or upgrade\n",
                name);
        return 1;
    }

    /* The config only says where the pid file is; it must still be valid to say it. */
    pt_conf *conf = load(path);
    if (conf == NULL) {
        fprintf(stderr, "portico: cannot signal the master: configuration file %s is "
                "invalid\n", path);
        return 1;
    }
    char err[1024];
    pid_t pid = pt_pidfile_master(conf->pid_file, err, sizeof(err));
    if (pid == 0) {
        fprintf(stderr, "portico: %s\n", err);
        pt_conf_free(conf);
        return 1;
    }
    pt_conf_free(conf);
    if (kill(pid, sig) < 0) {
        fprintf(stderr, "portico: kill(%d, SIG%s) failed: %s\n", (int) pid, sigabbrev_np(sig),
                strerror(errno));
        return 1;
    }
    return 0;
}

/* fork, setsid, fork: the master is no session leader, so it can never get a controlling
 * terminal back. The working directory stays: relative paths in the config (pid file,
 * logs) and a relative -c path keep meaning the same on reload. */
static int daemonize(const pt_conf *conf)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);

    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return -1;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    /* error_log "-" keeps writing where stderr went; otherwise stray stderr output goes
     * to the error log. */
    if (pt_log_fd() != STDERR_FILENO)
        dup2(pt_log_fd(), STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    return 0;
}

static int start(const char *path)
{
    static pt_cycle cycle;
    char err[1024];
    int *fds = NULL;
    const char *where = "";

    pt_conf *conf = load(path);
    if (conf == NULL)
        return 1;

    uid_t uid;
    gid_t gid;
    if (pt_process_user(conf, &uid, &gid, err, sizeof(err)) == PT_ERROR) {
        fprintf(stderr, "portico: %s\n", err);
        goto fail;
    }
    pt_log_set_syslog(conf->error_log_facility, conf->error_log_tag);
    pt_log_set_owner(geteuid() == 0 ? conf->user : NULL);
    if (pt_log_open(conf->error_log_path, conf->error_log_level) != PT_OK) {
        fprintf(stderr, "portico: cannot open the error log %s: %s\n", conf->error_log_path,
                strerror(errno));
        goto fail;
    }
    if (pt_log_fd() != STDERR_FILENO)
        where = conf->error_log_path;
    pt_fdlimit_raise();

    pid_t holder = 0;
    switch (pt_pidfile_lock(conf->pid_file, &holder, err, sizeof(err))) {
    case PT_OK:
        break;
    case PT_DECLINED:
        if (holder)
            fprintf(stderr, "portico: already running (pid %d, %s)\n", (int) holder,
                    conf->pid_file);
        else
            fprintf(stderr, "portico: already running (pid file %s is locked)\n",
                    conf->pid_file);
        goto fail;
    default:
        fprintf(stderr, "portico: %s\n", err);
        goto fail;
    }

    /* started by an old master's binary upgrade: its sockets are ours too */
    unsigned inherited = pt_upgrade_inherit();
    if (inherited)
        pt_log(PT_LOG_NOTICE, "binary upgrade: %u listening sockets inherited from the old "
               "master (pid %d)", inherited, (int) getppid());
    fds = pt_listen_open(conf, NULL, NULL);
    if (fds == NULL) {
        if (*where)
            fprintf(stderr, "portico: cannot open the listening sockets (see %s)\n", where);
        goto fail;
    }
    if (pt_stats_init() != PT_OK || pt_metrics_init() != PT_OK
        || pt_shm_map(conf, NULL) != PT_OK) {
        if (*where)
            fprintf(stderr, "portico: cannot map shared memory (see %s)\n", where);
        goto fail;
    }

    cycle.conf = conf;
    cycle.conf_path = path;
    cycle.generation = 1;
    cycle.listen_fds = fds;
    cycle.worker = -1;
    cycle.stats_slot = -1;
    cycle.master_pid = getpid();
    pt_cycle_cur = &cycle;
    pt_stats_zone->generation = 1;
    pt_metrics_families_init();
    for (unsigned i = 0; i < pt_nmodules; i++) {
        if (pt_modules[i]->master_init && pt_modules[i]->master_init(&cycle) != PT_OK) {
            fprintf(stderr, "portico: module %s failed to initialise%s%s%s\n",
                    pt_modules[i]->name, *where ? " (see " : "", where, *where ? ")" : "");
            goto fail;
        }
    }

    /* After an upgrade the old master's child stays its child: it watches us to roll back. */
    if (conf->daemon && inherited == 0 && daemonize(conf) < 0) {
        pt_log_errno(PT_LOG_EMERG, errno, "cannot become a daemon");
        goto fail;
    }
    cycle.master_pid = getpid();
    if (pt_pidfile_write(getpid(), err, sizeof(err)) != PT_OK) {
        pt_log(PT_LOG_EMERG, "%s", err);
        if (!conf->daemon)
            fprintf(stderr, "portico: %s\n", err);
        goto fail;
    }
    return pt_master_run(&cycle);

fail:
    pt_cycle_cur = NULL;
    pt_shm_release(conf, NULL);
    pt_listen_close(conf, fds);
    pt_pidfile_remove();
    pt_conf_free(conf);
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONF, *sig = NULL;
    bool test = false;
    int opt;

    pt_modules_init();

    opterr = 0;
    while ((opt = getopt(argc, argv, ":c:ts:vVh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 's':
            sig = optarg;
            break;
        case 'v':
        case 'V':
            version(opt == 'V');
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "portico: option \"-%c\" requires an argument\n", optopt);
            usage(stderr);
            return 1;
        default:
            fprintf(stderr, "portico: invalid option \"-%c\"\n", optopt);
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "portico: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    if (test)
        return test_config(path);
    if (sig)
        return signal_master(path, sig);

    /* Keep the path: argv's memory becomes the process title. */
    char *conf_path = strdup(path);
    if (conf_path == NULL)
        return 1;
    pt_upgrade_init(argc, argv);
    pt_process_title_init(argc, argv);
    int rc = start(conf_path);
    free(conf_path);
    return rc;
}
