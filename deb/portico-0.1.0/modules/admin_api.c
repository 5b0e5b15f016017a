/* admin: the runtime API.
 *
 *   GET  /api/upstreams                         every group and its servers
 *   GET  /api/upstreams/NAME                    one group
 *   GET  /api/upstreams/NAME/servers/ADDR       one server
 *   POST /api/upstreams/NAME/servers/ADDR       {"state": "drain"|"up"|"down", "weight": N}
 *
 * ADDR is the server's address as written in the configuration or as resolved
 * ("10.0.0.2:9001"). A POST changes the server in the shared "upstreams" zone, so every
 * worker follows at once, without a reload; the next reload puts the configuration's
 * state and weight back. With admin.token_file set, a POST needs
 * "Authorization: Bearer TOKEN" (401 otherwise). */
#include <stdio.h>
#include <stdlib.h>

#include "portico/conf.h"
#include "portico/cycle-t.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/str.h"
#include "portico/upstream.h"
#include "admin.h"

/* ---- the request body: one flat JSON object of strings and integers ---- */

typedef struct {
    int      state;             /* PT_SV_ADMIN_*, -1: not given */
    int64_t  weight;            /* -1: not given */
} change;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* A JSON string without escapes other than \" and \\ (keys and the state words have
 * none): its content in (*s, *n). NULL when malformed. */
static const char *json_string(const char *p, const char *end, const char **s, size_t *n)
{
    if (p >= end || *p != '"')
        return NULL;
    const char *start = ++p;
    while (p < end && *p != '"') {
        if (*p == '\\' || (unsigned char) *p < 0x20)
            return NULL;
        p++;
    }
    if (p >= end)
        return NULL;
    *s = start;
    *n = (size_t) (p - start);
    return p + 1;
}

/* NULL on success, else why the body is refused (400). */
static const char *parse_change(const char *p, size_t len, change *c)
{
    const char *end = p + len;
    c->state = -1;
    c->weight = -1;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return "the body must be a JSON object";
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        goto close;
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if ((p = json_string(p, end, &k, &kn)) == NULL)
            return "malformed JSON: expected a member name";
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return "malformed JSON: expected ':'";
        p = skip_ws(p + 1, end);
        if (kn == 5 && memcmp(k, "state", 5) == 0) {
            if ((p = json_string(p, end, &v, &vn)) == NULL)
                return "\"state\" must be a string";
            if (vn == 5 && memcmp(v, "drain", 5) == 0)
                c->state = PT_SV_ADMIN_DRAIN;
            else if (vn == 2 && memcmp(v, "up", 2) == 0)
                c->state = PT_SV_ADMIN_UP;
            else if (vn == 4 && memcmp(v, "down", 4) == 0)
                c->state = PT_SV_ADMIN_DOWN;
            else
                return "\"state\" must be \"drain\", \"up\" or \"down\"";
        } else if (kn == 6 && memcmp(k, "weight", 6) == 0) {
            const char *d = p;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            uint64_t w;
            if (p == d || (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
                || !pt_parse_u64((pt_str) { (size_t) (p - d), d }, 1000000, &w) || w == 0)
                return "\"weight\" must be an integer from 1 to 1000000";
            c->weight = (int64_t) w;
        } else {
            return "unknown member: only \"state\" and \"weight\"";
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}')
            break;
        return "malformed JSON: expected ',' or '}'";
    }
close:
    p = skip_ws(p + 1, end);
    if (p != end)
        return "malformed JSON: text after the object";
    if (c->state < 0 && c->weight < 0)
        return "nothing to change: give \"state\" and/or \"weight\"";
    return NULL;
}

/* ---- paths ---- */

static const pt_upstream *find_upstream(pt_str name)
{
    const pt_conf *conf = pt_cycle_cur->conf;
    for (unsigned u = 0; u < conf->nupstreams; u++) {
        const char *n = conf->upstreams[u].name;
        if (strlen(n) == name.len && memcmp(n, name.data, name.len) == 0)
            return &conf->upstreams[u];
    }
    return NULL;
}

static int find_server(const pt_upstream *up, pt_str addr)
{
    for (unsigned s = 0; s < up->nservers; s++) {
        const pt_upstream_server *sv = &up->servers[s];
        if ((strlen(sv->address) == addr.len && memcmp(sv->address, addr.data, addr.len) == 0)
            || (strlen(sv->addr_text) == addr.len
                && memcmp(sv->addr_text, addr.data, addr.len) == 0))
            return (int) s;
    }
    return -1;
}

/* The next path segment after *p (which starts with '/'), advancing *p. */
static bool segment(pt_str *p, pt_str *seg)
{
    if (p->len < 2 || p->data[0] != '/')
        return false;
    const char *s = p->data + 1, *e = memchr(s, '/', p->len - 1);
    size_t n = e ? (size_t) (e - s) : p->len - 1;
    if (n == 0)
        return false;
    *seg = (pt_str) { n, s };
    p->data = s + n;
    p->len -= n + 1;
    return true;
}

static int reply_json(pt_request *r, unsigned status, pt_admin_buf *b)
{
    pt_admin_put(b, "\n", 1);
    return pt_admin_reply(r, status, "application/json", b);
}

static int set_server(pt_request *r, const pt_upstream *up, unsigned s)
{
    const char *data = r->body_buf ? r->body_buf : "";
    size_t len = r->body_buffered ? r->body_buf_len : 0;
    change c;
    const char *why = parse_change(data, len, &c);
    if (why)
        return pt_admin_error(r, 400, why);

    char who[96], what[64] = "";
    snprintf(who, sizeof(who), "from %s", r->conn->peer_ip);
    if (c.state >= 0)
        snprintf(what, sizeof(what), "state %s", c.state == PT_SV_ADMIN_DRAIN ? "drain"
                 : c.state == PT_SV_ADMIN_DOWN ? "down" : "up");
    if (c.weight > 0)
        snprintf(what + strlen(what), sizeof(what) - strlen(what), "%sweight %lld",
                 what[0] ? ", " : "", (long long) c.weight);
    pt_log(PT_LOG_NOTICE, "admin API: %s sets upstream \"%s\" server %s: %s",
           r->conn->peer_ip, up->name, up->servers[s].addr_text, what);
    if (pt_upstream_admin_set(up, &up->servers[s], c.state,
                              c.weight > 0 ? (unsigned) c.weight : 0, who) != PT_OK)
        return pt_admin_error(r, 503, "the server has no shared state");
    pt_admin_buf b = { 0 };
    pt_admin_server_json(&b, up, s);
    return reply_json(r, 200, &b);
}

int pt_admin_api(pt_request *r, pt_str path)
{
    pt_str seg, name, addr;
    bool get = r->head.method == PT_M_GET || r->head.method == PT_M_HEAD;
    bool post = r->head.method == PT_M_POST;

    if (!segment(&path, &seg) || !pt_str_eq(seg, PT_STR("upstreams")))
        return pt_admin_error(r, 404, "no such API endpoint");
    if (path.len == 0) {
        if (!get) {
            pt_http_add_header(r, PT_STR("Allow"), PT_STR("GET, HEAD"));
            return pt_admin_error(r, 405, "only GET and HEAD here");
        }
        const pt_conf *conf = pt_cycle_cur->conf;
        pt_admin_buf b = { 0 };
        pt_admin_put(&b, "{\"upstreams\": [", 15);
        for (unsigned u = 0; u < conf->nupstreams; u++) {
            if (u)
                pt_admin_put(&b, ", ", 2);
            pt_admin_upstream_json(&b, &conf->upstreams[u]);
        }
        pt_admin_put(&b, "]}", 2);
        return reply_json(r, 200, &b);
    }
    if (!segment(&path, &name))
        return pt_admin_error(r, 404, "no such API endpoint");
    const pt_upstream *up = find_upstream(name);
    if (up == NULL)
        return pt_admin_error(r, 404, "no such upstream");
    if (path.len == 0) {
        if (!get) {
            pt_http_add_header(r, PT_STR("Allow"), PT_STR("GET, HEAD"));
            return pt_admin_error(r, 405, "only GET and HEAD here");
        }
        pt_admin_buf b = { 0 };
        pt_admin_upstream_json(&b, up);
        return reply_json(r, 200, &b);
    }
    if (!segment(&path, &seg) || !pt_str_eq(seg, PT_STR("servers")) || !segment(&path, &addr)
        || path.len != 0)
        return pt_admin_error(r, 404, "no such API endpoint");
    int s = find_server(up, addr);
    if (s < 0)
        return pt_admin_error(r, 404, "no such server in the upstream");
    if (get) {
        pt_admin_buf b = { 0 };
        pt_admin_server_json(&b, up, (unsigned) s);
        return reply_json(r, 200, &b);
    }
    if (!post) {
        pt_http_add_header(r, PT_STR("Allow"), PT_STR("GET, HEAD, POST"));
        return pt_admin_error(r, 405, "only GET, HEAD and POST here");
    }
    if (!pt_admin_token_ok(r)) {
        pt_http_add_header(r, PT_STR("WWW-Authenticate"), PT_STR("Bearer realm=\"portico\""));
        return pt_admin_error(r, 401, "a valid bearer token is required");
    }
    return set_server(r, up, (unsigned) s);
}
