/* STUB: replaced by the config work. */
#include "portico/conf.h"
const pt_route *pt_route_find(const pt_conf *conf, pt_str host, pt_str path, pt_method m, pt_str method_name, unsigned listener) { return NULL; }
