/* Common definitions every portico source file includes first. */
#ifndef PT_CORE_H
#define PT_CORE_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* Return codes shared by the core and modules. Phase handlers use the same set. */
#define PT_OK        0
#define PT_ERROR    (-1)
#define PT_AGAIN    (-2)    /* would block / need more input; call again on the next event */
#define PT_DONE     (-3)    /* the request is answered; skip the remaining phases */
#define PT_DECLINED (-4)    /* this handler does not apply; go on */

#define pt_min(a, b) ((a) < (b) ? (a) : (b))
#define pt_max(a, b) ((a) > (b) ? (a) : (b))
#define pt_nelems(a) (sizeof(a) / sizeof((a)[0]))
#define pt_container_of(p, type, member) \
    ((type *) (void *) ((char *) (p) - offsetof(type, member)))

#if defined(__GNUC__)
#define pt_likely(x)   __builtin_expect(!!(x), 1)
#define pt_unlikely(x) __builtin_expect(!!(x), 0)
#define PT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PT_NORETURN __attribute__((noreturn))
#else
#define pt_likely(x)   (x)
#define pt_unlikely(x) (x)
#define PT_PRINTF(f, a)
#define PT_NORETURN
#endif

#define PT_VERSION PACKAGE_VERSION

/* Invariants of the state machines at the layer boundaries (a session's state when the
 * transport calls it, a request's when the session hands it on). Checked in debug and
 * sanitizer builds, where a broken one aborts with its place and text (the sanitizer
 * then prints the stack); compiled out of release builds, where they cost nothing. The
 * condition must have no side effect. */
#if defined(PT_DEBUG) || defined(PT_SANITIZERS)
#define PT_ASSERTIONS 1
PT_NORETURN void pt_assert_fail(const char *cond, const char *file, int line, const char *fn);
#define PT_ASSERT(cond) \
    (pt_likely(cond) ? (void) 0 : pt_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define PT_ASSERT(cond) ((void) 0)
#endif

#endif
