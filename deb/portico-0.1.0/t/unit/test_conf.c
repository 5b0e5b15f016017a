/* Configuration loading, validation, route matching and the return module.
 * Each case writes a temporary file, loads it and checks values or the exact error text
 * (FILE:LINE: key 'path': what). Every loaded conf is freed: sanitizer builds check that. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "portico/conf.h"
#include "portico/http.h"
#include "portico/log.h"
#include "portico/module.h"
#include "portico/shm-t.h"
#include "portico/str.h"
#include "tap.h"

/* ---- the request API, as far as the return module uses it ----
 * The core engine may not be linked yet: these weak stand-ins record what the handler
 * asks for. When the real functions are linked they win, and the handler case is skipped
 * (a real pt_request is the integration tests' business). */
static pt_header rec_headers[8];
static unsigned rec_nheaders, rec_status;
static pt_str rec_ctype, rec_body;

static int stub_add_header(pt_request *r, pt_str name, pt_str value)
{
    if (rec_nheaders < pt_nelems(rec_headers))
        rec_headers[rec_nheaders++] = (pt_header) { name, value };
    return PT_OK;
}

static int stub_respond(pt_request *r, unsigned status, pt_str content_type, pt_str body)
{
    rec_status = status;
    rec_ctype = content_type;
    rec_body = body;
    return PT_OK;
}

int pt_http_add_header(pt_request *r, pt_str name, pt_str value)
    __attribute__((weak, alias("stub_add_header")));
int pt_http_respond(pt_request *r, unsigned status, pt_str content_type, pt_str body)
    __attribute__((weak, alias("stub_respond")));

extern pt_module pt_return_module;
extern pt_module pt_access_log_module;

/* Mirror of access_log.c's conf struct (its layout is that module's; keep in step). */
typedef struct {
    const char *path;
    int         format;
    bool        enabled;
    uint32_t    buffer_size;
    uint32_t    flush_ms;
} access_log_conf;

/* ---- helpers ---- */

static char path[64];

static void write_file(const char *text)
{
    strcpy(path, "/tmp/pt_conf_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t) len) {
        perror("write");
        exit(2);
    }
    close(fd);
}

static pt_conf *load(const char *text, char *err, size_t errlen)
{
    write_file(text);
    err[0] = '\0';
    pt_conf *c = pt_conf_load(path, err, errlen);
    unlink(path);
    return c;
}

/* Loads text expecting success; reports the error otherwise. */
static pt_conf *load_ok(const char *text, const char *name)
{
    char err[1024];
    pt_conf *c = load(text, err, sizeof(err));
    if (!tap_ok(c != NULL, "%s: loads", name))
        tap_diag("  error: %s", err);
    return c;
}

/* Loads text expecting an error: FILE (the temporary path) followed by want. */
static void err_is(const char *text, const char *want, const char *name)
{
    char err[1024], full[1024];
    pt_conf *c = load(text, err, sizeof(err));
    snprintf(full, sizeof(full), "%s%s", path, want);
    const char *got = c ? "(loaded)" : err, *exp = full;
    tap_is_str(got, exp, "error: %s", name);
    pt_conf_free(c);
}

#define LISTEN "listeners = ( { name = \"http\"; address = \"127.0.0.1:8080\"; } );\n"
#define ROUTE_OK "routes = ( { return = { status = 200; }; } );\n"

/* ---- the sample, defaults, the shipped sample ---- */

static const char sample[] =
    "workers = 2;\n"
    "daemon = false;\n"
    "user = \"portico\"; group = \"portico\";\n"
    "pid_file = \"/run/portico.pid\";\n"
    "server_tokens = true;\n"
    "error_log = { path = \"-\"; level = \"info\"; };\n"
    "access_log = { path = \"access.log\"; format = \"combined\"; enabled = true; };\n"
    "limits = {\n"
    "  max_connections = 10000;\n"
    "  client_header_timeout_ms = 10000;  client_body_timeout_ms = 30000;\n"
    "  keepalive_timeout_ms = 60000;      drain_timeout_ms = 30000;\n"
    "  max_header_size = 16384;           max_body_size = 10485760;   # 0 = unlimited\n"
    "};\n"
    "listeners = ( { name = \"http\"; address = \"127.0.0.1:8080\"; backlog = 511; } );\n"
    "routes = (   # tried in file order; the first match wins\n"
    "  { host = \"example.com\"; path_prefix = \"/\"; return = { status = 200; "
    "body = \"hello\\n\"; content_type = \"text/plain\"; }; },\n"
    "  { path_prefix = \"/\"; return = { status = 404; body = \"not here\\n\"; }; }\n"
    ");\n";

static void test_sample(void)
{
    pt_conf *c = load_ok(sample, "issue sample");
    if (c == NULL)
        return;
    tap_is_int(c->workers, 2, "workers");
    tap_ok(!c->daemon, "daemon");
    tap_is_str(c->user, "portico", "user");
    tap_is_str(c->group, "portico", "group");
    tap_is_str(c->pid_file, "/run/portico.pid", "pid_file");
    tap_ok(c->server_tokens, "server_tokens");
    tap_is_str(c->error_log_path, "-", "error_log.path");
    tap_is_int(c->error_log_level, PT_LOG_INFO, "error_log.level");
    tap_is_int(c->limits.max_connections, 10000, "max_connections");
    tap_is_int(c->limits.client_header_timeout_ms, 10000, "client_header_timeout_ms");
    tap_is_int(c->limits.client_body_timeout_ms, 30000, "client_body_timeout_ms");
    tap_is_int(c->limits.keepalive_timeout_ms, 60000, "keepalive_timeout_ms");
    tap_is_int(c->limits.drain_timeout_ms, 30000, "drain_timeout_ms");
    tap_is_int(c->limits.max_header_size, 16384, "max_header_size");
    tap_is_int(c->limits.max_body_size, 10485760, "max_body_size");
    tap_is_int(c->nlisteners, 1, "one listener");
    tap_is_str(c->listeners[0].name, "http", "listener name");
    tap_is_str(c->listeners[0].address, "127.0.0.1:8080", "listener address as written");
    tap_is_int(c->listeners[0].backlog, 511, "backlog");
    tap_is_int(c->listeners[0].line, 14, "listener line");
    const struct sockaddr_in *sin = (const void *) &c->listeners[0].addr;
    tap_ok(sin->sin_family == AF_INET && ntohs(sin->sin_port) == 8080
           && ntohl(sin->sin_addr.s_addr) == 0x7f000001
           && c->listeners[0].addrlen == sizeof(*sin), "listener sockaddr");
    tap_is_int(c->nroutes, 2, "two routes");
    tap_ok(c->routes[0].has_host && !c->routes[0].host_wildcard
           && pt_str_eq(c->routes[0].host, PT_STR("example.com")), "route 0 host");
    tap_ok(pt_str_eq(c->routes[0].path_prefix, PT_STR("/")), "route 0 path_prefix");
    tap_ok(!c->routes[1].has_host, "route 1 has no host");
    tap_is_int(c->routes[0].line, 16, "route 0 line");
    tap_ok(c->routes[0].content == &pt_return_module
           && c->routes[1].content == &pt_return_module, "return produces both routes");
    tap_is_int(c->routes[0].listener, -1, "route without listener: any");

    const access_log_conf *al = pt_main_conf(c, pt_access_log_module);
    tap_ok(al != NULL, "access_log conf allocated");
    if (al) {
        tap_is_str(al->path, "access.log", "access_log.path");
        tap_is_int(al->format, 0, "access_log.format combined");
        tap_ok(al->enabled, "access_log.enabled");
        tap_is_int(al->buffer_size, 65536, "access_log.buffer_size default");
        tap_is_int(al->flush_ms, 1000, "access_log.flush_ms default");
    }
    tap_ok(pt_route_conf(&c->routes[0], pt_access_log_module) == NULL,
           "no route conf for a module without one");
    pt_conf_free(c);
}

static void test_defaults(void)
{
    pt_conf *c = load_ok(LISTEN, "minimal file");
    if (c == NULL)
        return;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    tap_is_int(c->workers, ncpu > PT_MAX_WORKERS ? PT_MAX_WORKERS : ncpu, "workers = CPUs");
    tap_ok(!c->daemon, "daemon false");
    tap_ok(c->user == NULL && c->group == NULL, "user, group unset");
    tap_is_str(c->pid_file, PT_RUNSTATEDIR "/portico.pid", "pid_file default");
    tap_ok(c->server_tokens, "server_tokens true");
    tap_is_str(c->error_log_path, "-", "error_log.path default");
    tap_is_int(c->error_log_level, PT_LOG_INFO, "error_log.level default");
    tap_is_int(c->limits.max_connections, 10000, "max_connections default");
    tap_is_int(c->limits.client_header_timeout_ms, 10000, "client_header_timeout_ms default");
    tap_is_int(c->limits.client_body_timeout_ms, 30000, "client_body_timeout_ms default");
    tap_is_int(c->limits.keepalive_timeout_ms, 60000, "keepalive_timeout_ms default");
    tap_is_int(c->limits.send_timeout_ms, 60000, "send_timeout_ms default");
    tap_is_int(c->limits.drain_timeout_ms, 30000, "drain_timeout_ms default");
    tap_is_int(c->limits.max_header_size, 16384, "max_header_size default");
    tap_is_int(c->limits.max_target_size, 8192, "max_target_size default");
    tap_is_int(c->limits.max_headers, 100, "max_headers default");
    tap_is_int(c->limits.max_body_size, 10485760, "max_body_size default");
    tap_is_int(c->nroutes, 0, "no routes is allowed");
    tap_ok(pt_route_find(c, PT_STR("a"), PT_STR("/"), PT_M_GET, PT_STR("GET"), 0) == NULL,
           "no routes: nothing found");
    tap_ok(c->listeners[0].backlog == 511, "backlog default");
    const access_log_conf *al = pt_main_conf(c, pt_access_log_module);
    tap_ok(al && strcmp(al->path, "-") == 0 && al->format == 1 && al->enabled
           && al->buffer_size == 65536 && al->flush_ms == 1000, "access_log defaults");
    pt_conf_free(c);

    c = load_ok("workers = \"auto\";\nroutes = ();\n" LISTEN, "workers auto, empty routes");
    if (c) {
        tap_is_int(c->workers, ncpu > PT_MAX_WORKERS ? PT_MAX_WORKERS : ncpu, "auto = CPUs");
        pt_conf_free(c);
    }

    c = load_ok("limits = { max_header_size = 4096; max_body_size = 10000000000L; "
                "keepalive_timeout_ms = 0; };\n" LISTEN, "64-bit literal, keepalive 0");
    if (c) {
        tap_is_int(c->limits.max_target_size, 4096, "max_target_size follows a smaller head");
        tap_ok(c->limits.max_body_size == 10000000000ull, "max_body_size 10000000000L");
        tap_is_int(c->limits.keepalive_timeout_ms, 0, "keep-alive off");
        pt_conf_free(c);
    }

    c = load_ok("listeners = ( { address = \"[::1]:8443\"; }, { address = \"*:8080\"; },\n"
                "  { address = \"0.0.0.0:8081\"; backlog = 65535; } );\n", "address forms");
    if (c) {
        const struct sockaddr_in6 *s6 = (const void *) &c->listeners[0].addr;
        tap_ok(s6->sin6_family == AF_INET6 && ntohs(s6->sin6_port) == 8443
               && IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)
               && c->listeners[0].addrlen == sizeof(*s6), "[::1]:8443");
        const struct sockaddr_in *s4 = (const void *) &c->listeners[1].addr;
        tap_ok(s4->sin_family == AF_INET && s4->sin_addr.s_addr == htonl(INADDR_ANY)
               && ntohs(s4->sin_port) == 8080, "*:8080 = 0.0.0.0:8080");
        tap_is_str(c->listeners[0].name, "", "unnamed listener: empty name");
        tap_is_int(c->listeners[2].backlog, 65535, "backlog 65535");
        pt_conf_free(c);
    }

    const char *srcdir = getenv("PORTICO_SRCDIR");
    if (srcdir) {
        char p[4096], err[1024];
        snprintf(p, sizeof(p), "%s/etc/portico.conf", srcdir);
        c = pt_conf_load(p, err, sizeof(err));
        if (!tap_ok(c != NULL, "etc/portico.conf loads"))
            tap_diag("  %s", err);
        pt_conf_free(c);
    }
}

/* ---- errors ---- */

static void test_errors(void)
{
    /* files and syntax */
    char err[1024];
    pt_conf *c = pt_conf_load("/nonexistent/portico.conf", err, sizeof(err));
    tap_ok(c == NULL, "missing file fails");
    const char *got = err;
    tap_is_str(got, "/nonexistent/portico.conf: cannot read: No such file or directory",
               "missing file message");
    err_is("workers = 2;\ndaemon = ;\n" LISTEN, ":2: syntax error in \"daemon = ;\"",
           "syntax error line");
    err_is("workers = 2;\nworkers = 3;\n" LISTEN, ":2: duplicate setting name in \"workers = 3;\"",
           "duplicate key (libconfig)");

    /* unknown keys, at every level */
    err_is("foo = 1;\n" LISTEN, ":1: key 'foo': unknown key", "unknown top-level key");
    err_is("\nworkrs = 2;\n" LISTEN,
           ":2: key 'workrs': unknown key (did you mean 'workers'?)", "typo suggestion");
    err_is("limits = {\n  foo = 1;\n};\n" LISTEN, ":2: key 'limits.foo': unknown key",
           "unknown key in limits");
    err_is("limits = { max_conections = 1; };\n" LISTEN,
           ":1: key 'limits.max_conections': unknown key (did you mean 'max_connections'?)",
           "typo in limits");
    err_is("listeners = ( { address = \"127.0.0.1:80\"; },\n"
           "  { address = \"127.0.0.1:81\"; port = 81; } );\n",
           ":2: key 'listeners[1].port': unknown key", "unknown key in a listener");
    err_is(LISTEN "routes = (\n  { return = { status = 200; }; },\n"
           "  { path_prefx = \"/\"; return = { status = 200; }; } );\n",
           ":4: key 'routes[1].path_prefx': unknown key (did you mean 'path_prefix'?)",
           "unknown key in a route");
    err_is(LISTEN "routes = ( { return = { stauts = 200; }; } );\n",
           ":2: key 'routes[0].return.stauts': unknown key (did you mean 'status'?)",
           "unknown key in return");
    err_is(LISTEN "routes = ( { return = { headers = ( { name = \"X\"; val = \"1\"; } ); }; } );\n",
           ":2: key 'routes[0].return.headers[0].val': unknown key",
           "unknown key in return.headers");
    err_is("access_log = { foo = 1; };\n" LISTEN, ":1: key 'access_log.foo': unknown key",
           "unknown key in access_log");
    err_is("error_log = { file = \"x\"; };\n" LISTEN, ":1: key 'error_log.file': unknown key",
           "unknown key in error_log");
    err_is(LISTEN "routes = ( { return = { status = 200; }; access_log = {}; } );\n",
           ":2: key 'routes[0].access_log': unknown key here (it goes at the top level)",
           "a module's main key inside a route");
    err_is("return = { status = 200; };\n" LISTEN,
           ":1: key 'return': unknown key here (it goes in a route)",
           "a module's route key at the top level");
    err_is("listeners = ( { address = \"127.0.0.1:80\"; host = \"a\"; } );\n",
           ":1: key 'listeners[0].host': unknown key here (it goes in a route)",
           "a route key in a listener");
    err_is("limits = { workers = 2; };\n" LISTEN,
           ":1: key 'limits.workers': unknown key here (it goes at the top level)",
           "a top-level key in limits");

    /* wrong types */
    err_is("daemon = \"yes\";\n" LISTEN,
           ":1: key 'daemon': expected a boolean (true or false), got a string",
           "bool expected");
    err_is("workers = true;\n" LISTEN,
           ":1: key 'workers': expected an integer or \"auto\", got a boolean",
           "workers type");
    err_is("workers = \"many\";\n" LISTEN,
           ":1: key 'workers': \"many\": expected an integer or \"auto\"", "workers string");
    err_is("limits = 5;\n" LISTEN, ":1: key 'limits': expected a group { ... }, got an integer",
           "group expected");
    err_is("limits = { max_connections = 1.5; };\n" LISTEN,
           ":1: key 'limits.max_connections': expected an integer, got a float",
           "integer expected");
    err_is("listeners = { address = \"127.0.0.1:80\"; };\n",
           ":1: key 'listeners': expected a list ( { ... }, ... ), got a group { ... }",
           "list expected");
    err_is(LISTEN "routes = ( \"x\" );\n",
           ":2: key 'routes[0]': expected a group { ... }, got a string",
           "route element must be a group");
    err_is("pid_file = 5;\n" LISTEN, ":1: key 'pid_file': expected a string, got an integer",
           "string expected");
    err_is("user = \"\";\n" LISTEN, ":1: key 'user': must not be empty", "empty user");
    err_is(LISTEN "routes = ( { methods = \"GET\"; return = { status = 200; }; } );\n",
           ":2: key 'routes[0].methods': expected an array of strings [ \"GET\", ... ], "
           "got a string", "methods type");
    err_is(LISTEN "routes = ( { return = 200; } );\n",
           ":2: key 'routes[0].return': expected a group { ... }, got an integer",
           "return type");

    /* out of range */
    err_is("workers = 0;\n" LISTEN, ":1: key 'workers': 0 is out of range 1..128", "workers 0");
    err_is("workers = 129;\n" LISTEN, ":1: key 'workers': 129 is out of range 1..128",
           "workers 129");
    err_is("limits = { max_connections = 0; };\n" LISTEN,
           ":1: key 'limits.max_connections': 0 is out of range 1..1000000",
           "max_connections 0");
    err_is("limits = { max_connections = -1; };\n" LISTEN,
           ":1: key 'limits.max_connections': -1 is out of range 1..1000000", "negative");
    err_is("limits = { client_header_timeout_ms = 0; };\n" LISTEN,
           ":1: key 'limits.client_header_timeout_ms': 0 is out of range 1..86400000",
           "timeout 0");
    err_is("limits = { max_header_size = 100; };\n" LISTEN,
           ":1: key 'limits.max_header_size': 100 is out of range 1024..1048576",
           "max_header_size small");
    err_is("limits = { max_headers = 10001; };\n" LISTEN,
           ":1: key 'limits.max_headers': 10001 is out of range 1..10000", "max_headers");
    err_is("limits = { max_header_size = 4096;\n  max_target_size = 8192; };\n" LISTEN,
           ":2: key 'limits.max_target_size': 8192 is more than max_header_size (4096)",
           "target over head");
    err_is("limits = {\n  max_body_size = 10000000000; };\n" LISTEN,
           ":2: key 'limits.max_body_size': 10000000000 does not fit in 32 bits: write "
           "10000000000L for a 64-bit integer", "truncated 64-bit literal");
    err_is("limits = { max_connections = 4294967297; };\n" LISTEN,
           ":1: key 'limits.max_connections': 4294967297 does not fit in 32 bits: write "
           "4294967297L for a 64-bit integer", "literal that wraps to 1");
    err_is("listeners = ( { address = \"127.0.0.1:80\"; backlog = 1; }, "
           "{ address = \"127.0.0.1:81\"; backlog = 4294967298; } );\n",
           ":1: key 'listeners[1].backlog': 4294967298 does not fit in 32 bits: write "
           "4294967298L for a 64-bit integer", "same key twice on a line, second truncated");
    c = load_ok("listeners = ( { address = \"127.0.0.1:80\"; backlog = 7; }, "
                "{ address = \"127.0.0.1:81\"; backlog = 9; } );\n# backlog = 99999999999\n",
                "same key twice on a line");
    tap_ok(c && c->listeners[0].backlog == 7 && c->listeners[1].backlog == 9,
           "both values kept");
    pt_conf_free(c);
    c = load_ok("limits = { max_headers = +5; keepalive_timeout_ms = 0x10; };\n" LISTEN,
                "hex literal");
    tap_ok(c && c->limits.keepalive_timeout_ms == 16 && c->limits.max_headers == 5, "0x10, +5");
    pt_conf_free(c);
    err_is("listeners = ( { address = \"127.0.0.1:80\"; backlog = 70000; } );\n",
           ":1: key 'listeners[0].backlog': 70000 is out of range 1..65535", "backlog");
    err_is(LISTEN "routes = ( { return = { status = 101; }; } );\n",
           ":2: key 'routes[0].return.status': 101 is out of range 200..599", "status 1xx");
    err_is(LISTEN "routes = ( { return = { status = 600; }; } );\n",
           ":2: key 'routes[0].return.status': 600 is out of range 200..599", "status 600");
    err_is("access_log = { buffer_size = 16777217; };\n" LISTEN,
           ":1: key 'access_log.buffer_size': 16777217 is out of range 0..16777216",
           "access_log.buffer_size");
    err_is("access_log = { flush_ms = 0; };\n" LISTEN,
           ":1: key 'access_log.flush_ms': 0 is out of range 1..60000", "access_log.flush_ms");

    /* enums */
    err_is("error_log = { level = \"verbose\"; };\n" LISTEN,
           ":1: key 'error_log.level': \"verbose\" is not one of emerg, alert, crit, error, "
           "warn, notice, info, debug", "error_log.level");
    err_is("access_log = { format = \"xml\"; };\n" LISTEN,
           ":1: key 'access_log.format': \"xml\" is not one of combined, main, json",
           "access_log.format");

    /* listeners */
    err_is("workers = 1;\n", ": no listeners: at least one is needed, e.g. listeners = "
           "( { address = \"127.0.0.1:8080\"; } );", "no listeners");
    err_is("listeners = ();\n", ":1: key 'listeners': empty: at least one listener is needed",
           "empty listeners");
    err_is("listeners = (\n  { name = \"a\"; } );\n", ":2: listeners[0]: missing key 'address'",
           "listener without address");
#define ADDR(a) "listeners = ( { address = \"" a "\"; } );\n"
    err_is(ADDR("127.0.0.1"), ":1: key 'listeners[0].address': \"127.0.0.1\": missing port "
           "(e.g. 127.0.0.1:8080)", "address without port");
    err_is(ADDR("127.0.0.1:0"), ":1: key 'listeners[0].address': \"127.0.0.1:0\": the port "
           "must be 1..65535", "port 0");
    err_is(ADDR("127.0.0.1:65536"), ":1: key 'listeners[0].address': \"127.0.0.1:65536\": "
           "the port must be 1..65535", "port 65536");
    err_is(ADDR("127.0.0.1:8x"), ":1: key 'listeners[0].address': \"127.0.0.1:8x\": the port "
           "must be 1..65535", "port not a number");
    err_is(ADDR("::1:80"), ":1: key 'listeners[0].address': \"::1:80\": an IPv6 address goes "
           "in brackets (e.g. [::1]:8080)", "IPv6 without brackets");
    err_is(ADDR("[::1]80"), ":1: key 'listeners[0].address': \"[::1]80\": missing port "
           "(e.g. [::1]:8080)", "IPv6 without port");
    err_is(ADDR("[::1:80"), ":1: key 'listeners[0].address': \"[::1:80\": missing ']' after "
           "the IPv6 address", "IPv6 unclosed");
    err_is(ADDR("[zz::1]:80"), ":1: key 'listeners[0].address': \"[zz::1]:80\": invalid IPv6 "
           "address", "bad IPv6");
    err_is(ADDR("localhost:80"), ":1: key 'listeners[0].address': \"localhost:80\": not an IP "
           "address (use an IPv4 address, [IPv6] or *)", "listener host name");
    err_is(ADDR("256.1.1.1:80"), ":1: key 'listeners[0].address': \"256.1.1.1:80\": not an IP "
           "address (use an IPv4 address, [IPv6] or *)", "bad IPv4");
    err_is(ADDR(":80"), ":1: key 'listeners[0].address': \":80\": missing host (\"*:80\" is "
           "every address)", "missing host");
    err_is("listeners = ( { name = \"a\"; address = \"127.0.0.1:80\"; },\n"
           "  { name = \"a\"; address = \"127.0.0.1:81\"; } );\n",
           ":2: key 'listeners[1].name': \"a\" is already the name of listeners[0]",
           "duplicate listener name");
    err_is("listeners = ( { address = \"*:80\"; },\n  { address = \"0.0.0.0:80\"; } );\n",
           ":2: key 'listeners[1].address': \"0.0.0.0:80\" is already the address of "
           "listeners[0]", "duplicate listener address");
    err_is("listeners = ( { address = \"[::1]:80\"; },\n  { address = \"[0::1]:80\"; } );\n",
           ":2: key 'listeners[1].address': \"[0::1]:80\" is already the address of "
           "listeners[0]", "duplicate IPv6 address");

    /* routes */
    err_is(LISTEN "routes = (\n  { listener = \"https\"; return = { status = 200; }; } );\n",
           ":3: key 'routes[0].listener': no listener is named \"https\"", "unknown listener");
    c = load_ok("routes = ( { listener = \"https\"; return = { status = 200; }; } );\n"
                "listeners = ( { name = \"https\"; address = \"127.0.0.1:443\"; } );\n",
                "routes may come before listeners");
    tap_ok(c && c->routes[0].listener == 0, "route refers to a later listener");
    pt_conf_free(c);
    err_is(LISTEN "routes = ( { path_regex = \"^/api/(\"; return = { status = 200; }; } );\n",
           ":2: key 'routes[0].path_regex': missing closing parenthesis at offset 7",
           "bad regex");
    err_is(LISTEN "routes = (\n  { return = { status = 200; }; },\n  { path_prefix = \"/\"; } );\n",
           ":4: routes[1]: no content: give one of return, upstream", "route without content");
    err_is(LISTEN "upstreams = ( { name = \"app\"; servers = ( { address = \"127.0.0.1:9\"; } ); } );\n"
           "routes = (\n  { return = { status = 200; }; upstream = \"app\"; } );\n",
           ":4: routes[0]: both return and upstream produce the response: keep one",
           "two content producers");
    err_is(LISTEN "routes = (\n  { upstream = \"nope\"; } );\n",
           ":3: key 'routes[0].upstream': no upstream named \"nope\"", "unknown upstream");
    err_is(LISTEN "upstreams = ( { name = \"app\"; servers = ( ); } );\n",
           ":2: key 'upstreams[0].servers': needs at least one server", "upstream without servers");
    err_is(LISTEN "upstreams = ( { name = \"app\"; servers = ( { address = \"127.0.0.1\"; } ); } );\n",
           ":2: key 'upstreams[0].servers[0].address': \"127.0.0.1\": missing port (e.g. "
           "127.0.0.1:8080)", "upstream server without port");
    err_is(LISTEN "upstreams = ( { name = \"a\"; servers = ( { address = \"127.0.0.1:1\"; } ); },\n"
           "  { name = \"a\"; servers = ( { address = \"127.0.0.1:2\"; } ); } );\n",
           ":3: upstreams[1]: upstream \"a\" is already defined at line 2", "duplicate upstream");
    err_is(LISTEN "routes = ( { path_prefix = \"api\"; return = { status = 200; }; } );\n",
           ":2: key 'routes[0].path_prefix': \"api\": must start with '/'", "prefix without /");
    err_is(LISTEN "routes = ( { path_prefix = \"\"; return = { status = 200; }; } );\n",
           ":2: key 'routes[0].path_prefix': must not be empty", "empty prefix");
#define HOST(h) LISTEN "routes = ( { host = \"" h "\"; return = { status = 200; }; } );\n"
    err_is(HOST("example.com:80"), ":2: key 'routes[0].host': \"example.com:80\": a host has "
           "no port (use listener to select a port)", "host with port");
    err_is(HOST("*"), ":2: key 'routes[0].host': \"*\": leave host out to match any host",
           "host *");
    err_is(HOST(""), ":2: key 'routes[0].host': \"\": leave host out to match any host",
           "empty host");
    err_is(HOST("exa mple.com"), ":2: key 'routes[0].host': \"exa mple.com\": invalid "
           "character in a host name", "host with space");
    err_is(HOST("a..b"), ":2: key 'routes[0].host': \"a..b\": empty label", "empty label");
    err_is(HOST("foo.*.com"), ":2: key 'routes[0].host': \"foo.*.com\": '*' may only start a "
           "wildcard (*.example.com)", "star inside");
    err_is(HOST("*.[::1]"), ":2: key 'routes[0].host': \"*.[::1]\": an IP address has no "
           "subdomains", "wildcard IP");
    err_is(HOST("[::1"), ":2: key 'routes[0].host': \"[::1\": an IPv6 address in brackets is "
           "expected", "bad IPv6 host");
#define METHODS(m) LISTEN "routes = ( { methods = [" m "]; return = { status = 200; }; } );\n"
    err_is(METHODS("\"GET\", \"get\""), ":2: key 'routes[0].methods[1]': \"get\": methods are "
           "case-sensitive (GET?)", "method case");
    err_is(METHODS("\"G T\""), ":2: key 'routes[0].methods[0]': \"G T\" is not a method "
           "token", "method token");
    err_is(METHODS(""), ":2: key 'routes[0].methods': empty: leave methods out to allow every "
           "method", "empty methods");
    err_is(METHODS("\"GET\", \"GET\""), ":2: key 'routes[0].methods[1]': \"GET\" is listed "
           "twice", "method twice");
    err_is(METHODS("\"PURGE\", \"PURGE\""), ":2: key 'routes[0].methods[1]': \"PURGE\" is "
           "listed twice", "unknown method twice");

    /* return */
#define RET(r) LISTEN "routes = ( { return = { " r " }; } );\n"
    err_is(RET("status = 200; location = \"/x\";"), ":2: key 'routes[0].return.location': only "
           "for a 3xx status, not 200", "location without 3xx");
    err_is(RET("status = 302; location = \"/a b\";"), ":2: key 'routes[0].return.location': "
           "spaces are not allowed in a URI", "location with space");
    err_is(RET("headers = ( { name = \"X A\"; value = \"1\"; } );"),
           ":2: key 'routes[0].return.headers[0].name': \"X A\" is not a valid field name",
           "header name not a token");
    err_is(RET("headers = ( { name = \"X-A\"; value = \"a\\nb\"; } );"),
           ":2: key 'routes[0].return.headers[0].value': control characters (CR, LF, ...) are "
           "not allowed", "header value with LF");
    err_is(RET("headers = ( { name = \"X-A\"; value = \"a\\rb\"; } );"),
           ":2: key 'routes[0].return.headers[0].value': control characters (CR, LF, ...) are "
           "not allowed", "header value with CR");
    err_is(RET("headers = ( { name = \"content-length\"; value = \"1\"; } );"),
           ":2: key 'routes[0].return.headers[0].name': \"content-length\": set by portico "
           "from the body", "Content-Length header");
    err_is(RET("headers = ( { name = \"Content-Type\"; value = \"x\"; } );"),
           ":2: key 'routes[0].return.headers[0].name': \"Content-Type\": use content_type",
           "Content-Type header");
    err_is(RET("headers = ( { value = \"1\"; } );"),
           ":2: routes[0].return.headers[0]: missing key 'name'", "header without name");
    err_is(RET("status = 204; body = \"x\";"), ":2: key 'routes[0].return.body': a 204 "
           "response has no body", "body on 204");
    err_is(RET("content_type = \"text/html\\n\";"), ":2: key 'routes[0].return.content_type': "
           "control characters (CR, LF, ...) are not allowed", "content_type with LF");
}

static void test_addr(void)
{
    pt_conf_ctx cx;
    struct sockaddr_storage ss;
    socklen_t len = 0;

    memset(&cx, 0, sizeof(cx));
    cx.file = "F";
    tap_is_int(pt_conf_parse_addr(&cx, NULL, "localhost:8080", true, &ss, &len), PT_OK,
               "resolve localhost");
    tap_ok((ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in)
            && ntohs(((struct sockaddr_in *) &ss)->sin_port) == 8080)
           || (ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)
               && ntohs(((struct sockaddr_in6 *) &ss)->sin6_port) == 8080),
           "resolved address carries the port");
    tap_is_int(pt_conf_parse_addr(&cx, NULL, "10.1.2.3:1", true, &ss, &len), PT_OK,
               "IPv4 with resolve");
    tap_ok(ss.ss_family == AF_INET
           && ((struct sockaddr_in *) &ss)->sin_addr.s_addr == htonl(0x0a010203),
           "IPv4 literal is not looked up");
    tap_is_int(pt_conf_parse_addr(&cx, NULL, "no-such-host.invalid:80", true, &ss, &len),
               PT_ERROR, "unknown host fails");
    const char *want = "F: \"no-such-host.invalid:80\": cannot resolve no-such-host.invalid: ";
    tap_ok(strncmp(cx.error, want, strlen(want)) == 0, "unknown host message");
    tap_diag("  %s", cx.error);
}

/* ---- the return module's handler ---- */

static void test_return_handler(void)
{
    if ((void *) pt_http_respond != (void *) stub_respond) {
        tap_diag("the real pt_http_* are linked: handler case left to integration tests");
        return;
    }
    pt_conf *c = load_ok(LISTEN "routes = (\n"
                         "  { path_prefix = \"/old\"; return = { status = 301; "
                         "location = \"https://x/\"; body = \"moved\\n\";\n"
                         "    headers = ( { name = \"X-A\"; value = \"b\"; },"
                         " { name = \"Cache-Control\"; value = \"\"; } ); }; },\n"
                         "  { path_prefix = \"/e\"; return = { status = 204; }; },\n"
                         "  { return = { body = \"<p>\"; content_type = \"text/html\"; }; } );\n",
                         "return routes");
    if (c == NULL)
        return;
    pt_request r;
    memset(&r, 0, sizeof(r));
    r.route = &c->routes[0];
    rec_nheaders = 0;
    tap_is_int(pt_return_module.content(&r), PT_OK, "handler returns respond's code");
    tap_is_int(rec_status, 301, "status 301");
    tap_is_int(rec_nheaders, 3, "two fields and Location");
    tap_ok(pt_str_eq(rec_headers[0].name, PT_STR("X-A"))
           && pt_str_eq(rec_headers[0].value, PT_STR("b")), "X-A: b");
    tap_ok(pt_str_eq(rec_headers[1].name, PT_STR("Cache-Control"))
           && rec_headers[1].value.len == 0, "empty value allowed");
    tap_ok(pt_str_eq(rec_headers[2].name, PT_STR("Location"))
           && pt_str_eq(rec_headers[2].value, PT_STR("https://x/")), "Location");
    tap_ok(pt_str_eq(rec_ctype, PT_STR("text/plain")), "content_type defaults to text/plain");
    tap_ok(pt_str_eq(rec_body, PT_STR("moved\n")), "body");

    r.route = &c->routes[1];
    rec_nheaders = 0;
    pt_return_module.content(&r);
    tap_ok(rec_status == 204 && rec_nheaders == 0 && rec_ctype.len == 0 && rec_body.len == 0,
           "204: no body, no content type");

    r.route = &c->routes[2];
    pt_return_module.content(&r);
    tap_ok(rec_status == 200 && pt_str_eq(rec_ctype, PT_STR("text/html"))
           && pt_str_eq(rec_body, PT_STR("<p>")), "status 200 by default, own content_type");
    pt_conf_free(c);
}

/* ---- route matching ---- */

static int find(const pt_conf *c, const char *host, const char *p, pt_method m,
                const char *mname, unsigned listener)
{
    const pt_route *rt = pt_route_find(c, (pt_str) { strlen(host), host },
                                       (pt_str) { strlen(p), p }, m,
                                       (pt_str) { strlen(mname), mname }, listener);
    return rt ? (int) rt->index : -1;
}

#define R(conds) "  { " conds " return = { status = 200; }; },\n"

static void test_routes(void)
{
    pt_conf *c = load_ok(
        "listeners = ( { name = \"a\"; address = \"127.0.0.1:8080\"; },\n"
        "              { name = \"b\"; address = \"127.0.0.1:8081\"; } );\n"
        "routes = (\n"
        R("host = \"api.example.com\"; path_prefix = \"/v1/\";")            /* 0 */
        R("host = \"*.example.com\"; path_prefix = \"/v1/\";")              /* 1 */
        R("host = \"API.Example.COM.\";")                                   /* 2 */
        R("host = \"*.example.com\"; methods = [\"DELETE\"];")              /* 3 */
        R("host = \"*.b.example.com\";")                                    /* 4 */
        R("path_regex = \"^/re/[0-9]+$\";")                                 /* 5 */
        R("path_prefix = \"/m/\"; methods = [\"POST\", \"PURGE\"];")        /* 6 */
        R("path_prefix = \"/l/\"; listener = \"b\";")                       /* 7 */
        R("host = \"example.com\";")                                        /* 8 */
        R("host = \"*.example.com\";")                                      /* 9 */
        R("host = \"[::1]\";")                                              /* 10 */
        R("host = \"10.0.0.1\";")                                           /* 11 */
        R("path_prefix = \"/\";")                                           /* 12 */
        "  { return = { status = 404; }; } );\n", "routing table");
    if (c == NULL)
        return;
    const pt_route *rt = &c->routes[2];
    tap_ok(pt_str_eq(rt->host, PT_STR("api.example.com")) && !rt->host_wildcard,
           "host stored lower-case without the trailing dot");
    tap_ok(pt_str_eq(c->routes[1].host, PT_STR(".example.com")) && c->routes[1].host_wildcard,
           "wildcard stored as its suffix");
    tap_ok(c->routes[6].methods == (1u << PT_M_POST) && c->routes[6].nmethod_names == 1
           && pt_str_eq(c->routes[6].method_names[0], PT_STR("PURGE")), "method bits and names");
    tap_is_int(c->routes[7].listener, 1, "listener index");
    tap_is_int(c->route_table.max_labels, 3, "max_labels from *.b.example.com");

    struct { const char *host, *path; pt_method m; const char *mname; unsigned l; int want; }
    cases[] = {
        { "api.example.com", "/v1/x", PT_M_GET, "GET", 0, 0 },
        { "API.EXAMPLE.COM", "/v1/x", PT_M_GET, "GET", 0, 0 },    /* case-insensitive */
        { "api.example.com.", "/v1/x", PT_M_GET, "GET", 0, 0 },   /* trailing dot */
        { "www.example.com", "/v1/x", PT_M_GET, "GET", 0, 1 },    /* wildcard */
        { "a.b.example.com", "/v1/", PT_M_GET, "GET", 0, 1 },     /* deeper subdomain */
        { "Www.Example.Com", "/v1/", PT_M_GET, "GET", 0, 1 },
        { "example.com", "/v1/x", PT_M_GET, "GET", 0, 8 },        /* not the bare domain */
        { "api.example.com", "/other", PT_M_GET, "GET", 0, 2 },   /* exact after wildcard */
        { "www.example.com", "/other", PT_M_GET, "GET", 0, 9 },
        { "www.example.com", "/other", PT_M_DELETE, "DELETE", 0, 3 },
        { "x.b.example.com", "/other", PT_M_GET, "GET", 0, 4 },   /* longer suffix */
        { "x.b.example.com", "/other", PT_M_DELETE, "DELETE", 0, 3 },   /* file order */
        { "b.example.com", "/other", PT_M_GET, "GET", 0, 9 },     /* *.b needs a subdomain */
        { "other.org", "/re/12", PT_M_GET, "GET", 0, 5 },         /* regex */
        { "other.org", "/re/12x", PT_M_GET, "GET", 0, 12 },
        { "example.com", "/re/7", PT_M_GET, "GET", 0, 5 },        /* host-less comes first */
        { "other.org", "/m/a", PT_M_POST, "POST", 0, 6 },         /* methods */
        { "other.org", "/m/a", PT_M_GET, "GET", 0, 12 },
        { "other.org", "/m/a", PT_M_OTHER, "PURGE", 0, 6 },       /* unknown method name */
        { "other.org", "/m/a", PT_M_OTHER, "BREW", 0, 12 },
        { "other.org", "/m/a", PT_M_OTHER, "purge", 0, 12 },      /* case-sensitive */
        { "other.org", "/l/x", PT_M_GET, "GET", 1, 7 },           /* listener */
        { "other.org", "/l/x", PT_M_GET, "GET", 0, 12 },
        { "", "/v1/x", PT_M_GET, "GET", 0, 12 },                  /* no host */
        { "[::1]", "/", PT_M_GET, "GET", 0, 10 },
        { "10.0.0.1", "/", PT_M_GET, "GET", 0, 11 },
        { "x.10.0.0.1", "/", PT_M_GET, "GET", 0, 12 },
        { "com", "/", PT_M_GET, "GET", 0, 12 },
        { ".example.com", "/", PT_M_GET, "GET", 0, 12 },          /* empty subdomain */
        { "other.org", "", PT_M_GET, "GET", 0, 13 },              /* no path prefix matches */
        { "a.b.c.d.e.f.g.h.i.j.k.example.com", "/", PT_M_GET, "GET", 0, 9 },
    };
    for (unsigned i = 0; i < pt_nelems(cases); i++)
        tap_is_int(find(c, cases[i].host, cases[i].path, cases[i].m, cases[i].mname,
                        cases[i].l), cases[i].want, "route %s %s %s listener %u",
                   cases[i].mname, cases[i].host[0] ? cases[i].host : "(no host)",
                   cases[i].path, cases[i].l);
    pt_conf_free(c);

    /* no catch-all: nothing found */
    c = load_ok(LISTEN "routes = ( { host = \"a.example\"; return = { status = 200; }; } );\n",
                "one exact route");
    if (c) {
        tap_is_int(find(c, "b.example", "/", PT_M_GET, "GET", 0), -1, "no match: NULL");
        tap_is_int(find(c, "A.EXAMPLE.", "/", PT_M_GET, "GET", 0), 0, "exact only");
        pt_conf_free(c);
    }
}

/* More wildcard suffixes hitting one host than the lookup merges at once: later rounds
 * must still give the file-order winner. */
static void test_many_wildcards(void)
{
    char *text = malloc(8192);
    size_t len = (size_t) sprintf(text, "%s", LISTEN "routes = (\n");
    const char *suffix = "l.k.j.i.h.g.f.e.d.c.b.a";   /* 12 labels */
    /* most specific first in file order, each matching only /p<i> */
    for (int i = 11; i >= 0; i--)
        len += (size_t) sprintf(text + len, R("host = \"*.%s\"; path_prefix = \"/p%d\";"),
                                suffix + 2 * (11 - i), i);
    len += (size_t) sprintf(text + len, R("path_prefix = \"/p3\";"));
    sprintf(text + len, "  { return = { status = 404; }; } );\n");
    pt_conf *c = load_ok(text, "12 nested wildcards");
    free(text);
    if (c == NULL)
        return;
    char p[8];
    int ok = 1;
    for (int i = 0; i < 12; i++) {
        snprintf(p, sizeof(p), "/p%d", i);
        int got = find(c, "x.l.k.j.i.h.g.f.e.d.c.b.a", p, PT_M_GET, "GET", 0);
        if (got != 11 - i) {
            tap_diag("  /p%d: got %d, want %d", i, got, 11 - i);
            ok = 0;
        }
    }
    tap_ok(ok, "each of 12 wildcard levels found in file order");
    tap_is_int(find(c, "x.l.k.j.i.h.g.f.e.d.c.b.a", "/q", PT_M_GET, "GET", 0), 13,
               "none of them: the catch-all");
    tap_is_int(find(c, "x.a", "/p3", PT_M_GET, "GET", 0), 12, "host-less /p3 below *.a");
    pt_conf_free(c);
}

/* ---- 10,000 hosts ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void test_many_hosts(void)
{
    enum { N = 10000 };
    size_t cap = (size_t) N * 96 + 1024, len;
    char *text = malloc(cap);
    len = (size_t) sprintf(text, "%s", LISTEN "routes = (\n");
    for (int i = 0; i < N; i++)
        len += (size_t) snprintf(text + len, cap - len,
                                 "  { host = \"h%d.example.com\"; return = { status = 200; }; },\n",
                                 i);
    len += (size_t) snprintf(text + len, cap - len, R("host = \"*.w.example.com\";")
                             "  { return = { status = 404; }; } );\n");
    double t0 = now_s();
    pt_conf *c = load_ok(text, "10,000 exact hosts");
    tap_diag("loading 10,002 routes: %.1f ms", (now_s() - t0) * 1e3);
    free(text);
    if (c == NULL)
        return;

    char host[64];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        snprintf(host, sizeof(host), i % 2 ? "h%d.example.com" : "H%d.EXAMPLE.COM", i);
        if (find(c, host, "/", PT_M_GET, "GET", 0) != i && bad++ < 5)
            tap_diag("  %s: got %d", host, find(c, host, "/", PT_M_GET, "GET", 0));
    }
    tap_is_int(bad, 0, "every one of 10,000 hosts finds its route");
    tap_is_int(find(c, "h10000.example.com", "/", PT_M_GET, "GET", 0), N + 1,
               "unknown host: the host-less route");
    tap_is_int(find(c, "x.w.example.com", "/", PT_M_GET, "GET", 0), N, "wildcard among them");

    enum { LOOKUPS = 1000000 };
    char hosts[64][32];
    for (int i = 0; i < 64; i++)
        snprintf(hosts[i], sizeof(hosts[i]), "h%d.example.com", i * 151);
    volatile unsigned sink = 0;
    t0 = now_s();
    for (int i = 0; i < LOOKUPS; i++) {
        const char *h = hosts[i & 63];
        const pt_route *rt = pt_route_find(c, (pt_str) { strlen(h), h }, PT_STR("/"),
                                           PT_M_GET, PT_STR("GET"), 0);
        sink += rt->index;
    }
    double dt = now_s() - t0;
    tap_diag("%d lookups among 10,002 routes: %.1f ms, %.0f ns per lookup", LOOKUPS,
             dt * 1e3, dt * 1e9 / LOOKUPS);
    pt_conf_free(c);
}

/* ---- @include: the text libconfig parses, and positions in the included files ---- */

static char incdir[64];

static void put(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", incdir, name);
    FILE *f = fopen(p, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(p);
        exit(2);
    }
}

/* Loads incdir/main.conf: NULL and the error (the directory's path stripped) or "". */
static pt_conf *load_main(char *err, size_t errlen)
{
    char p[256], full[1024];
    snprintf(p, sizeof(p), "%s/main.conf", incdir);
    full[0] = '\0';
    pt_conf *c = pt_conf_load(p, full, sizeof(full));
    size_t dl = strlen(incdir);
    /* every path in the message is under incdir: drop it, so the expected texts are short */
    size_t n = 0;
    for (const char *q = full; *q && n < errlen - 1; ) {
        if (strncmp(q, incdir, dl) == 0 && q[dl] == '/') {
            q += dl + 1;
            continue;
        }
        err[n++] = *q++;
    }
    err[n] = '\0';
    return c;
}

static void inc_err(const char *want, const char *name)
{
    char err[1024];
    pt_conf *c = load_main(err, sizeof(err));
    tap_is_str(c ? "(loaded)" : err, want, "include: %s", name);
    pt_conf_free(c);
}

static void test_include(void)
{
    char err[1024], p[256];

    strcpy(incdir, "/tmp/pt_inc_XXXXXX");
    if (mkdtemp(incdir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }

    /* an include in the middle; lines after it are the main file's own */
    put("routes.inc", "# routes\nroutes = (\n  { return = { status = 200; }; }\n);\n");
    put("main.conf", LISTEN "@include \"routes.inc\"\nworkers = 2;\n");
    pt_conf *c = load_main(err, sizeof(err));
    if (tap_ok(c != NULL, "include: loads") || (tap_diag("  %s", err), 0)) {
        tap_is_int(c->nroutes, 1, "include: the included route is there");
        tap_is_int(c->routes[0].line, 3, "include: the route's line is its own file's");
        tap_is_int(c->listeners[0].line, 1, "include: the main file's lines stay");
        tap_is_int(c->workers, 2, "include: a key after the include is read");
    }
    pt_conf_free(c);

    put("main.conf", LISTEN "@include \"routes.inc\"\nworkers = 2;\nbogus = 1;\n");
    inc_err("main.conf:4: key 'bogus': unknown key", "a key after an include: its line");
    put("routes.inc", "\n\nroutes = ( { return = { status = 999; }; } );\n");
    put("main.conf", LISTEN "@include \"routes.inc\"\nworkers = 2;\n");
    inc_err("routes.inc:3: key 'routes[0].return.status': 999 is out of range 200..599",
            "an error in an included file: its name and line");

    /* trailing text after the directive, no newline at the end of the included file, CRLF */
    put("routes.inc", "routes = ( { return = { status = 200; }; } )");
    put("main.conf", LISTEN "  @include \"routes.inc\"  # the routes\r\nworkers = 2;\r\n"
        "bogus = 1;\r\n");
    inc_err("main.conf:4: key 'bogus': unknown key",
            "blanks before @include, a comment after it, CRLF, no final newline");

    /* nested: names relative to the main file's directory, not the including file's */
    mkdir(strcat(strcpy(p, incdir), "/sub"), 0755);
    put("sub/a.inc", "@include \"sub/b.inc\"\n");
    put("sub/b.inc", "\nworkers = \"x\";\n");
    put("main.conf", LISTEN ROUTE_OK "@include \"sub/a.inc\"\n");
    inc_err("sub/b.inc:2: key 'workers': \"x\": expected an integer or \"auto\"",
            "nested includes, relative to the main file");
    put("sub/a.inc", "@include \"b.inc\"\n");
    inc_err("sub/a.inc:1: @include \"b.inc\" (b.inc): No such file or directory",
            "a name relative to the including file is not found");

    /* what the scanner skips: strings, comments; escapes in the name */
    put("main.conf", LISTEN ROUTE_OK "x = \"\n@include \\\"/dev/zero\\\"\n\";\n"
        "/*\n@include \"/dev/zero\"\n*/\n# @include \"/dev/zero\"\n"
        "// @include \"/dev/zero\"\n");
    inc_err("main.conf:3: key 'x': unknown key", "no @include inside a string or a comment");
    put("main.conf", LISTEN ROUTE_OK "workers = 1; @include \"/dev/zero\"\n");
    inc_err("main.conf:3: syntax error in \"workers = 1; @include \"/dev/zero\"\"",
            "no @include after text on its line (libconfig: a syntax error)");
    put("q\"uote.inc", "workers = 3;\n");
    put("main.conf", LISTEN ROUTE_OK "@include \"q\\\"uote.inc\"\nbogus = 1;\n");
    inc_err("main.conf:4: key 'bogus': unknown key", "\\\" in an @include name");

    /* refusals the integration tests do not reach */
    put("main.conf", LISTEN ROUTE_OK "@include \"unclosed.inc\n");
    inc_err("main.conf:3: @include: no closing quote before the end of the file",
            "an @include name without its closing quote");
    put("empty.inc", "");
    put("main.conf", LISTEN ROUTE_OK "@include \"empty.inc\"\n");
    c = load_main(err, sizeof(err));
    tap_ok(c != NULL, "an empty included file is fine");
    pt_conf_free(c);
    put("main.conf", "");
    inc_err("main.conf: no listeners: at least one is needed, e.g. listeners = ( { address = "
            "\"127.0.0.1:8080\"; } );",
            "an empty main file: the first missing key");

    /* a syntax error at the very end of the main file after an include */
    put("main.conf", LISTEN ROUTE_OK "@include \"empty.inc\"\nworkers = ");
    inc_err("main.conf:4: syntax error in \"workers =\"", "a syntax error at the end");

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", incdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", incdir);
}

int main(void)
{
    pt_modules_init();
    test_sample();
    test_defaults();
    test_errors();
    test_include();
    test_addr();
    test_return_handler();
    test_routes();
    test_many_wildcards();
    test_many_hosts();
    return tap_done();
}
