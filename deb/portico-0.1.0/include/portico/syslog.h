/* Syslog outputs for the error and access logs (server/syslog.c): a log `path` of
 * "syslog:unix:/dev/log" or "syslog:udp:HOST:PORT" sends each line as one RFC 5424
 * message (one datagram) instead of appending it to a file. */
#ifndef PT_SYSLOG_H
#define PT_SYSLOG_H

#include "portico/core.h"

#define PT_SYSLOG_DEFAULT_FACILITY 23           /* local7 */

bool pt_syslog_is_target(const char *path);    /* starts with "syslog:" */
/* Why path is not a usable target, or NULL. */
const char *pt_syslog_check(const char *path);
/* "local0" -> 16; -1 when unknown. */
int  pt_syslog_facility(const char *name);
extern const char *const pt_syslog_facility_names[];   /* NULL-terminated, by number */
/* A connected datagram socket to the target: the descriptor, or -1 with why in err. */
int  pt_syslog_open(const char *path, char *err, size_t errlen);
/* One message: <PRI>1 TIMESTAMP HOSTNAME TAG PID MSGID - MSG, with MSG cut at 8 KiB. */
void pt_syslog_send(int fd, int facility, int severity, const char *tag, const char *msgid,
                    const char *msg, size_t len);

#endif
