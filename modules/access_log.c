/* STUB */
#include "portico/module.h"
pt_module pt_access_log_module = { .name = "access_log" };
