/* X-Request-Id: every request carries an id that joins portico's log lines (access log,
 * error log) with the origin's. A client's (or a load balancer's in front) is kept when
 * it is a plain token; otherwise one is made: 128 random bits as 32 hex digits, from a
 * per-worker generator seeded from the kernel once, so a request costs no system call.
 * A made one is not added to the client's head (limits and rules see what the client
 * sent): the proxy sends it to the origin in place of the client's field. */
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/http.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "http_core.h"

#define ID_MAX 128

static uint64_t state[2];

static uint64_t next(void)                  /* xorshift128+ */
{
    uint64_t s1 = state[0];
    const uint64_t s0 = state[1];
    state[0] = s0;
    s1 ^= s1 << 23;
    state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return state[1] + s0;
}

void pt_request_id_seed(void)
{
    if (getrandom(state, sizeof(state), GRND_NONBLOCK) != (ssize_t) sizeof(state)) {
        /* no entropy yet (early boot): unique enough for joining log lines */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state[0] = (uint64_t) ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t) getpid();
        state[1] = (uint64_t) ts.tv_sec * 0xbf58476d1ce4e5b9ull ^ 0x94d049bb133111ebull;
    }
    if (state[0] == 0 && state[1] == 0)
        state[1] = 1;
}

/* letters, digits and - _ . : @ / = + (UUIDs, hex, base64, "lb1:1234") */
static bool plain(pt_str v)
{
    if (v.len == 0 || v.len > ID_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char) v.data[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || ch == '-' || ch == '_' || ch == '.' || ch == ':' || ch == '@' || ch == '/'
              || ch == '=' || ch == '+'))
            return false;
    }
    return true;
}

int pt_http_request_id(pt_request *r)
{
    static const pt_str name = PT_STR("X-Request-Id");
    static const char hex[] = "0123456789abcdef";

    if (!pt_wconf->request_id)
        return PT_OK;
    pt_header *h = pt_http_req_header(r, name);
    if (h && plain(h->value)) {
        r->request_id = h->value;
        return PT_OK;
    }
    char *id = pt_palloc(r->pool, 33);
    if (id == NULL)
        return PT_ERROR;
    for (unsigned w = 0; w < 2; w++) {
        uint64_t v = next();
        for (unsigned i = 0; i < 16; i++, v >>= 4)
            id[w * 16 + i] = hex[v & 15];
    }
    id[32] = '\0';
    r->request_id = (pt_str) { 32, id };
    r->request_id_made = true;
    return PT_OK;
}
