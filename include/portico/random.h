/* Unpredictable bytes from the kernel (getrandom(2)), for seeds that must not be guessed
 * from outside: the cache's hash seed and the generations of its entries. */
#ifndef PT_RANDOM_H
#define PT_RANDOM_H

#include "portico/core.h"

/* Fills buf; falls back to a mix of clocks and the pid when the kernel has none to give
 * (logged once). */
void pt_random_bytes(void *buf, size_t n);

#endif
