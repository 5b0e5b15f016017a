/* Named counters in shared memory: how many requests or connections each access list,
 * rule and limit refused (or matched), for the error log's readers today and the metrics
 * endpoint to come. One zone, "counters", kept across reloads: a counter declared again
 * with the same name by the next configuration keeps its slot and its count. */
#ifndef PT_COUNTERS_T_H
#define PT_COUNTERS_T_H

#include <stdint.h>

#define PT_COUNTER_NAME   56        /* "kind:name" with its NUL */
#define PT_COUNTER_SLOTS  4096      /* 256 KiB */

typedef struct pt_counter {
    char     name[PT_COUNTER_NAME]; /* "rule:sqli-union"; name[0] == 0: free slot */
    uint64_t value;                 /* atomic adds from every worker */
} pt_counter;

typedef struct pt_counters_zone {
    uint64_t   magic;
    uint64_t   generation;          /* bumped by every configuration mapped */
    uint32_t   nslots;
    uint32_t   pad;
    uint64_t   last_used[PT_COUNTER_SLOTS];   /* the generation that last declared it */
    pt_counter slot[PT_COUNTER_SLOTS];
} pt_counters_zone;

#endif
