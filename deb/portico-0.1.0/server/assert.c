/* A broken invariant (PT_ASSERT, debug and sanitizer builds): say where, then abort so a
 * core dump or the sanitizer's stack shows how it came to that. */
#include <stdlib.h>

#include "portico/core.h"
#include "portico/log.h"

#ifdef PT_ASSERTIONS
void pt_assert_fail(const char *cond, const char *file, int line, const char *fn)
{
    pt_log(PT_LOG_ALERT, "assertion \"%s\" failed in %s() at %s:%d", cond, fn, file, line);
    abort();
}
#endif
