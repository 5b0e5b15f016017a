#ifndef PT_STR_H
#define PT_STR_H

#include "portico/core.h"
#include "portico/str-t.h"

/* ASCII lower-case table; header names and hosts compare case-insensitively. */
extern const unsigned char pt_lower_tab[256];
#define pt_tolower(c) (pt_lower_tab[(unsigned char) (c)])

static inline bool pt_str_eq(pt_str a, pt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

bool pt_str_caseeq(pt_str a, pt_str b);
bool pt_str_caseeq_lit(pt_str a, const char *lit);   /* lit is lower-case */
bool pt_str_has_prefix(pt_str s, pt_str prefix);
/* FNV-1a over the lower-cased bytes: used for host and header-name tables. */
uint32_t pt_hash_lower(const char *p, size_t n);
/* SipHash-2-4 of data with a 128-bit key: for tables keyed by what clients send. */
uint64_t pt_siphash(const uint64_t key[2], const void *data, size_t n);
/* Parses a non-negative decimal with no sign, no spaces; false on overflow past max. */
bool pt_parse_u64(pt_str s, uint64_t max, uint64_t *out);
/* Writes n in decimal into buf (>= 21 bytes), returns the length. */
size_t pt_fmt_u64(char *buf, uint64_t n);
/* The length (1..4) of the well-formed UTF-8 sequence at s (RFC 3629: no overlong form,
 * no surrogate, nothing past U+10FFFF), or 0 when the bytes there are not one. */
size_t pt_utf8_len(const unsigned char *s, size_t n);

#endif
