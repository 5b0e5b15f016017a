/* Binary upgrade: starting a new binary that takes over the listening sockets (see
 * server/upgrade.c). */
#ifndef PT_UPGRADE_H
#define PT_UPGRADE_H

#include <sys/socket.h>

#include "portico/core.h"

/* From main(), before argv and the environment become the process title: keeps the path
 * and arguments to start again, and takes PORTICO_LISTEN_FDS out of the environment. */
void  pt_upgrade_init(int argc, char **argv);
void  pt_upgrade_free(void);

/* The old master: forks and execs the binary with the listening sockets fds[0..n) (-1
 * entries skipped) left open and named in the environment. Returns the child's pid, -1
 * if fork failed; a failed exec shows as the child exiting with code 2. */
pid_t pt_upgrade_exec(const int *fds, unsigned n);

/* The new master, at start-up: adopts the descriptors named in the environment (each
 * checked to be a listening stream socket); returns how many. */
unsigned pt_upgrade_inherit(void);
/* The inherited socket bound to addr (compared with same), or -1; taken at most once. */
int   pt_upgrade_take(const struct sockaddr_storage *addr, socklen_t len,
                      bool (*same)(const struct sockaddr_storage *, socklen_t,
                                   const struct sockaddr_storage *, socklen_t));
/* Closes the inherited sockets the configuration no longer lists. */
void  pt_upgrade_close_unused(void);

#endif
