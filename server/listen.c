/* STUB */
#include "portico/process.h"
int *pt_listen_open(pt_conf *conf, pt_conf *old, int *old_fds) { return NULL; }
void pt_listen_close(pt_conf *conf, int *fds) {}
