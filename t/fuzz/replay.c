/* Runs a libFuzzer entry point over files, one TAP test per file, so `make check` exercises
 * the fuzz target and its corpus without libFuzzer. With no arguments it replays the seed
 * corpus ($PORTICO_SRCDIR/t/fuzz/corpus/NAME, else the one configure saw); arguments name
 * files or directories to replay instead (e.g. a crash file from a fuzzing run).
 * A failing input aborts, which prove reports as a failed test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef PT_FUZZ_NAME
#define PT_FUZZ_NAME "h1"               /* the corpus directory under t/fuzz/corpus */
#endif

static int n;

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static void run_file(const char *path)
{
    FILE    *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t   len = 0, cap = 0, got;

    if (f == NULL) {
        printf("not ok %d - %s: cannot open\n", ++n, path);
        return;
    }
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            data = realloc(data, cap);
        }
        got = fread(data + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);

    /* Say which input is running first: if it aborts, the log names it. */
    printf("# %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, len);
    printf("ok %d - %s\n", ++n, path);
    free(data);
}

static void run_path(const char *path)
{
    struct stat    st;
    DIR           *d;
    struct dirent *e;
    char         **names = NULL;
    size_t         nn = 0, i;

    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    d = opendir(path);
    if (d == NULL) {
        printf("not ok %d - %s: cannot open directory\n", ++n, path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (nn + 1) * sizeof(char *));
        names[nn] = malloc(strlen(path) + strlen(e->d_name) + 2);
        sprintf(names[nn], "%s/%s", path, e->d_name);
        nn++;
    }
    closedir(d);
    qsort(names, nn, sizeof(char *), cmp);
    for (i = 0; i < nn; i++) {
        run_file(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    const char *src = getenv("PORTICO_SRCDIR");
    char        dir[4096];

    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_path(argv[i]);
    } else {
        if (src != NULL)
            snprintf(dir, sizeof(dir), "%s/t/fuzz/corpus/" PT_FUZZ_NAME, src);
        else
            snprintf(dir, sizeof(dir), "%s", PT_FUZZ_CORPUS);
        run_path(dir);
    }
    if (n == 0) {
        printf("1..0 # SKIP no corpus files\n");
        return 0;
    }
    printf("1..%d\n", n);
    return 0;
}
