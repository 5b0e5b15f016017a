/* The LeakSanitizer suppressions (t/lsan.supp) are as narrow as they claim: in a
 * sanitizer build, with the LSAN_OPTIONS make check passes, libconfig's own leak of a
 * string token on a syntax error is not reported, while a leak of portico's, and a
 * libconfig tree portico would forget to destroy, still are. Each case runs in a child
 * (this program again, with the case's name), where LeakSanitizer checks at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libconfig.h>

#include "tap.h"

static void *volatile keep;

static int child(const char *what)
{
    if (strcmp(what, "libconfig") == 0) {
        /* a string where a ';' should be: the parser drops the token it stopped on */
        config_t c;
        config_init(&c);
        int rc = config_read_string(&c, "a = 5 \"a string token\";\n");
        config_destroy(&c);
        return rc == CONFIG_FALSE ? 0 : 3;
    }
    if (strcmp(what, "tree") == 0) {
        /* a parsed tree never destroyed: its settings leak from inside libconfig */
        config_t *c = malloc(sizeof(*c));
        config_init(c);
        if (!config_read_string(c, "a = \"x\"; b = { c = 1; d = [ 1, 2 ]; };\n"))
            return 3;
        memset(c, 0, sizeof(*c));
        free(c);
        return 0;
    }
    if (strcmp(what, "portico") == 0) {
        keep = malloc(100);
        keep = NULL;
        return 0;
    }
    return 3;
}

/* Runs this program on case what; its exit status, its stderr in out. */
static int run(const char *self, const char *what, char *out, size_t outlen)
{
    int fds[2], st = -1;
    size_t n = 0;

    if (pipe(fds) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(self, self, what, (char *) NULL);
        _exit(127);
    }
    close(fds[1]);
    for (ssize_t got; n < outlen - 1 && (got = read(fds[0], out + n, outlen - 1 - n)) > 0; )
        n += (size_t) got;
    out[n] = '\0';
    close(fds[0]);
    waitpid(pid, &st, 0);
    return st;
}

int main(int argc, char **argv)
{
    static char out[65536];

    if (argc > 1)
        return child(argv[1]);
#ifndef PT_SANITIZERS
    printf("1..0 # SKIP not a sanitizer build\n");
    return 0;
#else
    const char *lo = getenv("LSAN_OPTIONS");
    if (!tap_ok(lo && strstr(lo, "suppressions=") && strstr(lo, "lsan.supp"),
                "LSAN_OPTIONS names t/lsan.supp (%s)", lo ? lo : "unset"))
        return tap_done();

    int st = run(argv[0], "libconfig", out, sizeof(out));
    tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "libconfig's leak on a syntax error: "
           "exit 0");
    tap_ok(strstr(out, "ERROR: LeakSanitizer") == NULL, "...no LeakSanitizer report");
    tap_ok(strstr(out, "Suppressions used") && strstr(out, "strbuf_append"),
           "...because the strbuf_append rule matched it");
    if (tap_failed)
        tap_diag("%s", out);

    st = run(argv[0], "tree", out, sizeof(out));
    tap_ok(!(WIFEXITED(st) && WEXITSTATUS(st) == 0) && strstr(out, "ERROR: LeakSanitizer"),
           "a libconfig tree never destroyed is still reported");
    tap_ok(strstr(out, "config_setting") != NULL || strstr(out, "libconfig") != NULL,
           "...from inside libconfig");

    st = run(argv[0], "portico", out, sizeof(out));
    tap_ok(!(WIFEXITED(st) && WEXITSTATUS(st) == 0) && strstr(out, "ERROR: LeakSanitizer")
           && strstr(out, "100 byte(s) leaked"), "a leak of portico's own is still reported");
    return tap_done();
#endif
}
