/* The rate limit's bucket (modules/ratelimit.h, GCRA) against a clock of the test's own:
 * burst requests pass at once and the next does not, one more passes per interval, the
 * wait it reports is exact, idle time refills up to the burst and no further. */
#include "../../modules/ratelimit.h"
#include "tap.h"

int main(void)
{
    uint64_t tat = 0, now = 1000000000;        /* µs */
    const uint64_t iv = 500000;                /* 2r/s */
    unsigned passed = 0;

    for (int i = 0; i < 5; i++)
        passed += ratelimit_gcra(&tat, now, iv, 5) == 0;
    tap_is_int(passed, 5, "burst 5: five requests at once pass");
    int64_t wait = ratelimit_gcra(&tat, now, iv, 5);
    tap_is_int(wait, iv, "the sixth waits exactly one interval (500 ms)");
    tap_is_int(ratelimit_gcra(&tat, now + iv - 1, iv, 5), 1, "1 µs before: 1 µs to wait");
    tap_is_int(ratelimit_gcra(&tat, now + iv, iv, 5), 0, "one interval later: one passes");
    tap_ok(ratelimit_gcra(&tat, now + iv, iv, 5) > 0, "...and only one");

    /* a steady stream at the rate always passes, faster does not */
    now += iv;
    passed = 0;
    for (int i = 1; i <= 100; i++)
        passed += ratelimit_gcra(&tat, now + (uint64_t) i * iv, iv, 5) == 0;
    tap_is_int(passed, 100, "at the rate (one per interval): every request passes");
    now += 100 * iv;
    passed = 0;
    for (int i = 1; i <= 100; i++)
        passed += ratelimit_gcra(&tat, now + (uint64_t) i * (iv / 2), iv, 5) == 0;
    tap_is_int(passed, 50, "at twice the rate for 50 intervals: 50 pass (the bucket was empty)");

    /* idle refills up to the burst, not beyond */
    now += 1000 * iv;
    passed = 0;
    for (int i = 0; i < 20; i++)
        passed += ratelimit_gcra(&tat, now, iv, 5) == 0;
    tap_is_int(passed, 5, "after a long idle time: burst (5) again, no more");

    uint64_t t2 = 0;
    tap_is_int(ratelimit_gcra(&t2, 7, 60000000, 1), 0, "burst 1, 1r/m: one passes");
    tap_is_int(ratelimit_gcra(&t2, 7, 60000000, 1), 60000000, "...the next waits a minute");
    tap_is_int(ratelimit_gcra(&t2, 7 + 59999999, 60000000, 1), 1, "...1 µs before the minute");
    tap_is_int(ratelimit_gcra(&t2, 7 + 60000000, 60000000, 1), 0, "...and passes on it");
    return tap_done();
}
