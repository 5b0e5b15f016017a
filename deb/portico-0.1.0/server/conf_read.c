/* Reading the configuration text: the main file and every file it @includes.
 *
 * libconfig 1.5 opens @include files itself, with fopen() and nothing else: a directory
 * makes its flex scanner call exit(2) ("input in flex scanner failed"), a FIFO blocks it
 * in open(), /dev/zero feeds it without end; and 1.5 has no hook to intervene
 * (config_set_include_func came with 1.7). So libconfig never opens a file here. This
 * reader reads the main file and, recursively, every file it includes, refusing whatever
 * is not a regular file before reading a byte of it, and splices them into one text that
 * libconfig parses from memory (config_read_string). A line map gives each line of that
 * text back its file and line, for messages.
 *
 * To find the @include lines where libconfig's scanner finds them, it follows the
 * scanner's states (lib/scanner.l of 1.5): comments (#, //, and slash-star to star-slash),
 * strings with their escapes, and `@include "path"` at the start of a line, blanks
 * allowed before it. A directive it missed would still not reach a file: the loader points
 * libconfig's include directory at /dev/null, under which nothing can be opened. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/pool.h"
#include "conf_int.h"

typedef struct {
    dev_t       dev;
    ino_t       ino;
    const char *name;
} open_file;

typedef struct {
    pt_conf_text *t;
    const char   *dir;          /* directory of the main file, relative includes start
                                 * there; "" when the main file's path has no '/' */
    size_t        read;         /* bytes of every file read so far */
    open_file     stack[PT_CONF_MAX_DEPTH + 1];     /* the main file and open includes */
    unsigned      depth;
    char         *err;
    size_t        errlen;
} reader;

static int fail(reader *r, const char *fmt, ...) PT_PRINTF(2, 3);

static int fail(reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->errlen, fmt, ap);
    va_end(ap);
    return PT_ERROR;
}

/* ---- the output: text and line map ---- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return PT_OK;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *np = realloc(*p, n * size);
    if (np == NULL)
        return PT_ERROR;
    *p = np;
    *cap = n;
    return PT_OK;
}

/* Appends s[0..n) of file (its first byte on line *line), noting where each new line of
 * the output starts and, when it does not continue the current stretch of the same file,
 * where it comes from. */
static int emit(reader *r, const char *file, unsigned *line, const char *s, size_t n)
{
    pt_conf_text *t = r->t;

    if (grow((void **) &t->data, &t->cap, t->len + n + 1, 1) != PT_OK)
        return fail(r, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (t->len == 0 || t->data[t->len - 1] == '\n') {
            if (grow((void **) &t->offs, &t->ocap, t->nlines + 1, sizeof(*t->offs)) != PT_OK)
                return fail(r, "out of memory");
            t->offs[t->nlines++] = (uint32_t) t->len;
            unsigned first = (unsigned) t->nlines;
            pt_conf_run *run = t->nruns ? &t->runs[t->nruns - 1] : NULL;
            if (run == NULL || run->file != file || run->line + (first - run->first) != *line) {
                if (grow((void **) &t->runs, &t->rcap, t->nruns + 1, sizeof(*t->runs))
                    != PT_OK)
                    return fail(r, "out of memory");
                t->runs[t->nruns++] = (pt_conf_run) { first, *line, file };
            }
        }
        t->data[t->len++] = s[i];
        if (s[i] == '\n')
            (*line)++;
    }
    t->data[t->len] = '\0';
    return PT_OK;
}

/* ---- files ---- */

static const char *type_name(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m)
           ? "a character device" : S_ISBLK(m) ? "a block device" : S_ISSOCK(m)
           ? "a socket" : "a special file";
}

/* Reads a regular file whole into *data (NUL-terminated). On failure, writes why into
 * why (no file name: the caller says which file and from where). Nothing but a regular
 * file is ever opened: stat() first, so that a device is not even opened (opening some
 * has effects), then an open() that cannot block (O_NONBLOCK: a FIFO swapped in since)
 * and fstat() on what was opened, which is what counts. */
static int read_regular(reader *r, const char *name, char **data, size_t *len,
                        struct stat *st, char *why, size_t whylen)
{
    size_t room = PT_CONF_MAX_SIZE - r->read, cap, n = 0;
    char *buf = NULL;
    int fd = -1;

    *data = NULL;
    if (stat(name, st) < 0)
        goto sys_error;
    if (!S_ISREG(st->st_mode))
        goto not_regular;
    if ((fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)) < 0
        || fstat(fd, st) < 0)
        goto sys_error;
    if (!S_ISREG(st->st_mode))
        goto not_regular;
    if ((uint64_t) st->st_size > room)
        goto too_large;

    /* st_size is a hint (a file may grow, /proc files say 0): read to the end, but never
     * more than the room left */
    cap = (size_t) st->st_size + 1;
    if ((buf = malloc(cap + 1)) == NULL)
        goto no_memory;
    for (;;) {
        if (n == cap) {
            if (n > room)
                goto too_large;
            size_t ncap = pt_min(cap * 2, room + 1);
            char *nb = realloc(buf, ncap + 1);
            if (nb == NULL)
                goto no_memory;
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(why, whylen, "read error: %s", strerror(errno));
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t) got;
    }
    if (n > room)
        goto too_large;
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    r->read += n;
    return PT_OK;

sys_error:
    snprintf(why, whylen, "%s", strerror(errno));
    goto fail;
not_regular:
    snprintf(why, whylen, "is %s, not a regular file", type_name(st->st_mode));
    goto fail;
too_large:
    snprintf(why, whylen, "too large: the configuration with its @include files is "
             "limited to %u bytes", PT_CONF_MAX_SIZE);
    goto fail;
no_memory:
    snprintf(why, whylen, "out of memory");
fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    return PT_ERROR;
}

static char *keep_name(reader *r, const char *name)
{
    pt_conf_text *t = r->t;
    size_t n = t->nfiles;

    if (grow((void **) &t->files, &t->fcap, n + 1, sizeof(char *)) != PT_OK)
        return NULL;
    if ((t->files[n] = strdup(name)) == NULL)
        return NULL;
    t->nfiles++;
    return t->files[n];
}

/* ---- the scanner's states ---- */

/* At a line start: `[ \t]*@include[ \t]+"`, as libconfig's include_open. Returns the
 * offset after the opening quote, or 0. */
static size_t include_open(const char *s, size_t len, size_t i)
{
    static const char kw[] = "@include";

    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (len - i < sizeof(kw) - 1 || memcmp(s + i, kw, sizeof(kw) - 1) != 0)
        return 0;
    i += sizeof(kw) - 1;
    size_t blanks = i;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == blanks || i == len || s[i] != '"')
        return 0;
    return i + 1;
}

static int splice_text(reader *r, const char *name, const char *src, size_t len);

/* The @include on line `line` of file `from`: target as written. */
static int include(reader *r, const char *from, unsigned line, const char *target)
{
    char why[512], *path, *data;
    size_t len;
    struct stat st;
    bool rel = target[0] != '/' && r->dir[0] != '\0';

    if (target[0] == '\0')
        return fail(r, "%s:%u: @include \"\": no file name", from, line);
    path = malloc(strlen(r->dir) + strlen(target) + 1);
    if (path == NULL)
        return fail(r, "out of memory");
    sprintf(path, "%s%s", rel ? r->dir : "", target);
    /* "@include "x" (/etc/portico/x): why": where a relative name led, when it moved */
    char shown[1024];
    snprintf(shown, sizeof(shown), "%s:%u: @include \"%s\"%s%s%s", from, line, target,
             rel ? " (" : "", rel ? path : "", rel ? ")" : "");

    if (r->depth == PT_CONF_MAX_DEPTH) {
        free(path);
        return fail(r, "%s: more than %d levels of nested @include", shown,
                    PT_CONF_MAX_DEPTH);
    }
    if (read_regular(r, path, &data, &len, &st, why, sizeof(why)) != PT_OK) {
        free(path);
        return fail(r, "%s: %s", shown, why);
    }
    for (unsigned i = 0; i <= r->depth; i++) {
        if (r->stack[i].dev != st.st_dev || r->stack[i].ino != st.st_ino)
            continue;
        /* the chain from the file included again to the one including it */
        char chain[768];
        size_t n = 0;
        for (unsigned j = i; j <= r->depth && n < sizeof(chain); j++) {
            int w = snprintf(chain + n, sizeof(chain) - n, "%s -> ", r->stack[j].name);
            n += w > 0 ? (size_t) w : 0;
        }
        if (n < sizeof(chain))
            snprintf(chain + n, sizeof(chain) - n, "%s", path);
        free(data);
        free(path);
        return fail(r, "%s: include loop: %s", shown, chain);
    }

    char *kept = keep_name(r, path);
    free(path);
    if (kept == NULL) {
        free(data);
        return fail(r, "out of memory");
    }
    r->depth++;
    r->stack[r->depth] = (open_file) { st.st_dev, st.st_ino, kept };
    int rc = splice_text(r, kept, data, len);
    r->depth--;
    free(data);
    return rc;
}

/* Copies src (the text of file name) to the output, replacing each @include line by the
 * file it names. Each file must end outside a comment and a string: libconfig would carry
 * one over into the text after the @include, so it is refused in every file (libconfig
 * itself silently drops the rest of a file after an unclosed comment). */
static int splice_text(reader *r, const char *name, const char *src, size_t len)
{
    enum { CODE, COMMENT, STRING } state = CODE;
    unsigned line = 1, start = 1, seg_line = 1;
    size_t seg = 0, i = 0;
    const char *nul = memchr(src, '\0', len);

    if (nul) {
        for (const char *p = src; p < nul; p++)
            line += *p == '\n';
        return fail(r, "%s:%u: a NUL byte: not a text file", name, line);
    }
    while (i < len) {
        char c = src[i];
        if (state == COMMENT) {
            if (c == '*' && i + 1 < len && src[i + 1] == '/') {
                state = CODE;
                i += 2;
                continue;
            }
        } else if (state == STRING) {
            if (c == '\\' && i + 1 < len && (src[i + 1] == '\\' || src[i + 1] == '"')) {
                i += 2;
                continue;
            }
            if (c == '"')
                state = CODE;
        } else if ((i == 0 || src[i - 1] == '\n') && include_open(src, len, i)) {
            /* the path: \\ and \" are escapes; a backslash before anything else is
             * dropped (flex's default rule echoes it to stdout) */
            size_t k = include_open(src, len, i);
            unsigned at = line;
            char *target = malloc(len - k + 1);
            size_t tn = 0;
            if (target == NULL)
                return fail(r, "out of memory");
            for (; k < len && src[k] != '"'; k++) {
                if (src[k] == '\n')
                    line++;
                if (src[k] == '\\') {
                    if (k + 1 < len && (src[k + 1] == '\\' || src[k + 1] == '"'))
                        target[tn++] = src[++k];
                    continue;
                }
                target[tn++] = src[k];
            }
            target[tn] = '\0';
            if (k == len) {
                free(target);
                return fail(r, "%s:%u: @include: no closing quote before the end of the "
                            "file", name, at);
            }
            int rc = emit(r, name, &seg_line, src + seg, i - seg);
            if (rc == PT_OK)
                rc = include(r, name, at, target);
            free(target);
            if (rc != PT_OK)
                return PT_ERROR;
            /* the rest of the line starts a line of its own, as it starts a new buffer
             * for libconfig's scanner: tokens never run across the seam */
            pt_conf_text *t = r->t;
            if (t->len && t->data[t->len - 1] != '\n') {
                unsigned l = 0;
                if (emit(r, name, &l, "\n", 1) != PT_OK)
                    return PT_ERROR;
            }
            i = seg = k + 1;
            seg_line = line;
            continue;
        } else if (c == '"') {
            state = STRING;
            start = line;
        } else if (c == '/' && i + 1 < len && src[i + 1] == '*') {
            state = COMMENT;
            start = line;
            i += 2;
            continue;
        } else if (c == '#' || (c == '/' && i + 1 < len && src[i + 1] == '/')) {
            while (i < len && src[i] != '\n')
                i++;
            continue;
        }
        if (c == '\n')
            line++;
        i++;
    }
    if (state == COMMENT)
        return fail(r, "%s:%u: comment not closed: no \"*/\" before the end of the file",
                    name, start);
    if (state == STRING)
        return fail(r, "%s:%u: string not closed: no closing quote before the end of the "
                    "file", name, start);
    if (r->depth == 0) {
        r->t->end_file = name;
        r->t->end_line = line;
    }
    return emit(r, name, &seg_line, src + seg, len - seg);
}

/* ---- entry points ---- */

int pt_conf_text_read(pt_conf_text *t, const char *path, char *err, size_t errlen)
{
    reader r;
    char why[512], *data;
    size_t len;
    struct stat st;

    memset(t, 0, sizeof(*t));
    memset(&r, 0, sizeof(r));
    r.t = t;
    r.err = err;
    r.errlen = errlen;

    /* relative @include names start from the main file's directory, kept with its
     * slash: "/etc/portico/", "conf/", "/"; "" when the path has none */
    const char *main_name = keep_name(&r, path);
    const char *slash = strrchr(path, '/');
    char *dir = strndup(path, slash ? (size_t) (slash - path) + 1 : 0);
    if (main_name == NULL || dir == NULL) {
        free(dir);
        return fail(&r, "%s: out of memory", path);
    }
    r.dir = dir;

    int rc = read_regular(&r, path, &data, &len, &st, why, sizeof(why));
    if (rc != PT_OK) {
        fail(&r, "%s: cannot read: %s", path, why);
    } else {
        r.stack[0] = (open_file) { st.st_dev, st.st_ino, main_name };
        rc = splice_text(&r, main_name, data, len);
        free(data);
    }
    t->bytes_read = r.read;
    free(dir);
    return rc;
}

int pt_conf_text_append_group(pt_conf_text *t, const char *main_path, const char *group,
                              const char *path, const char *shown, char *err,
                              size_t errlen)
{
    reader r;
    char why[512], *data, *head;
    size_t len;
    struct stat st;

    memset(&r, 0, sizeof(r));
    r.t = t;
    r.err = err;
    r.errlen = errlen;
    r.read = t->bytes_read;
    const char *slash = strrchr(main_path, '/');
    char *dir = strndup(main_path, slash ? (size_t) (slash - main_path) + 1 : 0);
    char *kept = keep_name(&r, path);
    if (dir == NULL || kept == NULL) {
        free(dir);
        return fail(&r, "%s: out of memory", shown);
    }
    r.dir = dir;
    if (read_regular(&r, path, &data, &len, &st, why, sizeof(why)) != PT_OK) {
        free(dir);
        return fail(&r, "%s: %s", shown, why);
    }
    /* the main file's end stays where errors past the text point */
    const char *end_file = t->end_file;
    unsigned end_line = t->end_line, line = 0;
    int rc = PT_ERROR;
    size_t hn = strlen(group) + 8;
    if ((head = malloc(hn)) == NULL) {
        fail(&r, "out of memory");
        goto done;
    }
    /* `group = {` on a line of its own, counted as line 0 of the file, so that the
     * file's own lines keep their numbers; the closing brace follows its last line */
    snprintf(head, hn, "%s = {\n", group);
    if (t->len && t->data[t->len - 1] != '\n' && emit(&r, end_file, &line, "\n", 1) != PT_OK)
        goto done;
    line = 0;
    r.depth = 1;                        /* not the main file: end_file stays */
    r.stack[1] = (open_file) { st.st_dev, st.st_ino, kept };
    if (emit(&r, kept, &line, head, strlen(head)) != PT_OK
        || splice_text(&r, kept, data, len) != PT_OK)
        goto done;
    line = 1;
    for (size_t i = 0; i < len; i++)
        line += data[i] == '\n';
    if (len && data[len - 1] == '\n')
        rc = emit(&r, kept, &line, "};\n", 3);
    else
        rc = emit(&r, kept, &line, "\n};\n", 4);
    if (rc == PT_OK && grow((void **) &t->seams, &t->scap, t->nseams + 1, sizeof(unsigned))
                       == PT_OK)
        t->seams[t->nseams++] = (unsigned) t->nlines;
done:
    t->end_file = end_file;
    t->end_line = end_line;
    t->bytes_read = r.read;
    free(head);
    free(data);
    free(dir);
    return rc;
}

void pt_conf_text_free(pt_conf_text *t)
{
    for (unsigned i = 0; i < t->nfiles; i++)
        free(t->files[i]);
    free(t->files);
    free(t->seams);
    free(t->runs);
    free(t->offs);
    free(t->data);
    memset(t, 0, sizeof(*t));
}

const char *pt_conf_text_where(const pt_conf_text *t, unsigned n, unsigned *line)
{
    /* past the last line: an error at the end of the text (a missing ';') is at the end
     * of the main file, whatever it included last */
    if (n > t->nlines || t->nruns == 0) {
        *line = t->end_line;
        return t->end_file;
    }
    if (n == 0) {                       /* libconfig's root setting */
        *line = 0;
        return t->runs[0].file;
    }
    size_t lo = 0, hi = t->nruns;       /* the last run starting at or before n */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->runs[mid].first <= n)
            lo = mid;
        else
            hi = mid;
    }
    *line = t->runs[lo].line + (n - t->runs[lo].first);
    return t->runs[lo].file;
}

/* ---- small files named by keys (secrets) ---- */

int pt_conf_read_small_file(pt_conf_ctx *cx, config_setting_t *s, const char *path,
                            size_t max, pt_str *out)
{
    reader r;
    char why[512], *data = NULL, full[4096];
    size_t len = 0;
    struct stat st;

    memset(&r, 0, sizeof(r));
    /* relative to the main file's directory, as @include names */
    const char *slash = strrchr(cx->file, '/');
    if (path[0] != '/' && slash)
        snprintf(full, sizeof(full), "%.*s%s", (int) (slash - cx->file) + 1, cx->file, path);
    else
        snprintf(full, sizeof(full), "%s", path);
    if (read_regular(&r, full, &data, &len, &st, why, sizeof(why)) != PT_OK)
        return pt_conf_error(cx, s, "\"%s\": %s", full, why);
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len == 0 || len > max) {
        free(data);
        return pt_conf_error(cx, s, "\"%s\": %s", full, len ? "too large" : "empty");
    }
    out->data = pt_pstrndup(cx->pool, data, len);
    out->len = len;
    free(data);
    return out->data ? PT_OK : pt_conf_error(cx, s, "out of memory");
}
