/* STUB */
#include "portico/shm.h"
pt_stats *pt_stats_zone;
pt_worker_stats *pt_stats_mine;
