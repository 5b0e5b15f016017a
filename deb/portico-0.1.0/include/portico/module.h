#ifndef PT_MODULE_H
#define PT_MODULE_H

#include "portico/core.h"
#include "portico/module-t.h"

/* The one list (server/modules.c), NULL-terminated. */
extern pt_module *const pt_modules[];
extern const unsigned   pt_nmodules;

/* Sets each module's index. Called once at start-up, before any config is loaded. */
void pt_modules_init(void);

/* Per-request module context. */
#define pt_req_ctx(r, mod)          ((r)->ctx[(mod).index])
#define pt_req_set_ctx(r, mod, c)   ((r)->ctx[(mod).index] = (c))

#endif
