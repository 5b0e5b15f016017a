/* STUB: replaced by the h1 parser work. */
#include "portico/h1.h"
void pt_h1_parser_init(pt_h1_parser *p, int kind, const pt_h1_limits *lim) { memset(p, 0, sizeof(*p)); p->kind = (uint8_t) kind; p->lim = *lim; }
int pt_h1_parse_head(pt_h1_parser *p, const char *buf, size_t len, pt_h1_head *h) { p->status = 400; p->error = "not implemented"; return PT_ERROR; }
