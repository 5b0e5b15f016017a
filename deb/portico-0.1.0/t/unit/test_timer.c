/* Timer heap: ordering, deletion, lazy push-back, callbacks re-arming timers. */
#include <stdlib.h>
#include "portico/timer.h"
#include "tap.h"

static int fired[64];
static int nfired;
static pt_timer_heap H;

static void record(pt_timer *t)
{
    fired[nfired++] = (int) (intptr_t) t->data;
}

static void rearm(pt_timer *t)
{
    record(t);
    if (nfired < 3)
        pt_timer_set(&H, t, t->deadline + 10);
}

int main(void)
{
    pt_timer t[40];

    pt_timer_heap_init(&H, 2);      /* small: forces growth */
    for (int i = 0; i < 40; i++) {
        pt_timer_init(&t[i], record, (void *) (intptr_t) i);
        pt_timer_set(&H, &t[i], (uint64_t) (1000 - i * 10));
    }
    tap_is_int(H.n, 40, "40 timers armed");
    tap_is_int(pt_timer_next(&H, 0), 610, "next deadline is the earliest (610 ms)");
    pt_timer_del(&H, &t[39]);
    pt_timer_del(&H, &t[5]);
    tap_ok(!pt_timer_armed(&t[39]) && !pt_timer_armed(&t[5]), "deleted timers are disarmed");
    pt_timer_del(&H, &t[5]);
    tap_is_int(H.n, 38, "deleting twice is harmless");

    nfired = 0;
    unsigned n = pt_timer_expire(&H, 700);
    tap_is_int(n, 9, "9 timers due at 700");
    int ordered = 1;
    for (int i = 1; i < nfired; i++)
        if (fired[i] > fired[i - 1])
            ordered = 0;
    tap_ok(ordered, "they fire in deadline order");

    /* lazy push-back: moving a deadline later must not fire it at the old time */
    pt_timer_set(&H, &t[0], 5000);
    nfired = 0;
    pt_timer_expire(&H, 1000);
    int saw0 = 0;
    for (int i = 0; i < nfired; i++)
        saw0 |= fired[i] == 0;
    tap_ok(!saw0, "a timer pushed later does not fire at its old deadline");
    tap_ok(pt_timer_armed(&t[0]), "and stays armed");
    tap_is_int(pt_timer_next(&H, 1000), 4000, "next wake-up is its real deadline");
    nfired = 0;
    pt_timer_expire(&H, 5000);
    tap_ok(nfired == 1 && fired[0] == 0, "it fires at the new deadline");

    /* moving earlier re-sorts at once */
    pt_timer_set(&H, &t[1], 9000);
    pt_timer_set(&H, &t[2], 8000);
    pt_timer_set(&H, &t[1], 6000);
    tap_is_int(pt_timer_next(&H, 5000), 1000, "moving a deadline earlier takes effect");

    /* a callback re-arming its own timer */
    pt_timer_del(&H, &t[1]);
    pt_timer_del(&H, &t[2]);
    pt_timer_init(&t[3], rearm, (void *) 3);
    pt_timer_set(&H, &t[3], 100);
    nfired = 0;
    pt_timer_expire(&H, 200);
    tap_is_int(nfired, 3, "a self-re-arming callback runs until it stops re-arming");
    tap_is_int(H.n, 0, "heap empty afterwards");
    tap_is_int(pt_timer_next(&H, 0), -1, "no timer: next is -1");

    /* random stress against a reference */
    srand(7);
    static pt_timer many[2000];
    uint64_t dl[2000];
    for (int i = 0; i < 2000; i++) {
        pt_timer_init(&many[i], record, (void *) (intptr_t) i);
        dl[i] = (uint64_t) (rand() % 100000);
        pt_timer_set(&H, &many[i], dl[i]);
    }
    for (int i = 0; i < 2000; i += 3) {
        if (i % 2) {
            pt_timer_del(&H, &many[i]);
            dl[i] = UINT64_MAX;
        } else {
            dl[i] += (uint64_t) (rand() % 1000);
            pt_timer_set(&H, &many[i], dl[i]);
        }
    }
    int bad = 0;
    for (uint64_t now = 0; now <= 101000; now += 997) {
        nfired = 0;
        static int fired_ids[2000];
        (void) fired_ids;
        pt_timer_expire(&H, now);
        for (int i = 0; i < 2000; i++) {
            if (dl[i] != UINT64_MAX && dl[i] <= now) {
                if (pt_timer_armed(&many[i]))
                    bad++;
                dl[i] = UINT64_MAX;
            } else if (dl[i] != UINT64_MAX && !pt_timer_armed(&many[i])) {
                bad++;
            }
        }
    }
    tap_is_int(bad, 0, "2000 random timers fire exactly when due");
    pt_timer_heap_free(&H);
    return tap_done();
}
