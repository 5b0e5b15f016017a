/* Counted strings: most strings in portico point into a buffer and are not NUL-terminated. */
#ifndef PT_STR_T_H
#define PT_STR_T_H

#include <stddef.h>

typedef struct pt_str {
    size_t      len;
    const char *data;
} pt_str;

#define PT_STR(lit)  ((pt_str) { sizeof(lit) - 1, (lit) })
#define PT_STR_NULL  ((pt_str) { 0, NULL })

#endif
