/* The SNI name table (server/tls_names.c): exact names, wildcards covering one label,
 * case, trailing dots, what is not a name, and 10,000 certificates' worth of names. */
#include <stdio.h>

#include "portico/pool.h"
#include "portico/tls.h"
#include "tap.h"

static const char *find(pt_tls_names *t, const char *name)
{
    return pt_tls_names_find(t, name, strlen(name));
}

static int add(pt_tls_names *t, pt_pool *p, const char *name, const char *value)
{
    return pt_tls_names_add(t, p, name, strlen(name), (void *) value, NULL);
}

int main(void)
{
    pt_pool *p = pt_pool_create(4096);
    pt_tls_names t;
    tap_ok(pt_tls_names_init(&t, p, 8) == PT_OK, "init");

    tap_is_int(add(&t, p, "a.example", "A"), PT_OK, "add an exact name");
    tap_is_int(add(&t, p, "*.wild.example", "W"), PT_OK, "add a wildcard");
    tap_is_int(add(&t, p, "x.wild.example", "X"), PT_OK, "add an exact name under it");
    tap_is_int(add(&t, p, "Upper.Example.", "U"), PT_OK, "case and a trailing dot are kept out");

    tap_is_str(find(&t, "a.example"), "A", "exact");
    tap_is_str(find(&t, "A.EXAMPLE"), "A", "exact, any case");
    tap_is_str(find(&t, "a.example."), "A", "a trailing dot is the same name");
    tap_is_str(find(&t, "upper.example"), "U", "stored lower-case");
    tap_is_str(find(&t, "y.wild.example"), "W", "wildcard: one label");
    tap_is_str(find(&t, "Y.WILD.example"), "W", "wildcard, any case");
    tap_is_str(find(&t, "x.wild.example"), "X", "the exact name wins over the wildcard");
    tap_ok(find(&t, "a.b.wild.example") == NULL, "a wildcard does not cover two labels");
    tap_ok(find(&t, "wild.example") == NULL, "nor the bare suffix");
    tap_ok(find(&t, ".wild.example") == NULL, "nor an empty first label");
    tap_ok(find(&t, "b.example") == NULL, "an unknown name");
    tap_ok(find(&t, "") == NULL && find(&t, ".") == NULL, "empty names");

    void *old = NULL;
    tap_is_int(pt_tls_names_add(&t, p, "A.example", 9, "again", &old), PT_DECLINED,
               "a name already there is declined");
    tap_ok(old && strcmp(old, "A") == 0, "and its value given back");
    tap_is_int(add(&t, p, "*.*.example", "bad"), PT_DECLINED, "'*' inside a name: not a name");
    tap_is_int(add(&t, p, "a..example", "bad"), PT_DECLINED, "an empty label: not a name");
    tap_is_int(add(&t, p, "a b.example", "bad"), PT_DECLINED, "a space: not a name");
    tap_is_int(add(&t, p, "*", "bad"), PT_DECLINED, "a lone '*': not a name");
    tap_ok(pt_tls_name_valid("*.example.net", 13) && !pt_tls_name_valid("ex*.net", 7),
           "wildcards only as the first label");

    /* 10,000 certificates with two names each (one a wildcard): every one found, and
     * nothing else */
    pt_tls_names big;
    tap_ok(pt_tls_names_init(&big, p, 20000) == PT_OK, "init for 20,000 names");
    char name[64];
    int added = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "host%d.example%d.net", i, i % 97);
        added += add(&big, p, name, (const char *) (uintptr_t) (i + 1)) == PT_OK;
        snprintf(name, sizeof(name), "*.zone%d.example", i);
        added += add(&big, p, name, (const char *) (uintptr_t) (100000 + i)) == PT_OK;
    }
    tap_is_int(added, 20000, "20,000 names added");
    int found = 0, wild = 0, none = 0;
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "HOST%d.example%d.net", i, i % 97);
        found += pt_tls_names_find(&big, name, strlen(name)) == (void *) (uintptr_t) (i + 1);
        snprintf(name, sizeof(name), "www.zone%d.example", i);
        wild += pt_tls_names_find(&big, name, strlen(name)) == (void *) (uintptr_t) (100000 + i);
        snprintf(name, sizeof(name), "host%d.example%d.net", i, (i + 1) % 97);
        none += pt_tls_names_find(&big, name, strlen(name)) == NULL;
    }
    tap_is_int(found, 10000, "every exact name found");
    tap_is_int(wild, 10000, "every wildcard found");
    tap_is_int(none, 10000, "no false match");
    /* no scan: a bucket holds a handful of names at most */
    unsigned longest = 0;
    for (uint32_t b = 0; b <= big.mask; b++) {
        unsigned n = 0;
        for (pt_tls_name *e = big.exact[b]; e; e = e->next)
            n++;
        longest = n > longest ? n : longest;
    }
    tap_ok(longest <= 8, "the longest bucket chain holds %u names", longest);

    pt_pool_destroy(p);
    return tap_done();
}
