/* The access log's "json" format: one object per line, for log pipelines that parse
 * JSON (Loki, Elasticsearch, Vector). The fields of "main", plus the request id, the
 * upstream's status, the host and the listener:
 *
 *   {"time":"2026-12-02T05:40:00.123Z","remote_addr":"10.0.0.7","request_id":"4f1c...",
 *    "method":"GET","uri":"/x?a=1","protocol":"HTTP/1.1","host":"a.example",
 *    "listener":"main","status":200,"body_bytes_sent":27,"bytes_sent":190,
 *    "request_time":0.002,"referer":null,"user_agent":"curl/7.88.1",
 *    "upstream_addr":"127.0.0.1:8081","upstream_status":200,
 *    "upstream_response_time":0.001,"cache_status":null}
 *
 * A missing value is null; times are seconds with millisecond precision; "time" is the
 * request's start, UTC. */
#include <stdio.h>
#include <time.h>

#include "portico/conf.h"
#include "portico/event.h"
#include "portico/h1.h"
#include "portico/http.h"
#include "portico/str.h"
#include "portico/tls.h"
#include "access_log.h"

/* Room kept for the closing brace however long the values are. */
#define TAIL 2

static char *put_raw(char *p, char *end, const char *s, size_t n)
{
    n = pt_min(n, (size_t) (end - p));
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, end, lit) put_raw(p, end, lit, sizeof(lit) - 1)

static char *put_str(char *p, char *end, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (p >= end)
        return p;
    *p++ = '"';
    size_t u;
    for (size_t i = 0; i < n && end - p > 7; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char) ch;
        } else if (ch >= 0x80 && (u = pt_utf8_len((const unsigned char *) s + i, n - i))) {
            memcpy(p, s + i, u);            /* UTF-8 as it is: a log reader sees the text */
            p += u;
            i += u - 1;
        } else if (ch < 0x20 || ch >= 0x7f) {
            /* controls, and bytes that are not UTF-8 (read as Latin-1): JSON stays valid */
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char) ch;
        }
    }
    if (p < end)
        *p++ = '"';
    return p;
}

static char *put_opt(char *p, char *end, pt_str v)
{
    return v.len ? put_str(p, end, v.data, v.len) : PUT_LIT(p, end, "null");
}

static char *put_header(char *p, char *end, pt_request *r, pt_str name)
{
    const pt_header *h = pt_h1_find(r->head.headers, r->head.nheaders, name);
    return h && h->value.len ? put_str(p, end, h->value.data, pt_min(h->value.len, 1024))
                             : PUT_LIT(p, end, "null");
}

/* snprintf into [p, end), p moved past what fit */
#define PUT_FMT(p, end, ...) do {                                                       \
        if ((p) < (end)) {                                                              \
            int n_ = snprintf((p), (size_t) ((end) - (p)), __VA_ARGS__);               \
            (p) += n_ < 0 ? 0 : pt_min((size_t) n_, (size_t) ((end) - (p)));           \
        }                                                                               \
    } while (0)

char *pt_access_log_json(pt_request *r, char *p, char *end)
{
    struct tm tm;
    time_t sec = (time_t) (r->start_ms / 1000);
    char when[40];
    const pt_listener_conf *l = r->conn->listener->conf;

    end -= TAIL;
    gmtime_r(&sec, &tm);
    size_t wn = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    wn += (size_t) snprintf(when + wn, sizeof(when) - wn, ".%03uZ",
                            (unsigned) (r->start_ms % 1000));

    p = PUT_LIT(p, end, "{\"time\":\"");
    p = put_raw(p, end, when, wn);
    p = PUT_LIT(p, end, "\",\"remote_addr\":");
    p = put_str(p, end, r->conn->peer_ip, r->conn->peer_ip_len);
    p = PUT_LIT(p, end, ",\"request_id\":");
    p = put_opt(p, end, r->request_id);
    p = PUT_LIT(p, end, ",\"method\":");
    p = put_opt(p, end, r->head.method_name);
    p = PUT_LIT(p, end, ",\"uri\":");
    p = r->head.method_name.len ? put_str(p, end, r->head.target.data,
                                          pt_min(r->head.target.len, 4096))
                                : PUT_LIT(p, end, "null");
    if (r->head.method_name.len)
        PUT_FMT(p, end, ",\"protocol\":\"HTTP/%u.%u\"", r->head.version / 10,
                r->head.version % 10);
    else
        p = PUT_LIT(p, end, ",\"protocol\":null");
    p = PUT_LIT(p, end, ",\"host\":");
    p = put_opt(p, end, r->host);
    p = PUT_LIT(p, end, ",\"listener\":");
    p = l->name[0] ? put_str(p, end, l->name, strlen(l->name))
                   : put_str(p, end, l->address, strlen(l->address));
    uint64_t overhead = r->resp_head_len + (r->continue_sent ? 25 : 0);
    uint64_t body = r->bytes_sent > overhead ? r->bytes_sent - overhead : 0;
    PUT_FMT(p, end, ",\"status\":%u,\"body_bytes_sent\":%llu", r->status,
            (unsigned long long) body);
    PUT_FMT(p, end, ",\"bytes_sent\":%llu", (unsigned long long) r->bytes_sent);
    uint64_t rt = pt_loop_cur->now - r->start_mono;
    PUT_FMT(p, end, ",\"request_time\":%llu.%03llu", (unsigned long long) (rt / 1000),
            (unsigned long long) (rt % 1000));
    p = PUT_LIT(p, end, ",\"referer\":");
    p = put_header(p, end, r, PT_STR("Referer"));
    p = PUT_LIT(p, end, ",\"user_agent\":");
    p = put_header(p, end, r, PT_STR("User-Agent"));
    p = PUT_LIT(p, end, ",\"upstream_addr\":");
    p = put_opt(p, end, r->upstream_addr);
    if (r->upstream_status)
        PUT_FMT(p, end, ",\"upstream_status\":%u", r->upstream_status);
    else
        p = PUT_LIT(p, end, ",\"upstream_status\":null");
    if (r->upstream_ms >= 0)
        PUT_FMT(p, end, ",\"upstream_response_time\":%llu.%03llu",
                (unsigned long long) r->upstream_ms / 1000,
                (unsigned long long) r->upstream_ms % 1000);
    else
        p = PUT_LIT(p, end, ",\"upstream_response_time\":null");
    const char *tls = pt_xprt_tls_version(&r->conn->x);
    p = PUT_LIT(p, end, ",\"tls_protocol\":");
    p = tls[0] ? put_str(p, end, tls, strlen(tls)) : PUT_LIT(p, end, "null");
    p = PUT_LIT(p, end, ",\"cache_status\":");
    p = r->cache_status ? put_str(p, end, r->cache_status, strlen(r->cache_status))
                        : PUT_LIT(p, end, "null");
    *p++ = '}';             /* TAIL kept room for it */
    return p;
}
