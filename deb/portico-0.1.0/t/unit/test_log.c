/* The error log's handling of repeated messages: identical ones (level and text) are
 * counted instead of written and summarised once; anything different is written. */
#include "portico/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "portico/log.h"
#include "tap.h"

static char path[] = "/tmp/portico-test-log-XXXXXX";
static char lines[64][2200];
static int  nlines;
static long seen;              /* bytes of the file already returned */

/* The lines written since the last call, each without its "date time [level] pid#role: "
 * prefix but with "[level] " kept in front. */
static int new_lines(void)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    nlines = 0;
    if (f == NULL)
        return 0;
    fseek(f, seen, SEEK_SET);
    while (fgets(buf, sizeof(buf), f) && nlines < 64) {
        char *lv = strchr(buf, '[');
        char *msg = strstr(buf, "#test: ");
        buf[strcspn(buf, "\n")] = '\0';
        if (lv == NULL || msg == NULL) {
            snprintf(lines[nlines++], sizeof(lines[0]), "?%s", buf);
            continue;
        }
        char *end = strchr(lv, ']');
        snprintf(lines[nlines++], sizeof(lines[0]), "%.*s %s", (int) (end - lv + 1), lv,
                 msg + 7);
    }
    seen = ftell(f);
    fclose(f);
    return nlines;
}

static int has_line(const char *want)
{
    for (int i = 0; i < nlines; i++)
        if (strcmp(lines[i], want) == 0)
            return 1;
    return 0;
}

static void show(void)
{
    for (int i = 0; i < nlines; i++)
        tap_diag("  %s", lines[i]);
}

int main(void)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    tap_plan(22);
    tap_ok(pt_log_open(path, PT_LOG_DEBUG) == PT_OK, "log to a file");
    pt_log_set_role("test");

    /* the same message five times: written once, counted four times */
    for (int i = 0; i < 5; i++)
        pt_log(PT_LOG_ERR, "upstream %s: connect() failed", "app");
    tap_is_int(new_lines(), 1, "five identical messages: one line");
    tap_is_str_(lines[0], "[error] upstream app: connect() failed", "...the message itself");
    int due = pt_log_flush();
    tap_ok(due > 0 && due <= 1001, "the summary is due within the second (%d ms)", due);
    tap_is_int(new_lines(), 0, "...and not written before");
    pt_log_flush_all();
    tap_is_int(new_lines(), 1, "flushed: one summary line");
    tap_is_str_(lines[0], "[error] last message repeated 4 times: upstream app: connect() failed",
                "...with the level, the count and the text");
    tap_is_int(pt_log_flush(), -1, "nothing pending after the flush");

    /* after the summary the message opens a new window: written in full */
    pt_log(PT_LOG_ERR, "upstream %s: connect() failed", "app");
    tap_is_int(new_lines(), 1, "the same message after its summary is written again");

    /* other messages are never held back: another level, another errno, another text */
    pt_log(PT_LOG_WARN, "upstream %s: connect() failed", "app");
    pt_log_errno(PT_LOG_ERR, ECONNREFUSED, "upstream %s: connect() failed", "app");
    pt_log_errno(PT_LOG_ERR, EMFILE, "upstream %s: connect() failed", "app");
    pt_log(PT_LOG_ERR, "upstream %s: connect() failed", "app2");
    tap_is_int(new_lines(), 4, "different level, errno or text: each one written");
    tap_ok(has_line("[warn] upstream app: connect() failed")
           && has_line("[error] upstream app: connect() failed (24: Too many open files)")
           && has_line("[error] upstream app2: connect() failed"), "...as they were logged");
    pt_log_flush_all();
    tap_is_int(new_lines(), 0, "no summary for messages that did not repeat");

    /* two messages alternating (a failed request logs two lines): both counted */
    for (int i = 0; i < 4; i++) {
        pt_log(PT_LOG_ERR, "message A");
        pt_log(PT_LOG_ERR, "message B");
    }
    tap_is_int(new_lines(), 2, "A B A B ...: two lines");
    pt_log_flush_all();
    new_lines();
    tap_ok(nlines == 2 && has_line("[error] last message repeated 3 times: message A")
           && has_line("[error] last message repeated 3 times: message B"),
           "...and a summary for each");
    if (nlines != 2)
        show();

    /* a ninth distinct message takes the oldest slot: its count is reported first */
    pt_log(PT_LOG_INFO, "m0");
    pt_log(PT_LOG_INFO, "m0");
    for (int i = 1; i < 9; i++)
        pt_log(PT_LOG_INFO, "m%d", i);
    tap_is_int(new_lines(), 10, "nine distinct messages: each written, plus one summary");
    tap_is_str_(lines[8], "[info] last message repeated 1 time: m0",
                "...the evicted message's summary before the message that took its slot");
    tap_is_str_(lines[9], "[info] m8", "...which follows");
    pt_log(PT_LOG_INFO, "m0");
    pt_log(PT_LOG_INFO, "m8");
    tap_is_int(new_lines(), 1, "the evicted message is written again, the others still counted");
    pt_log_flush_all();
    tap_is_int(new_lines(), 1, "...one summary (m8)");

    /* a message longer than a line: compared as written (truncated), still counted */
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pt_log(PT_LOG_ERR, "%s", big);
    pt_log(PT_LOG_ERR, "%s", big);
    tap_is_int(new_lines(), 1, "a long message repeated: one (truncated) line");
    pt_log_flush_all();
    tap_is_int(new_lines(), 1, "...and its summary");

    /* a forked child takes a role: its parent's counts are not its own */
    pt_log(PT_LOG_ERR, "parent's");
    pt_log(PT_LOG_ERR, "parent's");
    pt_log_set_role("test");
    pt_log_flush_all();
    tap_is_int(new_lines(), 1, "a new role forgets what the parent counted");

    unlink(path);
    return tap_failed ? 1 : 0;
}
