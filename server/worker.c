/* STUB */
#include <stdlib.h>
#include "portico/process.h"
pt_cycle *pt_cycle_cur;
void pt_worker_main(pt_cycle *cy) { exit(1); }
