/* What a process runs with: the configuration generation and its sockets and zones. */
#ifndef PT_CYCLE_T_H
#define PT_CYCLE_T_H

#include <sys/types.h>
#include "portico/conf-t.h"

typedef struct pt_cycle {
    pt_conf    *conf;
    const char *conf_path;
    unsigned    generation;  /* 1 at start, +1 per successful reload */
    int        *listen_fds;  /* by listener index */
    int         worker;      /* this worker's number (0..workers-1), -1 in the master */
    int         stats_slot;  /* index in pt_stats.worker, -1 in the master */
    pid_t       master_pid;
} pt_cycle;

extern pt_cycle *pt_cycle_cur;

#endif
