/* STUB: replaced by the h1 parser work. */
#include "portico/h1.h"
void pt_h1_chunked_init(pt_h1_chunked *c) { memset(c, 0, sizeof(*c)); }
int pt_h1_chunked_decode(pt_h1_chunked *c, const char **pos, const char *last, const char **data, size_t *len) { c->error = "not implemented"; return PT_ERROR; }
