/* Preloaded by t/http/reload_check.t (LD_PRELOAD) in front of libconfig: a configuration
 * text holding "#shim:exit" makes the parse call exit(2), as libconfig 1.5's flex scanner
 * does when it cannot read an @include (a directory); "#shim:hang" makes it never return,
 * as it does on a FIFO. Anything else goes to the real libconfig. It stands for whatever a
 * library may do inside the parse, which must never take the master with it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct config_t config_t;

static void act(const char *text)
{
    if (text == NULL)
        return;
    if (strstr(text, "#shim:exit"))
        exit(2);
    if (strstr(text, "#shim:hang"))
        for (;;)
            pause();
}

int config_read_string(config_t *config, const char *str)
{
    int (*real)(config_t *, const char *) =
        (int (*)(config_t *, const char *)) dlsym(RTLD_NEXT, "config_read_string");
    act(str);
    return real(config, str);
}

/* what a portico before the reading of files in its own code calls */
int config_read_file(config_t *config, const char *filename)
{
    int (*real)(config_t *, const char *) =
        (int (*)(config_t *, const char *)) dlsym(RTLD_NEXT, "config_read_file");
    static char buf[1 << 20];
    FILE *f = fopen(filename, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        act(buf);
    }
    return real(config, filename);
}
