/* The master acting as the workers' user for one operation (server/privs.c). */
#ifndef PT_PRIVS_H
#define PT_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

/* Switches the effective uid and gid to uid and gid: true when done (then call
 * pt_privs_back right after the operation), false when not root or uid is 0. */
bool pt_privs_as(uid_t uid, gid_t gid);
/* Back to root's effective ids; errno as the operation left it. */
void pt_privs_back(void);

#endif
