/* The access log's formats beyond the fixed ones (modules/access_log*.c only). */
#ifndef PT_ACCESS_LOG_H
#define PT_ACCESS_LOG_H

#include "portico/http-t.h"

/* One JSON object for r (no newline) into [p, end): returns the new end. Values the
 * client sent are escaped (", \, and every byte outside printable ASCII as \u00XX), so
 * the line is valid JSON whatever the request held; a value too long for the line is
 * cut, never the object. */
char *pt_access_log_json(pt_request *r, char *p, char *end);

#endif
