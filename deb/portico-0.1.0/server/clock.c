/* Wall-clock strings: each kind is formatted once per second, whatever the request rate. */
#include <stdio.h>
#include <time.h>

#include "portico/clock.h"

static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

typedef struct {
    uint64_t sec;
    char     buf[64];
    pt_str   str;
} cached_time;

pt_str pt_clock_http_date(uint64_t real_ms)
{
    static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static cached_time c = { UINT64_MAX, "", { 0, NULL } };
    uint64_t sec = real_ms / 1000;
    if (sec != c.sec) {
        time_t t = (time_t) sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        int n = snprintf(c.buf, sizeof(c.buf), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                         wday[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900,
                         tm.tm_hour, tm.tm_min, tm.tm_sec);
        c.str = (pt_str) { (size_t) n, c.buf };
        c.sec = sec;
    }
    return c.str;
}

pt_str pt_clock_log_time(uint64_t real_ms)
{
    static cached_time c = { UINT64_MAX, "", { 0, NULL } };
    uint64_t sec = real_ms / 1000;
    if (sec != c.sec) {
        time_t t = (time_t) sec;
        struct tm tm;
        localtime_r(&t, &tm);
        long off = tm.tm_gmtoff / 60;
        char sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        int n = snprintf(c.buf, sizeof(c.buf), "%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld",
                         tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, sign, off / 60, off % 60);
        c.str = (pt_str) { (size_t) n, c.buf };
        c.sec = sec;
    }
    return c.str;
}
