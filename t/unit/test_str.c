/* String helpers and the region allocator. */
#include "portico/pool.h"
#include "portico/str.h"
#include "tap.h"

int main(void)
{
    uint64_t v = 0;
    tap_ok(pt_parse_u64(PT_STR("0"), UINT64_MAX, &v) && v == 0, "parse 0");
    tap_ok(pt_parse_u64(PT_STR("18446744073709551615"), UINT64_MAX, &v)
           && v == UINT64_MAX, "parse u64 max");
    tap_ok(!pt_parse_u64(PT_STR("18446744073709551616"), UINT64_MAX, &v), "overflow refused");
    tap_ok(!pt_parse_u64(PT_STR("100"), 99, &v), "above max refused");
    tap_ok(!pt_parse_u64(PT_STR(""), 10, &v), "empty refused");
    tap_ok(!pt_parse_u64(PT_STR("+1"), 10, &v), "sign refused");
    tap_ok(!pt_parse_u64(PT_STR("1 "), 10, &v), "space refused");
    char b[24];
    size_t n = pt_fmt_u64(b, 1234567890123ull);
    b[n] = 0;
    tap_is_str(b, "1234567890123", "format u64");
    n = pt_fmt_u64(b, 0);
    b[n] = 0;
    tap_is_str(b, "0", "format 0");
    tap_ok(pt_str_caseeq(PT_STR("Content-Length"), PT_STR("content-LENGTH")), "caseeq");
    tap_ok(!pt_str_caseeq(PT_STR("Content-Length"), PT_STR("Content-Lengtx")), "caseeq differs");
    tap_ok(pt_str_caseeq_lit(PT_STR("HOST"), "host"), "caseeq_lit");
    tap_ok(pt_hash_lower("Example.COM", 11) == pt_hash_lower("example.com", 11), "hash ignores case");
    tap_ok(pt_str_has_prefix(PT_STR("/api/x"), PT_STR("/api")), "prefix");
    tap_ok(!pt_str_has_prefix(PT_STR("/ap"), PT_STR("/api")), "short is not prefix");

    /* SipHash-2-4 test vector of its paper: key 00..0f, message 00..0e (15 bytes) */
    uint64_t key[2] = { 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL };
    unsigned char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char) i;
    tap_ok(pt_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL, "siphash: the paper's vector");
    tap_ok(pt_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL, "siphash: empty message");
    uint64_t other[2] = { 1, 2 };
    tap_ok(pt_siphash(other, msg, 15) != pt_siphash(key, msg, 15), "siphash: the key matters");

    pt_pool *p = pt_pool_create(1024);
    char *a = pt_palloc(p, 100);
    char *big = pt_palloc(p, 100000);
    tap_ok(a && big && ((uintptr_t) a % 16) == 0 && ((uintptr_t) big % 16) == 0, "aligned allocations");
    memset(big, 1, 100000);
    for (int i = 0; i < 100; i++)
        pt_palloc(p, 200);
    tap_ok(p->allocated > 100000, "pool accounts big and chunk allocations");
    pt_pool_reset(p);
    tap_is_int(p->allocated, 1024, "reset keeps only the first chunk");
    char *again = pt_palloc(p, 100);
    tap_ok(again == a, "after reset the first chunk is reused from its start");
    pt_str s = pt_pstr(p, PT_STR("hello"));
    tap_ok(s.len == 5 && s.data[5] == '\0' && memcmp(s.data, "hello", 5) == 0, "pstr copies with NUL");
    pt_pool_destroy(p);
    return tap_done();
}
