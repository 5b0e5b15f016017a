/* The pid file. The master holds an exclusive flock(2) on it for its whole life, so "is a
 * master running" means "is the file locked": stale files left by a crash and pids reused
 * by unrelated processes cannot fool it. */
#ifndef PT_PIDFILE_H
#define PT_PIDFILE_H

#include "portico/core.h"

/* Opens (creating) and locks path, then empties it. PT_OK: this process holds it;
 * PT_DECLINED: another process holds the lock (*holder: the pid it wrote, 0 if none yet);
 * PT_ERROR: err says why. */
int   pt_pidfile_lock(const char *path, pid_t *holder, char *err, size_t errlen);
/* Writes pid into the held file. */
int   pt_pidfile_write(pid_t pid, char *err, size_t errlen);
/* A reload named another pid file: takes and writes the new one, then drops the old. */
int   pt_pidfile_move(const char *path, pid_t pid, char *err, size_t errlen);
/* Binary upgrade: renames the held file (its lock goes with it), so a new master can
 * create and lock a fresh one at the old path. */
int   pt_pidfile_rename(const char *path, char *err, size_t errlen);
/* The master's exit: unlinks and closes the held file. */
void  pt_pidfile_remove(void);
/* A child after fork: closes its copy of the descriptor; the lock stays with the master. */
void  pt_pidfile_forget(void);
const char *pt_pidfile_path(void);   /* the held file, NULL if none */

/* -s: the pid of the master holding path's lock; 0 with a message in err when no master
 * holds it or the file cannot be read. */
pid_t pt_pidfile_master(const char *path, char *err, size_t errlen);

#endif
