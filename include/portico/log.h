/* The error log: one write(2) per line, shared by the master and the workers. */
#ifndef PT_LOG_H
#define PT_LOG_H

#include "portico/core.h"

enum {
    PT_LOG_EMERG = 0,
    PT_LOG_ALERT,
    PT_LOG_CRIT,
    PT_LOG_ERR,
    PT_LOG_WARN,
    PT_LOG_NOTICE,
    PT_LOG_INFO,
    PT_LOG_DEBUG
};

extern int pt_log_level;

/* "emerg".."debug" -> level, -1 if unknown. */
int  pt_log_level_from_name(const char *name);
const char *pt_log_level_name(int level);
/* path "-" = stderr, "syslog:..." a syslog output (portico/syslog.h: each line a
 * message with its level as severity, and the facility and tag of pt_log_set_syslog).
 * Keeps the previous destination on failure. */
/* The workers' user (as root): the error log file is created as theirs, or given to
 * them, and opened again as them on reopen (server/logfile.c). NULL: nobody's. */
void pt_log_set_owner(const char *user);
int  pt_log_open(const char *path, int level);
void pt_log_set_syslog(int facility, const char *tag);
int  pt_log_reopen(void);
/* The error log's file descriptor; STDERR_FILENO when it is stderr or not a file. */
int  pt_log_fd(void);
/* Tag printed after the pid: "master", "worker 0". Called by a new process (after fork):
 * it also forgets the repeated messages its parent was counting. */
void pt_log_set_role(const char *role);
/* Repeated identical messages are counted, not written, for a second; the process's loop
 * calls pt_log_flush() to write the "last message repeated N times" lines that are due.
 * It returns the ms until the next one is due (a poll timeout), -1 when none is pending.
 * pt_log_flush_all() writes every pending one (before exiting). */
int  pt_log_flush(void);
void pt_log_flush_all(void);

void pt_log(int level, const char *fmt, ...) PT_PRINTF(2, 3);
void pt_log_errno(int level, int err, const char *fmt, ...) PT_PRINTF(3, 4);

#define pt_log_enabled(level) ((level) <= pt_log_level)
#define pt_debug(...) \
    do { if (pt_unlikely(pt_log_level >= PT_LOG_DEBUG)) pt_log(PT_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
