/* STUB */
#include "portico/module.h"
pt_module pt_return_module = { .name = "return" };
