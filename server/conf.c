/* STUB: replaced by the config work. */
#include <stdio.h>
#include "portico/conf.h"
pt_conf *pt_conf_load(const char *path, char *err, size_t errlen) { snprintf(err, errlen, "%s: not implemented", path); return NULL; }
void pt_conf_free(pt_conf *conf) {}
