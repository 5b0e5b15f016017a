/* Unpredictable bytes (include/portico/random.h). */
#include "portico/core.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "portico/log.h"
#include "portico/random.h"

void pt_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(p + got, n - got, GRND_NONBLOCK);
        if (k > 0) {
            got += (size_t) k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        break;
    }
    if (got == n)
        return;
    static bool warned;
    if (!warned) {
        warned = true;
        pt_log(PT_LOG_WARN, "getrandom() gave no random bytes: seeding from the clocks");
    }
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t x = (uint64_t) a.tv_nsec ^ ((uint64_t) a.tv_sec << 20) ^ ((uint64_t) b.tv_nsec << 7)
                 ^ ((uint64_t) getpid() << 40) ^ (uint64_t) (uintptr_t) buf;
    for (size_t i = got; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (unsigned char) ((x * 0x2545f4914f6cdd1dull) >> 56);
    }
}
