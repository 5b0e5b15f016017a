/* Log files for modules: opened by the master (created owned by the workers' user, so a
 * worker can reopen them after a rotation), appended by workers. The core does the
 * system calls; a logging module only formats. */
#ifndef PT_LOGFILE_H
#define PT_LOGFILE_H

#include "portico/core.h"

/* Opens path for appending (created 0644 when missing); as root, gives it to user (a
 * name, NULL: keep). The descriptor, or -1 with errno. */
int  pt_logfile_open(const char *path, const char *user);
/* Writes all of d, retrying interrupted writes; a full disk loses the data rather than
 * stopping the server. */
void pt_logfile_write(int fd, const char *d, size_t len);
void pt_logfile_close(int fd);      /* never the standard descriptors */
/* A syslog output (portico/syslog.h) in place of a file: pt_logfile_write then sends
 * each line as a message of this facility and tag, severity info, MSGID "access". The
 * descriptor, or -1 with why in err. */
int  pt_logfile_open_syslog(const char *path, int facility, const char *tag, char *err,
                            size_t errlen);

#endif
