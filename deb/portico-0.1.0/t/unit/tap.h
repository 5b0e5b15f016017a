/* Minimal TAP producer for C unit tests. */
#ifndef PT_TAP_H
#define PT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

static inline void tap_plan(int n) { printf("1..%d\n", n); fflush(stdout); }

static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#define tap_is_int(got, want, ...) \
    (tap_ok((long long) (got) == (long long) (want), __VA_ARGS__) \
         ? 1 : (tap_diag("  got %lld, want %lld", (long long) (got), (long long) (want)), 0))

/* A function (not a macro over the arguments): a literal array argument would make
 * `got && ...` an always-true address test. */
static inline int tap_is_str_(const char *got, const char *want, const char *fmt, ...)
{
    va_list ap;
    int ok = got && want && strcmp(got, want) == 0;
    tap_n++;
    printf("%sok %d - ", ok ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!ok) {
        tap_failed++;
        tap_diag("  got \"%s\", want \"%s\"", got ? got : "(null)", want ? want : "(null)");
    }
    fflush(stdout);
    return ok;
}
#define tap_is_str(got, want, ...) tap_is_str_((got), (want), __VA_ARGS__)

/* Plan at the end, when the count is only known after a table run. */
static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
