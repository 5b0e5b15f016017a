/* The process model: master (server/master.c), workers (server/worker.c), listening
 * sockets (server/listen.c). */
#ifndef PT_PROCESS_H
#define PT_PROCESS_H

#include "portico/core.h"
#include "portico/cycle-t.h"

/* Opens a socket per listener of conf, bound and listening. A listener whose address
 * (family, address, port) also appears in old keeps old's socket (dup'ed into the new
 * array), so a reload refuses no connection. NULL on failure (logged, nothing leaked). */
int *pt_listen_open(pt_conf *conf, pt_conf *old, int *old_fds);
void pt_listen_close(pt_conf *conf, int *fds);

/* The master: supervises workers, handles signals, reloads. Returns the exit status. */
int pt_master_run(pt_cycle *cy);

/* A worker: inherits cy (its conf, listen_fds, the shared zones); never returns.
 * Signals from the master: SIGQUIT graceful stop (stop accepting, close idle keep-alive
 * connections, finish in-flight requests, exit within drain_timeout_ms), SIGTERM/SIGINT
 * fast stop, SIGUSR1 reopen log files.
 * It is entered with default dispositions and SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2
 * and SIGHUP blocked, so a signal sent before it is ready stays pending: read them with a
 * signalfd, or unblock them once handlers are installed. */
PT_NORETURN void pt_worker_main(pt_cycle *cy);

/* What ps(1) shows: "portico: master process ...", "portico: worker process". Init once
 * from main() with the original argv (it moves the environment to make room; argv must
 * not be used afterwards). */
void pt_process_title_init(int argc, char **argv);
void pt_process_title(const char *title);

/* Descriptor limits (server/fdlimit.c). pt_fdlimit_raise(): the master, at start, raises
 * its soft RLIMIT_NOFILE to the hard limit (workers inherit it). pt_fdlimit_worker(): a
 * worker, before it drops root, sets both limits to worker_rlimit_nofile when that is
 * set (failure logged, then as close as the hard limit allows). pt_fdlimit_check(): a
 * warning when max_connections cannot fit in what the workers will have. */
void pt_fdlimit_raise(void);
void pt_fdlimit_worker(const pt_conf *conf);
void pt_fdlimit_check(const pt_conf *conf);

/* The ids workers switch to when the master is root: PT_OK (*uid, *gid set: conf->user,
 * and conf->group or the user's primary group; an unset user becomes PT_DEFAULT_USER,
 * with conf->user_implied), PT_DECLINED (not root: nothing to switch), PT_ERROR (unknown
 * user or group; "FILE: ..." in err). */
#define PT_DEFAULT_USER "nobody"
int pt_process_user(pt_conf *conf, uid_t *uid, gid_t *gid, char *err, size_t errlen);

#endif
