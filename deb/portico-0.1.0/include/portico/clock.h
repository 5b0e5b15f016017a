/* Wall-clock strings, formatted at most once per second and cached. */
#ifndef PT_CLOCK_H
#define PT_CLOCK_H

#include "portico/core.h"
#include "portico/str-t.h"

/* IMF-fixdate for Date fields: "Wed, 25 Nov 2026 11:29:12 GMT". */
pt_str pt_clock_http_date(uint64_t real_ms);
/* Local time for access logs: "25/Nov/2026:11:29:12 +0000". */
pt_str pt_clock_log_time(uint64_t real_ms);

#endif
